"""Exceptions that the CLI turns into a one-line message and a non-zero exit."""


class FlowscopeError(Exception):
    """Base class: anything the user can fix (bad file, bad option, missing rights)."""


class CaptureError(FlowscopeError):
    """A capture file cannot be read at all (not a capture, unreadable header, I/O error)."""
