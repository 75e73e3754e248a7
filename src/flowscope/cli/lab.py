"""`flowscope lab run|cleanup|list` and `flowscope label`: thin wrappers over flowscope.lab."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

lab_app = typer.Typer(
    name="lab",
    help="Traffic lab: real tools in network namespaces make labelled captures (root).",
    no_args_is_help=True,
)


@lab_app.command("run")
def run(
    scenario: Annotated[
        str, typer.Argument(help="Scenario TOML file or built-in name (smoke, training, holdout).")
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="Run directory to write.")],
    seed: Annotated[int | None, typer.Option(help="Override the scenario's random seed.")] = None,
    time_scale: Annotated[
        float,
        typer.Option(
            help="Shrink the scenario clock (e.g. 0.1 for a quick trial).", min=0.01, max=1.0
        ),
    ] = 1.0,
) -> None:
    """Build the lab, run SCENARIO, write capture.pcap, labels.csv, scenario.json to OUT."""
    from flowscope.lab.runner import Interrupted, run_scenario
    from flowscope.lab.scenario import load_scenario

    sc = load_scenario(scenario)
    try:
        res = run_scenario(
            sc, out, seed=seed, say=lambda m: typer.echo(m, err=True), time_scale=time_scale
        )
    except Interrupted as e:
        typer.echo(f"flowscope: interrupted ({e}); the lab was torn down", err=True)
        raise typer.Exit(130) from None
    typer.echo(
        f"wrote {res.out}: {res.attacks} attacks, {res.packets_captured} packets "
        f"({res.packets_dropped} dropped by kernel), {res.seconds:.1f} s",
        err=True,
    )


@lab_app.command("cleanup")
def cleanup(
    all_runs: Annotated[
        bool, typer.Option("--all", help="Also remove runs whose runner is still alive.")
    ] = False,
) -> None:
    """Remove leftovers (namespaces, processes, state) of earlier lab runs, and only those."""
    from flowscope.lab import netns

    netns.require_root()
    removed = netns.cleanup(include_live=all_runs)
    typer.echo(
        f"removed {len(removed)} lab run(s){': ' + ', '.join(removed) if removed else ''}", err=True
    )


@lab_app.command("list")
def list_scenarios() -> None:
    """List the built-in scenarios."""
    from flowscope.lab.scenario import builtin_scenarios, load_scenario

    for name in builtin_scenarios():
        sc = load_scenario(name)
        typer.echo(
            f"{name:<10} {sc.duration:>6.0f} s  {len(sc.attacks):>3} attacks  {sc.description}"
        )


def label(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Lab run directories, or capture files listed in the shared-pcap mapping."
        ),
    ],
    out: Annotated[
        str, typer.Option("-o", "--out", help="Flow table to write (.parquet, .csv, .jsonl).")
    ],
    mapping: Annotated[
        Path | None,
        typer.Option(help="Capture → family mapping (default: the shipped shared_pcaps.toml)."),
    ] = None,
    slack: Annotated[
        float, typer.Option(help="Seconds added to both ends of each attack window.")
    ] = 1.0,
    dialect: Annotated[
        str, typer.Option(help="Column names: flowscope, cic, cic-ids2017, cse-cic-ids2018.")
    ] = "flowscope",
) -> None:
    """Meter flows and label each one: label, attack_kind, family, attack_id."""
    from flowscope.lab.labels import label_inputs

    counts = label_inputs(inputs, out, mapping=mapping, slack_s=slack, dialect=dialect)
    for fam, n in sorted(counts.items()):
        typer.echo(f"{fam:<12} {n:>9} flows", err=True)
