"""The 19 KDD traffic features: a 2-second window and a 100-connection window.

Lee & Stolfo's traffic features describe a connection by the connections that came
just before it: those that started in the previous 2 seconds (``count`` ...
``srv_diff_host_rate``) and the last 100 connections (``dst_host_*``). Within each
window, "same host" means the same destination address, "same service" the same
destination port (ICMP: the same KDD service). Each window includes the connection
itself, as NSL-KDD's rows show (a connection alone in its window has count 1 and a
serror_rate equal to its own SYN-error state).

Definitions (H = window connections to the same host, S = to the same service):

- ``count`` = |H|, ``srv_count`` = |S| (time window); ``dst_host_count``,
  ``dst_host_srv_count`` the same over the connection window;
- ``*serror_rate`` / ``*rerror_rate``: share of H (or S for ``srv_``) whose state is a
  SYN error / a reject (see :data:`flowscope.kdd.vocab.SERROR_FLAGS`);
- ``same_srv_rate``: share of H to the same service (port);
- ``diff_srv_rate``: share of H whose KDD *service name* differs. NSL-KDD needs both
  readings: SYN-flood rows (neptune, many ports all named ``private``) have
  same_srv_rate ≈ 0.10 *and* diff_srv_rate ≈ 0.07, which only fits if "same" compares
  ports and "different" compares names;
- ``srv_diff_host_rate``: share of S going to other hosts;
- ``dst_host_same_src_port_rate``: share of H from the same source port (NSL-KDD rows
  with dst_host_count = 1 all have 1.0, so the denominator is H);
- ``dst_host_srv_diff_host_rate``: share of S going to other hosts.

Counts are capped as in the data (511 for the time window, 255 for the connection
window) and rates rounded to two decimals, as in the files.

Order and state. Connections are ordered by start time (``first_seen``). A live sensor
learns of a flow only when it ends, so a batch may hold flows that started before
flows already classified; each new flow is placed at its start time among all
connections still remembered, and sees the window as it is then. Flows classified
earlier are not revised. The memory is bounded: connections are kept while they
started within ``retention_s`` of the newest one (default 125 s, longer than the idle
timeout after which the last flows of a scan or flood are reported), and at most
``max_history`` of them; the last ``host_window`` are always kept.

Everything is vectorised: per key (host, service, ...) one stable sort groups the
connections in time order, and window counts are differences of positions found by
binary search, window sums differences of cumulative sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]

TIME_CAP = 511
HOST_CAP = 255


def _mix(a: U64, b: U64) -> U64:
    """Combine two 64-bit keys (splitmix64 finaliser over a·φ + b); wraps on overflow."""
    with np.errstate(over="ignore"):
        h = a * np.uint64(0x9E3779B97F4A7C15) + b
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


def address_keys(addresses: pa.Array | pa.ChunkedArray) -> U64:
    """64-bit hash of each textual address (equal text, equal key), vectorised.

    The text (at most 39 characters for IPv6) is packed into five 64-bit words and the
    words folded with :func:`_mix`. A collision needs two addresses among those in the
    window to share a 64-bit hash.
    """
    text = np.asarray(addresses.to_numpy(zero_copy_only=False), dtype="S40")
    words = np.ascontiguousarray(text).view(np.uint64).reshape(len(text), 5)
    h = np.full(len(text), 0x5BD1E995, np.uint64)
    for j in range(5):
        h = _mix(h, words[:, j])
    return h


@dataclass
class Connections:
    """The window-relevant part of a batch of connections (arrays of equal length)."""

    ts: I64  # start time, ns
    host: U64  # destination address key
    srv: U64  # service key: protocol and destination port (ICMP: protocol and service)
    svc: I64  # KDD service code (for diff_srv_rate)
    sport: I64  # source port
    serror: npt.NDArray[np.bool_]
    rerror: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def take(self, idx: npt.NDArray[np.integer] | slice) -> Connections:
        return Connections(
            self.ts[idx],
            self.host[idx],
            self.srv[idx],
            self.svc[idx],
            self.sport[idx],
            self.serror[idx],
            self.rerror[idx],
        )

    @staticmethod
    def concat(parts: list[Connections]) -> Connections:
        return Connections(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("ts", "host", "srv", "svc", "sport", "serror", "rerror")
            )
        )

    @staticmethod
    def empty() -> Connections:
        z = np.zeros(0, np.int64)
        u = np.zeros(0, np.uint64)
        b = np.zeros(0, np.bool_)
        return Connections(z, u, u, z, z, b, b)


class _Grouped:
    """Connections grouped by one key, in time order within each group.

    ``count(q, lo)`` = connections with the same key as position q among global
    positions [lo, q]; ``total(b, q, lo)`` = how many of them have ``b`` set.
    """

    def __init__(self, key: U64) -> None:
        n = key.shape[0]
        self.n = n
        order = np.argsort(key, kind="stable")  # stable: time order within a key
        ks = key[order]
        rank_sorted = np.zeros(n, np.int64)
        if n > 1:
            rank_sorted[1:] = np.cumsum(ks[1:] != ks[:-1])
        self.rank = np.empty(n, np.int64)
        self.rank[order] = rank_sorted
        self.order = order
        self.comp = rank_sorted * n + order  # ascending: (rank, position)

    def bounds(self, q: I64, lo: I64) -> tuple[I64, I64]:
        base = self.rank[q] * self.n
        a = np.searchsorted(self.comp, base + lo, side="left")
        b = np.searchsorted(self.comp, base + q, side="right")
        return a.astype(np.int64), b.astype(np.int64)

    def count(self, q: I64, lo: I64) -> F64:
        a, b = self.bounds(q, lo)
        return (b - a).astype(np.float64)

    def total(self, flag: npt.NDArray[np.bool_], q: I64, lo: I64) -> F64:
        a, b = self.bounds(q, lo)
        cs = np.zeros(self.n + 1, np.int64)
        np.cumsum(flag[self.order], out=cs[1:])
        return (cs[b] - cs[a]).astype(np.float64)


def _rate(num: F64, den: F64) -> F64:
    return np.asarray(
        np.round(np.divide(num, den, out=np.zeros_like(num), where=den > 0), 2), np.float64
    )


class TrafficWindows:
    """Stateful computer of the 19 traffic features (time window, then host window).

    Call :meth:`update` with each batch of connections in any order; the result rows
    are aligned with the batch. The state continues across calls as in a live sensor.
    """

    def __init__(
        self,
        time_window_s: float = 2.0,
        host_window: int = 100,
        retention_s: float = 125.0,
        max_history: int = 500_000,
    ) -> None:
        if time_window_s <= 0 or host_window < 1 or retention_s < time_window_s:
            raise ValueError("windows must be positive and retention at least the time window")
        self.window_ns = int(time_window_s * 1e9)
        self.host_window = int(host_window)
        self.retention_ns = int(retention_s * 1e9)
        self.max_history = max(int(max_history), self.host_window)
        self.history = Connections.empty()  # sorted by start time

    def reset(self) -> None:
        """Forget all connections (e.g. between two unrelated captures)."""
        self.history = Connections.empty()

    def update(self, new: Connections) -> F64:
        """Traffic features (n × 19, float64) for ``new``; remembers the connections."""
        n = len(new)
        out = np.zeros((n, 19), np.float64)
        if n == 0:
            return out
        perm = np.argsort(new.ts, kind="stable")
        batch = new.take(perm)
        hist = self.history
        t0 = int(batch.ts[0])
        lo_time = int(np.searchsorted(hist.ts, t0 - self.window_ns, side="left"))
        before = int(np.searchsorted(hist.ts, t0, side="right"))
        lo = max(0, min(lo_time, before - (self.host_window - 1)))
        both = Connections.concat([hist.take(slice(lo, None)), batch])
        order = np.argsort(both.ts, kind="stable")  # history first among equal times
        c = both.take(order)
        is_new = order >= len(hist) - lo
        q = np.flatnonzero(is_new).astype(np.int64)  # positions of batch rows, in order
        lo_t = np.searchsorted(c.ts, c.ts[q] - self.window_ns, side="left").astype(np.int64)
        lo_h = np.maximum(q - (self.host_window - 1), 0)

        host = _Grouped(c.host)
        srv = _Grouped(c.srv)
        host_srv = _Grouped(_mix(c.host, c.srv))
        host_svc = _Grouped(_mix(c.host, c.svc.astype(np.uint64) + np.uint64(1 << 40)))
        host_sport = _Grouped(_mix(c.host, c.sport.astype(np.uint64) + np.uint64(1 << 41)))

        res = np.empty((n, 19), np.float64)
        # time window (2 s)
        cnt = host.count(q, lo_t)
        scnt = srv.count(q, lo_t)
        hs = host_srv.count(q, lo_t)
        res[:, 0] = np.minimum(cnt, TIME_CAP)
        res[:, 1] = np.minimum(scnt, TIME_CAP)
        res[:, 2] = _rate(host.total(c.serror, q, lo_t), cnt)
        res[:, 3] = _rate(srv.total(c.serror, q, lo_t), scnt)
        res[:, 4] = _rate(host.total(c.rerror, q, lo_t), cnt)
        res[:, 5] = _rate(srv.total(c.rerror, q, lo_t), scnt)
        res[:, 6] = _rate(hs, cnt)
        res[:, 7] = _rate(cnt - host_svc.count(q, lo_t), cnt)
        res[:, 8] = _rate(scnt - hs, scnt)
        # connection window (last host_window connections)
        cnt = host.count(q, lo_h)
        scnt = srv.count(q, lo_h)
        hs = host_srv.count(q, lo_h)
        res[:, 9] = np.minimum(cnt, HOST_CAP)
        res[:, 10] = np.minimum(scnt, HOST_CAP)
        res[:, 11] = _rate(hs, cnt)
        res[:, 12] = _rate(cnt - host_svc.count(q, lo_h), cnt)
        res[:, 13] = _rate(host_sport.count(q, lo_h), cnt)
        res[:, 14] = _rate(scnt - hs, scnt)
        res[:, 15] = _rate(host.total(c.serror, q, lo_h), cnt)
        res[:, 16] = _rate(srv.total(c.serror, q, lo_h), scnt)
        res[:, 17] = _rate(host.total(c.rerror, q, lo_h), cnt)
        res[:, 18] = _rate(srv.total(c.rerror, q, lo_h), scnt)

        out[perm] = res
        self._remember(hist, batch)
        return out

    def _remember(self, hist: Connections, batch: Connections) -> None:
        merged = Connections.concat([hist, batch])
        merged = merged.take(np.argsort(merged.ts, kind="stable"))
        m = len(merged)
        newest = int(merged.ts[-1])
        start = int(np.searchsorted(merged.ts, newest - self.retention_ns, side="left"))
        start = min(start, max(0, m - self.host_window))
        start = max(start, m - self.max_history)
        self.history = merged.take(slice(start, None))
