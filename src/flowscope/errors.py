"""Exceptions that the CLI turns into a one-line message and a non-zero exit."""


class FlowscopeError(Exception):
    """Base class: anything the user can fix (bad file, bad option, missing rights)."""


class CaptureError(FlowscopeError):
    """A capture file cannot be read at all (not a capture, unreadable header, I/O error)."""


def first_problem(error: object) -> str:
    """``"field.path: message"`` of a pydantic ValidationError's first error.

    One line is what the CLI prints; the first problem is what the user fixes first.
    """
    errors = error.errors()  # type: ignore[attr-defined]
    if not errors:
        return str(error).splitlines()[0]
    first = errors[0]
    loc = ".".join(str(x) for x in first["loc"])
    return f"{loc}: {first['msg']}" if loc else str(first["msg"])
