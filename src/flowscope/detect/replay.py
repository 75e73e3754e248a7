"""Replay a table of finished flows as the live sensor would have delivered it.

Measuring detection delays needs the order and the moments at which the sensor sees
flow records, which a flow table written after the fact no longer shows. This module
rebuilds them, in capture time, in ticks of ``tick_s``:

- a finished record arrives when the meter releases it: ``close_grace_s`` after its
  last packet when it ended by FIN/RST (or eviction, or an active-timeout split), the
  idle timeout after its last packet when it ended idle, and at the end for ``eof``;
- with ``snapshots=True``, every tick in which a flow received packets before it was
  released also delivers a snapshot (``active = True``). Flows only keep their final
  counters, so a snapshot's packets and bytes are the final ones scaled by the share of
  the flow's duration elapsed (at least one forward packet), its ``last_seen`` is the
  tick time, and its flags are the final flags — an approximation good enough for
  delays, but not a substitute for the meter's own snapshots.

Everything is vectorised; the only loop is over ticks that have rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from flowscope.detect.frame import REQUIRED_COLUMNS

_NS = 1_000_000_000
OPTIONAL_COLUMNS = ("fwd_ip_bytes", "bwd_ip_bytes", "icmp_type")
_SCALED = ("fwd_packets", "bwd_packets", "fwd_bytes", "bwd_bytes", "fwd_ip_bytes", "bwd_ip_bytes")


def release_times(
    table: pa.Table, idle_timeout_s: float = 120.0, close_grace_s: float = 1.0
) -> np.ndarray:
    """When the meter hands over each finished flow (ns, capture time)."""
    last = table.column("last_seen").to_numpy()
    if "end_reason" not in table.column_names:
        return last + int(close_grace_s * _NS)
    reason = table.column("end_reason").to_numpy(zero_copy_only=False).astype(str)
    end = int(last.max()) if len(last) else 0
    return np.where(
        reason == "idle",
        last + int(idle_timeout_s * _NS),
        np.where(reason == "eof", end, last + int(close_grace_s * _NS)),
    ).astype(np.int64)


def replay(
    table: pa.Table,
    *,
    tick_s: float = 1.0,
    snapshots: bool = True,
    idle_timeout_s: float = 120.0,
    close_grace_s: float = 1.0,
) -> Iterator[tuple[int, pa.Table]]:
    """Yield (tick time in ns, batch) in capture-time order."""
    n = table.num_rows
    if n == 0:
        return
    released = release_times(table, idle_timeout_s=idle_timeout_s, close_grace_s=close_grace_s)
    cols = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in table.column_names]
    table = table.select(cols)
    tick = int(tick_s * _NS)
    first = table.column("first_seen").to_numpy()
    last = table.column("last_seen").to_numpy()
    t0 = int(first.min()) // tick * tick
    fin_tick = -(-(released - t0) // tick)  # ceil: first tick at or after release
    parts_idx = [np.arange(n)]
    parts_tick = [fin_tick]
    parts_active = [np.zeros(n, dtype=bool)]
    if snapshots:
        k0 = -(-(first - t0) // tick)
        k1 = np.minimum(-(-(last - t0) // tick), fin_tick - 1)
        count = np.maximum(k1 - k0 + 1, 0)
        rep = np.repeat(np.arange(n), count)
        off = np.arange(len(rep)) - np.repeat(np.cumsum(count) - count, count)
        parts_idx.append(rep)
        parts_tick.append(k0[rep] + off)
        parts_active.append(np.ones(len(rep), dtype=bool))
    idx = np.concatenate(parts_idx)
    ticks = np.concatenate(parts_tick)
    active = np.concatenate(parts_active)
    order = np.lexsort((active, ticks))  # per tick: finished records first
    idx, ticks, active = idx[order], ticks[order], active[order]
    rows = table.take(pa.array(idx))
    at = t0 + ticks * tick
    # Snapshot counters: final ones scaled by the elapsed share of the flow's duration.
    f, l_ = first[idx], last[idx]
    share = np.where(l_ > f, np.clip((at - f) / np.maximum(l_ - f, 1), 0.0, 1.0), 1.0)
    share = np.where(active, share, 1.0)
    new_cols = {}
    for name in _SCALED:
        if name not in rows.column_names:
            continue
        original = rows.column(name).to_numpy()
        v = original.astype(np.float64)
        scaled = np.rint(v * share)
        if name == "fwd_packets":
            scaled = np.maximum(scaled, np.minimum(v, 1.0))
        new_cols[name] = pa.array(scaled.astype(original.dtype))
    new_cols["last_seen"] = pa.array(np.where(active, np.minimum(l_, at), l_))
    for name, col in new_cols.items():
        rows = rows.set_column(rows.column_names.index(name), name, col)
    rows = rows.append_column("active", pa.array(active))
    bounds = np.flatnonzero(np.r_[True, ticks[1:] != ticks[:-1], True])
    for a, b in itertools.pairwise(bounds):
        yield int(at[a]), rows.slice(int(a), int(b - a))
