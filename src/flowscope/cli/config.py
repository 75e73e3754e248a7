"""`flowscope config show|default|keys`: thin wrappers over flowscope.config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

config_app = typer.Typer(
    name="config",
    help="The sensor's configuration: print the defaults or what is in effect.",
    no_args_is_help=True,
)


@config_app.command("show")
def show(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="TOML file (default: $FLOWSCOPE_CONFIG if set, else none)."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one setting: section.key=value (repeatable)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of TOML.")] = False,
) -> None:
    """Print the configuration in effect: defaults < file < environment < --set."""
    from flowscope.config import dump_toml, load_config, parse_set_options

    cfg = load_config(config, overrides=parse_set_options(set_ or []))
    if as_json:
        typer.echo(json.dumps(cfg.model_dump(mode="json"), indent=2))
    else:
        typer.echo(dump_toml(cfg), nl=False)


@config_app.command("default")
def default(
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to a file instead of stdout.")
    ] = None,
) -> None:
    """Print the commented default configuration file (a starting point to edit)."""
    from flowscope.config import default_config_text
    from flowscope.errors import FlowscopeError

    text = default_config_text()
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        with output.open("x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        raise FlowscopeError(f"{output} exists; not overwriting it") from None
    except OSError as e:
        raise FlowscopeError(f"cannot write {output}: {e.strerror or e}") from None


@config_app.command("keys")
def keys() -> None:
    """List every setting with its default and environment variable."""
    from rich.console import Console
    from rich.table import Table

    from flowscope.config import describe, toml_value

    t = Table(show_lines=False)
    t.add_column("setting", no_wrap=True)
    t.add_column("default", overflow="fold")
    t.add_column("environment variable", no_wrap=True)
    t.add_column("meaning", overflow="fold")
    for row in describe():
        t.add_row(
            f"{row['section']}.{row['key']}",
            "(unset)" if row["default"] is None else toml_value(row["default"]),
            row["env"],
            row["description"],
        )
    Console().print(t)
