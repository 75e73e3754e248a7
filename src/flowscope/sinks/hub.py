"""SinkSet: one call fans a batch of classified flows (and rule alerts) out to every sink.

The sensor (and ``flowscope analyze``) builds one :class:`SinkSet` from the ``[outputs]``
configuration and calls, per batch::

    sinks.write(flows, verdicts, risk=risk, explanations={row: contributions, ...})
    sinks.alert(alert_event)                 # per rule-engine event (AlertEvent or EVE dict)
    ...
    sinks.close()                            # flushes and closes everything

Derived columns are computed once per batch (:func:`flowscope.sinks.batch.prepare`). A
background ticker (every ``flush_interval``/4) flushes every sink whose oldest pending
data is half ``flush_interval`` old, so at most the last second is lost if the process
is killed, even when no new batch arrives. All calls are serialised by one lock, so the
ticker and the caller never write a sink at the same time. An error in one sink does not
stop the others from receiving the batch; the first error is raised afterwards (an error
in the ticker is raised by the next call).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from flowscope.errors import FlowscopeError
from flowscope.sinks.batch import Explanations, FlowBatch, PreparedBatch, RiskLike, prepare
from flowscope.sinks.eve import EveFlows, EveWriter, alert_event
from flowscope.sinks.logs import DEFAULT_DIALECT, DashboardLogs
from flowscope.sinks.rotate import FlushPolicy, Rotation
from flowscope.sinks.store import FlowStore, Retention

if TYPE_CHECKING:
    from flowscope.config import OutputsConfig
    from flowscope.models.classify import Verdicts

SINK_NAMES: tuple[str, ...] = ("logs", "eve", "sqlite")
STORE_FILE = "flowscope.db"
FINAL_ONLY_SINKS = frozenset({"logs"})  # sinks that get no provisional (running-flow) rows


class Sink(Protocol):
    """What a sink implements (DashboardLogs, EveWriter, FlowStore)."""

    name: str

    def write_flows(self, batch: PreparedBatch) -> None: ...

    def write_alert(self, event: Any, incident_id: str | None = None) -> Any: ...

    def oldest_pending(self) -> float | None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class SinkSet:
    """The configured sinks behind one lock, with a background flush ticker."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        flush_interval: float = 1.0,
        background: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sinks = list(sinks)
        self.flush_interval = flush_interval
        self._monotonic = monotonic
        self._lock = threading.RLock()
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._tick = flush_interval / 4 if flush_interval > 0 else 0.25
        self._thread: threading.Thread | None = None
        self.closed = False
        self.flows = 0
        self.alerts = 0
        if background and flush_interval > 0:
            self._thread = threading.Thread(target=self._run, name="flowscope-flush", daemon=True)
            self._thread.start()

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        sinks: Sequence[str] = SINK_NAMES,
        dialect: str = DEFAULT_DIALECT,
        eve_flows: EveFlows = "all",
        rotation: Rotation | None = None,
        retention: Retention | None = None,
        flush: FlushPolicy | None = None,
        background: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> SinkSet:
        """The standard sinks under one output directory: ``logs/`` (CSV pair),
        ``eve.json`` and ``flowscope.db``."""
        unknown = [s for s in sinks if s not in SINK_NAMES]
        if unknown:
            raise FlowscopeError(
                f"unknown sink {unknown[0]!r}; choose from {', '.join(SINK_NAMES)}"
            )
        policy = flush or FlushPolicy()
        out = Path(directory)
        made: list[Sink] = []
        try:
            for name in dict.fromkeys(sinks):
                if name == "logs":
                    made.append(
                        DashboardLogs(
                            out, dialect=dialect, rotation=rotation, flush=policy, clock=clock
                        )
                    )
                elif name == "eve":
                    eve = EveWriter(
                        out, flows=eve_flows, rotation=rotation, flush=policy, clock=clock
                    )
                    made.append(eve)
                else:
                    made.append(
                        FlowStore(
                            out / STORE_FILE,
                            retention=retention,
                            fsync=policy.fsync,
                            flush_interval=policy.interval,
                            clock=clock,
                        )
                    )
        except BaseException:
            for s in made:
                s.close()
            raise
        return cls(made, flush_interval=policy.interval, background=background)

    @classmethod
    def from_config(
        cls,
        outputs: OutputsConfig,
        *,
        directory: str | os.PathLike[str] | None = None,
        background: bool = True,
    ) -> SinkSet:
        """The sinks an ``[outputs]`` section asks for (``directory`` overrides its own)."""
        return cls.open(
            outputs.directory if directory is None else directory,
            sinks=outputs.sinks,
            dialect=outputs.dialect,
            eve_flows=outputs.eve_flows,
            rotation=outputs.rotation(),
            retention=outputs.retention(),
            flush=outputs.flush_policy(),
            background=background,
        )

    # ------------------------------------------------------------------ access
    def get(self, name: str) -> Sink | None:
        return next((s for s in self.sinks if s.name == name), None)

    @property
    def store(self) -> FlowStore | None:
        """The SQLite store, for the dashboard's queries (None if not configured)."""
        s = self.get("sqlite")
        return s if isinstance(s, FlowStore) else None

    def new_session(self, label: str | None = None) -> int | None:
        """Start a new store session ("clear results"); None without a store."""
        with self._lock:
            self._check()
            store = self.store
            return None if store is None else store.new_session(label)

    def add(self, sink: Sink) -> None:
        """Attach one more sink to an open set (the dashboard's live feed): it then gets
        every batch and alert after the standard sinks, under the same lock."""
        with self._lock:
            self._check()
            self.sinks.append(sink)

    def rotate_logs(self) -> None:
        """Close the CSV log pair and open new files ("clear results" starts a new log
        session); nothing is deleted beyond what the configured rotation keeps."""
        with self._lock:
            self._check()
            logs = self.get("logs")
            if isinstance(logs, DashboardLogs):
                logs.files.rotate()

    # ------------------------------------------------------------------ writing
    def write(
        self,
        flows: pa.Table,
        verdicts: Verdicts,
        *,
        risk: RiskLike | None = None,
        explanations: Explanations | None = None,
        provisional: bool = False,
    ) -> None:
        """Write one batch of classified flows to every sink.

        ``provisional``: verdicts on running flows (end reason ``running``, the sensor's
        early verdicts); they skip the CSV logs, which hold one row per finished flow.
        """
        self.write_batch(FlowBatch(flows, verdicts, risk, explanations), provisional=provisional)

    def write_batch(self, batch: FlowBatch, *, provisional: bool = False) -> None:
        prepared = prepare(batch)
        with self._lock:
            self._check()
            self._each(
                lambda s: (
                    None if provisional and s.name in FINAL_ONLY_SINKS else s.write_flows(prepared)
                )
            )
            self.flows += prepared.num_rows

    def alert(self, event: Any, incident_id: str | None = None, kind: str | None = None) -> str:
        """Write one rule-engine event to every sink; returns its incident id.

        ``event``: an EVE alert dict, or the rule engine's ``AlertEvent`` / ``Alert``
        (see :func:`flowscope.sinks.eve.alert_event`); ``kind``: new/update/end when the
        event does not say.
        """
        ev = alert_event(event, incident_id, kind=kind)
        iid = str(ev["flowscope"]["incident_id"])
        with self._lock:
            self._check()
            self._each(lambda s: s.write_alert(ev, iid))
            self.alerts += 1
        return iid

    def flush(self) -> None:
        """Hand everything pending to the OS / commit it now."""
        with self._lock:
            self._check()
            self._each(lambda s: s.flush())

    def close(self) -> None:
        """Stop the ticker, flush and close every sink (idempotent)."""
        if self.closed:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self.closed = True
            self._each(lambda s: s.close())
            if self._error is not None:
                err, self._error = self._error, None
                raise FlowscopeError(f"output failed: {err}") from err

    def __enter__(self) -> SinkSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _check(self) -> None:
        if self.closed:
            raise ValueError("the sinks are closed")
        if self._error is not None:
            err, self._error = self._error, None
            if isinstance(err, FlowscopeError):
                raise err
            raise FlowscopeError(f"output failed: {err}") from err

    def _each(self, fn: Callable[[Sink], Any]) -> None:
        first: BaseException | None = None
        for s in self.sinks:
            try:
                fn(s)
            except Exception as e:
                first = first or e
        if first is not None:
            raise first

    def flush_due(self, now: float | None = None) -> None:
        """Flush the sinks whose oldest pending data is half ``flush_interval`` old (what the
        background ticker calls every quarter interval): data waits 0.5–0.75 intervals, which
        leaves a quarter interval for a late tick on a busy machine."""
        now = self._monotonic() if now is None else now
        with self._lock:
            if self.closed:
                return
            for s in self.sinks:
                since = s.oldest_pending()
                if since is not None and now - since + 2 * self._tick >= self.flush_interval:
                    s.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            try:
                self.flush_due()
            except Exception as e:  # reported by the next call on the main thread
                with self._lock:
                    self._error = self._error or e
                return
