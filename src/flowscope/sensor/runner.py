"""Drives a :class:`Pipeline` from a live interface or a capture file, in two threads.

::

    capture thread ──(bounded queue of copied batches)──▶ processing thread
    LiveCapture.batches(copy=True)                        meter.update_raw / expire
    or a capture file (replay)                            → Pipeline.process / tick
                                                          + Pipeline.early_verdicts

Live capture must never wait for processing: the kernel ring would fill and drop
packets where nobody counts them per batch. So the capture thread only copies a batch
out of the ring and offers it to the queue; when the queue is full the batch is
dropped *and counted* (``queue_dropped_packets``) — loss is allowed, silence is not.
Replay reads a file, which can wait, so it blocks on a full queue instead and loses
nothing. Both go through the same processing thread, which is why a replay produces
exactly what ``flowscope analyze`` produces.

Idle (empty) batches still reach the processing thread, with the wall clock as capture
time: that is what lets the meter expire idle flows and the rule engine end quiet
incidents when traffic stops. Shutdown (SIGINT/SIGTERM, ``--duration``, end of file)
stops the capture, lets the processing thread drain the queue, flushes the meter
(final verdicts for every open flow), ends open incidents and closes the sinks.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import TextIO

import numpy as np

from flowscope.capture import open_capture
from flowscope.capture.batch import PacketBatch
from flowscope.capture.live import LiveCapture
from flowscope.flows.meter import FlowMeter, FlowRecords
from flowscope.sensor.pipeline import Pipeline
from flowscope.sensor.status import status_line

QUEUE_BATCHES = 256  # batches of up to 4096 packets: ~1M packets of slack
_NS = 1_000_000_000
_TICK_NS = _NS  # rule-engine clock advanced at most once per capture second
_PACE_SLICE_NS = 10_000_000  # realtime replay releases packets 10 ms of capture time apart


@dataclass(slots=True)
class _Item:
    batch: PacketBatch
    now_ns: int  # capture time of an idle batch (wall clock); 0 for packet batches


_END = object()  # end of input
_NEXT = object()  # next capture file: its own clock, so a new flow table and rule engine


def copy_batch(b: PacketBatch) -> PacketBatch:
    """A batch that owns its memory (a reader's batches are views of its buffer)."""
    return PacketBatch(
        b.data.copy(), b.offset.copy(), b.caplen.copy(), b.wirelen.copy(), b.ts_ns.copy(),
        b.linktype.copy(),
    )  # fmt: skip


def _slice(b: PacketBatch, i: int, j: int) -> PacketBatch:
    return PacketBatch(
        b.data, b.offset[i:j], b.caplen[i:j], b.wirelen[i:j], b.ts_ns[i:j], b.linktype[i:j]
    )


def paced(batches: Iterator[PacketBatch], stop: threading.Event) -> Iterator[PacketBatch]:
    """Release packets when their timestamps say, relative to the first one (--realtime)."""
    t0_capture: int | None = None
    t0_wall = 0.0
    for b in batches:
        n = len(b)
        if n == 0:
            continue
        if t0_capture is None:
            t0_capture, t0_wall = int(b.ts_ns[0]), time.monotonic()
        ts = b.ts_ns
        start = 0
        while start < n:
            cut = int(ts[start]) + _PACE_SLICE_NS
            end = max(start + 1, int(np.searchsorted(ts, cut, side="left")))
            due = t0_wall + (int(ts[start]) - t0_capture) / _NS
            wait = due - time.monotonic()
            if wait > 0 and stop.wait(wait):
                return
            yield _slice(b, start, end)
            start = end


class Runner:
    """One run of the sensor: a producer thread, the processing thread, signals, status.

    ``status_every``: seconds between status lines on ``status_out`` (0 = none).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        queue_batches: int = QUEUE_BATCHES,
        status_every: float = 5.0,
        status_out: TextIO | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.queue: queue.Queue[_Item | object] = queue.Queue(maxsize=queue_batches)
        self.stop = threading.Event()
        self.status_every = status_every
        self.status_out = status_out if status_out is not None else sys.stderr
        self._error: BaseException | None = None
        self.interrupted = False

    # ------------------------------------------------------------------ processing
    def _process(self) -> None:
        p = self.pipeline
        meter = p.new_meter()
        last_tick = 0
        try:
            while True:
                item = self.queue.get()
                if item is _END:
                    break
                if item is _NEXT:
                    for records in meter.flush():
                        p.process(records)
                    p.end_input(more=True)
                    meter = p.new_meter()
                    last_tick = 0
                    continue
                assert isinstance(item, _Item)
                b = item.batch
                if len(b):
                    # The meter kernel is compiled (warm_up) for read-only packet data,
                    # as file readers hand out; a writeable copy would compile it again.
                    b.data.flags.writeable = False
                    p.count_packets(len(b))
                    self._meter(meter, b)
                    now = int(b.ts_ns.max())
                else:
                    now = item.now_ns
                    for records in meter.expire(now):
                        p.process(records)
                p.early_verdicts(now)  # running flows, every early_verdict_interval
                if now - last_tick >= _TICK_NS:
                    p.tick(now)
                    last_tick = now
            for records in meter.flush():
                p.process(records)
            p.end_input()
        except BaseException as e:
            self._error = e
            self.stop.set()
            with contextlib.suppress(queue.Empty):  # unblock a producer waiting on put()
                while True:
                    self.queue.get_nowait()

    def _meter(self, meter: FlowMeter, b: PacketBatch) -> None:
        """Meter one batch, stopping for each early-verdict snapshot that falls inside it.

        A file reader's batch can span seconds of capture time; cutting it where a
        snapshot is due (at the first packet at or after that time) makes replay and
        ``analyze`` take snapshots at the capture times a live sensor would. The
        finished flows and snapshots are collected and handed over in their order at
        the end (:meth:`Pipeline.process_in_order`), so that a sparse capture's many
        small snapshots share one feature pass and one model call.
        """
        p = self.pipeline
        ts = b.ts_ns
        n = len(b)
        start = 0
        items: list[FlowRecords] = []
        while start < n:
            end = n
            due = p.snapshot_due(int(ts[start]))
            if due is not None:
                late = np.flatnonzero(ts[start:] >= due)
                if late.size:
                    end = start + int(late[0])
            if end > start:
                part = b if (start, end) == (0, n) else _slice(b, start, end)
                items.extend(meter.update_raw(part))
            if end < n:
                snap = p.take_snapshot(int(ts[end]))  # advances the due time past ts[end]
                if snap is not None and len(snap):
                    items.append(snap)
            start = end
        p.process_in_order(items)

    def _offer(self, batch: PacketBatch, now_ns: int = 0) -> None:
        """Live: queue without ever waiting; a full queue drops the batch and counts it."""
        try:
            self.queue.put_nowait(_Item(batch, now_ns))
        except queue.Full:
            if len(batch):
                self.pipeline.count_queue_drop(len(batch))
            return
        depth = self.queue.qsize()
        if depth > self.pipeline.counters.peak_queue:
            self.pipeline.counters.peak_queue = depth

    def _put(self, item: PacketBatch | object) -> bool:
        """Replay: wait for room (nothing is lost); False once stopping."""
        if isinstance(item, PacketBatch):
            item = _Item(item, 0)
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _end(self) -> None:
        while True:
            try:
                self.queue.put(_END, timeout=0.2)
                return
            except queue.Full:
                if self._error is not None:
                    return

    # ------------------------------------------------------------------ producers
    def _live_producer(self, cap: LiveCapture) -> None:
        try:
            for b in cap.batches(self.stop, copy=True):
                self._offer(b, 0 if len(b) else time.time_ns())
        except BaseException as e:
            self._error = self._error or e
            self.stop.set()

    def _replay_producer(self, paths: list[str], realtime: bool) -> None:
        try:
            for k, path in enumerate(paths):
                with open_capture(path) as reader:
                    batches: Iterator[PacketBatch] = reader.batches()
                    if realtime:
                        batches = paced(batches, self.stop)
                    for b in batches:
                        if not self._put(copy_batch(b)):
                            return
                if k + 1 < len(paths) and not self._put(_NEXT):
                    return
        except BaseException as e:
            self._error = self._error or e
            self.stop.set()

    # ------------------------------------------------------------------ running
    def _signals(self) -> Callable[[], None]:
        """Route SIGINT/SIGTERM to a clean stop (main thread only); returns the undo."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def on_signal(signum: int, frame: FrameType | None) -> None:
            # The first signal asks for a clean stop; the handlers are then restored,
            # so a second Ctrl-C aborts (KeyboardInterrupt) without the final flush.
            self.interrupted = True
            self.stop.set()
            undo()
            print(
                "flowscope: stopping: final verdicts for open flows (again to abort)",
                file=self.status_out,
                flush=True,
            )

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

        def undo() -> None:
            for s, h in old.items():
                signal.signal(s, h)

        return undo

    def _supervise(self, producer: threading.Thread, duration: float | None) -> None:
        """Wait for the end (signal, duration, end of input), printing status lines."""
        t0 = time.monotonic()
        next_status = t0 + self.status_every if self.status_every > 0 else float("inf")
        while producer.is_alive() and not self.stop.is_set():
            now = time.monotonic()
            if duration is not None and now - t0 >= duration:
                break
            wake = min(next_status, t0 + duration if duration is not None else float("inf"))
            self.stop.wait(max(0.01, min(0.5, wake - now)))
            if time.monotonic() >= next_status:
                print(status_line(self.pipeline.status()), file=self.status_out, flush=True)
                next_status += self.status_every
        self.stop.set()

    def run_live(self, cap: LiveCapture, *, duration: float | None = None) -> None:
        """Capture from an open ``cap`` until stopped; closes it.

        Warm the kernels (:func:`warm_up`) *before* opening the capture: a compile in
        the middle of capturing stalls processing for many seconds.
        """
        self.pipeline.capture_stats = lambda: cap.stats

        closed: list[bool] = []

        def close_capture() -> None:
            if not closed:
                closed.append(True)
                cap.close()  # reads the kernel counters a last time
                final = cap.stats
                self.pipeline.capture_stats = lambda: final

        producer = threading.Thread(target=self._live_producer, args=(cap,), name="capture")
        self._run(producer, duration, on_stop=close_capture)

    def run_replay(
        self, paths: list[str], *, realtime: bool = False, duration: float | None = None
    ) -> None:
        """Feed capture files through the live path (as fast as possible or paced)."""
        for path in paths:  # fail before starting threads (one-line CaptureError)
            if not os.path.isfile(path):
                open_capture(path).close()
        producer = threading.Thread(
            target=self._replay_producer, args=(list(paths), realtime), name="replay"
        )
        self._run(producer, duration)

    def _run(
        self,
        producer: threading.Thread,
        duration: float | None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        undo = self._signals()
        # Daemon threads: an aborted run (second Ctrl-C) must not wait for them.
        worker = threading.Thread(target=self._process, name="process", daemon=True)
        producer.daemon = True
        try:
            worker.start()
            producer.start()
            self._supervise(producer, duration)
            if on_stop is not None:
                on_stop()  # closes the capture: batches() ends within poll_timeout
            producer.join()
            self._end()
            worker.join()
        finally:
            self.stop.set()
            undo()
            try:
                self.pipeline.close()
            finally:
                if on_stop is not None:
                    on_stop()
        if self._error is not None:
            raise self._error


def warm_up() -> None:
    """Compile (or load from cache) every kernel the sensor runs: ring, decode, meter."""
    from flowscope.capture import live
    from flowscope.flows import extract

    extract.warm_up()
    live.warm_up()
