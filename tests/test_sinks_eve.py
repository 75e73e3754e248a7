"""EVE JSON lines: Suricata field names and values for flow events, alerts, rotation.

The field lists below are Suricata's (docs "Eve JSON Format",
https://docs.suricata.io/en/latest/output/eve/eve-json-format.html, and the ``flow``
object of ``etc/schema.json`` in OISF/suricata).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from flowscope.sinks.batch import FlowBatch, prepare
from flowscope.sinks.eve import (
    EVE_REASON,
    EveWriter,
    alert_event,
    eve_flow_id,
    flow_events,
    proto_name,
)
from flowscope.sinks.rotate import FlushPolicy, Rotation
from test_sinks_batch import CLASSES, batch_for, scan_flows, verdicts_for

NO_SYNC = FlushPolicy(interval=1.0, fsync=False)
# Suricata's etc/schema.json: properties of the "flow" object and the common header.
SCHEMA_FLOW_KEYS = {
    "action", "age", "alerted", "bypass", "bypassed", "bytes_toclient", "bytes_toserver", "end",
    "pkts_toclient", "pkts_toserver", "reason", "start", "state", "emergency", "wrong_thread",
}  # fmt: skip
SCHEMA_TOP_KEYS = {
    "timestamp", "flow_id", "event_type", "src_ip", "src_port", "dest_ip", "dest_port", "proto",
    "app_proto", "icmp_type", "icmp_code", "vlan", "flow", "tcp", "alert",
}  # fmt: skip
SURICATA_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+[+\-]\d+$")


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_flow_events_use_suricata_names_and_values(tmp_path: Path) -> None:
    batch = batch_for()
    eve = EveWriter(tmp_path, flush=NO_SYNC)
    eve.write_flows(prepare(batch))
    eve.close()
    events = read_events(tmp_path / "eve.json")
    flows = batch.flows
    assert len(events) == flows.num_rows == eve.flow_events
    rows = flows.to_pylist()
    v = batch.verdicts
    families = v.family_names()
    protos = set()
    for i, (ev, row) in enumerate(zip(events, rows, strict=True)):
        assert list(ev)[:3] == ["timestamp", "flow_id", "event_type"]
        assert ev["event_type"] == "flow"
        assert set(ev) - {"flowscope"} <= SCHEMA_TOP_KEYS
        assert set(ev["flow"]) <= SCHEMA_FLOW_KEYS
        assert isinstance(ev["flow_id"], int) and 0 <= ev["flow_id"] < 2**51
        assert ev["flow_id"] == eve_flow_id(row["flow_id"], row["first_seen"])
        assert ev["src_ip"] == row["src_ip"] and ev["dest_ip"] == row["dst_ip"]
        assert ev["proto"] == proto_name(row["protocol"])
        protos.add(ev["proto"])
        if row["protocol"] in (6, 17):
            assert (ev["src_port"], ev["dest_port"]) == (row["src_port"], row["dst_port"])
        else:
            assert "src_port" not in ev and "dest_port" not in ev
        f = ev["flow"]
        assert f["pkts_toserver"] == row["fwd_packets"]
        assert f["pkts_toclient"] == row["bwd_packets"]
        assert f["bytes_toserver"] == row["fwd_wire_bytes"]
        assert f["bytes_toclient"] == row["bwd_wire_bytes"]
        for key in ("start", "end"):
            assert SURICATA_TIME.match(f[key]), f[key]
        assert ev["timestamp"] == f["end"]
        assert f["start"][:26].replace("T", " ") == row["timestamp"]  # same µs as the CSV
        assert f["age"] == row["last_seen"] // 10**9 - row["first_seen"] // 10**9
        assert f["reason"] == EVE_REASON[row["end_reason"]]
        assert f["alerted"] is bool(v.malicious[i])
        fs = ev["flowscope"]
        assert fs["flow_key"] == row["flow_id"] and fs["end_reason"] == row["end_reason"]
        assert fs["verdict"] == ("Malicious" if v.malicious[i] else "Normal")
        assert fs["family"] == families[i]
        assert abs(fs["score"] - float(v.score[i])) < 1e-6
        assert list(fs["probabilities"]) == list(CLASSES)
        assert math.isclose(sum(fs["probabilities"].values()), 1.0, abs_tol=1e-4)
        assert ("top_features" in fs) is bool(v.malicious[i])
    assert {"TCP", "UDP"} <= protos


def test_states_and_reasons_of_the_scans() -> None:
    batch = prepare(batch_for())
    events = flow_events(batch)
    rows = batch.flows.to_pylist()
    seen = set()
    for ev, row in zip(events, rows, strict=True):
        state, reason = ev["flow"]["state"], ev["flow"]["reason"]
        seen.add((row["protocol"], row["end_reason"], state))
        if row["protocol"] == 6 and row["end_reason"] == "rst":
            assert (state, reason) == ("closed", "timeout")
        if row["end_reason"] == "eof":
            assert reason == "shutdown"
        if row["bwd_packets"] == 0:
            assert state in ("new", "closed")
        if row["protocol"] == 6 and state == "established":
            assert row["fwd_tcp_flags"] & 0x10 and row["bwd_tcp_flags"] & 0x10
        if ev["proto"] == "TCP":
            tcp = ev["tcp"]
            assert int(tcp["tcp_flags_ts"], 16) == row["fwd_tcp_flags"]
            assert int(tcp["tcp_flags_tc"], 16) == row["bwd_tcp_flags"]
            assert tcp.get("syn") is (True if (row["fwd_tcp_flags"] | row["bwd_tcp_flags"]) & 2
                                      else None)  # fmt: skip
    # A SYN scan answered by RST is closed; an unanswered UDP probe never got past "new".
    assert (6, "rst", "closed") in seen and (17, "eof", "new") in seen


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("idle", "timeout"), ("active", "timeout"), ("fin", "timeout"), ("evicted", "forced"),
     ("eof", "shutdown")],
)  # fmt: skip
def test_end_reason_mapping(reason: str, expected: str) -> None:
    flows = scan_flows(5)
    i = flows.column_names.index("end_reason")
    flows = flows.set_column(i, "end_reason", pa.array([reason] * 5))
    events = flow_events(prepare(FlowBatch(flows, verdicts_for(5))))
    assert {e["flow"]["reason"] for e in events} == {expected}
    assert {e["flowscope"]["end_reason"] for e in events} == {reason}
    if reason == "fin":
        assert {e["flow"]["state"] for e in events if e["proto"] == "TCP"} == {"closed"}


def test_icmp_vlan_and_app_proto() -> None:
    flows = scan_flows(3)
    n = flows.num_rows
    flows = flows.set_column(flows.column_names.index("protocol"), "protocol",
                             pa.array([1, 58, 47], pa.int16()))  # fmt: skip
    flows = flows.set_column(flows.column_names.index("icmp_type"), "icmp_type",
                             pa.array([8.0, 128.0, -1.0]))  # fmt: skip
    flows = flows.set_column(flows.column_names.index("vlan_id"), "vlan_id",
                             pa.array([0, 100, 0], pa.int32()))  # fmt: skip
    flows = flows.append_column("app_proto", pa.array(["dns", None, None]))
    events = flow_events(prepare(FlowBatch(flows, verdicts_for(n))))
    icmp, icmp6, gre = events
    assert icmp["proto"] == "ICMP" and icmp["icmp_type"] == 8 and "src_port" not in icmp
    assert icmp6["proto"] == "IPv6-ICMP" and icmp6["icmp_type"] == 128
    assert gre["proto"] == "GRE" and "icmp_type" not in gre and "dest_port" not in gre
    assert icmp["app_proto"] == "dns" and "app_proto" not in icmp6
    assert icmp6["vlan"] == [100] and "vlan" not in icmp
    assert proto_name(253) == "253" and proto_name(7) == "007"


def test_flow_id_is_stable_and_distinct() -> None:
    a = eve_flow_id("10.0.0.1-10.0.0.2-1-2-6", 1_700_000_000_000_000_000)
    assert a == eve_flow_id("10.0.0.1-10.0.0.2-1-2-6", 1_700_000_000_000_000_000)
    assert a != eve_flow_id("10.0.0.1-10.0.0.2-1-2-6", 1_700_000_000_000_000_001)
    assert 0 <= a < 2**51


def test_eve_flows_option_and_alerts(tmp_path: Path) -> None:
    batch = prepare(batch_for(100))
    flagged = int(batch.verdicts.malicious.sum())
    for mode, expected in (("all", 100), ("malicious", flagged), ("none", 0)):
        d = tmp_path / mode
        eve = EveWriter(d, flows=mode, flush=NO_SYNC)  # type: ignore[arg-type]
        eve.write_flows(batch)
        eve.write_alert(
            {
                "event_type": "alert",
                "src_ip": "10.0.0.66",
                "dest_ip": "10.0.0.10",
                "dest_port": np.int64(22),
                "proto": "TCP",
                "alert": {
                    "signature": "SSH brute force",
                    "category": "bruteforce",
                    "severity": 2,
                    "rate": float("nan"),
                },
                "flowscope": {"state": "new", "attempts": 40},
            },
            incident_id="inc-1",
        )
        eve.close()
        events = read_events(d / "eve.json")
        flows = [e for e in events if e["event_type"] == "flow"]
        alerts = [e for e in events if e["event_type"] == "alert"]
        assert len(flows) == expected
        if mode == "malicious":
            assert all(e["flow"]["alerted"] for e in flows)
        (alert,) = alerts
        assert next(iter(alert)) == "timestamp" and SURICATA_TIME.match(alert["timestamp"])
        assert alert["dest_port"] == 22 and alert["alert"]["rate"] is None
        assert alert["alert"]["signature"] == "SSH brute force"
        assert alert["flowscope"] == {"state": "new", "attempts": 40, "incident_id": "inc-1"}


def test_alert_event_keeps_given_fields() -> None:
    given = {
        "timestamp": "2024-01-01T00:00:00.000000+0000",
        "event_type": "alert",
        "alert": {"signature": "x"},
        "flowscope": {"id": "a1", "rule": "port_scan"},
    }
    out = alert_event(given)
    assert out == {**given, "flowscope": {"id": "a1", "rule": "port_scan", "incident_id": "a1"}}
    anon = alert_event({"alert": {}}, clock=lambda: 0.0)
    assert anon["timestamp"] == "1970-01-01T00:00:00.000000+0000"
    assert len(anon["flowscope"]["incident_id"]) == 32  # its own incident
    assert alert_event(given, "x9", kind="end")["flowscope"]["event"] == "end"
    assert alert_event(given, "x9")["flowscope"]["incident_id"] == "x9"
    with pytest.raises(TypeError):
        alert_event(["not", "an", "alert"])


class FakeAlert:
    """The shape of flowscope.detect's Alert: an id and to_eve()."""

    id = "syn_flood-10.0.0.10-1"

    def to_eve(self) -> dict:
        return {"timestamp": "2024-01-01T00:00:01.000000+0000", "event_type": "alert",
                "src_ip": "spoofed/many", "dest_ip": "10.0.0.10", "dest_port": 80,
                "proto": "TCP", "alert": {"signature": "SYN flood", "severity": 1},
                "flowscope": {"id": self.id, "rule": "syn_flood", "family": "dos",
                              "severity": "high", "state": "active"}}  # fmt: skip


class FakeAlertEvent:
    """The shape of flowscope.detect's AlertEvent: kind and alert."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.alert = FakeAlert()


def test_rule_engine_objects_are_accepted() -> None:
    ev = alert_event(FakeAlertEvent("update"))
    assert ev["flowscope"]["incident_id"] == FakeAlert.id
    assert ev["flowscope"]["event"] == "update" and ev["alert"]["signature"] == "SYN flood"
    ev = alert_event(FakeAlert())
    assert ev["flowscope"]["incident_id"] == FakeAlert.id and "event" not in ev["flowscope"]


def test_engine_alert_events_carry_their_capture_time() -> None:
    """The real engine's AlertEvent: ``timestamp`` is the newest evidence, and
    ``flowscope.event_time`` the capture time the step was taken."""
    from flowscope.detect import Alert, AlertEvent

    alert = Alert(
        id="t-000001", rule="port_scan", family="scan", severity="medium",
        signature="FLOWSCOPE SCAN port scan", signature_id=9_100_010, category="scan",
        protocol=6, attacker="192.0.2.1", victim="198.51.100.2",
        first_seen=1_700_000_000 * 10**9, last_seen=1_700_000_002 * 10**9,
        metric="ports", threshold=20.0, peak=25.0,
    )  # fmt: skip
    ev = alert_event(AlertEvent(kind="new", at=1_700_000_003_500_000_000, alert=alert))
    assert ev["timestamp"] == "2023-11-14T22:13:22.000000+0000"
    assert ev["flowscope"]["event_time"] == "2023-11-14T22:13:23.500000+0000"
    assert ev["flowscope"]["event"] == "new" and ev["flowscope"]["incident_id"] == "t-000001"


def test_numbered_rotation_keeps_n(tmp_path: Path) -> None:
    batch = prepare(batch_for(40))
    eve = EveWriter(tmp_path, rotation=Rotation(max_bytes=30_000, keep=3), flush=NO_SYNC)
    for _ in range(8):
        eve.write_flows(batch)
    eve.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["eve.json", "eve.json.1", "eve.json.2", "eve.json.3"]
    assert eve.files.deleted == eve.files.rotations - 3
    total = 0
    for n in names:
        events = read_events(tmp_path / n)
        assert events and len(events) % 40 == 0
        total += len(events)
    assert total <= 8 * 40
    # A restart appends to eve.json instead of overwriting it.
    before = len(read_events(tmp_path / "eve.json"))
    eve2 = EveWriter(tmp_path, flush=NO_SYNC)
    eve2.write_flows(batch)
    eve2.close()
    assert len(read_events(tmp_path / "eve.json")) == before + 40
