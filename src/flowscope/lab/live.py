"""The lab with a live sensor attached: build once, attack on demand, watch eve.json.

`flowscope lab run` plays a fixed timeline and records a capture; end-to-end tests and
the detection-latency benchmark need the opposite — a lab network that stays up while
`flowscope run -i br0` watches it, benign clients that keep going, and attacks started
one at a time, each timed against the moment its alert appears. :class:`LiveLab` is that
session; it reuses the lab's building blocks (namespaces, servers, generators, attack
command lines) and cleans up on every exit path like the runner does.

The sensor runs in the lab's *switch* namespace on the bridge ``br0``, which sees every
frame of the lab in promiscuous mode (what tcpdump records in a lab run); nothing it
captures or sends leaves the lab's namespaces.
"""

from __future__ import annotations

import contextlib
import json
import random
import secrets as pysecrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

from flowscope.lab import netns
from flowscope.lab.attacks import Plan, plan_attack
from flowscope.lab.netns import Lab, LabError
from flowscope.lab.runner import Interrupted, missing_tools
from flowscope.lab.scenario import Attack, Benign, Scenario
from flowscope.lab.services import Secrets, make_secrets, start_services
from flowscope.lab.traffic import Context, start_generators, start_idle_connections

# Benign load for a live session: the smoke scenario's mix, iperf rarer (a 100 Mbit/s
# bulk transfer is fine for the sensor but steals the CPU the attack tools need).
BENIGN = Benign(
    http=1.0, https=1.5, dns=0.7, ssh=6, scp=12, ftp=8, iperf=40, ping=6, udp=3, idle_connections=2
)


@dataclass
class SeenAlert:
    """One EVE alert event and the wall-clock time this process first read it."""

    seen_ns: int
    event: dict[str, Any]

    @property
    def fs(self) -> dict[str, Any]:
        """The ``flowscope`` object: rule, family, attacker, victim, state…"""
        d: dict[str, Any] = self.event.get("flowscope", {})
        return d


class EveTail:
    """Reads new complete lines of an EVE file as they are flushed; keeps the alerts.

    The sinks flush at least once a second, possibly mid-line: a partial last line is
    kept until its newline arrives, never parsed half-written.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.alerts: list[SeenAlert] = []
        self._pos = 0
        self._partial = b""

    def poll(self) -> list[SeenAlert]:
        """Alerts that appeared since the last poll (also appended to ``alerts``)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                chunk = f.read()
        except FileNotFoundError:
            return []
        now = time.time_ns()
        self._pos += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        new = []
        for line in lines:
            if b'"alert"' not in line:
                continue  # flow events: not needed, and most of the file
            ev = json.loads(line)
            if ev.get("event_type") == "alert":
                new.append(SeenAlert(now, ev))
        self.alerts.extend(new)
        return new

    def wait(
        self, match: Callable[[SeenAlert], bool], deadline_ns: int, interval: float = 0.05
    ) -> SeenAlert | None:
        """The first alert (already read or new) matching ``match`` before the deadline."""
        while True:
            self.poll()
            for a in self.alerts:
                if match(a):
                    return a
            if time.time_ns() >= deadline_ns:
                return None
            time.sleep(interval)


@dataclass
class Sensor:
    """A `flowscope run -i` process in the lab, with its output directory and stderr log."""

    proc: subprocess.Popen[bytes]
    out: Path
    log: Path
    eve: EveTail = field(init=False)

    def __post_init__(self) -> None:
        self.eve = EveTail(self.out / "eve.json")

    def status(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, timeout: float = 90.0) -> None:
        """The first status line is printed once kernels are warm and the capture is open."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "packets" in self.status():
                return
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                raise LabError(f"sensor exited with {rc}: {self.status()[-2000:]}")
            time.sleep(0.2)
        raise LabError(f"sensor did not start within {timeout:.0f} s: {self.status()[-2000:]}")


@dataclass
class RunningAttack:
    """An attack tool running in an attacker namespace, started at ``start_ns``."""

    kind: str
    family: str
    attacker: str  # address
    victim: str  # address
    plan: Plan
    proc: subprocess.Popen[bytes]
    start_ns: int
    timeout: float
    prior: frozenset[str] = frozenset()  # ids of the alerts seen before it started
    end_ns: int = 0

    @property
    def spoofed(self) -> bool:
        return self.plan.spoofed

    def names(self, a: SeenAlert) -> bool:
        """Does the alert name this attack: its family, and its attacker — or, for
        spoofed floods (no attacker to name), its victim with attacker ``spoofed/…``?"""
        fs = a.fs
        if fs.get("family") != self.family:
            return False
        if self.spoofed:
            return fs.get("victim") == self.victim and str(fs.get("attacker", "")).startswith(
                "spoofed"
            )
        return fs.get("attacker") == self.attacker or a.event.get("src_ip") == self.attacker

    def detected_by(self, a: SeenAlert) -> bool:
        """A *new* incident (not one open before the attack) that names this attack."""
        return a.fs.get("id") not in self.prior and self.names(a)


class LiveLab:
    """A lab network with servers, benign clients and a live sensor, as a context manager.

    >>> with LiveLab() as lab:                              # doctest: +SKIP
    ...     sensor = lab.start_sensor(out)
    ...     lab.start_benign(until=time.time() + 120)
    ...     atk = lab.start_attack("syn_scan", victim="web")
    ...     hit = sensor.eve.wait(atk.names, atk.start_ns + 5_000_000_000)

    Needs root and the lab tools (``scripts/system-deps.sh``). Teardown — sensor stopped
    with SIGINT so it writes its final outputs, every lab process killed, namespaces and
    /etc/netns entries deleted — runs on normal exit, exceptions, SIGTERM and SIGHUP.
    """

    def __init__(
        self,
        *,
        clients: int = 3,
        attackers: int = 2,
        seed: int = 5,
        benign: Benign = BENIGN,
        say: Callable[[str], None] = lambda s: None,
    ) -> None:
        self.scenario = Scenario.model_validate(
            {
                "name": "live",
                "duration": 4 * 3600,
                "seed": seed,
                "hosts": {"clients": clients, "attackers": attackers},
            }
        )
        self.benign = benign
        self.rng = random.Random(seed)
        self.say = say
        self.lab = Lab(runid=pysecrets.token_hex(4), subnet_prefix=self.scenario.subnet)
        self.work = netns.STATE_DIR / self.lab.runid
        self.secrets: Secrets = make_secrets(self.rng)
        self.facts: dict[str, object] = {}
        self.ctx: Context | None = None
        self.sensor: Sensor | None = None
        self._busy: set[str] = set()
        self._attack_no = 0
        self._old_handlers: dict[int, Any] = {}
        self._logs: list[IO[str]] = []

    # -- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> LiveLab:
        netns.require_root()
        miss = missing_tools()
        if miss:
            raise LabError(f"missing tools: {', '.join(miss)} (run scripts/system-deps.sh as root)")
        netns.cleanup()  # leftovers of runs whose runner died
        if threading.current_thread() is threading.main_thread():

            def on_signal(signum: int, frame: FrameType | None) -> None:
                raise Interrupted(signal.Signals(signum).name)

            for s in (signal.SIGTERM, signal.SIGHUP):
                self._old_handlers[s] = signal.signal(s, on_signal)
        try:
            self.lab.build(self.scenario.host_table())
            self.work.mkdir(parents=True, exist_ok=True)
            self.facts = start_services(self.lab, self.work, self.rng, self.secrets)
        except BaseException:
            self.close()
            raise
        self.say(f"lab {self.lab.runid}: {len(self.lab.hosts)} hosts, servers listening")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop benign clients and the sensor (SIGINT: final flush), then tear the lab down."""
        try:
            if self.ctx is not None:
                self.ctx.stop.set()
            if self.sensor is not None and self.sensor.proc.poll() is None:
                self.lab.stop(self.sensor.proc, sig=signal.SIGINT, grace=20.0)
        finally:
            self.lab.teardown()
            for fh in self._logs:
                fh.close()
            shutil.rmtree(self.work, ignore_errors=True)
            for s, h in self._old_handlers.items():
                signal.signal(s, h)
            self._old_handlers.clear()

    def addr(self, host: str) -> str:
        return self.lab.hosts[host].addr

    # -- sensor ----------------------------------------------------------------------

    def start_sensor(
        self, out: Path, args: Sequence[str] = (), status_every: float = 1.0, iface: str = "br0"
    ) -> Sensor:
        """Start `flowscope run -i br0 -o OUT ARGS` in the switch namespace (not waited for)."""
        out.mkdir(parents=True, exist_ok=True)
        log = out / "sensor.stderr"
        argv = [
            sys.executable, "-m", "flowscope", "run", "-i", iface, "-o", str(out),
            "--status-every", str(status_every), *args,
        ]  # fmt: skip
        with open(log, "wb") as err, open(out / "sensor.stdout", "wb") as so:
            proc = self.lab.spawn("switch", argv, stdout=so, stderr=err)
        self.sensor = Sensor(proc, out, log)
        return self.sensor

    def stop_sensor(self, grace: float = 30.0) -> int | None:
        """SIGINT the sensor and wait for its final flush; returns its exit status."""
        if self.sensor is None:
            return None
        self.lab.stop(self.sensor.proc, sig=signal.SIGINT, grace=grace)
        return self.sensor.proc.poll()

    # -- traffic ---------------------------------------------------------------------

    def start_benign(self, until: float, log: Path | None = None) -> Context:
        """Benign generators (``self.benign``) until ``until`` (epoch s); attacker hosts
        pause while one of their attacks runs."""
        fh = open(log or self.work / "benign.jsonl", "w")  # noqa: SIM115 - closed in close()
        self._logs.append(fh)
        self.ctx = Context(
            lab=self.lab,
            facts=self.facts,
            secrets=self.secrets,
            rng=self.rng,
            log=fh,
            busy=lambda h: h in self._busy,
        )
        start_idle_connections(self.ctx, self.benign.idle_connections, self.work)
        rates = {k: v for k, v in self.benign.model_dump().items() if k != "idle_connections"}
        start_generators(self.ctx, rates, until=until)
        return self.ctx

    def start_attack(
        self,
        kind: str,
        *,
        attacker: str = "a1",
        victim: str = "web",
        intensity: str = "medium",
        duration: float = 10.0,
        valid_password: bool = True,
    ) -> RunningAttack:
        """Start one attack tool now (``plan_attack``'s command line) without waiting."""
        self._attack_no += 1
        aid = f"L{self._attack_no:03d}"
        a = Attack.model_validate(
            {
                "kind": kind,
                "at": 0,
                "duration": duration,
                "intensity": intensity,
                "attacker": attacker,
                "victim": victim,
                "valid_password": valid_password,
            }
        )
        plan = plan_attack(a, self.lab, self.work, self.secrets, self.rng, aid)
        prior: frozenset[str] = frozenset()
        if self.sensor is not None:
            self.sensor.eve.poll()
            prior = frozenset(str(x.fs.get("id")) for x in self.sensor.eve.alerts)
        self._busy.add(attacker)
        start = time.time_ns()
        proc = self.lab.spawn(attacker, plan.argv, cwd=str(self.work))
        return RunningAttack(
            kind, a.family, self.addr(attacker), plan.victim, plan, proc, start, duration, prior
        )

    def finish_attack(self, atk: RunningAttack, kill: bool = False) -> None:
        """Wait for the tool (up to its duration), or stop it now with ``kill``."""
        remaining = atk.timeout - (time.time_ns() - atk.start_ns) / 1e9
        if not kill:
            with contextlib.suppress(subprocess.TimeoutExpired):
                atk.proc.wait(timeout=max(0.0, remaining))
        if atk.proc.poll() is None:
            self.lab.stop(atk.proc, sig=signal.SIGINT, grace=1.0)
        atk.end_ns = time.time_ns()
        host = next(h.name for h in self.lab.hosts.values() if h.addr == atk.attacker)
        self._busy.discard(host)
