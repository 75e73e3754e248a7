"""`flowscope analyze` and `flowscope run -r` on real captures: outputs, verdicts, alerts, risk.

Uses ../shared/data/pcaps (skipped with a reason when absent). The commands run
in-process through the console entry point, so the kernels are warmed once.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sqlite3
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flowscope.cli.app import main

SHARED = Path(
    os.environ.get(
        "FLOWSCOPE_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
)
SCAN = SHARED / "pcaps" / "scans" / "ef_nmap_TCP_SYN_SCAN.pcap"
FLOOD = SHARED / "pcaps" / "dos" / "stopddos_synflood_spoofed.pcap"
RISK = {"low": 0, "medium": 1, "high": 2, "critical": 3}

needs_data = pytest.mark.skipif(
    not (SCAN.is_file() and FLOOD.is_file()),
    reason=f"shared captures not found under {SHARED / 'pcaps'} (set FLOWSCOPE_SHARED_DATA)",
)


def flowscope(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """Run the console entry point in-process; returns the exit status."""
    monkeypatch.setattr(sys, "argv", ["flowscope", *args])
    try:
        main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def outputs(directory: Path) -> dict[str, Any]:
    logs = directory / "logs"
    (inp,) = sorted(logs.glob("input_logs_*.csv"))
    (out,) = sorted(logs.glob("output_logs_*.csv"))
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    with inp.open(newline="") as f:
        n_input = sum(1 for _ in csv.DictReader(f))
    events = [json.loads(line) for line in (directory / "eve.json").open()]
    db = sqlite3.connect(directory / "flowscope.db")
    try:
        db_flows = db.execute("select count(*) from flows").fetchone()[0]
        db_alerts = db.execute("select rule, family from alerts").fetchall()
    finally:
        db.close()
    return {
        "rows": rows,
        "n_input": n_input,
        "events": events,
        "db_flows": db_flows,
        "db_alerts": db_alerts,
    }


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Both captures analysed once (module scope): output directory and printed summary."""
    if not (SCAN.is_file() and FLOOD.is_file()):
        pytest.skip(f"shared captures not found under {SHARED / 'pcaps'}")
    mp = pytest.MonkeyPatch()
    done: dict[str, tuple[Path, str]] = {}
    try:
        for name, path in (("scan", SCAN), ("flood", FLOOD)):
            out = tmp_path_factory.mktemp(f"analyze-{name}")
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                rc = flowscope(mp, "analyze", str(path), "-o", str(out))
            assert rc == 0
            done[name] = (out, buf.getvalue())
    finally:
        mp.undo()
    return done


@needs_data
@pytest.mark.parametrize(
    ("name", "model_family", "rule", "alert_family"),
    [("scan", "scan", "port_scan", "scan"), ("flood", None, "syn_flood", "dos")],
)
def test_analyze_outputs_verdicts_alerts(
    analyzed: dict[str, tuple[Path, str]],
    name: str,
    model_family: str | None,
    rule: str,
    alert_family: str,
) -> None:
    out, summary = analyzed[name]
    o = outputs(out)
    rows = o["rows"]
    n = len(rows)
    assert n > 500
    assert o["n_input"] == n
    assert o["db_flows"] == n
    kinds = Counter(e["event_type"] for e in o["events"])
    # one final flow event per flow, plus provisional ones (early verdicts on running
    # flows the model flagged, docs/outputs.md), at most one per flow
    running = [
        e
        for e in o["events"]
        if e["event_type"] == "flow" and e["flowscope"]["end_reason"] == "running"
    ]
    assert kinds["flow"] - len(running) == n
    assert len({e["flow_id"] for e in running}) == len(running)
    assert kinds["alert"] >= 1
    # the model flags the bulk of the attack ...
    flagged = [r for r in rows if r["verdict"] == "Malicious"]
    assert len(flagged) > 0.5 * n
    if model_family is not None:
        assert Counter(r["family"] for r in flagged).most_common(1)[0][0] == model_family
    # ... and a rule alert names it, with the right family
    assert (rule, alert_family) in o["db_alerts"]
    alerts = [e for e in o["events"] if e["event_type"] == "alert"]
    assert any(e["flowscope"]["rule"] == rule for e in alerts)
    assert all(e["flowscope"]["family"] == alert_family for e in alerts)
    # each step carries the capture time it was taken, at or after the incident began
    assert all(e["flowscope"]["event_time"] >= e["flowscope"]["first_seen"] for e in alerts)
    # explanations for flagged flows
    assert any(r["top_features"] for r in flagged)
    # risk present everywhere, higher for the attack flows
    assert all(r["risk"] in RISK for r in rows)
    benign = [RISK[r["risk"]] for r in rows if r["verdict"] != "Malicious"]
    attack = [RISK[r["risk"]] for r in flagged]
    assert min(attack) >= 1
    assert sum(attack) / len(attack) > (sum(benign) / len(benign) if benign else 0)
    assert sum(a >= 2 for a in attack) > 0.5 * len(attack)
    # the summary: flows, malicious by family, attacker → victim
    assert f"flows     {n:,}" in summary
    assert "→" in summary and rule in summary
    assert "lost      0 packets" in summary


@needs_data
def test_scan_alert_names_attacker_and_victim(analyzed: dict[str, tuple[Path, str]]) -> None:
    _, summary = analyzed["scan"]
    assert "192.168.1.10 → 192.168.1.25" in summary


@needs_data
def test_replay_matches_analyze(
    analyzed: dict[str, tuple[Path, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc = flowscope(
        monkeypatch, "run", "-r", str(SCAN), "-o", str(tmp_path), "--status-every", "0", "-q"
    )
    assert rc == 0
    replay = outputs(tmp_path)
    offline = outputs(analyzed["scan"][0])
    assert len(replay["rows"]) == len(offline["rows"])
    assert replay["db_flows"] == offline["db_flows"]
    key = sorted(r["Flow ID"] for r in replay["rows"])
    assert key == sorted(r["Flow ID"] for r in offline["rows"])
    assert sorted(replay["db_alerts"]) == sorted(offline["db_alerts"])


@needs_data
def test_realtime_replay_paced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--realtime with --duration: stops on time, still flushes and writes what it saw."""
    t0 = time.monotonic()
    rc = flowscope(
        monkeypatch, "run", "-r", str(FLOOD), "--realtime", "--duration", "0.5",
        "-o", str(tmp_path), "--status-every", "0", "-q",
    )  # fmt: skip
    assert rc == 0
    assert time.monotonic() - t0 < 30
    assert (tmp_path / "eve.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["analyze", "/nonexistent/x.pcap"], "cannot open capture"),
        (["run", "-r", "/nonexistent/x.pcap"], "cannot open capture"),
        (["analyze", "--model", "no-such-model", str(SCAN)], "no-such-model"),
        (["run", "-i", "nosuch0"], "no interface named 'nosuch0'"),
        (["run"], "nothing to capture"),
    ],
)
def test_one_line_errors(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("FLOWSCOPE_CONFIG", raising=False)
    monkeypatch.delenv("FLOWSCOPE_CAPTURE_INTERFACE", raising=False)
    rc = flowscope(monkeypatch, *args, "-o", str(tmp_path / "out"))
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert err.startswith("flowscope: error: ") and message in err
    assert not (tmp_path / "out").exists()  # nothing written on a startup error


@needs_data
def test_analyze_several_files(
    analyzed: dict[str, tuple[Path, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each file gets its own flow table and rule engine; the outputs are shared."""
    rc = flowscope(monkeypatch, "analyze", str(SCAN), str(SCAN), "-o", str(tmp_path), "-q")
    assert rc == 0
    twice = outputs(tmp_path)
    once = outputs(analyzed["scan"][0])
    assert twice["db_flows"] == 2 * once["db_flows"]
    assert sorted(twice["db_alerts"]) == sorted(once["db_alerts"] * 2)
