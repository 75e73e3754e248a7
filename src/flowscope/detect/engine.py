"""The rule engine: flow batches in, alert events out.

>>> engine = RuleEngine(DetectConfig())
>>> for table in flow_tables:            # finished flows and/or snapshots (``active``)
...     for event in engine.process(table):
...         publish(event)               # event.kind: new / update / end
>>> engine.flush(now_ns)                 # on a timer: ends quiet incidents
>>> engine.flush()                       # end of input: ends everything

Capture time is the only clock: the engine's "now" is the latest ``last_seen`` it has
seen (or the ``now_ns`` given to :meth:`flush`), never the wall clock, so a replayed
capture raises the same alerts at the same capture times as the live traffic did.

Per batch, the engine (1) reads the table into numeric columns, (2) replaces
earlier snapshots of the same flows by signed retractions (:mod:`.dedupe`), (3) for
each rule adds the batch's rows to the rule's window store, evaluates the windows the
batch touched and opens, extends or grows incidents, then (4) expires old state and
ends quiet incidents. Every step is vectorised over the batch; the Python loops run
over rules and over incidents that changed, never over flows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.detect.alerts import Alert, AlertEvent
from flowscope.detect.config import DetectConfig
from flowscope.detect.dedupe import FlowTracker
from flowscope.detect.frame import FlowFrame, check_columns
from flowscope.detect.incidents import IncidentBook
from flowscope.detect.rules import Rule, build_rules
from flowscope.detect.window import WindowStore

_NS = 1_000_000_000


@dataclass(slots=True)
class RuleState:
    """Size and evictions of one rule's window store."""

    keys: int
    rows: int
    evicted_keys: int
    evicted_rows: int


@dataclass(slots=True)
class EngineStats:
    records: int = 0  # rows read (finished flows + snapshots)
    snapshots: int = 0  # rows with active = True
    retractions: int = 0  # earlier snapshots replaced by a newer record
    tracked_flows: int = 0  # running flows remembered now
    tracker_evicted: int = 0
    alerts_opened: int = 0
    alerts_ended: int = 0
    alerts_evicted: int = 0
    active_alerts: int = 0
    rules: dict[str, RuleState] = field(default_factory=dict)


class RuleEngine:
    """Runs every enabled rule detector over flow batches; bounded state throughout."""

    def __init__(self, config: DetectConfig | None = None, run_id: str | None = None) -> None:
        self.config = config or DetectConfig()
        c = self.config
        self.rules: list[Rule] = build_rules(c)
        lateness = int(c.lateness_s * _NS)
        self.stores: list[WindowStore] = []
        for rule in self.rules:
            window = int(rule.config.window_s * _NS)
            self.stores.append(
                WindowStore(
                    window_ns=window,
                    n_buckets=c.buckets_per_window,
                    retention_ns=window + lateness,
                    n_values=rule.n_values,
                    n_items=len(rule.item_names),
                    max_keys=c.max_keys,
                    max_rows=c.max_rows,
                )
            )
        # A running flow is re-reported every snapshot; one silent for longer than the
        # meter's idle timeout (120 s by default) plus the lateness has ended.
        self.tracker = FlowTracker(
            c.max_tracked_flows,
            ttl_ns=int(130 * _NS) + lateness,
            grace_ns=int(c.probe_grace_s * _NS),
        )
        self.book = IncidentBook(c, run_id)
        self.now: int | None = None  # capture time: the latest last_seen seen
        self._records = 0
        self._snapshots = 0

    # ------------------------------------------------------------------ API
    def process(self, table: pa.Table) -> list[AlertEvent]:
        """Feed one batch of flow records; returns the alert events it caused."""
        check_columns(table)
        if table.num_rows == 0:
            return []
        batch_max = pc.max(table.column("last_seen")).as_py()
        now = max(self.now or batch_max, batch_max)
        frame = FlowFrame.from_table(table, now_ns=now)
        self.now = now
        self._records += len(frame)
        self._snapshots += int(frame.active.sum())
        self._ingest(frame, now)
        return self._advance(now)

    def flush(self, now_ns: int | None = None) -> list[AlertEvent]:
        """Advance capture time to ``now_ns`` — held-back snapshots old enough are
        counted, quiet incidents end, old state expires — or, with no argument, end
        the input: everything held is counted and every open incident ends."""
        if now_ns is None:
            now = self.now if self.now is not None else 0
            self._ingest(FlowFrame.empty(), now + int(self.config.probe_grace_s * _NS))
            self.book.end_all(now)
            return self.book.take_events(now)
        now = max(self.now or now_ns, now_ns)
        self.now = now
        self._ingest(FlowFrame.empty(), now)
        return self._advance(now)

    def alerts_for_hosts(self, ips: Iterable[str]) -> list[Alert]:
        """Open alerts whose attacker or victim (or a sampled one) is in ``ips``."""
        hosts = set(ips)
        return [
            inc.alert.model_copy(deep=True)
            for inc in self.book.active()
            if inc.alert.involves(hosts)
        ]

    @property
    def active_alerts(self) -> list[Alert]:
        return [inc.alert.model_copy(deep=True) for inc in self.book.active()]

    @property
    def stats(self) -> EngineStats:
        return EngineStats(
            records=self._records,
            snapshots=self._snapshots,
            retractions=self.tracker.retractions,
            tracked_flows=len(self.tracker),
            tracker_evicted=self.tracker.evicted,
            alerts_opened=self.book.opened,
            alerts_ended=self.book.ended,
            alerts_evicted=self.book.evicted,
            active_alerts=len(self.book),
            rules={
                r.name: RuleState(s.keys, s.rows, s.evicted_keys, s.evicted_rows)
                for r, s in zip(self.rules, self.stores, strict=True)
            },
        )

    # ------------------------------------------------------------------ internals
    def _ingest(self, frame: FlowFrame, now: int) -> None:
        frame = self.tracker.dedupe(frame, now)
        if len(frame) == 0:
            return
        for rule, store in zip(self.rules, self.stores, strict=True):
            sel = rule.select(frame)
            if sel is not None and rule.context_on_evidence:
                context = sel.weight <= 0
                if context.any():
                    evidence_keys = sel.key[~context]
                    live = np.isin(sel.key, evidence_keys) | store.has_keys(sel.key)
                    sel = sel.subset(~context | live)
            if sel is None or len(sel.idx) == 0:
                continue
            contrib = rule.contributions(frame, sel, store.bucket_ns, store.retention_buckets)
            touched = store.add(contrib)
            stats = store.evaluate(touched)
            verdict = rule.check(stats)
            self.book.observe(rule, store, contrib, stats, verdict, frame, now)

    def _advance(self, now: int) -> list[AlertEvent]:
        self.tracker.expire(now)
        for store in self.stores:
            store.expire(now)
        self.book.expire(now)
        return self.book.take_events(now)
