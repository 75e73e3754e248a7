"""`flowscope` entry point. Commands parse options and call the library; no logic here."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from flowscope import __version__
from flowscope.cli import config as config_cmd
from flowscope.cli import demo as demo_cmd
from flowscope.cli import flows as flows_cmd
from flowscope.cli import interfaces as interfaces_cmd
from flowscope.cli import kdd as kdd_cmd
from flowscope.cli import lab as lab_cmd
from flowscope.cli import models as models_cmd
from flowscope.cli import run as run_cmd
from flowscope.cli import train as train_cmd
from flowscope.errors import FlowscopeError

app = typer.Typer(
    name="flowscope",
    help="Real-time network traffic classifier: flows, features, verdicts, alerts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("flows")(flows_cmd.flows)
app.command("interfaces")(interfaces_cmd.interfaces)
app.add_typer(lab_cmd.lab_app)
app.command("label")(lab_cmd.label)
app.add_typer(models_cmd.models_app)
app.command("train")(train_cmd.train)
app.command("evaluate")(train_cmd.evaluate)
app.add_typer(kdd_cmd.kdd_app)
app.add_typer(config_cmd.config_app)
app.command("run")(run_cmd.run)
app.command("analyze")(run_cmd.analyze)
app.command("demo")(demo_cmd.demo)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"flowscope {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """flowscope: bidirectional flows with CICFlowMeter-compatible features."""


def main() -> None:
    """Console script: user errors become one line on stderr and exit status 2."""
    try:
        app()
    except FlowscopeError as e:
        print(f"flowscope: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("flowscope: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
