"""The dashboard application: ``create_app(state)`` wires the API, push, metrics and page.

:class:`DashboardState` is everything the routes share: the sensor controller (and
through it the read-only store and the live feed), the security policy, the demo
capture when there is one, and the loaded model's description.
"""

from __future__ import annotations

import html
import importlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from flowscope import __version__
from flowscope.errors import FlowscopeError
from flowscope.sinks.store import QueryError
from flowscope.web import api
from flowscope.web.control import ControlError, SensorController
from flowscope.web.live import push_loop
from flowscope.web.metrics import CONTENT_TYPE, registry_for, render
from flowscope.web.security import SecurityMiddleware, SecurityPolicy

CSRF_PLACEHOLDER = "__FLOWSCOPE_CSRF__"
STATIC_DIR = Path(__file__).resolve().parent / "static"
_FALLBACK_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flowscope</title>
<meta name="csrf-token" content="__FLOWSCOPE_CSRF__"></head>
<body><h1>flowscope</h1><p>The dashboard page is not installed; the API is at
<a href="/docs">/docs</a>.</p></body></html>
"""


@dataclass
class DashboardState:
    """What the dashboard's routes share (one per served app)."""

    controller: SensorController
    policy: SecurityPolicy = field(default_factory=SecurityPolicy)
    demo_capture: str | None = None  # `flowscope demo`: the capture replayed in a loop
    demo_speed: float = 1.0
    _model: dict[str, Any] | None = None

    def start_demo(self) -> None:
        """(Re)start the demo loop (the "start" control of `flowscope demo`)."""
        if self.demo_capture is None:
            raise ControlError("no demo capture", 404)
        self.controller.start_replay(
            [self.demo_capture], loop=True, speed=self.demo_speed, source="demo"
        )

    def model_info(self) -> dict[str, Any]:
        """The loaded bundle's description (read once: it opens the ONNX graph)."""
        if self._model is None:
            from flowscope.models.catalog import describe

            d = describe(self.controller.config.model.bundle)
            meta = d["meta"]
            self._model = {
                "name": d["name"],
                "description": meta.get("description", ""),
                "algorithm": meta["algorithm"],
                "classes": meta["classes"],
                "threshold": float(
                    self.controller.config.model.threshold
                    if self.controller.config.model.threshold is not None
                    else meta["threshold"]
                ),
                "threshold_rule": meta.get("threshold_rule", ""),
                "explain": meta.get("explain", "none"),
                "features": d["features"],
                "metrics": meta.get("metrics", {}),
                "metrics_summary": d["metrics_summary"],
                "training": meta.get("training", {}),
                "origin": d["origin"],
                "created": meta.get("created", ""),
                "card_url": "/api/model/card",
                "_path": d["path"],
            }
        return {k: v for k, v in self._model.items() if not k.startswith("_")}

    def model_card(self) -> str:
        """The bundle's report (report.md) if it ships one, else a card made from its
        metadata. Served as text: the page shows it verbatim, never as HTML."""
        info = self.model_info()
        assert self._model is not None
        report = Path(self._model["_path"]) / "report.md"
        if report.is_file():
            return report.read_text(encoding="utf-8", errors="replace")
        lines = [
            f"# Model card: {info['name']}",
            "",
            info["description"] or "(no description)",
            "",
            f"- algorithm: {info['algorithm']}",
            f"- classes: {', '.join(info['classes'])}",
            f"- threshold: {info['threshold']}" + (
                f" ({info['threshold_rule']})" if info["threshold_rule"] else ""
            ),
            f"- features: {len(info['features'])}",
            f"- explanations: {info['explain']}",
            f"- created: {info['created']} ({info['origin']})",
            "",
            "## Metrics",
            "",
        ]  # fmt: skip
        for k, v in info["metrics_summary"].items():
            lines.append(f"- {k}: {v}")
        return "\n".join(lines) + "\n"


def _index_html(csrf: str) -> str:
    page = STATIC_DIR / "index.html"
    text = page.read_text(encoding="utf-8") if page.is_file() else _FALLBACK_PAGE
    return text.replace(CSRF_PLACEHOLDER, html.escape(csrf, quote=True))


def create_app(state: DashboardState) -> FastAPI:
    """The FastAPI app of one dashboard (REST under /api, push at /api/live)."""
    app = FastAPI(
        title="flowscope dashboard",
        version=__version__,
        description=(
            "Live network traffic classification: sensor control, flows, rule alerts, "
            "model detections. See docs/dashboard.md for authentication and CSRF."
        ),
    )
    app.state.dashboard = state
    registry = registry_for(state.controller, state.controller.config.model.bundle)

    @app.exception_handler(ControlError)
    async def _control_error(request: Request, exc: ControlError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(QueryError)
    async def _query_error(request: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(FlowscopeError)
    async def _flowscope_error(request: Request, exc: FlowscopeError) -> JSONResponse:
        return JSONResponse({"detail": " ".join(str(exc).split())}, status_code=500)

    app.include_router(api.router)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(_index_html(state.policy.csrf_token))

    @app.get(
        "/metrics",
        response_class=Response,
        summary="Prometheus metrics",
        responses={200: {"content": {"text/plain": {}}}},
    )
    def metrics() -> Response:
        return Response(render(registry), media_type=CONTENT_TYPE)

    @app.websocket("/api/live")
    async def live(ws: WebSocket) -> None:
        await ws.accept()
        await push_loop(ws, state.controller.feed, state.controller.status)

    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    try:  # the frontend's assets served from installed packages (web/assets.py)
        mount_assets = importlib.import_module("flowscope.web.assets").mount_assets
    except (ImportError, AttributeError):
        mount_assets = None
    if mount_assets is not None:
        mount_assets(app)

    @app.exception_handler(404)
    async def _not_found(request: Request, exc: Exception) -> JSONResponse:
        detail = exc.detail if isinstance(exc, HTTPException) else "not found"
        return JSONResponse({"detail": str(detail)}, status_code=404)

    app.add_middleware(SecurityMiddleware, policy=state.policy)
    return app


def package_file(name: str) -> str | None:
    """A file shipped in flowscope/data (e.g. the demo capture), or None."""
    ref = resources.files("flowscope") / "data" / name
    return str(ref) if ref.is_file() else None
