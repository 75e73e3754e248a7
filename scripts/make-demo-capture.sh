#!/usr/bin/env bash
# Records the capture `flowscope demo` replays: runs the lab scenario "demo"
# (src/flowscope/lab/scenarios/demo.toml) and writes
#   src/flowscope/data/demo.pcap.gz  the bridge capture, gzip -9 (kept under 3 MB)
#   src/flowscope/data/demo.json     what is in it: attacks with family, hosts and times
#                                    relative to the capture's first packet
# Needs root and the lab's tools (scripts/system-deps.sh). Usage:
#   sudo scripts/make-demo-capture.sh [OUT_DIR]      # default: src/flowscope/data
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
out=${1:-src/flowscope/data}
limit=$((3 * 1024 * 1024))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$py" -m flowscope lab run src/flowscope/lab/scenarios/demo.toml -o "$work/run"
gzip -9 -n -c "$work/run/capture.pcap" > "$work/demo.pcap.gz"
size=$(stat -c %s "$work/demo.pcap.gz")
if [ "$size" -gt "$limit" ]; then
  echo "error: demo capture is $size bytes (limit $limit): lower the scenario's rates" >&2
  exit 1
fi

# The summary the dashboard and the docs show. Times are seconds from the first packet,
# so they stay true however the capture is replayed (demo loops it at recorded speed).
"$py" - "$work/run" "$work/demo.json" <<'PY'
import csv
import json
import struct
import sys
from pathlib import Path

run, dest = Path(sys.argv[1]), Path(sys.argv[2])
scenario = json.loads((run / "scenario.json").read_text())
with (run / "capture.pcap").open("rb") as f:
    head = f.read(24 + 16)
magic = struct.unpack("<I", head[:4])[0]
little = magic in (0xA1B2C3D4, 0xA1B23C4D)
nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
sec, frac = struct.unpack(("<" if little else ">") + "II", head[24:32])
t0_ns = sec * 1_000_000_000 + (frac if nano else frac * 1000)
attacks = []
with (run / "labels.csv").open(newline="") as f:
    for row in csv.DictReader(f):
        attacks.append({
            "kind": row["kind"],
            "family": row["family"],
            "intensity": row["intensity"],
            "attacker": f"{row['attacker']} ({row['attacker_addr']})",
            "victim": f"{row['victim']} ({row['victim_addr']})",
            "start_s": round((int(row["start_ns"]) - t0_ns) / 1e9, 1),
            "end_s": round((int(row["end_ns"]) - t0_ns) / 1e9, 1),
        })
summary = {
    "scenario": "demo",
    "description": scenario.get("scenario", {}).get("description", ""),
    "made_by": "scripts/make-demo-capture.sh (flowscope lab run demo)",
    "duration_s": scenario.get("scenario", {}).get("duration"),
    "hosts": {name: h["addr"] for name, h in scenario.get("hosts", {}).items()},
    "attacks": attacks,
}
dest.write_text(json.dumps(summary, indent=2) + "\n")
PY
mkdir -p "$out"
mv "$work/demo.pcap.gz" "$out/demo.pcap.gz"
mv "$work/demo.json" "$out/demo.json"
echo "wrote $out/demo.pcap.gz ($size bytes) and $out/demo.json"
