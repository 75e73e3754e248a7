"""The column-wise sink encoders write exactly what the per-row reference encoders write.

EVE lines are built by Arrow kernels (``flow_lines``) for speed; ``flow_events`` +
``dumps`` stays the readable definition of an event. These tests hold the two byte-equal
on batches that exercise every optional member: ICMP, VLAN, app_proto with characters
JSON must escape, bundle-rule vetoes, NaN explanations, missing risk, missing columns.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flowscope.sinks.batch import FlowBatch, prepare
from flowscope.sinks.eve import dumps, eve_time_ns, flow_events, flow_lines
from test_sinks_batch import batch_for, verdicts_for


def reference(batch: FlowBatch, only_malicious: bool = False) -> bytes:
    events = flow_events(prepare(batch), only_malicious=only_malicious)
    return "".join(dumps(e) + "\n" for e in events).encode()


def fast(batch: FlowBatch, only_malicious: bool = False) -> bytes:
    data, count = flow_lines(prepare(batch), only_malicious=only_malicious)
    assert count == data.count(b"\n")
    return data


def mixed(seed: int = 3) -> FlowBatch:
    """A batch with ICMP, VLAN tags, app_proto (escapes, non-ASCII, nulls), vetoes."""
    b = batch_for(120, seed=seed)
    t = b.flows
    n = t.num_rows
    rng = np.random.default_rng(seed)
    proto = rng.choice(np.array([6, 17, 1, 58, 47, 132]), n)
    t = t.set_column(t.column_names.index("protocol"), "protocol", pa.array(proto, pa.int64()))
    if "vlan_id" in t.column_names:
        t = t.drop_columns(["vlan_id"])
    t = t.append_column("vlan_id", pa.array(rng.integers(0, 3, n) * 100, pa.int64()))
    for name in ("icmp_type", "icmp_code"):
        if name in t.column_names:
            t = t.drop_columns([name])
    t = t.append_column("icmp_type", pa.array(rng.integers(-1, 9, n).astype(float)))
    t = t.append_column("icmp_code", pa.array(rng.integers(0, 3, n).astype(float)))
    apps = ["http", "", None, 'we"ird\\app', "dns\n", "tls-ü", "ssh"]
    t = t.append_column("app_proto", pa.array([apps[i % len(apps)] for i in range(n)]))
    v = b.verdicts
    v.suppressed = rng.random(n) < 0.2
    v.rule = rng.integers(0, 7, n)
    expl = dict(b.explanations or {})
    if expl:
        first = next(iter(expl))
        expl[first] = [("flow_duration", float("nan"), float("inf")), ("x", 1e-7, -2.5e12)]
    return FlowBatch(t, v, b.risk, expl)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flow_lines_equal_reference(seed: int) -> None:
    b = batch_for(300, seed=seed)
    assert fast(b) == reference(b)
    assert fast(b, only_malicious=True) == reference(b, only_malicious=True)


def test_flow_lines_equal_reference_on_every_optional_member() -> None:
    b = mixed()
    got = fast(b)
    assert got == reference(b)
    assert b'"icmp_type"' in got and b'"vlan":[' in got and b'"suppressed":true' in got
    assert b"\\u00fc" in got and b'we\\"ird' in got  # escaped as json.dumps does
    assert fast(b, only_malicious=True) == reference(b, only_malicious=True)


def test_flow_lines_without_optional_inputs() -> None:
    b = batch_for(50, seed=4, explain=False)
    b = FlowBatch(b.flows.drop_columns(["fwd_tcp_flags"]), b.verdicts, None, None)
    assert fast(b) == reference(b)
    empty = FlowBatch(b.flows.slice(0, 0), verdicts_for(0), None, None)
    assert flow_lines(prepare(empty)) == (b"", 0)


def test_flow_lines_none_malicious() -> None:
    b = batch_for(40, seed=5, explain=False)
    b.verdicts.malicious[:] = False
    assert flow_lines(prepare(b), only_malicious=True) == (b"", 0)


def test_eve_time_matches_arrow_strftime() -> None:
    ns = pa.array([0, 1_735_732_800_123_456_789, 1_700_000_000_000_000_999], pa.int64())
    us = pc.cast(pc.divide(ns, 1000), pa.timestamp("us", tz="UTC"))
    want = pc.strftime(us, format="%Y-%m-%dT%H:%M:%S+0000").to_pylist()
    assert eve_time_ns(ns) == want == eve_time_ns(pa.chunked_array([ns]))


def test_store_rows_keep_their_json_text(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The column-wise row builder stores the same text the per-row one did."""
    import json
    import sqlite3

    from flowscope.sinks.store import _ID_COLUMNS, FlowStore

    b = mixed(7)
    p = prepare(b)
    store = FlowStore(tmp_path / "f.db", fsync=False)
    store.write_flows(p)
    store.close()
    db = sqlite3.connect(tmp_path / "f.db")
    rows = db.execute("SELECT proba, top_features, extra, eve_flow_id FROM flows ORDER BY id")
    proba = p.rounded_proba()
    supp, rule = b.verdicts.suppressed, b.verdicts.rule
    assert supp is not None and rule is not None
    for i, (pr, top, extra, fid) in enumerate(rows.fetchall()):
        assert pr == json.dumps(dict(zip(p.classes, proba[i], strict=True)))
        want_top = p.top_json(i)
        assert top == (None if want_top is None else json.dumps(want_top))
        want_extra = {
            f.name: b.flows.column(f.name)[i].as_py()
            for f in b.flows.schema
            if pa.types.is_string(f.type)
            and f.name not in _ID_COLUMNS
            and b.flows.column(f.name)[i].is_valid
        }
        if supp[i]:
            want_extra |= {"suppressed": True, "rule": int(rule[i])}
        assert extra == (json.dumps(want_extra) if want_extra else None)
        assert fid == p.eve_flow_ids()[i]


def test_flow_lines_on_a_table_of_several_chunks() -> None:
    """A table concatenated from batches (several chunks per column) encodes the same."""
    b = batch_for(60, seed=6)
    t = pa.concat_tables([b.flows.slice(0, 25), b.flows.slice(25)])
    assert t.column("first_seen").num_chunks == 2
    chunked = FlowBatch(t, b.verdicts, b.risk, b.explanations)
    assert fast(chunked) == reference(b) == reference(chunked)
