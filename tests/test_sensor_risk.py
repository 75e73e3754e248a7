"""The risk level rule (docs/sensor.md) on hand-made verdicts and alerts."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowscope.detect import Alert
from flowscope.models.classify import Verdicts, make_verdicts
from flowscope.sensor.risk import level_names, risk_levels

CLASSES = ("benign", "scan", "dos", "bruteforce", "web")


def _alert(family: str, severity: str, attacker: str, victim: str) -> Alert:
    return Alert(
        id="t-1", rule="x", family=family, severity=severity, signature="s",  # type: ignore[arg-type]
        signature_id=1, category="c", protocol=6, attacker=attacker, victim=victim,
        first_seen=0, last_seen=1, metric="m", threshold=1.0, peak=2.0,
    )  # fmt: skip


def _flows(pairs: list[tuple[str, str]]) -> pa.Table:
    return pa.table(
        {"src_ip": [s for s, _ in pairs], "dst_ip": [d for _, d in pairs]},
    )


def _verdicts(rows: list[tuple[int, float]]) -> Verdicts:
    """(family index, probability of it) per row; the rest is benign."""
    proba = np.zeros((len(rows), len(CLASSES)), np.float32)
    for i, (fam, p) in enumerate(rows):
        proba[i, fam] = p
        proba[i, 0] = 1 - p
    return make_verdicts(CLASSES, proba, 0.5)


def test_model_only_levels() -> None:
    flows = _flows([("a", "b")] * 4)
    v = _verdicts([(1, 0.1), (1, 0.95), (2, 0.7), (2, 0.95)])
    levels = risk_levels(flows, v, [])
    # benign → low; scan → medium even when sure; dos → medium, high when sure
    assert level_names(levels).to_pylist() == ["low", "medium", "medium", "high"]


def test_alerts_raise_cap_and_corroborate() -> None:
    flows = _flows([("x", "victim"), ("victim", "y"), ("x", "victim"), ("p", "q"), ("x", "victim")])
    v = _verdicts([(1, 0.1), (1, 0.1), (2, 0.95), (2, 0.95), (1, 0.6)])
    alerts = [_alert("dos", "high", "spoofed/many", "victim")]
    got = level_names(risk_levels(flows, v, alerts)).to_pylist()
    assert got == [
        "medium",  # benign verdict on an alerted host: capped at medium
        "medium",  # the victim as source counts too
        "critical",  # dos flagged (high) + dos alert on its host: one step up
        "high",  # no alert on these hosts
        "high",  # scan flagged, dos alert (high): the alert's level, not corroborated
    ]


def test_critical_is_the_ceiling() -> None:
    flows = _flows([("a", "b")])
    v = _verdicts([(2, 0.99)])
    alerts = [_alert("dos", "critical", "a", "b")]
    assert level_names(risk_levels(flows, v, alerts)).to_pylist() == ["critical"]
