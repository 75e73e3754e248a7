"""`flowscope flows`: capture files → flow features on disk, with a closing summary."""

from __future__ import annotations

import os
import sys
import time
from importlib import resources
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from flowscope.flows.extract import ExtractSummary, extract_capture, warm_up
from flowscope.flows.features import compute_features
from flowscope.flows.meter import FlowRecords, MeterConfig
from flowscope.flows.registry import DIALECTS
from flowscope.sinks.files import FORMATS, FlowWriter

_PROGRESS_MIN_BYTES = 32 * 1024 * 1024


def sample_capture() -> Path:
    """The capture shipped with the package (used when no file is given)."""
    return Path(str(resources.files("flowscope") / "data" / "sample.pcap"))


def flows(
    captures: list[Path] = typer.Argument(
        None, help="pcap/pcapng files (gzip welcome). Default: the sample capture shipped."
    ),
    output: str | None = typer.Option(
        None, "-o", "--output", help="Output file (.csv, .parquet, .jsonl) or '-' for stdout CSV."
    ),
    fmt: str | None = typer.Option(
        None, "--format", help=f"Output format: {', '.join(FORMATS)} (default: from -o)."
    ),
    dialect: str = typer.Option(
        "flowscope", "--dialect", help=f"Column names: {', '.join(DIALECTS)}."
    ),
    idle_timeout: float = typer.Option(120.0, help="Seconds without packets that end a flow."),
    active_timeout: float = typer.Option(3600.0, help="Seconds after which a long flow is split."),
    max_flows: int = typer.Option(1_000_000, help="Open-flow limit; the oldest is evicted beyond."),
    progress: bool | None = typer.Option(
        None, "--progress/--no-progress", help="Progress bar (default: on for large inputs)."
    ),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No summary."),
) -> None:
    """Meter bidirectional flows and write their features."""
    paths = list(captures) if captures else [sample_capture()]
    config = MeterConfig(
        idle_timeout=idle_timeout, active_timeout=active_timeout, max_flows=max_flows
    )
    err = Console(stderr=True)
    summary = ExtractSummary()
    summary.jit_seconds, summary.jit_cached = warm_up()
    writer = FlowWriter(output, fmt, dialect) if output else None
    total = sum(os.path.getsize(p) for p in paths if os.path.isfile(p))
    show = progress if progress is not None else (err.is_terminal and total >= _PROGRESS_MIN_BYTES)
    t0 = time.perf_counter()
    try:
        with Progress(
            "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
            TimeRemainingColumn(), console=err, disable=not show, transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task("reading", total=total or None)
            for path in paths:
                bar.update(task, description=path.name)
                for table in extract_capture(
                    path, config, summary, lambda n: bar.advance(task, n)
                ):
                    summary.end_reasons.update(table.column("end_reason").to_pylist())
                    if writer is not None:
                        writer.write(table)
        if writer is not None and writer.rows == 0:
            empty = compute_features(FlowRecords.concat([]))
            writer.write(empty.append_column("capture", empty.column("flow_id")))
    finally:
        if writer is not None:
            writer.close()
    summary.seconds = time.perf_counter() - t0
    if not quiet:
        _print_summary(err, summary, writer)


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
