"""Packet decoding: PacketBatch → one row of header fields per packet (see layout)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from flowscope.capture.batch import PacketBatch
from flowscope.decode import layout
from flowscope.decode._kernel import decode_into


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """Header fields of a batch: ``fields`` is n × DEC_NCOLS int64, ``addr`` n × 4 uint64."""

    fields: npt.NDArray[np.int64]
    addr: npt.NDArray[np.uint64]

    def __len__(self) -> int:
        return int(self.fields.shape[0])

    def status_counts(self) -> npt.NDArray[np.int64]:
        """Packets per status code (index = code), for the reader's summary."""
        return np.bincount(self.fields[:, layout.DEC_STATUS], minlength=layout.SKIP_NCODES).astype(
            np.int64
        )


def decode(batch: PacketBatch) -> DecodedBatch:
    """Decode link, network and transport headers of every packet in ``batch``."""
    n = len(batch)
    fields = np.empty((n, layout.DEC_NCOLS), dtype=np.int64)
    addr = np.empty((n, layout.ADDR_NCOLS), dtype=np.uint64)
    if n:
        decode_into(
            batch.data,
            batch.offset,
            batch.caplen,
            batch.wirelen,
            batch.ts_ns,
            batch.linktype,
            fields,
            addr,
        )
    return DecodedBatch(fields, addr)


__all__ = ["DecodedBatch", "decode", "layout"]
