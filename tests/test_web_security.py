"""Dashboard security: token off loopback, cookie login, CSRF, Host and Origin checks,
security headers, packet-derived data only ever returned as JSON.

The policy is tested directly and through the real app; the token requirement also on
a real uvicorn server bound to a non-loopback address of this host.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from flowscope.capture.interfaces import list_interfaces
from flowscope.config import load_config
from flowscope.web import DashboardState, SecurityPolicy, SensorController, create_app
from flowscope.web.security import CSP, TOKEN_COOKIE, is_loopback, resolve_token
from flowscope.web.server import Dashboard

SAMPLE = str(resources.files("flowscope") / "data" / "sample.pcap")


def test_policy_decisions() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
    assert resolve_token("127.0.0.1") == (None, False)
    tok, generated = resolve_token("0.0.0.0")
    assert generated and tok and len(tok) >= 24
    assert resolve_token("0.0.0.0", "s3cret") == ("s3cret", False)
    assert resolve_token("127.0.0.1", "s3cret") == ("s3cret", False)
    p = SecurityPolicy()
    assert (
        p.host_allowed("127.0.0.1:5001")
        and p.host_allowed("localhost")
        and p.host_allowed("[::1]:5001")
    )
    assert not p.host_allowed("evil.example:5001") and not p.host_allowed(None)
    assert p.authenticated({})
    assert p.csrf_ok("GET", {})
    good = {"content-type": "application/json", "x-csrf-token": p.csrf_token}
    assert p.csrf_ok("POST", good)
    assert not p.csrf_ok("POST", {**good, "x-csrf-token": "nope"})
    assert not p.csrf_ok("POST", {**good, "content-type": "text/plain"})
    assert not p.csrf_ok("POST", {"content-type": "application/json"})
    assert p.origin_ok({"host": "127.0.0.1:5001", "origin": "http://127.0.0.1:5001"})
    assert not p.origin_ok({"host": "127.0.0.1:5001", "origin": "http://evil.example"})
    assert not p.origin_ok({"host": "127.0.0.1:5001", "origin": "null"})
    t = SecurityPolicy(bind_host="0.0.0.0", token="T0K")
    assert t.host_allowed("anything:1") and not t.authenticated({})
    assert t.authenticated({"authorization": "Bearer T0K"})
    assert t.authenticated({"cookie": f"{TOKEN_COOKIE}=T0K"})
    assert not t.authenticated({"cookie": f"{TOKEN_COOKIE}=T0"})


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SensorController]:
    cfg = load_config(None, overrides={"outputs.directory": str(tmp_path_factory.mktemp("sec"))})
    c = SensorController(cfg)
    c.start_replay([SAMPLE])
    assert c.wait(120) and c.state == "idle", c.error
    yield c
    c.close()


def test_loopback_host_csrf_headers(controller: SensorController) -> None:
    state = DashboardState(controller)
    with TestClient(create_app(state), base_url="http://127.0.0.1:5001") as client:
        r = client.get("/api/status")
        assert r.status_code == 200  # loopback: no token
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"
        # DNS rebinding: a page of another name that resolves to 127.0.0.1
        r = client.get("/api/status", headers={"host": "evil.example:5001"})
        assert r.status_code == 421
        # CSRF: no token / wrong token / form content type are refused before any effect
        assert client.post("/api/clear", json={}).status_code == 403
        bad = {"X-CSRF-Token": "guess"}
        assert client.post("/api/clear", json={}, headers=bad).status_code == 403
        form = {"X-CSRF-Token": state.policy.csrf_token}
        assert client.post("/api/clear", data={"a": "b"}, headers=form).status_code == 403
        assert client.get("/api/sessions").json()[-1]["id"] == 1  # no clear happened
        # the page carries the CSRF token for the frontend, and nothing inline
        page = client.get("/")
        assert page.status_code == 200 and state.policy.csrf_token in page.text
        assert "__FLOWSCOPE_CSRF__" not in page.text
        assert page.headers["content-security-policy"] == CSP
        # packet-derived strings only as JSON data
        for path in ("/api/flows", "/api/alerts", "/api/top-talkers", "/api/flows/1"):
            r = client.get(path)
            assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        # WebSocket: same-origin only
        ws_url = "ws://127.0.0.1:5001/api/live"
        with client.websocket_connect(ws_url, headers={"origin": "http://127.0.0.1:5001"}) as ws:
            assert ws.receive_json()["type"] == "status"
        with pytest.raises(WebSocketDisconnect), client.websocket_connect(
            ws_url, headers={"origin": "http://evil.example"}
        ):  # fmt: skip
            pass
        with pytest.raises(WebSocketDisconnect), client.websocket_connect(
            "ws://evil.example:5001/api/live"
        ):  # fmt: skip
            pass


def test_token_and_cookie_flow(controller: SensorController) -> None:
    state = DashboardState(controller, SecurityPolicy(bind_host="0.0.0.0", token="T0K"))
    with TestClient(create_app(state), base_url="http://sensor.lan:5001") as client:
        for path in ("/api/status", "/", "/metrics", "/openapi.json", "/docs"):
            r = client.get(path)
            assert r.status_code == 401, path
            assert r.json()["detail"].startswith("token required")
        assert client.get("/?token=wrong", follow_redirects=False).status_code == 401
        hdr = {"Authorization": "Bearer T0K"}
        assert client.get("/api/status", headers=hdr).status_code == 200
        # control endpoints need the token *and* the CSRF header
        assert client.post("/api/clear", json={}).status_code == 401
        assert client.post("/api/clear", json={}, headers=hdr).status_code == 403
        # browser login: token in the URL once → HttpOnly SameSite cookie, redirect to /
        r = client.get("/?token=T0K", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert client.cookies.get(TOKEN_COOKIE) == "T0K"
        assert client.get("/").status_code == 200
        assert client.get("/api/flows").status_code == 200
        ws = "ws://sensor.lan:5001/api/live"
        with client.websocket_connect(ws, headers={"origin": "http://sensor.lan:5001"}) as conn:
            assert conn.receive_json()["type"] == "status"
        client.cookies.clear()
        with pytest.raises(WebSocketDisconnect), client.websocket_connect(ws):
            pass


def _non_loopback_address() -> str | None:
    for i in list_interfaces():
        for a in i.ipv4:
            ip = ipaddress.ip_interface(a).ip
            if i.up and not ip.is_loopback:
                return str(ip)
    return None


def test_real_server_off_loopback_requires_generated_token(
    controller: SensorController, tmp_path: Path
) -> None:
    addr = _non_loopback_address()
    if addr is None:
        pytest.skip("no non-loopback IPv4 address on this host")
    dash = Dashboard(controller, host=addr, port=0)
    assert dash.token_generated and dash.policy.token
    dash.server.start()
    try:
        base = f"http://{addr}:{dash.server.port}"
        assert dash.url == f"{base}/?token={dash.policy.token}"
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.get("/api/status").status_code == 401
            ok = http.get("/api/status", headers={"Authorization": f"Bearer {dash.policy.token}"})
            assert ok.status_code == 200 and ok.json()["counters"]["flows"] == 51
            login = http.get(f"/?token={dash.policy.token}", follow_redirects=False)
            assert login.status_code == 303
            assert http.get("/api/flows").status_code == 200  # cookie now set
    finally:
        dash.server.stop()
