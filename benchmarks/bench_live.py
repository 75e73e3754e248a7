"""Live throughput benchmark: ``flowscope run -i`` with model, rules and every sink on.

What it does (as root):

1. Picks replay traffic: the first ``--packets`` packets of the traffic lab's training
   capture (``/work/lab-runs/train1/capture.pcap``: real tools — iperf, scp, ssh, HTTP,
   DNS … and every attack kind, captured with a 256-byte snap length), else of
   ``bench-work/capture-2000000-s1.pcap`` (``benchmarks/gen_capture.py``), else a real
   capture from /work/shared/data. ``tcprewrite`` makes one copy per parallel sender:
   ``--seed=k`` maps every address to another (consistently, so each copy is the same
   traffic between other hosts and the senders' flows do not merge) and
   ``--fixlen=trunc`` sets IP/L4 lengths to the captured bytes and ``--mtu-trunc``
   cuts the few frames above 1,500 bytes (offloaded segments in the capture), so every
   frame is a valid packet the veth accepts.
2. Creates a private namespace with a veth pair (``snd`` → ``rcv``, deleted at the end;
   nothing is routed anywhere) and, per rate of a rising ladder, starts a fresh
   ``flowscope run -i rcv --no-web`` on CPU 0 with the default configuration (model,
   explanations, rules, CSV logs + EVE JSON + SQLite into a temporary directory), waits
   for its first status line, then runs ``tcpreplay`` processes in parallel on CPU 1
   (``--pps`` = rate / processes, ``--loop`` + ``--limit`` for ``--seconds`` of
   traffic, ``--unique-ip`` so each loop makes new flows), then stops the sensor with
   SIGINT (it drains its queue, gives open flows their verdicts, flushes the sinks)
   and reads its closing summary: packets captured and metered, loss by stage, flows,
   alerts; plus the veth's kernel counters and the sensor's CPU time.
3. Runs NFStream 6.6 (its own venv, ``bench-work/venv-nfstream``, made by
   ``bench_flows.py``) live on the same veth at the same rates:
   ``NFStreamer(source="rcv", statistical_analysis=True, performance_report=1)``,
   reporting its own processed and kernel-dropped packet counters.
4. Writes the table between ``<!-- bench_live:start -->`` and ``<!-- bench_live:end -->``
   in docs/benchmarks.md.

    sudo .venv/bin/python benchmarks/bench_live.py [--seconds 12] [--rates 50000,100000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from docs_section import write_section
from flowscope.capture._live_testbed import VethNamespace

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "benchmarks.md"
WORK = REPO / "bench-work"
MARK_START = "<!-- bench_live:start -->"
MARK_END = "<!-- bench_live:end -->"
TARGET = 250_000
RATES = [50_000, 100_000, 150_000, 200_000, 250_000, 300_000, 400_000]
PER_SENDER = 125_000  # packets/s asked of one tcpreplay before another one is added
MAX_SENDERS = 4
LAB_CAPTURE = Path("/work/lab-runs/train1/capture.pcap")
GEN_CAPTURE = WORK / "capture-2000000-s1.pcap"
SHARED_CAPTURE = Path("/work/shared/data")
NFSTREAM_PY = WORK / "venv-nfstream" / "bin" / "python"
SENSOR_CPU, SENDER_CPU = 0, 1
_CLK = os.sysconf("SC_CLK_TCK")

# NFStream live: count flows, let it print its own counters once a second (stdout JSON).
NFSTREAM_LIVE = """
import sys, nfstream
kw = {"idle_timeout": int(sys.argv[2])} if int(sys.argv[2]) else {}
s = nfstream.NFStreamer(source=sys.argv[1], statistical_analysis=True, performance_report=1, **kw)
n = 0
try:
    for _ in s:
        n += 1
except KeyboardInterrupt:
    pass
print('{"nfstream_flows": %d, "n_meters": %d}' % (n, s.n_meters), flush=True)
"""


@dataclass
class Step:
    tool: str
    target: int  # packets/s offered (sum over senders)
    senders: int = 0
    sent: int = 0  # tcpreplay's successful packets
    send_failed: int = 0
    send_seconds: float = 0.0
    captured: int = 0  # packets the capture read from the ring
    metered: int = 0  # packets handed to the flow meter
    kernel_drops: int = 0
    queue_dropped: int = 0
    packets_lost: int = 0
    sink_dropped: int = 0
    veth_rx: int = 0
    veth_dropped: int = 0
    flows: int = 0
    malicious: int = 0
    alerts: int = 0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0  # first packet sent → sensor exited
    drain_seconds: float = 0.0  # last packet sent → sensor exited
    backlog: int = 0  # packets sent but not yet metered 2 s after the last one was sent
    note: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def achieved(self) -> float:
        return self.sent / self.send_seconds if self.send_seconds else 0.0

    @property
    def unaccounted(self) -> int:
        """Sent but neither seen nor counted as lost anywhere (should be 0)."""
        return max(0, self.sent - self.captured - self.kernel_drops - self.veth_dropped)

    @property
    def zero_loss(self) -> bool:
        return (
            self.sent > 0
            and self.captured >= self.sent
            and self.metered >= self.sent
            and self.packets_lost == 0
            and self.sink_dropped == 0
            and self.veth_dropped == 0
        )


# ----------------------------------------------------------------------------- traffic
def _run(*cmd: str | os.PathLike[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True, **kw)  # type: ignore[call-overload, no-any-return]


def ensure_tcpreplay() -> None:
    """tcpreplay/tcprewrite from the distribution (scripts/system-deps.sh lists them)."""
    if shutil.which("tcpreplay") and shutil.which("tcprewrite"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "tcpreplay"],
        check=True,
        env=env,
    )


def pick_source(prefer: str) -> tuple[Path, str]:
    """The capture to slice. ``gen`` first by default: its mix is the same all through
    (~14 packets per flow), whereas the lab run starts with minutes of bulk transfers
    (~280 packets per flow in its first million packets) and its attacks come in
    bursts, so a slice would offer each rate a different mix."""
    lab = (LAB_CAPTURE, "traffic lab training run (real tools + attacks, snaplen 256)")
    gen = (GEN_CAPTURE, "`benchmarks/gen_capture.py` synthetic mix (TCP/UDP/ICMP, IPv4+6)")
    for path, what in (lab, gen) if prefer == "lab" else (gen, lab):
        if path.exists():
            return path, what
    pcaps = sorted(SHARED_CAPTURE.rglob("*.pcap"), key=lambda p: -p.stat().st_size)
    if not pcaps:
        raise SystemExit("bench_live: no capture to replay (see the module docstring)")
    return pcaps[0], f"real capture {pcaps[0].name}"


def count_packets(path: Path) -> int:
    """Packets in a classic pcap file (walks the record headers)."""
    import struct

    n = 0
    with path.open("rb") as f:
        magic = f.read(24)[:4]
        endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        while True:
            hdr = f.read(16)
            if len(hdr) < 16:
                return n
            incl = struct.unpack(endian + "IIII", hdr)[2]
            f.seek(incl, 1)
            n += 1


def prepare_traffic(
    work: Path, packets: int, copies: int, prefer: str = "gen"
) -> tuple[list[Path], int, str]:
    """One rewritten copy of the slice per parallel sender; returns (files, packets, what)."""
    source, what = pick_source(prefer)
    work.mkdir(parents=True, exist_ok=True)
    sliced = work / f"live-{source.stem}-{packets}.pcap"
    if not sliced.exists():
        tmp = sliced.with_suffix(".tmp")
        _run("tcpdump", "-r", source, "-w", tmp, "-c", str(packets))
        tmp.rename(sliced)
    files = []
    for k in range(copies):
        out = sliced.with_name(f"{sliced.stem}-mtu-seed{k + 1}.pcap")
        if not out.exists():
            tmp = out.with_suffix(".tmp")
            _run("tcprewrite", f"--seed={k + 1}", "--fixlen=trunc", "--mtu=1500",
                 "--mtu-trunc", "--fixcsum", f"--infile={sliced}", f"--outfile={tmp}")  # fmt: skip
            tmp.rename(out)
        files.append(out)
    return files, count_packets(files[0]), f"{what}: first {packets:,} packets of {source}"


# ----------------------------------------------------------------------------- counters
def link_stats(ns: VethNamespace, dev: str) -> dict[str, int]:
    out = _run("ip", "-n", ns.name, "-s", "-j", "link", "show", dev).stdout
    rx = json.loads(out)[0]["stats64"]["rx"]
    return {"packets": int(rx["packets"]), "dropped": int(rx["dropped"])}


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK  # utime + stime


class Lines:
    """Collects a pipe's lines in a thread (so the child never blocks on a full pipe)."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._t.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line.rstrip("\n"))

    def join(self, timeout: float = 5.0) -> None:
        self._t.join(timeout)


# ----------------------------------------------------------------------------- sending
def send(ns: VethNamespace, files: list[Path], slice_packets: int, rate: int, seconds: float):  # type: ignore[no-untyped-def]
    """tcpreplay processes in parallel on CPU 1; returns (sent, failed, seconds, senders)."""
    senders = min(MAX_SENDERS, max(1, math.ceil(rate / PER_SENDER)))
    each = rate // senders
    limit = int(each * seconds)
    loops = max(1, math.ceil(limit / slice_packets))
    procs = []
    t0 = time.monotonic()
    for k in range(senders):
        cmd = ["ip", "netns", "exec", ns.name, "taskset", "-c", str(SENDER_CPU), "tcpreplay",
               "-i", ns.snd, f"--pps={each}", f"--loop={loops}", f"--limit={limit}",
               "--unique-ip", "--preload-pcap", str(files[k % len(files)])]  # fmt: skip
        if each >= 20_000:
            cmd.insert(-1, "--pps-multi=16")
        procs.append(
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    sent = failed = 0
    first_start = None
    for p in procs:
        out, _ = p.communicate()
        m = re.search(r"Successful packets:\s+(\d+)", out)
        f = re.search(r"Failed packets:\s+(\d+)", out)
        if m is None:
            raise RuntimeError(
                f"tcpreplay failed (exit {p.returncode}):\n{out[:1000]}\n…\n{out[-1000:]}"
            )
        sent += int(m.group(1))
        failed += int(f.group(1)) if f else 0
        a = re.search(r"Actual: \d+ packets \(\d+ bytes\) sent in ([\d.]+) seconds", out)
        if a and first_start is None:
            first_start = float(a.group(1))
    elapsed = time.monotonic() - t0
    # Preloading the file takes a moment before sending starts: use tcpreplay's own
    # sending time (the longest sender) when it reported one.
    return sent, failed, min(elapsed, max(first_start or elapsed, 1e-9)), senders


# ----------------------------------------------------------------------------- flowscope
_SUMMARY = {
    "packets": re.compile(r"^packets\s+([\d,]+)(?: \(captured ([\d,]+)\))?"),
    "flows": re.compile(r"^flows\s+([\d,]+)"),
    "malicious": re.compile(r"^malicious\s+([\d,]+)"),
    "alerts": re.compile(r"^alerts\s+([\d,]+)"),
    "lost": re.compile(r"^lost\s+([\d,]+) packets \(kernel ([\d,]+), queue ([\d,]+)"),
    "sink": re.compile(r"sink(?:s)? (?:dropped )?([\d,]+)"),
}


def _int(s: str | None) -> int:
    return int(s.replace(",", "")) if s else 0


def run_flowscope(
    ns: VethNamespace,
    files: list[Path],
    n: int,
    rate: int,
    seconds: float,
    out: Path,
    idle_timeout: float = 0.0,
) -> Step:  # type: ignore[no-untyped-def]
    step = Step("flowscope", rate)
    cmd = ["ip", "netns", "exec", ns.name, "taskset", "-c", str(SENSOR_CPU), sys.executable,
           "-m", "flowscope", "run", "-i", ns.rcv, "--no-web", "-o", str(out),
           "--status-every", "1"]  # fmt: skip
    if idle_timeout:
        cmd += ["--set", f"flows.idle_timeout={idle_timeout:g}"]
    before = link_stats(ns, ns.rcv)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    so, se = Lines(proc.stdout), Lines(proc.stderr)
    deadline = time.monotonic() + 300
    while not any(line.startswith("flowscope: ") for line in se.lines):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("flowscope did not start:\n" + "\n".join(se.lines[-20:]))
        time.sleep(0.2)
    cpu0 = cpu_seconds(proc.pid)
    t0 = time.monotonic()
    step.sent, step.send_failed, step.send_seconds, step.senders = send(ns, files, n, rate, seconds)
    t_sent = time.monotonic()
    time.sleep(2.0)  # let the ring and queue empty at the sensor's own pace
    cpu1 = cpu_seconds(proc.pid)
    status = [x for x in se.lines if x.startswith("flowscope: ") and "| packets " in x]
    if status and (m := re.search(r"\| packets ([\d.,]+)([kM]?) \|", status[-1])):
        seen = float(m.group(1).replace(",", "")) * {"": 1, "k": 1e3, "M": 1e6}[m.group(2)]
        step.backlog = max(0, round(step.sent - seen))
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        step.note = "sensor did not stop"
    so.join()
    se.join()
    t_end = time.monotonic()
    step.cpu_seconds = cpu1 - cpu0  # /proc/PID is gone after exit: sampled before SIGINT
    step.wall_seconds = t_end - t0
    step.drain_seconds = t_end - t_sent
    after = link_stats(ns, ns.rcv)
    step.veth_rx = after["packets"] - before["packets"]
    step.veth_dropped = after["dropped"] - before["dropped"]
    for line in so.lines:
        s = line.strip()
        if m := _SUMMARY["packets"].match(s):
            step.metered, step.captured = _int(m.group(1)), _int(m.group(2) or m.group(1))
        elif m := _SUMMARY["flows"].match(s):
            step.flows = _int(m.group(1))
        elif m := _SUMMARY["malicious"].match(s):
            step.malicious = _int(m.group(1))
        elif m := _SUMMARY["alerts"].match(s):
            step.alerts = _int(m.group(1))
        elif m := _SUMMARY["lost"].match(s):
            step.packets_lost, step.kernel_drops = _int(m.group(1)), _int(m.group(2))
            step.queue_dropped = _int(m.group(3))
            if sk := _SUMMARY["sink"].search(s):
                step.sink_dropped = _int(sk.group(1))
    if proc.returncode not in (0, None):
        step.note = f"exit {proc.returncode}: " + " ".join(se.lines[-3:])
    step.extra["status_tail"] = se.lines[-2:]
    step.extra["eve_bytes"] = (
        (out / "eve.json").stat().st_size if (out / "eve.json").exists() else 0
    )
    return step


# ----------------------------------------------------------------------------- NFStream
def run_nfstream(
    ns: VethNamespace,
    files: list[Path],
    n: int,
    rate: int,
    seconds: float,
    idle_timeout: float = 0.0,
) -> Step:
    step = Step("NFStream", rate)
    # -u: its report thread prints into a pipe, which would otherwise hold the lines back.
    cmd = ["ip", "netns", "exec", ns.name, str(NFSTREAM_PY), "-u", "-c", NFSTREAM_LIVE, ns.rcv,
           str(round(idle_timeout))]  # fmt: skip
    before = link_stats(ns, ns.rcv)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    so = Lines(proc.stdout)
    deadline = time.monotonic() + 120
    while not any(line.startswith("{") for line in so.lines):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("NFStream did not start:\n" + "\n".join(so.lines[-20:]))
        time.sleep(0.2)
    t0 = time.monotonic()
    step.sent, step.send_failed, step.send_seconds, step.senders = send(ns, files, n, rate, seconds)
    t_sent = time.monotonic()
    time.sleep(3.0)  # at least two performance reports after the last packet
    reports = [json.loads(x) for x in so.lines if x.startswith('{"flows_expired"')]
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
    so.join()
    step.wall_seconds = time.monotonic() - t0
    step.drain_seconds = time.monotonic() - t_sent
    after = link_stats(ns, ns.rcv)
    step.veth_rx = after["packets"] - before["packets"]
    step.veth_dropped = after["dropped"] - before["dropped"]
    if reports:
        last = reports[-1]
        step.metered = step.captured = int(last["packets_processed"])
        step.kernel_drops = int(last["packets_dropped_filtered_by_kernel"])
        step.flows = int(last["flows_expired"])
    step.packets_lost = step.kernel_drops  # the table adds what was never seen
    for x in so.lines:
        if x.startswith('{"nfstream_flows"'):
            step.extra.update(json.loads(x))
    return step


# ----------------------------------------------------------------------------- report
def _k(x: float) -> str:
    return f"{x / 1000:,.0f}k" if x >= 1000 else f"{x:,.0f}"


def table(rows: list[Step]) -> list[str]:
    out = [
        "| tool | offered pkt/s | senders | achieved pkt/s | sent | captured | kernel drops "
        "| queue drops | lost (all stages) | backlog at end | flows | malicious | alerts "
        "| sensor CPU | zero loss |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for r in rows:
        lost = r.packets_lost + r.veth_dropped + r.sink_dropped + r.unaccounted
        cpu = f"{r.cpu_seconds:.1f} s ({100 * r.cpu_seconds / max(r.send_seconds + 2, 1e-9):.0f} %)"
        if r.tool != "flowscope":
            cpu = "—"
        out.append(
            f"| {r.tool} | {_k(r.target)} | {r.senders} | {_k(r.achieved)} | {r.sent:,} | "
            f"{r.captured:,} | {r.kernel_drops:,} | "
            f"{r.queue_dropped:,} | {lost:,} ({100 * lost / max(r.sent, 1):.1f} %) | "
            f"{'—' if r.tool != 'flowscope' else f'{r.backlog / max(r.sent, 1):.0%}'} | "
            f"{r.flows:,} | {r.malicious:,} | {r.alerts:,} | {cpu} | "
            f"{'yes' if r.zero_loss else 'no'}{' — ' + r.note if r.note else ''} |"
        )
    return out


SUSTAINED_BACKLOG = 0.05  # share of a step's packets still queued 2 s after sending


def best(rows: list[Step], tool: str, sustained: bool = False) -> Step | None:
    """The fastest zero-loss step; ``sustained``: also kept up (backlog ≤ 5 %)."""
    ok = [
        r
        for r in rows
        if r.tool == tool
        and r.zero_loss
        and (not sustained or r.backlog <= SUSTAINED_BACKLOG * r.sent)
    ]
    return max(ok, key=lambda r: r.achieved) if ok else None


def section(
    idle: float,
    rows: list[Step],
    what: str,
    seconds: float,
    took: float,
    load: tuple[str, str],
    argv: Sequence[str],
) -> str:
    kept = best(rows, "flowscope", sustained=True)
    kept_head = f"{_k(kept.achieved)} pkt/s" if kept else "none of the rates"
    fs, nf = best(rows, "flowscope"), best(rows, "NFStream")
    head = f"{_k(fs.achieved)} pkt/s (offered {_k(fs.target)})" if fs else "none of the rates"
    nf_head = f"{_k(nf.achieved)} pkt/s (offered {_k(nf.target)})" if nf else "none of the rates"
    fsr = [r for r in rows if r.tool == "flowscope" and r.sent]
    ppf = sum(r.metered for r in fsr) / max(sum(r.flows for r in fsr), 1)
    reached = kept is not None and kept.achieved >= TARGET * 0.98
    cmd = " ".join(["sudo .venv/bin/python benchmarks/bench_live.py", *argv])
    return "\n".join(
        [
            MARK_START,
            "## Live throughput: sensor with model, rules and all sinks",
            "",
            "Highest replay rate `flowscope run -i` (default configuration: model, "
            "explanations, rule engine, CSV logs + EVE JSON + SQLite) handles without losing "
            "a packet, and NFStream live on the same veth in the same run. Generated by "
            "`benchmarks/bench_live.py`; do not edit this section by hand.",
            "",
            f"Reproduce (as root; this run took {took / 60:.1f} min): `make bench-live`, i.e.",
            "",
            f"```sh\n{cmd}\n```",
            "",
            f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}; machine: "
            f"{platform.machine()}, {os.cpu_count()} cores (shared: load average {load[0]} "
            f"before, {load[1]} after)",
            f"- Traffic: {what}; rewritten per sender (`tcprewrite --seed=k --fixlen=trunc "
            "--mtu=1500 --mtu-trunc`), "
            f"replayed with `tcpreplay --pps --loop --limit --unique-ip --preload-pcap` "
            f"({seconds:g} s per rate, up to {MAX_SENDERS} senders of ≤ {_k(PER_SENDER)} "
            f"pkt/s each, all on CPU {SENDER_CPU}); {ppf:.1f} packets per flow as the sensor "
            "metered it",
            f"- Sensor: a fresh `flowscope run -i rcv --no-web -o <tmp>` per rate, pinned to "
            f"CPU {SENSOR_CPU}; stopped with SIGINT 2 s after the last packet (it drains its "
            "queue, then gives every open flow its verdict). "
            + (
                f"`--set flows.idle_timeout={idle:g}`: with the default 120 s most flows of a "
                "short step would end only at shutdown, so their model and sink cost would "
                "never compete with capture; at this timeout flows end within the step, as "
                "in a sensor that has run for minutes. "
                if idle
                else ""
            )
            + "Loss columns are the sensor's "
            "own accounting (closing summary) plus the veth's `rx_dropped`; *lost* also "
            "counts packets sent but never seen by the capture.",
            "- NFStream 6.6 (`statistical_analysis=True`, nDPI on, `performance_report=1`, the "
            "same idle timeout): "
            "*captured* is its `packets_processed`, *kernel drops* its "
            "`packets_dropped_filtered_by_kernel`; *flows* are those it had expired when "
            "stopped.",
            "- *Backlog at end*: share of the step's packets not yet metered 2 s after the "
            "last was sent (from the sensor's status line). Zero loss with a large backlog "
            "means the 1M-packet queue absorbed the burst, not that the rate is sustainable; "
            f"*sustained* below means zero loss and a backlog ≤ {SUSTAINED_BACKLOG:.0%}.",
            f"- **Highest zero-loss rate, flowscope: {head}** (sustained: {kept_head}); "
            f"NFStream: {nf_head}. Target ≥ {_k(TARGET)} pkt/s: "
            f"**{'met' if reached else 'NOT met'}**.",
            "",
            *table(rows),
            "",
            MARK_END,
        ]
    )


def write_docs(text: str, path: Path = DOCS) -> None:
    """Replace this benchmark's section of ``path``, keeping everything else."""
    write_section(text, MARK_START, MARK_END, path)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=12.0, help="sending time per rate")
    ap.add_argument("--rates", default=",".join(map(str, RATES)), help="packets/s, comma-separated")
    ap.add_argument("--packets", type=int, default=1_000_000, help="slice of the capture")
    ap.add_argument("--source", choices=("gen", "lab"), default="gen", help="traffic to replay")
    ap.add_argument(
        "--idle-timeout",
        type=float,
        default=10.0,
        help="sensor's flows.idle_timeout in s (0 = the configuration's 120 s); see docs",
    )
    ap.add_argument("--skip-nfstream", action="store_true")
    ap.add_argument("--skip-flowscope", action="store_true")
    ap.add_argument(
        "--stop-after-loss", type=int, default=2, help="stop a tool after N lossy rates"
    )
    ap.add_argument("--no-write-docs", action="store_true", help="do not touch docs/")
    ap.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_live: needs root (network namespace, raw sockets)", file=sys.stderr)
        return 2
    rates = [int(x) for x in args.rates.split(",") if x]
    t_start = time.monotonic()
    load0 = os.getloadavg()
    ensure_tcpreplay()
    copies = min(MAX_SENDERS, max(1, math.ceil(max(rates) / PER_SENDER)))
    files, n, what = prepare_traffic(WORK, args.packets, copies, args.source)
    print(f"bench_live: {what}; {n:,} packets per file, {copies} files", flush=True)
    rows: list[Step] = []
    tools = [] if args.skip_flowscope else ["flowscope"]
    if not args.skip_nfstream and NFSTREAM_PY.exists():
        tools.append("NFStream")
    with VethNamespace() as ns:
        # The capture holds a few frames above 1,514 bytes (segments a NIC offloaded);
        # tcpreplay cannot send them over a 1,500-byte MTU, so allow jumbo frames.
        for dev in (ns.snd, ns.rcv):
            _run("ip", "-n", ns.name, "link", "set", dev, "mtu", "9000")
        for tool in tools:
            lossy = 0
            for rate in rates:
                out = Path(tempfile.mkdtemp(prefix="bench-live-"))
                try:
                    if tool == "flowscope":
                        step = run_flowscope(
                            ns, files, n, rate, args.seconds, out, args.idle_timeout
                        )
                    else:
                        step = run_nfstream(ns, files, n, rate, args.seconds, args.idle_timeout)
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    step = Step(tool, rate, note=f"failed: {str(e).splitlines()[0][:120]}")
                finally:
                    shutil.rmtree(out, ignore_errors=True)
                rows.append(step)
                print(json.dumps({**asdict(step), "achieved": round(step.achieved)}), flush=True)
                lossy += not step.zero_loss
                if lossy >= args.stop_after_loss:
                    break
    load1 = os.getloadavg()
    loads = (f"{load0[0]:.2f}", f"{load1[0]:.2f}")
    given = list(argv if argv is not None else sys.argv[1:])
    text = section(
        args.idle_timeout, rows, what, args.seconds, time.monotonic() - t_start, loads, given
    )
    print(text)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    if not args.no_write_docs:
        write_docs(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
