"""`flowscope flows`: capture files → flow features on disk, with a closing summary."""

from __future__ import annotations

import atexit
import gc
import os
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from flowscope._jit import without_blas
from flowscope.capture.files import is_plain_pcap
from flowscope.flows.extract import ExtractSummary, extract_capture, warm_up
from flowscope.flows.features import compute_features
from flowscope.flows.meter import FlowRecords, MeterConfig
from flowscope.flows.registry import DIALECTS
from flowscope.sinks.files import FORMATS, FlowWriter

_PROGRESS_MIN_BYTES = 32 * 1024 * 1024
_PREVIEW_ROWS = 15
_PREVIEW_COLS = [
    "src_ip", "src_port", "dst_ip", "dst_port", "protocol", "fwd_packets", "bwd_packets",
    "fwd_bytes", "bwd_bytes", "flow_duration", "end_reason",
]  # fmt: skip
_PROTO_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP"}


def sample_capture() -> Path:
    """The capture shipped with the package (used when no file is given)."""
    return Path(str(resources.files("flowscope") / "data" / "sample.pcap"))


def flows(
    captures: Annotated[
        list[Path] | None,
        typer.Argument(help="pcap/pcapng files (gzip welcome). Default: the shipped sample."),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option("-o", "--output", help="Output .csv, .parquet or .jsonl; '-' = stdout CSV."),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help=f"Output format: {', '.join(FORMATS)} (default: from -o)."),
    ] = None,
    dialect: Annotated[
        str, typer.Option("--dialect", help=f"Column names: {', '.join(DIALECTS)}.")
    ] = "flowscope",
    idle_timeout: Annotated[
        float, typer.Option(help="Seconds without packets that end a flow.")
    ] = 120.0,
    active_timeout: Annotated[
        float, typer.Option(help="Seconds after which a long flow is split.")
    ] = 3600.0,
    max_flows: Annotated[
        int, typer.Option(help="Open-flow limit; the least recently queued flow is evicted.")
    ] = 1_000_000,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bar (default: large inputs)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No summary.")] = False,
) -> None:
    """Meter bidirectional flows and write their features."""
    # At exit the interpreter runs a last garbage collection over every object it holds
    # (numba's type registries alone are hundreds of thousands): a third of a second
    # for nothing once the output is closed. Frozen objects are skipped.
    atexit.register(gc.freeze)
    paths = list(captures) if captures else [sample_capture()]
    config = MeterConfig(
        idle_timeout=idle_timeout, active_timeout=active_timeout, max_flows=max_flows
    )
    err = Console(stderr=True)
    summary = ExtractSummary()
    plain = all(is_plain_pcap(p) for p in paths)
    with without_blas():
        summary.jit_seconds, summary.jit_cached = warm_up(files_only=True, plain_pcap=plain)
    writer = FlowWriter(output, fmt, dialect) if output else None
    total = sum(os.path.getsize(p) for p in paths if os.path.isfile(p))
    show = progress if progress is not None else (err.is_terminal and total >= _PROGRESS_MIN_BYTES)
    preview: list[dict[str, object]] = []
    t0 = time.perf_counter()
    try:
        with _progress_bar(err, show) as bar:
            task = bar.add_task("reading", total=total or None)
            for path in paths:
                bar.update(task, description=path.name)
                for table in extract_capture(path, config, summary, lambda n: bar.advance(task, n)):
                    for item in table.column("end_reason").value_counts().to_pylist():
                        summary.end_reasons[item["values"]] += item["counts"]
                    if writer is not None:
                        writer.write(table)
                    elif len(preview) < _PREVIEW_ROWS:
                        preview.extend(
                            table.select(_PREVIEW_COLS).slice(0, _PREVIEW_ROWS).to_pylist()
                        )
        if writer is not None and writer.rows == 0:
            empty = compute_features(FlowRecords.concat([]))
            writer.write(empty.append_column("capture", empty.column("flow_id")))
    finally:
        if writer is not None:
            writer.close()
    summary.seconds = time.perf_counter() - t0
    if not quiet:
        if writer is None:
            out = Console()
            if not out.is_terminal:
                out = Console(width=120)
            _print_preview(out, preview[:_PREVIEW_ROWS], summary.flows)
        _print_summary(err, summary, writer)


class _NoBar:
    """Stands in for rich's Progress when no bar is shown (and rich.progress not imported)."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def add_task(self, description: str, total: float | None = None) -> int:
        return 0

    def update(self, task: int, description: str = "") -> None:
        pass

    def advance(self, task: int, n: float) -> None:
        pass


def _progress_bar(console: Console, show: bool) -> Any:
    if not show:
        return _NoBar()
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    return Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
        TimeRemainingColumn(), console=console, transient=True,
    )  # fmt: skip


def _print_preview(console: Console, rows: list[dict[str, object]], total: int) -> None:
    """First flows as a table, when no output file was asked for."""
    t = Table(title=f"first {len(rows)} of {total:,} flows (write them all with -o FILE)")
    for col in ("source", "destination", "proto", "packets", "bytes", "duration", "end"):
        right = col in ("packets", "bytes", "duration")
        t.add_column(col, justify="right" if right else "left", no_wrap=True)
    for r in rows:
        t.add_row(
            f"{r['src_ip']}:{r['src_port']}",
            f"{r['dst_ip']}:{r['dst_port']}",
            _PROTO_NAMES.get(int(str(r["protocol"])), str(r["protocol"])),
            f"{int(float(str(r['fwd_packets'])))} / {int(float(str(r['bwd_packets'])))}",
            f"{int(float(str(r['fwd_bytes'])))} / {int(float(str(r['bwd_bytes'])))}",
            f"{float(str(r['flow_duration'])) / 1e6:.3f} s",
            str(r["end_reason"]),
        )
    console.print(t, highlight=False)


def _print_summary(console: Console, s: ExtractSummary, writer: FlowWriter | None) -> None:
    rate = s.packets_read / s.seconds if s.seconds > 0 else 0.0
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_column()
    t.add_row("captures", f"{s.captures:,}", "")
    t.add_row("packets read", f"{s.packets_read:,}", f"{s.bytes_read:,} bytes")
    t.add_row("packets in flows", f"{s.packets_in_flows:,}", "")
    skipped = sum(s.skipped.values())
    t.add_row("packets skipped", f"{skipped:,}", f"{s.malformed:,} malformed")
    for reason, n in s.skipped.most_common():
        t.add_row("", f"{n:,}", reason)
    if s.truncated_records or s.bad_records:
        t.add_row("damaged records", f"{s.truncated_records + s.bad_records:,}",
                  f"{s.truncated_records} truncated, {s.bad_records} impossible")  # fmt: skip
    t.add_row("flows", f"{s.flows:,}", f"peak {s.peak_open_flows:,} open at once")
    ends = ", ".join(f"{k} {v:,}" for k, v in s.end_reasons.most_common())
    t.add_row("ended by", "", ends)
    t.add_row("evicted flows", f"{s.evicted:,}", "table full" if s.evicted else "")
    if s.ts_backwards:
        t.add_row("time went back", f"{s.ts_backwards:,}", "packets older than their flow")
    t.add_row("time", f"{s.seconds:.2f} s", f"{rate:,.0f} packets/s")
    jit = "loaded from cache" if s.jit_cached else "compiled now, cached for next runs"
    t.add_row("JIT", f"{s.jit_seconds:.2f} s", jit)
    if writer is not None:
        t.add_row("written", f"{writer.rows:,}", f"flows → {writer.path} ({writer.format})")
    console.print(t)
    for e in s.reader_errors[:10]:
        console.print(f"[yellow]warning:[/] {e}", highlight=False)
    sys.stderr.flush()
