"""The sensor live on a lab link: benign traffic raises nothing, real attacks alert in 5 s.

Issue 5, item 8. One lab network (src/flowscope/lab: namespaces, bridge, nginx, sshd,
dnsmasq, pyftpdlib, benign clients) with ``flowscope run -i br0`` started once in the
lab's switch namespace, product defaults, no overrides:

1. a minute of benign lab traffic (web, TLS, DNS, SSH, SCP, FTP, ping, UDP, iperf,
   idle connections) — no alert at all;
2. then real attack tools from attacker namespaces, one after the other while the
   benign clients keep going: nmap SYN scan, hping3 SYN flood, hping3 SYN flood with
   random spoofed sources, patator SSH brute force. Each must raise, within 5 s of
   the tool's start (wall clock, until the alert is readable in eve.json), a new alert
   of its family naming the attacker — for the spoofed flood, naming the victim with
   attacker ``spoofed/many`` (there is no one to name).

hydra's FTP and SSH modules are not in the 5 s set: they guess several passwords per
connection, and the brute-force rule counts connections (10 in 60 s), so with 8 tasks
hydra FTP needs two waves of connections (~3.4 s), and alerts after 4.5-5.4 s here;
benchmarks/bench_latency.py measures it. hydra SSH is covered in docs/detection.md.
hydra's HTTP basic-auth brute force alerted in 2.5 s in two runs but not within 5 s
in a third, so it is not in the set either (docs/sensor.md).

At the end the sensor gets SIGINT: the SQLite alerts table holds the same incidents and
no alert names a benign client. Latencies are printed (``pytest -s``) and recorded by
benchmarks/bench_latency.py in docs/benchmarks.md. Root only; skipped with the reason
without root or the lab tools. About 1.5 minutes, most of it the benign minute.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from labskip import lab_skip_reason

pytestmark = pytest.mark.root

BENIGN_S = 60.0
DEADLINE_S = 5.0
# (kind, attacker, victim, intensity, expected rule). Distinct (attacker, victim) pairs
# per rule: an open incident of the same key would absorb the next attack as an update.
# The scan's victim is not the flood's: 2,000 scanned ports in the victim's 10 s window
# dilute the flood's half-open-per-port test until the scan leaves the window (a real
# effect, measured by benchmarks/bench_latency.py), which is not what this test is about.
ATTACKS = (
    ("syn_scan", "a1", "ftp", "medium", "port_scan"),
    ("syn_flood", "a2", "web", "medium", "syn_flood"),
    ("syn_flood_spoofed", "a1", "misc", "medium", "syn_flood"),
    ("ssh_bruteforce", "a2", "ssh", "medium", "bruteforce"),
)


_reason = lab_skip_reason()
if _reason:
    pytestmark = [pytest.mark.root, pytest.mark.skip(reason=_reason)]


def test_live_sensor_on_lab_link(tmp_path: Path) -> None:
    from flowscope.lab.live import LiveLab
    from flowscope.lab.netns import existing_lab_namespaces

    out = tmp_path / "sensor"
    latencies: dict[str, float] = {}
    misses: list[str] = []
    with LiveLab(say=print) as lab:
        runid = lab.lab.runid
        sensor = lab.start_sensor(out)
        sensor.wait_ready()
        clients = {h.addr for h in lab.lab.hosts.values() if h.role == "client"}
        benign_start = time.time()
        lab.start_benign(until=benign_start + BENIGN_S + 120)
        time.sleep(BENIGN_S)
        sensor.eve.poll()
        benign_alerts = [a.fs["message"] for a in sensor.eve.alerts]
        assert not benign_alerts, f"benign traffic raised alerts: {benign_alerts}"
        attack_start = time.time()
        for kind, attacker, victim, intensity, rule in ATTACKS:
            atk = lab.start_attack(
                kind, attacker=attacker, victim=victim, intensity=intensity, duration=8
            )
            hit = sensor.eve.wait(atk.detected_by, atk.start_ns + int(DEADLINE_S * 1e9))
            lab.finish_attack(atk, kill=True)  # seen (or too late): no need to go on
            if hit is None:
                misses.append(f"{kind}: no {atk.family} alert naming the attacker in 5 s")
                continue
            assert hit.fs["rule"] == rule, hit.fs["message"]
            latencies[kind] = (hit.seen_ns - atk.start_ns) / 1e9
            time.sleep(1.0)  # the tool's last packets and answers pass before the next
        rc = lab.stop_sensor()
        status = sensor.status()
    print("detection latency (attack start -> alert in eve.json), s:")
    for kind, s in latencies.items():
        print(f"  {kind:<20} {s:5.2f}")
    assert not misses, f"{misses}\n{status[-1500:]}"
    assert rc == 0, status[-2000:]
    # Outputs after SIGINT: every incident in SQLite, none before the attacks, none
    # naming a benign client (as attacker or victim).
    db = sqlite3.connect(out / "flowscope.db")
    try:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("select * from alerts")]
    finally:
        db.close()
    assert {r["family"] for r in rows} == {"scan", "dos", "bruteforce"}, rows
    for r in rows:
        fs = json.loads(r["event"])["flowscope"]
        named = {r["src_ip"], r["dest_ip"], fs["attacker"], fs["victim"]}
        assert not named & clients, fs["message"]
    for a in sensor.eve.alerts:
        assert a.seen_ns / 1e9 >= attack_start, a.fs["message"]
    assert not [n for n in existing_lab_namespaces() if n.startswith(f"fsl-{runid}-")]
