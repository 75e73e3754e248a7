"""Deterministic generator of a large, realistic synthetic capture for flow benchmarks.

Why synthetic: the flow-extraction benchmark needs >= 1 M packets and >= 100 k flows with
a traffic mix resembling an access link (many short connections, a few long transfers,
DNS, streaming UDP, ping, some IPv6), and it must be reproducible bit for bit on any
machine without shipping a gigabyte of capture. Public captures are either too small,
licensed, or unreachable from here.

Why vectorised numpy: per-packet Python loops would take minutes for 2 M packets. Every
step below works on whole arrays: flows -> "units" (handshake, request/response
exchange, teardown) -> packets via ``np.repeat`` and position-in-unit arithmetic, then
the pcap records are built as structured header rows scattered into one byte buffer
per chunk. 2 M packets take a few seconds.

The output is a classic pcap (little-endian magic, microsecond timestamps, Ethernet).
IPv4 header checksums are computed; TCP/UDP/ICMP checksums are left zero, as in a
capture taken on a host with checksum offload.

Usage::

    python benchmarks/gen_capture.py bench-work/capture.pcap --packets 2000000 --cut 100000
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

# ---------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

MSS = 1448  # the usual MSS on a 1500-byte path (headers here carry no TCP options)
BASE_EPOCH = 1_700_000_000  # fixed capture start so output is byte-identical per seed
GATEWAY_MAC = bytes.fromhex("00163e5c2a01")
N_CLIENTS = 4096  # hosts behind the capture point
N_SERVERS = 6000  # remote endpoints, Zipf-like popularity

# Header sizes (bytes) without the 16-byte pcap record header.
ETH_LEN = 14
IP4_LEN = 20
IP6_LEN = 40
L4_LEN = {PROTO_TCP: 20, PROTO_UDP: 8, PROTO_ICMP: 8, PROTO_ICMPV6: 8}

# Flows per million packets for each traffic class. The comments give the share of packets
# each class ends up with (measured at 2 M packets): a busy office uplink, TCP heavy, lots
# of DNS, most flows short but most packets in a few hundred long flows.
CLASS_RATES: dict[str, float] = {
    "tcp_bulk": 30.0,  # 22 % of packets: downloads / video, thousands of packets, minutes
    "tcp_interactive": 12.0,  # 4 %: ssh-like keystrokes, long-lived, small segments
    "tcp_web": 1900.0,  # 22 %: keep-alive HTTP(S), a few request/response exchanges
    "tcp_short": 20000.0,  # 23 %: one request/response, a handful of packets
    "tcp_failed": 6000.0,  # 1 %: unanswered SYNs and refused connections
    "udp_dns": 30000.0,  # 8 %: one or two queries and answers
    "udp_stream": 20.0,  # 13 %: RTP/QUIC-like long streams
    "udp_short": 1500.0,  # 4 %: short QUIC / NTP / misc request-response
    "icmp_echo": 3500.0,  # 4 %: ping
}
# Traffic mixes. "long" has the same packet count spread over a few hundred long flows:
# with it a benchmark can show that a flow meter's memory follows concurrent flows, not
# packets.
MIXES: dict[str, dict[str, float]] = {
    "mixed": CLASS_RATES,
    "long": {"tcp_bulk": 75.0, "tcp_interactive": 30.0, "udp_stream": 50.0},
}
IDLE_TIMEOUT = 120.0  # for the summary: flows a meter with this idle timeout holds open


Array = npt.NDArray[Any]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


# ---------------------------------------------------------------------------------------
# Packet table
# ---------------------------------------------------------------------------------------


@dataclass
class Packets:
    """Per-packet columns of one traffic class, before they are merged and sorted.

    ``fid`` indexes the class-local flow table until :func:`_merge` offsets it.
    ``direction`` 0 = client to server, 1 = server to client. ``aux`` is the ICMP echo
    sequence number, or the DNS template id for DNS packets (else unused).
    """

    fid: I64
    t: F64
    direction: npt.NDArray[np.uint8]
    plen: npt.NDArray[np.int32]
    tflags: npt.NDArray[np.uint8]
    seq: npt.NDArray[np.uint32]
    ack: npt.NDArray[np.uint32]
    aux: npt.NDArray[np.uint16]

    def __len__(self) -> int:
        return int(self.fid.shape[0])


@dataclass
class Flows:
    """Per-flow columns: who talks to whom, and per-flow header constants."""

    proto: npt.NDArray[np.uint8]
    ipv6: npt.NDArray[np.bool_]
    client: I64  # client host index (0..N_CLIENTS)
    server: I64  # server host index (0..N_SERVERS)
    sport: npt.NDArray[np.uint16]  # server port (or ICMP echo identifier)
    cls: npt.NDArray[np.uint8]  # index into CLASS_RATES, for the summary

    def __len__(self) -> int:
        return int(self.proto.shape[0])


def _seg_cumsum(values: Array, lengths: I64) -> Array:
    """Inclusive cumulative sum restarting at each segment (flow) boundary.

    Used for timestamps (cumsum of gaps) and TCP sequence numbers (cumsum of bytes) of
    all flows at once instead of one Python loop per flow.
    """
    c = np.cumsum(values)
    starts = np.cumsum(lengths) - lengths
    base = np.zeros(len(lengths), dtype=c.dtype)
    nz = lengths > 0
    base[nz] = c[starts[nz]] - values[starts[nz]]
    return c - np.repeat(base, lengths)


def _positions(lengths: I64) -> I64:
    """Position of each element inside its segment: [0..l0-1, 0..l1-1, ...]."""
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> F64:
    return median * np.exp(sigma * rng.standard_normal(n))


def _rtt(rng: np.random.Generator, n: int) -> F64:
    """Round-trip times: median 25 ms, long tail to ~300 ms, floor 0.3 ms (LAN)."""
    return np.clip(_lognormal(rng, 0.025, 0.8, n), 0.0003, 0.4)


# ---------------------------------------------------------------------------------------
# TCP
# ---------------------------------------------------------------------------------------

HS_FULL, HS_SYNONLY, HS_REFUSED = 0, 1, 2
TD_OPEN, TD_FIN_C, TD_FIN_S, TD_RST_C, TD_RST_S = 0, 1, 2, 3, 4
U_HS, U_EX, U_TD = 0, 1, 2


@dataclass
class TcpSpec:
    """What a TCP class asks for; exchange arrays are flattened in flow order."""

    t0: F64
    hs: I64
    n_syn: I64
    td: I64
    idle: F64  # gap before the teardown
    ser: F64  # mean inter-segment gap of the server's responses (bandwidth)
    n_ex: I64
    ex_m: I64  # response segments per exchange (>= 1)
    ex_req: I64  # request payload bytes
    ex_last: I64  # payload of the last response segment
    ex_think: F64  # gap before the request (first exchange: client right after ACK)


def _tcp_packets(rng: np.random.Generator, s: TcpSpec) -> Packets:
    """Expand TCP flow specs into packets with handshake, exchanges and teardown.

    Each flow is a sequence of units: one handshake unit, ``n_ex`` exchange units (a
    request, then ``m`` server segments with a delayed ACK from the client every second
    segment) and an optional teardown unit. Sequence/ack numbers follow the bytes (and
    SYN/FIN) each side sent, so the stream is consistent for a TCP-aware flow meter.
    """
    nf = len(s.t0)
    if len(s.ex_m) == 0:  # no exchanges at all: one dummy row keeps the gathers valid
        s.ex_m, s.ex_req, s.ex_last = (np.ones(1, np.int64) for _ in range(3))
        s.ex_think = np.zeros(1)
    rtt = _rtt(rng, nf)
    isn = rng.integers(0, 2**32, size=(nf, 2), dtype=np.uint64)

    # ---- units
    u_per_flow = 1 + s.n_ex + (s.td != TD_OPEN)
    u_flow = np.repeat(np.arange(nf), u_per_flow)
    u_pos = _positions(u_per_flow)
    u_kind = np.where(u_pos == 0, U_HS, np.where(u_pos <= s.n_ex[u_flow], U_EX, U_TD))
    is_ex = u_kind == U_EX
    u_ex = np.cumsum(is_ex) - 1  # index into the exchange arrays (valid where is_ex)
    u_ex[~is_ex] = 0
    hs = s.hs[u_flow]
    td = s.td[u_flow]
    m_u = np.where(is_ex, s.ex_m[u_ex], 0)
    npk = np.select(
        [
            (u_kind == U_HS) & (hs == HS_FULL),
            (u_kind == U_HS) & (hs == HS_SYNONLY),
            (u_kind == U_HS) & (hs == HS_REFUSED),
            is_ex,
            (u_kind == U_TD) & ((td == TD_FIN_C) | (td == TD_FIN_S)),
        ],
        [3, s.n_syn[u_flow], 2, 1 + m_u + (m_u + 1) // 2, 3],
        default=1,  # RST teardown
    ).astype(np.int64)

    # ---- packets
    p_unit = np.repeat(np.arange(len(u_flow)), npk)
    pos = _positions(npk)
    kind = u_kind[p_unit]
    f = u_flow[p_unit]
    hs_p = hs[p_unit]
    td_p = td[p_unit]
    ex = u_ex[p_unit]
    n = len(p_unit)

    direction = np.zeros(n, np.uint8)
    flags = np.full(n, ACK, np.uint8)
    plen = np.zeros(n, np.int64)
    sl = np.zeros(n, np.int64)  # sequence space consumed (payload + SYN + FIN)
    gap = np.zeros(n, np.float64)
    small = rng.exponential(40e-6, n) + 5e-6
    rtt_p = rtt[f] * rng.uniform(0.9, 1.15, n)

    # handshake
    h = kind == U_HS
    full = h & (hs_p == HS_FULL)
    flags[full & (pos == 0)] = SYN
    flags[full & (pos == 1)] = SYN | ACK
    direction[full & (pos == 1)] = 1
    sl[full & (pos <= 1)] = 1
    gap[full & (pos == 1)] = rtt_p[full & (pos == 1)]
    gap[full & (pos == 2)] = small[full & (pos == 2)]
    so = h & (hs_p == HS_SYNONLY)
    flags[so] = SYN  # retransmissions reuse the ISN: sl stays 0
    gap[so & (pos > 0)] = 2.0 ** (pos[so & (pos > 0)] - 1)  # RTO backoff 1, 2, 4 s
    rf = h & (hs_p == HS_REFUSED)
    flags[rf & (pos == 0)] = SYN
    sl[rf & (pos == 0)] = 1
    flags[rf & (pos == 1)] = RST | ACK
    direction[rf & (pos == 1)] = 1
    gap[rf & (pos == 1)] = rtt_p[rf & (pos == 1)]

    # exchanges
    e = kind == U_EX
    req = e & (pos == 0)
    flags[req] = PSH | ACK
    plen[req] = s.ex_req[ex[req]]
    gap[req] = s.ex_think[ex[req]]
    rsp_part = e & (pos > 0)
    k = pos - 1
    grp, r = k // 3, k % 3
    m_p = np.where(e, s.ex_m[ex], 0)
    is_ack = rsp_part & ((r == 2) | ((m_p % 2 == 1) & (grp == m_p // 2) & (r == 1)))
    seg = rsp_part & ~is_ack
    segno = 2 * grp + r
    last = seg & (segno == m_p - 1)
    direction[seg] = 1
    plen[seg] = MSS
    plen[last] = s.ex_last[ex[last]]
    flags[last] = PSH | ACK
    first_seg = seg & (segno == 0)
    srv_time = rng.exponential(0.003, n)
    gap[first_seg] = rtt_p[first_seg] + srv_time[first_seg]
    later = seg & (segno > 0)
    gap[later] = rng.exponential(1.0, int(later.sum())) * s.ser[f[later]]
    gap[is_ack] = small[is_ack]

    # teardown
    t = kind == U_TD
    by_server = (td_p == TD_FIN_S) | (td_p == TD_RST_S)
    fin = t & ((td_p == TD_FIN_C) | (td_p == TD_FIN_S))
    rst = t & ~fin
    first_dir = by_server.astype(np.uint8)
    direction[t & (pos == 0)] = first_dir[t & (pos == 0)]
    direction[fin & (pos == 1)] = 1 - first_dir[fin & (pos == 1)]
    direction[fin & (pos == 2)] = first_dir[fin & (pos == 2)]
    flags[fin & (pos <= 1)] = FIN | ACK
    sl[fin & (pos <= 1)] = 1
    flags[rst] = RST | ACK
    gap[t & (pos == 0)] = s.idle[f[t & (pos == 0)]]
    gap[fin & (pos == 1)] = rtt_p[fin & (pos == 1)]
    gap[fin & (pos == 2)] = small[fin & (pos == 2)]

    sl += plen
    lengths = np.bincount(f, minlength=nf).astype(np.int64)
    first_of_flow = np.cumsum(lengths) - lengths
    gap[first_of_flow] = 0.0
    t_abs = s.t0[f] + _seg_cumsum(gap, lengths)

    d1 = direction == 1
    c_sl = np.where(d1, 0, sl)
    s_sl = np.where(d1, sl, 0)
    c_cum = _seg_cumsum(c_sl, lengths)
    s_cum = _seg_cumsum(s_sl, lengths)
    isn_c, isn_s = isn[f, 0], isn[f, 1]
    mask32 = np.uint64(0xFFFFFFFF)
    seq_c = (isn_c + (c_cum - c_sl).astype(np.uint64)) & mask32
    seq_s = (isn_s + (s_cum - s_sl).astype(np.uint64)) & mask32
    ack_c = (isn_s + s_cum.astype(np.uint64)) & mask32
    ack_s = (isn_c + c_cum.astype(np.uint64)) & mask32
    seq = np.where(d1, seq_s, seq_c).astype(np.uint32)
    ack = np.where(d1, ack_s, ack_c).astype(np.uint32)
    ack[(flags & ACK) == 0] = 0

    return Packets(
        fid=f.astype(np.int64),
        t=t_abs,
        direction=direction,
        plen=plen.astype(np.int32),
        tflags=flags,
        seq=seq,
        ack=ack,
        aux=np.zeros(n, np.uint16),
    )


def _ex_arrays(
    rng: np.random.Generator,
    n_ex: I64,
    m_sampler: np.ndarray,
    req_range: tuple[int, int],
    think_mean: F64,
) -> tuple[I64, I64, I64, F64]:
    """Per-exchange arrays (response segments, request size, last segment, think time)."""
    total = int(n_ex.sum())
    owner = np.repeat(np.arange(len(n_ex)), n_ex)
    first = _positions(n_ex) == 0
    m = np.maximum(1, m_sampler).astype(np.int64)
    req = rng.integers(req_range[0], req_range[1], total)
    last = rng.integers(1, MSS + 1, total)
    think = rng.exponential(1.0, total) * think_mean[owner]
    think[first] = rng.exponential(300e-6, int(first.sum())) + 20e-6
    return m, req, last, think


def _tcp_class(rng: np.random.Generator, name: str, nf: int, span: float) -> tuple[Packets, Flows]:
    """Flow specs for one TCP traffic class (see CLASS_RATES)."""
    ones = np.ones(nf, np.int64)
    hs = np.full(nf, HS_FULL, np.int64)
    n_syn = ones.copy()
    if name == "tcp_bulk":
        t0 = rng.uniform(-0.3 * span, span, nf)
        n_ex = rng.integers(8, 60, nf)
        m = rng.integers(20, 300, int(n_ex.sum()))
        think_mean = rng.uniform(1.0, 4.0, nf)
        ser = _lognormal(rng, 150e-6, 0.7, nf)
        td = rng.choice([TD_OPEN, TD_FIN_C, TD_FIN_S, TD_RST_C], nf, p=[0.4, 0.35, 0.15, 0.1])
        req_range = (200, 900)
        idle = rng.exponential(2.0, nf)
        server_ports = ([443, 80, 8080, 22], [0.75, 0.15, 0.05, 0.05])
    elif name == "tcp_interactive":
        t0 = rng.uniform(-0.3 * span, span, nf)
        n_ex = rng.integers(400, 2500, nf)
        m = rng.integers(1, 3, int(n_ex.sum()))
        think_mean = rng.uniform(0.05, 0.3, nf)
        ser = _lognormal(rng, 100e-6, 0.5, nf)
        td = rng.choice([TD_OPEN, TD_FIN_C, TD_FIN_S], nf, p=[0.6, 0.3, 0.1])
        req_range = (36, 120)
        idle = rng.exponential(1.0, nf)
        server_ports = ([22, 443, 3389], [0.7, 0.2, 0.1])
    elif name == "tcp_web":
        t0 = rng.uniform(0, span, nf)
        n_ex = rng.integers(1, 9, nf)
        m = np.ceil(_lognormal(rng, 6.0, 1.2, int(n_ex.sum()))).clip(1, 400)
        think_mean = rng.uniform(0.05, 1.5, nf)
        ser = _lognormal(rng, 120e-6, 0.8, nf)
        td = rng.choice([TD_OPEN, TD_FIN_C, TD_FIN_S, TD_RST_C, TD_RST_S], nf,
                        p=[0.15, 0.45, 0.25, 0.1, 0.05])  # fmt: skip
        req_range = (150, 1400)
        idle = rng.exponential(3.0, nf)
        server_ports = ([443, 80, 8443, 8080], [0.8, 0.15, 0.03, 0.02])
    elif name == "tcp_short":
        t0 = rng.uniform(0, span, nf)
        n_ex = ones.copy()
        m = rng.integers(1, 4, nf)
        think_mean = np.full(nf, 0.1)
        ser = _lognormal(rng, 100e-6, 0.6, nf)
        td = rng.choice([TD_OPEN, TD_FIN_C, TD_FIN_S, TD_RST_C, TD_RST_S], nf,
                        p=[0.1, 0.5, 0.25, 0.1, 0.05])  # fmt: skip
        req_range = (60, 700)
        idle = rng.exponential(0.05, nf)
        server_ports = ([443, 80, 25, 993, 5222], [0.7, 0.2, 0.03, 0.04, 0.03])
    elif name == "tcp_failed":
        t0 = rng.uniform(0, span, nf)
        n_ex = np.zeros(nf, np.int64)
        m = np.zeros(0, np.int64)
        think_mean = np.zeros(nf)
        ser = np.full(nf, 1e-4)
        hs = rng.choice([HS_SYNONLY, HS_REFUSED], nf, p=[0.6, 0.4])
        n_syn = rng.integers(1, 4, nf)
        td = np.full(nf, TD_OPEN)
        req_range = (1, 2)
        idle = np.zeros(nf)
        server_ports = ([443, 80, 22, 23, 3389, 445, 8080], [0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1])
    else:
        raise ValueError(name)
    ex_m, ex_req, ex_last, ex_think = _ex_arrays(rng, n_ex, m, req_range, think_mean)
    spec = TcpSpec(t0, hs, n_syn, td, idle, ser, n_ex, ex_m, ex_req, ex_last, ex_think)
    pk = _tcp_packets(rng, spec)
    ports = rng.choice(server_ports[0], nf, p=server_ports[1]).astype(np.uint16)
    return pk, _flows(rng, name, nf, PROTO_TCP, ports)


# ---------------------------------------------------------------------------------------
# UDP and ICMP
# ---------------------------------------------------------------------------------------

# DNS exchange patterns: direction per position (-1 = absent) and gap kind
# (0 start, 1 rtt, 2 retry after 1 s timeout, 3 back-to-back).
_DNS_DIR = np.array([[0, 1, -1, -1], [0, 0, 1, -1], [0, 0, 1, 1], [0, -1, -1, -1]])
_DNS_GAP = np.array([[0, 1, 0, 0], [0, 2, 1, 0], [0, 3, 1, 3], [0, 0, 0, 0]])
# Which query type each position carries in the A+AAAA pattern (others use the flow's).
_DNS_AAAA = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0]])
_DNS_P = [0.72, 0.06, 0.19, 0.03]
_DNS_MAX_ANSWERS = 4


def _dns_templates() -> tuple[np.ndarray, I64, I64, int]:
    """Real DNS messages (RFC 1035 wire format) to use as UDP/53 payloads.

    Why real ones: a flow meter or DPI engine that parses DNS (nDPI inside NFStream,
    scapy inside cicflowmeter) does its normal work on them instead of choking on noise.
    Template id = ((name * 2 + is_aaaa) * (MAX_ANSWERS + 2)) + k, k = 0 for the query
    and 1 + answers for a response (0 answers = NXDOMAIN). The transaction id (first two
    bytes) is patched per flow when writing.
    """
    subs = ["www", "api", "cdn", "mail", "static", "img", "login", "update", "edge", "ws"]
    doms = ["example.com", "example.net", "example.org", "shop.example", "news.example"]
    names = [f"{a}.{b}" for b in doms for a in subs]
    blobs: list[bytes] = []
    for i, name in enumerate(names):
        qname = b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\0"
        for is_aaaa in (0, 1):
            qtype = 28 if is_aaaa else 1
            question = qname + qtype.to_bytes(2, "big") + b"\x00\x01"
            blobs.append(b"\0\0\x01\x00\x00\x01\0\0\0\0\0\0" + question)
            for nans in range(_DNS_MAX_ANSWERS + 1):
                flags = b"\x81\x80" if nans else b"\x81\x83"
                hdr = b"\0\0" + flags + b"\x00\x01" + nans.to_bytes(2, "big") + b"\0\0\0\0"
                answers = b""
                for a in range(nans):
                    rdata = bytes([203, 0, 113, (i * 7 + a) % 250 + 1])
                    if is_aaaa:
                        rdata = bytes.fromhex("20010db8") + bytes(8) + rdata
                    answers += (
                        b"\xc0\x0c" + qtype.to_bytes(2, "big") + b"\x00\x01"
                        + (300 + 60 * a).to_bytes(4, "big") + len(rdata).to_bytes(2, "big")
                        + rdata
                    )  # fmt: skip
                blobs.append(hdr + question + answers)
    lens = np.array([len(b) for b in blobs], np.int64)
    offs = np.cumsum(lens) - lens
    return np.frombuffer(b"".join(blobs), np.uint8), offs, lens, len(names)


DNS_BLOB, DNS_OFF, DNS_LEN, DNS_NAMES = _dns_templates()


def _dns_class(rng: np.random.Generator, nf: int, span: float) -> tuple[Packets, Flows]:
    """DNS lookups: query/answer, retried query, A+AAAA pair, or unanswered query."""
    pat = rng.choice(4, nf, p=_DNS_P)
    lengths = (_DNS_DIR[pat] >= 0).sum(axis=1).astype(np.int64)
    f = np.repeat(np.arange(nf), lengths)
    pos = _positions(lengths)
    direction = _DNS_DIR[pat[f], pos].astype(np.uint8)
    gk = _DNS_GAP[pat[f], pos]
    rtt = _rtt(rng, nf)[f] * 0.6  # resolvers are close
    n = len(f)
    gap = np.select(
        [gk == 1, gk == 2, gk == 3], [rtt, np.full(n, 1.0), rng.exponential(30e-6, n)], 0.0
    )
    ranks = np.arange(1, DNS_NAMES + 1, dtype=np.float64)
    name = rng.choice(DNS_NAMES, nf, p=(1 / ranks) / (1 / ranks).sum())[f]
    aaaa = np.where(pat[f] == 2, _DNS_AAAA[pat[f], pos], (rng.random(nf) < 0.2)[f])
    nans = rng.choice(_DNS_MAX_ANSWERS + 1, nf, p=[0.05, 0.55, 0.2, 0.1, 0.1])[f]
    k = np.where(direction == 0, 0, 1 + nans)
    tid = (name * 2 + aaaa) * (_DNS_MAX_ANSWERS + 2) + k
    t0 = rng.uniform(0, span, nf)
    pk = _udp_like(f, t0, gap, lengths, direction, DNS_LEN[tid])
    pk.aux = tid.astype(np.uint16)
    return pk, _flows(rng, "udp_dns", nf, PROTO_UDP, np.full(nf, 53, np.uint16))


def _stream_class(
    rng: np.random.Generator, name: str, nf: int, span: float
) -> tuple[Packets, Flows]:
    """UDP streams with per-flow rate, direction mix and packet size distribution."""
    if name == "udp_stream":
        t0 = rng.uniform(-0.3 * span, span, nf)
        lengths = rng.integers(1500, 15000, nf)
        gap_mean = rng.uniform(0.01, 0.03, nf)
        p_rev = rng.uniform(0.05, 0.5, nf)
        size_c = rng.integers(160, 1200, nf)
        size_s = rng.integers(80, 1300, nf)
        ports = rng.choice([443, 5004, 3478, 1194], nf, p=[0.5, 0.2, 0.2, 0.1])
    else:
        t0 = rng.uniform(0, span, nf)
        lengths = rng.integers(2, 40, nf)
        gap_mean = _lognormal(rng, 0.03, 1.0, nf)
        p_rev = rng.uniform(0.3, 0.7, nf)
        size_c = rng.integers(48, 1250, nf)
        size_s = rng.integers(48, 1250, nf)
        ports = rng.choice([443, 123, 1900, 5353, 51820], nf, p=[0.6, 0.15, 0.1, 0.1, 0.05])
    lengths = lengths.astype(np.int64)
    f = np.repeat(np.arange(nf), lengths)
    pos = _positions(lengths)
    n = len(f)
    direction = (rng.random(n) < p_rev[f]).astype(np.uint8)
    direction[pos == 0] = 0
    mean = np.where(direction == 0, size_c[f], size_s[f])
    plen = np.clip(mean * rng.normal(1.0, 0.15, n), 20, 1472).astype(np.int64)
    gap = rng.exponential(1.0, n) * gap_mean[f]
    pk = _udp_like(f, t0, gap, lengths, direction, plen)
    return pk, _flows(rng, name, nf, PROTO_UDP, ports.astype(np.uint16))


def _icmp_class(rng: np.random.Generator, nf: int, span: float) -> tuple[Packets, Flows]:
    """Ping sessions: one echo request per second, replies after one RTT; some unanswered."""
    pairs = rng.integers(1, 11, nf)
    answered = rng.random(nf) < 0.9
    lengths = np.where(answered, 2 * pairs, pairs).astype(np.int64)
    f = np.repeat(np.arange(nf), lengths)
    pos = _positions(lengths)
    ans = answered[f]
    direction = np.where(ans, pos % 2, 0).astype(np.uint8)
    rtt = _rtt(rng, nf)[f]
    gap = np.where(direction == 1, rtt, np.where(ans, np.maximum(1.0 - rtt, 0.01), 1.0))
    gap += rng.normal(0, 0.0005, len(f))
    gap = np.abs(gap)
    size = rng.choice([56, 32, 64], nf, p=[0.7, 0.2, 0.1])[f]
    t0 = rng.uniform(0, span, nf)
    pk = _udp_like(f, t0, gap, lengths, direction, size)
    pk.aux = (np.where(ans, pos // 2, pos) + 1).astype(np.uint16)
    ident = rng.integers(1, 65535, nf).astype(np.uint16)
    fl = _flows(rng, "icmp_echo", nf, PROTO_ICMP, ident)
    fl.proto[fl.ipv6] = PROTO_ICMPV6
    return pk, fl


def _udp_like(f: I64, t0: F64, gap: F64, lengths: I64, direction: Array, plen: Array) -> Packets:
    """Packets for a connectionless class: timestamps from per-flow cumulative gaps."""
    n = len(f)
    gap = gap.astype(np.float64).copy()
    gap[np.cumsum(lengths) - lengths] = 0.0
    return Packets(
        fid=f.astype(np.int64),
        t=t0[f] + _seg_cumsum(gap, lengths),
        direction=np.asarray(direction, np.uint8),
        plen=np.asarray(plen, np.int32),
        tflags=np.zeros(n, np.uint8),
        seq=np.zeros(n, np.uint32),
        ack=np.zeros(n, np.uint32),
        aux=np.zeros(n, np.uint16),
    )


def _flows(
    rng: np.random.Generator, name: str, nf: int, proto: int, sport: npt.NDArray[np.uint16]
) -> Flows:
    """Endpoints: any client, servers by Zipf-like popularity, ~15 % of flows over IPv6."""
    ranks = np.arange(1, N_SERVERS + 1, dtype=np.float64)
    pop = 1.0 / ranks**0.9
    server = rng.choice(N_SERVERS, nf, p=pop / pop.sum())
    return Flows(
        proto=np.full(nf, proto, np.uint8),
        ipv6=rng.random(nf) < 0.15,
        client=rng.integers(0, N_CLIENTS, nf),
        server=server.astype(np.int64),
        sport=sport,
        cls=np.full(nf, list(CLASS_RATES).index(name), np.uint8),
    )


# ---------------------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------------------


@dataclass
class Traffic:
    """All packets (sorted by time, trimmed to the requested count) and their flows."""

    pk: Packets
    fl: Flows
    cport: npt.NDArray[np.uint16]  # client ephemeral port per flow
    ttl: npt.NDArray[np.uint8]  # (nflows, 2): TTL seen per direction
    win: npt.NDArray[np.uint16]  # (nflows, 2): TCP window per direction
    ipid: npt.NDArray[np.uint16]  # (nflows, 2): first IP ID per direction
    flabel: npt.NDArray[np.uint32]  # IPv6 flow label per flow
    nth: I64  # per packet: how many packets its flow sent before in that direction


def _merge(parts: Sequence[tuple[Packets, Flows]]) -> tuple[Packets, Flows]:
    """Concatenate class tables, shifting flow ids into one global numbering."""
    offset = 0
    pks, fls = [], []
    for pk, fl in parts:
        pk.fid = pk.fid + offset
        offset += len(fl)
        pks.append(pk)
        fls.append(fl)

    def cat(objs: Iterable[object], name: str) -> Array:
        return np.concatenate([getattr(o, name) for o in objs])

    pk = Packets(**{k: cat(pks, k) for k in Packets.__dataclass_fields__})
    fl = Flows(**{k: cat(fls, k) for k in Flows.__dataclass_fields__})
    return pk, fl


def build_traffic(packets: int, seed: int, span: float, mix: str = "mixed") -> Traffic:
    """Generate flows until the capture window [0, span) holds at least ``packets``.

    Flow counts scale with ``packets`` (CLASS_RATES is per million packets); the window
    is then cut to exactly ``packets`` packets in time order, so flows alive at the end
    are left open, like a real capture that was stopped.
    """
    scale = 1.1
    for _ in range(8):
        rng = np.random.default_rng(seed)
        parts = []
        for name, rate in MIXES[mix].items():
            nf = max(1, round(rate * packets / 1e6 * scale))
            if name.startswith("tcp_"):
                parts.append(_tcp_class(rng, name, nf, span))
            elif name == "udp_dns":
                parts.append(_dns_class(rng, nf, span))
            elif name.startswith("udp_"):
                parts.append(_stream_class(rng, name, nf, span))
            else:
                parts.append(_icmp_class(rng, nf, span))
        pk, fl = _merge(parts)
        keep = (pk.t >= 0) & (pk.t < span)
        got = int(keep.sum())
        if got >= packets:
            break
        scale *= 1.05 * packets / max(got, 1)
    else:  # pragma: no cover - the rates make this unreachable
        raise RuntimeError("could not reach the requested packet count")

    idx = np.flatnonzero(keep)
    idx = idx[np.argsort(pk.t[idx], kind="stable")][:packets]
    pk = Packets(**{k: getattr(pk, k)[idx] for k in Packets.__dataclass_fields__})

    nfl = len(fl)
    # Client ports: unique per (client, flow) so distinct flows never share a 5-tuple.
    nth = np.zeros(nfl, np.int64)
    order = np.argsort(fl.client, kind="stable")
    counts = np.bincount(fl.client, minlength=N_CLIENTS)
    nth[order] = _positions(counts.astype(np.int64))
    cport = (32768 + (nth * 7919 + fl.client * 131) % 28232).astype(np.uint16)
    ttl = np.stack(
        [np.full(nfl, 64), rng.choice([44, 50, 52, 56, 57, 58, 116, 118, 244], nfl)], axis=1
    ).astype(np.uint8)
    win = np.stack(
        [rng.choice([502, 501, 64240, 65535, 2052], nfl), rng.choice([501, 83, 65535, 1024], nfl)],
        axis=1,
    ).astype(np.uint16)
    ipid = rng.integers(0, 65536, (nfl, 2)).astype(np.uint16)
    flabel = rng.integers(0, 1 << 20, nfl).astype(np.uint32)
    # IP IDs count up per sender like a per-socket counter: packet number per direction.
    key = pk.fid * 2 + pk.direction
    by_key = np.argsort(key, kind="stable")
    sizes = np.bincount(key, minlength=2 * nfl).astype(np.int64)
    nth_pk = np.empty(len(key), np.int64)
    nth_pk[by_key] = _positions(sizes)
    return Traffic(pk, fl, cport, ttl, win, ipid, flabel, nth_pk)


# ---------------------------------------------------------------------------------------
# Addresses
# ---------------------------------------------------------------------------------------

_PUBLIC_FIRST_OCTETS = np.array([13, 23, 31, 35, 52, 91, 104, 142, 151, 157, 185, 199, 203])


def _addresses(seed: int) -> dict[str, np.ndarray]:
    """Fixed host tables: client/server IPv4 (u32), IPv6 (16 bytes), client MACs."""
    rng = np.random.default_rng(seed ^ 0x5EED)
    c4 = (10 << 24) | (20 << 16) | np.arange(N_CLIENTS, dtype=np.uint32) + 10
    s4 = (
        (rng.choice(_PUBLIC_FIRST_OCTETS, N_SERVERS).astype(np.uint32) << 24)
        | rng.integers(0, 1 << 24, N_SERVERS).astype(np.uint32)
    ).astype(np.uint32)
    c6 = np.zeros((N_CLIENTS, 16), np.uint8)
    c6[:, :8] = np.frombuffer(bytes.fromhex("20010db8002a0001"), np.uint8)
    c6[:, 8:] = rng.integers(0, 256, (N_CLIENTS, 8), dtype=np.uint8)
    s6 = np.zeros((N_SERVERS, 16), np.uint8)
    prefixes = [bytes.fromhex(p) for p in ("26064700", "2a001450", "2a032880", "26001f18")]
    s6[:, :4] = np.frombuffer(b"".join(prefixes), np.uint8).reshape(4, 4)[
        rng.integers(0, 4, N_SERVERS)
    ]
    s6[:, 4:] = rng.integers(0, 256, (N_SERVERS, 12), dtype=np.uint8)
    s6[:, 14] = 0  # many servers use low interface ids
    mac = rng.integers(0, 256, (N_CLIENTS, 6), dtype=np.uint8)
    mac[:, 0] = (mac[:, 0] & 0xFC) | 0x02  # locally administered, unicast
    return {"c4": c4.astype(np.uint32), "s4": s4, "c6": c6, "s6": s6, "mac": mac}


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------

_REC = [("ts_sec", "<u4"), ("ts_usec", "<u4"), ("incl", "<u4"), ("orig", "<u4")]
_ETH = [("dmac", "u1", (6,)), ("smac", "u1", (6,)), ("etype", ">u2")]
_IP4 = [
    ("vihl", "u1"), ("tos", "u1"), ("tlen", ">u2"), ("ipid", ">u2"), ("frag", ">u2"),
    ("ttl", "u1"), ("proto", "u1"), ("ipsum", ">u2"), ("src4", ">u4"), ("dst4", ">u4"),
]  # fmt: skip
_IP6 = [
    ("vtcfl", ">u4"), ("plen6", ">u2"), ("nxt", "u1"), ("hlim", "u1"),
    ("src6", "u1", (16,)), ("dst6", "u1", (16,)),
]  # fmt: skip
_TCP = [
    ("sport", ">u2"), ("dport", ">u2"), ("seq", ">u4"), ("ack", ">u4"), ("off", "u1"),
    ("flags", "u1"), ("win", ">u2"), ("l4sum", ">u2"), ("urg", ">u2"),
]  # fmt: skip
_UDP = [("sport", ">u2"), ("dport", ">u2"), ("ulen", ">u2"), ("l4sum", ">u2")]
_ICMP = [("itype", "u1"), ("icode", "u1"), ("l4sum", ">u2"), ("iid", ">u2"), ("iseq", ">u2")]
_L4 = {PROTO_TCP: _TCP, PROTO_UDP: _UDP, PROTO_ICMP: _ICMP, PROTO_ICMPV6: _ICMP}


def _ip4_checksum(rows: np.ndarray) -> np.ndarray:
    """RFC 791 header checksum of the 20-byte IPv4 headers in ``rows`` (structured)."""
    s = (
        (rows["vihl"].astype(np.uint32) << 8 | rows["tos"])
        + rows["tlen"]
        + rows["ipid"]
        + rows["frag"]
        + (rows["ttl"].astype(np.uint32) << 8 | rows["proto"])
        + (rows["src4"] >> 16)
        + (rows["src4"] & 0xFFFF)
        + (rows["dst4"] >> 16)
        + (rows["dst4"] & 0xFFFF)
    ).astype(np.uint32)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return (~s & 0xFFFF).astype(np.uint16)


def _header_rows(tr: Traffic, hosts: dict[str, np.ndarray], sel: I64, v6: bool, proto: int,
                 snaplen: int) -> np.ndarray:  # fmt: skip
    """Structured header rows (pcap record + Ethernet + IP + L4) for packets ``sel``."""
    dtype = np.dtype(_REC + _ETH + (_IP6 if v6 else _IP4) + _L4[proto])
    rows = np.zeros(len(sel), dtype)
    pk, fl = tr.pk, tr.fl
    f = pk.fid[sel]
    d = pk.direction[sel].astype(np.int64)
    rev = d == 1
    l4 = L4_LEN[proto]
    l3 = IP6_LEN if v6 else IP4_LEN
    plen = pk.plen[sel].astype(np.int64)
    wire = ETH_LEN + l3 + l4 + plen
    ts = pk.t[sel]
    sec = np.floor(ts).astype(np.int64)
    rows["ts_sec"] = BASE_EPOCH + sec
    rows["ts_usec"] = np.minimum(((ts - sec) * 1e6).astype(np.int64), 999_999)
    rows["orig"] = wire
    rows["incl"] = np.minimum(wire, snaplen)
    cmac = hosts["mac"][fl.client[f]]
    gw = np.frombuffer(GATEWAY_MAC, np.uint8)
    rows["smac"] = np.where(rev[:, None], gw, cmac)
    rows["dmac"] = np.where(rev[:, None], cmac, gw)
    if v6:
        rows["etype"] = 0x86DD
        rows["vtcfl"] = (6 << 28) | tr.flabel[f]
        rows["plen6"] = l4 + plen
        rows["nxt"] = proto
        rows["hlim"] = tr.ttl[f, d]
        cip, sip = hosts["c6"][fl.client[f]], hosts["s6"][fl.server[f]]
        rows["src6"] = np.where(rev[:, None], sip, cip)
        rows["dst6"] = np.where(rev[:, None], cip, sip)
    else:
        rows["etype"] = 0x0800
        rows["vihl"] = 0x45
        rows["tlen"] = l3 + l4 + plen
        rows["ipid"] = (tr.ipid[f, d].astype(np.int64) + tr.nth[sel]) & 0xFFFF
        rows["frag"] = 0x4000 if proto == PROTO_TCP else 0
        rows["ttl"] = tr.ttl[f, d]
        rows["proto"] = proto
        cip, sip = hosts["c4"][fl.client[f]], hosts["s4"][fl.server[f]]
        rows["src4"] = np.where(rev, sip, cip)
        rows["dst4"] = np.where(rev, cip, sip)
        rows["ipsum"] = _ip4_checksum(rows)
    if proto in (PROTO_TCP, PROTO_UDP):
        cport, sport = tr.cport[f], fl.sport[f]
        rows["sport"] = np.where(rev, sport, cport)
        rows["dport"] = np.where(rev, cport, sport)
    if proto == PROTO_TCP:
        rows["seq"] = pk.seq[sel]
        rows["ack"] = pk.ack[sel]
        rows["off"] = 5 << 4
        rows["flags"] = pk.tflags[sel]
        rows["win"] = tr.win[f, d]
    elif proto == PROTO_UDP:
        rows["ulen"] = 8 + plen
    else:
        echo_req, echo_rep = (128, 129) if v6 else (8, 0)
        rows["itype"] = np.where(rev, echo_rep, echo_req)
        rows["iid"] = fl.sport[f]
        rows["iseq"] = pk.aux[sel]
    return rows


def _pcap_global_header(snaplen: int) -> bytes:
    hdr = np.zeros(
        1,
        [("magic", "<u4"), ("vmaj", "<u2"), ("vmin", "<u2"), ("zone", "<i4"),
         ("sigfigs", "<u4"), ("snaplen", "<u4"), ("linktype", "<u4")],
    )  # fmt: skip
    hdr["magic"], hdr["vmaj"], hdr["vmin"] = 0xA1B2C3D4, 2, 4
    hdr["snaplen"], hdr["linktype"] = snaplen, 1
    return hdr.tobytes()


def _chunk_bytes(tr: Traffic, hosts: dict[str, np.ndarray], lo: int, hi: int, snaplen: int,
                 filler: np.ndarray) -> tuple[np.ndarray, I64]:  # fmt: skip
    """Records of packets [lo, hi) as one byte buffer, plus each record's end offset."""
    pk, fl = tr.pk, tr.fl
    idx = np.arange(lo, hi)
    f = pk.fid[idx]
    proto = fl.proto[f]
    v6 = fl.ipv6[f]
    l3 = np.where(v6, IP6_LEN, IP4_LEN)
    l4 = np.select([proto == PROTO_TCP, proto == PROTO_UDP], [20, 8], 8)
    wire = ETH_LEN + l3 + l4 + pk.plen[idx].astype(np.int64)
    rec = 16 + np.minimum(wire, snaplen)
    ends = np.cumsum(rec)
    starts = ends - rec
    total = int(ends[-1])
    # Payload bytes: a fixed pseudo-random pattern (incompressible like encrypted
    # traffic, but costs one tiled copy instead of a random draw per byte).
    reps = -(-total // len(filler))
    buf = np.tile(filler, reps)[:total]
    for is6 in (False, True):
        for p in (PROTO_TCP, PROTO_UDP, PROTO_ICMP, PROTO_ICMPV6):
            m = (v6 == is6) & (proto == p)
            if not m.any():
                continue
            sel = idx[m]
            rows = _header_rows(tr, hosts, sel, is6, p, snaplen)
            width = rows.dtype.itemsize
            raw = rows.view(np.uint8).reshape(len(sel), width)
            dest = starts[m][:, None] + np.arange(width)
            buf[dest] = raw
    _write_dns(tr, buf, idx, starts, rec, v6, fl.cls[f] == list(CLASS_RATES).index("udp_dns"))
    return buf, ends


def _write_dns(tr: Traffic, buf: np.ndarray, idx: I64, starts: I64, rec: I64, v6: Array,
               dns: Array) -> None:  # fmt: skip
    """Copy DNS template payloads into their records and patch the transaction ids."""
    if not dns.any():
        return
    sel = idx[dns]
    tid = tr.pk.aux[sel].astype(np.int64)
    pay = starts[dns] + 16 + ETH_LEN + np.where(v6[dns], IP6_LEN, IP4_LEN) + 8
    n = np.minimum(DNS_LEN[tid], starts[dns] + rec[dns] - pay)  # snaplen may cut it
    pos = _positions(n)
    buf[np.repeat(pay, n) + pos] = DNS_BLOB[np.repeat(DNS_OFF[tid], n) + pos]
    fid = tr.pk.fid[sel]
    aaaa = (tid // (_DNS_MAX_ANSWERS + 2)) % 2
    txid = (fid * 40503 + aaaa) & 0xFFFF
    buf[pay] = (txid >> 8).astype(np.uint8)
    buf[pay + 1] = (txid & 0xFF).astype(np.uint8)


@dataclass
class Summary:
    """What was written, for the console and the benchmark's JSON."""

    path: str
    packets: int
    flows: int
    flows_by_proto: dict[str, int]
    packets_by_proto: dict[str, int]
    flows_by_class: dict[str, int]
    ipv6_packets: int
    ipv6_flows: int
    short_flows_le10: int
    long_flows_ge1000: int
    max_flow_packets: int
    peak_concurrent_flows: int
    peak_open_flows_idle_timeout: int
    wire_bytes: int
    file_bytes: int
    span_s: float
    seed: int
    mix: str
    seconds: float
    cuts: dict[int, str] = field(default_factory=dict)
    cut_stats: dict[int, dict[str, int]] = field(default_factory=dict)


def _peak_concurrency(start: F64, end: F64) -> int:
    """Most intervals [start, end] overlapping at one instant."""
    ev_t = np.concatenate([start, end])
    ev_d = np.concatenate([np.ones(len(start)), -np.ones(len(end))])
    o = np.lexsort((-ev_d, ev_t))  # at equal times, starts before ends
    return int(np.cumsum(ev_d[o]).max()) if len(o) else 0


def concurrency(tr: Traffic, n: int) -> dict[str, int]:
    """Flow count and peak concurrency of the first ``n`` packets.

    Two views: flows between their first and last packet, and what a flow meter with a
    120 s idle timeout holds (until FIN/RST, else last packet + timeout, at most until the
    capture ends). The second is what a meter's memory should follow.
    """
    fid, t, tflags = tr.pk.fid[:n], tr.pk.t[:n], tr.pk.tflags[:n]
    nfl = len(tr.fl)
    fids = np.unique(fid)
    first = np.full(nfl, np.inf)
    last = np.full(nfl, -np.inf)
    np.minimum.at(first, fid, t)
    np.maximum.at(last, fid, t)
    last_idx = np.full(nfl, -1, np.int64)
    np.maximum.at(last_idx, fid, np.arange(n))
    closed = (tflags[last_idx[fids]] & (FIN | RST)) != 0
    held = np.where(closed, last[fids], np.minimum(last[fids] + IDLE_TIMEOUT, t[-1]))
    return {
        "flows": len(fids),
        "peak_concurrent_flows": _peak_concurrency(first[fids], last[fids]),
        "peak_open_flows_idle_timeout": _peak_concurrency(first[fids], held),
    }


def _summarise(tr: Traffic, path: Path, seed: int, mix: str) -> Summary:
    pk, fl = tr.pk, tr.fl
    fids, per_flow = np.unique(pk.fid, return_counts=True)
    proto_names = {PROTO_TCP: "tcp", PROTO_UDP: "udp", PROTO_ICMP: "icmp", PROTO_ICMPV6: "icmp"}
    pf = fl.proto[fids]
    pp = fl.proto[pk.fid]
    fb: dict[str, int] = {}
    pb: dict[str, int] = {}
    for code, name in proto_names.items():
        fb[name] = fb.get(name, 0) + int((pf == code).sum())
        pb[name] = pb.get(name, 0) + int((pp == code).sum())
    classes = list(CLASS_RATES)
    by_cls = np.bincount(fl.cls[fids], minlength=len(classes))
    conc = concurrency(tr, len(pk))
    l3 = np.where(fl.ipv6[pk.fid], IP6_LEN, IP4_LEN)
    l4 = np.select([pp == PROTO_TCP, pp == PROTO_UDP], [20, 8], 8)
    wire = int((ETH_LEN + l3 + l4 + pk.plen.astype(np.int64)).sum())
    return Summary(
        path=str(path),
        packets=len(pk),
        flows=len(fids),
        flows_by_proto=fb,
        packets_by_proto=pb,
        flows_by_class={c: int(by_cls[i]) for i, c in enumerate(classes)},
        ipv6_packets=int(fl.ipv6[pk.fid].sum()),
        ipv6_flows=int(fl.ipv6[fids].sum()),
        short_flows_le10=int((per_flow <= 10).sum()),
        long_flows_ge1000=int((per_flow >= 1000).sum()),
        max_flow_packets=int(per_flow.max()),
        peak_concurrent_flows=conc["peak_concurrent_flows"],
        peak_open_flows_idle_timeout=conc["peak_open_flows_idle_timeout"],
        wire_bytes=wire,
        file_bytes=path.stat().st_size if path.exists() else 0,
        span_s=float(pk.t[-1] - pk.t[0]),
        seed=seed,
        mix=mix,
        seconds=0.0,
    )


def cut_path(path: Path, k: int) -> Path:
    """Where the first ``k`` packets of ``path`` are written (``capture.first100000.pcap``)."""
    return path.with_name(f"{path.stem}.first{k}{path.suffix}")


def generate(
    path: Path,
    packets: int = 2_000_000,
    seed: int = 1,
    span: float = 300.0,
    cuts: Sequence[int] = (),
    snaplen: int = 65535,
    chunk: int = 100_000,
    mix: str = "mixed",
) -> Summary:
    """Write the capture (and its prefix cuts); return a summary of its content."""
    if snaplen < 128:
        raise ValueError("snaplen must be >= 128 so that every header is captured")
    t_start = time.perf_counter()
    tr = build_traffic(packets, seed, span, mix)
    hosts = _addresses(seed)
    filler = np.random.default_rng(seed + 7).integers(0, 256, 1 << 16, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cut_list = sorted({k for k in cuts if 0 < k < len(tr.pk)})
    gh = _pcap_global_header(snaplen)
    with ExitStack() as stack:
        main: BinaryIO = stack.enter_context(path.open("wb"))
        main.write(gh)
        outs: list[tuple[int, BinaryIO]] = []
        for k in cut_list:
            fh: BinaryIO = stack.enter_context(cut_path(path, k).open("wb"))
            fh.write(gh)
            outs.append((k, fh))
        for lo in range(0, len(tr.pk), chunk):
            hi = min(lo + chunk, len(tr.pk))
            buf, ends = _chunk_bytes(tr, hosts, lo, hi, snaplen, filler)
            main.write(buf.data)
            for k, out in outs:
                if k > lo:  # this chunk still holds packets of the first k
                    out.write(buf[: int(ends[min(k, hi) - lo - 1])].data)
    summary = _summarise(tr, path, seed, mix)
    summary.cuts = {k: str(cut_path(path, k)) for k in cut_list}
    summary.cut_stats = {k: concurrency(tr, k) for k in cut_list}
    summary.seconds = time.perf_counter() - t_start
    return summary


def format_summary(s: Summary) -> str:
    """Human-readable summary printed after generation."""
    mib = 1024 * 1024
    lines = [
        f"wrote {s.path}: {s.packets:,} packets, {s.flows:,} flows, "
        f"{s.file_bytes / mib:,.0f} MiB file, {s.wire_bytes / mib:,.0f} MiB on the wire, "
        f"span {s.span_s:.1f} s ({s.seconds:.1f} s to generate)",
        "  flows by protocol:   " + ", ".join(f"{k} {v:,}" for k, v in s.flows_by_proto.items()),
        "  packets by protocol: " + ", ".join(f"{k} {v:,}" for k, v in s.packets_by_proto.items()),
        "  flows by class:      " + ", ".join(f"{k} {v:,}" for k, v in s.flows_by_class.items()),
        f"  IPv6: {s.ipv6_flows:,} flows, {s.ipv6_packets:,} packets; "
        f"flows <= 10 packets: {s.short_flows_le10:,}; >= 1000 packets: "
        f"{s.long_flows_ge1000:,} (largest {s.max_flow_packets:,}); "
        f"peak concurrent flows: {s.peak_concurrent_flows:,} (first to last packet), "
        f"{s.peak_open_flows_idle_timeout:,} (held by a meter with a "
        f"{IDLE_TIMEOUT:.0f} s idle timeout)",
    ]
    lines += [
        f"  cut: first {k:,} packets -> {p} ({s.cut_stats[k]['flows']:,} flows, "
        f"{s.cut_stats[k]['peak_open_flows_idle_timeout']:,} open at most)"
        for k, p in s.cuts.items()
    ]
    return "\n".join(lines)


def summary_dict(s: Summary) -> dict[str, object]:
    """JSON-ready form (cut keys as strings)."""
    d = asdict(s)
    d["cuts"] = {str(k): v for k, v in s.cuts.items()}
    d["cut_stats"] = {str(k): v for k, v in s.cut_stats.items()}
    return d


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("output", type=Path, help="pcap file to write")
    ap.add_argument("--packets", type=int, default=2_000_000, help="packets (default 2 M)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--span", type=float, default=300.0, help="capture span, s (default 300)")
    ap.add_argument(
        "--cut",
        type=int,
        action="append",
        default=[],
        metavar="K",
        help="also write the first K packets to OUTPUT-stem.firstK.pcap (repeatable)",
    )
    ap.add_argument("--snaplen", type=int, default=65535, help="snap length (default 65535)")
    ap.add_argument(
        "--mix",
        choices=sorted(MIXES),
        default="mixed",
        help="mixed: realistic mix (default); long: same packets in a few hundred long flows",
    )
    args = ap.parse_args(argv)
    if args.packets < 1:
        ap.error("--packets must be positive")
    s = generate(
        args.output, args.packets, args.seed, args.span, args.cut, args.snaplen, mix=args.mix
    )
    print(format_summary(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
