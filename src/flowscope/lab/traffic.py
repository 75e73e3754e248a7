"""Benign traffic generators: real clients with random timing, targets and volumes.

Each generator is a thread that starts client sessions with exponential gaps (mean from
the scenario), from a random client namespace, and logs every session's command,
outcome (HTTP/FTP status, exit code) and times to ``benign.jsonl`` in the run dir, so
tests and users can check the benign side actually worked.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from flowscope.lab.netns import Lab
from flowscope.lab.services import LAB_USER, Secrets

SSH_OPTS = [
    "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5",
]  # fmt: skip

Session = tuple[list[str], float, str | None]  # argv, timeout, stdin


@dataclass
class Context:
    """What generators share: the lab, run facts, a seeded RNG and the log."""

    lab: Lab
    facts: dict[str, object]
    secrets: Secrets
    rng: random.Random
    log: IO[str]
    busy: Callable[[str], bool]  # is this host attacking (± margin) right now?
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    iperf_lock: threading.Lock = field(default_factory=threading.Lock)

    def addr(self, host: str) -> str:
        return self.lab.hosts[host].addr

    def pick_client(self) -> str:
        """Mostly clients; now and then an attacker host (benign outside its windows)."""
        with self.lock:
            clients = [h.name for h in self.lab.hosts.values() if h.role == "client"]
            attackers = [h.name for h in self.lab.hosts.values() if h.role == "attacker"]
            if attackers and self.rng.random() < 0.12:
                a = self.rng.choice(attackers)
                if not self.busy(a):
                    return a
            return self.rng.choice(clients)


def _web_urls(ctx: Context, scheme: str) -> list[str]:
    files: list[str] = list(ctx.facts["web_files"])  # type: ignore[call-overload]
    rng = ctx.rng
    n = rng.choice([1, 1, 1, 2, 3, 5])
    host = "www.lab.test" if rng.random() < 0.5 else ctx.addr("web")
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.65:
            name = rng.choice([f for f in files if f.startswith("small")] + ["index.html"])
        elif r < 0.95:
            name = rng.choice([f for f in files if f.startswith("medium")])
        else:
            name = rng.choice([f for f in files if f.startswith("large")])
        out.append(f"{scheme}://{host}/{name}")
    return out


def gen_http(ctx: Context, scheme: str = "http") -> Session:
    urls = _web_urls(ctx, scheme)
    rate = ctx.rng.choice(["", "", "2M", "10M"])
    if scheme == "http" and len(urls) == 1 and ctx.rng.random() < 0.3:
        return ["wget", "-q", "-O", "/dev/null", "-S", urls[0]], 60, None
    argv = ["curl", "-s", "-k", "-w", "%{http_code}\\n", "--max-time", "60"]
    if rate:
        argv += ["--limit-rate", rate]
    for u in urls:  # several URLs in one curl: one keep-alive connection
        argv += ["-o", "/dev/null", u]
    return argv, 70, None


def gen_https(ctx: Context) -> Session:
    return gen_http(ctx, "https")


def gen_dns(ctx: Context) -> Session:
    rng = ctx.rng
    names: list[str] = list(ctx.facts["dns_names"])  # type: ignore[call-overload]
    name = rng.choice(names) if rng.random() < 0.85 else f"nx{rng.randint(0, 9999)}.lab.test"
    qtype = rng.choice(["A", "A", "A", "AAAA", "MX", "TXT"])
    if qtype in ("MX", "TXT"):
        name = "lab.test"
    argv = ["dig", f"@{ctx.addr('dns')}", "+tries=1", "+time=2", name, qtype]
    if rng.random() < 0.08:
        argv.append("+tcp")
    return argv, 6, None


def gen_ssh(ctx: Context) -> Session:
    rng = ctx.rng
    cmds = [
        "uname -a",
        "ls -la",
        "cat notes.txt",
        "df -h",
        "ps aux",
        "id",
        "head -c 200000 /dev/urandom | base64",
    ]
    script = "; ".join(rng.sample(cmds, rng.randint(1, 4))) + f"; sleep {rng.uniform(0, 4):.1f}"
    key = str(ctx.facts["ssh_key"])
    return ["ssh", *SSH_OPTS, "-i", key, f"{LAB_USER}@{ctx.addr('ssh')}", script], 30, None


def gen_scp(ctx: Context) -> Session:
    key = str(ctx.facts["ssh_key"])
    src = f"{LAB_USER}@{ctx.addr('ssh')}:notes.txt"
    return ["scp", *SSH_OPTS, "-i", key, src, "/dev/null"], 30, None


def gen_ftp(ctx: Context) -> Session:
    files: list[str] = list(ctx.facts["ftp_files"])  # type: ignore[call-overload]
    f = ctx.rng.choice(files)
    url = f"ftp://{LAB_USER}:{ctx.secrets.ftp_password}@{ctx.addr('ftp')}/{f}"
    if ctx.rng.random() < 0.3:
        return ["wget", "-q", "-O", "/dev/null", url], 60, None
    return (
        ["curl", "-s", "-o", "/dev/null", "-w", "%{response_code}\\n", "--max-time", "60", url],
        70,
        None,
    )


def gen_iperf(ctx: Context) -> Session:
    secs = ctx.rng.randint(1, 4)
    bw = ctx.rng.choice(["20M", "50M", "100M"])
    return (
        ["iperf3", "-c", ctx.addr("misc"), "-p", "5201", "-t", str(secs), "-b", bw],
        secs + 15,
        None,
    )


def gen_ping(ctx: Context) -> Session:
    target = ctx.rng.choice(["web", "dns", "ssh", "ftp", "misc", "gw"])
    n = ctx.rng.randint(2, 8)
    return ["ping", "-n", "-q", "-c", str(n), "-i", "0.3", "-W", "1", ctx.addr(target)], n + 5, None


def gen_udp(ctx: Context) -> Session:
    port = ctx.rng.choice([7, 7, 13])
    data = "x" * ctx.rng.randint(1, 400) + "\n"
    return ["socat", "-T", "1", "-", f"UDP4:{ctx.addr('misc')}:{port}"], 5, data


GENERATORS: dict[str, Callable[[Context], Session]] = {
    "http": gen_http,
    "https": gen_https,
    "dns": gen_dns,
    "ssh": gen_ssh,
    "scp": gen_scp,
    "ftp": gen_ftp,
    "iperf": gen_iperf,
    "ping": gen_ping,
    "udp": gen_udp,
}


def _loop(ctx: Context, name: str, mean_gap: float, until: float) -> None:
    gen = GENERATORS[name]
    sessions: list[threading.Thread] = []
    while not ctx.stop.is_set():
        with ctx.lock:
            gap = ctx.rng.expovariate(1.0 / mean_gap)
        if ctx.stop.wait(gap) or time.time() >= until:
            break
        with ctx.lock:
            argv, timeout, stdin = gen(ctx)
        client = ctx.pick_client()
        timeout = min(timeout, max(1.0, until - time.time()))
        t = threading.Thread(
            target=_session, args=(ctx, name, client, argv, timeout, stdin), daemon=True
        )
        t.start()
        sessions.append(t)
        sessions = [s for s in sessions if s.is_alive()]
    for s in sessions:
        s.join(timeout=5)


def _session(
    ctx: Context, name: str, client: str, argv: list[str], timeout: float, stdin: str | None
) -> None:
    if name == "iperf" and not ctx.iperf_lock.acquire(blocking=False):
        return  # iperf3 serves one test at a time
    try:
        t0 = time.time_ns()
        p = ctx.lab.run(client, argv, timeout=timeout, stdin=stdin)
        t1 = time.time_ns()
    finally:
        if name == "iperf":
            ctx.iperf_lock.release()
    out = p.stdout.decode(errors="replace").split()
    rec = {
        "generator": name, "client": client, "client_addr": ctx.addr(client),
        "command": argv, "rc": p.returncode,
        "status": out if name in ("http", "https", "ftp") else None,
        "start_ns": t0, "end_ns": t1,
    }  # fmt: skip
    with ctx.lock:
        ctx.log.write(json.dumps(rec) + "\n")
        ctx.log.flush()


def start_generators(ctx: Context, rates: dict[str, float], until: float) -> list[threading.Thread]:
    """One thread per enabled generator; they end at ``until`` (epoch s) or on stop."""
    threads = []
    for name, gap in rates.items():
        if gap > 0 and name in GENERATORS:
            t = threading.Thread(
                target=_loop, args=(ctx, name, gap, until), name=f"gen-{name}", daemon=True
            )
            t.start()
            threads.append(t)
    return threads


def start_idle_connections(ctx: Context, n: int, work: Path) -> None:
    """Long, mostly idle TCP connections (a line every 10–40 s to the echo server)."""
    for i in range(n):
        client = ctx.rng.choice([h.name for h in ctx.lab.hosts.values() if h.role == "client"])
        pause = ctx.rng.randint(10, 40)
        loop = f"while :; do echo keepalive-{i}; sleep {pause}; done"
        ctx.lab.spawn(client, ["socat", f"SYSTEM:{loop}", f"TCP4:{ctx.addr('misc')}:7"])
