"""FlowMeter: the one flow engine behind `flowscope flows`, training data and live capture.

It owns the flow table (numpy arrays updated by the compiled kernel) and hands back
finished flows as :class:`FlowRecords` — raw accumulators that
:func:`flowscope.flows.features.compute_features` turns into feature columns.
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from flowscope.capture._pcap import ST_FULL
from flowscope.capture.batch import PacketBatch
from flowscope.capture.files import PcapRecords
from flowscope.decode import DecodedBatch
from flowscope.decode import layout as L
from flowscope.flows import _kernel as kern
from flowscope.flows.state import F_NCOLS, I_NCOLS, K_NCOLS

_NS = 1_000_000_000


def _column_buffer(rows: int, cols: int, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """A rows × cols array stored column by column, columns one cache line apart.

    With a power-of-two number of rows every column would start at the same offset
    modulo 4 KiB, so the cache lines a finished flow writes (one per column) would all
    compete for the same cache set and evict each other. The memory is mapped without
    transparent huge pages: the first finished flow touches every column, which with
    2 MiB pages would fault in (and zero) the whole buffer at once.
    """
    item = np.dtype(dtype).itemsize
    size = (rows + 8) * cols * item
    try:
        mem = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
        with contextlib.suppress(AttributeError, OSError):
            mem.madvise(mmap.MADV_NOHUGEPAGE)
        flat = np.frombuffer(mem, dtype=dtype)
    except (OSError, ValueError):  # no anonymous mappings here: any memory will do
        flat = np.empty((rows + 8) * cols, dtype=dtype)
    return flat.reshape((rows + 8, cols), order="F")[:rows]


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
    """Flows as raw accumulators (rows of the state matrices).

    Finished flows, or with ``active=True`` snapshots of open flows
    (:meth:`FlowMeter.snapshot`, end reason ``running``): the feature table of those
    gets an ``active`` column, which tells the rule engine to treat each row as the
    latest state of a flow it may see again, not as one more flow.
    """

    I: npt.NDArray[np.int64]
    F: npt.NDArray[np.float64]
    K: npt.NDArray[np.uint64]
    active: bool = False

    def __len__(self) -> int:
        return int(self.I.shape[0])

    @classmethod
    def concat(cls, parts: list[FlowRecords]) -> FlowRecords:
        """One set of records; snapshots and finished flows must not be mixed."""
        if not parts:
            return cls(
                np.zeros((0, I_NCOLS), np.int64),
                np.zeros((0, F_NCOLS), np.float64),
                np.zeros((0, K_NCOLS), np.uint64),
            )
        if len(parts) == 1:
            return parts[0]
        active = {p.active for p in parts}
        if len(active) > 1:
            raise ValueError("cannot concatenate snapshots with finished flows")
        return cls(
            np.concatenate([p.I for p in parts]),
            np.concatenate([p.F for p in parts]),
            np.concatenate([p.K for p in parts]),
            active.pop(),
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

    _MIN_INDEX = 1024  # open flows the first hash table is sized for
    _RESERVE = 1 << 20  # most slots reserved at once (address space, not memory)

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
        # Finished flows are written column by column (features read whole columns) into
        # one output buffer that lives as long as the meter: fresh buffers of this size
        # cost more in page faults than the copy that hands rows over (see _drain).
        rows = self.config.output_rows
        self._out_I = _column_buffer(rows, I_NCOLS, np.int64)
        self._out_F = _column_buffer(rows, F_NCOLS, np.float64)
        self._out_K = _column_buffer(rows, K_NCOLS, np.uint64)
        self._ring = np.zeros((kern.RING, L.DEC_NCOLS), dtype=np.int64)
        self._ring_a = np.zeros((kern.RING, L.ADDR_NCOLS), dtype=np.uint64)
        self._ring_h = np.zeros(kern.RING, dtype=np.int64)
        self._walk = np.zeros((kern.WALK_RING, kern.W_NCOLS), dtype=np.int64)
        self.status_counts = np.zeros(L.SKIP_NCODES, dtype=np.int64)
        """Packets by decode status (index = code) seen by :meth:`update_raw`."""
        # The flow table is reserved whole (up to _RESERVE slots) but zero-filled lazily
        # by the OS: a page costs memory only once a slot on it is first used, and slots
        # are used in order and recycled before new ones (see _new_flow), so memory
        # follows the peak number of open flows. Growing by copying instead would fault
        # in every page twice, which costs more than metering on some machines.
        cap = min(self.config.max_flows, self._RESERVE)
        while True:
            try:  # (the last kern.STAGE rows stage finished flows, see kern._finish)
                self._I = np.zeros((cap + kern.STAGE, I_NCOLS), dtype=np.int64)
                self._F = np.zeros((cap + kern.STAGE, F_NCOLS), dtype=np.float64)
                self._K = np.zeros((cap + kern.STAGE, K_NCOLS), dtype=np.uint64)
                break
            except MemoryError:  # address space limited (ulimit -v, strict overcommit)
                if cap <= self._MIN_INDEX:
                    raise
                cap = max(self._MIN_INDEX, cap // 16)
        self._cap = cap
        self._prev = np.zeros(cap, dtype=np.int64)
        self._next = np.zeros(cap, dtype=np.int64)
        self._index = np.zeros(1, dtype=np.int64)
        self._grow_index(min(self._MIN_INDEX, self.config.max_flows))
        self.snapshots = 0
        """Snapshots taken (:meth:`snapshot`)."""
        self.snapshot_rows = 0
        """Flow records those snapshots returned."""

    # ------------------------------------------------------------------ capacity
    def _grow_index(self, flows: int) -> None:
        """Rebuild the hash table for ``flows`` open flows (load factor at most 1/8)."""
        size = 1
        while size < 8 * flows:
            size *= 2
        self._index = np.zeros(size, dtype=np.int64)
        kern.rebuild_index(self._index, self._I, self._prev, self._next, self._meta)
        # Beyond max_flows the table never needs to grow again.
        sized_for = size // 8
        self._meta[kern.M_INDEX_CAP] = sized_for if sized_for < self.config.max_flows else 1 << 62

    def _grow_table(self) -> None:
        """Double the flow table (only when max_flows is beyond what was reserved)."""
        self._flush_stage()  # the staging rows are at the end, which moves
        old, new_cap = self._cap, min(2 * self._cap, self.config.max_flows)

        def grow2(a: np.ndarray, extra: int = 0) -> np.ndarray:
            b = np.zeros((new_cap + extra, *a.shape[1:]), dtype=a.dtype)
            b[:old] = a[:old]
            return b

        self._I = grow2(self._I, kern.STAGE)
        self._F = grow2(self._F, kern.STAGE)
        self._K = grow2(self._K, kern.STAGE)
        self._prev, self._next = grow2(self._prev), grow2(self._next)
        self._cap = new_cap
        # Slot numbers are unchanged, so the hash table stays valid.

    def _grow_as_needed(self) -> None:
        meta = self._meta
        if meta[kern.M_ACTIVE] >= meta[kern.M_INDEX_CAP]:
            self._grow_index(2 * int(meta[kern.M_INDEX_CAP]))
        no_slot = meta[kern.M_FREE] < 0 and meta[kern.M_FRESH] >= self._cap
        if no_slot and self._cap < self.config.max_flows:
            self._grow_table()

    def _flush_stage(self) -> None:
        if self._meta[kern.M_NOUT] > self._meta[kern.M_NFLUSHED]:
            kern.flush_stage(
                self._I, self._F, self._K, self._meta, self._out_I, self._out_F, self._out_K
            )

    # ------------------------------------------------------------------ driving
    def _drain(self, borrow: bool = False) -> FlowRecords | None:
        """Hand over the finished flows in the output buffer and empty it.

        Normally as copies the caller owns. ``borrow=True`` returns views of the buffer
        itself, valid only until the meter runs again (for a caller that turns them
        into a table at once, see :func:`flowscope.flows.extract.extract_capture`).
        """
        self._flush_stage()
        n = int(self._meta[kern.M_NOUT])
        if n == 0:
            return None
        self._meta[kern.M_NOUT] = 0
        self._meta[kern.M_NFLUSHED] = 0
        I, F, K = self._out_I[:n], self._out_F[:n], self._out_K[:n]
        if borrow:
            return FlowRecords(I, F, K)
        return FlowRecords(np.array(I, order="F"), np.array(F, order="F"), np.array(K, order="F"))

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

    def update_raw(
        self, batch: PacketBatch, *, hold: bool = False, borrow: bool = False
    ) -> Iterator[FlowRecords]:
        """Decode and meter a raw batch in one compiled pass (the fast path).

        Skipped packets are counted by reason in :attr:`status_counts`. With
        ``hold=True`` finished flows stay in the output buffer until it is full (or
        :meth:`flush`/:meth:`take`), so offline extraction gets a few large chunks
        instead of many small ones. ``borrow=True``: see :meth:`_drain`.
        """
        yield from self._run(
            len(batch),
            lambda start: kern.meter_raw(
                batch.data, batch.offset, batch.caplen, batch.wirelen, batch.ts_ns,
                batch.linktype, start, self.status_counts, self._ring, self._ring_a,
                self._ring_h, self._I, self._F, self._K, self._index, self._prev, self._next,
                self._meta, self._params, self._counters, self._frag, self._out_I, self._out_F,
                self._out_K,
            ),
            hold,
            borrow,
        )  # fmt: skip

    def update_pcap(
        self, recs: PcapRecords, limit: int, *, hold: bool = False, borrow: bool = False
    ) -> Iterator[FlowRecords]:
        """Walk, decode and meter the records of a mapped classic pcap (the fastest path).

        Meters the records of ``recs`` that start before byte ``limit`` and advances
        ``recs.pos``/``recs.records``; sets ``recs.stopped`` when the walk reaches the end
        of the data or a corrupt record. Results are the same as for the file's batches
        through :meth:`update_raw`; ``hold``/``borrow`` as there.
        """
        while True:
            pos, n, status, need = kern.meter_pcap(
                recs.data, recs.pos, recs.end, limit, recs.big, recs.hdr_len, recs.frac_mult,
                recs.linktype, self.status_counts, self._walk, self._ring, self._ring_a,
                self._ring_h, self._I, self._F, self._K, self._index, self._prev, self._next,
                self._meta, self._params, self._counters, self._frag, self._out_I, self._out_F,
                self._out_K,
            )  # fmt: skip
            recs.pos = int(pos)
            recs.records += int(n)
            paused = status == kern.PCAP_PAUSED
            if paused or not hold:
                out = self._drain(borrow)
                if out is not None:
                    yield out
            self._grow_as_needed()
            if not paused:
                if status != ST_FULL:
                    recs.stopped = (int(status), int(need))
                return

    def _run(
        self, n: int, step: Callable[[int], int], hold: bool = False, borrow: bool = False
    ) -> Iterator[FlowRecords]:
        """Call a kernel until all ``n`` packets are in; drain output and grow as it asks."""
        start = 0
        while start < n:
            start = step(start)
            # The kernel returns early only when the output needs room or the table
            # needs to grow; draining then is what lets it continue.
            if not hold or start < n:
                out = self._drain(borrow)
                if out is not None:
                    yield out
            self._grow_as_needed()

    def take(self, borrow: bool = False) -> FlowRecords | None:
        """Finished flows held back by ``hold=True`` (None if there are none)."""
        return self._drain(borrow)

    def expire(self, now_ns: int) -> Iterator[FlowRecords]:
        """Close flows idle at ``now_ns`` (live capture calls this on a timer)."""
        yield from self._until_done(
            lambda: kern.expire_idle(
                now_ns, self._I, self._F, self._K, self._index, self._prev, self._next,
                self._meta, self._params, self._out_I, self._out_F, self._out_K,
            )
        )  # fmt: skip

    def flush(self, borrow: bool = False) -> Iterator[FlowRecords]:
        """Close every open flow with reason ``eof`` (end of the input)."""
        yield from self._until_done(
            lambda: kern.flush_all(
                self._I, self._F, self._K, self._index, self._prev, self._next, self._meta,
                self._out_I, self._out_F, self._out_K,
            ),
            borrow,
        )  # fmt: skip

    def _until_done(self, step: Callable[[], bool], borrow: bool = False) -> Iterator[FlowRecords]:
        """Run a kernel that stops when the output is full, draining until it finishes."""
        while True:
            done = step()
            out = self._drain(borrow)
            if out is not None:
                yield out
            if done:
                return

    def snapshot(self, *, min_packets: int = 1) -> FlowRecords:
        """Records of the open flows that changed since their previous snapshot.

        A flow is included when it has at least ``min_packets`` packets and got packets
        since it was last included (a flow that just reached ``min_packets`` is
        therefore included at the next snapshot), so what a snapshot costs downstream
        (features, model, rules) follows the traffic, not the table size. The scan
        itself walks the open flows (about 3 cache lines each; docs/sensor.md gives
        the cost). Flows in their FIN/RST grace period are left out: they have ended
        and their final record follows within ``close_grace``.

        Each record holds exactly what the flow would have been had it ended with its
        last packet so far (the current active period counted, as at the end), with
        end reason ``running`` and ``active=True``. The flows themselves are not
        changed: finished flows are the same whether or not snapshots are taken.
        """
        sel = np.empty(max(1, int(self._meta[kern.M_ACTIVE])), dtype=np.int64)
        n = int(kern.snapshot_select(max(1, min_packets), self._I, self._next, self._meta, sel))
        sel = sel[:n]
        out_I = np.empty((n, I_NCOLS), np.int64)
        out_F = np.empty((n, F_NCOLS), np.float64)
        out_K = np.empty((n, K_NCOLS), np.uint64)
        if n:
            kern.snapshot_copy(sel, self._I, self._F, self._K, out_I, out_F, out_K)
        self.snapshots += 1
        self.snapshot_rows += n
        return FlowRecords(out_I, out_F, out_K, active=True)

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
