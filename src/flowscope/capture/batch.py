"""The unit of work between a packet source and the decoder.

A batch is a struct of arrays, never a list of packet objects: the bytes of many
packets live in one uint8 buffer and each packet is an (offset, caplen) slice of it.
That is what lets the decoder and flow meter run as compiled loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Link-layer header types (tcpdump.org/linktypes.html) that the decoder understands.
LINKTYPE_NULL = 0  # BSD loopback: 4-byte address family in host byte order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4/IPv6, version nibble decides
LINKTYPE_LOOP = 108  # OpenBSD loopback: 4-byte address family in network byte order
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
# DLT_RAW values some systems write into pcap headers instead of LINKTYPE_RAW.
LINKTYPE_RAW_ALT1 = 12
LINKTYPE_RAW_ALT2 = 14


@dataclass(frozen=True, slots=True)
class PacketBatch:
    """Packets of one read, as parallel arrays.

    data: bytes of all packets (uint8); offset: start of each packet in ``data``
    (int64); caplen: bytes captured (int32); wirelen: original length on the wire
    (int32); ts_ns: capture time in nanoseconds since the Unix epoch (int64);
    linktype: link-layer type per packet (int32; pcapng may mix interfaces).
    """

    data: npt.NDArray[np.uint8]
    offset: npt.NDArray[np.int64]
    caplen: npt.NDArray[np.int32]
    wirelen: npt.NDArray[np.int32]
    ts_ns: npt.NDArray[np.int64]
    linktype: npt.NDArray[np.int32]

    def __len__(self) -> int:
        return int(self.offset.shape[0])

    @classmethod
    def from_packets(
        cls, packets: list[tuple[int, bytes]], linktype: int = LINKTYPE_ETHERNET
    ) -> PacketBatch:
        """Build a batch from (timestamp_ns, frame bytes) pairs; for tests and small inputs."""
        lengths = np.array([len(p) for _, p in packets], dtype=np.int32)
        offsets = np.zeros(len(packets), dtype=np.int64)
        if len(packets) > 1:
            offsets[1:] = np.cumsum(lengths[:-1], dtype=np.int64)
        data = np.frombuffer(b"".join(p for _, p in packets), dtype=np.uint8).copy()
        return cls(
            data=data,
            offset=offsets,
            caplen=lengths,
            wirelen=lengths.copy(),
            ts_ns=np.array([t for t, _ in packets], dtype=np.int64),
            linktype=np.full(len(packets), linktype, dtype=np.int32),
        )
