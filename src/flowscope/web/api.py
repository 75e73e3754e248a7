"""REST API of the dashboard: response models (so /openapi.json is exact) and routes.

Every list endpoint pages through the SQLite store (read-only connection), never only
the last rows in memory. Every packet-derived value leaves as JSON data; nothing here
renders HTML. Filters are validated twice: by FastAPI against the declared types and
ranges (a 422 names the parameter), and by the store's whitelists (a 400).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from flowscope.capture.interfaces import ANY, list_interfaces
from flowscope.flows.registry import BY_NAME, IDENTIFIERS
from flowscope.sensor.risk import HARMFUL_FAMILIES, HIGH_SCORE
from flowscope.sinks.store import ALERT_SORTS, FLOW_SORTS
from flowscope.web.control import ControlError, SensorController

MAX_PAGE = 500
_SESSION = r"^(all|[0-9]{1,9})$"
_FLOW_SORT = "^-?(" + "|".join(FLOW_SORTS) + ")$"
_ALERT_SORT = "^-?(" + "|".join(ALERT_SORTS) + ")$"
_TEXT = 256  # longest accepted text filter
_UNITS: dict[str, tuple[str, str]] = {
    **{f.name: (f.unit, f.definition) for f in BY_NAME.values()},
    **{i.name: (i.unit, i.definition) for i in IDENTIFIERS},
}


# ------------------------------------------------------------------ models
class ErrorReply(BaseModel):
    detail: str = Field(description="One line saying what is wrong.")


class SensorInfo(BaseModel):
    state: Literal["idle", "running", "stopping", "error"]
    source: Literal["live", "replay", "demo"] | None
    interface: str | None
    bpf: str
    error: str | None = Field(description="Why the last run ended, when it failed.")
    session: int = Field(description="Store session new flows go to (see POST /api/clear).")
    runs: int = Field(description="Sensor runs started by this process.")


class Loss(BaseModel):
    model_config = ConfigDict(extra="allow")
    kernel_drops: int = 0
    capture_bad_headers: int = 0
    queue_dropped_batches: int = 0
    queue_dropped_packets: int = 0
    evicted_flows: int = 0
    packets_lost: int = 0


class Counters(BaseModel):
    """Pipeline counters since the last clear (plus gauges of the current run)."""

    model_config = ConfigDict(extra="allow")
    packets: int
    bytes: int = Field(description="Wire bytes of classified flows.")
    flows: int
    open_flows: int = 0
    malicious: int
    malicious_by_family: dict[str, int] = {}
    verdicts: dict[str, int] = {}
    risk: dict[str, int] = {}
    alerts: int
    active_alerts: int = 0
    skipped: dict[str, int] = {}
    captured: int | None = None
    loss: Loss


class Rates(BaseModel):
    packets_per_s: float
    bytes_per_s: float
    flows_per_s: float


class StatusReply(BaseModel):
    sensor: SensorInfo
    counters: Counters
    rates: Rates


class InterfaceRow(BaseModel):
    name: str
    up: bool
    kind: str
    addresses: list[str]
    can_capture: bool = Field(description="This process may open a capture on it.")


class Contribution(BaseModel):
    feature: str
    value: float | None
    weight: float | None


class FlowRow(BaseModel):
    id: int | None = Field(description="Store row id (GET /api/flows/{id}); null in pushes.")
    session_id: int | None
    eve_flow_id: int = Field(description="EVE flow_id, as in eve.json.")
    flow_key: str
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    protocol: int
    proto: str
    first_seen: int = Field(description="First packet, ns since the epoch.")
    last_seen: int = Field(description="Last packet, ns since the epoch.")
    timestamp: str = Field(description="First packet, EVE time text (UTC).")
    duration_us: float | None
    packets: int
    bytes: int
    end_reason: str | None
    score: float
    verdict: str
    family: str
    risk: str | None
    top_features: list[Contribution] | None


class FlowPage(BaseModel):
    total: int
    page: int
    page_size: int
    rows: list[FlowRow]


class FeatureValue(BaseModel):
    name: str
    value: float | None
    unit: str | None
    description: str | None


class Explanation(BaseModel):
    feature: str
    value: float | None
    contribution: float | None


class Risk(BaseModel):
    level: str | None
    reasons: list[str]


class AlertRow(BaseModel):
    id: int | None
    session_id: int | None
    incident_id: str
    state: str = Field(description="Latest step of the incident: new, update or end.")
    first_ts: str
    last_ts: str
    signature: str | None
    category: str | None
    severity: int | None = Field(description="EVE severity (1 = most severe).")
    level: str | None = Field(description="low, medium, high or critical.")
    rule: str | None
    family: str | None
    src_ip: str | None = Field(description="Attacker (or 'many').")
    dest_ip: str | None = Field(description="Victim (or 'many').")
    dest_port: int | None
    proto: str | None
    events: int = 1
    inserted: float | None = None
    updated: float | None = None


class AlertDetail(AlertRow):
    event: dict[str, Any] = Field(description="The latest EVE alert event of the incident.")


class AlertPage(BaseModel):
    total: int
    page: int
    page_size: int
    rows: list[AlertRow]


class FlowDetail(BaseModel):
    flow: FlowRow
    features: list[FeatureValue]
    score: float
    verdict: str
    family: str
    probabilities: dict[str, float]
    explanation: list[Explanation]
    risk: Risk
    alerts: list[AlertRow]
    extra: dict[str, Any]


class Talker(BaseModel):
    address: str
    bytes: int
    flows: int
    packets: int
    malicious_flows: int
    malicious_share: float = Field(description="Malicious flows / flows.")


class Bucket(BaseModel):
    t: float = Field(description="Bucket start, seconds since the epoch (first packets).")
    flows: int
    malicious: int
    bytes: int
    packets: int


class SessionRow(BaseModel):
    id: int
    started: float
    ended: float | None
    label: str | None
    flows: int
    alerts: int
    pruned_flows: int
    pruned_alerts: int


class ModelReply(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    name: str
    description: str
    algorithm: str
    classes: list[str]
    threshold: float
    threshold_rule: str
    explain: str
    features: list[dict[str, Any]]
    metrics: dict[str, Any]
    metrics_summary: dict[str, Any]
    training: dict[str, Any]
    origin: str
    created: str
    card_url: str


class StartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interface: str = Field(default="", max_length=64, description="Interface to capture on.")
    bpf: str = Field(default="", max_length=4096, description="BPF filter (tcpdump syntax).")
    demo: bool = Field(
        default=False, description="Replay the demo capture instead (flowscope demo only)."
    )


class EmptyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ControlReply(BaseModel):
    ok: bool
    sensor: SensorInfo


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorReply},
    401: {"model": ErrorReply},
    403: {"model": ErrorReply},
}
_CONTROL_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"model": ErrorReply},
    409: {"model": ErrorReply},
    500: {"model": ErrorReply},
}

router = APIRouter(prefix="/api", responses=_ERRORS)


def _controller(request: Request) -> SensorController:
    c: SensorController = request.app.state.dashboard.controller
    return c


# ------------------------------------------------------------------ sensor
@router.get("/status", response_model=StatusReply, summary="Sensor state, counters, rates")
def get_status(request: Request) -> dict[str, Any]:
    return _controller(request).status()


def _can_capture() -> bool:
    """CAP_NET_RAW (bit 13) in the effective capabilities, or root."""
    if os.geteuid() == 0:
        return True
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << 13))
    except (OSError, ValueError):
        pass
    return False


@router.get("/interfaces", response_model=list[InterfaceRow], summary="Host interfaces")
def get_interfaces() -> list[dict[str, Any]]:
    can = _can_capture()
    rows = [
        {
            "name": i.name,
            "up": i.up,
            "kind": i.kind,
            "addresses": [*i.ipv4, *i.ipv6],
            "can_capture": can,
        }
        for i in list_interfaces()
    ]
    rows.append({"name": ANY, "up": True, "kind": "any", "addresses": [], "can_capture": can})
    return rows


@router.post(
    "/capture/start", response_model=ControlReply, responses=_CONTROL_ERRORS,
    summary="Start capturing (interface + BPF filter)",
)  # fmt: skip
def start_capture(request: Request, body: StartRequest) -> dict[str, Any]:
    c = _controller(request)
    state = request.app.state.dashboard
    if body.demo:
        if state.demo_capture is None:
            raise ControlError("no demo capture: start with `flowscope demo`", 404)
        state.start_demo()
    else:
        if not body.interface:
            raise ControlError("choose an interface", 404)
        c.start_live(body.interface, body.bpf)
    return {"ok": True, "sensor": c.sensor()}


@router.post(
    "/capture/stop", response_model=ControlReply, responses=_CONTROL_ERRORS,
    summary="Stop capturing (final verdicts for open flows)",
)  # fmt: skip
def stop_capture(request: Request) -> dict[str, Any]:
    c = _controller(request)
    c.stop()
    return {"ok": True, "sensor": c.sensor()}


@router.post(
    "/clear", response_model=ControlReply, responses=_CONTROL_ERRORS,
    summary="Clear results: new store session and log files; nothing is deleted",
)  # fmt: skip
def clear(request: Request) -> dict[str, Any]:
    c = _controller(request)
    c.clear()
    return {"ok": True, "sensor": c.sensor()}


# ------------------------------------------------------------------ flows
def _flow_filters(
    addr: str | None, port: int | None, verdict: str | None, family: str | None,
    risk: str | None, protocol: str | None, session: str | None, min_score: float | None,
) -> dict[str, Any]:  # fmt: skip
    f: dict[str, Any] = {}
    if addr:
        f["ip"] = addr
    if port is not None:
        f["port"] = port
    if verdict:
        f["malicious"] = verdict == "malicious"
    if family:
        f["family"] = family
    if risk:
        f["risk"] = risk
    if protocol:
        f["protocol"] = protocol
    if session:
        f["session"] = session if session == "all" else int(session)
    if min_score is not None:
        f["min_score"] = min_score
    return f


def _flows_page(request: Request, filters: dict[str, Any], sort: str, page: int, size: int) -> Any:
    p = _controller(request).store.query_flows(filters, sort=sort, page=page, page_size=size)
    return {"total": p.total, "page": p.page, "page_size": p.page_size, "rows": p.rows}


_Page = Query(1, ge=1, le=1_000_000, description="1-based page number.")
_Size = Query(50, ge=1, le=MAX_PAGE, description=f"Rows per page (≤ {MAX_PAGE}).")
_Addr = Query(None, max_length=64, description="Source or destination address.")
_Port = Query(None, ge=0, le=65535, description="Source or destination port.")
_Family = Query(None, max_length=_TEXT, description="Verdict family (e.g. scan, dos).")
_Risk = Query(None, description="Risk level.")
_Proto = Query(
    None,
    pattern=r"^(tcp|udp|icmp|icmpv6|sctp|25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$",
    description="Protocol: a name or an IP protocol number (0-255).",
)
_Session = Query(None, pattern=_SESSION, description="Session id or 'all' (default: current).")
_MinScore = Query(None, ge=0.0, le=1.0, description="Lowest model score.")
RiskLevel = Literal["low", "medium", "high", "critical"]
_Level = Query(None, description="Alert level.")


@router.get("/flows", response_model=FlowPage, summary="Classified flows (paged, filtered)")
def get_flows(
    request: Request,
    page: int = _Page,
    page_size: int = _Size,
    sort: str = Query("-time", pattern=_FLOW_SORT, description="Column; '-' = descending."),
    addr: str | None = _Addr,
    port: int | None = _Port,
    verdict: Literal["benign", "malicious"] | None = Query(None),
    family: str | None = _Family,
    risk: RiskLevel | None = _Risk,
    protocol: str | None = _Proto,
    session: str | None = _Session,
    min_score: float | None = _MinScore,
) -> Any:
    f = _flow_filters(addr, port, verdict, family, risk, protocol, session, min_score)
    return _flows_page(request, f, sort, page, page_size)


@router.get(
    "/detections", response_model=FlowPage, summary="Flows the model flagged (paged, filtered)"
)
def get_detections(
    request: Request,
    page: int = _Page,
    page_size: int = _Size,
    sort: str = Query("-time", pattern=_FLOW_SORT, description="Column; '-' = descending."),
    addr: str | None = _Addr,
    port: int | None = _Port,
    family: str | None = _Family,
    risk: RiskLevel | None = _Risk,
    protocol: str | None = _Proto,
    session: str | None = _Session,
    min_score: float | None = _MinScore,
) -> Any:
    f = _flow_filters(addr, port, "malicious", family, risk, protocol, session, min_score)
    return _flows_page(request, f, sort, page, page_size)


def _related_alerts(c: SensorController, flow: dict[str, Any]) -> list[dict[str, Any]]:
    """Incidents of the flow's session whose attacker or victim is one of its hosts."""
    hosts = sorted({flow["src_ip"], flow["dst_ip"]})
    seen: dict[int, dict[str, Any]] = {}
    for key in ("src_ip", "dest_ip"):
        f = {"session": flow["session_id"], key: hosts}
        for row in c.store.query_alerts(f, sort="-updated", page_size=50).rows:
            seen[row["id"]] = row
    return sorted(seen.values(), key=lambda r: -float(r.get("updated") or 0))[:50]


def _risk_reasons(flow: dict[str, Any], alerts: list[dict[str, Any]]) -> list[str]:
    """Why the flow has its risk level, in the terms of the definition (sensor/risk.py)."""
    out = []
    fam = flow["family"]
    if flow["malicious"]:
        strong = flow["score"] >= HIGH_SCORE and fam in HARMFUL_FAMILIES
        out.append(
            f"model: {fam} with score {flow['score']:.3f}"
            + (" (harmful family, high score)" if strong else "")
        )
    else:
        out.append(f"model: benign (score {flow['score']:.3f})")
    if alerts:
        active = [a for a in alerts if a["state"] != "end"]
        out.append(f"rules: {len(alerts)} incident(s) involving its hosts, {len(active)} active")
        if flow["malicious"] and any(a.get("family") == fam for a in alerts):
            out.append(f"corroborated: a rule incident of the same family ({fam})")
    return out


@router.get(
    "/flows/{flow_id}", response_model=FlowDetail, responses={404: {"model": ErrorReply}},
    summary="One flow: every feature with its unit, probabilities, explanation, risk, alerts",
)  # fmt: skip
def get_flow(request: Request, flow_id: int = PathParam(ge=1, le=2**62)) -> Any:
    c = _controller(request)
    d = c.store.get_flow(flow_id)
    if d is None:
        raise HTTPException(404, f"no flow {flow_id}")
    features = []
    for name, value in d["features"].items():
        unit, desc = _UNITS.get(name, (None, None))
        v = float(value)
        features.append(
            {"name": name, "value": v if v == v and abs(v) != float("inf") else None,
             "unit": unit, "description": desc}
        )  # fmt: skip
    top = d.get("top_features") or []
    alerts = _related_alerts(c, d)
    return {
        "flow": d,
        "features": features,
        "score": d["score"],
        "verdict": d["verdict"],
        "family": d["family"],
        "probabilities": d["proba"],
        "explanation": [
            {"feature": t["feature"], "value": t["value"], "contribution": t["weight"]} for t in top
        ],
        "risk": {"level": d["risk"], "reasons": _risk_reasons(d, alerts)},
        "alerts": alerts,
        "extra": d.get("extra") or {},
    }


# ------------------------------------------------------------------ alerts
@router.get("/alerts", response_model=AlertPage, summary="Rule alerts (incidents), paged")
def get_alerts(
    request: Request,
    page: int = _Page,
    page_size: int = _Size,
    sort: str = Query("-updated", pattern=_ALERT_SORT, description="Column; '-' = descending."),
    state: Literal["new", "update", "end"] | None = Query(None),
    signature: str | None = Query(None, max_length=_TEXT),
    family: str | None = _Family,
    level: RiskLevel | None = _Level,
    attacker: str | None = Query(None, max_length=64, description="Attacker address."),
    victim: str | None = Query(None, max_length=64, description="Victim address."),
    session: str | None = _Session,
) -> Any:
    f: dict[str, Any] = {}
    for key, value in (
        ("state", state), ("signature", signature), ("family", family), ("level", level),
        ("src_ip", attacker), ("dest_ip", victim),
    ):  # fmt: skip
        if value:
            f[key] = value
    if session:
        f["session"] = session if session == "all" else int(session)
    p = _controller(request).store.query_alerts(f, sort=sort, page=page, page_size=page_size)
    return {"total": p.total, "page": p.page, "page_size": p.page_size, "rows": p.rows}


@router.get(
    "/alerts/{incident_id}", response_model=AlertDetail, responses={404: {"model": ErrorReply}},
    summary="One incident with its latest EVE event",
)  # fmt: skip
def get_alert(
    request: Request,
    incident_id: str = PathParam(min_length=1, max_length=_TEXT),
    session: int | None = Query(None, ge=0, le=10**9),
) -> Any:
    d = _controller(request).store.get_alert(incident_id, session)
    if d is None:
        raise HTTPException(404, f"no alert {incident_id!r:.80}")
    return d


# ------------------------------------------------------------------ aggregates
def _session(session: str | None) -> int | str | None:
    return None if not session else (session if session == "all" else int(session))


@router.get("/top-talkers", response_model=list[Talker], summary="Busiest addresses")
def get_top_talkers(
    request: Request,
    by: Literal["bytes", "flows", "packets"] = Query("bytes"),
    side: Literal["src", "dst"] = Query("src"),
    limit: int = Query(10, ge=1, le=100),
    window: float | None = Query(
        None, gt=0, le=10**7, description="Seconds before the newest flow; default: session."
    ),
    session: str | None = _Session,
) -> Any:
    sess: int | str | None = (
        None if not session else (session if session == "all" else int(session))
    )
    rows = _controller(request).store.top_talkers(by, window, side=side, limit=limit, session=sess)
    return [
        {
            "address": r["ip"],
            "bytes": int(r["bytes"] or 0),
            "flows": int(r["flows"] or 0),
            "packets": int(r["packets"] or 0),
            "malicious_flows": int(r["malicious"] or 0),
            "malicious_share": (int(r["malicious"] or 0) / r["flows"]) if r["flows"] else 0.0,
        }
        for r in rows
    ]


@router.get("/timeseries", response_model=list[Bucket], summary="Traffic over time")
def get_timeseries(
    request: Request,
    bucket: float = Query(1.0, ge=0.001, le=86400.0, description="Bucket width, seconds."),
    max_buckets: int = Query(300, ge=1, le=10_000),
    window: float | None = Query(None, gt=0, le=10**7, description="Seconds; default: session."),
    session: str | None = _Session,
) -> Any:
    sess: int | str | None = (
        None if not session else (session if session == "all" else int(session))
    )
    rows = _controller(request).store.timeseries(
        bucket, window, session=sess, max_buckets=max_buckets
    )
    return [
        {
            "t": r["start_ns"] / 1e9,
            "flows": int(r["flows"] or 0),
            "malicious": int(r["malicious"] or 0),
            "bytes": int(r["bytes"] or 0),
            "packets": int(r["packets"] or 0),
        }
        for r in rows
    ]


@router.get("/sessions", response_model=list[SessionRow], summary="Store sessions (clears)")
def get_sessions(request: Request) -> Any:
    return _controller(request).store.sessions()


# ------------------------------------------------------------------ model
@router.get("/model", response_model=ModelReply, summary="The loaded model bundle")
def get_model(request: Request) -> Any:
    return request.app.state.dashboard.model_info()


@router.get(
    "/model/card", response_class=PlainTextResponse, summary="The model card (Markdown text)"
)
def get_model_card(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.app.state.dashboard.model_card())
