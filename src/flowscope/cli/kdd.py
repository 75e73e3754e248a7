"""`flowscope kdd train|features|evaluate`: thin wrappers over flowscope.kdd."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flowscope.errors import FlowscopeError

kdd_app = typer.Typer(
    name="kdd",
    help="NSL-KDD path: KDD connection features from flows, the KDD DNN and its rule filter.",
    no_args_is_help=True,
)


@kdd_app.command("train")
def train(
    out: Annotated[Path, typer.Option("-o", "--out", help="Bundle directory to write.")],
    data: Annotated[
        Path | None,
        typer.Option(help="Folder with KDDTrain+/KDDTest+/KDDTest-21 (default: shared data)."),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 10,
    seed: Annotated[
        int, typer.Option(help="Random seed (weights, batches, rule sample).")
    ] = 20240521,
    reference: Annotated[
        bool, typer.Option(help="Also train on all 41 features, for comparison (not shipped).")
    ] = True,
    limit: Annotated[
        int | None, typer.Option(min=100, help="Use only the first N rows per split (smoke test).")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Also write the full report as JSON here.")
    ] = None,
) -> None:
    """Train the 4×256 DNN on KDDTrain+, mine the rules, report KDDTest+ and KDDTest-21."""
    try:
        from flowscope.kdd.data import default_data_dir
        from flowscope.kdd.mining import MiningConfig
        from flowscope.kdd.net import NetConfig
        from flowscope.kdd.train import render_report, train_bundle
    except ImportError as e:
        raise FlowscopeError(
            f"training needs the 'train' extra (pip install 'flowscope[train]'): {e}"
        ) from None
    data_dir = data or default_data_dir()
    rep = train_bundle(
        data_dir,
        out,
        NetConfig(epochs=epochs, seed=seed),
        MiningConfig(seed=seed),
        reference=reference,
        limit=limit,
        log=lambda m: typer.echo(m, err=True),
    )
    typer.echo(render_report(rep, rep["training"]))
    if report is not None:
        report.write_text(json.dumps(rep, indent=1) + "\n", encoding="utf-8")


@kdd_app.command("features")
def features(
    captures: Annotated[list[Path], typer.Argument(help="Capture files (pcap, pcapng).")],
    out: Annotated[str, typer.Option("-o", "--out", help="Output (.csv, .parquet, .jsonl).")],
    ids: Annotated[
        bool, typer.Option(help="Prefix each row with the flow's addresses, ports and start.")
    ] = True,
    host_window: Annotated[
        int, typer.Option(min=1, help="Connections in the dst_host_* window.")
    ] = 100,
) -> None:
    """Write the 41 NSL-KDD features of every TCP/UDP/ICMP flow in CAPTURES."""
    import pyarrow as pa

    from flowscope.kdd.features import extract_kdd, kdd_table
    from flowscope.sinks.files import FlowWriter

    missing = [str(c) for c in captures if not c.is_file()]
    if missing:
        raise FlowscopeError(f"no such capture: {', '.join(missing)}")
    writer = FlowWriter(out)
    rows = 0
    try:
        for cap in captures:
            for flows, kdd in extract_kdd(cap, host_window=host_window):
                keep = pa.array(kdd.applicable)
                table = kdd_table(kdd)
                if ids:
                    for i, name in enumerate(
                        ("capture", "src_ip", "src_port", "dst_ip", "dst_port", "first_seen")
                    ):
                        table = table.add_column(i, name, flows.column(name))
                table = table.filter(keep)
                writer.write(table)
                rows += table.num_rows
    finally:
        writer.close()
    typer.echo(f"{rows} KDD rows written to {out}", err=True)


@kdd_app.command("evaluate")
def evaluate(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Labelled flow tables (.parquet with a family column), lab run directories "
            "or captures listed in the shared-capture mapping."
        ),
    ],
    model: Annotated[str, typer.Option(help="KDD bundle directory or shipped name.")] = "kdd-dnn",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the counts as JSON here.")
    ] = None,
    host_window: Annotated[
        int | None, typer.Option(min=1, help="Override the bundle's dst_host_* window size.")
    ] = None,
) -> None:
    """Per-family alarm rates (recall; FPR for benign) with and without the rule filter."""
    from flowscope.kdd.detector import KddDetector
    from flowscope.kdd.evaluate import evaluate_sources, markdown
    from flowscope.models import load_detector

    det = load_detector(model)
    if not isinstance(det, KddDetector):
        raise FlowscopeError(f"{model}: not an NSL-KDD bundle")
    if host_window is not None:
        det = KddDetector(det.bundle, host_window=host_window)
    per_source = evaluate_sources(det, inputs)
    typer.echo(markdown(per_source))
    if json_out is not None:
        data = {src: c.as_dict() for src, c in per_source.items()}
        json_out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
