"""Run the dashboard's uvicorn server in a background thread of the sensor process.

The sensor owns the main thread (signals, Ctrl-C); the web server is a guest. uvicorn
only installs signal handlers in the main thread, so in this thread it does not, and
:meth:`DashboardServer.stop` ends it by its ``should_exit`` flag.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from types import FrameType

import uvicorn
from fastapi import FastAPI

from flowscope.errors import FlowscopeError
from flowscope.web.app import DashboardState, create_app
from flowscope.web.control import SensorController
from flowscope.web.security import SecurityPolicy, resolve_token


class DashboardServer:
    """uvicorn serving ``app`` on ``host:port`` from a daemon thread."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 5001) -> None:
        self.host = host
        self.port = port
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False,
            ws="websockets-sansio", lifespan="off", ws_max_size=64 * 1024,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self, timeout: float = 15.0) -> None:
        """Bind and serve; a bind failure is a one-line :class:`FlowscopeError`."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as e:
            sock.close()
            raise FlowscopeError(
                f"dashboard cannot listen on {self.host}:{self.port}: {e.strerror or e}"
                " (--web-port, --web-host or --no-web)"
            ) from None
        sock.listen(128)
        sock.set_inheritable(True)
        self.port = sock.getsockname()[1]  # port 0: the one the kernel chose
        self._sock = sock
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name="dashboard", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise FlowscopeError("the dashboard server did not start")
            time.sleep(0.02)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask uvicorn to exit (open WebSockets are closed) and wait for it."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self.server.force_exit = True
                self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()


class Dashboard:
    """Controller + app + server: what ``flowscope run`` and ``flowscope demo`` start.

    ``token``: the configured one ("" = none); off loopback one is generated and
    :attr:`url` carries it so the printed address logs the browser in.
    """

    def __init__(
        self,
        controller: SensorController,
        *,
        host: str = "127.0.0.1",
        port: int = 5001,
        token: str = "",
        demo_capture: str | None = None,
        demo_speed: float = 1.0,
    ) -> None:
        self.controller = controller
        tok, self.token_generated = resolve_token(host, token)
        self.policy = SecurityPolicy(bind_host=host, token=tok)
        self.state = DashboardState(
            controller, self.policy, demo_capture=demo_capture, demo_speed=demo_speed
        )
        self.app = create_app(self.state)
        self.server = DashboardServer(self.app, host, port)
        self.serving = False

    @property
    def url(self) -> str:
        """The address to open (with ``?token=`` when a token is required)."""
        base = self.server.url
        if self.host_is_wildcard():
            base = base.replace(self.server.host, socket.gethostname(), 1)
        return f"{base}?token={self.policy.token}" if self.policy.token else base

    def host_is_wildcard(self) -> bool:
        return self.server.host in ("0.0.0.0", "::")

    def start(self) -> None:
        self.server.start()
        self.serving = True

    def close(self) -> None:
        """Stop the sensor (final flush), then the web server."""
        try:
            self.controller.stop()
        finally:
            if self.serving:
                self.server.stop()
                self.serving = False
            self.controller.close()


def wait_for_stop(
    controller: SensorController, duration: float | None = None, *, until_idle: bool = False
) -> bool:
    """Block the main thread until Ctrl-C/SIGTERM, ``duration`` seconds, or (with
    ``until_idle``) the end of the sensor's run. Returns True when interrupted.

    SIGTERM is turned into the same clean stop as the first Ctrl-C.
    """
    stop = threading.Event()
    interrupted = [False]
    old = None
    if threading.current_thread() is threading.main_thread():

        def on_term(signum: int, frame: FrameType | None) -> None:
            interrupted[0] = True
            stop.set()

        old = signal.signal(signal.SIGTERM, on_term)
    t0 = time.monotonic()
    try:
        while not stop.is_set():
            if duration is not None and time.monotonic() - t0 >= duration:
                break
            if until_idle and not controller.running:
                break
            stop.wait(0.1)
    except KeyboardInterrupt:
        interrupted[0] = True
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    return interrupted[0]
