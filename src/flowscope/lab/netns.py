"""Namespaces, veth pairs, the bridge, lab processes, and cleaning all of it up.

Everything a run creates is named ``fsl-<runid>-<role>`` and recorded in a state file
``/run/flowscope-lab/<runid>.json``. The bridge and the host ends of the veth pairs live
inside a dedicated *switch* namespace, never in the host's own namespace: deleting the
lab's namespaces removes every interface, and no lab address is ever reachable from (or
routed to) a real interface.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from flowscope.errors import FlowscopeError

PREFIX = "fsl-"
STATE_DIR = Path("/run/flowscope-lab")
NETNS_ETC = Path("/etc/netns")  # `ip netns exec` bind-mounts /etc/netns/<ns>/* over /etc
_NS_RE = re.compile(r"^fsl-([0-9a-f]{8})-[a-z0-9]+$")
_PR_SET_PDEATHSIG = 1
_NO_OFFLOAD = ("tx", "off", "sg", "off", "tso", "off", "gso", "off", "gro", "off")


class LabError(FlowscopeError):
    """The lab cannot run (no root, missing tool, namespace setup failed)."""


def require_root() -> None:
    """Namespaces, veths and raw sockets need root: say so in one line instead of failing later."""
    if os.geteuid() != 0:
        raise LabError("the traffic lab needs root (network namespaces, raw sockets): use sudo")


def sh(*args: str, check: bool = True, input: str | None = None) -> str:
    """Run one administrative command (ip, sysctl…) and return its stdout."""
    p = subprocess.run(list(args), capture_output=True, text=True, input=input)
    if check and p.returncode != 0:
        raise LabError(f"{' '.join(args)}: {p.stderr.strip() or f'exit {p.returncode}'}")
    return p.stdout


def _die_with_parent() -> None:
    """preexec: children get SIGKILL when the runner dies, even by SIGKILL (best effort)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Host:
    """One lab host: a namespace with one interface ``eth0`` on the lab bridge."""

    name: str
    ns: str
    addr: str
    role: str  # "server", "client", "attacker", "gateway"


@dataclass
class Lab:
    """A built lab network and the processes started in it (the unit of teardown)."""

    runid: str
    subnet_prefix: str  # e.g. "10.77.0" (a /24)
    hosts: dict[str, Host] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    switch_ns: str = ""

    @property
    def state_file(self) -> Path:
        return STATE_DIR / f"{self.runid}.json"

    def namespaces(self) -> list[str]:
        return [self.switch_ns, *(h.ns for h in self.hosts.values())]

    def save_state(self) -> None:
        """Record what exists *before* creating it, so a killed run can always be cleaned."""
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        state = {
            "runid": self.runid,
            "pid": os.getpid(),
            "pid_start": _start_ticks(os.getpid()),
            "started": time.time(),
            "namespaces": self.namespaces(),
            "pgids": [p.pid for p in self.procs],
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.state_file)

    # -- building ------------------------------------------------------------------

    def build(self, hosts: Sequence[tuple[str, str, str]]) -> None:
        """Create the switch namespace with bridge ``br0`` and one namespace per host.

        ``hosts`` holds (name, last address octet as text, role). Each host gets
        ``10.77.0.x/24`` on eth0 and a route for the rest of the lab range (10.77.0.0/16)
        via the lab gateway host if there is one; no default route anywhere.
        """
        self.switch_ns = f"{PREFIX}{self.runid}-sw"
        for name, octet, role in hosts:
            self.hosts[name] = Host(
                name, f"{PREFIX}{self.runid}-{name}", f"{self.subnet_prefix}.{octet}", role
            )
        self.save_state()
        sw = self.switch_ns
        sh("ip", "netns", "add", sw)
        sh("ip", "-n", sw, "link", "set", "lo", "up")
        sh("ip", "-n", sw, "link", "add", "br0", "type", "bridge", "stp_state", "0")
        # No MAC ageing surprises and no multicast snooping: a plain learning switch.
        sh("ip", "-n", sw, "link", "set", "br0", "type", "bridge", "forward_delay", "0")
        sh("ip", "-n", sw, "link", "set", "br0", "up")
        self.exec_quiet("switch", "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        gw = next((h for h in self.hosts.values() if h.role == "gateway"), None)
        for i, h in enumerate(self.hosts.values()):
            sh("ip", "netns", "add", h.ns)
            port = f"p{i}"
            sh(
                "ip",
                "-n",
                sw,
                "link",
                "add",
                port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                h.ns,
            )
            sh("ip", "-n", sw, "link", "set", port, "master", "br0")
            sh("ip", "-n", sw, "link", "set", port, "up")
            sh("ip", "-n", h.ns, "link", "set", "lo", "up")
            sh("ip", "-n", h.ns, "addr", "add", f"{h.addr}/24", "dev", "eth0")
            sh("ip", "-n", h.ns, "link", "set", "eth0", "up")
            # Wire-sized frames: without this, veth passes 64 KiB TSO/GRO super-frames and
            # the capture's packet counts and sizes would match no real network.
            for host, dev in ((h.name, "eth0"), ("switch", port)):
                self.exec_quiet(host, "ethtool", "-K", dev, *_NO_OFFLOAD)
            # Per-namespace: no ICMP rate limit (fast UDP scans, honest replies).
            self.exec_quiet(h.name, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0")
            # IPv4 only: no link-local IPv6 chatter (MLD, router solicitations) in captures.
            self.exec_quiet(h.name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            if h.role == "gateway":
                # Routes the lab's unused 10.77.x.0/24s to "unreachable" so sweeps over many
                # addresses put real packets on the bridge. Its only interface is eth0 on
                # the lab bridge, so forwarding cannot reach any real network.
                self.exec_quiet(h.name, "sysctl", "-qw", "net.ipv4.ip_forward=1")
                net16 = ".".join(self.subnet_prefix.split(".")[:2]) + ".0.0/16"
                sh("ip", "-n", h.ns, "route", "add", "unreachable", net16, "metric", "100")
            elif gw is not None:
                net16 = ".".join(self.subnet_prefix.split(".")[:2]) + ".0.0/16"
                sh("ip", "-n", h.ns, "route", "add", net16, "via", gw.addr)
        self._write_etc()

    def _write_etc(self) -> None:
        """Per-namespace resolv.conf/hosts (bind-mounted by `ip netns exec`)."""
        dns = next((h for h in self.hosts.values() if h.name == "dns"), None)
        hosts_txt = "127.0.0.1 localhost\n" + "".join(
            f"{h.addr} {h.name}.lab.test {h.name}\n" for h in self.hosts.values()
        )
        for h in self.hosts.values():
            d = self.etc_dir(h.name)
            d.mkdir(parents=True, exist_ok=True)
            (d / "hosts").write_text(hosts_txt)
            if dns is not None:
                (d / "resolv.conf").write_text(
                    f"nameserver {dns.addr}\noptions timeout:1 attempts:1\n"
                )

    def etc_dir(self, host: str) -> Path:
        """Files here replace /etc/<name> for every process run in that host's namespace."""
        return NETNS_ETC / self.hosts[host].ns

    # -- processes -----------------------------------------------------------------

    def ns_of(self, host: str) -> str:
        return self.switch_ns if host == "switch" else self.hosts[host].ns

    def argv(self, host: str, cmd: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns_of(host), *cmd]

    def exec_quiet(self, host: str, *cmd: str) -> None:
        subprocess.run(self.argv(host, cmd), capture_output=True)

    def spawn(
        self,
        host: str,
        cmd: Sequence[str],
        stdout: IO[Any] | int | None = subprocess.DEVNULL,
        stderr: IO[Any] | int | None = subprocess.DEVNULL,
        stdin: IO[Any] | int | None = subprocess.DEVNULL,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a long-lived process in a host's namespace, in its own process group."""
        p = subprocess.Popen(
            self.argv(host, cmd),
            stdout=stdout,
            stderr=stderr,
            stdin=stdin,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.procs.append(p)
        self.save_state()
        return p

    def run(
        self,
        host: str,
        cmd: Sequence[str],
        timeout: float,
        stdin: str | None = None,
        cwd: str | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a short command in a host's namespace; kill its whole group on timeout."""
        p = subprocess.Popen(
            self.argv(host, cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        try:
            out, err = p.communicate(stdin.encode() if stdin is not None else None, timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(p.pid, grace=1.0)
            out, err = p.communicate()
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    def stop(
        self, p: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 3.0
    ) -> None:
        """Stop one process group: ``sig`` first, SIGKILL after ``grace`` seconds."""
        kill_group(p.pid, sig=sig, grace=grace)
        with contextlib.suppress(Exception):
            p.wait(timeout=1)

    def teardown(self) -> None:
        """Stop every lab process, delete the namespaces and the /etc/netns files."""
        for p in reversed(self.procs):
            kill_group(p.pid, grace=2.0)
        cleanup_run(self.runid, self.namespaces())


def kill_group(pgid: int, sig: int = signal.SIGTERM, grace: float = 2.0) -> None:
    """Signal a process group, then SIGKILL it if anything is left after ``grace`` s."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(-pgid, os.WNOHANG)
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def ns_pids(ns: str) -> list[int]:
    """PIDs of all processes whose network namespace is ``ns``."""
    p = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return [int(x) for x in p.stdout.split() if x.isdigit()]


def _kill_ns_processes(namespaces: Sequence[str]) -> None:
    """SIGTERM, then SIGKILL, every process inside the given namespaces (daemons' children too)."""
    for sig, pause in ((signal.SIGTERM, 0.5), (signal.SIGKILL, 0.2), (signal.SIGKILL, 0.2)):
        found = False
        for ns in namespaces:
            for pid in ns_pids(ns):
                found = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        if not found:
            return
        time.sleep(pause)


def existing_lab_namespaces() -> list[str]:
    """Namespaces on this machine that the lab created (``fsl-<8 hex>-<role>``)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if _NS_RE.match(n)]


def cleanup_run(runid: str, namespaces: Sequence[str]) -> None:
    """Remove one run's processes, namespaces, /etc/netns entries, work dir and state file."""
    _kill_ns_processes(namespaces)
    for ns in namespaces:
        if ns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            etc = NETNS_ETC / ns
            if etc.is_dir():
                shutil.rmtree(etc, ignore_errors=True)
    shutil.rmtree(STATE_DIR / runid, ignore_errors=True)  # the run's work dir
    with contextlib.suppress(FileNotFoundError):
        (STATE_DIR / f"{runid}.json").unlink()


def _start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot): a pid plus this names one
    process for good, whatever its command line (a benchmark script drives labs too)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int, start: int | None = None) -> bool:
    if start is not None:
        return _start_ticks(pid) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie or a recycled pid that is not a flowscope runner does not count
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"flowscope" in cmdline or b"pytest" in cmdline or b"lab" in cmdline


def cleanup(include_live: bool = False) -> list[str]:
    """Remove leftovers of earlier runs whose runner is gone; return the run ids removed.

    Only lab objects are touched: runs listed under /run/flowscope-lab, and namespaces
    named ``fsl-<8 hex>-…`` (with their /etc/netns directories). A run whose runner
    process is still alive is left alone unless ``include_live``.
    """
    removed: list[str] = []
    live: set[str] = set()
    if STATE_DIR.is_dir():
        for f in sorted(STATE_DIR.glob("*.json")):
            try:
                st = json.loads(f.read_text())
            except (OSError, ValueError):
                f.unlink(missing_ok=True)
                continue
            runid = str(st.get("runid", f.stem))
            start = st.get("pid_start")
            if not include_live and _alive(int(st.get("pid", 0)), start):
                live.add(runid)
                continue
            for pg in st.get("pgids", []):
                kill_group(int(pg), sig=signal.SIGKILL, grace=0.2)
            cleanup_run(runid, list(st.get("namespaces", [])))
            removed.append(runid)
    orphans: dict[str, list[str]] = {}
    for ns in existing_lab_namespaces():
        m = _NS_RE.match(ns)
        assert m is not None
        if m.group(1) not in live:
            orphans.setdefault(m.group(1), []).append(ns)
    if NETNS_ETC.is_dir():
        for d in NETNS_ETC.iterdir():
            m = _NS_RE.match(d.name)
            if m and m.group(1) not in live:
                orphans.setdefault(m.group(1), []).append(d.name)
    for runid, names in orphans.items():
        cleanup_run(runid, names)
        if runid not in removed:
            removed.append(runid)
    return removed
