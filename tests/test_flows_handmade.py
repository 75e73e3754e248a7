"""Hand-made captures with exact expected flow features, worked out in the tests.

Every scenario builds its packets with :mod:`pktbuild`, runs them through
decode → FlowMeter → compute_features, and compares with values derived by hand from
the definitions in :mod:`flowscope.flows.registry`. The arithmetic is written out
(payload lists, timestamp differences) so a reader can check each number.

Conventions: timestamps are written in µs after ``T0``; the forward direction is the
sender of a flow's first packet; lengths are transport payload bytes; std is the
sample standard deviation (n − 1).
"""

from __future__ import annotations

import csv
import itertools
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from capwriter import write_pcap
from flowscope.capture.batch import PacketBatch
from flowscope.decode import DecodedBatch, decode, layout
from flowscope.flows.features import compute_features
from flowscope.flows.meter import FlowMeter, FlowRecords, MeterConfig, MeterStats
from flowscope.flows.registry import EXTRAS, FEATURE_NAMES, IDENTIFIERS
from pktbuild import (
    ACK,
    CWR,
    ECE,
    ETH_IPV4,
    ETH_IPV6,
    FIN,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    ICMPV6_ECHO_REPLY,
    ICMPV6_ECHO_REQUEST,
    LT_ETHERNET,
    LT_IPV4,
    LT_IPV6,
    LT_NULL,
    LT_RAW,
    LT_SLL,
    LT_SLL2,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_UDP,
    PSH,
    RST,
    SYN,
    TPID_8021AD,
    URG,
    arp,
    dest_opts,
    eth_tcp4,
    eth_udp4,
    ether,
    frag6,
    hop_by_hop,
    icmp,
    ipv4,
    ipv6,
    null_loop,
    pad,
    sll,
    sll2,
    tcp,
    udp,
)

NS = 1_000_000_000
T0 = 1_700_000_000 * NS  # 2023-11-14 22:13:20 UTC
T0_TEXT = "2023-11-14 22:13:20"
C, S = "10.0.0.1", "10.0.0.2"  # client and server of most scenarios

Packet = tuple[int, bytes]


def at(us: float) -> int:
    """Capture time ``us`` microseconds after T0, in ns."""
    return T0 + round(us * 1000)


def sec(s: float) -> int:
    return at(s * 1_000_000)


# ----------------------------------------------------------------------- harness


@dataclass
class Run:
    rows: list[dict[str, Any]]  # feature rows, in the order the flows finished
    stats: MeterStats
    dec: DecodedBatch
    meter: FlowMeter


def run(
    packets: list[Packet], linktype: int = LT_ETHERNET, config: MeterConfig | None = None
) -> Run:
    """decode → FlowMeter.update → flush → compute_features, on one batch."""
    dec = decode(PacketBatch.from_packets(packets, linktype))
    meter = FlowMeter(config or MeterConfig())
    recs = list(meter.update(dec)) + list(meter.flush())
    rows = compute_features(FlowRecords.concat(recs)).to_pylist()
    return Run(rows, meter.stats, dec, meter)


def one(r: Run) -> dict[str, Any]:
    assert len(r.rows) == 1, [row["flow_id"] for row in r.rows]
    return r.rows[0]


def check(row: dict[str, Any], expected: dict[str, Any]) -> None:
    """Compare a feature row with expected values; report every mismatch at once."""
    bad = {}
    for k, want in expected.items():
        got = row[k]
        if isinstance(want, float) or isinstance(got, float):
            ok = math.isclose(float(got), float(want), rel_tol=1e-9, abs_tol=1e-6)
        else:
            ok = got == want
        if not ok:
            bad[k] = {"expected": want, "actual": got}
    assert not bad, bad


def sd(*xs: float) -> float:
    """Sample standard deviation (n − 1), 0 for fewer than two values."""
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


class Tcp:
    """One TCP conversation with automatic sequence/ack numbers per side.

    ``c(t_us, flags, n)`` is a client → server segment with ``n`` payload bytes,
    ``s(...)`` server → client. SYN and FIN take one sequence number. ``seq=`` overrides.
    """

    def __init__(
        self,
        client: tuple[str, int] = (C, 40000),
        server: tuple[str, int] = (S, 80),
        isn: tuple[int, int] = (1000, 5000),
        ttl: tuple[int, int] = (64, 128),
    ) -> None:
        self.ends = {True: client, False: server}
        self.next = {True: isn[0], False: isn[1]}
        self.ttl = {True: ttl[0], False: ttl[1]}

    def _seg(self, side: bool, t_us: float, flags: int, n: int, **kw: Any) -> Packet:
        (src, sport), (dst, dport) = self.ends[side], self.ends[not side]
        if "seq" not in kw:
            kw["seq"] = self.next[side]
            self.next[side] += n + (1 if flags & (SYN | FIN) else 0)
        kw.setdefault("ack", self.next[not side] if flags & ACK else 0)
        frame = eth_tcp4(src, dst, sport, dport, flags, n, ttl=self.ttl[side], **kw)
        return at(t_us), frame

    def c(self, t_us: float, flags: int, n: int = 0, **kw: Any) -> Packet:
        return self._seg(True, t_us, flags, n, **kw)

    def s(self, t_us: float, flags: int, n: int = 0, **kw: Any) -> Packet:
        return self._seg(False, t_us, flags, n, **kw)


def udp_pkt(t_us: float, src: str, dst: str, sport: int, dport: int, n: int) -> Packet:
    return at(t_us), eth_udp4(src, dst, sport, dport, n)


# --------------------------------------------------------- the complete TCP example


def handshake_session() -> list[Packet]:
    """3-way handshake, data both ways, FIN/FIN, final ACK (times in µs).

    fwd = client (ttl 64), bwd = server (ttl 128). TCP header sizes: client SYN 40
    (20 option bytes), server SYN/ACK 32 (12), all others 20.
    """
    t = Tcp()
    return [
        t.c(0, SYN, options=20, window=64240),  # fwd  payload 0
        t.s(100, SYN | ACK, options=12, window=65160),  # bwd  0
        t.c(250, ACK, window=502),  # fwd  0
        t.c(1250, PSH | ACK, 100, window=502),  # fwd  100
        t.s(1400, ACK, window=509),  # bwd  0
        t.s(3400, PSH | ACK, 1000, window=509),  # bwd  1000
        t.s(3500, PSH | ACK, 300, window=509),  # bwd  300
        t.c(3600, ACK, window=500),  # fwd  0
        t.c(5600, FIN | ACK, window=500),  # fwd  0
        t.s(5700, FIN | ACK, window=509),  # bwd  0
        t.c(5800, ACK, window=500),  # fwd  0  → both sides sent FIN: flow ends "fin"
    ]


def handshake_expected() -> dict[str, Any]:
    fwd_len = [0, 0, 100, 0, 0, 0]
    bwd_len = [0, 1000, 300, 0, 0]
    fwd_t = [0, 250, 1250, 3600, 5600, 5800]
    bwd_t = [100, 1400, 3400, 3500, 5700]
    all_t = sorted(fwd_t + bwd_t)
    fwd_iat = [b - a for a, b in itertools.pairwise(fwd_t)]  # 250 1000 2350 2000 200
    bwd_iat = [b - a for a, b in itertools.pairwise(bwd_t)]  # 1300 2000 100 2200
    flow_iat = [b - a for a, b in itertools.pairwise(all_t)]
    assert flow_iat == [100, 150, 1000, 150, 2000, 100, 100, 2000, 100, 100]
    dur = 5800.0  # µs, last − first
    dur_s = dur / 1e6
    n_fwd, n_bwd = 6, 5
    fwd_bytes, bwd_bytes = 100, 1300
    all_len = fwd_len + bwd_len
    return {
        # identifiers
        "flow_id": "10.0.0.1-10.0.0.2-40000-80-6",
        "src_ip": C,
        "src_port": 40000,
        "dst_ip": S,
        "dst_port": 80,
        "protocol": 6,
        "timestamp": T0_TEXT + ".000000",
        "first_seen": at(0),
        "last_seen": at(5800),
        "end_reason": "fin",
        "ip_version": 4,
        "vlan_id": 0,
        # volume
        "flow_duration": dur,
        "fwd_packets": n_fwd,
        "bwd_packets": n_bwd,
        "fwd_bytes": fwd_bytes,
        "bwd_bytes": bwd_bytes,
        "fwd_pkt_len_max": 100.0,
        "fwd_pkt_len_min": 0.0,
        "fwd_pkt_len_mean": 100 / 6,
        # Σ(x − 16.67)² = 5·16.67² + 83.33² = 8333.3; / 5 = 1666.7; √ = 40.82
        "fwd_pkt_len_std": math.sqrt((5 * (100 / 6) ** 2 + (100 - 100 / 6) ** 2) / 5),
        "bwd_pkt_len_max": 1000.0,
        "bwd_pkt_len_min": 0.0,
        "bwd_pkt_len_mean": 1300 / 5,  # 260
        "bwd_pkt_len_std": sd(*bwd_len),  # √((3·260² + 740² + 40²)/4) = 433.59
        "flow_bytes_per_s": (100 + 1300) / dur_s,  # 241 379.3
        "flow_packets_per_s": 11 / dur_s,
        # inter-arrival times (µs)
        "flow_iat_mean": 5800 / 10,
        "flow_iat_std": sd(*flow_iat),
        "flow_iat_max": 2000.0,
        "flow_iat_min": 100.0,
        "fwd_iat_total": 5800.0,  # = sum(fwd_iat) = last fwd − first fwd
        "fwd_iat_mean": 5800 / 5,
        "fwd_iat_std": sd(*fwd_iat),
        "fwd_iat_max": 2350.0,
        "fwd_iat_min": 200.0,
        "bwd_iat_total": 5700.0 - 100.0,
        "bwd_iat_mean": 5600 / 4,
        "bwd_iat_std": sd(*bwd_iat),
        "bwd_iat_max": 2200.0,
        "bwd_iat_min": 100.0,
        # flags: fwd SYN | ACK | PSH+ACK | ACK | FIN+ACK | ACK; bwd SYN+ACK | ACK | PSH+ACK ×2
        # | FIN+ACK
        "fwd_psh_flags": 1,
        "bwd_psh_flags": 2,
        "fwd_urg_flags": 0,
        "bwd_urg_flags": 0,
        "fwd_rst_flags": 0,
        "bwd_rst_flags": 0,
        "fwd_header_bytes": 40 + 5 * 20,
        "bwd_header_bytes": 32 + 4 * 20,
        "fwd_packets_per_s": 6 / dur_s,
        "bwd_packets_per_s": 5 / dur_s,
        "pkt_len_min": 0.0,
        "pkt_len_max": 1000.0,
        "pkt_len_mean": 1400 / 11,
        "pkt_len_std": sd(*all_len),
        "pkt_len_var": sd(*all_len) ** 2,
        "fin_flag_count": 2,
        "syn_flag_count": 2,
        "rst_flag_count": 0,
        "psh_flag_count": 3,
        "ack_flag_count": 5 + 5,  # all but the client's SYN
        "urg_flag_count": 0,
        "cwr_flag_count": 0,
        "ece_flag_count": 0,
        "down_up_ratio": 5 / 6,
        "avg_packet_size": 1400 / 11,
        "fwd_seg_size_avg": 100 / 6,
        "bwd_seg_size_avg": 1300 / 5,
        # two bwd data packets only: no bulk (needs 4)
        "fwd_bytes_per_bulk": 0.0,
        "fwd_packets_per_bulk": 0.0,
        "fwd_bulk_rate": 0.0,
        "bwd_bytes_per_bulk": 0.0,
        "bwd_packets_per_bulk": 0.0,
        "bwd_bulk_rate": 0.0,
        # no gap > 1 s: one subflow
        "subflow_fwd_packets": 6.0,
        "subflow_fwd_bytes": 100.0,
        "subflow_bwd_packets": 5.0,
        "subflow_bwd_bytes": 1300.0,
        "fwd_init_win_bytes": 64240,
        "bwd_init_win_bytes": 65160,
        "fwd_act_data_packets": 1,
        "bwd_act_data_packets": 2,
        "fwd_seg_size_min": 20,
        "bwd_seg_size_min": 20,
        # no gap > 5 s: one active period as long as the flow, no idle period
        "active_mean": dur,
        "active_std": 0.0,
        "active_max": dur,
        "active_min": dur,
        "idle_mean": 0.0,
        "idle_std": 0.0,
        "idle_max": 0.0,
        "idle_min": 0.0,
        "icmp_code": -1,
        "icmp_type": -1,
        "fwd_tcp_retrans": 0,
        "bwd_tcp_retrans": 0,
        "tcp_retrans": 0,
        "connection_time": dur,
        # extras. IP bytes = Σ(20 + TCP header + payload); wire = IP + 14 (no padding here)
        "fwd_ip_bytes": (20 + 40) + 5 * (20 + 20) + 100,  # 360
        "bwd_ip_bytes": (20 + 32) + 4 * (20 + 20) + 1300,  # 1512
        "fwd_wire_bytes": 360 + 6 * 14,
        "bwd_wire_bytes": 1512 + 5 * 14,
        "fragments": 0,
        "fwd_tcp_flags": SYN | ACK | PSH | FIN,
        "bwd_tcp_flags": SYN | ACK | PSH | FIN,
        "fwd_ttl_min": 64,
        "bwd_ttl_min": 128,
    }


def test_tcp_handshake_data_fin_every_feature() -> None:
    r = run(handshake_session())
    row = one(r)
    expected = handshake_expected()
    # The expectation covers every column the engine produces.
    names = {x.name for x in IDENTIFIERS} | set(FEATURE_NAMES) | {x.name for x in EXTRAS}
    assert set(row) == names
    assert set(expected) == names
    check(row, expected)
    assert r.stats.packets == 11 and r.stats.flows == 1 and r.stats.open_flows == 0


def test_connection_time_exact() -> None:
    """connection_time is a difference of two ns timestamps: it must be exact in µs.

    (Regression: converting each epoch-ns timestamp (≈1.7e18) to float64 before
    subtracting lost up to 256 ns per operand; the 5800 µs flow came out as 5799.936.)
    """
    row = one(run(handshake_session()))
    assert row["connection_time"] == 5800.0
    assert row["flow_duration"] == 5800.0


def test_flows_cli_writes_csv(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flowscope.cli.app import app

    pcap = write_pcap(tmp_path / "hs.pcap", handshake_session(), nanos=True)
    out = tmp_path / "flows.csv"
    res = CliRunner().invoke(app, ["flows", str(pcap), "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1
    row = rows[0]
    expected = handshake_expected()
    assert row["capture"] == "hs.pcap"
    for k, want in expected.items():
        if isinstance(want, str):
            assert row[k] == want, k
        else:
            assert float(row[k]) == pytest.approx(float(want), rel=1e-9, abs=1e-6), k


# ------------------------------------------------------------------ other endings


def test_rst_ends_flow_with_the_rst_packet() -> None:
    t = Tcp(client=(C, 40001), server=(S, 23))
    pkts = [
        t.c(0, SYN, window=1024),
        t.s(50, RST | ACK, window=0),  # closed port: RST ends the flow, RST included
        # the client retries 2950 µs later, inside the 1 s close grace: a SYN (no ACK)
        # always starts a new flow, and emits the RST-ended one with reason "rst"
        t.c(3000, SYN, window=1024),
    ]
    r = run(pkts)
    assert [x["end_reason"] for x in r.rows] == ["rst", "eof"]
    first, retry = r.rows
    check(
        first,
        {
            "fwd_packets": 1,
            "bwd_packets": 1,
            "flow_duration": 50.0,
            "bwd_rst_flags": 1,
            "fwd_rst_flags": 0,
            "rst_flag_count": 1,
            "syn_flag_count": 1,
            "ack_flag_count": 1,
            "fwd_init_win_bytes": 1024,
            "bwd_init_win_bytes": 0,
            "bwd_tcp_flags": RST | ACK,
        },
    )
    check(retry, {"fwd_packets": 1, "bwd_packets": 0, "first_seen": at(3000), "src_ip": C})


def test_port_reuse_syn_after_fin_fin_starts_new_flow() -> None:
    t = Tcp(client=(C, 40002))
    pkts = [
        t.c(0, SYN),
        t.s(100, SYN | ACK),
        t.c(200, ACK),
        t.c(300, FIN | ACK),
        t.s(400, FIN | ACK),
        # the final ACK is lost; the client reuses the port pair with a fresh SYN
        t.c(500, SYN, seq=90000),
        t.s(600, SYN | ACK, seq=70000, ack=90001),
    ]
    r = run(pkts)
    assert [x["end_reason"] for x in r.rows] == ["fin", "eof"]
    old, new = r.rows
    check(old, {"fwd_packets": 3, "bwd_packets": 2, "fin_flag_count": 2, "last_seen": at(400)})
    check(
        new,
        {
            "src_ip": C,
            "src_port": 40002,
            "fwd_packets": 1,
            "bwd_packets": 1,
            "syn_flag_count": 2,
            "fin_flag_count": 0,
            "first_seen": at(500),
            "flow_duration": 100.0,
        },
    )


def test_syn_scan_single_packet_flows_are_kept() -> None:
    # One SYN (24-byte header: MSS option) per port, no answers; a fourth port answers RST.
    pkts = [
        (at(10 * k), eth_tcp4("10.9.9.9", S, 61000, port, SYN, options=4, window=1024))
        for k, port in enumerate((22, 80, 443))
    ]
    pkts.append((at(30), eth_tcp4("10.9.9.9", S, 61000, 8080, SYN, options=4, window=1024)))
    pkts.append((at(31), eth_tcp4(S, "10.9.9.9", 8080, 61000, RST | ACK)))
    r = run(pkts)
    assert sorted((x["dst_port"], x["end_reason"]) for x in r.rows) == [
        (22, "eof"),
        (80, "eof"),
        (443, "eof"),
        (8080, "rst"),
    ]
    for row in r.rows:
        if row["dst_port"] == 8080:
            check(row, {"fwd_packets": 1, "bwd_packets": 1, "flow_duration": 1.0})
            continue
        check(
            row,
            {
                "src_ip": "10.9.9.9",
                "fwd_packets": 1,
                "bwd_packets": 0,
                "flow_duration": 0.0,
                "flow_bytes_per_s": 0.0,  # zero duration: 0, not Infinity
                "flow_packets_per_s": 0.0,
                "flow_iat_mean": 0.0,
                "flow_iat_max": 0.0,
                "fwd_iat_total": 0.0,
                "syn_flag_count": 1,
                "fwd_header_bytes": 24,
                "fwd_seg_size_min": 24,
                "bwd_seg_size_min": 0,
                "fwd_init_win_bytes": 1024,
                "bwd_init_win_bytes": -1,  # the direction sent nothing
                "down_up_ratio": 0.0,
                "active_mean": 0.0,  # a zero-length active period is not recorded
                "idle_mean": 0.0,
                "subflow_fwd_packets": 1.0,
                "connection_time": 0.0,
            },
        )
    assert r.stats.flows == 4


# ------------------------------------------------------------ UDP, ICMP, IPv6


def test_udp_request_response() -> None:
    pkts = [
        udp_pkt(0, C, "10.0.0.53", 5353, 53, 40),
        udp_pkt(30_000, "10.0.0.53", C, 53, 5353, 120),
    ]
    row = one(run(pkts))
    check(
        row,
        {
            "flow_id": "10.0.0.1-10.0.0.53-5353-53-17",
            "protocol": PROTO_UDP,
            "end_reason": "eof",
            "fwd_packets": 1,
            "bwd_packets": 1,
            "fwd_bytes": 40,
            "bwd_bytes": 120,
            "flow_duration": 30_000.0,
            "flow_iat_mean": 30_000.0,
            "fwd_iat_total": 0.0,  # one packet per direction: no gaps
            "bwd_iat_mean": 0.0,
            "pkt_len_mean": 80.0,
            "pkt_len_std": sd(40, 120),  # √((40² + 40²)/1) = 56.57
            "fwd_header_bytes": 8,
            "bwd_header_bytes": 8,
            "fwd_seg_size_min": 8,
            "fwd_init_win_bytes": -1,  # not TCP
            "bwd_init_win_bytes": -1,
            "syn_flag_count": 0,
            "ack_flag_count": 0,
            "fwd_tcp_flags": 0,
            "down_up_ratio": 1.0,
            "flow_bytes_per_s": 160 / 0.03,
            "active_mean": 30_000.0,
            "fwd_ip_bytes": 20 + 8 + 40,
            "bwd_ip_bytes": 20 + 8 + 120,
            "fwd_wire_bytes": 14 + 68,
            "icmp_type": -1,
        },
    )


def test_icmp_echo_counts_icmp_payload() -> None:
    def ping(t_us: float, src: str, dst: str, kind: int, seq: int) -> Packet:
        msg = icmp(56, type=kind, ident=7, seq=seq)  # 8-byte header + 56 data bytes
        return at(t_us), ether(ipv4(msg, src=src, dst=dst, proto=PROTO_ICMP))

    pkts = [
        ping(0, C, S, ICMP_ECHO_REQUEST, 1),
        ping(500, S, C, ICMP_ECHO_REPLY, 1),
        ping(1_000_000, C, S, ICMP_ECHO_REQUEST, 2),
        ping(1_000_450, S, C, ICMP_ECHO_REPLY, 2),
    ]
    row = one(run(pkts))
    check(
        row,
        {
            "flow_id": "10.0.0.1-10.0.0.2-0-0-1",  # no ports: 0
            "protocol": 1,
            "icmp_type": ICMP_ECHO_REQUEST,  # of the flow's first ICMP packet
            "icmp_code": 0,
            "fwd_packets": 2,
            "bwd_packets": 2,
            "fwd_bytes": 2 * 56,  # ICMP payload after the 8-byte header
            "bwd_bytes": 2 * 56,
            "fwd_header_bytes": 2 * 8,
            "bwd_header_bytes": 2 * 8,
            "fwd_pkt_len_min": 56.0,
            "flow_iat_max": 1_000_000.0 - 500,
            "flow_iat_min": 450.0,
            "flow_iat_mean": 1_000_450 / 3,
            "fwd_iat_total": 1_000_000.0,
            "bwd_iat_total": 1_000_450.0 - 500,
            "subflow_fwd_packets": 2.0,  # the 999 500 µs gap is < 1 s
            "fwd_init_win_bytes": -1,
        },
    )


def test_ipv6_tcp_with_extension_headers() -> None:
    a, b = "2001:db8::1", "2001:db8::2"

    def c2s(t_us: float, flags: int, n: int = 0, *ext: Any, **kw: Any) -> Packet:
        segment = tcp(n, sport=50000, dport=443, flags=flags, **kw)
        return at(t_us), ether(ipv6(segment, src=a, dst=b, ext=ext), ETH_IPV6)

    def s2c(t_us: float, flags: int, n: int = 0, *ext: Any, **kw: Any) -> Packet:
        segment = tcp(n, sport=443, dport=50000, flags=flags, **kw)
        return at(t_us), ether(ipv6(segment, src=b, dst=a, ext=ext), ETH_IPV6)

    pkts = [
        # SYN after an 8-byte hop-by-hop header; TCP header 40 (20 option bytes)
        c2s(0, SYN, 0, hop_by_hop(8), options=20, window=64800),
        s2c(200, SYN | ACK, 0, options=20, window=65000),
        # hop-by-hop (8) + destination options (16) + TCP 20 + 10 payload bytes
        c2s(300, PSH | ACK, 10, hop_by_hop(8), dest_opts(16)),
        # an atomic fragment header (offset 0, M = 0) is just 8 more header bytes
        s2c(400, PSH | ACK, 200, frag6(ident=0x1234)),
    ]
    r = run(pkts)
    assert r.dec.fields[:, layout.DEC_IP_HDR_LEN].tolist() == [48, 40, 64, 48]
    assert r.dec.fields[:, layout.DEC_PAYLOAD_LEN].tolist() == [0, 0, 10, 200]
    check(
        one(r),
        {
            "flow_id": "2001:db8::1-2001:db8::2-50000-443-6",
            "src_ip": a,
            "dst_ip": b,
            "ip_version": 6,
            "protocol": 6,
            "fwd_bytes": 10,
            "bwd_bytes": 200,
            "fwd_header_bytes": 40 + 20,
            "bwd_header_bytes": 40 + 20,
            "fwd_init_win_bytes": 64800,
            "bwd_init_win_bytes": 65000,
            "fwd_ip_bytes": (40 + 8 + 40) + (40 + 8 + 16 + 20 + 10),  # IPv6 header + plen
            "bwd_ip_bytes": (40 + 40) + (40 + 8 + 20 + 200),
            "fwd_wire_bytes": 88 + 94 + 2 * 14,
            "fwd_ttl_min": 64,
            "fragments": 0,
        },
    )


def test_icmpv6_echo_raw_ipv6_linktype() -> None:
    a, b = "fe80::1", "fe80::2"
    pkts = [
        (at(0), ipv6(icmp(32, type=ICMPV6_ECHO_REQUEST), src=a, dst=b, next_header=PROTO_ICMPV6)),
        (at(80), ipv6(icmp(32, type=ICMPV6_ECHO_REPLY), src=b, dst=a, next_header=PROTO_ICMPV6)),
    ]
    row = one(run(pkts, LT_IPV6))
    check(
        row,
        {
            "src_ip": a,
            "protocol": 58,
            "icmp_type": ICMPV6_ECHO_REQUEST,
            "fwd_bytes": 32,
            "bwd_bytes": 32,
            "fwd_header_bytes": 8,
            "fwd_wire_bytes": 40 + 8 + 32,  # no link header
            "ip_version": 6,
        },
    )


# ---------------------------------------------------------------- link layer


def test_vlan_and_qinq_tags() -> None:
    seg = udp(10, sport=1000, dport=2000)
    seg2 = udp(10, sport=1001, dport=2000)
    pkts = [
        (at(0), ether(ipv4(seg, proto=PROTO_UDP), vlans=[100])),
        (at(1), ether(ipv4(seg2, proto=PROTO_UDP), vlans=[200, 300], outer_tpid=TPID_8021AD)),
    ]
    r = run(pkts)
    assert r.dec.fields[:, layout.DEC_VLAN].tolist() == [100, 200]  # the outer tag
    by_port = {x["src_port"]: x for x in r.rows}
    check(
        by_port[1000],
        {"vlan_id": 100, "fwd_bytes": 10, "fwd_ip_bytes": 38, "fwd_wire_bytes": 14 + 4 + 38},
    )
    check(
        by_port[1001],
        {"vlan_id": 200, "fwd_bytes": 10, "fwd_ip_bytes": 38, "fwd_wire_bytes": 14 + 8 + 38},
    )


def test_ethernet_padding_is_not_payload() -> None:
    # 40-byte IP packet (20 IP + 20 TCP, no payload) in a 60-byte minimum frame: 6 bytes
    # of padding. A 4-byte UDP payload padded from 46 to 60 bytes.
    ack = pad(eth_tcp4(C, S, 40000, 80, ACK))
    dns = pad(eth_udp4(C, S, 1234, 53, 4))
    assert len(ack) == len(dns) == 60
    r = run([(at(0), ack), (at(1), dns)])
    assert r.dec.fields[:, layout.DEC_PAYLOAD_LEN].tolist() == [0, 4]
    assert r.dec.fields[:, layout.DEC_IP_LEN].tolist() == [40, 32]
    by_proto = {x["protocol"]: x for x in r.rows}
    check(
        by_proto[6],
        {
            "fwd_bytes": 0,
            "fwd_pkt_len_max": 0.0,
            "fwd_ip_bytes": 40,
            "fwd_wire_bytes": 60,
            "fwd_act_data_packets": 0,
        },
    )
    check(by_proto[17], {"fwd_bytes": 4, "fwd_ip_bytes": 32, "fwd_wire_bytes": 60})


V4_UDP = ipv4(udp(25, sport=7000, dport=7001), src=C, dst=S, proto=PROTO_UDP)  # 20 + 8 + 25
V6_UDP = ipv6(udp(25, sport=7000, dport=7001), next_header=PROTO_UDP)  # 40 + 8 + 25


@pytest.mark.parametrize(
    ("linktype", "frame", "link_hdr"),
    [
        (LT_ETHERNET, ether(V4_UDP), 14),
        (LT_ETHERNET, ether(V6_UDP, ETH_IPV6), 14),
        (LT_SLL, sll(V4_UDP), 16),
        (LT_SLL, sll(V6_UDP, ETH_IPV6), 16),
        (LT_SLL2, sll2(V4_UDP), 20),
        (LT_SLL2, sll2(V6_UDP, ETH_IPV6), 20),
        (LT_RAW, V4_UDP, 0),
        (LT_RAW, V6_UDP, 0),
        (LT_IPV4, V4_UDP, 0),
        (LT_IPV6, V6_UDP, 0),
        (LT_NULL, null_loop(V4_UDP, 2), 4),
        (LT_NULL, null_loop(V6_UDP, 30), 4),  # AF_INET6 on macOS
        (108, null_loop(V4_UDP, 2, big_endian=True), 4),  # OpenBSD loopback
    ],
)
def test_link_types(linktype: int, frame: bytes, link_hdr: int) -> None:
    pkts = [(at(0), frame), (at(10), frame)]
    r = run(pkts, linktype)
    assert r.dec.status_counts()[layout.OK] == 2
    ip_len = len(frame) - link_hdr
    check(
        one(r),
        {
            "src_port": 7000,
            "dst_port": 7001,
            "protocol": PROTO_UDP,
            "ip_version": 4 if ip_len == 53 else 6,
            "fwd_packets": 2,
            "fwd_bytes": 2 * 25,
            "fwd_ip_bytes": 2 * ip_len,
            "fwd_wire_bytes": 2 * len(frame),
        },
    )


def test_snaplen_cut_payload_reports_true_length() -> None:
    # Captured: Ethernet + IP + TCP header only; on the wire the segment had 1000 bytes.
    full = eth_tcp4(C, S, 40000, 80, PSH | ACK, 1000)
    cut = full[: 14 + 20 + 20]
    batch = PacketBatch.from_packets([(at(0), cut)])
    batch.wirelen[0] = len(full)
    dec = decode(batch)
    assert dec.fields[0, layout.DEC_STATUS] == layout.OK
    assert dec.fields[0, layout.DEC_PAYLOAD_LEN] == 1000  # from the IP header
    meter = FlowMeter()
    recs = list(meter.update(dec)) + list(meter.flush())
    row = compute_features(FlowRecords.concat(recs)).to_pylist()[0]
    check(row, {"fwd_bytes": 1000, "fwd_ip_bytes": 1040, "fwd_wire_bytes": 1054})


def test_ipv4_options_and_zero_total_length() -> None:
    seg = tcp(100, sport=40000, dport=80, flags=PSH | ACK)
    with_opts = ether(ipv4(seg, src=C, dst=S, options=b"\x94\x04\x00\x00" + b"\x01" * 4))
    # TSO/GSO captures write total length 0: the frame's length is used instead
    tso = ether(ipv4(seg, src=C, dst=S, total_length=0))
    r = run([(at(0), with_opts), (at(1), tso)])
    assert r.dec.fields[:, layout.DEC_IP_HDR_LEN].tolist() == [28, 20]
    assert r.dec.fields[:, layout.DEC_IP_LEN].tolist() == [28 + 120, 20 + 120]
    check(
        one(r),
        {
            "fwd_packets": 2,
            "fwd_bytes": 2 * 100,
            "fwd_header_bytes": 2 * 20,
            "fwd_ip_bytes": 148 + 140,
        },
    )


def test_fin_teardown_with_half_close() -> None:
    t = Tcp()
    pkts = [
        t.c(0, FIN | ACK),  # the client closes its side
        t.s(10, ACK),  # pure ACK, but only one side has sent FIN: the flow goes on
        t.s(20, PSH | ACK, 50),  # the server still sends data
        t.s(30, FIN | PSH | ACK, 20),  # FIN carrying data
        t.c(40, ACK, 5),  # ACK with payload after both FINs: not the final ACK
        t.c(50, ACK),  # the final (pure) ACK: the flow is closed ("fin"), packet included
        t.s(60, ACK),  # a stray ACK 10 µs later, inside the close grace: joins the flow
        t.s(1_000_061, ACK),  # 1.000001 s after the flow's last packet: a new flow
    ]
    r = run(pkts)
    assert [x["end_reason"] for x in r.rows] == ["fin", "eof"]
    check(
        r.rows[0],
        {
            "fwd_packets": 3,
            "bwd_packets": 4,
            "fwd_bytes": 5,
            "bwd_bytes": 70,
            "fin_flag_count": 2,
            "ack_flag_count": 7,  # every packet carries ACK
            "flow_duration": 60.0,
            "last_seen": at(60),
        },
    )
    check(r.rows[1], {"src_ip": S, "fwd_packets": 1, "first_seen": at(1_000_061)})


def test_fin_fin_without_final_ack_idles_out_as_fin() -> None:
    # Both sides sent FIN but the last ACK never came: the idle timeout closes the flow,
    # reported as "fin" (the connection did close); at end of input it is "eof".
    t = Tcp()
    pkts = [t.c(0, SYN), t.s(10, SYN | ACK), t.c(20, FIN | ACK), t.s(30, FIN | ACK)]
    r = run([*pkts, (sec(200), eth_udp4(C, S, 1, 2, 0))])
    assert sorted(x["end_reason"] for x in r.rows) == ["eof", "fin"]
    t = Tcp()
    r = run([t.c(0, SYN), t.s(10, SYN | ACK), t.c(20, FIN | ACK), t.s(30, FIN | ACK)])
    assert [x["end_reason"] for x in r.rows] == ["eof"]


# ---------------------------------------------------------------- close grace
# A TCP flow ended by RST, or by the final ACK after both FINs, is held for close_grace
# (default 1 s) after its last packet: stray packets of the same 5-tuple that are not a
# new SYN (SYN without ACK) join it. A new SYN, or a packet more than close_grace after
# the flow's last packet, emits it (reason rst/fin) and starts a new flow.


def rows_of(parts: list[FlowRecords]) -> list[dict[str, Any]]:
    return compute_features(FlowRecords.concat(parts)).to_pylist()


def test_duplicate_rst_and_late_data_are_absorbed() -> None:
    t = Tcp(client=(C, 40100), server=(S, 80))
    pkts = [
        t.c(0, SYN),
        t.s(100, SYN | ACK),
        t.c(200, ACK),
        t.c(300, PSH | ACK, 50),
        t.s(400, RST | ACK),  # the server aborts: the flow is closed ("rst")
        t.s(450, RST | ACK),  # duplicate RST 50 µs later: joins the flow (no second close)
        t.c(900, ACK, 10),  # client data already in flight: joins too
    ]
    r = run(pkts)
    check(
        one(r),
        {
            "end_reason": "rst",
            "fwd_packets": 4,  # SYN, ACK, PSH+ACK 50, ACK 10
            "bwd_packets": 3,  # SYN+ACK, RST+ACK, RST+ACK
            "fwd_bytes": 60,
            "bwd_rst_flags": 2,
            "rst_flag_count": 2,
            "fwd_act_data_packets": 2,
            "flow_duration": 900.0,
            "last_seen": at(900),
            "flow_iat_max": 450.0,  # 450 → 900
        },
    )
    assert (r.stats.flows, r.stats.packets, r.stats.open_flows) == (1, 7, 0)


def test_late_ack_and_fin_retransmission_after_final_ack_are_absorbed() -> None:
    # The handshake session ends with the final ACK at 5800 µs ("fin"). The server then
    # retransmits its FIN+ACK (its ACK was late) and the client ACKs it again.
    pkts = [
        *handshake_session(),
        (at(5900), eth_tcp4(S, C, 80, 40000, FIN | ACK, ttl=128)),
        (at(6000), eth_tcp4(C, S, 40000, 80, ACK)),
    ]
    r = run(pkts)
    check(
        one(r),
        {
            "end_reason": "fin",
            "fwd_packets": 6 + 1,
            "bwd_packets": 5 + 1,
            "fwd_bytes": 100,
            "bwd_bytes": 1300,
            "fin_flag_count": 3,
            "ack_flag_count": 10 + 2,
            "flow_duration": 6000.0,
            "connection_time": 6000.0,
            "last_seen": at(6000),
            "flow_iat_min": 100.0,
            "flow_iat_max": 2000.0,
            "fwd_iat_max": 2350.0,
            "bwd_iat_max": 2200.0,  # 5700 → 5900 is 200
        },
    )
    # A RST in the grace of a FIN-closed flow joins it; the flow is not closed again, so
    # it keeps its reason.
    r = run([*handshake_session(), (at(5900), eth_tcp4(S, C, 80, 40000, RST, ttl=128))])
    check(one(r), {"end_reason": "fin", "rst_flag_count": 1, "bwd_packets": 6})


def test_packet_after_the_grace_starts_a_new_flow() -> None:
    t = Tcp(client=(C, 40200), server=(S, 8080))
    syn, rst = t.c(0, SYN), t.s(100, RST | ACK)  # closed at 100 µs
    # an ACK 1.5 s after the RST: the grace is over, a new flow
    r = run([syn, rst, t.c(1_500_100, ACK)])
    assert [(x["end_reason"], x["fwd_packets"], x["bwd_packets"]) for x in r.rows] == [
        ("rst", 1, 1),
        ("eof", 1, 0),
    ]
    check(r.rows[1], {"src_ip": C, "first_seen": at(1_500_100), "fwd_tcp_flags": ACK})
    # The grace is measured from the flow's last packet, bounds included: a packet
    # exactly 1 s after the RST joins; one 1.000001 s after that one does not.
    r = run([syn, rst, t.c(1_000_100, ACK), t.c(2_000_101, ACK)])
    assert [(x["end_reason"], x["fwd_packets"], x["last_seen"]) for x in r.rows] == [
        ("rst", 2, at(1_000_100)),
        ("eof", 1, at(2_000_101)),
    ]


def test_close_grace_zero_ends_the_flow_at_the_rst() -> None:
    """close_grace = 0: only packets with the RST's own timestamp join it."""
    t = Tcp(client=(C, 40300), server=(S, 22))
    pkts = [t.c(0, SYN), t.s(100, RST | ACK), t.s(100, RST | ACK), t.c(110, ACK)]
    r = run(pkts, config=MeterConfig(close_grace=0.0))
    assert [(x["end_reason"], x["fwd_packets"], x["bwd_packets"]) for x in r.rows] == [
        ("rst", 1, 2),
        ("eof", 1, 0),
    ]


def test_syn_in_the_grace_starts_a_new_flow_and_emits_the_old_one() -> None:
    t = Tcp(client=(C, 40400), server=(S, 443))
    pkts = [
        t.c(0, SYN),
        t.s(100, SYN | ACK),
        t.c(200, ACK),
        t.c(300, RST | ACK),  # the client aborts
        t.s(400, SYN | ACK),  # the server retransmits its SYN+ACK: not a new SYN, joins
        t.c(500, SYN, seq=777_000),  # a new connection on the same port pair
        t.s(600, SYN | ACK, seq=888_000, ack=777_001),
    ]
    meter = FlowMeter()
    done = rows_of(list(meter.update(decode(PacketBatch.from_packets(pkts)))))
    # the SYN emitted the RST-ended flow at once
    assert [(x["end_reason"], x["fwd_packets"], x["bwd_packets"]) for x in done] == [("rst", 3, 2)]
    check(done[0], {"last_seen": at(400), "syn_flag_count": 3, "flow_duration": 400.0})
    (new,) = rows_of(list(meter.flush()))
    check(
        new,
        {
            "end_reason": "eof",
            "src_ip": C,
            "src_port": 40400,
            "first_seen": at(500),
            "fwd_packets": 1,
            "bwd_packets": 1,
            "syn_flag_count": 2,
            "rst_flag_count": 0,
        },
    )
    # port reuse after a complete FIN teardown (closed by the final ACK at 5800 µs)
    r = run([*handshake_session(), (at(5900), eth_tcp4(C, S, 40000, 80, SYN, seq=9))])
    assert [(x["end_reason"], x["fwd_packets"] + x["bwd_packets"]) for x in r.rows] == [
        ("fin", 11),
        ("eof", 1),
    ]


def test_flows_in_the_grace_are_emitted_at_flush_with_their_reason() -> None:
    t = Tcp(client=(C, 40500), server=(S, 23))
    pkts = sorted([*handshake_session(), t.c(0, SYN), t.s(50, RST | ACK)], key=lambda p: p[0])
    meter = FlowMeter()
    # both flows are closed within 6 ms: still in their grace period at the end
    assert list(meter.update(decode(PacketBatch.from_packets(pkts)))) == []
    assert meter.stats.open_flows == 2
    rows = rows_of(list(meter.flush()))
    assert sorted((x["dst_port"], x["end_reason"], x["fwd_packets"] + x["bwd_packets"])
                  for x in rows) == [(23, "rst", 2), (80, "fin", 11)]  # fmt: skip
    assert meter.stats.open_flows == 0


def test_closed_flow_is_emitted_by_the_expiry_scan_after_the_grace() -> None:
    """Packets of other flows advance the capture clock; the expiry scan (at most once
    per capture-clock second) emits the closed flow once its grace is over."""
    t = Tcp(client=(C, 40600), server=(S, 80))

    def other(s: float) -> Packet:  # an unrelated UDP flow
        return sec(s), eth_udp4(C, "10.0.0.9", 5000, 53, 10)

    steps = [
        [other(0)],  # scan at 0 s, next one at ≥ 1 s
        [t.c(400_000, SYN), t.s(500_000, RST | ACK)],  # closed at 0.5 s
        [other(1.2)],  # scan: 0.7 s since the RST, in its grace
        [other(1.6)],  # grace over, but no scan before 2.2 s
        [other(2.3)],  # scan: emitted
    ]
    meter = FlowMeter()
    emitted = []
    for batch in steps:
        emitted.append(rows_of(list(meter.update(decode(PacketBatch.from_packets(batch))))))
    assert [len(x) for x in emitted] == [0, 0, 0, 0, 1]
    check(emitted[-1][0], {"end_reason": "rst", "src_port": 40600, "fwd_packets": 1,
                           "bwd_packets": 1, "last_seen": sec(0.5)})  # fmt: skip
    (udp,) = rows_of(list(meter.flush()))
    check(udp, {"end_reason": "eof", "fwd_packets": 4, "protocol": PROTO_UDP})


def test_expire_emits_closed_flows_after_the_grace() -> None:
    """Live capture: expire(now) emits a closed flow once now is past its grace."""
    t = Tcp(client=(C, 40700), server=(S, 80))
    meter = FlowMeter()
    pkts = [t.c(0, SYN), t.s(100, RST | ACK)]
    assert list(meter.update(decode(PacketBatch.from_packets(pkts)))) == []
    assert list(meter.expire(at(1_000_100))) == []  # exactly 1 s after: still held
    rows = rows_of(list(meter.expire(at(1_000_101))))
    assert [(x["end_reason"], x["last_seen"]) for x in rows] == [("rst", at(100))]
    assert meter.stats.open_flows == 0


def test_update_raw_hold_keeps_finished_flows_until_take() -> None:
    def p(s: float, sport: int) -> Packet:
        return sec(s), eth_udp4(C, S, sport, 53, 10)

    cfg = MeterConfig(idle_timeout=1.0)
    batches = [[p(0, 1), p(0.5, 2)], [p(3, 3)], [p(6, 4)]]  # each batch idles out the last
    meter = FlowMeter(cfg)
    for b in batches:
        assert list(meter.update_raw(PacketBatch.from_packets(b), hold=True)) == []
    held = meter.take()
    assert held is not None
    assert [x["src_port"] for x in rows_of([held])] == [1, 2, 3]
    assert meter.take() is None
    assert [x["src_port"] for x in rows_of(list(meter.flush()))] == [4]
    # without hold, each call hands back what finished meanwhile
    meter = FlowMeter(cfg)
    got = [[x["src_port"] for x in rows_of(list(meter.update_raw(PacketBatch.from_packets(b))))]
           for b in batches]  # fmt: skip
    assert got == [[], [1, 2], [3]] and meter.take() is None
    # When the kernel needs room it returns early and the meter hands the buffer back
    # even when holding: 8 flows through 3 output rows (this looped forever on an
    # engine that drained a held buffer only when completely full).
    meter = FlowMeter(MeterConfig(idle_timeout=1.0, output_rows=3))
    pkts = PacketBatch.from_packets([p(2 * k, 10 + k) for k in range(8)])
    chunks = list(meter.update_raw(pkts, hold=True))
    assert chunks and all(1 <= len(c) <= 3 for c in chunks)
    rest = meter.take()
    parts = [*chunks, *([rest] if rest is not None else []), *meter.flush()]
    assert [x["src_port"] for x in rows_of(parts)] == list(range(10, 18))


# ---------------------------------------------------------------- fragments


def test_ipv4_fragments_attributed_to_first_fragment_ports() -> None:
    # A 3000-byte UDP datagram (8 + 3000 = 3008 bytes of IP payload) in three fragments:
    # offsets 0, 1480, 2960; sizes 1480, 1480, 48. The first carries the UDP header.
    dgram = udp(3000, sport=5000, dport=6000)
    assert len(dgram) == 3008

    def frag(t_us: float, off: int, size: int, mf: bool, ident: int = 77) -> Packet:
        chunk = dgram[off : off + size]
        return at(t_us), ether(
            ipv4(chunk, src=C, dst=S, proto=PROTO_UDP, ident=ident, mf=mf, frag_offset=off)
        )

    pkts = [
        frag(0, 0, 1480, True),
        frag(10, 1480, 1480, True),
        frag(20, 2960, 48, False),
        # a later fragment whose first fragment never came: skipped, counted
        frag(30, 1480, 1480, True, ident=78),
    ]
    dec = decode(PacketBatch.from_packets(pkts))
    assert dec.fields[:, layout.DEC_FRAG].tolist() == [
        layout.FRAG_FIRST,
        layout.FRAG_LATER,
        layout.FRAG_LATER,
        layout.FRAG_LATER,
    ]
    assert dec.status_counts()[layout.OK] == 4  # the decoder cannot know about orphans
    meter = FlowMeter()
    recs = list(meter.update(dec)) + list(meter.flush())
    # the meter marks the orphan in the batch, so status counts tell the whole story
    assert dec.status_counts()[layout.SKIP_ORPHAN_FRAGMENT] == 1
    st = meter.stats
    assert (st.packets, st.fragments, st.orphan_fragments, st.flows) == (3, 2, 1, 1)
    row = compute_features(FlowRecords.concat(recs)).to_pylist()[0]
    check(
        row,
        {
            "flow_id": "10.0.0.1-10.0.0.2-5000-6000-17",
            "fwd_packets": 3,
            "fwd_bytes": 1472 + 1480 + 48,  # = 3000, the UDP payload
            "fwd_pkt_len_max": 1480.0,
            "fwd_pkt_len_min": 48.0,
            "fwd_header_bytes": 8,  # only the first fragment has a UDP header
            "fwd_ip_bytes": (20 + 1480) * 2 + (20 + 48),
            "fragments": 2,
            "flow_duration": 20.0,
        },
    )


def test_ipv6_fragments_attributed() -> None:
    dgram = udp(2000, sport=5000, dport=6000)  # 2008 bytes: 1232 + 776

    def frag(t_us: float, off: int, size: int, more: bool) -> Packet:
        ext = [frag6(offset=off, more=more, ident=0xABCDEF)]
        ip = ipv6(dgram[off : off + size], next_header=PROTO_UDP, ext=ext)
        return at(t_us), ether(ip, ETH_IPV6)

    r = run([frag(0, 0, 1232, True), frag(5, 1232, 776, False)])
    assert r.dec.fields[:, layout.DEC_FRAG].tolist() == [layout.FRAG_FIRST, layout.FRAG_LATER]
    check(
        one(r),
        {
            "src_port": 5000,
            "dst_port": 6000,
            "fwd_packets": 2,
            "fwd_bytes": (1232 - 8) + 776,  # = 2000
            "fragments": 1,
        },
    )
    assert r.stats.fragments == 1 and r.stats.orphan_fragments == 0


# ---------------------------------------------------------------- timeouts


def test_idle_timeout_splits_flow() -> None:
    cfg = MeterConfig(idle_timeout=10.0)

    def p(s: float, n: int) -> Packet:
        return sec(s), eth_udp4(C, S, 1000, 53, n)

    # gaps: 1 s, exactly 10 s (not longer than the timeout: same flow), 10.000001 s
    r = run([p(0, 10), p(1, 11), p(11, 12), p(21.000001, 13)], config=cfg)
    assert [x["end_reason"] for x in r.rows] == ["idle", "eof"]
    first, second = r.rows
    check(first, {"fwd_packets": 3, "fwd_bytes": 33, "flow_duration": 11e6, "last_seen": sec(11)})
    check(second, {"fwd_packets": 1, "fwd_bytes": 13, "first_seen": sec(21.000001)})


def test_idle_timeout_uses_capture_clock_of_any_flow() -> None:
    meter = FlowMeter(MeterConfig(idle_timeout=10.0))
    a = PacketBatch.from_packets([(sec(0), eth_udp4(C, S, 1000, 53, 10))])
    assert list(meter.update(decode(a))) == []
    # a packet of another flow 11 s later: the first flow is closed as idle right away
    b = PacketBatch.from_packets([(sec(11), eth_udp4(C, S, 1001, 53, 10))])
    done = compute_features(FlowRecords.concat(list(meter.update(decode(b))))).to_pylist()
    assert [(x["src_port"], x["end_reason"]) for x in done] == [(1000, "idle")]
    assert meter.stats.open_flows == 1
    # expire() advances the clock without a packet (live capture)
    late = compute_features(FlowRecords.concat(list(meter.expire(sec(30))))).to_pylist()
    assert [(x["src_port"], x["end_reason"]) for x in late] == [(1001, "idle")]
    assert meter.stats.open_flows == 0


def test_idle_timeout_with_out_of_order_timestamps_across_flows() -> None:
    """A flow whose own gap exceeds the idle timeout is split even when packets of
    different flows arrive slightly out of order (merged or multi-queue captures).

    Flow B's packet at 1 s is processed after flow A's at 5 s; B's next packet at
    11.5 s comes 10.5 s after B's last one (idle timeout 10 s): B must split although
    A, active later, has not idled out.
    """
    pkts = [
        (sec(0), eth_udp4(C, S, 2, 53, 10)),  # B
        (sec(5), eth_udp4(C, S, 1, 53, 10)),  # A
        (sec(1), eth_udp4(C, S, 2, 53, 10)),  # B, older than A's packet
        (sec(11.5), eth_udp4(C, S, 2, 53, 10)),  # B, 10.5 s after its last packet
    ]
    r = run(pkts, config=MeterConfig(idle_timeout=10.0))
    b = [(x["fwd_packets"], x["end_reason"]) for x in r.rows if x["src_port"] == 2]
    assert b == [(2, "idle"), (1, "eof")]


def test_active_timeout_split_keeps_orientation() -> None:
    cfg = MeterConfig(active_timeout=5.0)
    pkts = [
        (sec(0), eth_udp4(C, S, 1000, 53, 10)),  # fwd
        (sec(2), eth_udp4(S, C, 53, 1000, 20)),  # bwd
        (sec(4), eth_udp4(C, S, 1000, 53, 10)),  # fwd
        (sec(6), eth_udp4(S, C, 53, 1000, 30)),  # bwd, 6 s > 5 s after the first: split
        (sec(7), eth_udp4(C, S, 1000, 53, 10)),  # fwd
        (sec(12), eth_udp4(C, S, 1000, 53, 10)),  # 12 − 6 > 5 s: split again
    ]
    r = run(pkts, config=cfg)
    assert [x["end_reason"] for x in r.rows] == ["active", "active", "eof"]
    first, second, third = r.rows
    check(
        first,
        {
            "src_ip": C,
            "src_port": 1000,
            "fwd_packets": 2,
            "bwd_packets": 1,
            "flow_duration": 4e6,
            "connection_time": 4e6,
        },
    )
    check(
        second,
        {
            # the continuation starts with a server packet but keeps the client as source
            "src_ip": C,
            "src_port": 1000,
            "dst_ip": S,
            "dst_port": 53,
            "fwd_packets": 1,
            "bwd_packets": 1,
            "bwd_bytes": 30,
            "fwd_bytes": 10,
            "first_seen": sec(6),
            "flow_duration": 1e6,
            "connection_time": 7e6,  # from the connection's first packet at 0 s
        },
    )
    check(
        third,
        {
            "src_ip": C,
            "fwd_packets": 1,
            "bwd_packets": 0,
            "first_seen": sec(12),
            "flow_duration": 0.0,
            "connection_time": 12e6,
        },
    )


def test_timestamps_going_backwards_are_clamped() -> None:
    def p(t_us: float) -> Packet:
        return udp_pkt(t_us, C, S, 1000, 53, 10)

    r = run([p(0), p(1000), p(500)])  # the third packet claims to be older
    row = one(r)
    check(
        row,
        {
            "fwd_packets": 3,
            "flow_duration": 1000.0,
            "last_seen": at(1000),
            "flow_iat_min": 0.0,  # clamped to the flow's last time
            "flow_iat_max": 1000.0,
            "flow_iat_mean": 500.0,  # (1000 + 0) / 2
            "fwd_iat_total": 1000.0,
        },
    )
    assert r.stats.ts_backwards == 1


# ------------------------------------------------------- bulk, active/idle, subflows


def test_bulk_transfer_detection() -> None:
    t = Tcp()
    pkts = [
        t.c(0, PSH | ACK, 50),  # request (fwd data)
        # bwd bulk 1: five data packets ≤ 1 s apart; the client's pure ACK in between does
        # not interrupt it (no payload)
        t.s(10_000, ACK, 1000),
        t.s(110_000, ACK, 1000),
        t.c(150_000, ACK),
        t.s(210_000, ACK, 1000),
        t.s(310_000, ACK, 1000),
        t.s(410_000, PSH | ACK, 500),
        t.c(500_000, PSH | ACK, 60),  # fwd data: ends any bwd candidate
        # only three bwd data packets: not a bulk
        t.s(600_000, ACK, 100),
        t.s(700_000, ACK, 100),
        t.s(800_000, ACK, 100),
        # 1.2 s later: a new candidate; gaps 0.5 s, exactly 1 s (still ≤ 1 s), 0.1 s
        t.s(2_000_000, ACK, 200),
        t.s(2_500_000, ACK, 200),
        t.s(3_500_000, ACK, 200),
        t.s(3_600_000, ACK, 200),
        # a forward bulk of four 10-byte packets 0.1 s apart
        t.c(4_000_000, PSH | ACK, 10),
        t.c(4_100_000, PSH | ACK, 10),
        t.c(4_200_000, PSH | ACK, 10),
        t.c(4_300_000, PSH | ACK, 10),
    ]
    row = one(run(pkts))
    # bwd bulks: [1000, 1000, 1000, 1000, 500] over 410 000 − 10 000 = 0.4 s and
    # [200 × 4] over 3.6 − 2.0 = 1.6 s
    bwd_bulk_bytes = 4500 + 800
    check(
        row,
        {
            "bwd_bytes_per_bulk": bwd_bulk_bytes / 2,
            "bwd_packets_per_bulk": (5 + 4) / 2,
            "bwd_bulk_rate": bwd_bulk_bytes / (0.4 + 1.6),
            "fwd_bytes_per_bulk": 40.0,
            "fwd_packets_per_bulk": 4.0,
            "fwd_bulk_rate": 40 / 0.3,
            "bwd_act_data_packets": 5 + 3 + 4,
            "fwd_act_data_packets": 1 + 1 + 4,
            "tcp_retrans": 0,
        },
    )


def test_active_idle_periods_and_subflows_across_gaps() -> None:
    # packets at 0, 1, 2, 9, 10, 20 s. Activity timeout 5 s: active [0, 2] = 2 s,
    # idle 9 − 2 = 7 s, active [9, 10] = 1 s, idle 20 − 10 = 10 s, then a lone packet
    # (a zero-length active period is not recorded).
    times = [0, 1, 2, 9, 10, 20]
    pkts = [(sec(s), eth_udp4(C, S, 1000, 53, 10)) for s in times]
    row = one(run(pkts))
    check(
        row,
        {
            "active_mean": 1.5e6,
            "active_std": sd(2e6, 1e6),  # 707 106.78
            "active_max": 2e6,
            "active_min": 1e6,
            "idle_mean": 8.5e6,
            "idle_std": sd(7e6, 10e6),  # 2 121 320.34
            "idle_max": 10e6,
            "idle_min": 7e6,
            # gaps of exactly 1 s do not count; 7 s and 10 s do: 1 + 2 subflows
            "subflow_fwd_packets": 6 / 3,
            "subflow_fwd_bytes": 60 / 3,
            "flow_duration": 20e6,
        },
    )


def test_subflow_counting() -> None:
    # gaps: 0.5, 1.5 (>1 s), 0.2, 1.0 (not > 1 s), 1.1 (>1 s) → 1 + 2 = 3 subflows
    plan = [(0.0, True), (0.5, False), (2.0, True), (2.2, False), (3.2, True), (4.3, False)]
    pkts = [
        (sec(s), eth_udp4(C, S, 1000, 53, 10) if fwd else eth_udp4(S, C, 53, 1000, 20))
        for s, fwd in plan
    ]
    check(
        one(run(pkts)),
        {
            "subflow_fwd_packets": 3 / 3,
            "subflow_fwd_bytes": 30 / 3,
            "subflow_bwd_packets": 3 / 3,
            "subflow_bwd_bytes": 60 / 3,
        },
    )


def test_tcp_retransmissions() -> None:
    t = Tcp(isn=(1000, 0xFFFFFF00))
    pkts = [
        t.c(0, PSH | ACK, 100, seq=1001),  # end 1101
        t.s(100, ACK, 32, seq=0xFFFFFFF0),  # end wraps to 16 (mod 2³²)
        t.c(200, PSH | ACK, 100, seq=1001),  # end 1101 ≤ 1101: retransmission 1
        t.s(300, ACK, 10, seq=16),  # end 26, beyond 16 in serial arithmetic: new data
        t.c(400, PSH | ACK, 50, seq=1101),  # end 1151: new
        t.s(500, ACK, 32, seq=0xFFFFFFF0),  # end 16, behind 26: bwd retransmission
        t.c(600, PSH | ACK, 50, seq=1051),  # end 1101 ≤ 1151: retransmission 2
        t.c(700, ACK, seq=1151),  # pure ACKs never count
        t.c(800, ACK, seq=1151),
    ]
    check(one(run(pkts)), {"fwd_tcp_retrans": 2, "bwd_tcp_retrans": 1, "tcp_retrans": 3})


def test_urg_ece_cwr_flags_per_direction() -> None:
    t = Tcp()
    pkts = [
        t.c(0, SYN | ECE | CWR),
        t.s(10, SYN | ACK | ECE),
        t.c(20, ACK | URG | PSH, 5, urgent=5),
        t.s(30, ACK | CWR),
    ]
    check(
        one(run(pkts)),
        {
            "fwd_urg_flags": 1,
            "bwd_urg_flags": 0,
            "urg_flag_count": 1,
            "ece_flag_count": 2,
            "cwr_flag_count": 2,
            "fwd_tcp_flags": SYN | ECE | CWR | ACK | URG | PSH,
            "bwd_tcp_flags": SYN | ACK | ECE | CWR,
        },
    )


# ---------------------------------------------------------------- flow table


def test_max_flows_evicts_and_counts() -> None:
    def p(t_us: float, sport: int) -> Packet:
        return udp_pkt(t_us, C, S, sport, 53, 10)

    # max_flows = 2 and three concurrent flows A, B, C: C's first packet evicts A, the
    # flow that has waited longest
    meter = FlowMeter(MeterConfig(max_flows=2))
    batch = PacketBatch.from_packets([p(0, 1), p(1, 2), p(2, 3), p(3, 2), p(4, 3)])
    rows = compute_features(FlowRecords.concat(list(meter.update(decode(batch))))).to_pylist()
    assert [(x["src_port"], x["end_reason"], x["fwd_packets"]) for x in rows] == [(1, "evicted", 1)]
    st = meter.stats
    assert (st.flows, st.evicted, st.open_flows, st.packets) == (3, 1, 2, 5)
    assert st.table_capacity <= 2
    rest = compute_features(FlowRecords.concat(list(meter.flush()))).to_pylist()
    assert sorted((x["src_port"], x["end_reason"], x["fwd_packets"]) for x in rest) == [
        (2, "eof", 2),
        (3, "eof", 2),
    ]
    assert meter.stats.open_flows == 0


def test_eviction_spares_an_active_flow() -> None:
    """Second-chance eviction: a flow that keeps sending is not the victim while idle
    flows exist. With max_flows = 3, a long-lived flow L sends before every new flood
    source X1, X2, X3, ...; each new source evicts the oldest *idle* source.

    Queue (head first) and queue times, µs: L(0) X1(1) X2(3) when X3 arrives at 5; L
    sent at 2 and 4, after it was queued at 0: re-queued as L(5), then X1 (last packet
    1 = queue time 1) is evicted. At 7: X2 evicted (L(5) is not at the head). At 9: L,
    which sent at 6 and 8, is re-queued again as L(9) and X3 is evicted.
    """

    def p(t_us: float, sport: int) -> Packet:
        return udp_pkt(t_us, C, S, sport, 53, 10)

    pkts = []
    for k in range(1, 6):  # L @ 0, X1 @ 1, L @ 2, X2 @ 3, ...
        pkts += [p(2 * k - 2, 9999), p(2 * k - 1, k)]
    meter = FlowMeter(MeterConfig(max_flows=3))
    done = list(meter.update(decode(PacketBatch.from_packets(pkts))))
    rows = compute_features(FlowRecords.concat(done)).to_pylist()
    assert [(x["src_port"], x["end_reason"]) for x in rows] == [
        (1, "evicted"),
        (2, "evicted"),
        (3, "evicted"),
    ]
    assert meter.stats.evicted == 3
    rest = compute_features(FlowRecords.concat(list(meter.flush()))).to_pylist()
    assert sorted((x["src_port"], x["fwd_packets"], x["end_reason"]) for x in rest) == [
        (4, 1, "eof"),
        (5, 1, "eof"),
        (9999, 5, "eof"),  # L kept all its packets in one flow
    ]


def test_second_chance_is_limited_per_eviction() -> None:
    """At most 8 re-queues per eviction: when every flow was active since it was queued,
    the ninth flow at the head is evicted although it is active too.

    max_flows = 10. Flows A0..A9 (source ports 100..109) start at 0..9 µs and each sends
    again at 10..19 µs. X at 20 µs: A0..A7 are re-queued (queue time 20), A8 is evicted.
    Queue then: A9(9) A0..A7(20) X(20). Y at 21 µs: A9 (active at 19 > 9) is re-queued,
    A0 (last packet 10 ≤ its queue time 20) is evicted.
    """

    def p(t_us: float, sport: int) -> Packet:
        return udp_pkt(t_us, C, S, sport, 53, 10)

    pkts = [p(k, 100 + k) for k in range(10)] + [p(10 + k, 100 + k) for k in range(10)]
    pkts += [p(20, 200), p(21, 201)]  # X, Y
    meter = FlowMeter(MeterConfig(max_flows=10))
    done = list(meter.update(decode(PacketBatch.from_packets(pkts))))
    rows = compute_features(FlowRecords.concat(done)).to_pylist()
    assert [(x["src_port"], x["fwd_packets"], x["end_reason"]) for x in rows] == [
        (108, 2, "evicted"),
        (100, 2, "evicted"),
    ]
    st = meter.stats
    assert (st.evicted, st.open_flows, st.flows, st.peak_open_flows) == (2, 10, 12, 10)


def test_closing_flow_is_emitted_before_an_open_flow_is_evicted() -> None:
    """A full table first gives up a flow in its close grace period: it is complete, so
    it is emitted with its own reason ("rst") and not counted as evicted.

    max_flows = 2: UDP flow U (the longest queued, idle since 0), TCP flow T closed by RST
    at 30 µs. New flow N at 40 µs: T is emitted, U stays.
    """
    t = Tcp(client=(C, 41000), server=(S, 443))
    pkts = [
        udp_pkt(0, C, S, 5000, 53, 10),
        t.c(10, SYN),
        t.s(20, SYN | ACK),
        t.c(30, RST),
        udp_pkt(40, C, S, 5001, 53, 10),
    ]
    meter = FlowMeter(MeterConfig(max_flows=2))
    done = list(meter.update(decode(PacketBatch.from_packets(pkts))))
    rows = compute_features(FlowRecords.concat(done)).to_pylist()
    assert [(x["src_port"], x["end_reason"], x["fwd_packets"], x["bwd_packets"]) for x in rows] == [
        (41000, "rst", 2, 1)
    ]
    assert meter.stats.evicted == 0 and meter.stats.open_flows == 2
    rest = compute_features(FlowRecords.concat(list(meter.flush()))).to_pylist()
    assert sorted((x["src_port"], x["end_reason"]) for x in rest) == [(5000, "eof"), (5001, "eof")]


# ---------------------------------------------------------------- damaged input


def test_malformed_packets_are_counted_and_never_form_flows() -> None:
    good = eth_tcp4(C, S, 40000, 80, SYN)
    udp_frame = eth_udp4(C, S, 1, 2, 0)
    cases = [
        (good[:10], layout.SKIP_TRUNC_LINK),  # shorter than an Ethernet header
        (ether(b"", vlans=[5])[:16], layout.SKIP_TRUNC_LINK),  # cut inside the VLAN tag
        (arp(), layout.SKIP_NON_IP),
        (good[: 14 + 12], layout.SKIP_TRUNC_IP),  # IPv4 header cut at 12 bytes
        (ether(ipv6(tcp())[:30], ETH_IPV6), layout.SKIP_TRUNC_IP),
        (ether(ipv4(tcp(), ihl=4)), layout.SKIP_BAD_IP),  # IHL 4 words = 16 < 20 bytes
        (ether(ipv4(tcp(), version=5)), layout.SKIP_BAD_IP),
        (ether(ipv4(tcp(), total_length=12)), layout.SKIP_BAD_IP),  # shorter than its header
        (ether(ipv4(tcp(data_offset=4))), layout.SKIP_BAD_L4),  # 16-byte TCP header
        (ether(ipv4(tcp(data_offset=15))), layout.SKIP_BAD_L4),  # 60 > 20 bytes in the packet
        (good[: 14 + 20 + 10], layout.SKIP_TRUNC_L4),  # snaplen cut inside the TCP header
        (udp_frame[: 14 + 20 + 4], layout.SKIP_TRUNC_L4),  # ... inside the UDP header
        # IP headers claiming more bytes than the frame had on the wire (telnet.pcap has
        # such frames): 20 + 20 + 100 = 140 > 20 + 20 + 10 bytes sent
        (ether(ipv4(tcp(10), total_length=140)), layout.SKIP_IP_LENGTH),
        (ether(ipv6(udp(10), next_header=PROTO_UDP, payload_length=19), ETH_IPV6),
         layout.SKIP_IP_LENGTH),  # 40 + 19 > 40 + 18 bytes
    ]  # fmt: skip
    # The snaplen cuts lost bytes that were on the wire: wirelen is the full frame length.
    wire = {10: len(good), 11: len(udp_frame)}
    batch = PacketBatch.from_packets([(at(k), f) for k, (f, _) in enumerate(cases)])
    for k, n in wire.items():
        batch.wirelen[k] = n
    dec = decode(batch)
    got = dec.fields[:, layout.DEC_STATUS].tolist()
    assert got == [code for _, code in cases]
    want_counts = np.bincount([code for _, code in cases], minlength=layout.SKIP_NCODES)
    assert dec.status_counts().tolist() == want_counts.tolist()
    assert dec.status_counts()[layout.OK] == 0
    assert layout.SKIP_NON_IP not in layout.MALFORMED_REASONS
    assert layout.SKIP_IP_LENGTH in layout.MALFORMED_REASONS
    assert all(code in layout.SKIP_REASONS for _, code in cases)
    meter = FlowMeter()
    assert list(meter.update(dec)) == [] and list(meter.flush()) == []
    assert (meter.stats.packets, meter.stats.flows) == (0, 0)


def test_unknown_link_type_is_skipped() -> None:
    batch = PacketBatch.from_packets([(at(0), eth_udp4(C, S, 1, 2, 5))], linktype=147)
    dec = decode(batch)
    assert dec.fields[0, layout.DEC_STATUS] == layout.SKIP_LINKTYPE
    meter = FlowMeter()
    assert list(meter.update(dec)) == [] and list(meter.flush()) == []


def test_malformed_between_good_packets_does_not_disturb_the_flow() -> None:
    t = Tcp()
    good = [t.c(0, SYN), t.s(10, SYN | ACK), t.c(20, ACK)]
    junk = [(at(5), good[0][1][:30]), (at(15), arp())]
    r = run([good[0], junk[0], good[1], junk[1], good[2]])
    check(one(r), {"fwd_packets": 2, "bwd_packets": 1, "flow_duration": 20.0})
    assert r.stats.packets == 3


def test_ethertype_ipv4_carrying_ipv6_is_rejected() -> None:
    # The version nibble must agree with the Ethernet type.
    frame = ether(ipv6(tcp()), ETH_IPV4)
    dec = decode(PacketBatch.from_packets([(at(0), frame)]))
    assert dec.fields[0, layout.DEC_STATUS] == layout.SKIP_BAD_IP


def test_update_raw_matches_decode_then_update() -> None:
    """The fused decode+meter path gives the same flows and status counts."""
    pkts = [*handshake_session(), (at(6000), arp()), (at(6001), b"\x00" * 5)]
    batch = PacketBatch.from_packets(pkts)
    ref = run(pkts)
    meter = FlowMeter()
    recs = list(meter.update_raw(batch)) + list(meter.flush())
    rows = compute_features(FlowRecords.concat(recs)).to_pylist()
    assert rows == ref.rows
    assert meter.status_counts.tolist() == ref.dec.status_counts().tolist()


# ------------------------------------------------------- fixed engine bugs (regressions)
# Each test below failed on an earlier engine (they were strict xfails until the fix).


def test_bulk_detected_when_capture_clock_starts_at_zero() -> None:
    """Captures with relative timestamps start at t = 0 (ts_ns = 0). A candidate bulk
    starting at 0 was once taken for "no candidate", so this 4-packet bulk was missed."""
    pkts = [(k * 100_000_000, eth_udp4(C, S, 1, 53, 100)) for k in range(4)]  # 0.1 s apart
    check(
        one(run(pkts)),
        {"fwd_packets_per_bulk": 4.0, "fwd_bytes_per_bulk": 400.0, "fwd_bulk_rate": 400 / 0.3},
    )


def test_ipv6_fragment_with_destination_options_in_fragmentable_part() -> None:
    """RFC 8200: a destination options header may follow the fragment header (it is
    part of the fragmentable part). The first fragment's protocol is then UDP (17), but
    later fragments' fragment header says 60: IPv6 fragments are therefore keyed by
    (src, dst, identification) only (a (src, dst, proto, id) key dropped the later
    fragment as an orphan)."""
    dgram = udp(2000, sport=5000, dport=6000)
    body = bytes([PROTO_UDP, 0]) + bytes(6) + dgram  # 8-byte destination options, then UDP

    def frag(t_us: float, off: int, end: int, more: bool) -> Packet:
        ext = [frag6(offset=off, more=more, ident=5)]
        return at(t_us), ether(ipv6(body[off:end], next_header=60, ext=ext), ETH_IPV6)

    r = run([frag(0, 0, 1232, True), frag(10, 1232, len(body), False)])
    assert r.stats.orphan_fragments == 0
    check(one(r), {"fwd_packets": 2, "fwd_bytes": 2000, "src_port": 5000})


def test_peak_open_flows_within_one_batch() -> None:
    """Peak open flows is tracked by the kernel, not sampled between kernel calls.

    Idle timeout 1 s: flows A (0 s) and B (0.1 s) are open together; C's packet at 5 s
    idles both out within the same batch. At the end: 1 open flow, peak 2.
    """
    pkts = [
        (sec(0), eth_udp4(C, S, 1, 53, 10)),
        (sec(0.1), eth_udp4(C, S, 2, 53, 10)),
        (sec(5), eth_udp4(C, S, 3, 53, 10)),
    ]
    meter = FlowMeter(MeterConfig(idle_timeout=1.0))
    done = list(meter.update(decode(PacketBatch.from_packets(pkts))))
    rows = compute_features(FlowRecords.concat(done)).to_pylist()
    assert [(x["src_port"], x["end_reason"]) for x in rows] == [(1, "idle"), (2, "idle")]
    assert (meter.stats.open_flows, meter.stats.peak_open_flows) == (1, 2)


def test_meter_config_rejects_output_buffer_too_small() -> None:
    """The kernel pauses while fewer than 2 output rows are free (and idle expiry keeps 2
    in reserve), so output_rows of 1 or 2 would never make progress: MeterConfig refuses
    them, as it refuses bad timeouts; 3 is the minimum and works."""
    for rows in (0, 1, 2):
        with pytest.raises(ValueError, match="output_rows"):
            MeterConfig(output_rows=rows)
    with pytest.raises(ValueError, match="close_grace"):
        MeterConfig(close_grace=-1.0)
    # 8 flows 2 s apart, idle timeout 1 s: each packet idles the previous flow out
    pkts = [(sec(2 * k), eth_udp4(C, S, 1000 + k, 53, 10)) for k in range(8)]
    r = run(pkts, config=MeterConfig(output_rows=3, idle_timeout=1.0))
    assert [x["src_port"] for x in r.rows] == list(range(1000, 1008))
    assert [x["end_reason"] for x in r.rows] == ["idle"] * 7 + ["eof"]
