"""`flowscope flows` end to end: outputs, dialects, errors, the shipped sample."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flowscope.cli.flows import sample_capture
from flowscope.flows.registry import FEATURE_NAMES, IDENTIFIERS, dialect_columns

FLOWSCOPE = [sys.executable, "-m", "flowscope"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLOWSCOPE, *args], capture_output=True, text=True, timeout=300)


def test_no_arguments_meters_the_shipped_sample() -> None:
    assert sample_capture().is_file()
    r = run("flows")
    assert r.returncode == 0, r.stderr
    assert "flows" in r.stdout and "127.0.0.1" in r.stdout
    assert "packets read" in r.stderr and "169" in r.stderr


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_output_formats_hold_the_same_flows(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"flows{suffix}"
    r = run("flows", str(sample_capture()), "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    if suffix == ".parquet":
        rows = pq.read_table(out).to_pylist()
    elif suffix == ".csv":
        with out.open() as fh:
            rows = list(csv.DictReader(fh))
    else:
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 51
    expected = [i.name for i in IDENTIFIERS] + list(FEATURE_NAMES)
    assert all(name in rows[0] for name in expected)
    assert sum(float(r["fwd_packets"]) + float(r["bwd_packets"]) for r in rows) == 169


@pytest.mark.parametrize("dialect", ["cic", "cic-ids2017", "cse-cic-ids2018"])
def test_dialect_headers(tmp_path: Path, dialect: str) -> None:
    out = tmp_path / "flows.csv"
    r = run("flows", str(sample_capture()), "-o", str(out), "--dialect", dialect, "-q")
    assert r.returncode == 0, r.stderr
    header = out.read_text().splitlines()[0].replace('"', "").split(",")
    assert header == [name for _, name in dialect_columns(dialect)]


def test_stdout_csv() -> None:
    r = run("flows", str(sample_capture()), "-o", "-", "-q")
    assert r.returncode == 0
    assert len(r.stdout.splitlines()) == 52


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "empty"),
        (b"this is not a capture file at all", "not a pcap or pcapng"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated"),
    ],
)
def test_unreadable_input_is_one_line_and_exit_2(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "input.pcap"
    if content is not None:
        path.write_bytes(content)
    r = run("flows", str(path))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("flowscope: error:") and message in lines[0].lower()


def test_bad_options_fail_clearly(tmp_path: Path) -> None:
    r = run("flows", str(sample_capture()), "-o", str(tmp_path / "x.txt"))
    assert r.returncode == 2 and "output format" in r.stderr
    r = run("flows", str(sample_capture()), "-o", "-", "--dialect", "nope")
    assert r.returncode == 2 and "unknown dialect" in r.stderr


def test_truncated_capture_counts_and_continues(tmp_path: Path) -> None:
    data = sample_capture().read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "flows.csv"
    r = run("flows", str(cut), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "damaged records" in r.stderr and "1 truncated" in r.stderr
    assert len(out.read_text().splitlines()) > 1


def test_gzip_input(tmp_path: Path) -> None:
    import gzip

    gz = tmp_path / "sample.pcap.gz"
    gz.write_bytes(gzip.compress(sample_capture().read_bytes()))
    r = run("flows", str(gz), "-o", "-", "-q")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 52
