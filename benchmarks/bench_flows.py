"""Flow-extraction benchmark: flowscope vs NFStream vs cicflowmeter, in one run.

What it does, and why each step is there:

1. Generates (or reuses from the work dir) a deterministic synthetic capture with
   ``gen_capture.py`` (default 10 M packets, > 700 k flows) plus a 100 k-packet prefix
   cut for cicflowmeter, which is far too slow for the full file. A process has a fixed
   start-up cost (interpreter, imports, loading compiled kernels), so the throughput
   capture is large enough that the end-to-end rate reflects the per-packet cost; the
   start-up is measured on its own (the shipped 169-packet sample) and reported.
2. For the memory-scaling check, two smaller captures with the same packet count
   (default 2 M): the realistic mix and a few hundred long flows, each whole and as
   its first quarter.
3. Creates a separate virtual environment per reference tool under the work dir, so
   their pinned dependencies (cicflowmeter needs scapy 2.5 and numpy < 2) never touch the
   project's environment.
4. Runs every tool as its own subprocess pinned to one CPU (default 0; the equivalent
   of ``taskset -c 0``), timing wall clock from spawn to exit and measuring peak memory
   two ways: ``wait4``'s ``ru_maxrss`` (exact, largest single process) and a sampled sum
   of the RSS of the whole process tree (NFStream meters in a child process;
   cicflowmeter pipes through tcpdump). The reported peak is the larger of the two. The
   sampler also records the most threads the tool ran at once.
5. Writes a Markdown section into ``docs/benchmarks.md`` (between marker comments, so
   other sections survive) and the raw numbers as JSON into the work dir.

Reproduce with ``make bench`` (= ``.venv/bin/python benchmarks/bench_flows.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path

import gen_capture
from docs_section import write_section

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
DOCS = REPO / "docs" / "benchmarks.md"
MARK_START = "<!-- bench_flows:start -->"
MARK_END = "<!-- bench_flows:end -->"

# Reference tools, pinned to what was verified to install and run here. PyPI serves
# cicflowmeter only up to 0.2.0 (the hieulw implementation, scapy-based).
NFSTREAM_REQS = ["nfstream==6.6.0", "pyarrow"]
CIC_REQS = ["cicflowmeter==0.2.0", "scapy==2.5.0", "numpy<2"]
CIC_CUT = 100_000

TARGET_PPS = 1_500_000
TARGET_VS_NFSTREAM = 15.0
# 4x the packets at about the same number of open flows must leave memory about flat.
TARGET_MEM_RATIO = 1.25

MIB = 1024 * 1024
SCALE_MIXED_QUARTER = "mixed, first quarter"
SCALE_MIXED = "mixed, whole"
SCALE_LONG_QUARTER = "long-flow, first quarter"
SCALE_LONG = "long-flow, whole"


def log(msg: str) -> None:
    """Progress on stderr, so stdout stays clean for the final summary."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Measuring a subprocess
# ---------------------------------------------------------------------------------------


@dataclass
class Measured:
    """Outcome of one subprocess run."""

    returncode: int
    wall_s: float
    cpu_s: float  # user + system of the child and the descendants it waited for
    load_before: float  # 1-min load average at start: other work on the box skews wall time
    maxrss_mib: float  # ru_maxrss of the child (largest process of its tree)
    tree_rss_mib: float  # peak of the sampled RSS sum over the process tree
    threads: int  # most threads seen at once over the process tree (sampled)
    timed_out: bool
    stdout: str
    stderr: str

    @property
    def peak_rss_mib(self) -> float:
        return max(self.maxrss_mib, self.tree_rss_mib)


def _descendants(pid: int) -> list[int]:
    """pid and all its descendants, from /proc/<pid>/task/<tid>/children."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError), open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
    return out


def _rss_kib_threads(pid: int) -> tuple[int, int]:
    """(VmRSS in KiB, threads) of one process; zeros once it is gone."""
    rss = threads = 0
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


def measure(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    logs: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    cpu: int | None = 0,
    timeout: float = 3600.0,
    sample_every: float = 0.02,
) -> Measured:
    """Run ``cmd`` pinned to ``cpu`` and return wall time and peak memory.

    Why ``os.wait4`` rather than ``subprocess.run``: it hands back the child's own
    rusage (``ru_maxrss`` is exact, not sampled) at the moment it is reaped, so the wall
    time ends exactly at exit. A sampler thread adds the tree-wide RSS sum that
    ``ru_maxrss`` cannot give for multi-process tools. ``cwd`` defaults to the log
    folder: NFStream's ``to_pandas()`` drops a temporary CSV into the working directory,
    which must never be the repository.
    """
    logs.parent.mkdir(parents=True, exist_ok=True)
    # Not with_suffix: log names contain dots ("fs-capture.pcap-0").
    out_path, err_path = logs.parent / f"{logs.name}.out", logs.parent / f"{logs.name}.err"

    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    with out_path.open("wb") as out, err_path.open("wb") as err:
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd or logs.parent,
            preexec_fn=pin,
            start_new_session=True,  # own process group: a timeout kills the whole tree
        )
        peak = [0, 0]  # RSS KiB, threads
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                seen = [_rss_kib_threads(p) for p in _descendants(proc.pid)]
                peak[0] = max(peak[0], sum(r for r, _ in seen))
                peak[1] = max(peak[1], sum(t for _, t in seen))
                stop.wait(sample_every)

        timed_out = [False]

        def kill() -> None:
            timed_out[0] = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        timer.cancel()
        stop.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        # Leftover children (e.g. a tcpdump the tool forgot) must not outlive the run.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    return Measured(
        returncode=proc.returncode,
        wall_s=wall,
        cpu_s=ru.ru_utime + ru.ru_stime,
        load_before=load,
        maxrss_mib=ru.ru_maxrss / 1024,  # Linux reports KiB
        tree_rss_mib=peak[0] / 1024,
        threads=peak[1],
        timed_out=timed_out[0],
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table."""

    tool: str
    config: str
    input: str
    packets: int
    status: str = "ok"  # ok | not available | failed | timeout
    note: str = ""
    wall_s: float | None = None
    cpu_s: float | None = None
    load_before: float | None = None
    peak_rss_mib: float | None = None
    maxrss_mib: float | None = None
    tree_rss_mib: float | None = None
    flows: int | None = None
    open_flows: int | None = None  # most flows open at once in the input (generator's count)
    processing_s: float | None = None  # flowscope's own timer: reading to last row written
    jit_s: float | None = None  # flowscope's kernel-cache load (or compile) time
    threads: int | None = None
    runs: list[float] = field(default_factory=list)

    @property
    def processing_pps(self) -> float | None:
        return self.packets / self.processing_s if self.ok and self.processing_s else None

    @property
    def pps(self) -> float | None:
        return self.packets / self.wall_s if self.ok and self.wall_s else None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def fill(self, m: Measured) -> None:
        self.wall_s = m.wall_s
        self.cpu_s = m.cpu_s
        self.load_before = m.load_before
        self.peak_rss_mib = m.peak_rss_mib
        self.maxrss_mib = m.maxrss_mib
        self.tree_rss_mib = m.tree_rss_mib
        self.threads = m.threads
        if m.timed_out:
            self.status, self.note = "timeout", f"killed after {m.wall_s:.0f} s"
        elif m.returncode != 0:
            tail = (m.stderr.strip().splitlines() or ["?"])[-1][:160]
            self.status, self.note = "failed", f"exit {m.returncode}: {tail}"

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["pps"] = self.pps
        d["processing_pps"] = self.processing_pps
        return d


@dataclass
class Results:
    """Everything one benchmark run produced; rendered to Markdown and dumped to JSON."""

    date: str
    machine: dict[str, str]
    versions: dict[str, str]
    capture: dict[str, object]
    rows: list[Row]
    scaling: list[Row]
    startup: Row | None  # flowscope on the shipped sample: the fixed cost of a run
    flowscope_pps: float | None
    verdicts: list[str]
    elapsed_s: float
    command: str
    cpu: int = 0

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["rows"] = [r.as_dict() for r in self.rows]
        d["scaling"] = [r.as_dict() for r in self.scaling]
        d["startup"] = self.startup.as_dict() if self.startup else None
        return d


@dataclass
class ScaleInput:
    """One capture of the memory-scaling table and how many flows a meter holds in it."""

    kind: str
    path: Path
    packets: int
    open_flows: int | None

    @classmethod
    def of(cls, meta: dict[str, object], cut: int | None, kind: str) -> ScaleInput:
        """The whole capture described by ``meta`` (cut None) or its first ``cut`` packets."""
        cuts: dict[str, str] = meta.get("cuts", {})  # type: ignore[assignment]
        stats: dict[str, dict[str, int]] = meta.get("cut_stats", {})  # type: ignore[assignment]
        if cut is not None and str(cut) in cuts:
            st = stats.get(str(cut), {})
            return cls(kind, Path(cuts[str(cut)]), cut, st.get("peak_open_flows_idle_timeout"))
        return cls(
            kind,
            Path(str(meta["path"])),
            int(_num(meta["packets"])),
            int(_num(meta["peak_open_flows_idle_timeout"])),
        )

    def row(self, tool: str, status: str = "ok", note: str = "") -> Row:
        r = Row(tool, self.kind, self.path.name, self.packets, status, note)
        r.open_flows = self.open_flows
        return r

    def adopt(self, measured: Row) -> Row:
        """A copy of a measured row relabelled for the scaling table."""
        r = replace(measured, config=self.kind)
        r.open_flows = self.open_flows
        return r


def _tail(text: str, n: int = 400) -> str:
    return text.strip()[-n:]


# ---------------------------------------------------------------------------------------
# Capture
# ---------------------------------------------------------------------------------------


def _generator_digest() -> str:
    """Hash of the generator source: a changed generator invalidates the cached capture."""
    return hashlib.sha256((BENCH_DIR / "gen_capture.py").read_bytes()).hexdigest()[:16]


def ensure_capture(
    work: Path, packets: int, seed: int, cuts: Sequence[int], mix: str = "mixed"
) -> dict[str, object]:
    """Generate the capture and its prefix cuts unless an identical one is cached in ``work``."""
    prefix = "capture" if mix == "mixed" else f"capture-{mix}"
    path = work / f"{prefix}-{packets}-s{seed}.pcap"
    meta_path = path.with_suffix(".json")
    cuts = sorted({c for c in cuts if 0 < c < packets})
    digest = _generator_digest()
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        files = [path] + [Path(p) for p in meta.get("cuts", {}).values()]
        have = {int(k) for k in meta.get("cuts", {})}
        if meta.get("digest") == digest and set(cuts) <= have and all(f.exists() for f in files):
            log(f"reusing {path.name} ({meta['packets']:,} packets, {meta['flows']:,} flows)")
            return meta
    log(f"generating {packets:,} packets (mix: {mix}) -> {path}")
    s = gen_capture.generate(path, packets=packets, seed=seed, cuts=cuts, mix=mix)
    print(gen_capture.format_summary(s), file=sys.stderr)
    meta = gen_capture.summary_dict(s)
    meta["digest"] = digest
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta


def warm_page_cache(paths: Sequence[Path]) -> None:
    """Read the inputs once so no tool pays for the first read from disk."""
    for p in paths:
        with p.open("rb") as f:
            while f.read(16 * MIB):
                pass


# ---------------------------------------------------------------------------------------
# Reference tool environments
# ---------------------------------------------------------------------------------------


def ensure_venv(root: Path, reqs: Sequence[str], logs: Path) -> tuple[Path | None, str]:
    """Create ``root`` as a venv with ``reqs`` installed; return (python, error).

    A stamp file records the requirement list so later runs skip the install, and a
    changed list reinstalls from scratch.
    """
    python = root / "bin" / "python"
    stamp = root / ".bench-reqs"
    spec = "\n".join(reqs)
    if python.exists() and stamp.exists() and stamp.read_text() == spec:
        return python, ""
    shutil.rmtree(root, ignore_errors=True)
    logs.parent.mkdir(parents=True, exist_ok=True)
    log(f"creating {root.name}: pip install {' '.join(reqs)}")
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [[base, "-m", "venv", str(root)], [str(python), "-m", "pip", "install", *reqs]]
    with logs.open("w") as out:
        for step in steps:
            r = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=1800)
            if r.returncode != 0:
                return None, f"`{' '.join(step[2:])}` failed, see {logs}"
    stamp.write_text(spec)
    return python, ""


def dist_version(python: Path, dist: str) -> str:
    """Installed version of ``dist`` in the environment of ``python``."""
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    r = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else "?"


# ---------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------


def flowscope_cli() -> tuple[Path | None, str]:
    """The project's CLI, if ``flowscope flows`` exists yet (other work is in flight)."""
    exe = Path(sys.executable).parent / "flowscope"
    if not exe.exists():
        return None, f"{exe} not installed"
    r = subprocess.run([str(exe), "flows", "--help"], capture_output=True, text=True)
    if r.returncode != 0:
        return None, "`flowscope flows` not available yet"
    return exe, ""


def parquet_rows(path: Path) -> int | None:
    """Flow count of a Parquet output (pyarrow is a flowscope dependency)."""
    try:
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception:
        return None


def run_flowscope(
    exe: Path, capture: Path, packets: int, label: str, work: Path, repeat: int, cold: bool,
    cpu: int = 0,
) -> Row:  # fmt: skip
    """Time ``flowscope flows CAPTURE -o OUT.parquet``.

    ``cold``: a fresh, empty NUMBA_CACHE_DIR, so the run includes JIT compilation — what
    a first-time user sees. Otherwise the shared cache (filled by the cold run) is used
    and the best of ``repeat`` runs is kept, which is the steady-state throughput.
    """
    cache = work / "numba-cache"
    if cold:
        shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    out = work / "out" / f"flowscope-{label}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    config = "cold JIT cache" if cold else f"warm, best of {repeat}"
    row = Row("flowscope", config, label, packets)
    best = _best_run(row, exe, capture, out, env, cpu, work / "logs" / f"fs-{label}",
                     1 if cold else repeat)  # fmt: skip
    if best is None:
        return row
    row.flows = parquet_rows(out)
    # The closing summary's "time" line: capture open to last flow written, without the
    # interpreter start-up and the loading of compiled kernels (reported as "JIT").
    found = re.search(r"^time\s+([0-9.]+) s", best.stderr, re.M)
    jit = re.search(r"^JIT\s+([0-9.]+) s", best.stderr, re.M)
    row.jit_s = float(jit.group(1)) if jit else None
    if found and not cold:
        row.processing_s = float(found.group(1))
        rest = (best.wall_s or 0.0) - row.processing_s
        row.note = (
            f"processing {row.processing_s:.2f} s = {_mpps(row.processing_pps)} pkt/s "
            f"(flowscope's own timer, capture open to last row on disk); the other "
            f"{rest:.2f} s are start-up (interpreter, imports, kernel-cache load "
            f"{_fmt(row.jit_s, '.2f')} s) and exit; {row.threads} threads"
        )
    return row


def _best_run(
    row: Row, exe: Path, capture: Path, out: Path, env: dict[str, str], cpu: int,
    logs: Path, repeat: int,
) -> Measured | None:  # fmt: skip
    """``flowscope flows CAPTURE -o OUT`` ``repeat`` times; ``row`` gets every wall time
    and the fastest run's measurements. None (``row`` filled from the failing run) when
    a run fails or times out."""
    best: Measured | None = None
    for i in range(repeat):
        out.unlink(missing_ok=True)
        m = measure([exe, "flows", capture, "-o", out], env=env, cpu=cpu, logs=Path(f"{logs}-{i}"))
        row.runs.append(m.wall_s)
        if m.returncode != 0 or m.timed_out:
            row.fill(m)
            return None
        if best is None or m.wall_s < best.wall_s:
            best = m
    assert best is not None
    row.fill(best)
    return best


def run_startup(exe: Path, work: Path, repeat: int, cpu: int) -> Row:
    """The fixed cost of a run: ``flowscope flows`` on the shipped 169-packet sample."""
    sample = Path(str(resources.files("flowscope") / "data" / "sample.pcap"))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(work / "numba-cache"))
    out = work / "out" / "flowscope-sample.parquet"
    row = Row("flowscope", "start-up and exit", sample.name, 169)
    best = _best_run(row, exe, sample, out, env, cpu, work / "logs" / "fs-startup", repeat)
    if best is None:
        return row
    jit = re.search(r"^JIT\s+([0-9.]+) s", best.stderr, re.M)
    row.jit_s = float(jit.group(1)) if jit else None
    return row


def run_nfstream(
    python: Path, capture: Path, packets: int, label: str, work: Path, dissections: int | None,
    cpu: int = 0,
) -> Row:  # fmt: skip
    """NFStream with statistical_analysis=True, to_pandas() and the frame to Parquet."""
    config = "default (nDPI on)" if dissections is None else f"n_dissections={dissections}"
    row = Row("NFStream", config, label, packets)
    out = work / "out" / f"nfstream-{label}-{dissections}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd: list[str | os.PathLike[str]] = [python, BENCH_DIR / "run_nfstream.py", capture]
    cmd += ["-o", out]
    if dissections is not None:
        cmd += ["--n-dissections", str(dissections)]
    m = measure(cmd, cpu=cpu, logs=work / "logs" / f"nfstream-{label}-{dissections}")
    row.fill(m)
    if row.ok:
        try:
            info = json.loads(m.stdout.strip().splitlines()[-1])
            row.flows = int(info["flows"])
            row.note = (
                f"{info['columns']} columns; meters={info['n_meters']}; "
                f"to_pandas {info['meter_and_pandas_s']:.1f} s, "
                f"parquet {info['parquet_s']:.1f} s"
            )
        except (ValueError, KeyError, IndexError):
            row.status, row.note = "failed", f"unexpected output: {_tail(m.stdout, 160)}"
    return row


def run_cicflowmeter(
    venv_python: Path, capture: Path, packets: int, work: Path, cpu: int = 0
) -> Row:
    """``cicflowmeter -f CUT -c OUT.csv``: the scapy-based PyPI implementation.

    It reads the file through tcpdump (its BPF filter ``ip and (tcp or udp)`` makes scapy
    spawn ``tcpdump -r``), so it only meters IPv4 TCP/UDP; packets/s still counts every
    packet of its input file, since it had to read them all.
    """
    row = Row("cicflowmeter", "CSV, all fields", capture.name, packets)
    if shutil.which("tcpdump") is None:
        row.status, row.note = "not available", "needs tcpdump (apt-get install tcpdump)"
        return row
    out = work / "out" / "cicflowmeter.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    exe = venv_python.parent / "cicflowmeter"
    m = measure([exe, "-f", capture, "-c", out], cpu=cpu, logs=work / "logs" / "cicflowmeter")
    row.fill(m)
    if row.ok:
        if out.exists():
            with out.open("rb") as f:
                row.flows = max(0, sum(1 for _ in f) - 1)
            row.note = "meters IPv4 TCP/UDP only"
        else:
            row.status, row.note = "failed", "no CSV written"
    return row


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    """CPU model, cores, memory, OS and Python: what a reader needs to compare numbers."""
    cpu = "?"
    mem = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / MIB:.0f} GiB"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def _num(v: object) -> float:
    """A number from the capture summary (typed ``object`` after a JSON round trip)."""
    return float(v)  # type: ignore[arg-type]


def _fmt(v: float | int | None, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def _mpps(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v / 1e6:.2f} M" if v >= 1e6 else f"{v / 1e3:.1f} k"


def _capture_line(cap: dict[str, object]) -> str:
    by_proto: dict[str, int] = cap["flows_by_proto"]  # type: ignore[assignment]
    return (
        f"`benchmarks/gen_capture.py --packets {cap['packets']} --seed {cap['seed']}"
        + ("" if cap.get("mix", "mixed") == "mixed" else f" --mix {cap['mix']}")
        + f"`: {cap['packets']:,} packets, {cap['flows']:,} flows (TCP {by_proto['tcp']:,}, "
        f"UDP {by_proto['udp']:,}, ICMP {by_proto['icmp']:,}; {cap['ipv6_flows']:,} over "
        f"IPv6), {_num(cap['file_bytes']) / MIB:,.0f} MiB, {_num(cap['span_s']):.0f} s span, "
        f"{cap['short_flows_le10']:,} flows of ≤ 10 packets, "
        f"{cap['long_flows_ge1000']:,} of ≥ 1000 packets, "
        f"peak {cap['peak_concurrent_flows']:,} concurrent flows between first and last "
        f"packet, {cap['peak_open_flows_idle_timeout']:,} open in a meter with a "
        f"{gen_capture.IDLE_TIMEOUT:.0f} s idle timeout"
    )


def render(res: Results) -> str:
    """The Markdown section written between the markers in docs/benchmarks.md."""
    cap = res.capture
    mach = res.machine
    su = res.startup
    lines = [
        MARK_START,
        "## Flow extraction",
        "",
        "Capture file to all per-flow features on disk (flowscope: Parquet), one CPU core "
        f"per tool: each tool is a separate process pinned to CPU {res.cpu}. Generated by "
        "`benchmarks/bench_flows.py`; do not edit this section by hand.",
        "",
        f"Reproduce (this run took {res.elapsed_s / 60:.1f} min, including building any "
        "missing reference-tool venvs and generating the captures):",
        "",
        "```sh",
        "make bench   # = .venv/bin/python benchmarks/bench_flows.py",
        "```",
        "",
        f"- Date: {res.date}",
        f"- Machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory']} RAM, {mach['os']}",
        f"- Python {mach['python']}; " + ", ".join(f"{k} {v}" for k, v in res.versions.items()),
        f"- Capture: {_capture_line(cap)}",
    ]
    if su is not None and su.ok:
        lines.append(
            f"- Start-up and exit of a flowscope run (`flowscope flows` on the shipped "
            f"{su.packets}-packet sample, best of {len(su.runs)}): {_fmt(su.wall_s, '.2f')} s "
            f"wall, of which loading the compiled kernels from numba's cache "
            f"{_fmt(su.jit_s, '.2f')} s; the rest is the interpreter, imports and exit. "
            "Every flowscope end-to-end number below includes it once."
        )
    lines += [
        "",
        "| Tool | Configuration | Input | Packets | Flows out | Wall s | CPU s "
        "| Packets/s end to end | Packets/s processing | Peak RSS MiB | Threads "
        "| flowscope speed-up | Notes |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    fs = res.flowscope_pps
    for r in res.rows:
        speed = "—"
        if fs and r.pps and r.tool != "flowscope":
            speed = f"{fs / r.pps:.1f}×"
        note = r.note if r.ok else f"**{r.status}**: {r.note}"
        lines.append(
            f"| {r.tool} | {r.config} | {r.input} | {r.packets:,} | {_fmt(r.flows, ',')} "
            f"| {_fmt(r.wall_s, '.2f')} | {_fmt(r.cpu_s, '.2f')} | {_mpps(r.pps)} "
            f"| {_mpps(r.processing_pps)} | {_fmt(r.peak_rss_mib, ',.0f')} "
            f"| {_fmt(r.threads, 'd')} | {speed} | {note} |"
        )
    lines += [
        "",
        "End to end is the tool's wall time from process start to exit; processing is "
        "flowscope's own timer (capture opened to last flow on disk), i.e. without "
        "start-up and exit. Peak RSS is the larger of the child's `ru_maxrss` (largest "
        "single process) and a 20 ms sampled sum over its process tree (NFStream meters "
        "in a child process, cicflowmeter reads through `tcpdump`); threads is the most "
        "sampled at once over that tree (idle library threads included; all of them share "
        "the one pinned CPU). "
        + (
            f"cicflowmeter gets a {CIC_CUT:,}-packet prefix of the same capture, so compare "
            "packets/s, not wall time. "
            if any(r.tool == "cicflowmeter" for r in res.rows)
            else ""
        )
        + "flowscope's speed-up is its warm end-to-end packets/s over the tool's. CPU s is "
        "user + system time of the tool's processes; wall time well above it means the "
        "core was shared with other work during that run.",
        "",
    ]
    scale_caps = [c for c in (cap.get("scaling_mixed"), cap.get("scaling_long")) if c]
    lines += [
        "### Memory scaling",
        "",
        "A flow meter's memory should follow the flows it holds open, not the packets it "
        "has read. Two captures with the same packet count: the realistic mix and a "
        "long-flow one (a few hundred long TCP/UDP flows), each whole and as its first "
        "quarter. Open flows: the most flows open at once (until FIN/RST, else a "
        f"{gen_capture.IDLE_TIMEOUT:.0f} s idle timeout), counted by the generator. "
        "Flat memory from quarter to whole of the long-flow capture shows packets cost "
        "nothing; the gap between the two whole captures is the cost of open flows. "
        "(In the mixed capture the quarter holds fewer open flows than the whole, because "
        "flows pile up for one idle timeout before the first ones expire.)",
        "",
    ]
    lines += [f"- {_capture_line(c)}" for c in scale_caps]  # type: ignore[arg-type]
    lines += [
        "",
        "| Tool | Capture | Input | Packets | Open flows | Flows out | Peak RSS MiB | Packets/s |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in res.scaling:
        note = "" if r.ok else f" ({r.status})"
        lines.append(
            f"| {r.tool}{note} | {r.config} | {r.input} | {r.packets:,} "
            f"| {_fmt(r.open_flows, ',')} | {_fmt(r.flows, ',')} "
            f"| {_fmt(r.peak_rss_mib, ',.0f')} | {_mpps(r.pps)} |"
        )
    lines += ["", "### Target", ""]
    lines += [f"- {t}" for t in res.verdicts]
    lines += ["", MARK_END]
    return "\n".join(lines)


def verdicts(
    rows: list[Row], scaling: list[Row], startup: Row | None = None
) -> tuple[list[str], float | None]:
    """PASS/FAIL lines for the issue's targets, and flowscope's warm end-to-end packets/s."""
    warm = next((r for r in rows if r.tool == "flowscope" and r.config.startswith("warm")), None)
    nfs = next((r for r in rows if r.tool == "NFStream" and r.config.startswith("default")), None)
    fs = warm.pps if warm else None
    proc = warm.processing_pps if warm else None
    out = []
    if fs is None or warm is None:
        out.append(
            f"≥ {TARGET_PPS / 1e6:.1f} M packets/s on one core and ≥ {TARGET_VS_NFSTREAM:.0f}× "
            "NFStream: **NOT MEASURED** (flowscope row not available)"
        )
    else:
        out.append(
            f"≥ {TARGET_PPS / 1e6:.1f} M packets/s on one core, end to end (process start to "
            f"exit, {warm.packets:,} packets): **{_pf(fs >= TARGET_PPS)}** ({_mpps(fs)})"
        )
        if proc:
            out.append(
                f"≥ {TARGET_PPS / 1e6:.1f} M packets/s on one core, processing (capture open to "
                f"last flow on disk, flowscope's own timer): **{_pf(proc >= TARGET_PPS)}** "
                f"({_mpps(proc)})"
            )
        if nfs is not None and nfs.pps:
            ratio = fs / nfs.pps
            out.append(
                f"≥ {TARGET_VS_NFSTREAM:.0f}× NFStream (default config, end to end on the same "
                f"capture): **{_pf(ratio >= TARGET_VS_NFSTREAM)}** ({ratio:.1f}×)"
            )
        else:
            out.append(f"≥ {TARGET_VS_NFSTREAM:.0f}× NFStream: **NOT MEASURED**")
        if warm.cpu_s and warm.wall_s:
            out.append(
                f"One core (information): flowscope used {warm.cpu_s:.2f} s of CPU in "
                f"{warm.wall_s:.2f} s of wall time pinned to one CPU "
                f"({warm.cpu_s / warm.wall_s:.2f} cores busy on average)"
            )
        if startup is not None and startup.ok and startup.wall_s:
            out.append(
                f"Start-up and exit (information): {startup.wall_s:.2f} s per run, of which "
                f"{_fmt(startup.jit_s, '.2f')} s loading cached kernels; JIT compilation "
                "happens once per machine (the cold row)"
            )

    fs_rows = {r.config: r for r in scaling if r.tool == "flowscope" and r.ok and r.peak_rss_mib}
    lq, lf = fs_rows.get(SCALE_LONG_QUARTER), fs_rows.get(SCALE_LONG)
    if lq and lf:
        ratio = _num(lf.peak_rss_mib) / _num(lq.peak_rss_mib)
        out.append(
            "Memory does not grow with packets (long-flow capture: 4× the packets at a few "
            f"hundred open flows, peak RSS ≤ {TARGET_MEM_RATIO}× the quarter's): "
            f"**{_pf(ratio <= TARGET_MEM_RATIO)}** ({_num(lq.peak_rss_mib):,.0f} → "
            f"{_num(lf.peak_rss_mib):,.0f} MiB, {ratio:.2f}×)"
        )
    else:
        out.append("Memory vs packets: **NOT MEASURED** (flowscope scaling rows not available)")
    mf = fs_rows.get(SCALE_MIXED)
    if lf and mf:
        out.append(
            "Memory with more flows (information): same packet count, "
            f"{_fmt(mf.open_flows, ',')} vs {_fmt(lf.open_flows, ',')} open flows and "
            f"{_fmt(mf.flows, ',')} vs {_fmt(lf.flows, ',')} flows written: "
            f"{_num(lf.peak_rss_mib):,.0f} → {_num(mf.peak_rss_mib):,.0f} MiB"
        )
    return out, fs


def _pf(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def write_docs(section: str, path: Path = DOCS) -> None:
    """Replace this benchmark's section of ``path``, keeping everything else."""
    write_section(section, MARK_START, MARK_END, path)


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--packets", type=int, default=10_000_000, help="throughput capture size (default 10 M)"
    )
    ap.add_argument(
        "--scale-packets", type=int, default=2_000_000,
        help="size of the memory-scaling captures (default 2 M)",
    )  # fmt: skip
    ap.add_argument("--seed", type=int, default=1, help="capture seed (default 1)")
    ap.add_argument(
        "--work-dir", type=Path, default=REPO / "bench-work", help="default: bench-work/"
    )
    ap.add_argument("--cpu", type=int, default=0, help="CPU every measured tool is pinned to")
    ap.add_argument("--repeat", type=int, default=3, help="flowscope warm runs, best of N")
    ap.add_argument("--skip-nfstream", action="store_true")
    ap.add_argument(
        "--skip-nfstream-nodpi", action="store_true", help="skip the n_dissections=0 run"
    )
    ap.add_argument("--skip-cicflowmeter", action="store_true")
    ap.add_argument("--skip-scaling", action="store_true", help="skip the memory-scaling runs")
    ap.add_argument(
        "--skip-long", action="store_true", help="skip the long-flow (few flows) capture"
    )
    ap.add_argument("--no-write-docs", action="store_true", help="do not touch docs/")
    ap.add_argument("--docs", type=Path, default=DOCS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.packets < 1 or args.scale_packets < 1 or args.repeat < 1:
        ap.error("--packets, --scale-packets and --repeat must be positive")
    ncpu = os.cpu_count() or 1
    if not 0 <= args.cpu < ncpu:
        ap.error(f"--cpu must be between 0 and {ncpu - 1}")

    started = time.perf_counter()
    work: Path = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    # Keep this orchestrating process off the measured core.
    if ncpu > 1:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, set(range(ncpu)) - {args.cpu})
    cpu = args.cpu

    cic_n = min(CIC_CUT, args.packets)
    cap = ensure_capture(work, args.packets, args.seed, [cic_n])
    full = Path(str(cap["path"]))
    n_full = int(_num(cap["packets"]))
    cuts = {int(k): Path(v) for k, v in cap["cuts"].items()}  # type: ignore[attr-defined]
    cic_path = cuts.get(cic_n, full)
    scale_inputs: list[ScaleInput] = []
    if not args.skip_scaling:
        sp = args.scale_packets
        quarter = max(1, sp // 4)
        mixed = ensure_capture(work, sp, args.seed, [min(CIC_CUT, sp), quarter])
        cap["scaling_mixed"] = mixed
        scale_inputs += [
            ScaleInput.of(mixed, quarter, SCALE_MIXED_QUARTER),
            ScaleInput.of(mixed, None, SCALE_MIXED),
        ]
        if not args.skip_long:
            long_cap = ensure_capture(work, sp, args.seed, [quarter], mix="long")
            cap["scaling_long"] = long_cap
            scale_inputs += [
                ScaleInput.of(long_cap, quarter, SCALE_LONG_QUARTER),
                ScaleInput.of(long_cap, None, SCALE_LONG),
            ]
    warm_page_cache(list(dict.fromkeys([full, cic_path, *(i.path for i in scale_inputs)])))

    versions: dict[str, str] = {}
    rows: list[Row] = []
    scaling: list[Row] = []
    startup: Row | None = None

    # flowscope
    exe, why = flowscope_cli()
    versions["flowscope"] = dist_version(Path(sys.executable), "flowscope")
    if exe is None:
        log(f"flowscope: not available ({why})")
        for cfg in ("cold JIT cache", f"warm, best of {args.repeat}"):
            rows.append(Row("flowscope", cfg, full.name, n_full, "not available", why))
        for si in scale_inputs:
            scaling.append(si.row("flowscope", "not available", why))
    else:
        log("flowscope: cold JIT cache")
        cold = run_flowscope(exe, full, n_full, full.name, work, 1, cold=True, cpu=cpu)
        log(f"flowscope: warm, best of {args.repeat}")
        warm = run_flowscope(exe, full, n_full, full.name, work, args.repeat, False, cpu)
        if cold.ok and warm.ok and cold.wall_s and warm.wall_s:
            cold.note = (
                f"JIT compilation and cache fill ≈ {cold.wall_s - warm.wall_s:.1f} s "
                f"(flowscope reports {_fmt(cold.jit_s, '.1f')} s)"
            )
        rows += [cold, warm]
        for r in rows[-2:]:
            log(f"  {r.config}: {_fmt(r.wall_s, '.2f')} s, {_mpps(r.pps)} pkt/s, {r.status}")
        log("flowscope: start-up and exit (shipped sample, best of 5)")
        startup = run_startup(exe, work, 5, cpu)
        log(f"  {_fmt(startup.wall_s, '.2f')} s (kernel-cache load {_fmt(startup.jit_s, '.2f')} s)")
        for si in scale_inputs:
            log(f"flowscope: {si.kind} (memory scaling)")
            r = run_flowscope(exe, si.path, si.packets, si.path.name, work, args.repeat, False, cpu)
            scaling.append(si.adopt(r))

    # NFStream
    if not args.skip_nfstream:
        py, err = ensure_venv(work / "venv-nfstream", NFSTREAM_REQS, work / "logs/nfs-pip.log")
        if py is None:
            rows.append(Row("NFStream", "default", full.name, n_full, "not available", err))
        else:
            versions["NFStream"] = dist_version(py, "nfstream")
            log("NFStream: default configuration")
            rows.append(run_nfstream(py, full, n_full, full.name, work, None, cpu))
            log(f"  {_fmt(rows[-1].wall_s, '.1f')} s, {_mpps(rows[-1].pps)} pkt/s")
            if not args.skip_nfstream_nodpi:
                log("NFStream: n_dissections=0")
                rows.append(run_nfstream(py, full, n_full, full.name, work, 0, cpu))
                log(f"  {_fmt(rows[-1].wall_s, '.1f')} s, {_mpps(rows[-1].pps)} pkt/s")
            # For context only the mixed capture: NFStream's memory is not the target.
            for si in scale_inputs:
                if si.kind not in (SCALE_MIXED_QUARTER, SCALE_MIXED):
                    continue
                log(f"NFStream: {si.kind} (memory scaling)")
                r = run_nfstream(py, si.path, si.packets, si.path.name, work, None, cpu)
                scaling.append(si.adopt(r))

    # cicflowmeter
    if not args.skip_cicflowmeter:
        py, err = ensure_venv(work / "venv-cicflowmeter", CIC_REQS, work / "logs/cic-pip.log")
        if py is None:
            rows.append(Row("cicflowmeter", "", cic_path.name, cic_n, "not available", err))
        else:
            versions["cicflowmeter"] = dist_version(py, "cicflowmeter")
            versions["scapy"] = dist_version(py, "scapy")
            log(f"cicflowmeter: {cic_n:,}-packet cut")
            rows.append(run_cicflowmeter(py, cic_path, cic_n, work, cpu))
            log(f"  {_fmt(rows[-1].wall_s, '.1f')} s, {_mpps(rows[-1].pps)} pkt/s")

    lines, fs_pps = verdicts(rows, scaling, startup)
    res = Results(
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine_info(),
        versions=versions,
        capture=cap,
        rows=rows,
        scaling=scaling,
        startup=startup,
        flowscope_pps=fs_pps,
        verdicts=lines,
        elapsed_s=time.perf_counter() - started,
        command=" ".join([".venv/bin/python benchmarks/bench_flows.py", *(argv or sys.argv[1:])]),
        cpu=cpu,
    )
    section = render(res)
    (work / "results-flows.json").write_text(json.dumps(res.as_dict(), indent=2, default=str))
    if not args.no_write_docs:
        write_docs(section, args.docs)
        log(f"wrote {args.docs}")
    print(section)
    log(f"done in {res.elapsed_s:.0f} s; raw results in {work / 'results-flows.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
