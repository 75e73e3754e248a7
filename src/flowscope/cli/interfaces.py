"""`flowscope interfaces`: the interfaces live capture can listen on."""

from __future__ import annotations

import json as _json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from flowscope.capture.interfaces import any_interface, list_interfaces


def interfaces(
    json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List network interfaces for `flowscope run -i`: state, link type, MTU, addresses."""
    found = list_interfaces()
    if json:
        typer.echo(_json.dumps([i.to_dict() for i in [*found, any_interface()]], indent=2))
        return
    table = Table(title="Network interfaces", title_justify="left")
    table.add_column("Name", no_wrap=True)
    table.add_column("Index", justify="right")
    table.add_column("Type")
    table.add_column("State")
    table.add_column("MTU", justify="right")
    table.add_column("MAC", no_wrap=True)
    table.add_column("Addresses", overflow="fold")
    for i in found:
        kind = i.kind if i.capture_linktype == "ethernet" else f"{i.kind} ({i.capture_linktype})"
        state = i.operstate if i.up else "down"
        addrs = "\n".join([*i.ipv4, *i.ipv6]) or "-"
        table.add_row(i.name, str(i.index), kind, state, str(i.mtu), i.mac or "-", addrs)
    table.add_row("any", "-", "all", "-", "-", "-", "-")
    console = Console()
    console.print(table)
    console.print(
        "Capture needs root or the CAP_NET_RAW capability; see docs/capture.md.",
        style="dim",
    )
