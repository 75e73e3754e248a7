"""The dashboard's REST API and WebSocket push on the real app, store and pipeline.

A module fixture replays the shipped sample capture (a port scan, 51 flows, one rule
incident) through the real sensor under a SensorController, so every endpoint reads a
real store filled by the real pipeline; no root and no shared data needed. Control
tests replay the same capture in a loop (the demo's source), and one test captures
live on the loopback interface when run as root.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from flowscope.config import load_config
from flowscope.web import DashboardState, SensorController, create_app
from flowscope.web.live import MAX_ROWS

SAMPLE = str(resources.files("flowscope") / "data" / "sample.pcap")
BASE = "http://127.0.0.1:5001"
WS = "ws://127.0.0.1:5001/api/live"


def _controller(out: Path) -> SensorController:
    cfg = load_config(None, overrides={"outputs.directory": str(out)})
    return SensorController(cfg)


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, DashboardState]]:
    c = _controller(tmp_path_factory.mktemp("web"))
    c.start_replay([SAMPLE])
    assert c.wait(120), "replay did not finish"
    assert c.state == "idle", c.error
    state = DashboardState(c)
    with TestClient(create_app(state), base_url=BASE) as client:
        yield client, state
    c.close()


@pytest.fixture()
def demo(tmp_path: Path) -> Iterator[tuple[TestClient, DashboardState]]:
    c = _controller(tmp_path)
    state = DashboardState(c, demo_capture=SAMPLE, demo_speed=0.0)  # unpaced: a flood
    with TestClient(create_app(state), base_url=BASE) as client:
        client.headers["X-CSRF-Token"] = state.policy.csrf_token
        yield client, state
    c.close()


def test_status(filled: tuple[TestClient, DashboardState]) -> None:
    client, _ = filled
    r = client.get("/api/status")
    assert r.status_code == 200
    body = r.json()
    assert body["sensor"]["state"] == "idle" and body["sensor"]["source"] == "replay"
    ctr = body["counters"]
    assert ctr["packets"] == 169 and ctr["flows"] == 51
    assert ctr["malicious"] == 40 and ctr["malicious_by_family"] == {"scan": 40}
    assert ctr["alerts"] == 1 and ctr["bytes"] > 0
    assert ctr["loss"]["packets_lost"] == 0
    assert set(body["rates"]) == {"packets_per_s", "bytes_per_s", "flows_per_s"}


def test_interfaces(filled: tuple[TestClient, DashboardState]) -> None:
    client, _ = filled
    rows = client.get("/api/interfaces").json()
    names = {r["name"] for r in rows}
    assert "lo" in names and "any" in names
    lo = next(r for r in rows if r["name"] == "lo")
    assert any(a.startswith("127.0.0.1") for a in lo["addresses"])
    assert lo["can_capture"] == (os.geteuid() == 0) or lo["can_capture"]


def test_flows_pagination_sort_filters(filled: tuple[TestClient, DashboardState]) -> None:
    client, _ = filled
    first = client.get("/api/flows", params={"page_size": 20}).json()
    assert first["total"] == 51 and first["page"] == 1 and len(first["rows"]) == 20
    last = client.get("/api/flows", params={"page_size": 20, "page": 3}).json()
    assert len(last["rows"]) == 11
    ids = {r["id"] for p in (1, 2, 3) for r in client.get(
        "/api/flows", params={"page_size": 20, "page": p}).json()["rows"]}  # fmt: skip
    assert len(ids) == 51  # pages partition the session
    scores = [r["score"] for r in client.get("/api/flows?sort=-score&page_size=500").json()["rows"]]
    assert scores == sorted(scores, reverse=True)
    ports = [
        r["dst_port"] for r in client.get("/api/flows?sort=dst_port&page_size=500").json()["rows"]
    ]
    assert ports == sorted(ports)
    mal = client.get("/api/flows", params={"verdict": "malicious"}).json()
    assert mal["total"] == 40 and all(r["family"] == "scan" for r in mal["rows"])
    ben = client.get("/api/flows", params={"verdict": "benign"}).json()
    assert ben["total"] == 11
    assert client.get("/api/flows", params={"family": "scan"}).json()["total"] == 40
    assert client.get("/api/flows", params={"addr": "127.0.0.1"}).json()["total"] == 51
    assert client.get("/api/flows", params={"addr": "10.9.9.9"}).json()["total"] == 0
    port = mal["rows"][0]["dst_port"]
    by_port = client.get("/api/flows", params={"port": port}).json()
    assert by_port["total"] >= 1
    assert all(port in (r["src_port"], r["dst_port"]) for r in by_port["rows"])
    assert client.get("/api/flows", params={"protocol": "tcp"}).json()["total"] >= 40
    assert client.get("/api/flows", params={"risk": "high"}).json()["total"] == 40
    assert client.get("/api/flows", params={"session": "all"}).json()["total"] == 51
    det = client.get("/api/detections", params={"page_size": 5}).json()
    assert det["total"] == 40 and len(det["rows"]) == 5
    assert all(r["verdict"] == "Malicious" for r in det["rows"])


def test_flows_bad_queries(filled: tuple[TestClient, DashboardState]) -> None:
    client, _ = filled
    assert client.get("/api/flows", params={"sort": "nope"}).status_code == 422
    assert client.get("/api/flows", params={"page_size": 501}).status_code == 422
    assert client.get("/api/flows", params={"page": 0}).status_code == 422
    assert client.get("/api/flows", params={"port": 70000}).status_code == 422
    assert client.get("/api/flows", params={"protocol": "306"}).status_code == 422
    assert client.get("/api/flows", params={"verdict": "evil"}).status_code == 422
    r = client.get("/api/flows/999999")
    assert r.status_code == 404 and r.json() == {"detail": "no flow 999999"}


def test_flow_detail(filled: tuple[TestClient, DashboardState]) -> None:
    client, _ = filled
    fid = client.get("/api/detections?sort=-score&page_size=1").json()["rows"][0]["id"]
    d = client.get(f"/api/flows/{fid}").json()
    assert d["flow"]["id"] == fid and d["family"] == "scan"
    feats = {f["name"]: f for f in d["features"]}
    assert len(feats) >= 70
    assert feats["flow_duration"]["unit"] == "µs" and feats["fwd_packets"]["unit"] == "packets"
    assert all(f["description"] for f in d["features"] if f["unit"])
    probs = d["probabilities"]
    assert set(probs) >= {"benign", "scan"} and abs(sum(probs.values()) - 1) < 1e-3
    assert probs["scan"] == max(probs.values())
    assert d["explanation"] and {"feature", "value", "contribution"} <= set(d["explanation"][0])
    assert d["risk"]["level"] == "high" and d["risk"]["reasons"][0].startswith("model: scan")
    assert len(d["alerts"]) == 1 and d["alerts"][0]["family"] == "scan"
    benign = client.get("/api/flows?verdict=benign&page_size=1").json()["rows"][0]["id"]
    b = client.get(f"/api/flows/{benign}").json()
    assert b["explanation"] == [] and b["risk"]["reasons"][0].startswith("model: benign")


def test_alerts(filled: tuple[TestClient, DashboardState]) -> None:
    client, _ = filled
    page = client.get("/api/alerts").json()
    assert page["total"] == 1
    row = page["rows"][0]
    assert row["family"] == "scan" and row["src_ip"] == "127.0.0.1" and row["state"] == "end"
    assert client.get("/api/alerts", params={"family": "dos"}).json()["total"] == 0
    assert client.get("/api/alerts", params={"attacker": "127.0.0.1"}).json()["total"] == 1
    assert client.get("/api/alerts", params={"state": "end", "sort": "-severity"}).json()["total"]
    d = client.get(f"/api/alerts/{row['incident_id']}").json()
    assert d["incident_id"] == row["incident_id"] and d["event"]["event_type"] == "alert"
    assert client.get("/api/alerts/nope").status_code == 404


def test_aggregates_sessions_model(filled: tuple[TestClient, DashboardState]) -> None:
    client, _ = filled
    (top,) = client.get("/api/top-talkers", params={"by": "flows"}).json()
    assert top["address"] == "127.0.0.1" and top["flows"] == 51
    assert top["malicious_flows"] == 40 and abs(top["malicious_share"] - 40 / 51) < 1e-9
    assert client.get("/api/top-talkers", params={"by": "bytes", "side": "dst"}).json()
    ts = client.get("/api/timeseries", params={"bucket": 1}).json()
    assert sum(b["flows"] for b in ts) == 51 and sum(b["malicious"] for b in ts) == 40
    assert [b["t"] for b in ts] == sorted(b["t"] for b in ts)
    assert len(client.get("/api/timeseries", params={"max_buckets": 1}).json()) == 1
    (sess,) = client.get("/api/sessions").json()
    assert sess["flows"] == 51 and sess["alerts"] == 1
    m = client.get("/api/model").json()
    assert m["name"] == "default" and m["classes"][0] == "benign"
    assert m["card_url"] == "/api/model/card" and len(m["features"]) > 10
    card = client.get(m["card_url"])
    assert card.headers["content-type"].startswith("text/plain") and "default" in card.text


def test_metrics(filled: tuple[TestClient, DashboardState]) -> None:
    client, _ = filled
    r = client.get("/metrics")
    assert r.status_code == 200
    fams = {f.name: f for f in text_string_to_metric_families(r.text)}
    for name in (
        "flowscope_packets", "flowscope_packets_dropped", "flowscope_flows", "flowscope_verdicts",
        "flowscope_alerts", "flowscope_model_latency_seconds", "flowscope_open_flows",
    ):  # fmt: skip
        assert name in fams, name

    def value(name: str, **labels: str) -> float:
        return next(
            s.value for s in fams[name].samples
            if all(s.labels.get(k) == v for k, v in labels.items()) and s.name.endswith(
                "_total") == (fams[name].type == "counter")
        )  # fmt: skip

    assert value("flowscope_packets") == 169
    assert value("flowscope_flows") == 51
    assert value("flowscope_verdicts", family="scan") == 40
    assert value("flowscope_alerts", family="scan") == 1
    assert value("flowscope_packets_dropped", stage="kernel") == 0
    count = next(s.value for s in fams["flowscope_model_latency_seconds"].samples
                 if s.name.endswith("_count"))  # fmt: skip
    assert count >= 1


def _post(client: TestClient, path: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(path, json=body or {})


def test_start_stop_clear(demo: tuple[TestClient, DashboardState]) -> None:
    client, state = demo
    assert client.get("/api/status").json()["sensor"]["state"] == "idle"
    r = _post(client, "/api/capture/start", {"demo": True})
    assert r.status_code == 200, r.text
    assert r.json()["sensor"]["state"] == "running" and r.json()["sensor"]["source"] == "demo"
    assert _post(client, "/api/capture/start", {"demo": True}).status_code == 409
    deadline = time.monotonic() + 30
    while client.get("/api/status").json()["counters"]["flows"] < 200:
        assert time.monotonic() < deadline, "demo loop made no flows"
        time.sleep(0.2)
    session = client.get("/api/status").json()["sensor"]["session"]
    r = _post(client, "/api/clear")
    assert r.status_code == 200 and r.json()["sensor"]["session"] == session + 1
    after = client.get("/api/status").json()["counters"]
    assert after["flows"] < 200  # counters restarted at the clear
    r = _post(client, "/api/capture/stop")
    assert r.status_code == 200 and r.json()["sensor"]["state"] == "idle"
    st = client.get("/api/status").json()
    # nothing deleted: both sessions stay in the store, the new one is the default view
    sessions = client.get("/api/sessions").json()
    assert [s["id"] for s in sessions] == [session, session + 1]
    assert sessions[0]["flows"] >= 200 and sessions[0]["ended"] is not None
    assert client.get("/api/flows").json()["total"] == sessions[1]["flows"]
    assert st["counters"]["flows"] == sessions[1]["flows"]
    logs = list((state.controller.output_dir / "logs").glob("output_logs_*.csv"))
    assert len(logs) >= 2  # the clear started new log files; the old ones stay
    # restart works after a stop
    assert _post(client, "/api/capture/start", {"demo": True}).status_code == 200
    assert _post(client, "/api/capture/stop").json()["sensor"]["state"] == "idle"


def test_start_errors(demo: tuple[TestClient, DashboardState]) -> None:
    client, _ = demo
    r = _post(client, "/api/capture/start", {"interface": "nonexistent0"})
    assert r.status_code == 404 and "no interface" in r.json()["detail"]
    assert "\n" not in r.json()["detail"]
    assert _post(client, "/api/capture/start", {}).status_code == 404
    r = _post(client, "/api/capture/start", {"interface": "lo", "bpf": "not a ( filter"})
    assert r.status_code == 400 and "\n" not in r.json()["detail"]
    assert _post(client, "/api/capture/start", {"interface": "lo", "x": 1}).status_code == 422
    assert client.get("/api/status").json()["sensor"]["state"] == "idle"


@pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root (CAP_NET_RAW)")
def test_live_capture_on_loopback(demo: tuple[TestClient, DashboardState]) -> None:
    client, _ = demo
    port = 47000 + os.getpid() % 1000
    r = _post(client, "/api/capture/start", {"interface": "lo", "bpf": f"udp port {port}"})
    assert r.status_code == 200, r.text
    assert r.json()["sensor"] | {"state": "running", "interface": "lo"} == r.json()["sensor"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(20):
            s.sendto(b"x" * 10, ("127.0.0.1", port))
            time.sleep(0.01 if i else 0.2)
    deadline = time.monotonic() + 10
    while client.get("/api/status").json()["counters"]["packets"] < 20:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert _post(client, "/api/capture/stop").json()["sensor"]["state"] == "idle"
    rows = client.get("/api/flows", params={"port": port}).json()["rows"]
    assert rows and rows[0]["packets"] == 20  # the final flush finished the flow


def test_websocket_status_first(filled: tuple[TestClient, DashboardState]) -> None:
    client, _ = filled
    t0 = time.monotonic()
    with client.websocket_connect(WS) as ws:
        msg = ws.receive_json()
        assert msg["type"] == "status" and time.monotonic() - t0 < 1.0
        assert msg["counters"]["flows"] == 51
        assert ws.receive_json()["type"] == "status"  # one per second
        assert time.monotonic() - t0 < 2.5


def test_websocket_throttles_a_flood(demo: tuple[TestClient, DashboardState]) -> None:
    client, _ = demo
    with client.websocket_connect(WS) as ws:
        assert ws.receive_json()["type"] == "status"
        assert _post(client, "/api/capture/start", {"demo": True}).status_code == 200
        msgs: list[dict[str, Any]] = []
        sizes: list[int] = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4.0:
            raw = ws.receive_text()
            sizes.append(len(raw))
            msgs.append(json.loads(raw))
        elapsed = time.monotonic() - t0
        _post(client, "/api/capture/stop")
        _post(client, "/api/clear")
        while True:  # the clear reaches the client as a message of its own
            m = ws.receive_json()
            if m["type"] == "cleared":
                break
    flows = [m for m in msgs if m["type"] == "flows"]
    assert flows, [m["type"] for m in msgs]
    assert len(flows) <= elapsed / 0.5 + 2  # at most one batch per 500 ms
    assert all(len(m["rows"]) <= MAX_ROWS for m in flows)
    assert any(m["dropped"] > 0 for m in flows), "an unpaced loop should overflow the push"
    assert max(sizes) < 400_000
    row = flows[-1]["rows"][-1]
    assert {"src_ip", "dst_port", "verdict", "family", "score", "risk"} <= set(row)
    statuses = [m for m in msgs if m["type"] == "status"]
    assert 2 <= len(statuses) <= elapsed + 2


def _serve_cli(args: list[str], tmp_path: Path, pattern: str) -> tuple[Any, str]:
    """Start a `flowscope` command serving the dashboard; (process, base URL)."""
    import re
    import subprocess
    import sys

    with socket.socket() as probe:  # a free port ([web] port must be ≥ 1)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowscope", *args, "--web-port", str(port), "-o", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return proc, m.group(1)
    proc.wait(10)
    raise AssertionError("".join(seen))


def test_demo_command_serves_and_moves(tmp_path: Path) -> None:
    import httpx

    proc, base = _serve_cli(
        ["demo", "--duration", "8", "--speed", "4"], tmp_path, r"open (http://\S+/)"
    )
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.get("/").status_code == 200
            deadline = time.monotonic() + 8
            counts = []
            while time.monotonic() < deadline:
                st = http.get("/api/status").json()
                counts.append(st["counters"]["packets"])
                if st["sensor"]["state"] == "running" and len(set(counts)) >= 3:
                    break
                time.sleep(0.3)
            assert st["sensor"]["source"] == "demo"
            assert len(set(counts)) >= 3 and counts == sorted(counts), counts
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp_path / "flowscope.db").is_file() and list((tmp_path / "logs").glob("*.csv"))


def test_run_starts_idle_with_dashboard(tmp_path: Path) -> None:
    import httpx

    proc, base = _serve_cli(
        ["run", "--web", "--duration", "3", "--status-every", "0", "-q"], tmp_path,
        r"dashboard at (http://\S+/)",
    )  # fmt: skip
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            st = http.get("/api/status").json()
            assert st["sensor"]["state"] == "idle" and st["counters"]["packets"] == 0
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
