"""SQLite store: queries for the dashboard, injection-proof filters and sorting, alert
upserts, sessions, retention, read-only access."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flowscope.errors import FlowscopeError
from flowscope.flows.registry import EXTRAS, FEATURE_NAMES
from flowscope.sinks.batch import FlowBatch, prepare
from flowscope.sinks.eve import flow_events
from flowscope.sinks.store import FLOW_SORTS, FlowStore, QueryError, Retention
from test_sinks_batch import batch_for, scan_flows, verdicts_for


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowStore]:
    """All scan flows in one store (module-scoped: hypothesis reuses it)."""
    s = FlowStore(tmp_path_factory.mktemp("store") / "flowscope.db", fsync=False)
    s.write_flows(prepare(batch_for()))
    s.flush()
    yield s
    s.close()


def alert(iid: str | None, state: str, severity: int = 2, sig: str = "SSH brute force") -> dict:
    fs: dict = {"state": state, "attempts": 10}
    if iid is not None:
        fs["incident_id"] = iid
    return {
        "event_type": "alert",
        "src_ip": "10.77.0.66",
        "dest_ip": "10.77.0.12",
        "dest_port": 22,
        "proto": "TCP",
        "alert": {"signature": sig, "category": "bruteforce", "severity": severity},
        "flowscope": fs,
    }


def test_wal_and_counts(store: FlowStore) -> None:
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    flows = scan_flows()
    v = verdicts_for(flows.num_rows)
    c = store.counts()
    assert c["flows"] == flows.num_rows
    assert c["malicious"] == int(v.malicious.sum()) == c["by_verdict"]["Malicious"]
    assert sum(c["by_family"].values()) == flows.num_rows
    assert set(c["by_risk"]) <= {"low", "medium", "high", "critical"}
    assert c["pruned_flows"] == 0 and c["session"] == store.session


def test_query_pages_and_default_order(store: FlowStore) -> None:
    p1 = store.query_flows(page_size=100)
    p2 = store.query_flows(page=2, page_size=100)
    assert p1.total == scan_flows().num_rows and p1.pages == -(-p1.total // 100)
    firsts = [r["first_seen"] for r in p1.rows + p2.rows]
    assert firsts == sorted(firsts, reverse=True)  # newest first
    assert not {r["id"] for r in p1.rows} & {r["id"] for r in p2.rows}
    row = p1.rows[0]
    assert row["proto"] in ("TCP", "UDP", "ICMP") and row["timestamp"].endswith("+0000")


def test_filters(store: FlowStore) -> None:
    t = scan_flows().to_pylist()
    v = verdicts_for(len(t))
    fam = v.family_names()

    def total(**f: object) -> int:
        return store.query_flows(f, page_size=1).total

    assert total(src_ip="172.16.0.8") == sum(r["src_ip"] == "172.16.0.8" for r in t)
    assert total(dst_port=80) == sum(r["dst_port"] == 80 for r in t)
    assert total(port="80") == sum(80 in (r["src_port"], r["dst_port"]) for r in t)
    assert total(protocol="udp") == sum(r["protocol"] == 17 for r in t) == total(protocol=17)
    assert total(ip="192.168.1.25") == sum("192.168.1.25" in (r["src_ip"], r["dst_ip"]) for r in t)
    assert total(verdict="Malicious") == int(v.malicious.sum()) == total(malicious=True)
    assert total(family=["scan", "dos"]) == sum(f in ("scan", "dos") for f in fam)
    stored = np.round(v.score.astype(np.float64), 6)  # scores are stored to 6 decimals
    assert total(min_score=0.9) == int((stored >= 0.9).sum())
    assert total(max_score=0.25) == int((stored <= 0.25).sum())
    mid = sorted(r["first_seen"] for r in t)[len(t) // 2]
    assert total(since=mid) + total(until=mid) == len(t)
    assert total(search="192.168.1.25-") == sum("192.168.1.25-" in r["flow_id"] for r in t)
    assert total(search="%") == 0 and total(search="_") == 0  # wildcards are literal
    assert total(end_reason="rst", protocol="tcp") == sum(
        r["end_reason"] == "rst" and r["protocol"] == 6 for r in t
    )
    assert total(src_ip=None) == len(t)  # None = filter not set


def test_sorting_whitelist(store: FlowStore) -> None:
    for key in FLOW_SORTS:
        for s in (key, f"-{key}"):
            assert len(store.query_flows(sort=s, page_size=5).rows) == 5
    scores = [r["score"] for r in store.query_flows(sort="-score", page_size=50).rows]
    assert scores == sorted(scores, reverse=True)
    ports = [r["dst_port"] for r in store.query_flows(sort="dst_port", page_size=50).rows]
    assert ports == sorted(ports)
    risk = [r["risk"] for r in store.query_flows(sort="-risk", page_size=3).rows]
    assert risk == ["critical"] * 3
    for bad in ("score; DROP TABLE flows", "score DESC", "1", "-", "(SELECT 1)", "features"):
        with pytest.raises(QueryError, match="cannot sort by"):
            store.query_flows(sort=bad)
    assert store.counts()["flows"] == scan_flows().num_rows


def test_bad_filters_and_paging(store: FlowStore) -> None:
    bad = [
        {"src_ip = '1' OR 1=1 --": "x"},
        {"nosuch": 1},
        {"dst_port": "80 OR 1=1"},
        {"dst_port": 70000},
        {"protocol": "tcp; DROP TABLE flows"},
        {"min_score": "nan"},
        {"src_ip": 5},
        {"malicious": "yes"},
        {"family": []},
        {"since": "²"},
        {"session": "current"},
    ]
    for f in bad:
        with pytest.raises(QueryError):
            store.query_flows(f)
    for page, size in ((0, 10), (1, 0), (1, 5000), ("1", 10)):
        with pytest.raises(QueryError):
            store.query_flows(page=page, page_size=size)  # type: ignore[arg-type]
    assert store.counts()["flows"] == scan_flows().num_rows


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    key=st.sampled_from(["src_ip", "dst_ip", "ip", "family", "verdict", "risk", "search"]),
    text=st.text(max_size=40),
)
# SQL wildcards and a NUL (which ends a LIKE pattern early) must match literally.
@example(key="search", text="\x00")
@example(key="search", text="%")
@example(key="search", text="_")
@example(key="search", text="1.")
def test_any_filter_text_is_data(store: FlowStore, key: str, text: str) -> None:
    page = store.query_flows({key: text}, page_size=20)
    for r in page.rows:
        if key == "search":
            assert text in r["flow_key"]
        elif key == "ip":
            assert text in (r["src_ip"], r["dst_ip"])
        else:
            assert r[key] == text
    assert store._db.execute("SELECT COUNT(*) FROM flows").fetchone()[0] == scan_flows().num_rows


def test_get_flow_returns_every_feature(store: FlowStore) -> None:
    t = scan_flows()
    batch = prepare(batch_for())
    events = flow_events(batch)
    i = 123
    row = t.slice(i, 1).to_pylist()[0]
    page = store.query_flows({"flow_key": row["flow_id"]}, page_size=10)
    match = [r for r in page.rows if r["first_seen"] == row["first_seen"]]
    (summary,) = match
    flow = store.get_flow(summary["id"])
    assert flow is not None
    assert set(FEATURE_NAMES) | {e.name for e in EXTRAS} <= set(flow["features"])
    for name in FEATURE_NAMES:
        assert flow["features"][name] == pytest.approx(row[name], rel=1e-12, abs=0)
    assert flow["src_ip"] == row["src_ip"] and flow["first_seen"] == row["first_seen"]
    assert flow["eve_flow_id"] == events[i]["flow_id"]
    assert flow["extra"] == {"capture": row["capture"]}
    assert set(flow["proba"]) == {"benign", "scan", "dos", "bruteforce", "web"}
    assert flow["malicious"] is bool(batch.verdicts.malicious[i])
    assert (flow["top_features"] is not None) is flow["malicious"]
    assert store.get_flow(10**9) is None


def test_top_talkers_and_timeseries(store: FlowStore) -> None:
    t = scan_flows().to_pylist()
    by_flows = store.top_talkers("flows", window=None, limit=3)
    counts: dict[str, int] = {}
    for r in t:
        counts[r["src_ip"]] = counts.get(r["src_ip"], 0) + 1
    best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    assert [(r["ip"], r["flows"]) for r in by_flows] == best
    by_bytes = store.top_talkers("bytes", window=None)
    assert [r["bytes"] for r in by_bytes] == sorted((r["bytes"] for r in by_bytes), reverse=True)
    newest = max(r["last_seen"] for r in t)
    recent = store.top_talkers("flows", window=60)
    assert sum(r["flows"] for r in recent) == sum(r["last_seen"] >= newest - 60 * 10**9 for r in t)
    dst = store.top_talkers("flows", window=None, side="dst", limit=1)
    assert dst[0]["flows"] == max(
        sum(r["dst_ip"] == ip for r in t) for ip in {r["dst_ip"] for r in t}
    )
    series = store.timeseries(bucket=60)
    assert sum(b["flows"] for b in series) == len(t)
    assert all(b["start_ns"] % (60 * 10**9) == 0 for b in series)
    assert [b["start_ns"] for b in series] == sorted(b["start_ns"] for b in series)
    with pytest.raises(QueryError):
        store.top_talkers("rows")  # type: ignore[arg-type]
    with pytest.raises(QueryError):
        store.timeseries(bucket=0)


def test_alert_upserts(tmp_path: Path) -> None:
    s = FlowStore(tmp_path / "a.db", fsync=False)
    assert s.write_alert(alert("inc-1", "new")) == "inc-1"
    s.write_alert(alert("inc-1", "update", severity=1))
    s.write_alert(alert("inc-1", "end"))
    s.write_alert(alert(None, "new", sig="SYN flood"), incident_id="inc-2")
    anon = s.write_alert(alert(None, "new", sig="port scan"))
    page = s.query_alerts()
    assert page.total == 3
    one = s.get_alert("inc-1")
    assert one is not None
    assert (one["state"], one["events"], one["severity"]) == ("end", 3, 2)
    assert one["event"]["flowscope"]["state"] == "end" and one["first_ts"] <= one["last_ts"]
    assert s.get_alert(anon) is not None and len(anon) == 32
    assert s.query_alerts({"state": "new"}).total == 2
    assert s.query_alerts({"signature": "SYN flood"}).rows[0]["incident_id"] == "inc-2"
    sev = [r["severity"] for r in s.query_alerts(sort="severity").rows]
    assert sev == sorted(sev)
    with pytest.raises(QueryError):
        s.query_alerts(sort="severity; --")
    with pytest.raises(QueryError):
        s.query_alerts({"event": "x"})
    assert s.counts()["alerts_by_state"] == {"end": 1, "new": 2}
    s.close()


def test_rule_engine_events_fill_the_alert_columns(tmp_path: Path) -> None:
    from test_sinks_eve import FakeAlertEvent

    s = FlowStore(tmp_path / "e.db", fsync=False)
    for kind in ("new", "update", "update", "end"):
        s.write_alert(FakeAlertEvent(kind))
    (row,) = s.query_alerts().rows
    assert (row["state"], row["events"], row["level"], row["rule"], row["family"]) == (
        "end",
        4,
        "high",
        "syn_flood",
        "dos",
    )
    assert s.query_alerts({"level": "high", "rule": "syn_flood"}).total == 1
    assert s.query_alerts({"family": "scan"}).total == 0
    assert [r["level"] for r in s.query_alerts(sort="-level").rows] == ["high"]
    s.close()


def test_sessions_never_delete(tmp_path: Path) -> None:
    s = FlowStore(tmp_path / "s.db", fsync=False)
    first = s.session
    s.write_flows(prepare(batch_for(100)))
    s.write_alert(alert("inc-1", "new"))
    second = s.new_session("after clear")
    assert second != first and s.session == second
    assert s.query_flows().total == 0 and s.counts()["alerts"] == 0
    s.write_flows(prepare(batch_for(30)))
    s.write_alert(alert("inc-1", "update"))  # same incident id, new session: a new row
    assert s.query_flows().total == 30
    assert s.query_flows({"session": first}).total == 100
    assert s.query_flows({"session": "all"}).total == 130
    assert s.query_alerts({"session": "all"}).total == 2
    rows = {r["id"]: r for r in s.sessions()}
    assert rows[first]["ended"] is not None and rows[first]["flows"] == 100
    assert rows[second]["label"] == "after clear" and rows[second]["ended"] is None
    s.close()
    # Reopening continues the newest session.
    s2 = FlowStore(tmp_path / "s.db", fsync=False)
    assert s2.session == second and s2.query_flows().total == 30
    s2.close()


def test_retention_by_count_and_age_is_counted(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    s = FlowStore(
        tmp_path / "r.db",
        retention=Retention(max_flows=150, max_alerts=2, max_age=3600),
        fsync=False,
        clock=lambda: now[0],
    )
    batch = prepare(batch_for(100))
    s.write_flows(batch)
    old_session = s.session
    s.new_session()
    s.write_flows(batch)
    for i in range(3):
        s.write_alert(alert(f"inc-{i}", "new"))
    res = s.prune()
    assert (res.flows, res.alerts) == (50, 1)
    assert res.by_session == {old_session: (50, 0), s.session: (0, 1)}
    assert s.query_flows({"session": "all"}).total == 150
    assert s.query_flows({"session": old_session}).total == 50  # the oldest went first
    c = s.counts(old_session)
    assert c["pruned_flows"] == 50 and c["pruned_flows_total"] == 50
    now[0] += 3601  # everything stored before is now too old
    s.write_flows(prepare(batch_for(10)))
    res = s.prune()
    assert (res.flows, res.alerts) == (150, 2)
    assert s.query_flows({"session": "all"}).total == 10
    c = s.counts("all")
    assert c["pruned_flows"] == 200 == c["pruned_flows_total"] and c["pruned_alerts"] == 3
    s.close()


def test_readonly_reader_beside_a_writer(tmp_path: Path) -> None:
    w = FlowStore(tmp_path / "ro.db", fsync=False)
    w.write_flows(prepare(batch_for(20)))
    w.flush()
    r = FlowStore(tmp_path / "ro.db", readonly=True)
    assert r.query_flows().total == 20
    with pytest.raises(FlowscopeError, match="read-only"):
        r.write_flows(prepare(batch_for(5)))
    sid = w.new_session()
    w.write_flows(prepare(batch_for(5)))
    w.flush()
    assert r.session == sid and r.query_flows().total == 5  # follows the writer
    r.close()
    w.close()


def test_schema_version_mismatch(tmp_path: Path) -> None:
    FlowStore(tmp_path / "v.db", fsync=False).close()
    db = sqlite3.connect(tmp_path / "v.db")
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(FlowscopeError, match="schema 99"):
        FlowStore(tmp_path / "v.db")


def test_suppressed_verdicts_are_kept(tmp_path: Path) -> None:
    flows = scan_flows(4)
    v = verdicts_for(4)
    v.suppressed = np.array([True, False, False, False])
    v.rule = np.array([7, -1, -1, -1], np.int32)
    s = FlowStore(tmp_path / "k.db", fsync=False)
    s.write_flows(prepare(FlowBatch(flows, v)))
    rows = s.query_flows(sort="id").rows
    flow = s.get_flow(rows[0]["id"])
    assert flow is not None and flow["extra"]["suppressed"] is True and flow["extra"]["rule"] == 7
    s.close()
