"""The live feed: a sink the pipeline writes to, and the WebSocket that pushes it.

The sensor must never wait for the dashboard, so :class:`LiveFeed` is a cheap sink: per
batch it copies only the summary columns of at most ``capacity`` rows (the newest) into
bounded ring buffers, each with a sequence number; a flood simply overwrites older
rows. Each WebSocket client keeps its own cursor into those buffers and, at most every
``PUSH_INTERVAL`` seconds, receives what it has not seen yet: at most ``MAX_ROWS`` rows
per message, the newest ones, with ``dropped`` saying how many it missed. That bounds
both the message rate and the message size whatever the traffic, which is what keeps
a browser responsive during a flood.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
from fastapi import WebSocket, WebSocketDisconnect

from flowscope.sinks.batch import PreparedBatch, column_list, first_int_column
from flowscope.sinks.eve import alert_event, eve_time_ns, proto_name

FEED_CAPACITY = 2000  # rows kept per buffer (flows, alerts)
MAX_ROWS = 200  # rows per pushed message
PUSH_INTERVAL = 0.5  # seconds between pushes to one client
STATUS_INTERVAL = 1.0  # seconds between status messages


class LiveFeed:
    """Bounded buffers of the newest flow summaries and alert events (a sink).

    Thread-safe: the processing thread writes, the web server's event loop reads.
    Never raises into the pipeline: a row it cannot summarise is counted in ``errors``.
    """

    name = "live"

    def __init__(self, capacity: int = FEED_CAPACITY) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._flows: deque[tuple[int, dict[str, Any]]] = deque(maxlen=capacity)
        self._alerts: deque[tuple[int, dict[str, Any]]] = deque(maxlen=capacity)
        self.flow_seq = 0  # rows ever written (the sequence number of the newest)
        self.alert_seq = 0
        self.bytes = 0  # wire bytes of every flow written (for rates and counters)
        self.epoch = 0  # bumped by clear(): clients reset their view
        self.session: int | None = None
        self.errors = 0
        self.alert_families: Counter[str] = Counter()  # new incidents ever, by family

    # ------------------------------------------------------------------ sink protocol
    def write_flows(self, batch: PreparedBatch) -> None:
        try:
            n = batch.num_rows
            t = batch.flows
            fwd_b = first_int_column(t, "fwd_wire_bytes", "fwd_ip_bytes", "fwd_bytes")
            bwd_b = first_int_column(t, "bwd_wire_bytes", "bwd_ip_bytes", "bwd_bytes")
            nbytes = fwd_b + bwd_b
            # Provisional rows of running flows (early verdicts) come again when the flow
            # ends: only final rows count towards the byte total.
            reasons = column_list(t, "end_reason")
            final = np.array([r != "running" for r in reasons], bool)
            total = int(nbytes[final].sum()) if n else 0
            keep = min(n, self.capacity)
            rows = _summaries(batch, n - keep, nbytes) if keep else []
        except Exception:
            with self._lock:
                self.errors += 1
            return
        with self._lock:
            self.bytes += total
            base = self.flow_seq + (n - keep)
            for i, row in enumerate(rows):
                row["session_id"] = self.session
                self._flows.append((base + i + 1, row))
            self.flow_seq += n

    def write_alert(self, event: Any, incident_id: str | None = None) -> None:
        try:
            row = _alert_summary(alert_event(event, incident_id))
        except Exception:
            with self._lock:
                self.errors += 1
            return
        with self._lock:
            self.alert_seq += 1
            row["session_id"] = self.session
            if row["state"] == "new":
                self.alert_families[str(row["family"] or "other")] += 1
            self._alerts.append((self.alert_seq, row))

    def oldest_pending(self) -> float | None:
        return None

    def flush(self) -> None:
        """Nothing to flush: the feed lives in memory."""

    def close(self) -> None:
        """The feed outlives one run of the sensor (start/stop), so closing keeps it."""

    # ------------------------------------------------------------------ readers
    def clear(self, session: int | None) -> None:
        """Forget every buffered row ("clear results"); clients see a ``cleared`` message."""
        with self._lock:
            self._flows.clear()
            self._alerts.clear()
            self.epoch += 1
            self.session = session

    def since(
        self, kind: str, cursor: int, limit: int = MAX_ROWS
    ) -> tuple[list[dict[str, Any]], int, int]:
        """Rows after ``cursor`` (newest ``limit``), how many were skipped, the new cursor."""
        with self._lock:
            buf = self._flows if kind == "flows" else self._alerts
            seq = self.flow_seq if kind == "flows" else self.alert_seq
            if seq <= cursor:
                return [], 0, seq
            new = [row for s, row in buf if s > cursor]
        unseen = seq - cursor
        rows = new[-limit:]
        return rows, unseen - len(rows), seq

    def cursors(self) -> tuple[int, int, int]:
        """(flow cursor, alert cursor, epoch) of "now": a new client starts there."""
        with self._lock:
            return self.flow_seq, self.alert_seq, self.epoch


def _summaries(batch: PreparedBatch, start: int, nbytes: np.ndarray) -> list[dict[str, Any]]:
    """Summary dicts of rows ``start:`` in the shape of the store's flow rows (no ``id``:
    the store assigns it when it commits)."""
    t = batch.flows.slice(start)
    n = t.num_rows
    first = first_int_column(t, "first_seen")
    last = first_int_column(t, "last_seen").tolist()
    fwd_p, bwd_p = first_int_column(t, "fwd_packets"), first_int_column(t, "bwd_packets")
    packets = (fwd_p + bwd_p).tolist()
    if "flow_duration" in t.column_names:
        dur = np.asarray(t.column("flow_duration").to_numpy(zero_copy_only=False), np.float64)
    else:
        dur = (np.asarray(last, np.float64) - first.astype(np.float64)) / 1000.0
    stamps = eve_time_ns(pa.array(first, pa.int64()))
    vt = batch.verdict_table.slice(start)
    score = batch.rounded_scores()[start:]
    ids = batch.eve_flow_ids()[start:]
    risk = batch.risk.slice(start).to_pylist()
    cols = {
        "flow_key": column_list(t, "flow_id", ""),
        "src_ip": column_list(t, "src_ip", ""),
        "dst_ip": column_list(t, "dst_ip", ""),
        "end_reason": column_list(t, "end_reason"),
    }
    sport = first_int_column(t, "src_port").tolist()
    dport = first_int_column(t, "dst_port").tolist()
    proto = first_int_column(t, "protocol").tolist()
    verdict = vt.column("verdict").to_pylist()
    family = vt.column("family").to_pylist()
    first_l = first.tolist()
    dur_l = [None if not np.isfinite(d) else float(d) for d in dur.tolist()]
    bytes_l = nbytes[start:].tolist()
    out = []
    for i in range(n):
        out.append(
            {
                "id": None,
                "eve_flow_id": ids[i],
                "flow_key": cols["flow_key"][i],
                "src_ip": cols["src_ip"][i],
                "src_port": sport[i],
                "dst_ip": cols["dst_ip"][i],
                "dst_port": dport[i],
                "protocol": proto[i],
                "proto": proto_name(int(proto[i])),
                "first_seen": first_l[i],
                "last_seen": last[i],
                "timestamp": stamps[i],
                "duration_us": dur_l[i],
                "packets": packets[i],
                "bytes": bytes_l[i],
                "end_reason": cols["end_reason"][i],
                "score": score[i],
                "verdict": verdict[i],
                "family": family[i],
                "risk": risk[i],
                "top_features": batch.top_json(start + i),
            }
        )
    return out


def _alert_summary(ev: dict[str, Any]) -> dict[str, Any]:
    """The columns of a store alert row, from one EVE alert event."""
    fs: dict[str, Any] = ev.get("flowscope") or {}
    got = ev.get("alert")
    alert: dict[str, Any] = got if isinstance(got, dict) else {}
    sev = alert.get("severity")
    port = ev.get("dest_port")
    return {
        "id": None,
        "incident_id": str(fs.get("incident_id")),
        "state": str(fs.get("event") or fs.get("state") or "new"),
        "first_ts": str(ev.get("timestamp")),
        "last_ts": str(ev.get("timestamp")),
        "signature": alert.get("signature"),
        "category": alert.get("category"),
        "severity": sev if isinstance(sev, int) else None,
        "level": fs.get("severity"),
        "rule": fs.get("rule"),
        "family": fs.get("family"),
        "src_ip": ev.get("src_ip"),
        "dest_ip": ev.get("dest_ip"),
        "dest_port": port if isinstance(port, int) else None,
        "proto": ev.get("proto"),
    }


async def push_loop(
    ws: WebSocket,
    feed: LiveFeed,
    status: Callable[[], dict[str, Any]],
    *,
    interval: float = PUSH_INTERVAL,
    status_interval: float = STATUS_INTERVAL,
    max_rows: int = MAX_ROWS,
) -> None:
    """Push status, new flows and new alerts to one accepted client until it leaves.

    One round every ``interval`` seconds: at most one ``flows`` and one ``alerts``
    message (each at most ``max_rows`` rows) and a ``status`` message every
    ``status_interval``. The first status goes out at once so a page is never blank.
    """
    flow_cur, alert_cur, epoch = feed.cursors()
    loop = asyncio.get_running_loop()
    next_status = 0.0
    closed = asyncio.Event()

    async def watch() -> None:
        # Reads (and ignores) client messages; a disconnect ends the push loop.
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                await ws.receive_text()
        closed.set()

    watcher = asyncio.create_task(watch())
    try:
        while not closed.is_set():
            now = loop.time()
            if now >= next_status:
                st = await asyncio.to_thread(status)
                await ws.send_json({"type": "status", **st})
                next_status = now + status_interval
            _, _, cur_epoch = feed.cursors()
            if cur_epoch != epoch:
                flow_cur, alert_cur, epoch = feed.cursors()
                await ws.send_json({"type": "cleared", "session": feed.session})
            for kind in ("flows", "alerts"):
                cur = flow_cur if kind == "flows" else alert_cur
                rows, dropped, cur = feed.since(kind, cur, max_rows)
                if kind == "flows":
                    flow_cur = cur
                else:
                    alert_cur = cur
                if rows or dropped:
                    await ws.send_json({"type": kind, "rows": rows, "dropped": dropped})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), interval)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
