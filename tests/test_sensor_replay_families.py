"""`flowscope run -r` on every attack capture of pcaps/{scans,dos,bruteforce}: right family.

Issue 5, item 8: replaying the shared attack captures through the sensor — the live
code path (capture thread, queue, flow meter, pipeline, sinks), not only the rule
engine as tests/test_detect_captures.py does — must raise an alert of the capture's
family naming its attacker (spoofed floods: naming the victim), in eve.json and in the
SQLite alerts table, and no alert of any other family.

Two captures are attacks that no per-host rule can or should see (docs/detection.md,
"Shared captures"): 100 spoofed SYNs spread over 100 random targets, and a single
failed FTP login. For them the sensor must stay silent rather than guess.

Uses ../shared/data/pcaps (or $FLOWSCOPE_SHARED_DATA); skipped with the reason when
absent. Runs in-process through the console entry point, so kernels warm once.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from flowscope.cli.app import main

SHARED = Path(
    os.environ.get(
        "FLOWSCOPE_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
)
PCAPS = SHARED / "pcaps"
FOLDERS = ("scans", "dos", "bruteforce")


class Expect(NamedTuple):
    """What the replay must raise: family, rule, attacker (EVE src), victim."""

    family: str
    rule: str
    attacker: str
    victim: str


# Ground truth: src/flowscope/lab/shared_pcaps.toml (who attacks whom) and
# docs/detection.md (which rule covers the attack). None = no alert by design.
EXPECTED: dict[str, Expect | None] = {
    "scans/chrissanders_synscan.pcapng": Expect("scan", "port_scan", "172.16.0.8", "64.13.134.52"),
    "scans/ef_nmap_TCP_CONNECT_SCAN.pcap": Expect(
        "scan", "port_scan", "192.168.1.10", "192.168.1.25"
    ),
    "scans/ef_nmap_TCP_SYN_SCAN.pcap": Expect("scan", "port_scan", "192.168.1.10", "192.168.1.25"),
    "scans/ef_nmap_UDP_SCAN.pcap": Expect("scan", "port_scan", "192.168.1.10", "192.168.1.25"),
    "scans/ppa_portscan.pcap": Expect("scan", "port_scan", "10.100.25.14", "10.100.18.12"),
    "dos/stopddos_synflood_spoofed.pcap": Expect("dos", "syn_flood", "spoofed/many", "10.10.10.10"),
    "dos/stopddos_amp_dns_rrsig.pcap": Expect(
        "dos", "amplification", "spoofed/many", "10.10.10.10"
    ),
    "dos/ppa_synflood_dosattack.pcap": None,  # one SYN per random target: no victim
    "bruteforce/zeek_ftp_bruteforce.pcap": Expect(
        "bruteforce", "bruteforce", "192.168.56.1", "192.168.56.101"
    ),
    "bruteforce/ndpi_ftp_failed_login.pcap": None,  # a single failed login
}


def _captures() -> list[str]:
    """Every capture in the three folders (so a capture added there must get an entry)."""
    found = [
        f"{d}/{p.name}"
        for d in FOLDERS
        if (PCAPS / d).is_dir()
        for p in sorted((PCAPS / d).iterdir())
        if p.suffix in (".pcap", ".pcapng", ".cap")
    ]
    return found or sorted(EXPECTED)


def _replay(capture: Path, out: Path) -> int:
    argv = ["flowscope", "run", "-r", str(capture), "-o", str(out), "--status-every", "0", "-q"]
    old = sys.argv
    sys.argv = argv
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            main()
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        sys.argv = old
    return 0


@pytest.mark.parametrize("name", _captures())
def test_replay_raises_the_capture_family(name: str, tmp_path: Path) -> None:
    path = PCAPS / name
    if not path.is_file():
        pytest.skip(f"shared capture not found: {path} (set FLOWSCOPE_SHARED_DATA)")
    assert name in EXPECTED, f"{name}: new capture, add its expected alert to EXPECTED"
    want = EXPECTED[name]
    assert _replay(path, tmp_path) == 0
    alerts = [
        e
        for e in map(json.loads, (tmp_path / "eve.json").read_text().splitlines())
        if e["event_type"] == "alert"
    ]
    db = sqlite3.connect(tmp_path / "flowscope.db")
    try:
        db_families = {r[0] for r in db.execute("select family from alerts")}
    finally:
        db.close()
    families = {e["flowscope"]["family"] for e in alerts}
    if want is None:
        assert not alerts, [e["flowscope"]["message"] for e in alerts]
        assert not db_families
        return
    # the right family, and nothing else: a scan capture must not also raise "dos"
    assert families == {want.family}, [e["flowscope"]["message"] for e in alerts]
    assert db_families == {want.family}
    hits = [
        e
        for e in alerts
        if e["flowscope"]["rule"] == want.rule
        and e["flowscope"]["attacker"] == want.attacker
        and e["flowscope"]["victim"] == want.victim
    ]
    assert hits, [e["flowscope"]["message"] for e in alerts]
    # the incident runs its course within the replay: opened, then ended at end of input
    assert hits[-1]["flowscope"]["state"] == "ended"
