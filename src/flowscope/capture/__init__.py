"""Packet sources: capture files (files) and live interfaces (live). All yield PacketBatch."""

from flowscope.capture.batch import PacketBatch
from flowscope.capture.files import CaptureReader, PcapRecords, ReaderStats, open_capture

__all__ = ["CaptureReader", "PacketBatch", "PcapRecords", "ReaderStats", "open_capture"]
