"""The dashboard in a real browser: Playwright driving Debian's headless chromium.

One `flowscope demo` server (a subprocess, as a user would start it) replays the shipped
demo capture at 20x recorded speed, so its port scan, SYN flood and brute force all
come round within seconds; the tests then use the page the way a person would and keep
a screenshot of each under ``test-artifacts/browser/``.

Playwright's own browser downloads are never used: the tests take chromium from the
system (scripts/system-deps.sh installs it) and skip with a reason when it is absent.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
DEMO = ROOT / "src" / "flowscope" / "data" / "demo.pcap.gz"
CHROMIUM = next(
    (p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None
)
SPEED = 20  # the 150 s demo capture takes 7.5 s per loop
# The literal text a hostile packet would try to smuggle into the page.
HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (scripts/system-deps.sh)"),
    pytest.mark.skipif(not DEMO.is_file(), reason="demo capture missing (make-demo-capture.sh)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


class Server:
    """A `flowscope demo` subprocess and where it writes."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = out / "server.log"
        cmd = [
            sys.executable, "-m", "flowscope", "demo", "--speed", str(SPEED),
            "--web-port", str(self.port), "--output", str(out / "outputs"),
            "--duration", "600",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=self.log.open("wb"), cwd=out
        )

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"demo server exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError, ValueError):
                st = _get(self.url + "api/status")
                if st["sensor"]["state"] == "running":
                    return
            time.sleep(0.3)
        raise RuntimeError(f"demo server not ready: {self.log.read_text()[-2000:]}")

    def status(self) -> dict[str, Any]:
        st: dict[str, Any] = _get(self.url + "api/status")
        return st

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("dashboard"))
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, server: Server, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page on the dashboard; its screenshot is kept whatever the outcome."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.goto(server.url)
    pg.wait_for_selector("body[data-ready='1']", timeout=30_000)
    pg.errors = errors
    try:
        yield pg
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):
            pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        ctx.close()


def _number(text: str) -> int:
    digits = re.sub(r"[^0-9]", "", text)
    return int(digits) if digits else 0


def _wait_count_above(page: Any, selector: str, n: int, timeout: float) -> None:
    """Wait until the number shown in ``selector`` exceeds ``n`` (digits only, 1,234 → 1234)."""
    page.wait_for_function(
        "([s, n]) => Number(document.querySelector(s).textContent.replace(/\\D/g, '')) > n",
        arg=[selector, n],
        timeout=timeout,
    )


def _tab(page: Any, name: str) -> None:
    page.get_by_role("tab", name=re.compile(f"^{name}")).click()


def test_counters_move_and_charts_draw(page: Any) -> None:
    first = _number(page.locator("#c-packets").inner_text())
    _wait_count_above(page, "#c-packets", first, 15_000)
    _wait_count_above(page, "#c-flows", 0, 15_000)
    # plotly drew the time series and the top talkers (real SVG, not a placeholder)
    page.wait_for_selector("#chart-time .main-svg", timeout=15_000)
    page.wait_for_selector("#chart-top-bytes .main-svg", timeout=15_000)
    assert page.locator("#live-state").inner_text() == "live"
    assert page.errors == []


def test_scan_in_both_tabs(page: Any) -> None:
    _tab(page, "Rule alerts")
    alerts = page.locator("#t-alerts tbody")
    alerts.get_by_text(re.compile("port scan", re.I)).first.wait_for(timeout=30_000)
    _tab(page, "Model detections")
    page.select_option("#det-filters select[name=family]", "scan")
    page.click("#det-filters button[type=submit]")
    cell = page.locator("#t-detections tbody td", has_text=re.compile("^scan$"))
    cell.first.wait_for(timeout=30_000)
    rows = page.locator("#t-detections tbody tr")
    assert rows.count() > 0
    # every row of the filtered view is a scan verdict
    families = page.locator("#t-detections tbody tr td:nth-child(11)").all_inner_texts()
    assert families and set(families) == {"scan"}


def test_flow_detail_has_risk(page: Any) -> None:
    row = page.locator("#t-flows tbody tr").first
    row.locator("td").nth(1).wait_for(timeout=20_000)
    row.click()
    risk = page.locator("[data-testid=detail-risk]")
    risk.wait_for(timeout=15_000)
    assert risk.inner_text().strip().lower() in {"low", "medium", "high", "critical", "none"}
    assert "→" in page.locator("[data-testid=detail-tuple]").inner_text()
    page.wait_for_selector("#chart-probs .main-svg", timeout=10_000)
    features = page.locator("#detail-body table.dataTable tbody tr")
    assert features.count() > 5


def test_stop_start_clear(page: Any, server: Server) -> None:
    state = page.locator("#sensor-state")
    page.click("#btn-stop")
    page.wait_for_function(
        "() => document.querySelector('#sensor-state').textContent === 'idle'", timeout=30_000
    )
    assert server.status()["sensor"]["state"] == "idle"
    stopped = server.status()["counters"]["packets"]
    time.sleep(1.5)
    assert server.status()["counters"]["packets"] == stopped  # nothing moves while stopped

    session = server.status()["sensor"]["session"]
    logs_before = set((server.out / "outputs").rglob("*"))
    page.click("#btn-clear")
    page.click("#confirm-clear-ok")
    page.wait_for_selector("#banner:not([hidden])", timeout=10_000)
    assert "Nothing" not in page.locator("#banner").inner_text()  # info, not an error
    assert server.status()["sensor"]["session"] > session
    page.wait_for_function(
        "() => document.querySelector('#c-flows').textContent.trim() === '0'", timeout=10_000
    )
    # clear starts new logs and a new store session; it deletes nothing
    assert logs_before and all(p.exists() for p in logs_before)

    page.select_option("#iface", "__demo__")
    page.click("#btn-start")
    page.wait_for_function(
        "() => document.querySelector('#sensor-state').textContent === 'running'", timeout=30_000
    )
    _wait_count_above(page, "#c-packets", 0, 20_000)
    assert state.inner_text() == "running"


def _inject_alert(server: Server) -> str:
    """Write an incident whose text fields carry HTML into the server's store, as a
    hostile packet's payload would arrive if a detector copied it into an alert."""
    session = server.status()["sensor"]["session"]
    iid = "xss-test-1"
    now = time.time()
    ts = time.strftime("%Y-%m-%dT%H:%M:%S.000000+0000", time.gmtime(now))
    event = {"timestamp": ts, "event_type": "alert", "src_ip": HOSTILE,
             "alert": {"signature": HOSTILE, "category": HOSTILE, "severity": 1}}  # fmt: skip
    db = sqlite3.connect(server.out / "outputs" / "flowscope.db", timeout=20)
    try:
        db.execute(
            "INSERT INTO alerts (session_id, incident_id, state, first_ts, last_ts, signature,"
            " category, severity, level, rule, family, src_ip, dest_ip, dest_port, proto,"
            " events, event, inserted, updated)"
            " VALUES (?, ?, 'new', ?, ?, ?, ?, 1, 'high', ?, 'scan', ?, ?, 80, 'TCP', 1, ?, ?, ?)",
            (session, iid, ts, ts, HOSTILE, HOSTILE, HOSTILE, HOSTILE, HOSTILE,
             json.dumps(event), now + 3600, now + 3600),
        )  # fmt: skip
        db.commit()
    finally:
        db.close()
    return iid


def test_html_from_packets_is_shown_as_text(page: Any, server: Server) -> None:
    _inject_alert(server)
    page.reload()
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    _tab(page, "Rule alerts")
    cell = page.locator("#t-alerts tbody td", has_text="<img src=x")
    cell.first.wait_for(timeout=20_000)
    assert HOSTILE in cell.first.inner_text()  # shown literally …
    assert page.locator("#t-alerts img, #t-alerts script").count() == 0  # … never parsed
    cell.first.click()
    page.locator("#detail-body pre", has_text="window.__xss").wait_for(timeout=10_000)
    assert page.locator("#detail-body dd", has_text="<img src=x").count() >= 1
    assert page.locator("#detail-body img, #detail-body script").count() == 0
    assert page.evaluate("() => window.__xss === undefined")


def test_reload_restores_from_store(page: Any, server: Server) -> None:
    page.locator("#t-flows tbody tr td").nth(1).wait_for(timeout=20_000)
    info = page.locator("#t-flows_wrapper .dt-info").inner_text()
    page.reload()
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    page.locator("#t-flows tbody tr td").nth(1).wait_for(timeout=20_000)
    total = _number(page.locator("#t-flows_wrapper .dt-info").inner_text().split("of")[-1])
    assert total >= _number(info.split("of")[-1]) > 0  # paged from the store, not the last 100
