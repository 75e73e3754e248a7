"""The older dashboard's CSV logs: headers in each dialect, paired rows, rotation."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from flowscope.errors import FlowscopeError
from flowscope.flows.registry import column_name, dialect_columns
from flowscope.sinks.batch import prepare
from flowscope.sinks.logs import OUTPUT_VERDICT_COLUMNS, DashboardLogs
from flowscope.sinks.rotate import FlushPolicy, Rotation
from test_sinks_batch import batch_for

NO_SYNC = FlushPolicy(interval=1.0, fsync=False)


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def test_default_dialect_headers_and_paired_rows(tmp_path: Path) -> None:
    batch = batch_for(300)
    logs = DashboardLogs(tmp_path, flush=NO_SYNC)
    logs.write_flows(prepare(batch))
    logs.close()
    assert logs.paths is None  # closed
    inp = sorted((tmp_path / "logs").glob("input_logs_*.csv"))
    out = sorted((tmp_path / "logs").glob("output_logs_*.csv"))
    assert len(inp) == len(out) == 1
    assert inp[0].name.removeprefix("input_") == out[0].name.removeprefix("output_")
    header, rows = read_csv(inp[0])
    # CSE-CIC-IDS2018 names, in registry order, for every column the table has a name for.
    assert header == [n for c, n in dialect_columns("cse-cic-ids2018")]
    assert header[:7] == ["Flow ID", "Src IP", "Src Port", "Dst IP", "Dst Port", "Protocol",
                          "Timestamp"]  # fmt: skip
    assert "Tot Fwd Pkts" in header and "Flow Byts/s" in header
    assert len(rows) == 300
    oheader, orows = read_csv(out[0])
    assert oheader == header[:7] + list(OUTPUT_VERDICT_COLUMNS)
    assert len(orows) == 300
    flows = batch.flows
    v = batch.verdicts
    for i in (0, 7, 299):
        assert rows[i][0] == orows[i][0] == flows.column("flow_id")[i].as_py()
        assert int(rows[i][header.index("Tot Fwd Pkts")]) == flows.column("fwd_packets")[i].as_py()
        assert abs(float(orows[i][7]) - float(v.score[i])) < 1e-6
        assert orows[i][8] == ("Malicious" if v.malicious[i] else "Normal")
        assert orows[i][9] == v.family_names()[i]
    flagged = int(np.flatnonzero(v.malicious)[0])
    assert orows[flagged][11].startswith("syn_flag_count=1 (+0.75)")
    risks = {r[10] for r in orows}
    assert risks <= {"low", "medium", "high", "critical", ""} and len(risks) > 2


@pytest.mark.parametrize("dialect", ["flowscope", "cic", "cic-ids2017"])
def test_other_dialects(tmp_path: Path, dialect: str) -> None:
    batch = batch_for(20)
    logs = DashboardLogs(tmp_path, dialect=dialect, flush=NO_SYNC)
    logs.write_flows(prepare(batch))
    logs.close()
    (inp,) = (tmp_path / "logs").glob("input_logs_*.csv")
    (out,) = (tmp_path / "logs").glob("output_logs_*.csv")
    header, rows = read_csv(inp)
    expected = [n for c, n in dialect_columns(dialect) if c in batch.flows.column_names]
    assert header == expected and len(rows) == 20
    oheader, _ = read_csv(out)
    assert oheader[0] == (column_name("flow_id", dialect) or "flow_id")
    if dialect == "flowscope":
        assert set(header) >= {"first_seen", "end_reason", "fwd_rst_flags", "fwd_wire_bytes"}


def test_unknown_dialect_is_one_line() -> None:
    with pytest.raises(FlowscopeError, match="unknown dialect 'cic2019'"):
        DashboardLogs("x", dialect="cic2019")


def test_size_rotation_starts_pairs_with_headers_and_keeps_n(tmp_path: Path) -> None:
    clock = iter(range(1_700_000_000, 1_700_100_000, 7))  # a new second for every file pair
    batch = prepare(batch_for(50))
    logs = DashboardLogs(
        tmp_path,
        rotation=Rotation(max_bytes=20_000, keep=2),
        flush=NO_SYNC,
        clock=lambda: float(next(clock)),
    )
    for _ in range(6):
        logs.write_flows(batch)
    logs.close()
    d = tmp_path / "logs"
    inputs = sorted(d.glob("input_logs_*.csv"))
    outputs = sorted(d.glob("output_logs_*.csv"))
    assert logs.files.rotations >= 4
    assert len(inputs) == len(outputs) == 3  # current + keep=2
    assert logs.files.deleted == 2 * (logs.files.rotations + 1 - 3)
    for path in inputs + outputs:
        header, rows = read_csv(path)
        assert header[0] == "Flow ID" and len(rows) % 50 == 0 and rows
    stamps = [p.name.removeprefix("input_") for p in inputs]
    assert stamps == [p.name.removeprefix("output_") for p in outputs]


def test_same_second_rotation_does_not_overwrite(tmp_path: Path) -> None:
    batch = prepare(batch_for(30))
    logs = DashboardLogs(
        tmp_path, rotation=Rotation(max_bytes=1), flush=NO_SYNC, clock=lambda: 1_700_000_000.0
    )
    for _ in range(3):
        logs.write_flows(batch)
    logs.close()
    names = sorted(p.name for p in (tmp_path / "logs").glob("input_logs_*.csv"))
    assert names == [
        "input_logs_20231114T221320Z.csv",
        "input_logs_20231114T221320Z_1.csv",
        "input_logs_20231114T221320Z_2.csv",
    ]
    assert all(len(read_csv(tmp_path / "logs" / n)[1]) == 30 for n in names)


def test_time_rotation(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    batch = prepare(batch_for(10))
    logs = DashboardLogs(
        tmp_path, rotation=Rotation(max_seconds=60), flush=NO_SYNC, clock=lambda: now[0]
    )
    logs.write_flows(batch)
    now[0] += 59
    logs.write_flows(batch)
    now[0] += 1
    logs.write_flows(batch)
    logs.close()
    files = sorted((tmp_path / "logs").glob("input_logs_*.csv"))
    assert [len(read_csv(p)[1]) for p in files] == [20, 10]


def test_nothing_written_leaves_no_files(tmp_path: Path) -> None:
    logs = DashboardLogs(tmp_path, flush=NO_SYNC)
    logs.write_flows(prepare(batch_for(0)))
    logs.close()
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())
