"""Property tests of the rule engine: random flow batches never crash it, its state stays
within the caps, the alert lifecycle is well formed, and reporting flows as snapshots
before their final record changes nothing about the alerts. Also the lab replay and
scoring helpers on a small hand-made run."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowscope.detect import AlertEvent, DetectConfig, RuleEngine
from flowscope.detect.evaluate import run as evaluate_run
from flowscope.detect.frame import ACK, FIN, PSH, RST, SYN, URG
from flowscope.detect.replay import release_times, replay
from test_detect_helpers import ESTABLISHED, NS, T0, addresses, flows, half_open, refused

SMALL = DetectConfig(
    max_keys=64, max_rows=256, max_tracked_flows=128, max_active_alerts=8,
    port_scan={"min_ports": 3}, host_sweep={"min_hosts": 3}, stealth_scan={"min_ports": 2},
    syn_flood={"min_half_open": 4, "min_sources": 2, "min_ratio": 0.2},
    udp_flood={"min_packets": 50}, icmp_flood={"min_packets": 50},
    amplification={"min_bytes": 1000, "min_reflectors": 1, "min_mean_packet": 0},
    bruteforce={"min_sessions": 2}, slow_dos={"min_connections": 2, "min_age_s": 1},
)  # fmt: skip
POOL = addresses(4, "10.5")


@st.composite
def flow_batch(draw: st.DrawFn, t0: int) -> pa.Table:
    n = draw(st.integers(1, 60))
    ints = lambda lo, hi: np.array(draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n)))  # noqa: E731
    src = [POOL[i] for i in ints(0, len(POOL) - 1)]
    dst = [POOL[i] for i in ints(0, len(POOL) - 1)]
    proto = np.array([6, 6, 6, 17, 17, 1, 58])[ints(0, 6)]
    # typical flag sets (SYN, full session, FIN/NULL/Xmas/ACK probes, RST) and noise
    fwd = np.array([SYN, SYN, ESTABLISHED, FIN, 0, FIN | PSH | URG, ACK, RST, 0xFF])
    bwd = np.array([0, 0, RST | ACK, SYN | ACK, ESTABLISHED, 0xFF])
    return flows(
        src, dst, np.where(ints(0, 1) == 1, np.array([21, 22, 53, 80])[ints(0, 3)], ints(0, 99)),
        sport=ints(1, 70_000) % 65_536, proto=proto,
        t=t0 + ints(0, 30) * NS // 3, duration=ints(0, 40) * NS // 2,
        fwd_packets=ints(0, 50), bwd_packets=ints(0, 3) * ints(0, 20), fwd_bytes=ints(0, 500),
        bwd_bytes=ints(0, 3) * ints(0, 2000), fwd_flags=fwd[ints(0, len(fwd) - 1)],
        bwd_flags=bwd[ints(0, len(bwd) - 1)],
        icmp_type=np.where(np.isin(proto, [1, 58]), ints(0, 20), -1),
        active=ints(0, 1).astype(bool), n=n,
    )  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_batches_never_break_the_engine(data: st.DataObject) -> None:
    engine = RuleEngine(SMALL, run_id="p")
    events: list[AlertEvent] = []
    t0 = T0
    for _ in range(data.draw(st.integers(1, 5))):
        batch = data.draw(flow_batch(t0))
        events += engine.process(batch)
        s = engine.stats
        assert s.tracked_flows <= SMALL.max_tracked_flows
        assert s.active_alerts <= SMALL.max_active_alerts
        for r in s.rules.values():
            assert r.keys <= SMALL.max_keys and r.rows <= SMALL.max_rows
        t0 += data.draw(st.integers(0, 200)) * NS
    events += engine.flush()
    assert engine.stats.active_alerts == 0
    kinds: dict[str, list[str]] = {}
    for e in events:
        kinds.setdefault(e.alert.id, []).append(e.kind)
        a = e.alert
        assert a.flows >= 0 and a.packets >= 0 and a.first_seen <= a.last_seen
        assert a.to_eve()["alert"]["signature_id"] == a.signature_id
    for seq in kinds.values():
        assert seq[0] == "new" and seq[-1] == "end" and seq.count("end") == 1


@settings(max_examples=25, deadline=None)
@given(
    st.integers(5, 60),  # ports probed
    st.integers(1, 4),  # snapshots per flow
    st.integers(1, 50),  # probes per second
)
def test_snapshots_before_the_final_record_change_no_alert(
    ports: int, snapshots: int, rate: int
) -> None:
    t = T0 + np.arange(ports) * (NS // rate)
    finals = refused("192.0.2.1", "198.51.100.1", np.arange(1, ports + 1), t=t, duration=NS)

    def alerts(batches: list[pa.Table]) -> list[tuple[str, str, int]]:
        engine = RuleEngine(SMALL, run_id="p")
        events = [e for b in batches for e in engine.process(b)] + engine.flush()
        return sorted((e.alert.rule, e.alert.attacker, e.alert.flows) for e in events
                      if e.kind == "end")  # fmt: skip

    batches = []
    for k in range(1, snapshots + 1):  # each flow reported running, k × 0.6 s in
        last = finals.column("first_seen").to_numpy() + k * 6 * NS // 10
        snap = finals.set_column(
            finals.column_names.index("last_seen"), "last_seen", pa.array(last)
        )
        batches.append(snap.append_column("active", pa.array(np.ones(ports, bool))))
    batches.append(finals)
    assert alerts(batches) == alerts([finals])


def test_replay_releases_flows_like_the_meter(tmp_path: Path) -> None:
    t = T0 + np.arange(40) * (NS // 10)
    scan = refused("192.0.2.1", "198.51.100.1", np.arange(1, 41), t=t)
    idle = half_open("192.0.2.2", "198.51.100.1", 80, t=T0, n=1).set_column(
        7, "end_reason", pa.array(["idle"])
    )
    table = pa.concat_tables([scan, idle])
    released = release_times(table)
    assert released[-1] == T0 + 120 * NS and released[0] == int(t[0]) + NS
    batches = list(replay(table))
    ticks = [at for at, _ in batches]
    assert ticks == sorted(ticks)
    finished = sum(int((~b.column("active").to_numpy()).sum()) for _, b in batches)
    assert finished == table.num_rows  # every flow released once as finished

    # A labelled run directory: the scan is found, with its delay; nothing else fires.
    labelled = table.append_column("attack_kind", pa.array(["syn_scan"] * table.num_rows))
    pq.write_table(labelled, tmp_path / "flows.parquet")
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["attack_id", "kind", "intensity", "attacker_addr", "victim_addr",
                    "spoofed", "start_ns", "end_ns"])  # fmt: skip
        w.writerow(["A1", "syn_scan", "low", "192.0.2.1", "198.51.100.1", "0", T0, int(t[-1])])
    report = evaluate_run(tmp_path)
    (attack,) = report.attacks
    assert attack.detected and attack.alerts == 1 and 0 < (attack.delay_s or 0) < 5
    assert report.false_alerts == []
    assert "syn_scan" in report.summary()
