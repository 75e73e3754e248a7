"""Prometheus metrics at /metrics, read from the sensor's own counters at scrape time.

A custom collector instead of prometheus_client counters incremented in the hot path:
the pipeline already counts everything (:meth:`Pipeline.status`), so counting again
would cost the sensor time and could disagree with the status line. The values are the
process totals over every run (:meth:`SensorController.raw_totals`): a "clear results"
in the dashboard does not make a Prometheus counter go backwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from flowscope import __version__
from flowscope.web.control import SensorController

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_STATES = ("idle", "running", "stopping", "error")


class SensorCollector(Collector):
    """Translates the controller's totals into metric families on every scrape."""

    def __init__(self, controller: SensorController, model_name: str) -> None:
        self.controller = controller
        self.model_name = model_name

    def collect(self) -> Iterator[Metric]:
        c = self.controller
        t: dict[str, Any] = c.raw_totals()
        loss: dict[str, Any] = t.get("loss") or {}

        info = InfoMetricFamily("flowscope", "flowscope version and loaded model")
        info.add_metric([], {"version": __version__, "model": self.model_name})
        yield info

        state = GaugeMetricFamily(
            "flowscope_sensor_state", "1 for the sensor's current state", labels=["state"]
        )
        for s in _STATES:
            state.add_metric([s], 1.0 if c.state == s else 0.0)
        yield state

        yield CounterMetricFamily(
            "flowscope_packets", "Packets handed to the flow meter", value=t.get("packets") or 0
        )
        yield CounterMetricFamily(
            "flowscope_flow_bytes", "Wire bytes of classified flows", value=t.get("bytes") or 0
        )
        drops = CounterMetricFamily(
            "flowscope_packets_dropped",
            "Packets lost, by pipeline stage (kernel ring, capture headers, processing queue)",
            labels=["stage"],
        )
        drops.add_metric(["kernel"], loss.get("kernel_drops") or 0)
        drops.add_metric(["capture_bad_headers"], loss.get("capture_bad_headers") or 0)
        drops.add_metric(["queue"], loss.get("queue_dropped_packets") or 0)
        yield drops
        skipped = CounterMetricFamily(
            "flowscope_packets_skipped",
            "Packets the meter did not meter, by reason",
            labels=["reason"],
        )
        for reason, n in sorted((t.get("skipped") or {}).items()):
            skipped.add_metric([str(reason)], n)
        yield skipped
        yield CounterMetricFamily(
            "flowscope_flows_evicted",
            "Flows ended early because the flow table was full",
            value=loss.get("evicted_flows") or 0,
        )
        yield CounterMetricFamily(
            "flowscope_flows", "Finished flows classified", value=t.get("flows") or 0
        )
        yield GaugeMetricFamily(
            "flowscope_open_flows", "Flows in the flow table now", value=t.get("open_flows") or 0
        )
        verdicts = CounterMetricFamily(
            "flowscope_verdicts", "Classified flows by verdict family (benign included)",
            labels=["family"],
        )  # fmt: skip
        for fam, n in sorted((t.get("verdicts") or {}).items()):
            verdicts.add_metric([str(fam)], n)
        yield verdicts
        risk = CounterMetricFamily("flowscope_risk", "Flows by risk level", labels=["level"])
        for lvl, n in sorted((t.get("risk") or {}).items()):
            risk.add_metric([str(lvl)], n)
        yield risk
        alerts = CounterMetricFamily(
            "flowscope_alerts", "Rule-engine incidents, by family", labels=["family"]
        )
        for fam, n in sorted(c.feed.alert_families.items()):
            alerts.add_metric([fam], n)
        yield alerts
        events = CounterMetricFamily(
            "flowscope_alert_events", "Rule-engine events by kind (new/update/end)",
            labels=["kind"],
        )  # fmt: skip
        for kind, n in sorted((t.get("alert_events") or {}).items()):
            events.add_metric([str(kind)], n)
        yield events
        yield GaugeMetricFamily(
            "flowscope_active_alerts", "Incidents still active", value=t.get("active_alerts") or 0
        )
        yield SummaryMetricFamily(
            "flowscope_model_latency_seconds",
            "Model inference time per classified batch of flows",
            count_value=int(t.get("flow_batches") or 0),
            sum_value=float(t.get("model_seconds") or 0.0),
        )
        yield GaugeMetricFamily(
            "flowscope_model_max_latency_seconds",
            "Slowest model call of the current run",
            value=float(t.get("model_max_ms") or 0.0) / 1000.0,
        )
        yield GaugeMetricFamily(
            "flowscope_queue_peak_batches",
            "Deepest capture → processing queue seen in the current run",
            value=t.get("peak_queue") or 0,
        )


def registry_for(controller: SensorController, model_name: str) -> CollectorRegistry:
    """A registry of its own (not the global one): one app per controller, tests too."""
    reg = CollectorRegistry(auto_describe=True)
    reg.register(SensorCollector(controller, model_name))
    return reg


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
