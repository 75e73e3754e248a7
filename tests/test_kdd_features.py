"""NSL-KDD features from flowscope flows: vocabularies, service, flag, bytes, windows.

Hand-made captures (pktbuild) go through decode → FlowMeter → compute_features →
KddFeaturizer, and the expected KDD values are worked out from the definitions in
flowscope.kdd (see docs/kdd.md). Window tests also build connections directly.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowscope.capture.batch import PacketBatch
from flowscope.decode import decode
from flowscope.flows.features import compute_features
from flowscope.flows.meter import FlowMeter, FlowRecords, MeterConfig
from flowscope.kdd.connstate import conn_state_codes
from flowscope.kdd.features import FLOW_COLUMNS, KddFeaturizer, kdd_table
from flowscope.kdd.services import service_codes
from flowscope.kdd.vocab import FLAG, FLAGS, KDD_FEATURES, SERVICE, SERVICES
from flowscope.kdd.windows import Connections, TrafficWindows
from pktbuild import (
    ACK,
    FIN,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    PROTO_ICMP,
    PSH,
    RST,
    SYN,
    URG,
    eth_tcp4,
    eth_udp4,
    ether,
    icmp,
    ipv4,
)

NS = 1_000_000_000
T0 = 1_700_000_000 * NS
C, S, X = "10.0.0.1", "10.0.0.2", "10.0.0.9"  # client, server, scanner
FIELDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "nsl-kdd" / "field_names.csv"


def at(us: float) -> int:
    return T0 + round(us * 1000)


def kdd_rows(packets: list[tuple[int, bytes]], **window: Any) -> list[dict[str, Any]]:
    """KDD rows (dataset words for categoricals) of a capture, in flow start order."""
    dec = decode(PacketBatch.from_packets(packets))
    meter = FlowMeter(MeterConfig())
    flows = compute_features(FlowRecords.concat([*meter.update(dec), *meter.flush()]))
    flows = flows.sort_by("first_seen")
    rows = kdd_table(KddFeaturizer(**window).transform(flows)).to_pylist()
    for r, ident in zip(rows, flows.select(["dst_port", "src_ip"]).to_pylist(), strict=True):
        r["_dport"], r["_src"] = ident["dst_port"], ident["src_ip"]
    return rows


def check(row: dict[str, Any], expected: dict[str, Any]) -> None:
    bad = {k: (v, row[k]) for k, v in expected.items() if row[k] != pytest.approx(v)}
    assert not bad, f"(expected, actual): {bad}"


# ------------------------------------------------------------------ vocabularies


def test_vocabularies() -> None:
    assert len(KDD_FEATURES) == 41 and len(set(KDD_FEATURES)) == 41
    assert len(SERVICES) == 70 and list(SERVICES) == sorted(SERVICES)
    assert len(FLAGS) == 11 and list(FLAGS) == sorted(FLAGS)
    if FIELDS.is_file():  # the dataset's own field list, when the shared data is present
        names = [line.split(",")[0] for line in FIELDS.read_text().split()]
        assert tuple(names) == KDD_FEATURES


def test_service_map() -> None:
    cases = [  # protocol, dst port, icmp type, icmp code → service
        (6, 80, -1, -1, "http"),
        (6, 443, -1, -1, "http_443"),
        (6, 21, -1, -1, "ftp"),
        (6, 6003, -1, -1, "X11"),
        (6, 5, -1, -1, "rje"),
        (6, 1000, -1, -1, "private"),
        (6, 8080, -1, -1, "other"),
        (17, 53, -1, -1, "domain_u"),
        (17, 123, -1, -1, "ntp_u"),
        (17, 161, -1, -1, "private"),  # SNMP: NSL-KDD's snmpgetattack rows are private
        (17, 5353, -1, -1, "other"),
        (1, 0, 8, 0, "eco_i"),
        (1, 0, 0, 0, "ecr_i"),
        (1, 0, 3, 3, "urp_i"),
        (1, 0, 3, 1, "urh_i"),
        (1, 0, 5, 1, "red_i"),
        (1, 0, 11, 0, "tim_i"),
        (1, 0, 9, 0, "other"),
        (58, 0, 128, 0, "eco_i"),
        (58, 0, 1, 4, "urp_i"),
        (47, 0, -1, -1, "other"),  # GRE: not a KDD protocol
    ]
    got = service_codes(*(np.array([c[k] for c in cases]) for k in range(4)))
    assert [SERVICES[g] for g in got] == [c[4] for c in cases]


# ---------------------------------------------------------------- connection states

_S, _SA, _A, _F, _FA, _R, _RA = SYN, SYN | ACK, ACK, FIN, FIN | ACK, RST, RST | ACK


@pytest.mark.parametrize(
    ("fwd", "bwd", "fwd_rst", "bwd_rst", "bwd_pkts", "payload", "state"),
    [
        (_S | _A | _F, _SA | _F, 0, 0, 3, 10, "SF"),  # normal open and close
        (_S, _RA, 0, 1, 1, 0, "REJ"),  # SYN answered by RST
        (_S, 0, 0, 0, 0, 0, "S0"),  # no answer
        (_S, _SA, 0, 0, 2, 0, "S0"),  # half-open: SYN-ACK never acknowledged
        (_S | _A, _SA, 0, 0, 1, 50, "S1"),  # established, not closed
        (_S | _A | _F, _SA, 0, 0, 2, 5, "S2"),  # originator closed only
        (_S | _A, _SA | _F, 0, 0, 2, 5, "S3"),  # responder closed only
        (_S | _F, 0, 0, 0, 0, 0, "SH"),  # SYN then FIN, no answer
        (_S | _R, _SA, 1, 0, 1, 0, "RSTO"),  # SYN scan of an open port
        (_S | _R, 0, 1, 0, 0, 0, "RSTOS0"),  # SYN then RST, no answer
        (_S | _A, _SA | _RA, 0, 1, 2, 10, "RSTR"),  # responder aborts
        (_A, _R, 0, 1, 1, 0, "RSTR"),  # ACK scan (Bro: RSTRH, not in NSL-KDD)
        (_A | PSH, _A, 0, 0, 3, 100, "OTH"),  # capture started mid-connection
    ],
)
def test_conn_state_rules(
    fwd: int, bwd: int, fwd_rst: int, bwd_rst: int, bwd_pkts: int, payload: int, state: str
) -> None:
    got = conn_state_codes(
        *(np.array([v]) for v in (6, fwd, bwd, fwd_rst, bwd_rst, bwd_pkts, payload))
    )
    assert FLAGS[got[0]] == state


@given(
    st.lists(
        st.tuples(
            st.sampled_from([1, 6, 17, 58]),
            st.integers(0, 255),
            st.integers(0, 255),
            st.integers(0, 3),
            st.integers(0, 3),
            st.integers(0, 5),
            st.integers(0, 1000),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_conn_state_total_and_sf_for_udp_icmp(rows: list[tuple[int, ...]]) -> None:
    cols = [np.array(c) for c in zip(*rows, strict=True)]
    got = conn_state_codes(*cols)
    assert ((got >= 0) & (got < len(FLAGS))).all()
    assert (got[cols[0] != 6] == FLAG["SF"]).all()


# ------------------------------------------------------------------ captures


def test_http_session_basic_features() -> None:
    c, s = (C, 40000), (S, 80)

    def pkt(t: float, fwd: bool, flags: int, n: int = 0, **kw: Any) -> tuple[int, bytes]:
        (a, ap), (b, bp) = (c, s) if fwd else (s, c)
        return at(t), eth_tcp4(a, b, ap, bp, flags, n, **kw)

    packets = [
        pkt(0, True, SYN),
        pkt(100, False, SYN | ACK),
        pkt(200, True, ACK),
        pkt(300, True, PSH | ACK, 100),
        pkt(400, False, PSH | ACK, 1300),
        pkt(500, True, ACK | URG, urgent=1),
        pkt(2_500_000, True, FIN | ACK),  # 2.5 s: duration rounds down to 2
        pkt(2_500_100, False, FIN | ACK),
        pkt(2_500_200, True, ACK),
    ]
    (row,) = kdd_rows(packets)
    check(
        row,
        {
            "duration": 2, "protocol_type": "tcp", "service": "http", "flag": "SF",
            "src_bytes": 100, "dst_bytes": 1300, "land": 0, "wrong_fragment": 0, "urgent": 1,
            "hot": 0, "logged_in": 0, "count": 1, "srv_count": 1, "serror_rate": 0.0,
            "rerror_rate": 0.0, "same_srv_rate": 1.0, "diff_srv_rate": 0.0,
            "srv_diff_host_rate": 0.0, "dst_host_count": 1, "dst_host_srv_count": 1,
            "dst_host_same_srv_rate": 1.0, "dst_host_same_src_port_rate": 1.0,
        },
    )  # fmt: skip


def test_udp_icmp_and_land() -> None:
    packets = [
        (at(0), eth_udp4(C, S, 50000, 53, 40)),
        (at(300), eth_udp4(S, C, 53, 50000, 120)),
        # ping: echo request and reply, 56 data bytes each (64-byte ICMP messages)
        (at(1000), ether(ipv4(icmp(56, type=ICMP_ECHO_REQUEST), src=C, dst=S, proto=PROTO_ICMP))),
        (at(1200), ether(ipv4(icmp(56, type=ICMP_ECHO_REPLY), src=S, dst=C, proto=PROTO_ICMP))),
        (
            at(1_001_000),
            ether(ipv4(icmp(56, type=ICMP_ECHO_REQUEST, seq=2), src=C, dst=S, proto=PROTO_ICMP)),
        ),
        # land attack: same address and port at both ends
        (at(5000), eth_tcp4(S, S, 139, 139, SYN)),
    ]
    udp_row, icmp_row, land_row = kdd_rows(packets)
    check(udp_row, {"protocol_type": "udp", "service": "domain_u", "flag": "SF",
                    "src_bytes": 40, "dst_bytes": 120})  # fmt: skip
    # KDD: one ICMP message per record, header included, dst_bytes 0, duration 0
    check(icmp_row, {"protocol_type": "icmp", "service": "eco_i", "flag": "SF",
                     "src_bytes": 64, "dst_bytes": 0, "duration": 0})  # fmt: skip
    check(land_row, {"land": 1, "service": "netbios_ssn", "flag": "S0"})


def test_scan_windows() -> None:
    """Scanner X probes S's ports 1000..1005 from source port 6000 within 0.5 s: the first
    three answer RST (REJ), the other three stay silent (S0). 3 s later one more probe
    (port 1006) is outside the 2-s window but inside the 100-connection window."""
    packets = []
    for k in range(6):
        packets.append((at(k * 100_000), eth_tcp4(X, S, 6000, 1000 + k, SYN)))
        if k < 3:
            packets.append((at(k * 100_000 + 50), eth_tcp4(S, X, 1000 + k, 6000, RST | ACK)))
    packets.append((at(3_500_000), eth_tcp4(X, S, 6000, 1006, SYN)))
    rows = kdd_rows(packets)
    assert [r["flag"] for r in rows] == ["REJ"] * 3 + ["S0"] * 4
    assert {r["service"] for r in rows} == {"private"}
    sixth, late = rows[5], rows[6]
    check(
        sixth,
        {
            "count": 6, "srv_count": 1, "serror_rate": 0.5, "rerror_rate": 0.5,
            "srv_serror_rate": 1.0, "srv_rerror_rate": 0.0, "same_srv_rate": 0.17,
            "diff_srv_rate": 0.0, "srv_diff_host_rate": 0.0, "dst_host_count": 6,
            "dst_host_srv_count": 1, "dst_host_same_srv_rate": 0.17,
            "dst_host_diff_srv_rate": 0.0, "dst_host_same_src_port_rate": 1.0,
            "dst_host_serror_rate": 0.5, "dst_host_rerror_rate": 0.5,
        },
    )  # fmt: skip
    check(late, {"count": 1, "serror_rate": 1.0, "dst_host_count": 7,
                 "dst_host_serror_rate": 0.57, "dst_host_rerror_rate": 0.43})  # fmt: skip
    # a 3-connection host window only sees the last three probes (all S0)
    late3 = kdd_rows(packets, host_window=3)[6]
    check(late3, {"dst_host_count": 3, "dst_host_serror_rate": 1.0})


def test_non_kdd_protocol_and_missing_columns() -> None:
    flows = pa.table(
        {
            **{c: pa.array([0]) for c in FLOW_COLUMNS if c not in ("src_ip", "dst_ip")},
            "src_ip": pa.array([C]),
            "dst_ip": pa.array([S]),
        }
    )
    flows = flows.set_column(flows.schema.get_field_index("protocol"), "protocol", pa.array([47]))
    rows = KddFeaturizer().transform(flows)
    assert not rows.applicable[0] and not rows.matrix.any()
    assert kdd_table(rows).column("service").null_count == 1
    from flowscope.errors import FlowscopeError

    with pytest.raises(FlowscopeError, match="lacks columns"):
        KddFeaturizer().transform(flows.drop_columns(["icmp_type"]))


# ------------------------------------------------------------------ windows directly


def conns(ts_s: list[float], hosts: list[int], ports: list[int], **kw: Any) -> Connections:
    n = len(ts_s)
    return Connections(
        ts=np.array([round(t * NS) for t in ts_s], np.int64),
        host=np.array(hosts, np.uint64),
        srv=np.array(ports, np.uint64),
        svc=np.array(kw.get("svc", [SERVICE["private"]] * n), np.int64),
        sport=np.array(kw.get("sport", [1] * n), np.int64),
        serror=np.array(kw.get("serror", [False] * n)),
        rerror=np.array(kw.get("rerror", [False] * n)),
    )


def test_time_window_edges_and_services() -> None:
    # host 1: http at 0, 1.0, 1.9, 2.0 s; host 2: http at 1.5 s; host 1 ssh at 2.0 s
    http, ssh = SERVICE["http"], SERVICE["ssh"]
    c = conns(
        [0.0, 1.0, 1.5, 1.9, 2.0, 2.0],
        [1, 1, 2, 1, 1, 1],
        [80, 80, 80, 80, 80, 22],
        svc=[http, http, http, http, http, ssh],
    )
    f = TrafficWindows().update(c)
    count, srv_count = f[:, 0], f[:, 1]
    # row 4 (t = 2.0, host 1, port 80): window [0, 2.0] holds rows 0-4 (the t=2.0 ssh row
    # comes after it in input order, so it is not yet seen)
    assert count.tolist() == [1, 2, 1, 3, 4, 5]
    assert srv_count.tolist() == [1, 2, 3, 4, 5, 1]
    assert f[4, 6] == 1.0 and f[5, 6] == 0.2  # same_srv_rate
    assert f[5, 7] == 0.8  # diff_srv_rate: 4 of the 5 host-1 connections are http, not ssh
    assert f[4, 8] == 0.2  # srv_diff_host_rate: 1 of 5 http connections went to host 2


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 8_000), st.integers(0, 3), st.integers(0, 4), st.booleans(),
            st.booleans(), st.integers(0, 2),
        ),
        min_size=1,
        max_size=80,
    ),
    st.lists(st.integers(1, 79), max_size=4),
    st.integers(1, 12),
)  # fmt: skip
def test_batches_in_start_order_equal_one_batch(
    rows: list[tuple[int, int, int, bool, bool, int]], cuts: list[int], host_window: int
) -> None:
    """Feeding connections in start order in several batches gives the same features as
    one batch, and one batch does not depend on the order of its rows."""
    rows = sorted(rows, key=lambda r: r[0])
    c = conns(
        [r[0] / 1000 for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        serror=[r[3] for r in rows],
        rerror=[r[4] for r in rows],
        sport=[r[5] for r in rows],
    )
    whole = TrafficWindows(host_window=host_window).update(c)
    win = TrafficWindows(host_window=host_window)
    bounds = [0, *sorted(k for k in set(cuts) if k < len(rows)), len(rows)]
    parts = [win.update(c.take(slice(a, b))) for a, b in itertools.pairwise(bounds)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    perm = np.random.default_rng(len(rows)).permutation(len(rows))
    shuffled = TrafficWindows(host_window=host_window).update(c.take(perm))
    # equal start times may be ordered differently; compare rows with distinct times
    ts = c.ts
    distinct = np.flatnonzero(
        np.unique(ts, return_counts=True)[1][np.searchsorted(np.unique(ts), ts)] == 1
    )
    inv = np.argsort(perm)
    np.testing.assert_array_equal(shuffled[inv][distinct][:, :9], whole[distinct][:, :9])


def test_state_is_bounded() -> None:
    win = TrafficWindows(host_window=5, retention_s=10.0, max_history=1000)
    for k in range(50):  # 50 batches of 100 connections, one batch per second
        t = [k + i / 100 for i in range(100)]
        win.update(conns(t, [i % 7 for i in range(100)], [80] * 100))
    assert len(win.history) <= 1100  # ~10 s of connections
    assert win.history.ts.min() >= round(39 * NS)
    win.reset()
    assert len(win.history) == 0
