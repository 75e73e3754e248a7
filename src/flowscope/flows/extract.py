"""Capture file → flow tables: the offline pipeline behind `flowscope flows`.

reader (bulk records) → decoder (compiled) → meter (compiled) → features (vectorised).
Each capture gets its own flow table: flows never span two files, whose clocks are
unrelated.
"""

from __future__ import annotations

import os
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from flowscope.capture import open_capture
from flowscope.capture.batch import PacketBatch
from flowscope.capture.files import PcapRecords, warm_up_readers
from flowscope.decode import decode
from flowscope.decode import layout as L
from flowscope.decode._kernel import decode_into
from flowscope.flows import _feature_kernel, _format
from flowscope.flows import _kernel as kern
from flowscope.flows.features import compute_features, repeat_string
from flowscope.flows.meter import FlowMeter, FlowRecords, MeterConfig


@dataclass(slots=True)
class ExtractSummary:
    """Totals over all captures of one run, for the closing report."""

    captures: int = 0
    packets_read: int = 0
    bytes_read: int = 0
    packets_in_flows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # reason → packets
    malformed: int = 0  # skipped because damaged (subset of skipped)
    truncated_records: int = 0
    bad_records: int = 0
    reader_errors: list[str] = field(default_factory=list)
    flows: int = 0
    evicted: int = 0
    ts_backwards: int = 0
    end_reasons: Counter[str] = field(default_factory=Counter)
    peak_open_flows: int = 0
    seconds: float = 0.0
    jit_seconds: float = 0.0
    jit_cached: bool = True


_WINDOW = 32 * 1024 * 1024  # bytes of a mapped pcap walked per kernel call


def warm_up(*, files_only: bool = False, plain_pcap: bool = False) -> tuple[float, bool]:
    """Compile (or load from numba's on-disk cache) the kernels before timing anything.

    Returns (seconds, whether everything came from the cache). The first run on a
    machine compiles for tens of seconds; later runs load the cache in well under one.
    ``files_only``: just the kernels that reading capture files uses (what `flowscope
    flows` runs), not those of decoded batches and live capture; ``plain_pcap`` (with
    it): only uncompressed classic pcap files will be read, so not the batch path of
    pcapng and gzip either. Each kernel loaded costs start-up time.
    """
    t0 = time.perf_counter()
    eth = bytes(12) + b"\x08\x00"
    ip = bytes([0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    tcp = bytes([0, 80, 0, 81] + [0] * 8 + [0x50, 0x02, 0xFF, 0xFF, 0, 0, 0, 0])
    batch = PacketBatch.from_packets([(1, eth + ip + tcp), (2, eth + ip + tcp)])
    batch.data.flags.writeable = False  # readers hand out read-only buffers (one compile)
    meter = FlowMeter(MeterConfig(max_flows=4))
    kernels = [
        kern.rebuild_index, kern.meter_pcap, kern.flush_all, kern.flush_stage,
        _format._format_ips, _format._format_times, _format._join_ids,
        _feature_kernel.compute_columns,
    ]  # fmt: skip
    done: list[FlowRecords] = []
    if not files_only:
        done += meter.update(decode(batch))
        kernels += [decode_into, kern.meter_decoded, kern.expire_idle]
    if not (files_only and plain_pcap):
        for records in meter.update_raw(batch, borrow=True):
            compute_features(records)
        kernels += [kern.meter_raw, *warm_up_readers()]
    # extract_capture's path: records borrowed from the meter, features at once
    frames = (eth + ip + tcp, eth + ip + tcp)
    data = b"".join(struct.pack("<IIII", 0, t, len(f), len(f)) + f for t, f in enumerate(frames))
    pcap = PcapRecords(np.frombuffer(data, np.uint8), 0, len(data), False, 16, 1000, 1)
    for records in meter.update_pcap(pcap, pcap.end, borrow=True):
        compute_features(records)
    for records in meter.flush(borrow=True):
        compute_features(records)
    if not files_only:
        for _ in meter.expire(10**12):
            pass
        compute_features(FlowRecords.concat(done))  # records the caller owns
    misses = sum(sum(fn.stats.cache_misses.values()) for fn in kernels)
    return time.perf_counter() - t0, misses == 0


def extract_capture(
    path: str | os.PathLike[str],
    config: MeterConfig,
    summary: ExtractSummary,
    progress: Callable[[int], None] | None = None,
) -> Iterator[pa.Table]:
    """Yield feature tables (in chunks) for one capture, updating ``summary``.

    Raises CaptureError only if the file cannot be opened; damaged content is counted.
    """
    name = os.path.basename(os.fspath(path))
    with open_capture(path) as reader:
        meter = FlowMeter(config)
        summary.captures += 1

        def table(records: FlowRecords) -> pa.Table:
            t = compute_features(records)
            return t.append_column("capture", repeat_string(name, t.num_rows))

        # Finished flows stay in the meter's output buffer until it is full, so features
        # are computed and written in a few large tables: both have a fixed cost per
        # call that many small chunks would multiply. The records are borrowed views of
        # that buffer: each becomes a table (which owns its columns) before the meter
        # runs again.
        last_pos = 0
        recs = reader.pcap_records()
        if recs is not None:
            # Classic pcap: the compiled loop walks the mapped file itself, a window at
            # a time (each window returns here for progress and to release its pages).
            while recs.stopped is None:
                before = recs.records
                for records in meter.update_pcap(recs, recs.pos + _WINDOW, hold=True, borrow=True):
                    yield table(records)
                reader.advance(recs)
                summary.packets_read += recs.records - before
                if progress is not None:
                    progress(recs.pos - last_pos)
                    last_pos = recs.pos
            reader.finish(recs)
        else:
            for batch in reader.batches():
                for records in meter.update_raw(batch, hold=True, borrow=True):
                    yield table(records)
                summary.packets_read += len(batch)
                if progress is not None:
                    pos = reader.position
                    progress(pos - last_pos)
                    last_pos = pos
        for records in meter.flush(borrow=True):
            yield table(records)
        counts = meter.status_counts
        for code, reason in L.SKIP_REASONS.items():
            if counts[code]:
                summary.skipped[reason] += int(counts[code])
                if code in L.MALFORMED_REASONS:
                    summary.malformed += int(counts[code])
        st = reader.stats
        summary.bytes_read += st.bytes_read
        summary.truncated_records += st.truncated_records
        summary.bad_records += st.bad_records
        summary.reader_errors.extend(f"{name}: {e}" for e in st.errors)
        ms = meter.stats
        summary.packets_in_flows += ms.packets
        summary.flows += ms.flows
        summary.evicted += ms.evicted
        summary.ts_backwards += ms.ts_backwards
        summary.peak_open_flows = max(summary.peak_open_flows, ms.peak_open_flows)
