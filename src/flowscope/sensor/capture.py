"""Open a live capture with the sensor configuration's ``[capture]`` settings.

One place turns the configuration into :class:`~flowscope.capture.live.LiveCapture`
arguments, so `flowscope run` and the dashboard's start button capture the same way
(snap length, promiscuous mode, batch size and the ring the user budgeted).
"""

from __future__ import annotations

from flowscope.capture import bpf
from flowscope.capture.live import LiveCapture, ring_geometry
from flowscope.config import CaptureConfig


def open_live(
    config: CaptureConfig, interface: str, *, bpf_filter: str | None, tcp_only: bool = False
) -> LiveCapture:
    """A live capture on ``interface``; raises the capture's one-line errors."""
    block_size, block_count = ring_geometry(config.ring_size)
    return LiveCapture(
        interface,
        bpf_filter=bpf_filter or None,
        tcp_only=tcp_only,
        promisc=config.promiscuous,
        snaplen=config.snaplen or bpf.MAX_SNAPLEN,
        batch_packets=config.batch_size,
        block_size=block_size,
        block_count=block_count,
    )
