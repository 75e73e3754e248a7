"""Rule detectors on the public captures of ../shared/data/pcaps.

Attack captures must raise exactly the expected alerts — one per incident, naming the
attacker and victim of src/flowscope/lab/shared_pcaps.toml — and every benign capture
(the nDPI test captures, pcaps/benign, Suricata's netflow sample) none at all. Flow
tables come from ``extract_capture`` (finished flows only), so the engine runs with
``DetectConfig().for_finished_flows()``.

Captures that need a word (also in docs/detection.md):

- dos/ppa_synflood_dosattack.pcap: 100 SYNs from random sources to random targets in
  16 ms — no host receives more than one, so no per-host rule can or should fire;
- dos/stopddos_amp_dns_rrsig.pcap: a one-way capture at the victim; besides the
  reflected DNS answers it holds the victim's own DNS answers from 8.8.8.8 (to
  ephemeral ports: answers, not UDP probes) and Internet background scans (at most
  28 ports per scanner within a minute, the largest 28 SYNs over 30 s) — one alert;
- bruteforce/ndpi_ftp_failed_login.pcap: a single failed login, not brute force;
- web/*: SQL injection is not a flow-rule matter (the classifier's job): no alert.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pyarrow as pa
import pytest

from flowscope.detect import AlertEvent, DetectConfig, RuleEngine
from flowscope.flows.extract import ExtractSummary, extract_capture
from flowscope.flows.meter import MeterConfig

DATA = Path(
    os.environ.get(
        "FLOWSCOPE_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
)
PCAPS = DATA / "pcaps"
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".gz")
CONFIG = DetectConfig().for_finished_flows()

# capture → the alerts it must raise: (rule, attacker, victim, victim port or None)
EXPECTED: dict[str, list[tuple[str, str, str, int | None]]] = {
    "scans/chrissanders_synscan.pcapng": [("port_scan", "172.16.0.8", "64.13.134.52", None)],
    "scans/ef_nmap_TCP_CONNECT_SCAN.pcap": [("port_scan", "192.168.1.10", "192.168.1.25", None)],
    "scans/ef_nmap_TCP_SYN_SCAN.pcap": [("port_scan", "192.168.1.10", "192.168.1.25", None)],
    "scans/ef_nmap_UDP_SCAN.pcap": [("port_scan", "192.168.1.10", "192.168.1.25", None)],
    "scans/ppa_portscan.pcap": [("port_scan", "10.100.25.14", "10.100.18.12", None)],
    "dos/ppa_synflood_dosattack.pcap": [],
    "dos/stopddos_synflood_spoofed.pcap": [("syn_flood", "spoofed/many", "10.10.10.10", 25565)],
    "dos/stopddos_amp_dns_rrsig.pcap": [("amplification", "spoofed/many", "10.10.10.10", None)],
    "bruteforce/zeek_ftp_bruteforce.pcap": [("bruteforce", "192.168.56.1", "192.168.56.101", 21)],
    "bruteforce/ndpi_ftp_failed_login.pcap": [],
    "web/chrissanders_http_dvwa_sqlinjection.pcapng": [],
    "web/cicids2017_WebattackSQLinj.pcap": [],
}
BENIGN_FOLDERS = ("ndpi", "benign", "suricata_verify_netflow")


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(
            f"shared captures not found at {path} (set FLOWSCOPE_SHARED_DATA to the shared "
            "data folder; they are not shipped with the repository)"
        )
    return path


@cache
def flow_tables(path: Path) -> tuple[pa.Table, ...]:
    return tuple(extract_capture(path, MeterConfig(), ExtractSummary()))


def detect(path: Path) -> list[AlertEvent]:
    engine = RuleEngine(CONFIG, run_id="t")
    events: list[AlertEvent] = []
    for table in flow_tables(path):
        events += engine.process(table)
    return events + engine.flush()


def captures(folder: Path) -> Iterator[Path]:
    for p in sorted(folder.iterdir()):
        if p.suffix in CAPTURE_SUFFIXES:
            yield p


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_attack_capture_raises_exactly_the_expected_alerts(name: str) -> None:
    events = detect(_require(PCAPS / name))
    new = [e.alert for e in events if e.kind == "new"]
    got = [(a.rule, a.attacker, a.victim, a.victim_port) for a in new]
    assert got == EXPECTED[name]
    # One alert per incident: every event is about one of the opened alerts, each
    # alert ends exactly once, and the end carries the final counts.
    ids = {a.id for a in new}
    assert {e.alert.id for e in events} == ids
    ends = [e.alert for e in events if e.kind == "end"]
    assert sorted(a.id for a in ends) == sorted(ids)
    for a in ends:
        assert a.state == "ended" and a.flows > 0 and a.first_seen <= a.last_seen


def test_attack_alert_details() -> None:
    def final(name: str) -> dict[str, object]:
        (end,) = [e.alert for e in detect(_require(PCAPS / name)) if e.kind == "end"]
        return end.model_dump()

    flood = final("dos/stopddos_synflood_spoofed.pcap")
    assert flood["severity"] == "critical" and flood["flows"] > 37_000
    assert 35_000 < flood["source_count"] < 40_000  # sketch estimate of 37,681 sources
    scan = final("scans/ef_nmap_TCP_SYN_SCAN.pcap")
    assert scan["port_count"] == 1000 and scan["family"] == "scan"
    amp = final("dos/stopddos_amp_dns_rrsig.pcap")
    assert amp["source_count"] >= 40 and amp["bytes"] > 1_000_000
    brute = final("bruteforce/zeek_ftp_bruteforce.pcap")
    assert brute["flows"] == 30 and brute["service"] == "ftp"


def test_benign_captures_raise_no_alert() -> None:
    checked: list[str] = []
    alerts: list[str] = []
    for folder in BENIGN_FOLDERS:
        for path in captures(_require(PCAPS / folder)):
            checked.append(path.name)
            alerts += [
                f"{folder}/{path.name}: {e.alert.message}" for e in detect(path) if e.kind == "new"
            ]
    assert len(checked) >= 250  # 255 nDPI captures, 4 benign, 1 Suricata sample
    assert alerts == []
