"""`flowscope models import|list|show`: thin wrappers over flowscope.models.{importer,catalog}."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from flowscope.models.importer import DEFAULT_THRESHOLD

models_app = typer.Typer(
    name="models",
    help="Model bundles: import your own Keras model, list and inspect bundles.",
    no_args_is_help=True,
)


@models_app.command("import")
def import_(
    model: Annotated[Path, typer.Argument(help="Keras model: a .keras archive or legacy .h5.")],
    features: Annotated[
        Path,
        typer.Option(
            "--features",
            "-f",
            help="Input columns in order: text (one per line) or JSON list; any header dialect.",
        ),
    ],
    scaler: Annotated[
        Path | None,
        typer.Option(help='Scaler: JSON {"mean","scale"} / {"min","max"}, or a joblib file.'),
    ] = None,
    rules: Annotated[
        Path | None,
        typer.Option(help="Veto rules: RuleSet JSON, or a pickled rule list (--trust-pickle)."),
    ] = None,
    classes: Annotated[
        str | None,
        typer.Option(help="Output class names, comma-separated, benign first."),
    ] = None,
    threshold: Annotated[
        float, typer.Option(help="Alarm when 1 − P(benign) reaches this (the old dashboard: 0.65).")
    ] = DEFAULT_THRESHOLD,
    name: Annotated[
        str | None, typer.Option(help="Bundle name (default: -o's or the model file's name).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Bundle directory (default: user models dir/NAME)."),
    ] = None,
    description: Annotated[str, typer.Option(help="One line for `models list/show`.")] = "",
    trust_pickle: Annotated[
        bool,
        typer.Option(
            "--trust-pickle", help="Allow unpickling the scaler/rules files (runs their code)."
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing bundle.")] = False,
) -> None:
    """Convert a Keras model and its feature list (and scaler, rules) into a bundle."""
    from flowscope.models.importer import TOLERANCE, import_keras_model

    res = import_keras_model(
        model,
        features,
        scaler_path=scaler,
        rules_path=rules,
        classes=classes,
        threshold=threshold,
        name=name,
        out_dir=output,
        description=description,
        trust_pickle=trust_pickle,
        force=force,
    )
    m = res.meta
    t = m.training
    typer.echo(f"imported {m.name!r} → {res.path}")
    typer.echo(
        f"  {t['source_file']} (keras {t.get('keras_version')}, sha256 {t['source_sha256'][:12]}…)"
    )
    typer.echo(
        f"  {len(m.features)} features ({t['feature_dialect']} names), classes "
        f"{', '.join(m.classes)} ({m.output}), threshold {m.threshold:g}"
    )
    typer.echo(
        f"  ONNX matches Keras on {res.rows_checked} rows: max |Δp| {res.max_abs_diff:.1e} "
        f"(tolerance {TOLERANCE:g})"
    )
    for note in res.notes:
        typer.echo(f"  note: {note}")


@models_app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Shipped and user bundles; broken ones with the reason they cannot load."""
    from flowscope.models.bundle import builtin_dir, user_models_dir
    from flowscope.models.catalog import list_bundles

    entries = list_bundles()
    if as_json:
        typer.echo(json.dumps([e.as_dict() for e in entries], indent=2))
        return
    if not entries:
        typer.echo(f"no models in {builtin_dir()} or {user_models_dir()}")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("name", "algorithm", "features", "classes", "threshold", "where", "status"):
        table.add_column(col)
    for e in entries:
        where = "shipped" if e.origin == "shipped" else str(e.path)
        if e.meta is None:
            status = f"[red]{e.status}[/red]: {e.problem}"
            table.add_row(e.name, "-", "-", "-", "-", where, status)
            continue
        m = e.meta
        status = "shadowed by the shipped model of that name" if e.shadowed else "ok"
        table.add_row(
            e.name,
            m.algorithm,
            f"{len(m.features)} {m.feature_set}",
            ", ".join(m.classes),
            f"{m.threshold:g}",
            where,
            status,
        )
    _console().print(table)


@models_app.command("show")
def show(
    model: Annotated[str, typer.Argument(help="Bundle name (shipped or user) or directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Metadata, metrics, features with units, preprocessing and side files of a bundle."""
    from flowscope.models.catalog import describe

    info = describe(model)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    _print_info(info)


def _print_info(info: dict[str, Any]) -> None:
    m = info["meta"]
    con = _console()
    con.print(f"[bold]{m['name']}[/bold]  {m['description']}")
    rows = [
        ("path", f"{info['path']} ({info['origin']})"),
        ("algorithm", m["algorithm"]),
        ("feature set", f"{m['feature_set']} ({len(m['features'])} features)"),
        ("classes", ", ".join(m["classes"]) + f"  (output: {m['output']})"),
        ("threshold", f"{m['threshold']:g}  {m['threshold_rule']}".rstrip()),
        ("explain", m["explain"] + ("  (with baseline)" if m["baseline"] else "")),
        ("created", f"{m['created']} by flowscope {m['flowscope_version']}"),
        ("graph", f"{info['graph']['input']} {info['graph']['input_shape']} → "
         f"{info['graph']['output']}  ({info['graph']['bytes']} bytes)"),
    ]  # fmt: skip
    for key in ("source_file", "source_sha256", "keras_version", "feature_dialect"):
        if key in m["training"]:
            rows.append((key.replace("_", " "), str(m["training"][key])))
    for key, val in rows:
        con.print(f"  {key:<13} {val}", highlight=False)
    if info["metrics_summary"]:
        con.print("[bold]metrics[/bold]")
        for key, val in info["metrics_summary"].items():
            shown = f"{val:.4g}" if isinstance(val, float) else str(val)
            con.print(f"  {key:<30} {shown}", highlight=False)
    con.print("[bold]preprocessing[/bold]" + ("" if m["preprocessing"] else "  none"))
    for i, step in enumerate(m["preprocessing"], 1):
        con.print(f"  {i}. {_step_text(step)}", highlight=False)
    con.print("[bold]side files[/bold]" + ("" if info["side_files"] else "  none"))
    for sf in info["side_files"]:
        con.print(f"  {sf['role']:<10} {sf['file']} ({sf['bytes']} bytes)", highlight=False)
    table = Table(title=None, box=None, pad_edge=False)
    for col in ("#", "feature", "unit", "CIC-IDS2017", "CSE-CIC-IDS2018"):
        table.add_column(col)
    for i, f in enumerate(info["features"], 1):
        table.add_row(
            str(i),
            f["name"],
            f.get("unit") or "",
            f.get("cic-ids2017") or "-",
            f.get("cse-cic-ids2018") or "-",
        )
    con.print("[bold]features[/bold]")
    con.print(table)


def _console() -> Console:
    """The terminal's width, or wide enough not to wrap rows when piped into grep or a file."""
    con = Console()
    return con if con.is_terminal else Console(width=240)


def _step_text(step: dict[str, Any]) -> str:
    op = step["op"]
    if op in ("standardize", "minmax"):
        a, b = ("mean", "scale") if op == "standardize" else ("min", "max")
        va, vb = step.get(a) or [0.0], step.get(b) or [0.0]
        span = f"{a} {min(va):.3g}..{max(va):.3g}, {b} {min(vb):.3g}..{max(vb):.3g}"
        return f"{op} ({span}" + (", clipped to [0, 1])" if step.get("clip") else ")")
    if op == "clip":
        return f"clip to [{step.get('lo')}, {step.get('hi')}]"
    return op
