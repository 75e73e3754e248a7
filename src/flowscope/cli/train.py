"""`flowscope train` and `flowscope evaluate`: thin wrappers over flowscope.train.pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flowscope.errors import FlowscopeError

_INPUTS_HELP = (
    "Lab run directories, capture files/folders listed in the shared-capture mapping, "
    "or labelled tables (.parquet/.csv from `flowscope label`, CIC CSVs with a Label column)."
)


def _require_train_extra() -> None:
    try:
        import matplotlib  # noqa: F401
        import onnx  # noqa: F401
    except ImportError:
        raise FlowscopeError(
            "training needs the train extra: pip install 'flowscope[train]'"
        ) from None


def train(
    inputs: Annotated[list[Path], typer.Argument(help=_INPUTS_HELP)],
    out: Annotated[Path, typer.Option("-o", "--out", help="Directory for the bundles.")],
    algorithm: Annotated[
        list[str],
        typer.Option("--algorithm", "-a", help="lightgbm, rescnn, mlp (repeatable) or all."),
    ] = ["all"],  # noqa: B006 (typer needs a literal default)
    validation: Annotated[
        list[Path] | None,
        typer.Option(
            help="Validation inputs (default: held-out attack instances and time blocks)."
        ),
    ] = None,
    target_fpr: Annotated[
        float, typer.Option(help="False-positive rate the threshold is chosen for (validation).")
    ] = 0.005,
    max_per_attack: Annotated[
        int, typer.Option(help="At most this many flows per attack instance (floods are huge).")
    ] = 4000,
    seed: Annotated[int, typer.Option(help="Random seed (sampling, initialisation).")] = 0,
    test_fraction: Annotated[
        float,
        typer.Option(help="Share of single-capture inputs (by file name) kept out for testing."),
    ] = 0.0,
    mapping: Annotated[
        Path | None, typer.Option(help="Capture → family mapping (default: shared_pcaps.toml).")
    ] = None,
) -> None:
    """Train flow classifiers on labelled flows and write ONNX bundles."""
    _require_train_extra()
    from flowscope.train.pipeline import ALGORITHMS, fit

    algs = list(ALGORITHMS) if "all" in algorithm else algorithm
    written = fit(
        inputs,
        out,
        algorithms=algs,
        validation=validation or None,
        target_fpr=target_fpr,
        max_per_attack=max_per_attack,
        seed=seed,
        test_fraction=test_fraction,
        mapping=mapping,
        log=lambda s: typer.echo(s, err=True),
    )
    for alg, path in written.items():
        typer.echo(f"{alg}\t{path}")


def evaluate(
    bundle: Annotated[str, typer.Argument(help="Bundle directory or shipped model name.")],
    inputs: Annotated[list[Path], typer.Argument(help=_INPUTS_HELP)],
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Directory for report.json/.md and plots.")
    ] = None,
    title: Annotated[str, typer.Option(help="Title of the report.")] = "evaluation",
    mapping: Annotated[
        Path | None, typer.Option(help="Capture → family mapping (default: shared_pcaps.toml).")
    ] = None,
) -> None:
    """Evaluate a bundle on labelled test inputs: per-family recall, FPR, PR-AUC, confusion."""
    from flowscope.train.pipeline import evaluate as run_evaluate
    from flowscope.train.report import markdown, write_report

    report = run_evaluate(
        bundle, inputs, title=title, mapping=mapping, log=lambda s: typer.echo(s, err=True)
    )
    typer.echo(markdown(report))
    if "filter" in report:
        f = report["filter"]
        typer.echo(
            f"rule filter: {f['suppressed']:,} alarms suppressed — "
            f"{f['false_positives_removed']:,} false positives removed, "
            f"{f['attacks_lost']:,} attacks lost"
        )
    if out is not None:
        for p in write_report(report, out):
            typer.echo(f"wrote {p}", err=True)
