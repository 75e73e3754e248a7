"""`flowscope run` (live sensor or replay) and `flowscope analyze` (capture files, offline).

Thin: options become a configuration, the work is :mod:`flowscope.sensor`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flowscope.errors import FlowscopeError

if TYPE_CHECKING:
    from flowscope.capture.live import LiveCapture
    from flowscope.config import Config
    from flowscope.sensor.pipeline import Pipeline

# The sensor's modules (numba, pandas, the model runtime) are imported inside the
# commands: every `flowscope` invocation imports this module to register them.

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML file (default: $FLOWSCOPE_CONFIG if set)."),
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", "-m", help="Model bundle: a name or a path.")
]
OutputOpt = Annotated[
    Path | None, typer.Option("-o", "--output", help="Output directory (logs, eve.json, db).")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a setting: section.key=value (repeatable)."),
]
WebHostOpt = Annotated[
    str | None, typer.Option("--web-host", help="Dashboard address (default 127.0.0.1).")
]
WebPortOpt = Annotated[
    int | None, typer.Option("--web-port", help="Dashboard port (default 5001).")
]
WebTokenOpt = Annotated[
    str | None,
    typer.Option("--web-token", help="Dashboard token (off loopback one is generated)."),
]


def _config(
    config: Path | None, model: str | None, output: Path | None, sets: list[str] | None,
    **extra: object,
) -> Config:  # fmt: skip
    from flowscope.config import load_config, parse_set_options

    overrides: dict[str, object] = dict(parse_set_options(sets or []))
    overrides.update({"model.bundle": model, "outputs.directory": output})
    overrides.update(extra)
    return load_config(config, overrides=overrides)


def _check_captures(paths: list[Path]) -> None:
    """Fail with one line before anything is started or written."""
    from flowscope.capture import open_capture

    for p in paths:
        open_capture(p).close()


def _finish(pipeline: Pipeline, quiet: bool) -> None:
    from flowscope.sensor.status import summary_lines

    if quiet:
        return
    alerts = sorted(pipeline.alerts.values(), key=lambda a: a.first_seen)
    out = sys.stdout
    for line in summary_lines(pipeline.status(), alerts):
        print(line, file=out)
    print(f"outputs   {pipeline.config.outputs.directory}", file=out)


def run(
    interface: Annotated[
        str | None, typer.Option("-i", "--interface", help="Capture live on this interface.")
    ] = None,
    read: Annotated[
        list[Path] | None,
        typer.Option("-r", "--read", help="Replay a capture file through the live path."),
    ] = None,
    bpf_filter: Annotated[
        str | None, typer.Option("--filter", help="BPF filter (tcpdump syntax).")
    ] = None,
    tcp_only: Annotated[bool, typer.Option("--tcp-only", help="Capture TCP only.")] = False,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Replay at the pace of packet timestamps.")
    ] = False,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    output: OutputOpt = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop after this many seconds.")
    ] = None,
    status_every: Annotated[
        float, typer.Option("--status-every", help="Seconds between status lines (0 = none).")
    ] = 5.0,
    sets: SetOpt = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No closing summary.")] = False,
    web: Annotated[
        bool | None,
        typer.Option(
            "--web/--no-web",
            help="Serve the dashboard (default: on for live capture -i).",
        ),
    ] = None,
    web_host: WebHostOpt = None,
    web_port: WebPortOpt = None,
    web_token: WebTokenOpt = None,
) -> None:
    """Run the sensor: classify flows live (-i) or replay a capture (-r); Ctrl-C stops.

    Live capture serves the dashboard (http://127.0.0.1:5001) unless --no-web; with
    --web and no -i/-r the sensor starts idle and is started from the browser."""
    cfg = _config(
        config, model, output, sets,
        **{"capture.interface": interface, "capture.bpf": bpf_filter, "web.host": web_host,
           "web.port": web_port, "web.token": web_token},
    )  # fmt: skip
    iface = cfg.capture.interface
    if read and interface:
        raise FlowscopeError("give either -i INTERFACE or -r CAPTURE, not both")
    serve = web if web is not None else bool(iface) and not read
    if serve:
        _run_with_dashboard(cfg, read, tcp_only, realtime, duration, status_every, quiet)
        return
    if not read and not iface:
        raise FlowscopeError(
            "nothing to capture: give -i INTERFACE or -r CAPTURE"
            " (or --web to choose one in the dashboard)"
        )
    if read and (tcp_only or bpf_filter):
        raise FlowscopeError("--filter and --tcp-only apply to live capture (-i)")
    if realtime and not read:
        raise FlowscopeError("--realtime applies to replay (-r)")
    from flowscope.models.classify import load_detector
    from flowscope.sensor.capture import open_live
    from flowscope.sensor.pipeline import Pipeline, warm_detector
    from flowscope.sensor.runner import Runner, warm_up

    detector = load_detector(cfg.model.bundle)
    if read:
        _check_captures(read)
    warm_up()  # every kernel compiled, the explainer loaded, before the capture opens
    warm_detector(detector, cfg.model.explain_top_k)
    cap: LiveCapture | None = None
    if not read:
        cap = open_live(cfg.capture, iface, bpf_filter=cfg.capture.bpf, tcp_only=tcp_only)
    try:
        pipeline = Pipeline(cfg, detector=detector)
    except BaseException:
        if cap is not None:
            cap.close()
        raise
    runner = Runner(pipeline, status_every=status_every)
    if cap is not None:
        runner.run_live(cap, duration=duration)
    else:
        runner.run_replay([str(p) for p in read or []], realtime=realtime, duration=duration)
    _finish(pipeline, quiet)


def _run_with_dashboard(
    cfg: Config,
    read: list[Path] | None,
    tcp_only: bool,
    realtime: bool,
    duration: float | None,
    status_every: float,
    quiet: bool,
) -> None:
    """`flowscope run` with the dashboard: the sensor runs under a SensorController."""
    from flowscope.models.classify import load_detector
    from flowscope.sensor.capture import open_live
    from flowscope.sensor.pipeline import warm_detector
    from flowscope.sensor.runner import warm_up
    from flowscope.web.control import SensorController
    from flowscope.web.server import Dashboard, wait_for_stop

    if read and (tcp_only or cfg.capture.bpf):
        raise FlowscopeError("--filter and --tcp-only apply to live capture (-i)")
    if realtime and not read:
        raise FlowscopeError("--realtime applies to replay (-r)")
    if read:
        _check_captures(read)
    detector = load_detector(cfg.model.bundle)
    iface = cfg.capture.interface
    cap: LiveCapture | None = None
    if iface and not read:
        # Open the capture before anything is written, so its errors leave no outputs;
        # warm the kernels before it opens: a compile would stall it.
        warm_up()
        warm_detector(detector, cfg.model.explain_top_k)
        cap = open_live(cfg.capture, iface, bpf_filter=cfg.capture.bpf, tcp_only=tcp_only)
    try:
        controller = SensorController(
            cfg, detector=detector, status_every=status_every, status_out=sys.stderr
        )
    except BaseException:
        if cap is not None:
            cap.close()
        raise
    dash = Dashboard(controller, host=cfg.web.host, port=cfg.web.port, token=cfg.web.token)
    try:
        try:
            dash.start()
        except FlowscopeError as e:
            if not (read or iface):
                raise
            # The sensor matters more than its dashboard: carry on without it.
            print(f"flowscope: warning: {e}; running without it", file=sys.stderr)
        else:
            print(f"flowscope: dashboard at {dash.url}", file=sys.stderr, flush=True)
        controller.warm()
        if read:
            controller.start_replay([str(p) for p in read], realtime=realtime)
        elif cap is not None:
            controller.start_open_live(cap, iface, cfg.capture.bpf)
            cap = None
        # Without the dashboard nothing could start another run: stop with this one.
        wait_for_stop(controller, duration, until_idle=not dash.serving)
    finally:
        if cap is not None:
            cap.close()
        dash.close()
    if controller.last_pipeline is not None:
        _finish(controller.last_pipeline, quiet)
    if controller.error:
        raise FlowscopeError(controller.error)


def analyze(
    captures: Annotated[list[Path], typer.Argument(help="pcap/pcapng files (gzip welcome).")],
    config: ConfigOpt = None,
    model: ModelOpt = None,
    output: OutputOpt = None,
    sets: SetOpt = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No summary.")] = False,
) -> None:
    """Classify capture files offline: the sensor's outputs, then a summary."""
    from flowscope.models.classify import load_detector
    from flowscope.sensor.pipeline import Pipeline, warm_detector
    from flowscope.sensor.runner import Runner, warm_up

    cfg = _config(config, model, output, sets)
    detector = load_detector(cfg.model.bundle)
    _check_captures(captures)
    warm_up()
    warm_detector(detector, cfg.model.explain_top_k)
    pipeline = Pipeline(cfg, detector=detector)
    Runner(pipeline, status_every=0).run_replay([str(p) for p in captures])
    _finish(pipeline, quiet)
