"""Packet sources: capture files now, live interfaces later. All yield PacketBatch."""

from flowscope.capture.batch import PacketBatch

__all__ = ["PacketBatch"]
