"""EVE JSON lines: ``flow`` and ``alert`` events with Suricata's field names.

One JSON object per line, in ``eve.json`` (rotated ``eve.json.1``, ``.2`` …, see
:mod:`flowscope.sinks.rotate`). Field names follow Suricata's EVE format (docs:
"Eve JSON Format", https://docs.suricata.io/en/latest/output/eve/eve-json-format.html;
the flow object as written by ``src/output-json-flow.c`` and described in
``etc/schema.json``) wherever flowscope has the same fact; flowscope's own results go
under a ``flowscope`` object so EVE consumers (jq, Filebeat's Suricata module, …) see
familiar events. docs/outputs.md lists every field and how it is derived; in short:

- ``flow_id``: Suricata writes a 51-bit integer built from its flow hash and start
  time. flowscope's ``flow_id`` column is the text ``src-dst-sport-dport-proto``, which
  repeats across time, so the EVE ``flow_id`` is the first 51 bits of
  BLAKE2b(text ``"/"`` first-packet ns): a stable integer, the same in every run and in
  the SQLite store, unique per flow for practical purposes. The text is kept as
  ``flowscope.flow_key``.
- ``src_*``/``dest_*``: the flow's forward direction (the first packet's sender is the
  source), as Suricata's "to server" direction. No ports for ICMP/ICMPv6 (as Suricata);
  ``icmp_type``/``icmp_code`` of the first ICMP packet instead.
- ``flow.pkts_toserver``/``pkts_toclient``: forward/backward packets;
  ``bytes_toserver``/``bytes_toclient``: forward/backward frame bytes with the link layer
  (Suricata counts whole packets, link header included).
- ``flow.start``/``end``: first/last packet; ``age``: whole seconds between them,
  computed as Suricata does (end seconds − start seconds).
- ``flow.state``: ``closed`` for TCP flows that ended on FIN or RST; ``established``
  when the responder answered (for TCP: both directions sent ACKs); else ``new``.
- ``flow.reason``: ``timeout`` for idle and active timeouts and for FIN/RST-closed flows
  (Suricata also ends closed flows by its timeout), ``forced`` for flows evicted from a
  full flow table, ``shutdown`` for flows still open when the capture or sensor stopped.
  The exact flowscope reason is ``flowscope.end_reason``.
- ``flow.alerted``: the model flagged the flow (verdict Malicious).
- ``timestamp``: the flow's last packet (Suricata logs the time it wrote the event, after
  the flow timed out; flowscope's end time is the deterministic equivalent).

Alert events (from the rule engine) are written as given, with ``event_type`` and
``timestamp`` filled in when missing and ``flowscope.incident_id`` (and
``flowscope.event``: new/update/end, when known) added; see :func:`alert_event`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.detect.alerts import iso_ns
from flowscope.sinks.batch import (
    PreparedBatch,
    column_list,
    column_numpy,
    first_int_column,
    has_column,
    int_column,
)
from flowscope.sinks.rotate import FlushPolicy, RotatingFiles, Rotation

EveFlows = Literal["all", "malicious", "none"]
EVE_FLOWS: tuple[str, ...] = ("all", "malicious", "none")

# Suricata's protocol names (src/util-proto-name.c, from the IANA registry) for the
# protocols a sensor meets; any other number is printed as Suricata prints unknown ones.
PROTO_NAMES: dict[int, str] = {
    0: "HOPOPT", 1: "ICMP", 2: "IGMP", 4: "IP-in-IP", 6: "TCP", 17: "UDP", 41: "IPv6",
    47: "GRE", 50: "ESP", 51: "AH", 58: "IPv6-ICMP", 89: "OSPF", 103: "PIM", 112: "VRRP",
    115: "L2TP", 132: "SCTP", 136: "UDPLite",
}  # fmt: skip

# flowscope end_reason → Suricata flow.reason
EVE_REASON: dict[str, str] = {
    "idle": "timeout",
    "active": "timeout",
    "fin": "timeout",
    "rst": "timeout",
    "evicted": "forced",
    "eof": "shutdown",
    "running": "running",  # a provisional verdict on an open flow (sensor early verdicts)
}

_ID_MASK = (1 << 51) - 1
_ICMP = (1, 58)
_PORTED = (6, 17, 132, 136)
_TCP_FLAG_NAMES = (
    (0x01, "fin"), (0x02, "syn"), (0x04, "rst"), (0x08, "psh"), (0x10, "ack"), (0x20, "urg"),
    (0x40, "ecn"), (0x80, "cwr"),
)  # fmt: skip
_SYN, _ACK = 0x02, 0x10


def proto_name(proto: int) -> str:
    """EVE ``proto``: Suricata's name for an IP protocol number ("TCP", "IPv6-ICMP", "047")."""
    return PROTO_NAMES.get(proto, f"{proto:03d}")


def eve_flow_id(flow_key: str, first_seen_ns: int) -> int:
    """The EVE ``flow_id`` of a flow: 51 bits of BLAKE2b(``flow_key/first_seen_ns``)."""
    digest = hashlib.blake2b(f"{flow_key}/{first_seen_ns}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & _ID_MASK


def eve_times(ns: npt.NDArray[np.int64]) -> pa.Array:
    """ns since the epoch → EVE timestamps (UTC), as a string array.

    numpy's ISO formatting of ``datetime64[us]`` is the same text as Arrow's ``strftime``
    with ``%S`` (which prints the microseconds) but ~10× faster, which matters at tens of
    thousands of flows per second.
    """
    us = (np.asarray(ns, np.int64) // 1000).astype("datetime64[us]")
    text = pa.array(np.datetime_as_string(us), pa.string())
    return pc.binary_join_element_wise(text, "+0000", "")


def eve_time_ns(ns: pa.Array | pa.ChunkedArray) -> list[str]:
    """ns since the epoch → EVE timestamps, ``2025-01-01T12:00:00.123456+0000`` (UTC)."""
    values = column_numpy(ns)
    out: list[str] = eve_times(values).to_pylist()
    return out


def eve_now(clock: Callable[[], float] = time.time) -> str:
    return datetime.fromtimestamp(clock(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")


def flow_states(table: pa.Table) -> list[str]:
    """EVE ``flow.state`` per flow (see the module docstring)."""
    n = table.num_rows
    proto = first_int_column(table, "protocol")
    bwd = first_int_column(table, "bwd_packets")
    reason = np.asarray(column_list(table, "end_reason", ""), dtype=object)
    fflags, bflags = int_column(table, "fwd_tcp_flags"), int_column(table, "bwd_tcp_flags")
    answered = bwd > 0
    if fflags is not None and bflags is not None:
        tcp_ok = ((fflags & _ACK) != 0) & ((bflags & _ACK) != 0)
        answered = np.where(proto == 6, answered & tcp_ok, answered)
    closed = (proto == 6) & np.isin(reason, ["fin", "rst"]) if n else np.zeros(0, bool)
    state = np.where(closed, "closed", np.where(answered, "established", "new"))
    return [str(s) for s in state]


def flow_events(batch: PreparedBatch, only_malicious: bool = False) -> list[dict[str, Any]]:
    """EVE ``flow`` events for a batch (in row order; flagged flows only if asked)."""
    t = batch.flows
    vt = batch.verdict_table
    n = t.num_rows
    if n == 0:
        return []
    first = first_int_column(t, "first_seen")
    last = first_int_column(t, "last_seen")
    starts = eve_time_ns(pa.array(first))
    ends = eve_time_ns(pa.array(last))
    age = (last // 1_000_000_000 - first // 1_000_000_000).tolist()
    keys = column_list(t, "flow_id", "")
    ids = batch.eve_flow_ids()
    src, dst = column_list(t, "src_ip"), column_list(t, "dst_ip")
    sport, dport = column_list(t, "src_port", 0), column_list(t, "dst_port", 0)
    proto = first_int_column(t, "protocol").tolist()
    vlan = first_int_column(t, "vlan_id").tolist()
    icmp_t = first_int_column(t, "icmp_type", default=-1).tolist()
    icmp_c = first_int_column(t, "icmp_code", default=-1).tolist()
    app = column_list(t, "app_proto")
    pf = first_int_column(t, "fwd_packets").tolist()
    pb = first_int_column(t, "bwd_packets").tolist()
    bf = first_int_column(t, "fwd_wire_bytes", "fwd_ip_bytes", "fwd_bytes").tolist()
    bb = first_int_column(t, "bwd_wire_bytes", "bwd_ip_bytes", "bwd_bytes").tolist()
    fflags, bflags = int_column(t, "fwd_tcp_flags"), int_column(t, "bwd_tcp_flags")
    ff = fflags.tolist() if fflags is not None else None
    bfl = bflags.tolist() if bflags is not None else None
    reasons = column_list(t, "end_reason", "")
    states = flow_states(t)
    score = batch.rounded_scores()
    verdict = vt.column("verdict").to_pylist()
    family = vt.column("family").to_pylist()
    malicious = batch.verdicts.malicious.tolist()
    classes = batch.classes
    proba = batch.rounded_proba()
    risk = batch.risk.to_pylist()
    supp = batch.verdicts.suppressed
    rule = batch.verdicts.rule
    events: list[dict[str, Any]] = []
    for i in range(n):
        if only_malicious and not malicious[i]:
            continue
        p = int(proto[i])
        ev: dict[str, Any] = {
            "timestamp": ends[i],
            "flow_id": ids[i],
            "event_type": "flow",
            "src_ip": src[i],
        }
        if p in _PORTED:
            ev["src_port"] = sport[i]
        ev["dest_ip"] = dst[i]
        if p in _PORTED:
            ev["dest_port"] = dport[i]
        ev["proto"] = proto_name(p)
        if p in _ICMP and icmp_t[i] >= 0:
            ev["icmp_type"] = icmp_t[i]
            ev["icmp_code"] = icmp_c[i]
        if vlan[i]:
            ev["vlan"] = [vlan[i]]
        if app[i]:
            ev["app_proto"] = app[i]
        ev["flow"] = {
            "pkts_toserver": pf[i],
            "pkts_toclient": pb[i],
            "bytes_toserver": bf[i],
            "bytes_toclient": bb[i],
            "start": starts[i],
            "end": ends[i],
            "age": age[i],
            "state": states[i],
            "reason": EVE_REASON.get(reasons[i], "timeout"),
            "alerted": bool(malicious[i]),
        }
        if p == 6 and ff is not None and bfl is not None:
            both = ff[i] | bfl[i]
            tcp: dict[str, Any] = {
                "tcp_flags": f"{both & 0xFF:02x}",
                "tcp_flags_ts": f"{ff[i] & 0xFF:02x}",
                "tcp_flags_tc": f"{bfl[i] & 0xFF:02x}",
            }
            for bit, name in _TCP_FLAG_NAMES:
                if both & bit:
                    tcp[name] = True
            ev["tcp"] = tcp
        fs: dict[str, Any] = {
            "flow_key": keys[i],
            "end_reason": reasons[i],
            "score": score[i],
            "verdict": verdict[i],
            "family": family[i],
            "probabilities": dict(zip(classes, proba[i], strict=True)),
        }
        if risk[i] is not None:
            fs["risk"] = risk[i]
        top = batch.top_json(i)
        if top is not None:
            fs["top_features"] = top
        if supp is not None and bool(supp[i]):
            fs["suppressed"] = True
            if rule is not None:
                fs["rule"] = int(rule[i])
        ev["flowscope"] = fs
        events.append(ev)
    return events


# Printable ASCII without '"' and '\': json.dumps writes such a string as "text" verbatim.
_PLAIN_JSON = r"^[ !#-\[\]-~]*$"
_HEX = np.array([f"{v:02x}" for v in range(256)], dtype=object)
# The ``"name":true`` members Suricata's tcp object gets for each flag bit that is set.
_FLAG_MEMBERS = np.array(
    ["".join(f',"{name}":true' for bit, name in _TCP_FLAG_NAMES if v & bit) for v in range(256)],
    dtype=object,
)

Fragment: TypeAlias = pa.Array | str


def join_text(*parts: Fragment) -> pa.Array:
    """Row-wise concatenation of string arrays and constants (one Arrow kernel call)."""
    return pc.binary_join_element_wise(*parts, "")


def _opt(mask: npt.NDArray[np.bool_], *parts: Fragment) -> Fragment:
    """``parts`` where ``mask`` holds, else the empty string (an optional JSON member)."""
    if not mask.any():
        return ""
    return pc.if_else(pa.array(mask), join_text(*parts), "")


def _json_text(values: pa.Array | pa.ChunkedArray | list[Any]) -> pa.Array:
    """Each value as json.dumps writes it, column-wise when that is safe.

    Strings of plain ASCII are quoted by Arrow; integers are cast; anything else (other
    characters, floats, nulls in a string column, Python lists) goes through json.dumps.
    """
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count == 0:
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            if pc.all(pc.match_substring_regex(arr, _PLAIN_JSON)).as_py() is not False:
                return join_text('"', arr.cast(pa.string()), '"')
        elif pa.types.is_integer(arr.type):
            return arr.cast(pa.string())
        elif pa.types.is_boolean(arr.type):
            return pc.if_else(arr, "true", "false")
    return pa.array([json.dumps(v) for v in arr.to_pylist()], pa.string())


def _column_text(table: pa.Table, name: str, default: Any) -> pa.Array:
    """A flow-table column as JSON text (``default`` for every row if it is missing)."""
    if has_column(table, name):
        return _json_text(table.column(name))
    return _json_text([default] * table.num_rows)


def float_text(values: npt.NDArray[np.floating[Any]]) -> pa.Array:
    """Python's float text (what json.dumps writes) for each value."""
    return pa.array(list(map(repr, values.tolist())), pa.string())


def flow_lines(batch: PreparedBatch, only_malicious: bool = False) -> tuple[bytes, int]:
    """The EVE ``flow`` lines of a batch, newline-terminated, and how many there are.

    Byte for byte what ``dumps`` writes for each of :func:`flow_events` (the tests hold
    them equal), but built a column at a time by Arrow kernels: per-row dicts and
    json.dumps were ~40 µs a flow, the largest single cost of the live sensor.
    """
    t = batch.flows
    vt = batch.verdict_table
    n = t.num_rows
    if n == 0:
        return b"", 0
    first = first_int_column(t, "first_seen")
    last = first_int_column(t, "last_seen")
    ends = eve_times(last)
    proto = first_int_column(t, "protocol")
    ported = np.isin(proto, _PORTED)
    icmp_t = first_int_column(t, "icmp_type", default=-1)
    icmp_c = first_int_column(t, "icmp_code", default=-1)
    icmp = np.isin(proto, _ICMP) & (icmp_t >= 0)
    vlan = first_int_column(t, "vlan_id")
    app = pa.array(column_list(t, "app_proto"), pa.string())
    has_app = np.asarray(pc.fill_null(pc.greater(pc.utf8_length(app), 0), False))
    names: dict[int, str] = {}
    proto_text = pa.array(
        [names.get(x) or names.setdefault(x, proto_name(x)) for x in proto.tolist()], pa.string()
    )
    reason_list = column_list(t, "end_reason", "")
    reasons = pa.array(reason_list, pa.string())
    eve_reason = pa.array([EVE_REASON.get(r, "timeout") for r in reason_list], pa.string())
    malicious = np.asarray(batch.verdicts.malicious, bool)

    def ints(x: npt.NDArray[np.int64]) -> pa.Array:
        return pa.array(x, pa.int64()).cast(pa.string())

    bf = first_int_column(t, "fwd_wire_bytes", "fwd_ip_bytes", "fwd_bytes")
    bb = first_int_column(t, "bwd_wire_bytes", "bwd_ip_bytes", "bwd_bytes")
    parts: list[Fragment] = [
        '{"timestamp":"', ends,
        '","flow_id":', ints(np.asarray(batch.eve_flow_ids(), np.int64)),
        ',"event_type":"flow","src_ip":', _column_text(t, "src_ip", None),
        _opt(ported, ',"src_port":', _column_text(t, "src_port", 0)),
        ',"dest_ip":', _column_text(t, "dst_ip", None),
        _opt(ported, ',"dest_port":', _column_text(t, "dst_port", 0)),
        ',"proto":"', proto_text, '"',
        _opt(icmp, ',"icmp_type":', ints(icmp_t), ',"icmp_code":', ints(icmp_c)),
        _opt(vlan != 0, ',"vlan":[', ints(vlan), "]"),
        _opt(has_app, ',"app_proto":', _json_text(pc.fill_null(app, ""))),
        ',"flow":{"pkts_toserver":', ints(first_int_column(t, "fwd_packets")),
        ',"pkts_toclient":', ints(first_int_column(t, "bwd_packets")),
        ',"bytes_toserver":', ints(bf),
        ',"bytes_toclient":', ints(bb),
        ',"start":"', eve_times(first),
        '","end":"', ends,
        '","age":', ints(last // 1_000_000_000 - first // 1_000_000_000),
        ',"state":"', pa.array(flow_states(t), pa.string()),
        '","reason":"', eve_reason,
        '","alerted":', pc.if_else(pa.array(malicious), "true", "false"),
        "}",
    ]  # fmt: skip
    fflags, bflags = int_column(t, "fwd_tcp_flags"), int_column(t, "bwd_tcp_flags")
    if fflags is not None and bflags is not None:
        both = (fflags | bflags) & 0xFF
        parts.append(
            _opt(
                proto == 6,
                ',"tcp":{"tcp_flags":"',
                pa.array(_HEX[both], pa.string()),
                '","tcp_flags_ts":"',
                pa.array(_HEX[fflags & 0xFF], pa.string()),
                '","tcp_flags_tc":"',
                pa.array(_HEX[bflags & 0xFF], pa.string()),
                '"',
                pa.array(_FLAG_MEMBERS[both], pa.string()),
                "}",
            )
        )
    proba = np.round(np.nan_to_num(np.asarray(batch.verdicts.proba, np.float64)), 6)
    parts += [
        ',"flowscope":{"flow_key":', _column_text(t, "flow_id", ""),
        ',"end_reason":', _json_text(reasons),
        ',"score":', float_text(np.asarray(batch.rounded_scores(), np.float64)),
        ',"verdict":', _json_text(vt.column("verdict")),
        ',"family":', _json_text(vt.column("family")),
        ',"probabilities":{',
    ]  # fmt: skip
    for k, name in enumerate(batch.classes):
        parts += [("," if k else "") + json.dumps(name) + ":", float_text(proba[:, k])]
    parts.append("}")
    risk = batch.risk
    has_risk = np.asarray(pc.is_valid(risk))
    parts.append(_opt(has_risk, ',"risk":', _json_text(pc.fill_null(risk, ""))))
    explained = [i for i, top in enumerate(batch.top) if top is not None]
    if explained:
        top_text = np.full(n, "", dtype=object)
        for i in explained:
            top_text[i] = ',"top_features":' + json.dumps(
                batch.top_json(i), separators=(",", ":"), allow_nan=False
            )
        parts.append(pa.array(top_text, pa.string()))
    supp = batch.verdicts.suppressed
    if supp is not None:
        vetoed = np.asarray(supp, bool)
        rule = batch.verdicts.rule
        if rule is None:
            parts.append(_opt(vetoed, ',"suppressed":true'))
        else:
            rules = np.asarray(rule).astype(np.int64)
            parts.append(_opt(vetoed, ',"suppressed":true,"rule":', ints(rules)))
    parts.append("}}\n")
    lines = join_text(*parts)
    if only_malicious:
        lines = lines.filter(pa.array(malicious))
    count = len(lines)
    if count == 0:
        return b"", 0
    offsets = np.frombuffer(lines.buffers()[1], np.int32)[lines.offset : lines.offset + count + 1]
    data = lines.buffers()[2]
    assert data is not None
    return bytes(memoryview(data)[int(offsets[0]) : int(offsets[-1])]), count


def _clean(obj: Any) -> Any:
    """Make a foreign event JSON-safe: numpy scalars → Python, NaN/Infinity → null."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    if isinstance(obj, datetime):
        return obj.isoformat()
    return str(obj)


def dumps(event: Mapping[str, Any]) -> str:
    """One EVE line (no newline): compact JSON, ASCII only."""
    return json.dumps(event, separators=(",", ":"), allow_nan=False)


def alert_event(
    event: Any,
    incident_id: str | None = None,
    clock: Callable[[], float] = time.time,
    kind: str | None = None,
) -> dict[str, Any]:
    """An alert as it is written: a JSON-safe EVE dict with ``timestamp`` (first) and
    ``event_type`` defaulted, and ``flowscope.incident_id`` always set.

    ``event`` is an EVE alert dict, or the rule engine's ``Alert`` (anything with
    ``to_eve()`` and ``id``) or ``AlertEvent`` (``.kind`` and ``.alert``). The incident id
    is ``incident_id``, else the event's ``flowscope.incident_id`` / ``id`` /
    ``incident``, else a new random one (the event is then an incident of its own). The
    step of the incident's life (new / update / end: ``kind`` or the AlertEvent's) is
    recorded as ``flowscope.event`` when known, and an AlertEvent's capture time as
    ``flowscope.event_time``.
    """
    at: int | None = None
    if not isinstance(event, Mapping):
        inner = getattr(event, "alert", None)
        if inner is not None and hasattr(inner, "to_eve"):
            kind = kind or getattr(event, "kind", None)
            at = getattr(event, "at", None)
            event = inner
        if not hasattr(event, "to_eve"):
            raise TypeError("an alert is an EVE alert dict or the rule engine's Alert/AlertEvent")
        incident_id = incident_id or getattr(event, "id", None)
        event = event.to_eve()
    ev: dict[str, Any] = _clean(event)
    ev.setdefault("timestamp", eve_now(clock))
    ev.setdefault("event_type", "alert")
    fs = ev.get("flowscope")
    fs = dict(fs) if isinstance(fs, dict) else {}
    iid = (
        incident_id
        or fs.get("incident_id")
        or fs.get("id")
        or fs.get("incident")
        or uuid.uuid4().hex
    )
    fs["incident_id"] = str(iid)
    if kind is not None:
        fs["event"] = str(kind)
    if isinstance(at, int):
        # ``timestamp`` is the newest evidence (as Suricata's packet time); this is when
        # the engine took the step, so a reader sees how long detection took.
        fs["event_time"] = iso_ns(at)
    ev["flowscope"] = fs
    # Suricata puts timestamp first; keep that order for readers that skim the lines.
    return {"timestamp": ev.pop("timestamp"), **ev}


class EveWriter:
    """EVE JSON lines to ``directory/eve.json`` (flow events per ``flows``; all alerts)."""

    name = "eve"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        filename: str = "eve.json",
        flows: EveFlows = "all",
        rotation: Rotation | None = None,
        flush: FlushPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if flows not in EVE_FLOWS:
            raise ValueError(f"flows must be one of {', '.join(EVE_FLOWS)}")
        self.flows = flows
        self.path = Path(directory) / filename
        self._clock = clock
        self.files = RotatingFiles(
            [self.path], naming="numbered", rotation=rotation, flush=flush, clock=clock
        )
        self.flow_events = 0
        self.alert_events = 0

    def write_flows(self, batch: PreparedBatch) -> None:
        if self.flows == "none" or batch.num_rows == 0:
            return
        data, count = flow_lines(batch, only_malicious=self.flows == "malicious")
        if count:
            self.files.write([data])
            self.flow_events += count

    def write_alert(self, event: Any, incident_id: str | None = None) -> None:
        line = dumps(alert_event(event, incident_id, self._clock)) + "\n"
        self.files.write([line.encode()])
        self.alert_events += 1

    def oldest_pending(self) -> float | None:
        return self.files.oldest_pending()

    def flush(self) -> None:
        self.files.flush()

    def close(self) -> None:
        self.files.close()
