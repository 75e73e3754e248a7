"""Rotation and the flush policy; kill -9 loses at most the last second of output."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flowscope.errors import FlowscopeError
from flowscope.sinks.rotate import FlushPolicy, RotatingFiles, Rotation, stamp
from test_sinks_batch import scan_flows


class FakeClock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_buffered_until_the_deadline(tmp_path: Path) -> None:
    mono = FakeClock(100.0)
    f = RotatingFiles([tmp_path / "a.log"], flush=FlushPolicy(1.0, fsync=False), monotonic=mono)
    f.write([b"one\n"])
    assert f.oldest_pending() == 100.0
    assert (tmp_path / "a.log").read_bytes() == b""  # created, nothing handed over yet
    mono.t = 100.5
    f.write([b"two\n"])  # not due yet
    assert (tmp_path / "a.log").read_bytes() == b""
    assert not f.flush_if_due()
    assert f.flush_if_due(slack=0.5)  # the ticker flushes early
    assert (tmp_path / "a.log").read_bytes() == b"one\ntwo\n" and f.oldest_pending() is None
    f.write([b"three\n"])
    mono.t = 101.6
    f.write([b"four\n"])  # the oldest pending byte is 1.1 s old: this write flushes
    assert (tmp_path / "a.log").read_bytes() == b"one\ntwo\nthree\nfour\n"
    f.close()
    with pytest.raises(ValueError):
        f.write([b"x"])


def test_write_through_and_headers(tmp_path: Path) -> None:
    f = RotatingFiles(
        [tmp_path / "a.csv", tmp_path / "b.csv"],
        naming="timestamped",
        rotation=Rotation(max_bytes=12),
        flush=FlushPolicy(0.0, fsync=True),
        clock=FakeClock(),
    )
    f.write([b"1,2\n", b""], headers=[b"x,y\n", b"z\n"])
    a, b = f.current or []
    assert a.read_bytes() == b"x,y\n1,2\n" and b.read_bytes() == b""  # no data, no header
    f.write([b"3,4\n", b"5\n"], headers=[b"x,y\n", b"z\n"])
    assert b.read_bytes() == b"z\n5\n"
    f.write([b"6,7\n", b"8\n"], headers=[b"x,y\n", b"z\n"])  # a would pass 12 bytes: rotate
    a2, b2 = f.current or []
    assert a2 != a and a2.name == f"a_{stamp(FakeClock()())}_1.csv"
    assert a2.read_bytes() == b"x,y\n6,7\n" and b2.read_bytes() == b"z\n8\n"
    assert a.read_bytes() == b"x,y\n1,2\n3,4\n"
    f.close()


def test_numbered_keep_all(tmp_path: Path) -> None:
    f = RotatingFiles([tmp_path / "eve.json"], rotation=Rotation(max_bytes=4), flush=FlushPolicy(0))
    for i in range(5):
        f.write([f"{i}\n".encode() * 2])
    f.close()
    assert (tmp_path / "eve.json").read_text() == "4\n4\n"
    assert (tmp_path / "eve.json.4").read_text() == "0\n0\n"
    assert f.rotations == 4 and f.deleted == 0


def test_timestamped_keep_counts_earlier_runs(tmp_path: Path) -> None:
    for i in range(4):  # files a previous run left
        (tmp_path / f"x_2023010{i}T000000Z.csv").write_text("old\n")
    (tmp_path / "x_notes.csv").write_text("not a log\n")
    f = RotatingFiles(
        [tmp_path / "x.csv"], naming="timestamped", rotation=Rotation(keep=2), clock=FakeClock()
    )
    f.write([b"new\n"])
    f.close()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [
        "x_20230102T000000Z.csv",
        "x_20230103T000000Z.csv",
        f"x_{stamp(FakeClock()())}.csv",
        "x_notes.csv",
    ]
    assert f.deleted == 2


def test_unwritable_directory_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    f = RotatingFiles([tmp_path / "file" / "eve.json"])
    with pytest.raises(FlowscopeError, match="cannot write"):
        f.write([b"x"])


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        Rotation(max_bytes=-1)
    with pytest.raises(ValueError):
        FlushPolicy(interval=61)


# ----------------------------------------------------------------------------- kill -9

CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np, pyarrow as pa, pyarrow.parquet as pq
    from flowscope.models.classify import make_verdicts
    from flowscope.sinks.hub import SinkSet

    flows = pq.read_table(sys.argv[1])
    n = flows.num_rows
    proba = np.random.default_rng(0).dirichlet([4, 1, 1], n).astype(np.float32)
    v = make_verdicts(("benign", "scan", "dos"), proba, 0.5)
    sinks = SinkSet.open(sys.argv[2])  # default policy: flush within 1 s, fsync
    col = flows.column_names.index("flow_id")
    limit = int(sys.argv[3])  # batches to write before idling; 0 = no limit
    i = 0
    while not limit or i < limit:
        t = flows.set_column(col, "flow_id", pa.array([f"b{i}-{j}" for j in range(n)]))
        sinks.write(t, v, risk=["high"] * n)
        sinks.alert({"alert": {"signature": "s", "severity": 1},
                     "flowscope": {"incident_id": f"i{i}", "state": "new"}})
        print(i, time.time(), flush=True)
        i += 1
        time.sleep(0.05)
    time.sleep(3600)  # idle: only the background ticker can flush now
    """
)


def _batches(keys: list[str], n: int) -> set[int]:
    """Batch numbers whose n flows are all present."""
    counts: dict[int, int] = {}
    for k in keys:
        if k.startswith("b") and "-" in k:
            b = int(k[1 : k.index("-")])
            counts[b] = counts.get(b, 0) + 1
    return {b for b, c in counts.items() if c == n}


@pytest.mark.parametrize("mode", ["busy", "idle"])
def test_kill_9_loses_at_most_the_last_second(tmp_path: Path, mode: str) -> None:
    """Busy: killed while writing every 50 ms. Idle: killed 1.1 s after the last write,
    which only the background ticker can have flushed."""
    n = 20
    batches = 30 if mode == "busy" else 15
    src = tmp_path / "flows.parquet"
    pq.write_table(scan_flows(n), src)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(src), str(out), "0" if mode == "busy" else "15"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    written: dict[int, float] = {}
    try:
        assert proc.stdout is not None
        deadline = time.time() + 60
        while len(written) < batches and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            i, t = line.split()
            written[int(i)] = float(t)
        assert len(written) >= batches, proc.stderr.read() if proc.stderr else ""
        # busy: kill at some point between writes and flushes; idle: after the last write
        time.sleep(0.3 if mode == "busy" else 1.1)
        t_kill = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    for line in rest.splitlines():
        i, t = line.split()
        written[int(i)] = float(t)
    must = {i for i, t in written.items() if t < t_kill - 1.0}
    assert len(must) >= (10 if mode == "busy" else 15)

    def lines(path: Path) -> list[str]:
        return path.read_text(errors="replace").splitlines()

    # CSV pair: every row of every batch older than 1 s (a torn last line is allowed).
    (inp,) = (out / "logs").glob("input_logs_*.csv")
    (outp,) = (out / "logs").glob("output_logs_*.csv")
    for path in (inp, outp):
        rows = list(csv.reader(io.StringIO(path.read_text(errors="replace"))))
        assert rows[0][0] == "Flow ID"
        assert must <= _batches([r[0] for r in rows[1:] if r], n), path.name
    # EVE: every complete line parses; flows and alerts of old batches are there.
    events = []
    eve_lines = lines(out / "eve.json")
    for k, line in enumerate(eve_lines):
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            assert k == len(eve_lines) - 1  # only the very last line may be torn
    keys = [e["flowscope"]["flow_key"] for e in events if e["event_type"] == "flow"]
    assert must <= _batches(keys, n)
    alerts = {e["flowscope"]["incident_id"] for e in events if e["event_type"] == "alert"}
    assert {f"i{i}" for i in must} <= alerts
    # SQLite: opens cleanly after the crash (WAL recovery) and holds every old batch.
    db = sqlite3.connect(out / "flowscope.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    keys = [r[0] for r in db.execute("SELECT flow_key FROM flows")]
    assert must <= _batches(keys, n)
    ids = {r[0] for r in db.execute("SELECT incident_id FROM alerts")}
    assert {f"i{i}" for i in must} <= ids
    db.close()
