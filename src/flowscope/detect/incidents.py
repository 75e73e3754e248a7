"""Incident lifecycle: one alert per (rule, incident key), updated, then ended.

An incident opens the first time one of its windows crosses the rule's thresholds. Its
totals start from the window store's rows since the start of that first window (so the
flows that built it up are counted) and then grow by every later batch's signed
contributions, which keeps each flow counted once. Matching windows push its
``active_until`` forward; when capture time has gone ``quiet_s`` past that (plus the
allowed lateness, since late flows may still extend it) the incident ends with a final
``end`` event.

An ended incident is remembered (key → its last matching window and its end) so that
records arriving after the end — a flood's last flows expire from the meter up to the
idle timeout later — cannot open a second alert for windows already reported; a new
incident of the same key needs a matching window after the old one, and counts only
flows after the old one's end. Updates are throttled to one per
``update_interval_s`` of capture time per alert, except when the severity rises: a
long flood produces a handful of events, not one per batch — no alert storms.

Bounded: ``max_active_alerts`` open incidents (the least recently seen ends first,
counted), four times as many remembered ends; per incident three distinct counters
(exact up to 8 KiB, then a 2 KiB sketch), 16 heaviest sources and 8 sampled victims.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.detect.alerts import SERVICES, Alert, AlertEvent, severity_for
from flowscope.detect.config import DetectConfig
from flowscope.detect.distinct import DistinctCounter, TopSources
from flowscope.detect.frame import FlowFrame
from flowscope.detect.rules.base import Rule, Verdict, port_code
from flowscope.detect.window import Contributions, WindowStats, WindowStore, is_evidence

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]

SAMPLE = 8  # addresses reported per side of an alert
DOMINANT = 0.5  # a source with this share of an incident's flows is "the" attacker
_I64_MIN = np.iinfo(np.int64).min


def _text_getter(texts: pa.Array, rows: I64) -> Callable[[int], str | None]:
    def get(i: int) -> str | None:
        r = int(rows[i])
        return str(texts[r].as_py()) if r >= 0 else None

    return get


@dataclass(slots=True)
class Incident:
    rule: Rule
    key: int  # incident key (hash)
    alert: Alert
    active_until: int  # ns: end of the latest window that crossed the thresholds
    magnitude: float
    totals: F64  # weight, packets, bytes (signed sums)
    since: int  # first bucket counted: the first matching window's (or later flows)
    sources: DistinctCounter = field(default_factory=DistinctCounter)
    hosts: DistinctCounter = field(default_factory=DistinctCounter)
    ports: DistinctCounter = field(default_factory=DistinctCounter)
    top: TopSources = field(default_factory=TopSources)
    protocols: dict[int, float] = field(default_factory=dict)
    last_emit: int = 0
    emitted_severity: str = ""
    dirty: bool = False
    new: bool = True

    def rank(self, f: FlowFrame, idx: I64, weight: F64) -> None:
        """Weigh sources by their evidence (flows, or packets for floods)."""
        keep = weight > 0
        if keep.any():
            idx = idx[keep]
            self.top.add(f.src[idx], weight[keep], _text_getter(f.src_text, f.row[idx]))

    def add_rows(self, f: FlowFrame, idx: I64) -> None:
        """Distinct counts, protocols and victims from evidence flows."""
        if len(idx) == 0:
            return
        self.sources.add(f.src[idx])
        self.hosts.add(f.dst[idx])
        self.ports.add(port_code(f.proto[idx], f.dport[idx]))
        protos, counts = np.unique(f.proto[idx], return_counts=True)
        for p, c in zip(protos.tolist(), counts.tolist(), strict=True):
            self.protocols[p] = self.protocols.get(p, 0.0) + c
        victims = self.alert.victims
        if len(victims) < SAMPLE:
            rows = f.row[idx]
            rows = rows[rows >= 0][:256]
            for s in pc.unique(f.dst_text.take(pa.array(rows))).to_pylist():
                if s not in victims and len(victims) < SAMPLE:
                    victims.append(s)

    def add_items(self, names: tuple[str, ...], items: npt.NDArray[np.uint64]) -> None:
        for j, name in enumerate(names):
            getattr(self, name).add(items[:, j])

    def refresh(self) -> None:
        """Derive the alert's descriptive fields from the counters."""
        a, r = self.alert, self.rule
        a.flows = max(0, round(float(self.totals[0])))
        a.packets = max(0, round(float(self.totals[1])))
        a.bytes = max(0, round(float(self.totals[2])))
        a.source_count = self.sources.count()
        a.host_count = self.hosts.count()
        a.port_count = self.ports.count()
        top = self.top.top()
        a.attackers = [addr for addr, _ in top[:SAMPLE]]
        if top and (a.source_count <= 1 or top[0][1] >= DOMINANT * self.top.total):
            a.attacker = top[0][0]
        elif a.source_count > 1:
            a.attacker = "spoofed/many" if r.flood else "many"
        if a.host_count <= 1 and a.victims:
            a.victim = a.victims[0]
        elif a.host_count > 1:
            a.victim = "many"
        ports = self.ports.values()
        a.victim_port = int(ports[0]) & 0xFFFF if a.port_count == 1 and len(ports) else None
        a.service = SERVICES.get(a.victim_port) if a.victim_port is not None else None
        if self.protocols:
            a.protocol = max(self.protocols, key=lambda p: self.protocols[p])
        a.severity = severity_for(r.base_severity, r.max_severity, self.magnitude)
        a.family = r.family_of(a)
        a.message = r.message(a)


class IncidentBook:
    def __init__(self, config: DetectConfig, run_id: str | None = None) -> None:
        self.config = config
        self.run_id = run_id or secrets.token_hex(3)
        self._open: dict[str, dict[int, Incident]] = {}
        # rule → key → (active_until, ended_at) of the latest ended incident of the key
        self._closed: dict[str, dict[int, tuple[int, int]]] = {}
        self._closed_cap = 4 * config.max_active_alerts
        self._seq = 0
        self._events: list[AlertEvent] = []
        self.opened = 0
        self.ended = 0
        self.evicted = 0
        self._end_after = int((config.quiet_s + config.lateness_s) * 1e9)
        self._interval = int(config.update_interval_s * 1e9)

    # ------------------------------------------------------------------ queries
    def active(self) -> list[Incident]:
        return [inc for per_rule in self._open.values() for inc in per_rule.values()]

    def __len__(self) -> int:
        return sum(len(v) for v in self._open.values())

    # ------------------------------------------------------------------ feeding
    def observe(
        self,
        rule: Rule,
        store: WindowStore,
        contrib: Contributions,
        stats: WindowStats,
        verdict: Verdict,
        f: FlowFrame,
        now: int,
    ) -> None:
        """One rule's batch: extend or open triggered incidents, then add the batch's
        flows to the incidents that were open before it."""
        per_rule = self._open.setdefault(rule.name, {})
        closed = self._closed.setdefault(rule.name, {})
        before = dict(per_rule)
        self._trigger(rule, store, contrib, stats, verdict, f, now, per_rule, closed)
        if before and len(contrib):
            self._grow(before, contrib, f)

    def _trigger(
        self,
        rule: Rule,
        store: WindowStore,
        contrib: Contributions,
        stats: WindowStats,
        verdict: Verdict,
        f: FlowFrame,
        now: int,
        per_rule: dict[int, Incident],
        closed: dict[int, tuple[int, int]],
    ) -> None:
        sat = np.flatnonzero(verdict.satisfied)
        if len(sat) == 0:
            return
        bns = store.bucket_ns
        uniq, inv = np.unique(stats.incident[sat], return_inverse=True)
        if closed:
            # Windows up to an ended incident's last one were reported already.
            old_until = np.array(
                [closed.get(k, (_I64_MIN, 0))[0] for k in uniq.tolist()], dtype=np.int64
            )
            sat = sat[(stats.bucket[sat] + 1) * bns > old_until[inv]]
            if len(sat) == 0:
                return
            uniq, inv = np.unique(stats.incident[sat], return_inverse=True)
        buckets = stats.bucket[sat]
        first_bucket = np.full(len(uniq), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first_bucket, inv, buckets)
        last_bucket = np.full(len(uniq), _I64_MIN, dtype=np.int64)
        np.maximum.at(last_bucket, inv, buckets)
        mag = np.zeros(len(uniq))
        np.maximum.at(mag, inv, verdict.magnitude[sat])
        peak = np.zeros(len(uniq))
        np.maximum.at(peak, inv, verdict.value[sat])
        until = (last_bucket + 1) * bns
        # Flows up to the previous incident's last window were its own.
        prev = np.array([closed.get(k, (_I64_MIN, 0))[0] for k in uniq.tolist()], np.int64)
        floor = np.where(prev > _I64_MIN, prev // bns, _I64_MIN)
        since = np.maximum(first_bucket - (store.n_buckets - 1), floor)
        fresh: list[int] = []
        for i, k in enumerate(uniq.tolist()):
            inc = per_rule.get(k)
            if inc is None:
                fresh.append(i)
                continue
            # Late flows may make earlier windows match: the incident covers them too
            # (this batch's flows there are added by _grow; earlier ones stay uncounted).
            inc.since = min(inc.since, int(since[i]))
            if until[i] > inc.active_until or mag[i] > inc.magnitude:
                inc.active_until = max(inc.active_until, int(until[i]))
                inc.magnitude = max(inc.magnitude, float(mag[i]))
                inc.alert.peak = max(inc.alert.peak, float(peak[i]))
                inc.dirty = True
        if fresh:
            sel = np.asarray(fresh)
            self._open_new(
                rule, store, contrib, f, uniq[sel], since[sel], until[sel], mag[sel],
                peak[sel], now,
            )  # fmt: skip

    def _grow(self, per_rule: dict[int, Incident], c: Contributions, f: FlowFrame) -> None:
        rank_col = 1 if next(iter(per_rule.values())).rule.volume else 0
        keys = np.fromiter(per_rule.keys(), dtype=np.uint64, count=len(per_rule))
        m = np.flatnonzero(np.isin(c.incident, keys))
        if len(m) == 0:
            return
        sub = c.take(m)
        order = np.argsort(sub.incident, kind="stable")
        inc_sorted = sub.incident[order]
        starts = np.flatnonzero(np.r_[True, inc_sorted[1:] != inc_sorted[:-1]])
        for group in np.split(order, starts[1:]):
            inc = per_rule[int(sub.incident[group[0]])]
            group = group[sub.bucket[group] >= inc.since]
            if len(group) == 0:
                continue
            vals = sub.values[group]
            if not vals[:, :3].any():
                continue  # context flows only (ratios): nothing to report
            inc.totals += vals[:, :3].sum(axis=0)
            inc.rank(f, sub.row[group], vals[:, rank_col])
            pos = group[is_evidence(vals)]
            if len(pos):
                inc.alert.last_seen = max(inc.alert.last_seen, int(sub.t_last[pos].max()))
                inc.alert.first_seen = min(inc.alert.first_seen, int(sub.t_first[pos].min()))
                inc.add_rows(f, sub.row[pos])
            inc.dirty = True

    def _open_new(
        self,
        rule: Rule,
        store: WindowStore,
        contrib: Contributions,
        f: FlowFrame,
        keys: U64,
        since: I64,
        until: I64,
        mag: F64,
        peak: F64,
        now: int,
    ) -> None:
        per_rule = self._open[rule.name]
        tot_keys, sums, t_first, t_last = store.incident_rows(keys, since)
        items_keys, items = store.incident_items(keys, since)
        own_since = since[np.searchsorted(keys, contrib.incident).clip(0, len(keys) - 1)]
        evidence = (
            is_evidence(contrib.values) & (f.row[contrib.row] >= 0) & (contrib.bucket >= own_since)
        )
        for i, k in enumerate(keys.tolist()):
            rows = contrib.row[evidence & (contrib.incident == k)]
            j = int(np.searchsorted(tot_keys, k))
            if len(rows) == 0 or j >= len(tot_keys) or tot_keys[j] != k:
                continue  # no readable evidence in this batch: open on the next one
            first, last = int(t_first[j]), int(t_last[j])
            if first > last:  # the window holds no evidence row: take this batch's
                first, last = int(f.first[rows].min()), int(f.last[rows].max())
            self._seq += 1
            alert = Alert(
                id=f"{self.run_id}-{self._seq:06d}",
                rule=rule.name,
                family=rule.family,
                severity="low",
                signature=rule.signature,
                signature_id=rule.signature_id,
                category=rule.category,
                protocol=int(f.proto[rows[0]]),
                attacker="unknown",
                victim="unknown",
                first_seen=first,
                last_seen=last,
                metric=rule.metric,
                threshold=rule.threshold,
                peak=float(peak[i]),
            )
            inc = Incident(
                rule, k, alert, int(until[i]), float(mag[i]), sums[j, :3].copy(), int(since[i])
            )
            mine = items_keys == k
            if mine.any():
                inc.add_items(rule.item_names, items[mine])
            inc.add_rows(f, rows)
            batch = (contrib.incident == k) & (contrib.bucket >= since[i])
            inc.rank(f, contrib.row[batch], contrib.values[batch, 1 if rule.volume else 0])
            inc.refresh()
            per_rule[k] = inc
            self.opened += 1
        self._enforce_cap(now)

    def _enforce_cap(self, now: int) -> None:
        excess = len(self) - self.config.max_active_alerts
        if excess <= 0:
            return
        for inc in sorted(self.active(), key=lambda inc: inc.alert.last_seen)[:excess]:
            self.evicted += 1
            self._end(inc, now)

    # ------------------------------------------------------------------ events
    def _end(self, inc: Incident, now: int) -> None:
        inc.alert.state = "ended"
        inc.alert.ended_at = now
        inc.refresh()
        if inc.new:  # opened and over within one batch: still announce it first
            self._events.append(
                AlertEvent(kind="new", at=now, alert=inc.alert.model_copy(deep=True))
            )
        self._events.append(AlertEvent(kind="end", at=now, alert=inc.alert.model_copy(deep=True)))
        self._open[inc.rule.name].pop(inc.key)
        closed = self._closed.setdefault(inc.rule.name, {})
        closed.pop(inc.key, None)
        closed[inc.key] = (inc.active_until, now)
        while sum(len(v) for v in self._closed.values()) > self._closed_cap:
            biggest = max(self._closed.values(), key=len)
            biggest.pop(next(iter(biggest)))
        self.ended += 1

    def expire(self, now: int) -> None:
        """End incidents quiet for ``quiet_s`` (+ lateness) of capture time."""
        for inc in [i for i in self.active() if now >= i.active_until + self._end_after]:
            self._end(inc, now)

    def end_all(self, now: int) -> None:
        for inc in self.active():
            self._end(inc, now)

    def take_events(self, now: int) -> list[AlertEvent]:
        """Events due: new alerts, throttled updates, ends (in the order they arose)."""
        for inc in self.active():
            if inc.new:
                inc.refresh()
                inc.new, inc.dirty = False, False
                inc.last_emit, inc.emitted_severity = now, inc.alert.severity
                self._events.append(
                    AlertEvent(kind="new", at=now, alert=inc.alert.model_copy(deep=True))
                )
            elif inc.dirty:
                inc.refresh()
                rose = inc.alert.severity != inc.emitted_severity
                if rose or now - inc.last_emit >= self._interval:
                    inc.alert.updates += 1
                    inc.dirty = False
                    inc.last_emit, inc.emitted_severity = now, inc.alert.severity
                    self._events.append(
                        AlertEvent(kind="update", at=now, alert=inc.alert.model_copy(deep=True))
                    )
        events, self._events = self._events, []
        return events
