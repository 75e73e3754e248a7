"""Detection latency: from an attack's first packet to the sensor's first alert about it.

What it does (root; the lab tools of scripts/system-deps.sh):

1. Builds one traffic-lab network (src/flowscope/lab/live.py: namespaces, bridge,
   nginx, sshd, dnsmasq, pyftpdlib, benign clients running throughout) and records the
   bridge with tcpdump.
2. For each mode — early verdicts **off** (``flows.early_verdict_interval=0``: verdicts,
   hence rule input, only when flows end) and **on** (the product defaults: snapshots of
   the open flows every second of capture time) — starts ``flowscope run -i br0`` in
   the lab and runs every attack kind below once, one after the other, from attacker
   namespaces with the lab's real tools (nmap, hping3, patator, hydra, slowhttptest).
   A watcher per attack waits (up to ``--wait`` s) for the first *new* alert of the
   expected rule naming its attacker and victim (spoofed floods: its victim) and
   records the **live** latency: wall clock from the tool's start to the alert being
   readable in eve.json (what an analyst tailing the EVE file experiences; includes
   processing and the sinks' ≤ 1 s flush).
3. Replays the recording of the *off* run through the sensor's replay path
   (``flowscope run -r``, built in this process) in both modes and records the
   **replay** latency: the capture time at which the rule engine raised the alert
   (``AlertEvent.at``) minus the tool's start — the detection itself, without
   processing or output delays. Same packets in both modes, so the two replay columns
   differ only by the early verdicts.
4. Writes its section between ``<!-- bench_latency:start -->`` and
   ``<!-- bench_latency:end -->`` in docs/benchmarks.md (the rest of the file is kept).

Attacks run sequentially with distinct (attacker, victim) pairs per rule, so each opens
its own incident; the watchers run concurrently, so an alert that only comes with the
idle timeout (120 s) does not hold up the next attack.

    sudo .venv/bin/python benchmarks/bench_latency.py [--wait 200] [--no-write-docs]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from docs_section import write_section

if TYPE_CHECKING:
    from flowscope.detect import AlertEvent

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "benchmarks.md"
MARK_START = "<!-- bench_latency:start -->"
MARK_END = "<!-- bench_latency:end -->"
MODES = {"off": ["--set", "flows.early_verdict_interval=0"], "on": []}


@dataclass(frozen=True)
class Kind:
    """One attack of the benchmark, where it is aimed and the rule that should see it."""

    kind: str
    attacker: str
    victim: str
    rule: str
    tool: str
    intensity: str = "medium"
    duration: float = 8.0
    valid_password: bool = True


# Distinct (attacker, victim) per rule key; no host is scanned shortly before it is
# flooded (a scan's ports in the window dilute the flood's per-port test, see docs).
KINDS = (
    Kind("syn_scan", "a1", "ftp", "port_scan", "nmap -sS"),
    Kind("connect_scan", "a2", "misc", "port_scan", "nmap -sT"),
    Kind("udp_scan", "a3", "dns", "port_scan", "nmap -sU"),
    Kind("syn_flood", "a1", "web", "syn_flood", "hping3 -S"),
    Kind("syn_flood_spoofed", "a2", "misc", "syn_flood", "hping3 -S --rand-source"),
    Kind("udp_flood", "a3", "misc", "udp_flood", "hping3 --udp"),
    Kind("icmp_flood", "a1", "ssh", "icmp_flood", "hping3 --icmp"),
    Kind("ssh_bruteforce", "a2", "ssh", "bruteforce", "patator ssh_login"),
    Kind("ftp_bruteforce", "a3", "ftp", "bruteforce", "hydra ftp", "high", 20.0, False),
    Kind("slowloris", "a1", "web", "slow_dos", "slowhttptest -H", duration=40.0),
)
# EVE rotation off: the benchmark reads each eve.json whole afterwards (no effect on
# detection).
COMMON = ["--set", "outputs.rotate_size=0"]


@dataclass
class Result:
    """Latencies of one attack in one mode (None: no alert within the wait)."""

    kind: str
    mode: str
    rule: str
    start_ns: int
    attacker: str
    victim: str
    spoofed: bool
    family: str
    alert_id: str = ""
    live_wall_s: float | None = None
    replay_capture_s: float | None = None
    message: str = ""


@dataclass
class Run:
    mode: str
    results: list[Result] = field(default_factory=list)
    status: str = ""
    seconds: float = 0.0


def _names(r: Result, fs: dict[str, object], src: object) -> bool:
    if fs.get("rule") != r.rule or fs.get("family") != r.family:
        return False
    if r.spoofed:
        return fs.get("victim") == r.victim and str(fs.get("attacker", "")).startswith("spoofed")
    return r.attacker in (fs.get("attacker"), src) and fs.get("victim") in (r.victim, "many")


def live_mode(lab: object, mode: str, out: Path, wait: float, say: bool = True) -> Run:
    """One sensor run in the lab: every attack once, latencies from the live eve.json."""
    from flowscope.lab.live import LiveLab, RunningAttack

    assert isinstance(lab, LiveLab)
    t0 = time.monotonic()
    run = Run(mode)
    sensor = lab.start_sensor(out, [*COMMON, *MODES[mode]])
    sensor.wait_ready()
    time.sleep(5.0)  # benign traffic is flowing through a warm sensor
    lock = threading.Lock()
    watchers: list[threading.Thread] = []

    def watch(atk: RunningAttack, res: Result) -> None:
        deadline = atk.start_ns + int(wait * 1e9)
        while True:
            with lock:  # one reader of the EVE file at a time
                sensor.eve.poll()
                hit = next(
                    (
                        a
                        for a in sensor.eve.alerts
                        if a.fs.get("id") not in atk.prior
                        and _names(res, a.fs, a.event.get("src_ip"))
                    ),
                    None,
                )
            if hit is not None or time.time_ns() >= deadline:
                break
            time.sleep(0.05)
        if hit is None:
            return
        res.alert_id = str(hit.fs.get("id"))
        res.live_wall_s = (hit.seen_ns - atk.start_ns) / 1e9
        res.message = str(hit.fs.get("message"))
        if say:
            print(f"  [{mode}] {res.kind:<18} alert after {res.live_wall_s:6.2f} s", flush=True)

    for k in KINDS:
        with lock:
            atk = lab.start_attack(
                k.kind,
                attacker=k.attacker,
                victim=k.victim,
                intensity=k.intensity,
                duration=k.duration,
                valid_password=k.valid_password,
            )
        res = Result(
            k.kind, mode, k.rule, atk.start_ns, atk.attacker, atk.victim, atk.spoofed, atk.family
        )
        run.results.append(res)
        t = threading.Thread(target=watch, args=(atk, res), daemon=True)
        t.start()
        watchers.append(t)
        # The tool runs its course (a real attack does not stop when noticed), but not
        # longer than needed once the alert is there and the attack is a long one.
        end = atk.start_ns + int(k.duration * 1e9)
        while time.time_ns() < end and atk.proc.poll() is None:
            if res.live_wall_s is not None and time.time_ns() - atk.start_ns > 10e9:
                break
            time.sleep(0.1)
        lab.finish_attack(atk, kill=True)
        time.sleep(3.0)  # answers and retransmissions settle before the next attack
    for t in watchers:
        t.join(timeout=wait + 5)
    run.status = sensor.status()
    lab.stop_sensor()
    run.seconds = time.monotonic() - t0
    return run


def replay(pcap: Path, mode: str, recorded: list[Result], out: Path) -> dict[str, float | None]:
    """Replay the recording through the sensor's live path (``flowscope run -r``, as
    fast as it reads) in ``mode``: capture-time latency per attack kind of the recorded
    run, whose start times the recording's timestamps share.

    Runs the same objects `flowscope run -r` builds, in this process, to read each
    alert's exact capture time of raising (``AlertEvent.at``), which eve.json does not
    carry: its ``timestamp`` is the evidence's newest flow time, long before the alert
    when the flows were released by the idle timeout.
    """
    from flowscope.config import load_config, parse_set_options
    from flowscope.models.classify import load_detector
    from flowscope.sensor.pipeline import Pipeline, warm_detector
    from flowscope.sensor.runner import Runner, warm_up

    t0 = time.monotonic()
    sets = [*COMMON, *MODES[mode]][1::2]  # the values of the --set pairs
    overrides: dict[str, object] = dict(parse_set_options(sets))
    overrides["outputs.directory"] = str(out)
    cfg = load_config(None, overrides=overrides)
    detector = load_detector(cfg.model.bundle)
    warm_up()
    warm_detector(detector, cfg.model.explain_top_k)
    pipeline = Pipeline(cfg, detector=detector)
    raised: list[tuple[int, dict[str, object], object]] = []
    publish = pipeline.publish

    def observe(events: list[AlertEvent]) -> None:
        for ev in events:
            if ev.kind == "new":
                eve = ev.alert.to_eve()
                raised.append((ev.at, eve["flowscope"], eve.get("src_ip")))
        publish(events)

    pipeline.publish = observe  # type: ignore[method-assign]
    Runner(pipeline, status_every=0).run_replay([str(pcap)])
    lat: dict[str, float | None] = {}
    for r in recorded:
        cands = [at for at, fs, src in raised if at >= r.start_ns and _names(r, fs, src)]
        lat[r.kind] = (min(cands) - r.start_ns) / 1e9 if cands else None
    print(f"replay {mode}: {time.monotonic() - t0:.0f} s", flush=True)
    return lat


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Linux {platform.release()}"


def _s(x: float | None, wait: float) -> str:
    return f"{x:.1f}" if x is not None else f"> {wait:.0f}"


def render(
    runs: dict[str, Run], wait: float, load: tuple[str, str], took: float, pcap_info: str
) -> str:
    by = {(r.kind, r.mode): r for run in runs.values() for r in run.results}
    rows = [
        "| attack | tool | alert (rule) | off: live s | off: replay s | on: live s | "
        "on: replay s |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for k in KINDS:
        off, on = by.get((k.kind, "off")), by.get((k.kind, "on"))
        fam = off.family if off is not None else (on.family if on is not None else "?")
        cells = []
        for r in (off, on):
            if r is None:
                cells += ["—", "—"]
            else:
                cells += [_s(r.live_wall_s, wait), _s(r.replay_capture_s, wait)]
        rows.append(f"| {k.kind} | `{k.tool}` | {fam} ({k.rule}) | " + " | ".join(cells) + " |")
    on_live = [r.live_wall_s for r in runs["on"].results] if "on" in runs else []
    within5 = sum(1 for x in on_live if x is not None and x <= 5.0)
    worst = max((x for x in on_live if x is not None), default=float("nan"))
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    atk_lines = "".join(
        f"  - `{k.kind}` {k.intensity} from {k.attacker} at {k.victim}"
        f"{'' if k.valid_password else ', password not in the list'}\n"
        for k in KINDS
    )
    return (
        f"{MARK_START}\n"
        "## Detection latency\n\n"
        "Attack start → first alert, live on a traffic-lab link and replayed, with early "
        "verdicts off and on. Generated by `benchmarks/bench_latency.py`; do not edit this "
        "section by hand.\n\n"
        f"Reproduce (as root; this run took {took / 60:.1f} min):\n\n"
        "```sh\nmake bench-latency   # = .venv/bin/python benchmarks/bench_latency.py\n```\n\n"
        f"- Date: {date}\n"
        f"- Machine: {machine()}; load average {load[0]} before, {load[1]} after "
        "(shared machine; the lab's servers, clients, attack tools and the sensor share "
        "the 2 cores)\n"
        f"- Python {platform.python_version()}; sensor `flowscope run -i br0` in the lab's "
        "switch namespace, default configuration except the mode; benign lab clients "
        "(web, TLS, DNS, SSH, SCP, FTP, ping, UDP, iperf, idle connections) throughout\n"
        "- Modes: **off** = `--set flows.early_verdict_interval=0` (flows reach the rules "
        "when they end: FIN/RST + 1 s grace, else the 120 s idle timeout); **on** = "
        "defaults (open flows that changed are snapshotted every 1 s of capture time)\n"
        f"- Replay: the off run's recording ({pcap_info}) through `flowscope run -r` "
        "in each mode\n"
        "- Attacks, one after the other, each tool's own default pacing at the lab's "
        "intensity (src/flowscope/lab/attacks.py):\n"
        f"{atk_lines}"
        f"- **Early verdicts on, live: {within5}/{len(on_live)} attacks alerted within "
        f"5 s of the tool's start (slowest {worst:.1f} s)**\n\n" + "\n".join(rows) + "\n\n"
        "Live: the tool's start (wall clock) to the alert being readable in eve.json "
        "(processing, then the sinks flush at least once a second), i.e. what someone "
        "tailing the EVE file sees. Replay: the off run's recording through the replay "
        "path (`flowscope run -r`, as fast as it reads); the capture time at which the "
        "rule engine raised the alert (`AlertEvent.at`) minus the tool's start, i.e. the "
        "detection itself without processing or output delays. "
        "An alert counts when it is a new incident of the expected rule naming the "
        f"attacker and victim (spoofed floods: the victim, attacker `spoofed/many`); "
        f"`> {wait:.0f}` = none within the benchmark's wait. Slowloris is recognised once "
        "connections are 10 s old (`slow_dos`, docs/detection.md), so ~11 s is its floor; "
        "hydra's FTP guesses wait for the server's 0.2 s failed-login pause, and the "
        "brute-force rule needs 10 sessions.\n"
        f"{MARK_END}"
    )


def write_docs(section: str, path: Path = DOCS) -> None:
    """Replace this benchmark's section of ``path``, keeping everything else."""
    write_section(section, MARK_START, MARK_END, path)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--wait", type=float, default=200.0, help="longest wait for an alert (s)")
    ap.add_argument("--modes", default="off,on", help="comma-separated: off, on")
    ap.add_argument("--no-replay", action="store_true", help="skip the replay columns")
    ap.add_argument("--no-write-docs", action="store_true", help="do not touch docs/")
    ap.add_argument("--json", type=Path, help="also write the raw numbers here")
    ap.add_argument("--keep", type=Path, help="keep sensor outputs and the recording here")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_latency: needs root (network namespaces, raw sockets)", file=sys.stderr)
        return 2
    from flowscope.lab.live import LiveLab

    modes = [m for m in args.modes.split(",") if m]
    t0 = time.monotonic()
    load0 = f"{os.getloadavg()[0]:.2f}"
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="bench-latency-"))
    tmp.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Run] = {}
    pcap = tmp / "lab.pcap"
    pcap_info = "not recorded"
    try:
        with LiveLab(attackers=3, say=print) as lab:
            lab.start_benign(until=time.time() + 3 * 3600)
            for i, mode in enumerate(modes):
                tcpdump = None
                if i == 0:
                    tcpdump = lab.lab.spawn(
                        "switch",
                        ["tcpdump", "-i", "br0", "-n", "-s", "256", "-B", "65536", "-U",
                         "-Z", "root", "--time-stamp-precision=nano", "-w", str(pcap)],
                    )  # fmt: skip
                    time.sleep(1.0)
                print(f"mode {mode}: sensor on br0, {len(KINDS)} attacks", flush=True)
                runs[mode] = live_mode(lab, mode, tmp / f"live-{mode}", args.wait)
                if tcpdump is not None:
                    lab.lab.stop(tcpdump, sig=signal.SIGINT, grace=5.0)
        if pcap.exists() and not args.no_replay:
            pcap_info = f"{pcap.stat().st_size / 2**20:.0f} MiB"
            for mode in modes:
                lat = replay(pcap, mode, runs[modes[0]].results, tmp / f"replay-{mode}")
                for r in runs[mode].results:
                    r.replay_capture_s = lat.get(r.kind)
        load1 = f"{os.getloadavg()[0]:.2f}"
        section = render(runs, args.wait, (load0, load1), time.monotonic() - t0, pcap_info)
        print(section)
        if args.json:
            raw = {m: [asdict(r) for r in run.results] for m, run in runs.items()}
            args.json.write_text(json.dumps(raw, indent=2))
        if not args.no_write_docs:
            write_docs(section)
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
