"""Sliding windows in capture time, for many keys at once, in bounded memory.

A detector asks questions such as "how many half-open flows reached this host in any
10 seconds?" or "how many distinct ports did this source probe on that host in any
60 seconds?". :class:`WindowStore` answers them for all keys of a batch with a few
sorts, never a Python loop per flow or per key.

Time is cut into buckets of ``window / n_buckets``; a window is ``n_buckets``
consecutive buckets, so it slides in steps of one bucket. Each flow contributes to
the bucket of its own timestamp (capture time, never the wall clock), so flows that
arrive late — the meter reports a flow only when it ends, up to its idle timeout later —
still land in the window where they happened. The store keeps one row per (key,
bucket, items) with summed values: ``values[:, 0]`` is the *weight* (how many
qualifying flows), the other columns are sums the rule needs (packets, bytes, totals for
ratios); ``items`` are the columns counted as distinct values (ports, hosts,
sources), counted only on rows whose weight is positive.

Evaluating a window is an interval sweep: a row at bucket ``b`` is inside the windows
that end at ``b … b + n − 1``, so it adds +v at ``b`` and −v at ``b + n``; a cumulative
sum over events sorted by (key, time) gives every window's total. A distinct value is
counted in a window if its most recent occurrence up to the window's end lies inside
it, so an occurrence counts from its bucket until the next occurrence or the window
length, whichever is first — the same sweep again. Windows are evaluated at the
buckets that hold rows (a count only rises where a row is) and only where this batch
changed something.

Bounded state: rows older than ``retention`` behind the newest capture time are
dropped; beyond ``max_keys`` keys the least recently active keys go; beyond
``max_rows`` rows the oldest buckets go. Both evictions are counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from flowscope.detect.hashing import combine

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
U64 = npt.NDArray[np.uint64]
B = npt.NDArray[np.bool_]

_FAR = np.int64(1 << 40)  # "no next occurrence" (in buckets; far beyond any window)


def is_evidence(values: F64) -> B:
    """Rows that add flows (column 0) or evidence packets (column 1) to an incident.

    A volume rule spreads a flow's packets over the buckets it spans in rows of their
    own (weight 0), and a newer record of a counted flow adds only its growth: those
    rows are evidence too. An alert's time span must come from the same rows as its
    totals, or it can open with packets counted and no first/last seen."""
    return (values[:, 0] > 0) | (values[:, 1] > 0)


@dataclass(slots=True)
class Contributions:
    """What one rule takes from one batch: signed rows to add to its windows."""

    key: U64  # detection key (e.g. hash of the victim address)
    incident: U64  # incident key: which alert the row belongs to (a function of key)
    bucket: I64  # bucket index (capture time // bucket_ns)
    values: F64  # (n, m); column 0 = weight: qualifying flows (signed)
    items: U64  # (n, d) values counted as distinct
    t_first: I64  # the flow's first_seen (ns)
    t_last: I64  # the flow's last_seen (ns)
    row: I64  # row of the frame the contribution came from

    def __len__(self) -> int:
        return int(self.key.shape[0])

    def take(self, idx: npt.ArrayLike) -> Contributions:
        i = np.asarray(idx)
        return Contributions(
            self.key[i], self.incident[i], self.bucket[i], self.values[i], self.items[i],
            self.t_first[i], self.t_last[i], self.row[i],
        )  # fmt: skip


@dataclass(slots=True)
class WindowStats:
    """Window totals at the anchors (window ends) a batch touched."""

    key: U64
    incident: U64
    bucket: I64  # the window's last bucket
    sums: F64  # (n, m)
    distinct: F64  # (n, d)

    def __len__(self) -> int:
        return int(self.key.shape[0])


@dataclass(slots=True)
class _Rows:
    rid: U64  # hash of (key, bucket, items): the store is sorted by it
    key: U64
    incident: U64
    bucket: I64
    values: F64
    items: U64
    t_first: I64
    t_last: I64

    def __len__(self) -> int:
        return int(self.rid.shape[0])

    def take(self, idx: npt.ArrayLike) -> _Rows:
        i = np.asarray(idx)
        return _Rows(
            self.rid[i], self.key[i], self.incident[i], self.bucket[i], self.values[i],
            self.items[i], self.t_first[i], self.t_last[i],
        )  # fmt: skip

    @staticmethod
    def concat(a: _Rows, b: _Rows) -> _Rows:
        return _Rows(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in _Rows.__slots__))


class WindowStore:
    """Per-key sliding-window sums and distinct counts for one rule."""

    def __init__(
        self,
        *,
        window_ns: int,
        n_buckets: int,
        retention_ns: int,
        n_values: int,
        n_items: int,
        max_keys: int,
        max_rows: int,
    ) -> None:
        if n_buckets < 1 or window_ns < n_buckets:
            raise ValueError("a window needs at least one bucket of at least 1 ns")
        self.n_buckets = n_buckets
        self.bucket_ns = window_ns // n_buckets
        self.retention_buckets = max(n_buckets, -(-retention_ns // self.bucket_ns)) + 1
        self.n_values = n_values
        self.n_items = n_items
        self.max_keys = max_keys
        self.max_rows = max_rows
        self._rows = _Rows(
            np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.uint64),
            np.zeros(0, np.int64), np.zeros((0, n_values)), np.zeros((0, n_items), np.uint64),
            np.zeros(0, np.int64), np.zeros(0, np.int64),
        )  # fmt: skip
        self.evicted_keys = 0
        self.evicted_rows = 0

    # ------------------------------------------------------------------ sizes
    @property
    def rows(self) -> int:
        return len(self._rows)

    @property
    def keys(self) -> int:
        return int(np.unique(self._rows.key).shape[0])

    def has_keys(self, keys: U64) -> B:
        """Which of ``keys`` the store holds rows for."""
        return np.isin(keys, self._rows.key)

    # ------------------------------------------------------------------ adding
    def add(self, c: Contributions) -> Contributions:
        """Merge a batch's rows; returns them aggregated per (key, bucket, items)."""
        if len(c) == 0:
            return c
        rid = combine(c.key, c.bucket, *(c.items[:, j] for j in range(self.n_items)))
        order = np.argsort(rid, kind="stable")
        rid_s = rid[order]
        start = np.flatnonzero(np.r_[True, rid_s[1:] != rid_s[:-1]])
        first = order[start]
        new = _Rows(
            rid_s[start],
            c.key[first],
            c.incident[first],
            c.bucket[first],
            np.add.reduceat(c.values[order], start, axis=0),
            c.items[first],
            np.minimum.reduceat(c.t_first[order], start),
            np.maximum.reduceat(c.t_last[order], start),
        )
        st = self._rows
        if len(st):
            pos = np.minimum(np.searchsorted(st.rid, new.rid), len(st) - 1)
            hit = st.rid[pos] == new.rid
            if hit.any():
                p = pos[hit]
                st.values[p] += new.values[hit]
                st.t_first[p] = np.minimum(st.t_first[p], new.t_first[hit])
                st.t_last[p] = np.maximum(st.t_last[p], new.t_last[hit])
            fresh = new.take(np.flatnonzero(~hit))
        else:
            fresh = new
        if len(fresh):
            merged = _Rows.concat(st, fresh)
            self._rows = merged.take(np.argsort(merged.rid, kind="stable"))
        return Contributions(
            new.key, new.incident, new.bucket, new.values, new.items, new.t_first, new.t_last,
            np.full(len(new), -1, dtype=np.int64),
        )  # fmt: skip

    # ------------------------------------------------------------------ windows
    def evaluate(self, touched: Contributions) -> WindowStats:
        """Window totals at every anchor whose window contains a bucket of ``touched``."""
        st = self._rows
        n_v, n_d, nb = self.n_values, self.n_items, self.n_buckets
        if len(touched) == 0 or len(st) == 0:
            return WindowStats(
                np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.int64),
                np.zeros((0, n_v)), np.zeros((0, n_d)),
            )  # fmt: skip
        sel = np.flatnonzero(np.isin(st.key, touched.key))
        rows = st.take(sel)
        keys, kid = np.unique(rows.key, return_inverse=True)
        t_kid = np.searchsorted(keys, touched.key)
        # Anchors: buckets holding a row, where a touched bucket lies in the window.
        b0 = int(rows.bucket.min())
        span = np.int64(int(rows.bucket.max()) - b0 + 1)
        a_code = np.unique(kid.astype(np.int64) * span + (rows.bucket - b0))
        a_kid = a_code // span
        a_bucket = a_code - a_kid * span + b0
        hit = _interval_sums(
            t_kid, touched.bucket, touched.bucket + nb, np.ones((len(touched), 1)), a_kid, a_bucket
        )[:, 0]
        keep = hit > 0.5
        a_kid, a_bucket = a_kid[keep], a_bucket[keep]
        sums = _interval_sums(kid, rows.bucket, rows.bucket + nb, rows.values, a_kid, a_bucket)
        distinct = np.zeros((len(a_kid), n_d))
        w = rows.values[:, 0] > 0.5
        for j in range(n_d if w.any() else 0):
            d_kid, d_item, d_b = kid[w], rows.items[w, j], rows.bucket[w]
            order = np.lexsort((d_b, d_item, d_kid))
            d_kid, d_item, d_b = d_kid[order], d_item[order], d_b[order]
            same = (d_kid[1:] == d_kid[:-1]) & (d_item[1:] == d_item[:-1])
            uniq = np.r_[True, ~same | (d_b[1:] != d_b[:-1])]
            d_kid, d_item, d_b = d_kid[uniq], d_item[uniq], d_b[uniq]
            same = np.r_[(d_kid[1:] == d_kid[:-1]) & (d_item[1:] == d_item[:-1]), False]
            nxt = np.where(same, np.r_[d_b[1:], 0], _FAR)
            end = np.minimum(nxt, d_b + nb)
            distinct[:, j] = _interval_sums(
                d_kid, d_b, end, np.ones((len(d_kid), 1)), a_kid, a_bucket
            )[:, 0]
        # The incident of an anchor: any row of its key carries it.
        key_incident = np.zeros(len(keys), dtype=np.uint64)
        key_incident[kid] = rows.incident
        return WindowStats(keys[a_kid], key_incident[a_kid], a_bucket, sums, np.rint(distinct))

    def _since(self, incidents: U64, min_bucket: I64) -> B:
        """Rows of ``incidents`` (sorted) at or after each one's ``min_bucket``."""
        st = self._rows
        pos = np.minimum(np.searchsorted(incidents, st.incident), len(incidents) - 1)
        return (incidents[pos] == st.incident) & (st.bucket >= min_bucket[pos])

    def incident_rows(self, incidents: U64, min_bucket: I64) -> tuple[U64, F64, I64, I64]:
        """Per incident (``incidents`` sorted, unique): summed values, first and last flow
        time of the retained rows from ``min_bucket`` on — an alert's totals when it
        opens."""
        st = self._rows
        mask = self._since(incidents, min_bucket)
        uniq, inv = np.unique(st.incident[mask], return_inverse=True)
        sums = np.zeros((len(uniq), self.n_values))
        np.add.at(sums, inv, st.values[mask])
        ev = is_evidence(st.values[mask])
        t_first = np.full(len(uniq), np.iinfo(np.int64).max, dtype=np.int64)
        t_last = np.full(len(uniq), np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(t_first, inv[ev], st.t_first[mask][ev])
        np.maximum.at(t_last, inv[ev], st.t_last[mask][ev])
        return uniq, sums, t_first, t_last

    def incident_items(self, incidents: U64, min_bucket: I64) -> tuple[U64, U64]:
        """(incident, items) of the retained weight rows, as for incident_rows."""
        st = self._rows
        # Items sit on the weight rows only (a volume rule's spread rows carry none).
        mask = self._since(incidents, min_bucket) & (st.values[:, 0] > 0)
        return st.incident[mask], st.items[mask]

    # ------------------------------------------------------------------ bounds
    def expire(self, now_ns: int) -> None:
        """Drop rows outside the retention, empty rows, then enforce the caps."""
        st = self._rows
        if len(st) == 0:
            return
        cutoff = now_ns // self.bucket_ns - self.retention_buckets
        keep = (st.bucket >= cutoff) & (np.abs(st.values).max(axis=1) > 1e-9)
        if not keep.all():
            st = st.take(np.flatnonzero(keep))
        if len(st) > self.max_keys:
            keys, inv = np.unique(st.key, return_inverse=True)
            if len(keys) > self.max_keys:
                newest = np.full(len(keys), np.iinfo(np.int64).min, dtype=np.int64)
                np.maximum.at(newest, inv, st.bucket)
                order = np.lexsort((keys, -newest))
                alive = np.zeros(len(keys), dtype=bool)
                alive[order[: self.max_keys]] = True
                self.evicted_keys += len(keys) - self.max_keys
                st = st.take(np.flatnonzero(alive[inv]))
        if len(st) > self.max_rows:
            order = np.lexsort((st.rid, -st.bucket))
            alive = np.zeros(len(st), dtype=bool)
            alive[order[: self.max_rows]] = True
            self.evicted_rows += len(st) - self.max_rows
            st = st.take(np.flatnonzero(alive))
        self._rows = st


def _interval_sums(kid: I64, start: I64, end: I64, values: F64, a_kid: I64, a_t: I64) -> F64:
    """For each anchor (a_kid, a_t): the sum of ``values`` of rows of the same key
    whose interval [start, end) contains a_t. One sort and one cumulative sum."""
    out = np.zeros((len(a_kid), values.shape[1]))
    if len(kid) == 0 or len(a_kid) == 0:
        return out
    lo = min(int(start.min()), int(a_t.min()))
    hi = max(int(end.max()), int(a_t.max()))
    span = np.int64(hi - lo + 2)
    k = kid.astype(np.int64) * span
    codes = np.concatenate([k + (start - lo), k + (end - lo)])
    ev = np.concatenate([values, -values])
    order = np.argsort(codes, kind="stable")
    codes = codes[order]
    cum = np.cumsum(ev[order], axis=0)
    q = a_kid.astype(np.int64) * span + (a_t - lo)
    pos = np.searchsorted(codes, q, side="right") - 1
    ok = pos >= 0
    out[ok] = cum[pos[ok]]
    # Earlier keys' events cancel exactly in exact arithmetic; subtract what rounding
    # left of them so a key's sums start from zero.
    first_of_key = np.searchsorted(codes, a_kid.astype(np.int64) * span, side="left") - 1
    has_prev = first_of_key >= 0
    out[has_prev] -= cum[first_of_key[has_prev]]
    return out
