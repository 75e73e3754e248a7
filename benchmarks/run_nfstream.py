"""Run NFStream on a capture the way the benchmark compares it: all features to disk.

Runs inside NFStream's own virtual environment (created by ``bench_flows.py``), never the
project's: NFStream pins its own numpy/pandas and must not leak into flowscope's.

Why these settings: the issue asks for ``statistical_analysis=True`` and ``to_pandas()``,
which is the closest NFStream gets to CICFlowMeter-style per-flow statistics. The benchmark
pins this process to one CPU (taskset); NFStream sizes its metering processes from the
CPUs it may use, so it runs one meter process feeding this one (its effective
``n_meters`` is reported). The frame is also written to Parquet so the result is
"capture file to all features on disk", as for flowscope. ``n_dissections`` keeps
NFStream's default (nDPI application detection on) unless ``--n-dissections`` says
otherwise, so the primary number is NFStream as people run it.

Prints one JSON line: flows, columns, seconds per phase, versions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture", type=Path)
    ap.add_argument("-o", "--output", type=Path, help="Parquet file to write (optional)")
    ap.add_argument("--n-dissections", type=int, default=None, help="default: NFStream's")
    ap.add_argument("--n-meters", type=int, default=None, help="default: NFStream's auto")
    args = ap.parse_args(argv)

    import nfstream  # imported here so --help works without NFStream installed

    kwargs: dict[str, object] = {
        "source": str(args.capture),
        "statistical_analysis": True,
    }
    if args.n_meters is not None:
        kwargs["n_meters"] = args.n_meters
    if args.n_dissections is not None:
        kwargs["n_dissections"] = args.n_dissections
    t0 = time.perf_counter()
    streamer = nfstream.NFStreamer(**kwargs)
    df = streamer.to_pandas()
    t1 = time.perf_counter()
    wrote = False
    if args.output is not None:
        try:
            df.to_parquet(args.output, index=False)
            wrote = True
        except ImportError:  # no pyarrow/fastparquet in this venv: keep the frame only
            wrote = False
    t2 = time.perf_counter()
    print(
        json.dumps(
            {
                "flows": len(df),
                "columns": len(df.columns),
                "meter_and_pandas_s": t1 - t0,
                "parquet_s": t2 - t1,
                "wrote_parquet": wrote,
                "nfstream": nfstream.__version__,
                "n_dissections": streamer.n_dissections,
                "n_meters": streamer.n_meters,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
