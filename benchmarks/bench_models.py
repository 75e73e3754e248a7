"""Model inference benchmark: batched flows/s and bundle load time, one core.

Why these numbers: the sensor classifies every finished flow (and active flows for early
verdicts), so inference must keep up with the flow engine; the target is ≥ 200,000
flows/s for the default bundle on one core, and < 1 s to load a bundle.

What it does:

1. Builds a realistic feature matrix: flows metered by flowscope from the generated
   benchmark capture (``gen_capture.py``, reused from ``bench-work/`` when present),
   repeated to ≥ 1 M rows.
2. For each bundle (the shipped ones by default): loads it in a fresh process (cold
   start, imports included, and the load alone), then, pinned to one CPU with a one-thread
   onnxruntime session, classifies the matrix in batches (best of 3) and explains 1,000
   flows with the bundle's explanation method.
3. Writes a Markdown section into docs/benchmarks.md between ``bench_models`` markers.

Reproduce: ``.venv/bin/python benchmarks/bench_models.py`` (``make bench-models``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from docs_section import write_section

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "benchmarks.md"
MARK_START = "<!-- bench_models:start -->"
MARK_END = "<!-- bench_models:end -->"
TARGET_FLOWS_PER_S = 200_000
TARGET_LOAD_S = 1.0


def feature_rows(work: Path, min_rows: int) -> tuple[np.ndarray, str]:
    """Flow features of the benchmark capture (generated if missing), tiled to min_rows."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from flowscope.flows.extract import ExtractSummary, extract_capture
    from flowscope.flows.meter import MeterConfig
    from flowscope.flows.registry import FEATURES

    caps = sorted(work.glob("capture-*-s1.pcap"))
    if caps:
        cap = caps[0]
    else:
        work.mkdir(parents=True, exist_ok=True)
        cap = work / "capture-500000-s1.pcap"
        subprocess.run(
            [
                sys.executable,
                str(REPO / "benchmarks" / "gen_capture.py"),
                "--packets",
                "500000",
                "--seed",
                "1",
                "-o",
                str(cap),
            ],
            check=True,
        )
    names = [f.name for f in FEATURES]
    parts = []
    for t in extract_capture(cap, MeterConfig(), ExtractSummary()):
        parts.append(np.column_stack([t.column(n).to_numpy() for n in names]).astype(np.float32))
    x = np.concatenate(parts)
    reps = int(np.ceil(min_rows / len(x)))
    return np.tile(x, (reps, 1)), f"{cap.name}: {len(x):,} flows, tiled ×{reps}"


def cold_load(bundle: str) -> tuple[float, float]:
    """(process start → bundle ready, load_bundle alone) in a fresh interpreter."""
    code = (
        "import time; t0=time.perf_counter();"
        "from flowscope.models import load_detector;"
        f"t1=time.perf_counter(); d=load_detector({bundle!r}); t2=time.perf_counter();"
        "print(t2-t0, t2-t1)"
    )
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    total = time.perf_counter() - t
    _, load = map(float, out.stdout.split())
    return total, load


def throughput(bundle: str, x: np.ndarray, batch: int) -> dict[str, float]:
    from flowscope.models import FlowClassifier, load_bundle

    clf = FlowClassifier(load_bundle(bundle, threads=1))
    clf.classify_matrix(x[:batch])  # warm-up
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for i in range(0, len(x), batch):
            clf.classify_matrix(x[i : i + batch])
        best = min(best, time.perf_counter() - t)
    v = clf.classify_matrix(x[:50_000])
    rows = np.argsort(-v.score)[:1000]
    clf.explain_matrix(x[:50_000], v, rows[:10], top=5)  # loads the text model once
    t = time.perf_counter()
    clf.explain_matrix(x[:50_000], v, rows, top=5)
    explain_s = time.perf_counter() - t
    return {"flows_per_s": len(x) / best, "seconds": best, "explain_per_s": 1000 / explain_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="*", help="bundle dirs (default: the shipped ones)")
    ap.add_argument("--work", type=Path, default=REPO / "bench-work")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=65_536)
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args()
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    from flowscope.models.bundle import builtin_dir, read_meta

    bundles = args.bundles or sorted(str(p) for p in builtin_dir().iterdir() if p.is_dir())
    flow_bundles = [b for b in bundles if read_meta(b).feature_set.startswith("flowscope")]
    x, source = feature_rows(args.work, args.rows)
    results = []
    for b in flow_bundles:
        meta = read_meta(b)
        total, load = cold_load(b)
        r = throughput(b, x, args.batch)
        results.append(
            {
                "bundle": b,
                "name": meta.name,
                "algorithm": meta.algorithm,
                "cold_start_s": total,
                "load_s": load,
                **r,
            }
        )
        print(json.dumps(results[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if args.no_docs:
        return
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    lines = [
        MARK_START,
        "## Model inference",
        "",
        "Batched classification of flow-feature rows by each bundle through onnxruntime "
        f"(one intra-op thread, process pinned to one CPU, batches of {args.batch:,}, best of 3), "
        "bundle load time in a fresh process, and explanations of 1,000 flagged flows. "
        "Generated by `benchmarks/bench_models.py`; do not edit this section by hand.",
        "",
        "```sh",
        ".venv/bin/python benchmarks/bench_models.py   # make bench-models",
        "```",
        "",
        f"- Date: {now}; machine: {cpu}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}",
        f"- Rows: {len(x):,} ({source})",
        f"- Targets: ≥ {TARGET_FLOWS_PER_S:,} flows/s for the default bundle; load < "
        f"{TARGET_LOAD_S:g} s",
        "",
        "| Bundle | Algorithm | Flows/s | Load s (load_bundle) | Cold start s (imports + load) "
        "| Explanations/s | Target |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        ok = r["flows_per_s"] >= TARGET_FLOWS_PER_S and r["load_s"] < TARGET_LOAD_S
        verdict = ("met" if ok else "missed") if r["name"] == "default" else "— (not default)"
        lines.append(
            f"| {r['name']} | {r['algorithm']} | {r['flows_per_s'] / 1e3:,.0f} k | "
            f"{r['load_s']:.3f} | {r['cold_start_s']:.2f} | {r['explain_per_s']:,.0f} | "
            f"{verdict} |"
        )
    lines.append(MARK_END)
    section = "\n".join(lines)
    write_section(section, MARK_START, MARK_END, DOCS)
    print(f"wrote {DOCS}")


if __name__ == "__main__":
    main()
