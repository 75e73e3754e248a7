"""`flowscope demo`: the dashboard on a shipped capture with attacks, replayed in a loop.

Thin: the loop and its timeline are :class:`flowscope.web.control.LoopRunner`'s, the
serving is :class:`flowscope.web.server.Dashboard`'s. No root needed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from flowscope.cli.run import (
    ConfigOpt,
    ModelOpt,
    OutputOpt,
    SetOpt,
    WebHostOpt,
    WebPortOpt,
    WebTokenOpt,
    _config,
)
from flowscope.errors import FlowscopeError

DEMO_CAPTURE = "demo.pcap.gz"
FALLBACK_CAPTURE = "sample.pcap"


def demo_capture() -> str:
    """The shipped demo capture (the small sample until the lab's demo exists)."""
    from flowscope.web.app import package_file

    path = package_file(DEMO_CAPTURE) or package_file(FALLBACK_CAPTURE)
    if path is None:
        raise FlowscopeError("no demo capture in this installation (flowscope/data)")
    return path


def demo(
    speed: Annotated[
        float,
        typer.Option("--speed", help="Replay speed factor (1 = recorded speed, 0 = unpaced)."),
    ] = 1.0,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop after this many seconds.")
    ] = None,
    capture: Annotated[
        Path | None, typer.Option("--capture", help="Replay this capture instead.")
    ] = None,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    output: OutputOpt = None,
    sets: SetOpt = None,
    web_host: WebHostOpt = None,
    web_port: WebPortOpt = None,
    web_token: WebTokenOpt = None,
) -> None:
    """Start the dashboard and replay a capture with attacks in a loop (no root needed)."""
    from flowscope.web.control import SensorController
    from flowscope.web.server import Dashboard, wait_for_stop

    if speed < 0:
        raise FlowscopeError("--speed must be ≥ 0")
    out = output if output is not None else Path(tempfile.mkdtemp(prefix="flowscope-demo-"))
    cfg = _config(
        config, model, out, sets,
        **{"web.host": web_host, "web.port": web_port, "web.token": web_token},
    )  # fmt: skip
    path = str(capture) if capture is not None else demo_capture()
    controller = SensorController(cfg)
    dash = Dashboard(
        controller,
        host=cfg.web.host,
        port=cfg.web.port,
        token=cfg.web.token,
        demo_capture=path,
        demo_speed=speed,
    )
    try:
        dash.start()
        print(f"flowscope demo: replaying {Path(path).name} in a loop", file=sys.stderr)
        print(f"flowscope demo: outputs in {out}", file=sys.stderr)
        print(f"flowscope demo: open {dash.url}  (Ctrl-C stops)", file=sys.stderr, flush=True)
        controller.warm()
        dash.state.start_demo()
        wait_for_stop(controller, duration)
    finally:
        dash.close()
    st = controller.status()["counters"]
    print(
        f"flowscope demo: {st['packets']:,} packets, {st['flows']:,} flows, "
        f"{st['malicious']:,} malicious, {st['alerts']:,} alerts",
        file=sys.stderr,
    )
