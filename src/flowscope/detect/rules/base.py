"""What a rule is: which flows it counts, under which key, and when a window matches.

A rule turns a :class:`~flowscope.detect.frame.FlowFrame` into a :class:`Selection`:
the rows it looks at, a detection key per row (e.g. the victim address), an incident
key (which alert a row belongs to), a weight (1 for a flow that is evidence, 0 for a
flow only counted as context, e.g. the denominator of a ratio), packet and byte
totals, extra sums and the values it counts as distinct. :meth:`Rule.contributions`
places them in window buckets; :meth:`Rule.check` decides, per window, whether the
thresholds are crossed and how strongly.

Count rules put a flow in the bucket of its ``first_seen`` (when the probe, guess or
connection happened). Volume rules (floods) also count packets and bytes, which a long
flow spreads over its life: they are split over the buckets between ``first_seen`` and
``last_seen`` in proportion to the overlap, so a one-hour stream does not look like a
one-bucket burst, while a single ICMP-flood flow still shows its rate. A snapshot that
follows an earlier one of the same flow, counted the same way, adds only its growth over
the time between the two, so a long flow whose rate jumps shows the jump.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from flowscope.detect.alerts import Alert, Family
from flowscope.detect.config import RuleConfig
from flowscope.detect.frame import FlowFrame
from flowscope.detect.window import Contributions, WindowStats

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
U64 = npt.NDArray[np.uint64]
B = npt.NDArray[np.bool_]

LOW, MEDIUM, HIGH, CRITICAL = 0, 1, 2, 3


def port_code(proto: I64, port: I64) -> U64:
    """(protocol, port) as one distinct value; ``code & 0xFFFF`` is the port."""
    return ((proto.astype(np.int64) << 16) | (port.astype(np.int64) & 0xFFFF)).astype(np.uint64)


@dataclass(slots=True)
class Selection:
    idx: I64  # frame rows
    key: U64
    incident: U64
    weight: F64  # 1 = evidence flow, 0 = context only
    packets: F64  # counted for evidence flows only
    bytes: F64
    extra: F64  # (n, len(extra_names))
    items: U64  # (n, len(item_names))

    def subset(self, keep: B) -> Selection:
        i = np.flatnonzero(keep)
        return Selection(
            self.idx[i], self.key[i], self.incident[i], self.weight[i], self.packets[i],
            self.bytes[i], self.extra[i], self.items[i],
        )  # fmt: skip


@dataclass(slots=True)
class Verdict:
    """Per window: thresholds crossed, strength (≥ 1 when crossed), headline value."""

    satisfied: B
    magnitude: F64
    value: F64


class Rule(ABC):
    name: ClassVar[str]
    family: ClassVar[Family]
    signature: ClassVar[str]
    signature_id: ClassVar[int]
    category: ClassVar[str]
    extra_names: ClassVar[tuple[str, ...]] = ()
    # What each distinct-count column counts: "sources", "hosts" or "ports" (port codes).
    item_names: ClassVar[tuple[str, ...]] = ()
    base_severity: ClassVar[int] = MEDIUM
    max_severity: ClassVar[int] = CRITICAL
    volume: ClassVar[bool] = False  # packets/bytes spread over the flow's life
    # Context rows (weight 0) only for keys that have evidence now or in the store.
    context_on_evidence: ClassVar[bool] = False
    flood: ClassVar[bool] = False  # many sources are reported as "spoofed/many"

    def __init__(self, config: RuleConfig) -> None:
        self.config = config

    @property
    def n_values(self) -> int:
        return 3 + len(self.extra_names)

    def column(self, name: str) -> int:
        """Index of a value column: weight, packets, bytes, then the extras."""
        return ("weight", "packets", "bytes", *self.extra_names).index(name)

    @property
    def window_text(self) -> str:
        return f"{self.config.window_s:g} s"

    # ------------------------------------------------------------------ to implement
    @abstractmethod
    def select(self, f: FlowFrame) -> Selection | None:
        """Rows this rule counts (None if none)."""

    @abstractmethod
    def check(self, st: WindowStats) -> Verdict:
        """Which windows cross the thresholds."""

    @property
    @abstractmethod
    def metric(self) -> str:
        """What the headline threshold counts (for the alert text)."""

    @property
    @abstractmethod
    def threshold(self) -> float: ...

    def message(self, a: Alert) -> str:
        return f"{self.signature}: {a.attacker} → {a.victim}"

    def family_of(self, a: Alert) -> Family:
        return self.family

    # ------------------------------------------------------------------ helpers
    def contributions(
        self, f: FlowFrame, sel: Selection, bucket_ns: int, max_buckets: int
    ) -> Contributions:
        """Signed window rows for a selection (see the module docstring)."""
        idx = sel.idx
        sign = f.sign[idx]
        first, last = f.first[idx], f.last[idx]
        weight = sel.weight * sign
        items = np.where(sel.weight[:, None] > 0, sel.items, np.uint64(0)).astype(np.uint64)
        # Packets and bytes are those of evidence flows only; extras may be context.
        evidence = (sel.weight > 0).astype(np.float64)
        volume = (
            np.column_stack([sel.packets * evidence, sel.bytes * evidence, sel.extra])
            * sign[:, None]
        )
        if not self.volume:
            values = np.column_stack([weight, volume])
            return Contributions(
                sel.key, sel.incident, first // bucket_ns, values, items, first, last, idx
            )
        # A newer record of a flow whose earlier record counted the same way (same key,
        # weight and items) adds only its growth, spread over the time between the two
        # records: a long flow whose rate jumps (all ICMP between two hosts is one flow)
        # shows the jump. Otherwise the earlier record is retracted whole and the newer
        # one spread over the flow's life.
        n = len(idx)
        where = np.full(len(f), -1, dtype=np.int64)
        where[idx] = np.arange(n)
        partner = np.where(f.pair[idx] >= 0, where[np.maximum(f.pair[idx], 0)], -1)
        p = np.maximum(partner, 0)
        merged = (
            (partner >= 0)
            & (sign > 0)
            & (sel.key == sel.key[p])
            & (sel.weight == sel.weight[p])
            & np.all(items == items[p], axis=1)
        )
        gone = np.zeros(n, dtype=bool)
        gone[partner[merged]] = True  # the retractions folded into a delta
        whole = ~merged & ~gone
        start = np.where(merged, last[p], first)
        vals = np.where(merged[:, None], volume + volume[p], volume)
        counted = np.flatnonzero(whole)
        counts = np.zeros((len(counted), self.n_values))
        counts[:, 0] = weight[counted]
        spread_rows = np.flatnonzero(whole | merged)
        rep, bucket, frac = _spread(start[spread_rows], last[spread_rows], bucket_ns, max_buckets)
        r = spread_rows[rep]
        spread = np.zeros((len(r), self.n_values))
        spread[:, 1:] = vals[r] * frac[:, None]
        zeros_items = np.zeros((len(r), items.shape[1]), dtype=np.uint64)
        return Contributions(
            np.concatenate([sel.key[counted], sel.key[r]]),
            np.concatenate([sel.incident[counted], sel.incident[r]]),
            np.concatenate([first[counted] // bucket_ns, bucket]),
            np.concatenate([counts, spread]),
            np.concatenate([items[counted], zeros_items]),
            np.concatenate([first[counted], first[r]]),
            np.concatenate([last[counted], last[r]]),
            np.concatenate([idx[counted], idx[r]]),
        )


def _spread(start: I64, end: I64, bucket_ns: int, max_buckets: int) -> tuple[I64, I64, F64]:
    """Split each interval [start, end] over the buckets it overlaps (the last
    ``max_buckets`` at most): (row of each piece, its bucket, its share)."""
    b0, b1 = start // bucket_ns, end // bucket_ns
    b0 = np.maximum(b0, b1 - (max_buckets - 1))
    span = (b1 - b0 + 1).astype(np.int64)
    rep = np.repeat(np.arange(len(start)), span)
    offset = np.arange(len(rep)) - np.repeat(np.cumsum(span) - span, span)
    bucket = b0[rep] + offset
    lo = np.maximum(start[rep], bucket * bucket_ns)
    hi = np.minimum(end[rep], (bucket + 1) * bucket_ns)
    dur = (end - start)[rep]
    frac = np.where(dur > 0, (hi - lo) / np.maximum(dur, 1), 1.0)
    return rep, bucket, frac


def ratio(num: F64, den: F64) -> F64:
    """num / den, 0 where den is 0."""
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def build_selection(
    f: FlowFrame,
    mask: B,
    key: U64,
    incident: U64,
    weight: F64,
    packets: F64,
    bytes_: F64,
    extra: list[F64] | None = None,
    items: list[U64] | None = None,
) -> Selection | None:
    """A Selection of the rows in ``mask`` from full-length columns."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return None
    ex = np.column_stack([e[idx] for e in extra]) if extra else np.zeros((len(idx), 0))
    it = (
        np.column_stack([i[idx] for i in items]).astype(np.uint64)
        if items
        else np.zeros((len(idx), 0), dtype=np.uint64)
    )
    return Selection(idx, key[idx], incident[idx], weight[idx], packets[idx], bytes_[idx], ex, it)
