"""SensorController: start, stop and clear the sensor from the dashboard (or the CLI).

A :class:`~flowscope.sensor.runner.Runner` is built for one run to completion. The
controller wraps it so that a long-lived process (``flowscope run`` with the dashboard,
``flowscope demo``) can run the sensor many times: each start builds a fresh
:class:`Pipeline` (and so fresh sinks and log files) around the one detector loaded and
warmed at start-up, runs it in a background thread, and stops it through the runner's
stop event, which takes the same clean path as Ctrl-C (final verdicts, incidents ended,
sinks closed).

Counters: Prometheus wants totals that only grow over the life of the process, the
dashboard wants counters that restart at zero when the user clears results. So the
controller sums the counters of finished runs with the current run's
(:meth:`raw_totals`, for /metrics) and keeps a baseline taken at the last clear that
:meth:`status` subtracts. Clearing never deletes anything: the store starts a new
session and the CSV logs start new files.

Queries go through one read-only connection to the store (:attr:`store`), so the
dashboard never holds the writer's lock longer than SQLite itself does.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np

from flowscope.capture import open_capture
from flowscope.capture.batch import PacketBatch
from flowscope.capture.interfaces import ANY, list_interfaces
from flowscope.capture.live import LiveCapture
from flowscope.config import Config
from flowscope.errors import FlowscopeError
from flowscope.models.classify import Detector, load_detector
from flowscope.sensor.capture import open_live
from flowscope.sensor.pipeline import Pipeline, reset_detector, warm_detector
from flowscope.sensor.runner import _NS, Runner, _Item, copy_batch, warm_up
from flowscope.sinks.hub import STORE_FILE
from flowscope.sinks.store import FlowStore
from flowscope.web.live import LiveFeed

SensorState = Literal["idle", "running", "stopping", "error"]
Source = Literal["live", "replay", "demo"]

# Counters that describe "now" rather than accumulate: never summed over runs nor
# reset by a clear.
_GAUGES = frozenset(
    {"seconds", "open_flows", "active_alerts", "peak_queue", "model_max_ms", "model_ms_per_kflow"}
)
_PACE_SLICE_NS = 10_000_000


class ControlError(FlowscopeError):
    """A control request the sensor cannot honour; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:300]


def _add(total: dict[str, Any], status: dict[str, Any], *, gauges: bool) -> dict[str, Any]:
    """``total`` + ``status`` key by key (numbers summed, dicts recursively); gauges are
    taken from ``status`` when ``gauges`` else dropped."""
    out = dict(total)
    for k, v in status.items():
        if k in _GAUGES:
            if gauges:
                out[k] = v
            continue
        cur = out.get(k)
        if isinstance(v, dict):
            out[k] = _add(cur if isinstance(cur, dict) else {}, v, gauges=gauges)
        elif isinstance(v, bool) or not isinstance(v, int | float):
            if v is not None or k not in out:
                out[k] = v
        else:
            out[k] = v + cur if isinstance(cur, int | float) and not isinstance(cur, bool) else v
    return out


def _sub(raw: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """``raw`` − ``base`` for the accumulating counters (what happened since a clear)."""
    out: dict[str, Any] = {}
    for k, v in raw.items():
        b = base.get(k)
        if k in _GAUGES:
            out[k] = v
        elif isinstance(v, dict):
            out[k] = _sub(v, b if isinstance(b, dict) else {})
            if all(isinstance(x, int | float) for x in out[k].values()):
                out[k] = {kk: vv for kk, vv in out[k].items() if vv}
        elif isinstance(v, int | float) and not isinstance(v, bool):
            bv = b if isinstance(b, int | float) and not isinstance(b, bool) else 0
            out[k] = max(v - bv, 0)
        else:
            out[k] = v
    return out


def _status(p: Pipeline) -> dict[str, Any]:
    """A pipeline's status plus its number of classify calls (for the latency summary)."""
    st = p.status()
    st["flow_batches"] = p.counters.flow_batches
    return st


class LoopRunner(Runner):
    """A :class:`Runner` that can also replay one capture in a loop at a chosen speed.

    Each pass is shifted in time so that capture time keeps moving forward: the first
    pass starts at the current wall-clock time, and after each pass an idle tick at
    ``last packet + idle timeout + 1 s`` lets the flow meter finish every flow and the
    rule engine end quiet incidents; the next pass starts one second later. The flow
    table and the rule engine therefore see one continuous timeline (no flow of one
    pass merges with the next), at the price of a jump of about the idle timeout in
    capture time between passes (the pause in wall time is only ``1 s / speed``).
    """

    def run_loop(
        self,
        path: str,
        *,
        speed: float = 1.0,
        loops: int | None = None,
        duration: float | None = None,
    ) -> None:
        """Replay ``path`` ``loops`` times (None: until stopped); ``speed`` 0 = unpaced."""
        open_capture(path).close()  # one-line CaptureError before any thread starts
        producer = threading.Thread(
            target=self._loop_producer, args=(path, speed, loops), name="replay-loop"
        )
        self._run(producer, duration)

    def _paced(self, b: PacketBatch, speed: float, clock: list[float]) -> Iterator[PacketBatch]:
        """Slices of ``b`` released when due; ``clock`` = [capture t0 (ns), wall t0 (s)]."""
        if speed <= 0:
            yield b
            return
        ts = b.ts_ns
        n = len(b)
        start = 0
        while start < n:
            cut = int(ts[start]) + _PACE_SLICE_NS
            end = max(start + 1, int(np.searchsorted(ts, cut, side="left")))
            due = clock[1] + (int(ts[start]) - clock[0]) / _NS / speed
            wait = due - time.monotonic()
            if wait > 0 and self.stop.wait(wait):
                return
            yield PacketBatch(
                b.data, b.offset[start:end], b.caplen[start:end], b.wirelen[start:end],
                ts[start:end], b.linktype[start:end],
            )  # fmt: skip
            start = end

    def _loop_producer(self, path: str, speed: float, loops: int | None) -> None:
        idle_ns = int(self.pipeline.meter_config.idle_timeout * _NS)
        shift: int | None = None
        clock: list[float] = []
        done = 0
        try:
            while not self.stop.is_set() and (loops is None or done < loops):
                last: int | None = None
                with open_capture(path) as reader:
                    for raw in reader.batches():
                        if len(raw) == 0:
                            continue
                        b = copy_batch(raw)
                        if shift is None:
                            shift = time.time_ns() - int(b.ts_ns[0])
                        np.add(b.ts_ns, shift, out=b.ts_ns)
                        if not clock:
                            clock[:] = [float(b.ts_ns[0]), time.monotonic()]
                        for piece in self._paced(b, speed, clock):
                            if not self._put(piece):
                                return
                        last = max(last or 0, int(b.ts_ns.max()))
                if last is None or shift is None:
                    raise FlowscopeError(f"{path}: no packets to replay")
                done += 1
                now = last + idle_ns + _NS
                empty = PacketBatch.from_packets([])
                if not self._put(_Item(empty, now)):
                    return
                # The next pass starts 1 s (capture time) after the idle tick, after a
                # wall-clock pause of 1 s / speed; its pacing restarts at its first packet.
                first = self._first_ts(path)
                shift = now + _NS - first
                if speed > 0 and self.stop.wait(1.0 / speed):
                    return
                clock[:] = [float(first + shift), time.monotonic()]
        except BaseException as e:
            self._error = self._error or e
            self.stop.set()

    @staticmethod
    def _first_ts(path: str) -> int:
        with open_capture(path) as reader:
            for b in reader.batches():
                if len(b):
                    return int(b.ts_ns[0])
        raise FlowscopeError(f"{path}: no packets to replay")


class SensorController:
    """Owns the sensor's lifecycle for the dashboard: start, stop, clear, status.

    ``status_every`` / ``status_out``: the runner's status lines (the CLI keeps them).
    """

    def __init__(
        self,
        config: Config,
        *,
        detector: Detector | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        feed: LiveFeed | None = None,
        status_every: float = 0.0,
        status_out: TextIO | None = None,
    ) -> None:
        if "sqlite" not in config.outputs.sinks:
            raise FlowscopeError("the dashboard needs the sqlite sink (outputs.sinks)")
        self.config = config
        self.output_dir = Path(output_dir if output_dir is not None else config.outputs.directory)
        self.detector = detector if detector is not None else load_detector(config.model.bundle)
        self.feed = feed if feed is not None else LiveFeed()
        self.status_every = status_every
        self.status_out = status_out
        self.db_path = self.output_dir / STORE_FILE
        # Create the file and schema once, then read through a read-only connection.
        FlowStore(self.db_path, retention=config.outputs.retention()).close()
        self.store = FlowStore(self.db_path, readonly=True)
        self._session = self.store.session
        self.feed.session = self._session
        self._lock = threading.RLock()
        self._runner: Runner | None = None
        self._pipeline: Pipeline | None = None
        self.last_pipeline: Pipeline | None = None  # the latest run (for closing summaries)
        self._thread: threading.Thread | None = None
        self.state: SensorState = "idle"
        self.source: Source | None = None
        self.interface: str | None = None
        self.bpf = ""
        self.error: str | None = None
        self.runs = 0
        self._retired: dict[str, Any] = {}
        self._baseline: dict[str, Any] = {}
        self._samples: deque[tuple[float, int, int, int]] = deque(maxlen=64)
        self._warmed = False
        self.listeners: list[Callable[[str], None]] = []  # called with "start"/"stop"/...

    # ------------------------------------------------------------------ lifecycle
    def warm(self) -> None:
        """Compile the kernels and load the explainer once, before the first capture."""
        if not self._warmed:
            warm_up()
            warm_detector(self.detector, self.config.model.explain_top_k)
            self._warmed = True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start_live(self, interface: str, bpf: str = "", *, tcp_only: bool = False) -> None:
        """Capture live on ``interface`` (needs CAP_NET_RAW); errors are one line."""
        with self._lock:
            self._check_idle()
            names = {i.name for i in list_interfaces()} | {ANY}
            if interface not in names:
                raise ControlError(f"no interface {interface!r:.60} on this host", 404)
            if len(bpf) > 4096:
                raise ControlError("BPF filter longer than 4096 characters", 400)
            self.warm()
            c = self.config.capture
            try:
                cap = open_live(c, interface, bpf_filter=bpf, tcp_only=tcp_only)
            except (FlowscopeError, OSError, ValueError) as e:
                msg = _one_line(e)
                denied = "permission" in msg.lower() or "CAP_NET_RAW" in msg
                raise ControlError(msg, 403 if denied else 400) from None

            self.start_open_live(cap, interface, bpf)

    def start_open_live(self, cap: LiveCapture, interface: str, bpf: str = "") -> None:
        """Run the sensor on a capture the caller opened (the CLI opens it first so its
        errors come before the dashboard starts); closes it when the run ends."""
        with self._lock:
            try:
                self._check_idle()

                def go(r: LoopRunner) -> None:
                    r.run_live(cap)

                self._launch(go, "live", interface, bpf)
            except BaseException:
                cap.close()
                raise

    def start_replay(
        self,
        paths: list[str],
        *,
        realtime: bool = False,
        loop: bool = False,
        speed: float = 1.0,
        loops: int | None = None,
        source: Source = "replay",
    ) -> None:
        """Replay capture files (``loop``: the first one, again and again, at ``speed``)."""
        with self._lock:
            self._check_idle()
            for p in paths:
                try:
                    open_capture(p).close()
                except (FlowscopeError, OSError) as e:
                    raise ControlError(_one_line(e), 400) from None
            self.warm()

            def go(r: LoopRunner) -> None:
                if loop:
                    r.run_loop(paths[0], speed=speed, loops=loops)
                else:
                    r.run_replay(paths, realtime=realtime)

            self._launch(go, source, None, "")

    def _check_idle(self) -> None:
        if self.running:
            raise ControlError("the sensor is already running; stop it first", 409)

    def _launch(
        self, go: Callable[[LoopRunner], None], source: Source, iface: str | None, bpf: str
    ) -> None:
        reset_detector(self.detector)
        try:
            pipeline = Pipeline(
                self.config, detector=self.detector, output_dir=str(self.output_dir)
            )
        except (FlowscopeError, OSError) as e:
            raise ControlError(_one_line(e), 500) from None
        pipeline.sinks.add(self.feed)
        runner = LoopRunner(pipeline, status_every=self.status_every, status_out=self.status_out)
        self._pipeline, self._runner = pipeline, runner
        self.last_pipeline = pipeline
        self.state, self.source, self.interface, self.bpf, self.error = (
            "running", source, iface, bpf, None,
        )  # fmt: skip
        self.runs += 1
        self._thread = threading.Thread(
            target=self._body, args=(go, runner, pipeline), name="sensor", daemon=True
        )
        self._thread.start()
        self._notify("start")

    def _body(self, go: Callable[[LoopRunner], None], runner: LoopRunner, p: Pipeline) -> None:
        error: str | None = None
        try:
            go(runner)
        except BaseException as e:
            error = _one_line(e)
        finally:
            with self._lock:
                with contextlib.suppress(Exception):
                    p.close()
                self._retired = _add(self._retired, _status(p), gauges=False)
                self._pipeline, self._runner = None, None
                self.state = "error" if error else "idle"
                self.error = error
            self._notify("stop")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the running sensor cleanly (final verdicts for open flows); idempotent."""
        with self._lock:
            runner, thread = self._runner, self._thread
            if runner is None or thread is None or not thread.is_alive():
                return
            self.state = "stopping"
            runner.stop.set()
        thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the current run to end by itself (end of replay); True if it did."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def clear(self) -> int:
        """New store session and log files, live view and counters reset; nothing deleted."""
        with self._lock:
            p = self._pipeline
            sid: int | None = None
            if p is not None and not p.closed:
                with contextlib.suppress(ValueError):  # closed meanwhile: fall through
                    sid = p.sinks.new_session("cleared from the dashboard")
                    p.sinks.rotate_logs()
            if sid is None:
                with FlowStore(self.db_path, retention=self.config.outputs.retention()) as st:
                    sid = st.new_session("cleared from the dashboard")
            self._baseline = self.raw_totals()
            self._samples.clear()
            self.feed.clear(sid)
            self._notify("clear")
            return sid

    def close(self) -> None:
        """Stop the sensor and close the read-only store."""
        self.stop()
        self.store.close()

    def _notify(self, what: str) -> None:
        for fn in list(self.listeners):
            with contextlib.suppress(Exception):
                fn(what)

    # ------------------------------------------------------------------ status
    def raw_totals(self) -> dict[str, Any]:
        """Every counter since the process started (all runs), for /metrics."""
        with self._lock:
            total = dict(self._retired)
            p = self._pipeline
            if p is not None:
                total = _add(total, _status(p), gauges=True)
            else:
                total.update({"open_flows": 0, "active_alerts": 0})
            total["bytes"] = self.feed.bytes
            flows = total.get("flows") or 0
            ms = total.get("model_seconds") or 0.0
            total["model_ms_per_kflow"] = 1e6 * ms / flows if flows else 0.0
            return total

    def sensor(self) -> dict[str, Any]:
        """The state of the sensor (what the dashboard's controls show)."""
        return {
            "state": self.state,
            "source": self.source,
            "interface": self.interface,
            "bpf": self.bpf,
            "error": self.error,
            "session": self._current_session(),
            "runs": self.runs,
        }

    def _current_session(self) -> int:
        """The store's session (the last one known once the store is closed)."""
        if not self.store.closed:
            with contextlib.suppress(Exception):
                self._session = self.store.session
        return self._session

    def status(self) -> dict[str, Any]:
        """Sensor state, counters since the last clear, and current rates."""
        raw = self.raw_totals()
        counters = _sub(raw, self._baseline)
        for key in ("packets", "flows", "malicious", "alerts", "bytes"):
            counters.setdefault(key, 0)
        counters.setdefault("loss", {})
        now = time.monotonic()
        sample = (now, int(raw.get("packets") or 0), int(raw["bytes"]), int(raw.get("flows") or 0))
        with self._lock:
            if not self._samples or now - self._samples[-1][0] >= 0.2:
                self._samples.append(sample)
            while len(self._samples) > 2 and now - self._samples[0][0] > 5.0:
                self._samples.popleft()
            old = self._samples[0]
        dt = now - old[0]
        if dt > 0.1:
            rates = {
                "packets_per_s": max(sample[1] - old[1], 0) / dt,
                "bytes_per_s": max(sample[2] - old[2], 0) / dt,
                "flows_per_s": max(sample[3] - old[3], 0) / dt,
            }
        else:
            rates = {"packets_per_s": 0.0, "bytes_per_s": 0.0, "flows_per_s": 0.0}
        return {"sensor": self.sensor(), "counters": counters, "rates": rates}
