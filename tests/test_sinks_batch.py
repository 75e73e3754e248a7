"""Sink batches: validation and shared derived columns. Also the data the sink tests share.

The flows are real: the public scan captures of ``../shared/data/pcaps/scans`` metered by
``extract_capture`` (tests skip with the reason when the data is absent). Verdicts are
built directly with ``make_verdicts`` from seeded random probabilities, so every family,
both verdicts and the risk levels occur.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pyarrow as pa
import pytest

from flowscope.flows.extract import ExtractSummary, extract_capture
from flowscope.flows.meter import MeterConfig
from flowscope.models.classify import Contribution, Verdicts, make_verdicts
from flowscope.sinks.batch import RISK_LEVELS, FlowBatch, format_top, prepare
from reference import data_file

CLASSES = ("benign", "scan", "dos", "bruteforce", "web")


@cache
def _scan_flows() -> pa.Table:
    root = data_file("pcaps", "scans")
    tables: list[pa.Table] = []
    for path in sorted(root.iterdir()):
        if path.suffix in (".pcap", ".pcapng"):
            tables += list(extract_capture(path, MeterConfig(), ExtractSummary()))
    return pa.concat_tables(tables).combine_chunks()


def scan_flows(n: int | None = None) -> pa.Table:
    """Flows of the public scan captures (all, or the first n)."""
    t = _scan_flows()
    return t if n is None else t.slice(0, n)


def verdicts_for(n: int, seed: int = 0, threshold: float = 0.5) -> Verdicts:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet([4.0, 1.0, 1.0, 1.0, 1.0], n).astype(np.float32)
    return make_verdicts(CLASSES, proba, threshold)


def risk_for(n: int, seed: int = 0) -> list[str | None]:
    rng = np.random.default_rng(seed + 1)
    levels: list[str | None] = [*RISK_LEVELS, None]
    return [levels[i] for i in rng.integers(0, len(levels), n)]


def batch_for(n: int | None = None, seed: int = 0, explain: bool = True) -> FlowBatch:
    """A realistic batch: scan flows, verdicts, risk, explanations of flagged flows."""
    flows = scan_flows(n)
    v = verdicts_for(flows.num_rows, seed)
    expl = None
    if explain:
        rows = np.flatnonzero(v.malicious)
        expl = {
            int(r): [
                Contribution("syn_flag_count", 1.0, 0.75),
                ("flow_duration", 1234.5, -0.125),
            ]
            for r in rows
        }
    return FlowBatch(flows, v, risk_for(flows.num_rows, seed), expl)


# ----------------------------------------------------------------------------- tests


def test_prepare_derives_the_shared_columns() -> None:
    b = prepare(batch_for(200))
    assert b.num_rows == 200
    assert b.verdict_table.column_names[:3] == ["score", "verdict", "family"]
    assert set(b.risk.to_pylist()) <= {*RISK_LEVELS, None}
    flagged = np.flatnonzero(b.verdicts.malicious)
    assert flagged.size and all(b.top[r] is not None for r in flagged)
    first = int(flagged[0])
    assert b.top_text[first].as_py() == "syn_flag_count=1 (+0.75); flow_duration=1234.5 (-0.125)"
    assert b.top_json(first) == [
        {"feature": "syn_flag_count", "value": 1.0, "weight": 0.75},
        {"feature": "flow_duration", "value": 1234.5, "weight": -0.125},
    ]
    benign = int(np.flatnonzero(~b.verdicts.malicious)[0])
    assert b.top[benign] is None and b.top_text[benign].as_py() == ""
    ids = b.eve_flow_ids()
    assert len(set(ids)) == len(ids) and all(0 <= i < 2**51 for i in ids)


def test_prepare_rejects_mismatched_inputs() -> None:
    flows = scan_flows(10)
    with pytest.raises(ValueError, match="9 verdicts for 10 flows"):
        prepare(FlowBatch(flows, verdicts_for(9)))
    with pytest.raises(ValueError, match="unknown risk level 'severe'"):
        prepare(FlowBatch(flows, verdicts_for(10), ["low"] * 9 + ["severe"]))
    with pytest.raises(ValueError, match="risk has 3 values"):
        prepare(FlowBatch(flows, verdicts_for(10), ["low"] * 3))
    with pytest.raises(ValueError, match="row 10"):
        prepare(FlowBatch(flows, verdicts_for(10), None, {10: [("x", 1.0, 1.0)]}))


def test_risk_accepts_arrow_and_numpy() -> None:
    flows = scan_flows(4)
    v = verdicts_for(4)
    levels = ["low", "medium", None, "critical"]
    for risk in (pa.array(levels), np.array(levels, dtype=object), pa.chunked_array([levels])):
        assert prepare(FlowBatch(flows, v, risk)).risk.to_pylist() == levels
    dict_risk = pa.array(levels).dictionary_encode()
    assert prepare(FlowBatch(flows, v, dict_risk)).risk.to_pylist() == levels


def test_explained_zips_rows_and_contributions() -> None:
    flows = scan_flows(5)
    v = verdicts_for(5)
    b = FlowBatch.explained(flows, v, np.array([1, 3]), [[("a", 1.0, 2.0)], []])
    assert b.explanations == {1: [("a", 1.0, 2.0)], 3: []}
    with pytest.raises(ValueError, match="2 explained rows but 1"):
        FlowBatch.explained(flows, v, [1, 3], [[("a", 1.0, 2.0)]])


def test_format_top() -> None:
    assert format_top([("x", 0.5, 0.25), ("y", 1e9, -3.0)]) == "x=0.5 (+0.25); y=1e+09 (-3)"
    assert format_top([]) == ""
