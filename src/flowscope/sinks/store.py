"""SQLite store of classified flows and rule alerts, for the dashboard.

One database file (stdlib :mod:`sqlite3`, WAL mode: the dashboard reads while the sensor
writes). Tables:

- ``flows``: one row per classified flow: identifiers, summary columns the dashboard
  filters and sorts on (indexed), the verdict, risk and explanation, and every numeric
  feature as a packed little-endian float64 vector (``features``, column names in
  ``layouts``) that :meth:`FlowStore.get_flow` unpacks.
- ``alerts``: rule-engine incidents, upserted by incident id: the first event inserts a
  row, later events of the same incident (state ``update``/``end``) update it and count.
- ``sessions``: "clear results" in the dashboard starts a new session
  (:meth:`FlowStore.new_session`); every row carries the session it was stored in and
  queries show the current session unless asked otherwise. Nothing is deleted when a
  session starts; old sessions stay queryable.
- ``meta``: schema version and running totals.

Retention bounds the file: at most ``max_flows`` flows and ``max_alerts`` alerts (oldest
first), none older than ``max_age`` seconds of wall time since they were stored
(insertion time, so analysing an old capture does not expire its flows at once). Pruning
runs at most every few seconds and at close; every pruned row is counted, per session
(``sessions.pruned_flows``/``pruned_alerts``) and in total, and :meth:`FlowStore.counts`
reports it.

Every query is parameterised: filter values are bound, never formatted into SQL, and
sort keys and filter names come from fixed whitelists (unknown ones are a
:class:`QueryError`).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeGuard

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from flowscope.errors import FlowscopeError
from flowscope.sinks.batch import (
    RISK_LEVELS,
    PreparedBatch,
    column_list,
    column_numpy,
    first_int_column,
    has_column,
)
from flowscope.sinks.eve import alert_event, eve_time_ns, float_text, join_text, proto_name

SCHEMA_VERSION = 1
MAX_PAGE_SIZE = 1000
_PRUNE_EVERY = 5.0  # seconds between retention passes
_CACHE_KIB = 64 * 1024  # SQLite page cache of the writer
_NS = 1_000_000_000


class QueryError(FlowscopeError, ValueError):
    """A dashboard query with an unknown filter or sort key or a bad value."""


@dataclass(frozen=True, slots=True)
class Retention:
    """Bounds of the store. Zero turns a bound off."""

    max_flows: int = 500_000
    max_alerts: int = 100_000
    max_age: float = 7 * 86400.0  # seconds since a row was stored

    def __post_init__(self) -> None:
        if self.max_flows < 0 or self.max_alerts < 0 or self.max_age < 0:
            raise ValueError("retention limits must not be negative")


@dataclass
class Page:
    """One page of a query: rows as dicts, plus the total number of matches."""

    rows: list[dict[str, Any]]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


@dataclass
class PruneResult:
    flows: int = 0
    alerts: int = 0
    by_session: dict[int, tuple[int, int]] = field(default_factory=dict)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    ended REAL,
    label TEXT,
    pruned_flows INTEGER NOT NULL DEFAULT 0,
    pruned_alerts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS layouts (id INTEGER PRIMARY KEY, columns TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS flows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id INTEGER NOT NULL,
    eve_flow_id INTEGER NOT NULL,
    flow_key TEXT NOT NULL,
    src_ip TEXT NOT NULL,
    src_port INTEGER NOT NULL,
    dst_ip TEXT NOT NULL,
    dst_port INTEGER NOT NULL,
    protocol INTEGER NOT NULL,
    ip_version INTEGER,
    vlan_id INTEGER,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    duration_us REAL,
    packets INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    end_reason TEXT,
    score REAL NOT NULL,
    verdict TEXT NOT NULL,
    malicious INTEGER NOT NULL,
    family TEXT NOT NULL,
    risk TEXT,
    proba TEXT NOT NULL,
    top_features TEXT,
    layout_id INTEGER NOT NULL,
    features BLOB NOT NULL,
    extra TEXT,
    inserted REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS flows_time ON flows (session_id, first_seen);
CREATE INDEX IF NOT EXISTS flows_score ON flows (session_id, score);
CREATE INDEX IF NOT EXISTS flows_src ON flows (session_id, src_ip);
CREATE INDEX IF NOT EXISTS flows_dst ON flows (session_id, dst_ip);
CREATE INDEX IF NOT EXISTS flows_sport ON flows (session_id, src_port);
CREATE INDEX IF NOT EXISTS flows_dport ON flows (session_id, dst_port);
CREATE INDEX IF NOT EXISTS flows_verdict ON flows (session_id, verdict, first_seen);
CREATE INDEX IF NOT EXISTS flows_family ON flows (session_id, family, first_seen);
CREATE INDEX IF NOT EXISTS flows_inserted ON flows (inserted);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id INTEGER NOT NULL,
    incident_id TEXT NOT NULL,
    state TEXT NOT NULL,
    first_ts TEXT NOT NULL,
    last_ts TEXT NOT NULL,
    signature TEXT,
    category TEXT,
    severity INTEGER,
    level TEXT,
    rule TEXT,
    family TEXT,
    src_ip TEXT,
    dest_ip TEXT,
    dest_port INTEGER,
    proto TEXT,
    events INTEGER NOT NULL DEFAULT 1,
    event TEXT NOT NULL,
    inserted REAL NOT NULL,
    updated REAL NOT NULL,
    UNIQUE (session_id, incident_id)
);
CREATE INDEX IF NOT EXISTS alerts_updated ON alerts (session_id, updated);
CREATE INDEX IF NOT EXISTS alerts_sev ON alerts (session_id, severity);
CREATE INDEX IF NOT EXISTS alerts_upd_all ON alerts (updated);
"""

_FLOW_INSERT_COLUMNS = (
    "session_id", "eve_flow_id", "flow_key", "src_ip", "src_port", "dst_ip", "dst_port",
    "protocol", "ip_version", "vlan_id", "first_seen", "last_seen", "duration_us", "packets",
    "bytes", "end_reason", "score", "verdict", "malicious", "family", "risk", "proba",
    "top_features", "layout_id", "features", "extra", "inserted",
)  # fmt: skip
_FLOW_INSERT = (
    f"INSERT INTO flows ({', '.join(_FLOW_INSERT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _FLOW_INSERT_COLUMNS)})"
)
# Identifier columns stored as their own SQL columns; every other numeric column of the
# flow table goes into the features vector, every other text column into ``extra``.
_ID_COLUMNS = frozenset(
    ("flow_id", "src_ip", "src_port", "dst_ip", "dst_port", "protocol", "timestamp",
     "first_seen", "last_seen", "end_reason", "ip_version", "vlan_id")
)  # fmt: skip

_ALERT_UPSERT = """
INSERT INTO alerts (session_id, incident_id, state, first_ts, last_ts, signature, category,
                    severity, level, rule, family, src_ip, dest_ip, dest_port, proto, events,
                    event, inserted, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)
ON CONFLICT (session_id, incident_id) DO UPDATE SET
    state = excluded.state,
    last_ts = excluded.last_ts,
    signature = COALESCE(excluded.signature, alerts.signature),
    category = COALESCE(excluded.category, alerts.category),
    severity = COALESCE(excluded.severity, alerts.severity),
    level = COALESCE(excluded.level, alerts.level),
    rule = COALESCE(excluded.rule, alerts.rule),
    family = COALESCE(excluded.family, alerts.family),
    src_ip = COALESCE(excluded.src_ip, alerts.src_ip),
    dest_ip = COALESCE(excluded.dest_ip, alerts.dest_ip),
    dest_port = COALESCE(excluded.dest_port, alerts.dest_port),
    proto = COALESCE(excluded.proto, alerts.proto),
    events = alerts.events + 1,
    event = excluded.event,
    updated = excluded.updated
"""

# ------------------------------------------------------------------ query whitelists
_SUMMARY = (
    "id, session_id, eve_flow_id, flow_key, src_ip, src_port, dst_ip, dst_port, protocol, "
    "first_seen, last_seen, duration_us, packets, bytes, end_reason, score, verdict, family, "
    "risk, top_features"
)
_RISK_RANK = (
    "CASE risk WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 "
    "WHEN 'critical' THEN 4 ELSE 0 END"
)
FLOW_SORTS: dict[str, str] = {
    "time": "first_seen",
    "first_seen": "first_seen",
    "last_seen": "last_seen",
    "score": "score",
    "src_ip": "src_ip",
    "dst_ip": "dst_ip",
    "src_port": "src_port",
    "dst_port": "dst_port",
    "protocol": "protocol",
    "bytes": "bytes",
    "packets": "packets",
    "duration": "duration_us",
    "verdict": "verdict",
    "family": "family",
    "risk": _RISK_RANK,
    "id": "id",
}
ALERT_SORTS: dict[str, str] = {
    "updated": "updated",
    "time": "first_ts",
    "last": "last_ts",
    "severity": "severity",
    "signature": "signature",
    "category": "category",
    "events": "events",
    "state": "state",
    "level": "CASE level WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 "
    "WHEN 'critical' THEN 4 ELSE 0 END",
    "id": "id",
}
_PROTO_BY_NAME = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132}
_MAX_LIST = 100
_MAX_TEXT = 256


def _is_int(v: Any) -> TypeGuard[int | np.integer[Any]]:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _as_int(name: str, v: Any, lo: int = -(2**63), hi: int = 2**63 - 1) -> int:
    if isinstance(v, str) and re.fullmatch(r"-?[0-9]{1,19}", v.strip()):
        v = int(v.strip())
    if not _is_int(v):
        raise QueryError(f"filter {name!r} needs an integer, got {v!r:.40}")
    out = int(v)
    if not lo <= out <= hi:
        raise QueryError(f"filter {name!r} out of range: {out}")
    return out


def _as_float(name: str, v: Any) -> float:
    if isinstance(v, bool):
        raise QueryError(f"filter {name!r} needs a number, got {v!r}")
    try:
        out = float(v)
    except (TypeError, ValueError):
        raise QueryError(f"filter {name!r} needs a number, got {v!r:.40}") from None
    if not np.isfinite(out):
        raise QueryError(f"filter {name!r} needs a finite number")
    return out


def _as_texts(name: str, v: Any) -> list[str]:
    values = list(v) if isinstance(v, list | tuple) else [v]
    if not values or len(values) > _MAX_LIST:
        raise QueryError(f"filter {name!r} needs 1 to {_MAX_LIST} values")
    for x in values:
        if not isinstance(x, str):
            raise QueryError(f"filter {name!r} needs text, got {x!r:.40}")
        if len(x) > _MAX_TEXT:
            raise QueryError(f"filter {name!r}: value longer than {_MAX_TEXT} characters")
    return values


def _in(column: str, values: list[Any]) -> str:
    return f"{column} IN ({', '.join('?' for _ in values)})"


def _order(sort: str, whitelist: Mapping[str, str], default: str) -> str:
    key = sort or default
    desc = key.startswith("-")
    name = key[1:] if desc else key
    col = whitelist.get(name)
    if col is None:
        raise QueryError(f"cannot sort by {name!r:.40}; choose from {', '.join(whitelist)}")
    d = "DESC" if desc else "ASC"
    return f"ORDER BY {col} {d}, id {d}"


def _paging(page: int, page_size: int) -> tuple[int, int]:
    if not _is_int(page) or page < 1:
        raise QueryError("page must be an integer ≥ 1")
    if not _is_int(page_size) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise QueryError(f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}")
    return int(page), int(page_size)


def _proba_json(classes: tuple[str, ...], proba: npt.NDArray[np.floating[Any]]) -> list[str]:
    """``json.dumps(dict(zip(classes, row)))`` for every row of ``proba``, column-wise."""
    n = proba.shape[0]
    if not classes:
        return ["{}"] * n
    parts: list[Any] = []
    for k, name in enumerate(classes):
        parts += [("{" if k == 0 else ", ") + json.dumps(name) + ": ", float_text(proba[:, k])]
    parts.append("}")
    out: list[str] = join_text(*parts).to_pylist()
    return out


class FlowStore:
    """The dashboard's SQLite database: write flows/alerts, query them, keep it bounded."""

    name = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention: Retention | None = None,
        fsync: bool = True,
        flush_interval: float = 1.0,
        readonly: bool = False,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.retention = retention or Retention()
        self.readonly = readonly
        self.flush_interval = flush_interval
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.RLock()
        self._pending_since: float | None = None
        self._last_prune = monotonic()
        self._layouts: dict[tuple[str, ...], int] = {}
        self._layout_names: dict[int, list[str]] = {}
        self.closed = False
        try:
            if readonly:
                uri = self.path.resolve().as_uri() + "?mode=ro"
                self._db = sqlite3.connect(
                    uri, uri=True, isolation_level=None, check_same_thread=False
                )
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA busy_timeout = 5000")
            if not readonly:
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute(f"PRAGMA synchronous = {'FULL' if fsync else 'NORMAL'}")
                # Nine indexes on flows, most on random keys (addresses, ports, scores):
                # with SQLite's default 2 MiB page cache every insert re-reads index pages;
                # 64 MiB keeps them cached (~25 % faster inserts at 500k stored flows).
                self._db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
                self._db.executescript(_SCHEMA)
                self._check_version()
            self._session = self._current_session()
        except sqlite3.Error as e:
            raise FlowscopeError(f"cannot open flow store {self.path}: {e}") from None

    # ------------------------------------------------------------------ setup
    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
            )
        elif int(row[0]) != SCHEMA_VERSION:
            raise FlowscopeError(
                f"{self.path}: flow store schema {row[0]}, this flowscope uses {SCHEMA_VERSION}"
                " (move the old file away)"
            )

    def _current_session(self) -> int:
        row = self._db.execute("SELECT MAX(id) FROM sessions").fetchone()
        if row[0] is not None:
            return int(row[0])
        if self.readonly:
            return 0
        cur = self._db.execute(
            "INSERT INTO sessions (started, label) VALUES (?, NULL)", (self._clock(),)
        )
        return int(cur.lastrowid or 0)

    @property
    def session(self) -> int:
        """The session new rows go to and queries show by default (a read-only store
        follows the writer's newest session)."""
        if self.readonly:
            with self._lock:
                self._session = self._current_session()
        return self._session

    def new_session(self, label: str | None = None) -> int:
        """Start a new session ("clear results"): the old one ends, its rows stay."""
        with self._lock:
            self._writable()
            self._begin()
            now = self._clock()
            self._db.execute(
                "UPDATE sessions SET ended = ? WHERE id = ? AND ended IS NULL", (now, self._session)
            )
            cur = self._db.execute(
                "INSERT INTO sessions (started, label) VALUES (?, ?)", (now, label)
            )
            self._session = int(cur.lastrowid or 0)
            self._commit()
            return self._session

    def sessions(self) -> list[dict[str, Any]]:
        """Every session with its row counts (stored and pruned)."""
        with self._lock:
            rows = self._db.execute(
                """SELECT s.id, s.started, s.ended, s.label, s.pruned_flows, s.pruned_alerts,
                          (SELECT COUNT(*) FROM flows f WHERE f.session_id = s.id) AS flows,
                          (SELECT COUNT(*) FROM alerts a WHERE a.session_id = s.id) AS alerts
                   FROM sessions s ORDER BY s.id"""
            ).fetchall()
            return [dict(r) for r in rows]

    # ------------------------------------------------------------------ writing
    def _writable(self) -> None:
        if self.readonly:
            raise FlowscopeError(f"{self.path}: opened read-only")
        if self.closed:
            raise ValueError("flow store is closed")

    def _begin(self) -> None:
        if not self._db.in_transaction:
            self._db.execute("BEGIN")
        if self._pending_since is None:
            self._pending_since = self._monotonic()

    def _commit(self) -> None:
        if self._db.in_transaction:
            self._db.execute("COMMIT")
        self._pending_since = None

    def _layout(self, names: tuple[str, ...]) -> int:
        got = self._layouts.get(names)
        if got is not None:
            return got
        text = json.dumps(list(names))
        row = self._db.execute("SELECT id FROM layouts WHERE columns = ?", (text,)).fetchone()
        if row is None:
            cur = self._db.execute("INSERT INTO layouts (columns) VALUES (?)", (text,))
            lid = int(cur.lastrowid or 0)
        else:
            lid = int(row[0])
        self._layouts[names] = lid
        self._layout_names[lid] = list(names)
        return lid

    def _flow_rows(self, batch: PreparedBatch) -> Iterable[tuple[Any, ...]]:
        """The rows of a batch for ``executemany``, built a column at a time.

        Every column is a Python list made in one conversion (the JSON of the class
        probabilities by Arrow kernels), then zipped: per-row dicts and json.dumps made
        this ~25 µs a flow, more than SQLite's own insert.
        """
        t = batch.flows
        n = t.num_rows
        numeric = tuple(
            f.name
            for f in t.schema
            if f.name not in _ID_COLUMNS
            and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
        )
        texts = [
            f.name for f in t.schema if f.name not in _ID_COLUMNS and pa.types.is_string(f.type)
        ]
        layout = self._layout(numeric)
        mat = np.empty((n, len(numeric)), "<f8")
        for j, c in enumerate(numeric):
            mat[:, j] = np.asarray(column_numpy(t.column(c)), np.float64)
        raw = mat.tobytes()
        w = mat.shape[1] * 8
        blobs = [raw[i : i + w] for i in range(0, n * w, w)] if w else [b""] * n
        first_ns = first_int_column(t, "first_seen")
        last_ns = first_int_column(t, "last_seen")
        fwd_p, bwd_p = first_int_column(t, "fwd_packets"), first_int_column(t, "bwd_packets")
        fwd_b = first_int_column(t, "fwd_wire_bytes", "fwd_ip_bytes", "fwd_bytes")
        bwd_b = first_int_column(t, "bwd_wire_bytes", "bwd_ip_bytes", "bwd_bytes")
        if has_column(t, "flow_duration"):
            dur = np.asarray(column_numpy(t.column("flow_duration")), np.float64)
        else:
            dur = (last_ns.astype(np.float64) - first_ns.astype(np.float64)) / 1000.0
        vt = batch.verdict_table
        proba = np.round(np.nan_to_num(np.asarray(batch.verdicts.proba, np.float64)), 6)
        top = [
            None if x is None else json.dumps(batch.top_json(i)) for i, x in enumerate(batch.top)
        ]
        extra = self._extra(batch, texts)
        const = itertools.repeat
        return zip(
            const(self._session, n),
            batch.eve_flow_ids(),
            column_list(t, "flow_id", ""),
            column_list(t, "src_ip", ""),
            first_int_column(t, "src_port").tolist(),
            column_list(t, "dst_ip", ""),
            first_int_column(t, "dst_port").tolist(),
            first_int_column(t, "protocol").tolist(),
            column_list(t, "ip_version"),
            column_list(t, "vlan_id"),
            first_ns.tolist(),
            last_ns.tolist(),
            dur.tolist(),
            (fwd_p + bwd_p).tolist(),
            (fwd_b + bwd_b).tolist(),
            column_list(t, "end_reason"),
            batch.rounded_scores(),
            vt.column("verdict").to_pylist(),
            np.asarray(batch.verdicts.malicious).astype(np.int64).tolist(),
            vt.column("family").to_pylist(),
            batch.risk.to_pylist(),
            _proba_json(batch.classes, proba),
            top,
            const(layout, n),
            blobs,
            extra,
            const(self._clock(), n),
            strict=False,
        )

    @staticmethod
    def _extra(batch: PreparedBatch, texts: list[str]) -> list[str | None]:
        """``extra`` per row: other text columns and bundle-rule vetoes, as JSON."""
        n = batch.num_rows
        supp = batch.verdicts.suppressed
        rule = batch.verdicts.rule
        out: list[str | None] = [None] * n
        text_cols = {c: column_list(batch.flows, c) for c in texts}
        if text_cols:
            rows: Iterable[int] = range(n)
        elif supp is not None:
            rows = np.flatnonzero(np.asarray(supp, bool)).tolist()
        else:
            return out
        for i in rows:
            extra: dict[str, Any] = {c: v[i] for c, v in text_cols.items() if v[i] is not None}
            if supp is not None and bool(supp[i]):
                extra["suppressed"] = True
                if rule is not None:
                    extra["rule"] = int(rule[i])
            out[i] = json.dumps(extra) if extra else None
        return out

    def write_flows(self, batch: PreparedBatch) -> None:
        if batch.num_rows == 0:
            return
        with self._lock:
            self._writable()
            try:
                self._begin()
                self._db.executemany(_FLOW_INSERT, self._flow_rows(batch))
                self._flush_if_due_locked()
            except sqlite3.Error as e:
                raise FlowscopeError(f"cannot write flow store {self.path}: {e}") from None

    def drop_running(self, flows: list[tuple[str, int]]) -> None:
        """Delete the provisional rows (end reason ``running``) of these flows, given as
        (flow_key, first_seen): the sensor calls it when their final rows follow, so a
        flow keeps one row. Uses the (session, first_seen) index."""
        if not flows:
            return
        with self._lock:
            self._writable()
            try:
                self._begin()
                self._db.executemany(
                    "DELETE FROM flows WHERE session_id = ? AND first_seen = ? "
                    "AND flow_key = ? AND end_reason = 'running'",
                    [(self._session, first, key) for key, first in flows],
                )
            except sqlite3.Error as e:
                raise FlowscopeError(f"cannot write flow store {self.path}: {e}") from None

    def write_alert(self, event: Any, incident_id: str | None = None) -> str:
        """Insert or update the row of an alert's incident; returns the incident id.

        ``event``: as :func:`flowscope.sinks.eve.alert_event` accepts (EVE dict, or the
        rule engine's Alert/AlertEvent); the id is chosen as it describes. ``state`` is
        the step of the incident (``flowscope.event``: new/update/end), else
        ``flowscope.state``, else ``new``.
        """
        ev = alert_event(event, incident_id, self._clock)
        fs: dict[str, Any] = ev["flowscope"]
        iid = str(fs["incident_id"])
        alert = ev.get("alert") if isinstance(ev.get("alert"), dict) else {}
        assert isinstance(alert, dict)
        state = str(fs.get("event") or fs.get("state") or "new")
        level = fs.get("severity") if fs.get("severity") in RISK_LEVELS else None
        sev = alert.get("severity")
        port = ev.get("dest_port")

        def text(v: Any) -> str | None:
            return None if v is None else str(v)

        now = self._clock()
        with self._lock:
            self._writable()
            try:
                self._begin()
                self._db.execute(
                    _ALERT_UPSERT,
                    (
                        self._session,
                        iid,
                        state,
                        str(ev["timestamp"]),
                        str(ev["timestamp"]),
                        text(alert.get("signature")),
                        text(alert.get("category")),
                        int(sev) if _is_int(sev) else None,
                        level,
                        text(fs.get("rule")),
                        text(fs.get("family")),
                        text(ev.get("src_ip")),
                        text(ev.get("dest_ip")),
                        int(port) if _is_int(port) else None,
                        text(ev.get("proto")),
                        json.dumps(ev, allow_nan=False),
                        now,
                        now,
                    ),
                )
                self._flush_if_due_locked()
            except sqlite3.Error as e:
                raise FlowscopeError(f"cannot write flow store {self.path}: {e}") from None
        return iid

    def oldest_pending(self) -> float | None:
        return self._pending_since

    def _flush_if_due_locked(self) -> None:
        since = self._pending_since
        if since is not None and self._monotonic() - since >= self.flush_interval:
            self._flush_locked()

    def _flush_locked(self) -> None:
        self._commit()
        if self._monotonic() - self._last_prune >= _PRUNE_EVERY:
            self.prune()

    def flush(self) -> None:
        """Commit what is pending (and prune, at most every few seconds)."""
        with self._lock:
            if self.closed or self.readonly:
                return
            try:
                self._flush_locked()
            except sqlite3.Error as e:
                raise FlowscopeError(f"cannot write flow store {self.path}: {e}") from None

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            try:
                if not self.readonly:
                    self._commit()
                    self.prune()
            finally:
                self.closed = True
                self._db.close()

    # ------------------------------------------------------------------ retention
    def prune(self, now: float | None = None) -> PruneResult:
        """Apply the retention limits now; returns (and records) what was deleted."""
        with self._lock:
            self._writable()
            self._last_prune = self._monotonic()
            now = self._clock() if now is None else now
            r = self.retention
            res = PruneResult()
            self._commit()
            self._db.execute("BEGIN")
            try:
                for table, limit in (("flows", r.max_flows), ("alerts", r.max_alerts)):
                    conds: list[str] = []
                    params: list[Any] = []
                    if r.max_age:
                        col = "inserted" if table == "flows" else "updated"
                        conds.append(f"{col} < ?")
                        params.append(now - r.max_age)
                    if limit:
                        row = self._db.execute(
                            f"SELECT id FROM {table} ORDER BY id DESC LIMIT 1 OFFSET ?", (limit,)
                        ).fetchone()
                        if row is not None:
                            conds.append("id <= ?")
                            params.append(int(row[0]))
                    if not conds:
                        continue
                    where = " OR ".join(conds)
                    counts = self._db.execute(
                        f"SELECT session_id, COUNT(*) FROM {table} WHERE {where} "
                        "GROUP BY session_id",
                        params,
                    ).fetchall()
                    if not counts:
                        continue
                    self._db.execute(f"DELETE FROM {table} WHERE {where}", params)
                    col = "pruned_flows" if table == "flows" else "pruned_alerts"
                    for sid, k in counts:
                        self._db.execute(
                            f"UPDATE sessions SET {col} = {col} + ? WHERE id = ?", (k, sid)
                        )
                        f, a = res.by_session.get(sid, (0, 0))
                        res.by_session[sid] = (f + k, a) if table == "flows" else (f, a + k)
                        if table == "flows":
                            res.flows += k
                        else:
                            res.alerts += k
                    self._db.execute(
                        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                        "SET value = CAST(meta.value AS INTEGER) + CAST(excluded.value AS INTEGER)",
                        (f"{col}_total", sum(k for _, k in counts)),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return res

    # ------------------------------------------------------------------ queries
    def _session_cond(self, session: int | str | None) -> tuple[str, list[Any]]:
        if session == "all":
            return "1 = 1", []
        sid = self.session if session is None else _as_int("session", session, 0)
        return "session_id = ?", [sid]

    def _flow_where(self, filters: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
        f = dict(filters or {})
        cond, params = self._session_cond(f.pop("session", None))
        where = [cond]
        for key, value in f.items():
            if value is None:
                continue
            if key in ("src_ip", "dst_ip", "verdict", "family", "risk", "end_reason", "flow_key"):
                vals = _as_texts(key, value)
                where.append(_in(key, vals))
                params += vals
            elif key == "ip":
                vals = _as_texts(key, value)
                where.append(f"({_in('src_ip', vals)} OR {_in('dst_ip', vals)})")
                params += vals + vals
            elif key in ("src_port", "dst_port", "port"):
                ports = [
                    _as_int(key, v, 0, 65535)
                    for v in (value if isinstance(value, list | tuple) else [value])
                ]
                if not ports or len(ports) > _MAX_LIST:
                    raise QueryError(f"filter {key!r} needs 1 to {_MAX_LIST} values")
                if key == "port":
                    where.append(f"({_in('src_port', ports)} OR {_in('dst_port', ports)})")
                    params += ports + ports
                else:
                    where.append(_in(key, ports))
                    params += ports
            elif key == "protocol":
                if isinstance(value, str) and value.strip().lower() in _PROTO_BY_NAME:
                    value = _PROTO_BY_NAME[value.strip().lower()]
                where.append("protocol = ?")
                params.append(_as_int(key, value, 0, 255))
            elif key in ("min_score", "max_score"):
                where.append("score >= ?" if key == "min_score" else "score <= ?")
                params.append(_as_float(key, value))
            elif key in ("since", "until"):
                where.append("first_seen >= ?" if key == "since" else "first_seen < ?")
                params.append(_as_int(key, value))
            elif key == "malicious":
                if not isinstance(value, bool):
                    raise QueryError("filter 'malicious' needs true or false")
                where.append("malicious = ?")
                params.append(int(value))
            elif key == "search":
                if not isinstance(value, str):
                    raise QueryError("filter 'search' needs one text")
                (text,) = _as_texts(key, value)
                # instr, not LIKE: a plain substring (no wildcards to escape, case kept),
                # and a NUL in the text is compared, not taken as the pattern's end.
                where.append("instr(flow_key, ?) > 0")
                params.append(text)
            else:
                raise QueryError(f"unknown filter {key!r:.40}")
        return " AND ".join(where), params

    @staticmethod
    def _summaries(rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
        out = [dict(r) for r in rows]
        stamps = eve_time_ns(pa.array([d["first_seen"] for d in out], pa.int64()))
        for d, ts in zip(out, stamps, strict=True):
            d["proto"] = proto_name(int(d["protocol"]))
            d["timestamp"] = ts
            top = d.get("top_features")
            d["top_features"] = None if top is None else json.loads(top)
        return out

    def query_flows(
        self,
        filters: Mapping[str, Any] | None = None,
        sort: str = "-time",
        page: int = 1,
        page_size: int = 50,
    ) -> Page:
        """One page of flows matching ``filters``, ordered by ``sort`` (``-`` = descending).

        Filters (all optional, combined with AND; text filters take a value or a list):
        ``session`` (id, or "all"; default the current session), ``src_ip``, ``dst_ip``,
        ``ip`` (either end), ``src_port``, ``dst_port``, ``port`` (either end),
        ``protocol`` (number or tcp/udp/icmp/…), ``verdict`` (Normal/Malicious),
        ``malicious`` (bool), ``family``, ``risk``, ``end_reason``, ``flow_key``,
        ``min_score``, ``max_score``, ``since``/``until`` (first packet, ns since the epoch),
        ``search`` (substring of the flow key). Sort keys: :data:`FLOW_SORTS`.
        """
        page, page_size = _paging(page, page_size)
        order = _order(sort, FLOW_SORTS, "-time")
        where, params = self._flow_where(filters)
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM flows WHERE {where}", params)
            n = int(total.fetchone()[0])
            rows = self._db.execute(
                f"SELECT {_SUMMARY} FROM flows WHERE {where} {order} LIMIT ? OFFSET ?",
                [*params, page_size, (page - 1) * page_size],
            ).fetchall()
        return Page(self._summaries(rows), n, page, page_size)

    def get_flow(self, flow_id: int) -> dict[str, Any] | None:
        """Everything stored about one flow (by row ``id``), features unpacked by name."""
        fid = _as_int("id", flow_id)
        with self._lock:
            row = self._db.execute("SELECT * FROM flows WHERE id = ?", (fid,)).fetchone()
            if row is None:
                return None
            (d,) = self._summaries([row])
            lid = int(d.pop("layout_id"))
            names = self._layout_names.get(lid)
            if names is None:
                got = self._db.execute("SELECT columns FROM layouts WHERE id = ?", (lid,))
                names = self._layout_names[lid] = json.loads(got.fetchone()[0])
        values = np.frombuffer(d.pop("features"), "<f8").tolist()
        d["features"] = dict(zip(names, values, strict=True))
        d["proba"] = json.loads(d["proba"])
        extra = d.pop("extra")
        d["extra"] = json.loads(extra) if extra else {}
        d["malicious"] = bool(d["malicious"])
        return d

    def _window(
        self, session: int | str | None, window: float | None, end_ns: int | None
    ) -> tuple[str, list[Any]]:
        where, params = self._session_cond(session)
        if window is not None:
            w = _as_float("window", window)
            if w <= 0:
                raise QueryError("window must be positive")
            if end_ns is None:
                got = self._db.execute(f"SELECT MAX(last_seen) FROM flows WHERE {where}", params)
                end_ns = got.fetchone()[0]
            if end_ns is not None:
                where += " AND last_seen >= ?"
                params = [*params, int(end_ns) - int(w * _NS)]
        return where, params

    def top_talkers(
        self,
        by: Literal["bytes", "flows", "packets"] = "bytes",
        window: float | None = 300.0,
        *,
        side: Literal["src", "dst"] = "src",
        limit: int = 10,
        session: int | str | None = None,
        end_ns: int | None = None,
    ) -> list[dict[str, Any]]:
        """Addresses with the most bytes (wire), flows or packets as source (or destination).

        ``window``: seconds before ``end_ns`` (default: the newest flow's last packet), so
        an offline capture's last minutes work as well as a live sensor's; None = the
        whole session.
        """
        order = {"bytes": "bytes", "flows": "flows", "packets": "packets"}.get(by)
        col = {"src": "src_ip", "dst": "dst_ip"}.get(side)
        if order is None or col is None:
            raise QueryError("top_talkers: by is bytes/flows/packets, side is src/dst")
        lim = _as_int("limit", limit, 1, MAX_PAGE_SIZE)
        with self._lock:
            where, params = self._window(session, window, end_ns)
            rows = self._db.execute(
                f"SELECT {col} AS ip, COUNT(*) AS flows, SUM(bytes) AS bytes, "
                f"SUM(packets) AS packets, SUM(malicious) AS malicious FROM flows "
                f"WHERE {where} GROUP BY {col} ORDER BY {order} DESC, ip ASC LIMIT ?",
                [*params, lim],
            ).fetchall()
        return [dict(r) for r in rows]

    def timeseries(
        self,
        bucket: float = 60.0,
        window: float | None = None,
        *,
        session: int | str | None = None,
        end_ns: int | None = None,
        max_buckets: int = 10_000,
    ) -> list[dict[str, Any]]:
        """Flows, malicious flows, bytes and packets per ``bucket`` seconds of first-packet
        time (bucket start in ns), oldest first; at most ``max_buckets`` (the newest)."""
        b = _as_float("bucket", bucket)
        if b < 0.001:
            raise QueryError("bucket must be at least 0.001 s")
        step = int(b * _NS)
        lim = _as_int("max_buckets", max_buckets, 1, 100_000)
        with self._lock:
            where, params = self._window(session, window, end_ns)
            rows = self._db.execute(
                "SELECT (first_seen / ?) * ? AS start_ns, COUNT(*) AS flows, "
                "SUM(malicious) AS malicious, SUM(bytes) AS bytes, SUM(packets) AS packets "
                f"FROM flows WHERE {where} GROUP BY start_ns ORDER BY start_ns DESC LIMIT ?",
                [step, step, *params, lim],
            ).fetchall()
        return [dict(r) for r in reversed(rows)]

    def counts(self, session: int | str | None = None) -> dict[str, Any]:
        """Totals for the dashboard header: flows by verdict/family/risk, alerts by state,
        and how many rows retention pruned (this session and ever)."""
        with self._lock:
            where, params = self._session_cond(session)
            out: dict[str, Any] = {}
            q = self._db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(malicious), 0) FROM flows WHERE {where}", params
            ).fetchone()
            out["flows"], out["malicious"] = int(q[0]), int(q[1])
            for key, col in (("by_verdict", "verdict"), ("by_family", "family")):
                rows = self._db.execute(
                    f"SELECT {col}, COUNT(*) FROM flows WHERE {where} GROUP BY {col}", params
                ).fetchall()
                out[key] = {r[0]: int(r[1]) for r in rows}
            rows = self._db.execute(
                f"SELECT risk, COUNT(*) FROM flows WHERE {where} AND risk IS NOT NULL "
                "GROUP BY risk",
                params,
            ).fetchall()
            out["by_risk"] = {r[0]: int(r[1]) for r in rows if r[0] in RISK_LEVELS}
            rows = self._db.execute(
                f"SELECT state, COUNT(*) FROM alerts WHERE {where} GROUP BY state", params
            ).fetchall()
            out["alerts_by_state"] = {r[0]: int(r[1]) for r in rows}
            out["alerts"] = sum(out["alerts_by_state"].values())
            if session == "all":
                scond, sparams = "1 = 1", []
            else:
                scond, sparams = "id = ?", params
            p = self._db.execute(
                "SELECT COALESCE(SUM(pruned_flows), 0), COALESCE(SUM(pruned_alerts), 0) "
                f"FROM sessions WHERE {scond}",
                sparams,
            ).fetchone()
            out["pruned_flows"], out["pruned_alerts"] = int(p[0]), int(p[1])
            tot = dict(
                self._db.execute(
                    "SELECT key, value FROM meta WHERE key IN "
                    "('pruned_flows_total', 'pruned_alerts_total')"
                ).fetchall()
            )
            out["pruned_flows_total"] = int(tot.get("pruned_flows_total", 0))
            out["pruned_alerts_total"] = int(tot.get("pruned_alerts_total", 0))
            out["session"] = "all" if session == "all" else (params[0] if params else None)
        return out

    def query_alerts(
        self,
        filters: Mapping[str, Any] | None = None,
        sort: str = "-updated",
        page: int = 1,
        page_size: int = 50,
    ) -> Page:
        """One page of alerts (incidents). Filters: ``session``, ``state``, ``signature``,
        ``category``, ``src_ip``, ``dest_ip``, ``incident_id``, ``level``
        (low…critical), ``rule``, ``family`` (text or list), ``min_severity`` /
        ``max_severity`` (EVE severity: 1 is the most severe). Sort keys:
        :data:`ALERT_SORTS`."""
        page, page_size = _paging(page, page_size)
        order = _order(sort, ALERT_SORTS, "-updated")
        f = dict(filters or {})
        cond, params = self._session_cond(f.pop("session", None))
        where = [cond]
        for key, value in f.items():
            if value is None:
                continue
            if key in (
                "state", "signature", "category", "src_ip", "dest_ip", "incident_id", "level",
                "rule", "family",
            ):  # fmt: skip
                vals = _as_texts(key, value)
                where.append(_in(key, vals))
                params += vals
            elif key in ("min_severity", "max_severity"):
                where.append("severity >= ?" if key == "min_severity" else "severity <= ?")
                params.append(_as_int(key, value))
            else:
                raise QueryError(f"unknown filter {key!r:.40}")
        w = " AND ".join(where)
        with self._lock:
            n = int(
                self._db.execute(f"SELECT COUNT(*) FROM alerts WHERE {w}", params).fetchone()[0]
            )
            rows = self._db.execute(
                f"SELECT * FROM alerts WHERE {w} {order} LIMIT ? OFFSET ?",
                [*params, page_size, (page - 1) * page_size],
            ).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["event"] = json.loads(d["event"])
            out.append(d)
        return Page(out, n, page, page_size)

    def get_alert(self, incident_id: str, session: int | None = None) -> dict[str, Any] | None:
        (iid,) = _as_texts("incident_id", incident_id)
        sid = self.session if session is None else _as_int("session", session, 0)
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM alerts WHERE session_id = ? AND incident_id = ?", (sid, iid)
            ).fetchone()
        if row is None:
            return None
        d = dict(row)
        d["event"] = json.loads(d["event"])
        return d

    def __enter__(self) -> FlowStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
