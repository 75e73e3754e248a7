"""Pipeline and runner mechanics: queue-drop accounting, status snapshot, shutdown."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowscope.capture.batch import PacketBatch
from flowscope.config import load_config
from flowscope.flows.features import compute_features
from flowscope.flows.meter import FlowMeter
from flowscope.sensor.pipeline import Pipeline, detect_config
from flowscope.sensor.runner import Runner
from flowscope.sensor.status import status_line

ETH = bytes(12) + b"\x08\x00"


def _syn(sport: int, ts: int) -> tuple[int, bytes]:
    ip = bytes([0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    tcp = bytes([sport >> 8, sport & 255, 0, 80] + [0] * 8 + [0x50, 0x02, 0xFF, 0xFF, 0, 0, 0, 0])
    return ts, ETH + ip + tcp


def _pipeline(tmp_path: Path) -> Pipeline:
    cfg = load_config(None, env={}, overrides={"outputs.directory": str(tmp_path)})
    return Pipeline(cfg)


def test_full_queue_drops_and_counts(tmp_path: Path) -> None:
    p = _pipeline(tmp_path)
    try:
        runner = Runner(p, queue_batches=1, status_every=0)
        batch = PacketBatch.from_packets([_syn(1000 + i, 10**9 + i) for i in range(5)])
        runner._offer(batch)
        runner._offer(batch)  # queue full: dropped, counted, never blocks
        runner._offer(PacketBatch.from_packets([]), 1)  # an idle marker is not data
        s = p.status()
        assert s["loss"]["queue_dropped_batches"] == 1
        assert s["loss"]["queue_dropped_packets"] == 5
        assert s["loss"]["packets_lost"] == 5
        assert "queue 5" in status_line(s)
    finally:
        p.close()


def test_process_counts_and_writes(tmp_path: Path) -> None:
    p = _pipeline(tmp_path)
    meter = p.new_meter()
    packets = [_syn(2000 + i, 10**9 + i * 1000) for i in range(50)]
    batch = PacketBatch.from_packets(packets)
    records = [*meter.update_raw(batch), *meter.flush()]
    for r in records:
        p.process(r)
    p.end_input()
    p.close()
    s = p.status()
    assert s["flows"] == 50
    assert sum(s["verdicts"].values()) == 50
    assert sum(s["risk"].values()) == 50
    assert s["skipped"] == {}
    assert (tmp_path / "eve.json").is_file()
    assert compute_features(records[0]).num_rows == len(records[0])
    assert isinstance(meter, FlowMeter)


def test_lateness_follows_idle_timeout() -> None:
    # without early verdicts the engine sees flows only when they end
    off = {"flows.early_verdict_interval": 0}
    cfg = load_config(None, env={}, overrides={"flows.idle_timeout": 30, **off})
    assert detect_config(cfg).lateness_s == 40.0
    cfg = load_config(None, env={}, overrides={"detect.lateness_s": 5})
    assert detect_config(cfg).lateness_s == 5.0
    assert np.isclose(detect_config(load_config(None, env={}, overrides=off)).lateness_s, 130.0)
