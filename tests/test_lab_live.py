"""The live-lab helpers that need no root: tailing eve.json and matching alerts to attacks.

The end-to-end test (test_sensor_e2e.py) depends on both: a half-flushed EVE line must
never be parsed, and an alert only counts for an attack if it names that attack.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from flowscope.lab.attacks import Plan
from flowscope.lab.live import EveTail, RunningAttack, SeenAlert


def _alert(rule: str, family: str, attacker: str, victim: str, aid: str) -> dict[str, object]:
    return {
        "timestamp": "2026-01-01T00:00:00.000000+0000",
        "event_type": "alert",
        "src_ip": attacker,
        "dest_ip": victim,
        "flowscope": {
            "id": aid,
            "rule": rule,
            "family": family,
            "attacker": attacker,
            "victim": victim,
        },
    }


def test_eve_tail_reads_only_complete_lines(tmp_path: Path) -> None:
    eve = tmp_path / "eve.json"
    tail = EveTail(eve)
    assert tail.poll() == []  # no file yet: the sensor has not flushed
    flow = json.dumps({"event_type": "flow", "src_ip": "10.0.0.1"})
    line = json.dumps(_alert("port_scan", "scan", "10.0.0.66", "10.0.0.10", "a1"))
    with open(eve, "w") as f:
        f.write(flow + "\n" + line[:40])  # flushed mid-line
    assert tail.poll() == []
    with open(eve, "a") as f:
        f.write(line[40:] + "\n")
    new = tail.poll()
    assert [a.fs["id"] for a in new] == ["a1"]
    assert tail.poll() == [] and len(tail.alerts) == 1
    deadline = time.time_ns() + 1_000_000_000
    hit = tail.wait(lambda a: a.fs["rule"] == "port_scan", deadline)
    assert hit is not None and hit.fs["attacker"] == "10.0.0.66"
    assert tail.wait(lambda a: a.fs["rule"] == "syn_flood", time.time_ns()) is None


def _attack(kind: str, family: str, spoofed: bool, prior: frozenset[str]) -> RunningAttack:
    proc = subprocess.Popen(["true"])
    proc.wait()
    plan = Plan(["true"], "10.0.0.10", spoofed=spoofed)
    return RunningAttack(
        kind, family, "10.0.0.66", "10.0.0.10", plan, proc, time.time_ns(), 5.0, prior
    )


def test_alert_must_name_the_attack() -> None:
    scan = _attack("syn_scan", "scan", False, frozenset({"old"}))
    seen = lambda ev: SeenAlert(0, ev)  # noqa: E731
    assert scan.detected_by(seen(_alert("port_scan", "scan", "10.0.0.66", "10.0.0.10", "n")))
    # an incident already open before the attack is not its detection
    assert not scan.detected_by(seen(_alert("port_scan", "scan", "10.0.0.66", "10.0.0.10", "old")))
    # wrong family, or another attacker
    assert not scan.detected_by(seen(_alert("syn_flood", "dos", "10.0.0.66", "10.0.0.10", "n")))
    assert not scan.detected_by(seen(_alert("port_scan", "scan", "10.0.0.67", "10.0.0.10", "n")))
    flood = _attack("syn_flood_spoofed", "dos", True, frozenset())
    # spoofed: the victim is named and the attacker is not a (forged) address
    assert flood.detected_by(seen(_alert("syn_flood", "dos", "spoofed/many", "10.0.0.10", "f")))
    assert not flood.detected_by(seen(_alert("syn_flood", "dos", "spoofed/many", "10.0.0.9", "f")))
    assert not flood.detected_by(seen(_alert("syn_flood", "dos", "10.0.0.66", "10.0.0.10", "f")))
