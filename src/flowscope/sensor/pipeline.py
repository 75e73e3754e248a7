"""One batch of flows: features → verdicts → explanations → rules → risk → sinks.

:class:`Pipeline` is the part of the sensor that does not care where packets come
from: the live loop, replay and ``flowscope analyze`` all hand it the flows their
meter finished (:meth:`Pipeline.process`), the capture time (:meth:`Pipeline.tick`)
so that the rule engine can end quiet incidents, and a chance to classify the flows
still open (:meth:`Pipeline.early_verdicts`: snapshots every
``flows.early_verdict_interval`` of capture time, so an attack is flagged while it
runs instead of at the idle timeout). It also keeps every counter of the
run — packets, flows, verdicts by family, alerts, model latency and every way a packet
can be lost — because the status line and the closing summary must be able to say
"nothing was lost" and mean it (:meth:`Pipeline.status`).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from flowscope.capture.live import LiveStats
from flowscope.config import Config
from flowscope.decode import layout as L
from flowscope.detect import Alert, AlertEvent, DetectConfig, RuleEngine
from flowscope.flows.features import compute_features
from flowscope.flows.meter import FlowMeter, FlowRecords, MeterConfig
from flowscope.models.classify import Contribution, Detector, Verdicts, load_detector
from flowscope.sensor.risk import RISK_LEVELS, distinct_hosts, level_names, risk_levels
from flowscope.sinks.hub import SinkSet

MAX_EXPLAINED = 64  # flagged flows explained per batch (the highest scores first)
MAX_KEPT_ALERTS = 10_000  # latest copy of each alert kept for the summary
ALERT_FLUSH_GAP_S = 0.1  # new alerts flush the sinks at once, at most this often
MAX_PROVISIONAL = 100_000  # running flows remembered as written with a provisional verdict
# Provisional rows written per snapshot (the highest scores first): a flood flags every
# one of its flows, and writing each twice would double the sinks' work exactly when
# they are busiest; its rule alert says it at once, and the flows' final rows follow.
MAX_PROVISIONAL_ROWS = 256
_NS = 1_000_000_000


def meter_config(config: Config) -> MeterConfig:
    """The flow meter settings of a sensor configuration."""
    f = config.flows
    return MeterConfig(
        idle_timeout=f.idle_timeout, active_timeout=f.active_timeout, max_flows=f.max_flows
    )


def snapshots_cover_every_flow(config: Config) -> bool:
    """Whether early verdicts show the rule engine every flow while it runs.

    True when snapshots are on and a flow needs at most one packet to be included:
    then every flow reaches the engine within one interval of its first packet.
    """
    f = config.flows
    return f.early_verdict_interval > 0 and f.early_verdict_packets <= 1


def detect_config(config: Config) -> DetectConfig:
    """The rule engine's settings, with the lateness its input needs.

    With early verdicts covering every flow (:func:`snapshots_cover_every_flow`) a flow
    reaches the engine within ``early_verdict_interval`` of its first packet, so the
    default lateness (raised to interval + 10 s for long intervals) is enough. Otherwise
    some flows reach it only when they end, up to the meter's idle timeout after their
    last packet, so the lateness is raised to idle timeout + 10 s, as the docs of
    :class:`DetectConfig` recommend. A ``lateness_s`` set in the configuration is kept.
    """
    d = config.detect
    if "lateness_s" in d.model_fields_set:
        return d
    if snapshots_cover_every_flow(config):
        need = float(config.flows.early_verdict_interval) + 10.0
    else:
        need = float(config.flows.idle_timeout) + 10.0
    return d.model_copy(update={"lateness_s": max(d.lateness_s, need)})


def _take_verdicts(v: Verdicts, rows: npt.NDArray[np.int64]) -> Verdicts:
    """The verdicts of ``rows`` only (aligned with ``table.take(rows)``)."""
    return dataclasses.replace(
        v,
        proba=v.proba[rows],
        score=v.score[rows],
        malicious=v.malicious[rows],
        top_family=v.top_family[rows],
        suppressed=None if v.suppressed is None else v.suppressed[rows],
        rule=None if v.rule is None else v.rule[rows],
    )


def _flow_keys(flows: pa.Table, rows: npt.NDArray[np.int64]) -> list[tuple[str, int]]:
    """(flow_id, first_seen) of ``rows``: what identifies one flow across its records."""
    ids = flows.column("flow_id").take(pa.array(rows)).to_pylist()
    first = flows.column("first_seen").to_numpy()[rows].tolist()
    return list(zip(ids, first, strict=True))


def warm_detector(detector: Detector, top_k: int) -> None:
    """Run the detector and its explainer once on a two-flow table, before capturing.

    The first explanation loads LightGBM's Python package (and with it scikit-learn and
    SciPy: ~2 s); inside a live capture that would stall the first flagged batch.
    """
    from flowscope.capture.batch import PacketBatch

    eth = bytes(12) + b"\x08\x00"
    ip = bytes([0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    tcp = bytes([0, 80, 0, 81] + [0] * 8 + [0x50, 0x02, 0xFF, 0xFF, 0, 0, 0, 0])
    batch = PacketBatch.from_packets([(1, eth + ip + tcp), (2, eth + ip + tcp)])
    batch.data.flags.writeable = False
    meter = FlowMeter(MeterConfig(max_flows=4))
    records = FlowRecords.concat([*meter.update_raw(batch), *meter.flush()])
    table = compute_features(records)
    verdicts = detector.classify(table)
    if top_k > 0:
        detector.explain(table, verdicts, np.arange(table.num_rows), top_k)
    reset_detector(detector)


def is_stateful(detector: Detector) -> bool:
    """Whether the detector keeps traffic windows across calls (the KDD one does): it
    would count a running flow once per snapshot, so it sees finished flows only."""
    return callable(getattr(detector, "reset", None))


def reset_detector(detector: Detector) -> None:
    """Forget a stateful detector's traffic windows (the KDD one keeps per-host windows)."""
    reset = getattr(detector, "reset", None)
    if callable(reset):
        reset()


@dataclass(slots=True)
class Counters:
    """Everything counted over a run (all totals since the start)."""

    packets: int = 0  # packets handed to the meter
    batches: int = 0  # non-empty packet batches metered
    flows: int = 0  # finished flows classified
    flow_batches: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)  # family (or "benign") → flows
    suppressed: int = 0  # alarms vetoed by the bundle's own rules
    explained: int = 0
    risk: Counter[str] = field(default_factory=Counter)
    alert_events: Counter[str] = field(default_factory=Counter)  # new/update/end → events
    classified: int = 0  # rows the model classified (finished flows and snapshots)
    snapshots: int = 0  # snapshots of the open flows taken (early verdicts)
    snapshot_rows: int = 0  # running-flow records those snapshots classified
    provisional: int = 0  # of those, written to the sinks as provisional malicious verdicts
    model_seconds: float = 0.0  # classify() time
    model_max_ms: float = 0.0  # slowest classify() call
    explain_seconds: float = 0.0
    queue_dropped_batches: int = 0  # batches the capture thread could not queue
    queue_dropped_packets: int = 0
    peak_queue: int = 0  # deepest queue seen (batches)


class Pipeline:
    """Classifies, grades and writes batches of finished flows; counts everything.

    ``detector`` and ``sinks`` default to the configuration's (``output_dir``
    overrides ``outputs.directory``). Not thread-safe except :meth:`status`, which
    the status-line thread may call while the processing thread works.
    """

    def __init__(
        self,
        config: Config,
        *,
        detector: Detector | None = None,
        sinks: SinkSet | None = None,
        output_dir: str | None = None,
        max_explained: int = MAX_EXPLAINED,
    ) -> None:
        self.config = config
        self.detector = detector if detector is not None else load_detector(config.model.bundle)
        self.threshold = config.model.threshold
        self.top_k = config.model.explain_top_k
        self.max_explained = max_explained
        self.detect_config = detect_config(config)
        self.meter_config = meter_config(config)
        self._engines = 0
        self.engine = self._new_engine()
        self.sinks = (
            sinks
            if sinks is not None
            else SinkSet.from_config(config.outputs, directory=output_dir)
        )
        self.counters = Counters()
        self.alerts: dict[str, Alert] = {}  # alert id → latest copy
        self._alert_flushed = 0.0  # monotonic time of the last flush for a new alert
        self.meter: FlowMeter | None = None
        f = config.flows
        self.early_interval_ns = round(f.early_verdict_interval * _NS)
        self.early_packets = max(1, f.early_verdict_packets)
        self._next_snapshot: int | None = None  # capture time of the next snapshot
        # Running flows written with a provisional verdict: their final record replaces
        # that row in the store (see _replace_provisional). Insertion-ordered, bounded.
        self._provisional: dict[tuple[str, int], None] = {}
        self._skipped_before = np.zeros(L.SKIP_NCODES, np.int64)
        self._meter_before = Counter[str]()
        self.capture_stats: Callable[[], LiveStats] | None = None
        self._capture_final: LiveStats | None = None
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.closed = False

    # ------------------------------------------------------------------ inputs
    def _new_engine(self) -> RuleEngine:
        self._engines += 1
        return RuleEngine(self.detect_config)

    def new_meter(self) -> FlowMeter:
        """A fresh flow table (one per capture file: clocks of files are unrelated).

        The previous meter's counters are kept in the totals.
        """
        with self._lock:
            self._retire_meter()
            self.meter = FlowMeter(self.meter_config)
            self._next_snapshot = None
        return self.meter

    def _retire_meter(self) -> None:
        if self.meter is not None:
            self._skipped_before += self.meter.status_counts
            ms = self.meter.stats
            self._meter_before.update(
                {"evicted": ms.evicted, "ts_backwards": ms.ts_backwards, "created": ms.flows}
            )
            self.meter = None

    def count_packets(self, n: int) -> None:
        self.counters.packets += n
        self.counters.batches += 1

    def count_queue_drop(self, packets: int) -> None:
        """A packet batch the capture thread had to drop: the queue was full."""
        self.counters.queue_dropped_batches += 1
        self.counters.queue_dropped_packets += packets

    # ------------------------------------------------------------------ processing
    def process(self, records: FlowRecords) -> int:
        """Classify and write one chunk of finished flows; returns how many."""
        if len(records) == 0:
            return 0
        return self.process_table(compute_features(records))

    def classify(self, flows: pa.Table) -> Verdicts:
        t0 = time.perf_counter()
        v = self.detector.classify(flows)
        dt = time.perf_counter() - t0
        c = self.counters
        c.classified += len(v)
        c.model_seconds += dt
        c.model_max_ms = max(c.model_max_ms, dt * 1000)
        if self.threshold is not None:  # the configuration overrides the bundle's
            vetoed = v.suppressed if v.suppressed is not None else np.zeros(len(v), bool)
            v.malicious = (v.score >= self.threshold) & ~vetoed
            v.threshold = self.threshold
        return v

    def explain(self, flows: pa.Table, verdicts: Verdicts) -> dict[int, list[Contribution]]:
        """Top-k features of the flagged rows, at most ``max_explained`` per batch."""
        if self.top_k <= 0 or self.max_explained <= 0:
            return {}
        rows = np.flatnonzero(verdicts.malicious)
        if rows.size == 0:
            return {}
        if rows.size > self.max_explained:
            order = np.argsort(-verdicts.score[rows], kind="stable")[: self.max_explained]
            rows = np.sort(rows[order])
        t0 = time.perf_counter()
        contrib = self.detector.explain(flows, verdicts, rows, self.top_k)
        self.counters.explain_seconds += time.perf_counter() - t0
        self.counters.explained += len(contrib)
        return {int(r): list(c) for r, c in zip(rows, contrib, strict=True)}

    def snapshot_due(self, now_ns: int) -> int | None:
        """Capture time of the next early-verdict snapshot (None: early verdicts off).

        The first call for a meter starts the clock: the first snapshot is due one
        interval after ``now_ns``.
        """
        if self.early_interval_ns <= 0:
            return None
        if self._next_snapshot is None:
            self._next_snapshot = now_ns + self.early_interval_ns
        return self._next_snapshot

    def early_verdicts(self, now_ns: int) -> int:
        """Classify the open flows that changed, if an interval of capture time passed.

        Called after every batch with the capture time (replay: the batch's last packet,
        so runs are deterministic; live idle batches: the wall clock). Every
        ``flows.early_verdict_interval`` the meter's snapshot (flows with at least
        ``flows.early_verdict_packets`` packets and packets since their previous
        snapshot) goes through :meth:`process_table` as running flows. Returns the
        snapshot's rows (0 when none was due or early verdicts are off).
        """
        records = self.take_snapshot(now_ns)
        if records is None or len(records) == 0:
            return 0
        return self.process_table(compute_features(records))

    def take_snapshot(self, now_ns: int) -> FlowRecords | None:
        """The meter's snapshot if one is due at ``now_ns`` (None: not due, or off).

        Only takes it (and advances the due time): :meth:`early_verdicts` processes it
        at once, :meth:`process_in_order` together with the rest of an input batch.
        """
        meter = self.meter
        if self.early_interval_ns <= 0 or meter is None:
            return None
        due = self.snapshot_due(now_ns)
        if due is None or now_ns < due:
            return None
        # Fixed steps, but never a burst to catch up after a gap in the traffic.
        self._next_snapshot = max(
            due + self.early_interval_ns, now_ns + self.early_interval_ns // 2
        )
        records = meter.snapshot(min_packets=self.early_packets)
        with self._lock:
            self.counters.snapshots += 1
        return records

    def process_in_order(self, items: list[FlowRecords]) -> None:
        """Finished flows and snapshots of one input batch, processed in their order.

        A replayed batch can span many snapshot times, and on sparse captures each
        snapshot holds a row or two, so computing features and classifying per snapshot
        cost a fixed few hundred microseconds each, far more than the rows themselves.
        Here the snapshots' features are computed, and their rows classified, in one
        call each (both are per row, so the values are the same); the rule engine and
        the sinks still get every item separately and in order, so alerts keep the
        capture times a live sensor would give them.
        """
        snaps = [r for r in items if r.active and len(r)]
        table: pa.Table | None = None
        verdicts: Verdicts | None = None
        if snaps:
            table = compute_features(FlowRecords.concat(snaps))
            if not is_stateful(self.detector):
                verdicts = self.classify(table)
        start = 0
        for r in items:
            if not r.active:
                self.process(r)
                continue
            n = len(r)
            if n == 0:
                continue
            assert table is not None  # r is one of snaps
            rows = np.arange(start, start + n, dtype=np.int64)
            part_v = None if verdicts is None else _take_verdicts(verdicts, rows)
            self._process_running(table.slice(start, n), part_v)
            start += n

    def process_table(self, flows: pa.Table) -> int:
        """Classify, run the rules on, grade and write one table of flows.

        A table with an ``active`` column holds snapshots of running flows (see
        :meth:`early_verdicts`): the rule engine gets every row, but the sinks only the
        rows the model flags, each flow once, as provisional verdicts (end reason
        ``running``) that its final record later replaces in the store; the verdict
        counters count finished flows only.
        """
        n = flows.num_rows
        if n == 0:
            return 0
        if flows.schema.get_field_index("active") >= 0:  # column_names: ~60 µs a call
            return self._process_running(flows)
        if self._provisional:
            self._replace_provisional(flows)
        verdicts = self.classify(flows)
        explanations = self.explain(flows, verdicts)
        self.publish(self.engine.process(flows))
        hosts = distinct_hosts(flows)
        alerts = self.engine.alerts_for_hosts(hosts.to_pylist())
        levels = risk_levels(flows, verdicts, alerts, hosts)
        self.sinks.write(flows, verdicts, risk=level_names(levels), explanations=explanations)
        c = self.counters
        with self._lock:
            c.flows += n
            c.flow_batches += 1
            fam, counts = np.unique(verdicts.family, return_counts=True)
            for f, k in zip(fam, counts, strict=True):
                c.verdicts[verdicts.classes[int(f)]] += int(k)
            if verdicts.suppressed is not None:
                c.suppressed += int(verdicts.suppressed.sum())
            lv, lk = np.unique(levels, return_counts=True)
            for lvl, k in zip(lv, lk, strict=True):
                c.risk[RISK_LEVELS[int(lvl)]] += int(k)
        return n

    def _process_running(self, flows: pa.Table, verdicts: Verdicts | None = None) -> int:
        """Snapshot rows: rules, then provisional rows for the flagged. ``verdicts``:
        already classified (:meth:`process_in_order`), else classified here."""
        n = flows.num_rows
        # A stateful detector sees finished flows only; the rules see both.
        if verdicts is None and not is_stateful(self.detector):
            verdicts = self.classify(flows)
        self.publish(self.engine.process(flows))
        written = 0
        if verdicts is not None and verdicts.malicious.any():
            flagged = np.flatnonzero(verdicts.malicious)
            keys = _flow_keys(flows, flagged)
            new = np.array([i for i, k in enumerate(keys) if k not in self._provisional], np.int64)
            if new.size > MAX_PROVISIONAL_ROWS:
                top = np.argsort(-verdicts.score[flagged[new]], kind="stable")
                new = np.sort(new[top[:MAX_PROVISIONAL_ROWS]])
            if new.size:
                rows = flagged[new]
                part = flows.take(pa.array(rows)).drop_columns(["active"])
                pv = _take_verdicts(verdicts, rows)
                hosts = distinct_hosts(part)
                alerts = self.engine.alerts_for_hosts(hosts.to_pylist())
                levels = risk_levels(part, pv, alerts, hosts)
                self.sinks.write(
                    part,
                    pv,
                    risk=level_names(levels),
                    explanations=self.explain(part, pv),
                    provisional=True,
                )
                for i in new.tolist():
                    self._provisional[keys[i]] = None
                while len(self._provisional) > MAX_PROVISIONAL:
                    del self._provisional[next(iter(self._provisional))]
                written = int(new.size)
        with self._lock:
            self.counters.snapshot_rows += n
            self.counters.provisional += written
        return n

    def _replace_provisional(self, flows: pa.Table) -> None:
        """Finished flows written before with a provisional verdict: drop those rows
        from the store, so each flow keeps one row there (EVE keeps both events)."""
        first = flows.column("first_seen").to_numpy()
        known = np.fromiter((k[1] for k in self._provisional), np.int64, len(self._provisional))
        cand = np.flatnonzero(np.isin(first, known))
        if cand.size == 0:
            return
        done = [k for k in _flow_keys(flows, cand) if k in self._provisional]
        for k in done:
            del self._provisional[k]
        store = self.sinks.store
        if done and store is not None:
            store.drop_running(done)

    def publish(self, events: list[AlertEvent]) -> None:
        for ev in events:
            self.sinks.alert(ev)
            with self._lock:
                self.counters.alert_events[ev.kind] += 1
                if ev.alert.id in self.alerts or len(self.alerts) < MAX_KEPT_ALERTS:
                    self.alerts[ev.alert.id] = ev.alert
        # A new incident is what a reader of eve.json waits for: write it now rather
        # than within the flush interval. New incidents are rare (one per attack, at
        # most max_active_alerts at once); the rate limit bounds the cost on a replay
        # that opens many.
        if any(ev.kind == "new" for ev in events):
            now = time.monotonic()
            if now - self._alert_flushed >= ALERT_FLUSH_GAP_S:
                self._alert_flushed = now
                self.sinks.flush()

    def tick(self, now_ns: int) -> None:
        """Capture time moved to ``now_ns``: end quiet incidents."""
        self.publish(self.engine.flush(now_ns))

    def end_input(self, *, more: bool = False) -> None:
        """The input ended: every open incident ends. ``more``: another capture file
        follows, with its own clock, so the rule engine starts afresh."""
        self.publish(self.engine.flush())
        if more:
            self.engine = self._new_engine()
            reset_detector(self.detector)

    def close(self) -> None:
        """Flush and close the sinks (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self.capture_stats is not None:
            self._capture_final = self.capture_stats()
        self.sinks.close()

    # ------------------------------------------------------------------ status
    def skipped(self) -> dict[str, int]:
        """Packets the meter skipped, by reason."""
        counts = self._skipped_before.copy()
        meter = self.meter
        if meter is not None:
            counts = counts + meter.status_counts
        return {r: int(counts[code]) for code, r in L.SKIP_REASONS.items() if counts[code]}

    def status(self) -> dict[str, Any]:
        """A snapshot of every counter, including the loss accounting (plain data)."""
        with self._lock:
            c = self.counters
            cap: LiveStats | None = self._capture_final
            if cap is None and self.capture_stats is not None:
                try:
                    cap = self.capture_stats()
                except (OSError, ValueError):
                    cap = None
            meter = self.meter
            mstats = Counter(self._meter_before)
            open_flows = 0
            if meter is not None:
                ms = meter.stats
                mstats.update(
                    {"evicted": ms.evicted, "ts_backwards": ms.ts_backwards, "created": ms.flows}
                )
                open_flows = ms.open_flows
            malicious = {k: v for k, v in c.verdicts.items() if k != "benign"}
            kernel_drops = cap.kernel_drops if cap is not None else 0
            loss = {
                "kernel_drops": kernel_drops,
                "capture_bad_headers": cap.bad_headers if cap is not None else 0,
                "queue_dropped_batches": c.queue_dropped_batches,
                "queue_dropped_packets": c.queue_dropped_packets,
                "evicted_flows": int(mstats["evicted"]),
            }
            loss["packets_lost"] = (
                kernel_drops + loss["capture_bad_headers"] + c.queue_dropped_packets
            )
            return {
                "seconds": time.monotonic() - self.started,
                "packets": c.packets,
                "captured": cap.packets if cap is not None else None,
                "skipped": self.skipped(),
                "flows": c.flows,
                "open_flows": open_flows,
                "flows_created": int(mstats["created"]),
                "verdicts": dict(c.verdicts),
                "malicious": sum(malicious.values()),
                "malicious_by_family": malicious,
                "suppressed": c.suppressed,
                "explained": c.explained,
                "risk": dict(c.risk),
                "alerts": len(self.alerts),
                "alert_events": dict(c.alert_events),
                "active_alerts": sum(a.state == "active" for a in self.alerts.values()),
                "snapshots": c.snapshots,
                "snapshot_rows": c.snapshot_rows,
                "provisional": c.provisional,
                "model_seconds": c.model_seconds,
                "model_ms_per_kflow": (
                    1e6 * c.model_seconds / c.classified if c.classified else 0.0
                ),
                "model_max_ms": c.model_max_ms,
                "explain_seconds": c.explain_seconds,
                "peak_queue": c.peak_queue,
                "loss": loss,
            }
