"""One lab run: build the network, capture, play the timeline, tear down, write outputs.

Teardown runs on every exit path (normal end, Ctrl-C, SIGTERM/SIGHUP, exceptions).
A SIGKILL cannot be caught: then the state file under /run/flowscope-lab lets
`flowscope lab cleanup` (and the next `lab run`) remove everything the run made.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import platform
import random
import secrets as pysecrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

from flowscope.lab import netns
from flowscope.lab.attacks import Plan, plan_attack
from flowscope.lab.netns import Lab, LabError
from flowscope.lab.scenario import Attack, Scenario
from flowscope.lab.services import make_secrets, start_services, tool_versions
from flowscope.lab.traffic import Context, start_generators, start_idle_connections

TOOLS = (
    "ip", "ethtool", "tcpdump", "nginx", "dnsmasq", "sshd", "ssh", "scp", "ssh-keygen", "curl",
    "wget", "dig", "iperf3", "socat", "ping", "ss", "openssl", "nmap", "hping3", "hydra",
    "slowhttptest", "ab",
)  # fmt: skip
LABEL_FIELDS = (
    "attack_id", "kind", "family", "intensity", "attacker", "attacker_addr", "victim",
    "victim_addr", "victim_ports", "protocol", "spoofed", "start_ns", "end_ns",
    "start_iso", "end_iso", "exit_code", "timed_out", "command",
)  # fmt: skip
BUSY_MARGIN = 3.0  # s: attacker hosts make no benign traffic this close to their windows


class Interrupted(Exception):
    """A signal asked the run to stop; unwinds to the teardown."""


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="microseconds")


@dataclass
class RunResult:
    out: Path
    runid: str
    seconds: float
    attacks: int
    packets_captured: int
    packets_dropped: int


def run_scenario(
    sc: Scenario,
    out: Path,
    seed: int | None = None,
    say: Callable[[str], None] = print,
    time_scale: float = 1.0,
) -> RunResult:
    """Run ``sc`` and write capture.pcap, labels.csv, scenario.json, benign.jsonl to ``out``.

    ``time_scale`` < 1 shrinks the scenario's clock (duration and attack times) for quick
    trial runs of long scenarios.
    """
    netns.require_root()
    miss = missing_tools()
    if miss:
        raise LabError(f"missing tools: {', '.join(miss)} (run scripts/system-deps.sh as root)")
    netns.cleanup()  # leftovers of runs whose runner died
    seed = sc.seed if seed is None else seed
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("capture.pcap", "labels.csv", "scenario.json", "benign.jsonl", "attacks.log"):
        (out / stale).unlink(missing_ok=True)
    runid = pysecrets.token_hex(4)
    work = netns.STATE_DIR / runid
    lab = Lab(runid=runid, subnet_prefix=sc.subnet)
    t_start = time.monotonic()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    labels: list[dict[str, object]] = []
    cap_stats = (0, 0)
    tcpdump: subprocess.Popen[bytes] | None = None
    ctx: Context | None = None
    try:
        lab.build(sc.host_table())
        work.mkdir(parents=True, exist_ok=True)
        say(
            f"lab {runid}: {len(lab.hosts)} hosts on {sc.subnet}.0/24, "
            f"scenario {sc.name!r}, seed {seed}"
        )
        cap_err = open(work / "tcpdump.err", "wb")  # noqa: SIM115
        tcpdump = lab.spawn(
            "switch",
            # niced up: when tools briefly saturate the CPU, the capture keeps up
            ["nice", "-n", "-10", "tcpdump", "-i", "br0", "-n", "-s", str(sc.snaplen),
             "-B", "65536", "-U", "-Z", "root", "--time-stamp-precision=nano",
             "-w", str(out / "capture.pcap")],
            stderr=cap_err,
        )  # fmt: skip
        _wait_for(
            lambda: b"listening on" in (work / "tcpdump.err").read_bytes(),
            10,
            "tcpdump did not start",
        )
        secrets = make_secrets(rng)
        facts = start_services(lab, work, rng, secrets)

        duration = sc.duration * time_scale
        plans = []
        for i, a in enumerate(sc.attacks):
            aid = f"A{i + 1:03d}"
            plans.append((aid, a, plan_attack(a, lab, work, secrets, rng, aid)))
        t0 = time.time()
        windows = {
            (
                a.attacker,
                t0 + a.at * time_scale - BUSY_MARGIN,
                t0 + (a.at + a.duration) * time_scale + BUSY_MARGIN,
            )
            for _, a, _ in plans
        }

        def busy(host: str) -> bool:
            now = time.time()
            return any(h == host and lo <= now <= hi for h, lo, hi in windows)

        log = open(out / "benign.jsonl", "w")  # noqa: SIM115
        ctx = Context(lab=lab, facts=facts, secrets=secrets, rng=rng, log=log, busy=busy)
        start_idle_connections(ctx, sc.benign.idle_connections, work)
        rates = {k: v for k, v in sc.benign.model_dump().items() if k != "idle_connections"}
        gens = start_generators(ctx, rates, until=t0 + duration)
        say(f"traffic for {duration:.0f} s, {len(plans)} attacks")

        alog = open(out / "attacks.log", "w")  # noqa: SIM115
        alock = threading.Lock()
        athreads = []
        for aid, a, plan in plans:
            job = _AttackJob(
                aid, a, plan, t0 + a.at * time_scale, a.duration * max(time_scale, 0.2)
            )
            t = threading.Thread(
                target=_fire, args=(job, lab, work, ctx.stop, labels, alog, alock, say), daemon=True
            )
            t.start()
            athreads.append(t)

        while time.time() < t0 + duration:
            time.sleep(0.2)
        for t in athreads:
            t.join(timeout=max(5.0, max((a.duration for _, a, _ in plans), default=0) + 10))
        ctx.stop.set()
        for t in gens:
            t.join(timeout=15)
        log.close()
        alog.close()
        time.sleep(1.0)  # last packets (FIN/ACK, retransmissions) reach the capture
    finally:
        if ctx is not None:
            ctx.stop.set()
        if tcpdump is not None:
            lab.stop(tcpdump, sig=signal.SIGINT, grace=5.0)
            cap_stats = _tcpdump_stats(work / "tcpdump.err")
        lab.teardown()
        shutil.rmtree(work, ignore_errors=True)
        for s, h in old.items():
            signal.signal(s, h)
    labels.sort(key=lambda r: str(r["attack_id"]))
    _write_labels(out / "labels.csv", labels)
    resolved = sc.model_dump(by_alias=True)
    info = {
        "scenario": resolved,
        "seed": seed,
        "runid": runid,
        "time_scale": time_scale,
        "started": _iso(int(t0 * 1e9)),
        "hosts": {h.name: {"addr": h.addr, "role": h.role} for h in lab.hosts.values()},
        "subnet": f"{sc.subnet}.0/24",
        "capture": {"packets": cap_stats[0], "dropped_by_kernel": cap_stats[1]},
        "tool_versions": tool_versions(),
        "kernel": platform.release(),
    }
    (out / "scenario.json").write_text(json.dumps(info, indent=2) + "\n")
    return RunResult(out, runid, time.monotonic() - t_start, len(labels), *cap_stats)


@dataclass
class _AttackJob:
    aid: str
    attack: Attack
    plan: Plan
    at: float  # epoch seconds
    timeout: float


def _fire(
    job: _AttackJob,
    lab: Lab,
    work: Path,
    stop: threading.Event,
    labels: list[dict[str, object]],
    alog: TextIO,
    alock: threading.Lock,
    say: Callable[[str], None],
) -> None:
    """Wait for the attack's time, run the tool with its deadline, record the window."""
    a, plan = job.attack, job.plan
    if stop.wait(max(0.0, job.at - time.time())):
        return
    s = time.time_ns()
    p = lab.run(a.attacker, plan.argv, timeout=job.timeout, cwd=str(work))
    e = time.time_ns()
    timed_out = (e - s) / 1e9 >= job.timeout - 0.05
    row = {
        "attack_id": job.aid, "kind": a.kind, "family": a.family, "intensity": a.intensity,
        "attacker": a.attacker, "attacker_addr": lab.hosts[a.attacker].addr,
        "victim": a.victim if a.kind != "ping_sweep" else plan.victim,
        "victim_addr": plan.victim, "victim_ports": " ".join(map(str, plan.victim_ports)),
        "protocol": plan.protocol, "spoofed": int(plan.spoofed),
        "start_ns": s, "end_ns": e, "start_iso": _iso(s), "end_iso": _iso(e),
        "exit_code": p.returncode, "timed_out": int(timed_out), "command": plan.command,
    }  # fmt: skip
    with alock:
        labels.append(row)
        alog.write(f"== {job.aid} {a.kind} rc={p.returncode} {plan.command}\n")
        alog.write(p.stdout.decode(errors="replace")[-4000:])
        alog.write(p.stderr.decode(errors="replace")[-2000:] + "\n")
        alog.flush()
    end = " (deadline)" if timed_out else ""
    say(f"  {job.aid} {a.kind:<20} {a.intensity:<6} {(e - s) / 1e9:6.1f} s  rc={p.returncode}{end}")


def _wait_for(cond: Callable[[], bool], timeout: float, msg: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise LabError(msg)


def _tcpdump_stats(err: Path) -> tuple[int, int]:
    captured = dropped = 0
    try:
        for line in err.read_text(errors="replace").splitlines():
            words = line.split()
            if "captured" in line and words:
                captured = int(words[0])
            elif "dropped by kernel" in line and words:
                dropped = int(words[0])
    except (OSError, ValueError):
        pass
    return captured, dropped


def _write_labels(path: Path, rows: list[dict[str, object]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LABEL_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow(r)
