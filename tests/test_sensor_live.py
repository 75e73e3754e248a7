"""`flowscope run -i` on a veth in a private namespace: traffic in, SIGINT, outputs, no loss.

Root only (namespaces, raw sockets). The sensor runs as a separate process inside the
namespace ``fsc-<random>`` (only 10.213.0.x addresses, nothing routed out), which the
test bed deletes afterwards with everything running in it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flowscope.capture._live_testbed import RawSender, VethNamespace, udp_flows

FLOWS = 300
PACKETS = 3000  # 10 per flow


def _why_skip() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespace, raw sockets)"
    if shutil.which("ip") is None:
        return "needs iproute2 (`ip`)"
    return None


pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(_why_skip() is not None, reason=_why_skip() or ""),
]


def test_live_run_sigint_outputs_and_no_loss(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with VethNamespace() as ns:
        cmd = [
            "ip", "netns", "exec", ns.name, sys.executable, "-m", "flowscope", "run",
            "-i", ns.rcv, "-o", str(out), "--status-every", "0.5",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            status: list[str] = []
            ready = threading.Event()

            def read_stderr() -> None:
                assert proc.stderr is not None
                for line in proc.stderr:
                    status.append(line)
                    if line.startswith("flowscope: ") and "packets" in line:
                        ready.set()

            reader = threading.Thread(target=read_stderr, daemon=True)
            reader.start()
            # The first status line comes once the capture is open (after warm-up).
            assert ready.wait(60), f"sensor did not start: {''.join(status)}"
            with RawSender(ns.snd, udp_flows(FLOWS), ns.name) as sender:
                sent = sender.send(PACKETS, rate=20_000).sent
            assert sent == PACKETS
            deadline = time.monotonic() + 10
            seen = 0
            while time.monotonic() < deadline:
                found = [re.search(r"packets ([\d,]+)", s) for s in status]
                seen = max([int(x.group(1).replace(",", "")) for x in found if x] + [0])
                if seen >= PACKETS:
                    break
                time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            stdout, _ = proc.communicate(timeout=30)
            reader.join(5)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, "".join(status)
    assert seen >= PACKETS
    # closing summary: every packet metered, every flow finished by the final flush
    m = re.search(r"packets\s+([\d,]+) \(captured ([\d,]+)\)", stdout)
    assert m, stdout
    assert int(m.group(1).replace(",", "")) >= PACKETS
    assert re.search(r"lost\s+0 packets \(kernel 0, queue 0 in 0 batches\)", stdout), stdout
    fm = re.search(r"flows\s+([\d,]+)", stdout)
    assert fm, stdout
    flows = int(fm.group(1).replace(",", ""))
    assert flows >= FLOWS
    # outputs: CSV pair, EVE flow events, SQLite rows, all with the same flows
    events = [json.loads(line) for line in (out / "eve.json").open()]
    ports = {e["src_port"] for e in events if e["event_type"] == "flow" and e.get("src_port")}
    assert set(range(20000, 20000 + FLOWS)) <= ports
    assert len(list((out / "logs").glob("input_logs_*.csv"))) == 1
    assert len(list((out / "logs").glob("output_logs_*.csv"))) == 1
    db = sqlite3.connect(out / "flowscope.db")
    try:
        assert db.execute("select count(*) from flows").fetchone()[0] == flows
    finally:
        db.close()
    assert subprocess.run(["ip", "netns", "pids", ns.name], capture_output=True).returncode != 0
