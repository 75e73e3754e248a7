"""FlowMeter: the one flow engine behind `flowscope flows`, training data and live capture.

It owns the flow table (numpy arrays updated by the compiled kernel) and hands back
finished flows as :class:`FlowRecords` — raw accumulators that
:func:`flowscope.flows.features.compute_features` turns into feature columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from flowscope.capture.batch import PacketBatch
from flowscope.decode import DecodedBatch
from flowscope.decode import layout as L
from flowscope.flows import _kernel as kern
from flowscope.flows.state import F_NCOLS, I_NCOLS, K_NCOLS

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """Flow-table settings. Times in seconds; defaults follow CICFlowMeter where it has one."""

    idle_timeout: float = 120.0
    active_timeout: float = 3600.0
    activity_timeout: float = 5.0  # gap that splits active and idle periods
    subflow_gap: float = 1.0
    bulk_gap: float = 1.0
    max_flows: int = 1_000_000
    fragment_timeout: float = 30.0
    close_grace: float = 1.0  # a RST/FIN-ended flow absorbs stray packets this long
    output_rows: int = 65_536  # finished flows handed back per chunk

    def __post_init__(self) -> None:
        if self.idle_timeout <= 0 or self.active_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_flows < 1:
            raise ValueError("max_flows must be at least 1")
        if self.output_rows < 3:
            raise ValueError("output_rows must be at least 3 (a packet can end two flows)")
        if self.close_grace < 0:
            raise ValueError("close_grace must not be negative")

    def params(self) -> npt.NDArray[np.int64]:
        p = np.zeros(kern.P_NCOLS, dtype=np.int64)
        p[kern.P_IDLE] = int(self.idle_timeout * _NS)
        p[kern.P_ACTIVE] = int(self.active_timeout * _NS)
        p[kern.P_ACTIVITY] = int(self.activity_timeout * _NS)
        p[kern.P_SUBFLOW_GAP] = int(self.subflow_gap * _NS)
        p[kern.P_BULK_GAP] = int(self.bulk_gap * _NS)
        p[kern.P_MAX_FLOWS] = self.max_flows
        p[kern.P_FRAG_TIMEOUT] = int(self.fragment_timeout * _NS)
        p[kern.P_EXPIRY_INTERVAL] = int(min(1.0, self.idle_timeout) * _NS)
        # A closed flow never outlives what the idle timeout would allow an open one.
        p[kern.P_CLOSE_GRACE] = int(min(self.close_grace, self.idle_timeout) * _NS)
        return p


@dataclass(frozen=True, slots=True)
class FlowRecords:
    """Finished flows as raw accumulators (rows of the state matrices)."""

    I: npt.NDArray[np.int64]
    F: npt.NDArray[np.float64]
    K: npt.NDArray[np.uint64]

    def __len__(self) -> int:
        return int(self.I.shape[0])

    @classmethod
    def concat(cls, parts: list[FlowRecords]) -> FlowRecords:
        if not parts:
            return cls(
                np.zeros((0, I_NCOLS), np.int64),
                np.zeros((0, F_NCOLS), np.float64),
                np.zeros((0, K_NCOLS), np.uint64),
            )
        if len(parts) == 1:
            return parts[0]
        return cls(
            np.concatenate([p.I for p in parts]),
            np.concatenate([p.F for p in parts]),
            np.concatenate([p.K for p in parts]),
        )


@dataclass(slots=True)
class MeterStats:
    packets: int = 0  # packets added to flows
    flows: int = 0  # flows created
    evicted: int = 0  # flows closed early because the table was full
    ts_backwards: int = 0
    orphan_fragments: int = 0
    fragments: int = 0
    open_flows: int = 0  # flows in the table, including those in their close grace period
    peak_open_flows: int = 0
    table_capacity: int = 0


class FlowMeter:
    """Meters decoded packets into bidirectional flows.

    >>> meter = FlowMeter()
    >>> for records in meter.update(decoded):   # finished flows, in chunks
    ...     ...
    >>> for records in meter.flush():           # end of input: close the rest
    ...     ...
    """

    _MIN_CAPACITY = 1024

    def __init__(self, config: MeterConfig | None = None) -> None:
        self.config = config or MeterConfig()
        self._params = self.config.params()
        self._meta = np.zeros(kern.M_NCOLS, dtype=np.int64)
        self._meta[kern.M_FREE] = -1
        for q in (kern.Q_OPEN, kern.Q_CLOSING):
            self._meta[q] = -1
            self._meta[q + 1] = -1
        self._counters = np.zeros(kern.C_NCOLS, dtype=np.int64)
        self._frag = np.zeros((1 << kern.FRAG_TABLE_BITS, kern.FRAG_COLS), dtype=np.uint64)
        rows = self.config.output_rows
        self._out_I = np.empty((rows, I_NCOLS), dtype=np.int64)
        self._out_F = np.empty((rows, F_NCOLS), dtype=np.float64)
        self._out_K = np.empty((rows, K_NCOLS), dtype=np.uint64)
        self._row = np.zeros(L.DEC_NCOLS, dtype=np.int64)
        self._addr = np.zeros(L.ADDR_NCOLS, dtype=np.uint64)
        self.status_counts = np.zeros(L.SKIP_NCODES, dtype=np.int64)
        """Packets by decode status (index = code) seen by :meth:`update_raw`."""
        self._cap = 0
        self._I = np.zeros((0, I_NCOLS), dtype=np.int64)
        self._F = np.zeros((0, F_NCOLS), dtype=np.float64)
        self._K = np.zeros((0, K_NCOLS), dtype=np.uint64)
        self._prev = np.zeros(0, dtype=np.int64)
        self._next = np.zeros(0, dtype=np.int64)
        self._index = np.zeros(1, dtype=np.int64)
        self._grow(min(self._MIN_CAPACITY, self.config.max_flows))

    # ------------------------------------------------------------------ capacity
    def _grow(self, want: int) -> None:
        """Enlarge the flow table to at least ``want`` slots (never above max_flows).

        Tables start small and double, so memory follows the number of open flows.
        """
        new_cap = max(self._cap, self._MIN_CAPACITY)
        while new_cap < want:
            new_cap *= 2
        new_cap = min(new_cap, self.config.max_flows)
        if new_cap <= self._cap:
            return
        old = self._cap

        def grow2(a: np.ndarray) -> np.ndarray:
            b = np.zeros((new_cap, a.shape[1]), dtype=a.dtype)
            b[:old] = a
            return b

        self._I, self._F, self._K = grow2(self._I), grow2(self._F), grow2(self._K)
        prev = np.full(new_cap, -1, dtype=np.int64)
        prev[:old] = self._prev
        nxt = np.full(new_cap, -1, dtype=np.int64)
        nxt[:old] = self._next
        # Chain the new slots in front of the free list.
        nxt[old : new_cap - 1] = np.arange(old + 1, new_cap)
        nxt[new_cap - 1] = self._meta[kern.M_FREE]
        self._meta[kern.M_FREE] = old
        self._prev, self._next = prev, nxt
        size = 1
        while size < 8 * new_cap:
            size *= 2
        self._index = np.zeros(size, dtype=np.int64)
        kern.rebuild_index(self._index, self._I, self._prev, self._next, self._meta)
        self._cap = new_cap

    # ------------------------------------------------------------------ driving
    def _drain(self) -> FlowRecords | None:
        n = int(self._meta[kern.M_NOUT])
        if n == 0:
            return None
        self._meta[kern.M_NOUT] = 0
        if 2 * n < self._out_I.shape[0]:
            return FlowRecords(
                self._out_I[:n].copy(), self._out_F[:n].copy(), self._out_K[:n].copy()
            )
        # A mostly full buffer is handed over as it is and replaced: fresh pages cost
        # less than copying tens of megabytes.
        out = FlowRecords(self._out_I[:n], self._out_F[:n], self._out_K[:n])
        rows = self._out_I.shape[0]
        self._out_I = np.empty((rows, I_NCOLS), dtype=np.int64)
        self._out_F = np.empty((rows, F_NCOLS), dtype=np.float64)
        self._out_K = np.empty((rows, K_NCOLS), dtype=np.uint64)
        return out

    def update(self, batch: DecodedBatch) -> Iterator[FlowRecords]:
        """Add an already decoded batch; yields the flows that finished meanwhile."""
        yield from self._run(
            len(batch),
            lambda start: kern.meter_decoded(
                batch.fields, batch.addr, start, self._I, self._F, self._K, self._index,
                self._prev, self._next, self._meta, self._params, self._counters, self._frag,
                self._out_I, self._out_F, self._out_K,
            ),
        )  # fmt: skip

    def update_raw(self, batch: PacketBatch, *, hold: bool = False) -> Iterator[FlowRecords]:
        """Decode and meter a raw batch in one compiled pass (the fast path).

        Skipped packets are counted by reason in :attr:`status_counts`. With
        ``hold=True`` finished flows stay in the output buffer until it is full (or
        :meth:`flush`/:meth:`take`), so offline extraction gets a few large chunks
        instead of many small ones.
        """
        yield from self._run(
            len(batch),
            lambda start: kern.meter_raw(
                batch.data, batch.offset, batch.caplen, batch.wirelen, batch.ts_ns,
                batch.linktype, start, self.status_counts, self._row, self._addr,
                self._I, self._F, self._K, self._index, self._prev, self._next, self._meta,
                self._params, self._counters, self._frag, self._out_I, self._out_F, self._out_K,
            ),
            hold,
        )  # fmt: skip

    def _run(self, n: int, step: Callable[[int], int], hold: bool = False) -> Iterator[FlowRecords]:
        """Call a kernel until all ``n`` packets are in; drain output and grow as it asks."""
        start = 0
        while start < n:
            start = step(start)
            # The kernel returns early only when the output needs room or the table
            # needs to grow; draining then is what lets it continue.
            if not hold or start < n:
                out = self._drain()
                if out is not None:
                    yield out
            if self._meta[kern.M_FREE] < 0 and self._cap < self.config.max_flows:
                self._grow(2 * self._cap)

    def take(self) -> FlowRecords | None:
        """Finished flows held back by ``hold=True`` (None if there are none)."""
        return self._drain()

    def expire(self, now_ns: int) -> Iterator[FlowRecords]:
        """Close flows idle at ``now_ns`` (live capture calls this on a timer)."""
        yield from self._until_done(
            lambda: kern.expire_idle(
                now_ns, self._I, self._F, self._K, self._index, self._prev, self._next,
                self._meta, self._params, self._out_I, self._out_F, self._out_K,
            )
        )  # fmt: skip

    def flush(self) -> Iterator[FlowRecords]:
        """Close every open flow with reason ``eof`` (end of the input)."""
        yield from self._until_done(
            lambda: kern.flush_all(
                self._I, self._F, self._K, self._index, self._prev, self._next, self._meta,
                self._out_I, self._out_F, self._out_K,
            )
        )  # fmt: skip

    def _until_done(self, step: Callable[[], bool]) -> Iterator[FlowRecords]:
        """Run a kernel that stops when the output is full, draining until it finishes."""
        while True:
            done = step()
            out = self._drain()
            if out is not None:
                yield out
            if done:
                return

    @property
    def stats(self) -> MeterStats:
        c = self._counters
        return MeterStats(
            packets=int(c[kern.C_PACKETS]),
            flows=int(c[kern.C_FLOWS]),
            evicted=int(c[kern.C_EVICTED]),
            ts_backwards=int(c[kern.C_TS_BACKWARDS]),
            orphan_fragments=int(c[kern.C_ORPHAN_FRAGS]),
            fragments=int(c[kern.C_FRAGMENTS]),
            open_flows=int(self._meta[kern.M_ACTIVE]),
            peak_open_flows=int(self._meta[kern.M_PEAK]),
            table_capacity=self._cap,
        )
