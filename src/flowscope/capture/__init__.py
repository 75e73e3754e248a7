"""Packet sources: capture files (files) and live interfaces (live). All yield PacketBatch."""

from flowscope.capture.batch import PacketBatch
from flowscope.capture.files import CaptureReader, ReaderStats, open_capture

__all__ = ["CaptureReader", "PacketBatch", "ReaderStats", "open_capture"]
