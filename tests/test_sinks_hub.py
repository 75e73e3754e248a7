"""SinkSet: one batch to every sink, alerts, sessions, background flushing, errors."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flowscope.config import load_config
from flowscope.errors import FlowscopeError
from flowscope.sinks.batch import PreparedBatch
from flowscope.sinks.hub import SinkSet
from flowscope.sinks.rotate import FlushPolicy
from test_sinks_batch import batch_for, risk_for, scan_flows, verdicts_for


def test_one_batch_reaches_every_sink(tmp_path: Path) -> None:
    flows = scan_flows(200)
    v = verdicts_for(200)
    rows = np.flatnonzero(v.malicious)[:5]
    with SinkSet.open(tmp_path, flush=FlushPolicy(1.0, fsync=False)) as sinks:
        sinks.write(
            flows,
            v,
            risk=risk_for(200),
            explanations={int(r): [("syn_flag_count", 1.0, 0.5)] for r in rows},
        )
        sinks.write(flows, v)  # risk and explanations are optional
        sinks.alert(
            {"alert": {"signature": "SYN flood", "severity": 1}, "flowscope": {"state": "new"}},
            incident_id="i1",
        )
        store = sinks.store
        assert store is not None
        assert store.counts()["flows"] == 400 and store.counts()["alerts"] == 1
        assert sinks.flows == 400 and sinks.alerts == 1
    (inp,) = (tmp_path / "logs").glob("input_logs_*.csv")
    assert len(inp.read_text().splitlines()) == 401
    events = [json.loads(x) for x in (tmp_path / "eve.json").read_text().splitlines()]
    assert [e["event_type"] for e in events].count("flow") == 400
    assert events[-1]["event_type"] == "alert"
    assert events[0]["flowscope"].get("risk") == risk_for(200)[0]
    with pytest.raises(ValueError, match="closed"):
        sinks.write(flows, v)


def test_from_config_selects_sinks_and_settings(tmp_path: Path) -> None:
    cfg = load_config(
        env={},
        overrides={
            "outputs.directory": str(tmp_path / "out"),
            "outputs.sinks": "eve,sqlite",
            "outputs.eve_flows": "malicious",
            "outputs.retention_flows": "50",
            "outputs.fsync": "false",
        },
    )
    batch = batch_for(100)
    with SinkSet.from_config(cfg.outputs) as sinks:
        assert [s.name for s in sinks.sinks] == ["eve", "sqlite"]
        sinks.write_batch(batch)
        store = sinks.store
        assert store is not None and store.retention.max_flows == 50
        pruned = store.prune()
        assert pruned.flows == 50
    out = tmp_path / "out"
    assert not (out / "logs").exists()
    events = (out / "eve.json").read_text().splitlines()
    assert len(events) == int(batch.verdicts.malicious.sum())


def test_unknown_sink() -> None:
    with pytest.raises(FlowscopeError, match="unknown sink 'kafka'"):
        SinkSet.open("x", sinks=["eve", "kafka"])


def test_ticker_flushes_an_idle_sensor(tmp_path: Path) -> None:
    sinks = SinkSet.open(tmp_path, flush=FlushPolicy(0.4, fsync=False))
    sinks.write(scan_flows(10), verdicts_for(10))
    eve = tmp_path / "eve.json"
    assert eve.read_text() == ""  # buffered
    deadline = time.monotonic() + 5
    while eve.read_text().count("\n") < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert eve.read_text().count("\n") == 10
    db = sqlite3.connect(tmp_path / "flowscope.db")  # another connection sees the commit
    assert db.execute("SELECT COUNT(*) FROM flows").fetchone()[0] == 10
    db.close()
    sinks.close()


def test_new_session_goes_to_the_store(tmp_path: Path) -> None:
    with SinkSet.open(tmp_path, sinks=["sqlite"], flush=FlushPolicy(1.0, False)) as sinks:
        sinks.write(scan_flows(5), verdicts_for(5))
        sid = sinks.new_session("cleared")
        assert sinks.store is not None and sinks.store.session == sid
        assert sinks.store.query_flows().total == 0
    with SinkSet.open(tmp_path / "b", sinks=["eve"], background=False) as sinks:
        assert sinks.new_session() is None and sinks.store is None


class Broken:
    name = "broken"

    def __init__(self) -> None:
        self.closed = False

    def write_flows(self, batch: PreparedBatch) -> None:
        raise FlowscopeError("cannot write /full/disk: No space left on device")

    def write_alert(self, event: Mapping[str, Any], incident_id: str | None = None) -> None:
        raise FlowscopeError("cannot write /full/disk: No space left on device")

    def oldest_pending(self) -> float | None:
        return None

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_a_failing_sink_does_not_starve_the_others(tmp_path: Path) -> None:
    good = SinkSet.open(tmp_path, sinks=["sqlite"], background=False)
    store = good.store
    assert store is not None
    broken = Broken()
    sinks = SinkSet([broken, store], background=False)
    with pytest.raises(FlowscopeError, match="No space left"):
        sinks.write(scan_flows(5), verdicts_for(5))
    assert store.counts()["flows"] == 5
    with pytest.raises(FlowscopeError, match="No space left"):
        sinks.alert({"alert": {"signature": "x"}})
    assert store.counts()["alerts"] == 1
    with pytest.raises(TypeError):
        sinks.alert(["not", "a", "dict"])  # type: ignore[arg-type]
    sinks.close()
    assert broken.closed and store.closed


def test_ticker_errors_surface_on_the_next_call(tmp_path: Path) -> None:
    class FailingFlush(Broken):
        def oldest_pending(self) -> float | None:
            return 0.0

        def flush(self) -> None:
            raise OSError("disk gone")

    sinks = SinkSet([FailingFlush()], flush_interval=0.1)
    deadline = time.monotonic() + 5
    while sinks._error is None and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(FlowscopeError, match="disk gone"):
        sinks.flush()
    sinks.close()
