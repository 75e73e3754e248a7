"""Property tests: the decoder and the flow meter survive any bytes and keep their books.

Contract under test:

- ``decode`` never raises, on random bytes for every supported link type (and an
  unknown one) and on truncated or byte-flipped valid frames; every status is a known
  code; rows decoded OK have sane fields; nothing past a packet's captured bytes is read.
- ``FlowMeter`` never raises on such batches; every packet is either in exactly one
  finished flow or skipped with a reason; both entry points (``update`` on a decoded
  batch and the fused ``update_raw``) agree; features are always finite.
- A spoofed-source SYN flood cannot grow the flow table beyond ``max_flows``.
"""

from __future__ import annotations

import random
import struct
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capwriter import pcap_bytes, write_pcap
from flowscope.capture import CaptureReader
from flowscope.capture.batch import PacketBatch
from flowscope.decode import DecodedBatch, decode
from flowscope.decode import layout as L
from flowscope.flows import state as S
from flowscope.flows.extract import ExtractSummary, extract_capture
from flowscope.flows.features import compute_features
from flowscope.flows.meter import FlowMeter, FlowRecords, MeterConfig
from pktbuild import (
    ACK,
    ETH_IPV6,
    FIN,
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
    sll,
    sll2,
    tcp,
    udp,
)

FUZZ = settings(
    max_examples=200,
    deadline=None,  # the first example may pay for numba compilation
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NS = 1_000_000_000
T0 = 1_700_000_000 * NS

LINKTYPES = [LT_ETHERNET, LT_SLL, LT_SLL2, LT_RAW, LT_NULL, LT_IPV4, LT_IPV6, 108, 12, 14]
UNKNOWN_LINKTYPE = 147  # LINKTYPE_USER0
DECODER_CODES = set(range(L.SKIP_NCODES)) - {L.SKIP_ORPHAN_FRAGMENT}  # the meter sets that one

# Link headers that lead to an IP header, so random bytes behind them reach the IP and
# transport decoders instead of stopping at the link layer.
LINK_PREFIX = {
    LT_ETHERNET: ether(b"")[:12] + b"\x08\x00",
    LT_SLL: sll(b""),
    LT_SLL2: sll2(b""),
    LT_NULL: null_loop(b"", 2),
    108: null_loop(b"", 24, big_endian=True),
    LT_RAW: b"",
    LT_IPV4: b"",
    LT_IPV6: b"",
}


def batch_of(
    frames: list[bytes],
    linktypes: list[int],
    ts: list[int] | None = None,
    wirelen: list[int] | None = None,
) -> PacketBatch:
    b = PacketBatch.from_packets(
        [(T0 + k if ts is None else ts[k], f) for k, f in enumerate(frames)]
    )
    b.linktype[:] = linktypes
    if wirelen is not None:
        b.wirelen[:] = wirelen
    return b


def check_decoded(dec: DecodedBatch, batch: PacketBatch) -> None:
    """Every status is a decoder code; OK rows hold plausible header fields."""
    f = dec.fields
    status = f[:, L.DEC_STATUS]
    assert set(status.tolist()) <= DECODER_CODES
    assert (f[:, L.DEC_TS] == batch.ts_ns).all()
    assert (f[:, L.DEC_WIRELEN] == batch.wirelen).all()
    ok = f[status == L.OK]
    addr = dec.addr[status == L.OK]
    if len(ok) == 0:
        return
    ipver = ok[:, L.DEC_IPVER]
    assert np.isin(ipver, [4, 6]).all()
    hdr, l4, pay, ip_len = (
        ok[:, c] for c in (L.DEC_IP_HDR_LEN, L.DEC_L4_HDR_LEN, L.DEC_PAYLOAD_LEN, L.DEC_IP_LEN)
    )
    assert (hdr >= np.where(ipver == 4, 20, 40)).all()
    assert (l4 >= 0).all() and (pay >= 0).all()
    assert (ip_len >= hdr + l4 + pay).all()
    for col, lo, hi in (
        (L.DEC_PROTO, 0, 255),
        (L.DEC_SPORT, 0, 65535),
        (L.DEC_DPORT, 0, 65535),
        (L.DEC_FLAGS, 0, 255),
        (L.DEC_WINDOW, 0, 65535),
        (L.DEC_SEQ, 0, 2**32 - 1),
        (L.DEC_TTL, 0, 255),
        (L.DEC_FRAG, 0, 2),
        (L.DEC_ICMP_TYPE, -1, 255),
        (L.DEC_ICMP_CODE, -1, 255),
        (L.DEC_VLAN, 0, 4095),
    ):
        assert ((ok[:, col] >= lo) & (ok[:, col] <= hi)).all(), col
    later = ok[:, L.DEC_FRAG] == L.FRAG_LATER
    assert (ok[later, L.DEC_L4_HDR_LEN] == 0).all()
    assert (ok[later, L.DEC_SPORT] == 0).all() and (ok[later, L.DEC_DPORT] == 0).all()
    tcp_rows = (ok[:, L.DEC_PROTO] == 6) & ~later
    assert (ok[tcp_rows, L.DEC_L4_HDR_LEN] >= 20).all()
    v4 = ipver == 4
    mapped = np.uint64(0xFFFF)
    for hi_col, lo_col in ((L.ADDR_SRC_HI, L.ADDR_SRC_LO), (L.ADDR_DST_HI, L.ADDR_DST_LO)):
        assert (addr[v4, hi_col] == 0).all()
        assert (addr[v4, lo_col] >> np.uint64(32) == mapped).all()


# ------------------------------------------------------------------- random bytes


@FUZZ
@given(
    frames=st.lists(
        st.tuples(st.sampled_from([*LINKTYPES, UNKNOWN_LINKTYPE]), st.binary(max_size=160)),
        min_size=1,
        max_size=20,
    )
)
def test_random_bytes_any_linktype(frames: list[tuple[int, bytes]]) -> None:
    batch = batch_of([f for _, f in frames], [lt for lt, _ in frames])
    dec = decode(batch)
    check_decoded(dec, batch)
    unknown = np.array([lt == UNKNOWN_LINKTYPE for lt, _ in frames])
    assert (dec.fields[unknown, L.DEC_STATUS] == L.SKIP_LINKTYPE).all()
    assert dec.status_counts().sum() == len(frames)


@st.composite
def ip_like(draw: st.DrawFn) -> tuple[int, bytes]:
    """A valid link header followed by random bytes that start like an IP header."""
    lt = draw(st.sampled_from(sorted(LINK_PREFIX)))
    v6 = lt == LT_IPV6 or (lt != LT_IPV4 and draw(st.booleans()))
    prefix = LINK_PREFIX[lt]
    if v6 and lt in (LT_ETHERNET, LT_SLL):
        prefix = prefix[:-2] + struct.pack(">H", ETH_IPV6)
    elif v6 and lt == LT_SLL2:
        prefix = struct.pack(">H", ETH_IPV6) + prefix[2:]
    elif v6 and lt == LT_NULL:
        prefix = null_loop(b"", 30)
    elif not v6 and lt == 108:
        prefix = null_loop(b"", 2, big_endian=True)
    first = draw(st.integers(0x60, 0x6F)) if v6 else draw(st.integers(0x40, 0x4F))
    proto = draw(st.sampled_from([0, 1, 6, 17, 44, 43, 58, 59, 60, 51, 132, 136, 255]))
    body = bytearray(draw(st.binary(min_size=0, max_size=120)))
    # Plant the protocol / next header where the decoder looks, when the body is long enough.
    where = 5 if v6 else 8  # byte index in body (the body starts after the first byte)
    if len(body) > where:
        body[where] = proto
    return lt, prefix + bytes([first]) + bytes(body)


@FUZZ
@given(frames=st.lists(ip_like(), min_size=1, max_size=20))
def test_random_ip_headers(frames: list[tuple[int, bytes]]) -> None:
    batch = batch_of([f for _, f in frames], [lt for lt, _ in frames])
    check_decoded(decode(batch), batch)


@FUZZ
@given(
    frames=st.lists(
        st.one_of(ip_like(), st.tuples(st.sampled_from(LINKTYPES), st.binary(max_size=100))),
        min_size=1,
        max_size=8,
    ),
    junk=st.binary(min_size=64, max_size=64),
)
def test_decode_reads_only_captured_bytes(frames: list[tuple[int, bytes]], junk: bytes) -> None:
    """Bytes after a packet's caplen (the next packet's, here) never change its decoding."""
    lts = [lt for lt, _ in frames]
    a = batch_of([f + junk for _, f in frames], lts)
    b = batch_of([f + bytes(64) for _, f in frames], lts)
    for batch in (a, b):
        batch.caplen[:] -= 64  # same captured bytes, different bytes behind them
        batch.wirelen[:] = batch.caplen
    da, db = decode(a), decode(b)
    np.testing.assert_array_equal(da.fields, db.fields)
    np.testing.assert_array_equal(da.addr, db.addr)


# ------------------------------------------------------------------- valid frames


def _corpus() -> list[tuple[int, bytes]]:
    """Valid frames of every layer combination the decoder handles."""
    v4_tcp = ipv4(tcp(30, flags=PSH | ACK, options=12), options=b"\x01\x01\x01\x00")
    v6_tcp = ipv6(tcp(30, flags=SYN, options=20), ext=[hop_by_hop(8), dest_opts(16)])
    v4_udp = ipv4(udp(20), proto=PROTO_UDP)
    v6_udp_frag = ipv6(udp(40)[:24], next_header=PROTO_UDP, ext=[frag6(more=True, ident=9)])
    v6_udp_later = ipv6(b"x" * 24, next_header=PROTO_UDP, ext=[frag6(offset=24, ident=9)])
    v4_icmp = ipv4(icmp(16), proto=PROTO_ICMP)
    v6_icmp = ipv6(icmp(16, type=128), next_header=PROTO_ICMPV6)
    v4_first = ipv4(udp(40)[:24], proto=PROTO_UDP, ident=5, mf=True)
    v4_later = ipv4(b"y" * 24, proto=PROTO_UDP, ident=5, frag_offset=24)
    v4_sctp = ipv4(bytes(12) + b"data", proto=132)
    v4_gre = ipv4(b"\x00" * 12, proto=47)
    v6_nonext = ipv6(b"", next_header=59)
    return [
        (LT_ETHERNET, ether(v4_tcp)),
        (LT_ETHERNET, ether(v6_tcp, ETH_IPV6, vlans=[7])),
        (LT_ETHERNET, ether(v4_udp, vlans=[1, 2], outer_tpid=TPID_8021AD)),
        (LT_ETHERNET, ether(v4_icmp)),
        (LT_ETHERNET, ether(v4_first)),
        (LT_ETHERNET, ether(v4_later)),
        (LT_ETHERNET, ether(v4_sctp)),
        (LT_ETHERNET, ether(v4_gre)),
        (LT_ETHERNET, arp()),
        (LT_SLL, sll(v6_udp_frag, ETH_IPV6)),
        (LT_SLL2, sll2(v6_udp_later, ETH_IPV6)),
        (LT_SLL2, sll2(v4_tcp)),
        (LT_RAW, v6_icmp),
        (LT_RAW, v4_udp),
        (LT_IPV4, v4_tcp),
        (LT_IPV6, v6_nonext),
        (LT_NULL, null_loop(v4_udp)),
        (108, null_loop(v6_tcp, 24, big_endian=True)),
    ]


CORPUS = _corpus()


def test_corpus_decodes_ok() -> None:
    batch = batch_of([f for _, f in CORPUS], [lt for lt, _ in CORPUS])
    dec = decode(batch)
    want = [L.SKIP_NON_IP if f == arp() else L.OK for _, f in CORPUS]
    assert dec.fields[:, L.DEC_STATUS].tolist() == want
    check_decoded(dec, batch)


def test_truncation_at_every_length() -> None:
    """Cutting a frame (a snaplen) never raises; a cut that keeps all the headers still
    decodes OK with the same fields, as lengths come from the IP header."""
    for lt, frame in CORPUS:
        full = decode(batch_of([frame], [lt], ts=[T0]))
        cuts = list(range(len(frame)))
        batch = batch_of(
            [frame[:n] for n in cuts],
            [lt] * len(cuts),
            ts=[T0] * len(cuts),
            wirelen=[len(frame)] * len(cuts),
        )
        dec = decode(batch)
        check_decoded(dec, batch)
        status = dec.fields[:, L.DEC_STATUS]
        if full.fields[0, L.DEC_STATUS] != L.OK:
            continue
        for n in cuts:
            if status[n] == L.OK:
                np.testing.assert_array_equal(dec.fields[n], full.fields[0], err_msg=f"cut {n}")
                np.testing.assert_array_equal(dec.addr[n], full.addr[0])
        # a cut inside the link or IP headers is never OK
        f0 = full.fields[0]
        link_len = len(frame) - f0[L.DEC_IP_LEN]
        assert (status[: link_len + f0[L.DEC_IP_HDR_LEN]] != L.OK).all()
        # ... and a cut after every header always is
        ends = link_len + f0[L.DEC_IP_HDR_LEN] + f0[L.DEC_L4_HDR_LEN]
        assert (status[ends:] == L.OK).all()


@FUZZ
@given(
    pick=st.integers(0, len(CORPUS) - 1),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    cut=st.none() | st.integers(0, 200),
)
def test_mutated_frames(pick: int, flips: list[tuple[int, int]], cut: int | None) -> None:
    lt, frame = CORPUS[pick]
    buf = bytearray(frame)
    for pos, val in flips:
        buf[pos % len(buf)] = val
    if cut is not None:
        buf = buf[:cut]
    batch = batch_of([bytes(buf)], [lt], wirelen=[len(frame)])
    check_decoded(decode(batch), batch)


# ------------------------------------------------------------------- the meter

HOSTS = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


@st.composite
def packet_specs(draw: st.DrawFn) -> tuple[int, int, bytes]:
    """(time step in ns, link type, frame): plausible traffic on few 5-tuples (so flows
    collide, split and close), fragments, garbage and mutated corpus frames."""
    kind = draw(
        st.sampled_from(["tcp", "tcp", "tcp", "tcp6", "udp", "frag", "frag", "junk", "mutant"])
    )
    step = draw(st.sampled_from([0, 1, 1000, 10**6, 3 * 10**8, 2 * NS, -5 * 10**8]))
    a, b = draw(st.permutations(HOSTS))[:2]
    sport, dport = draw(st.sampled_from([1000, 1001])), draw(st.sampled_from([80, 1000]))
    if kind == "tcp":
        flags = draw(st.sampled_from([SYN, SYN | ACK, ACK, PSH | ACK, FIN | ACK, RST, RST | ACK]))
        n = draw(st.sampled_from([0, 0, 1, 100, 1400]))
        seq = draw(st.integers(0, 2**32 - 1))
        return step, LT_ETHERNET, eth_tcp4(a, b, sport, dport, flags, n, seq=seq)
    if kind == "tcp6":
        flags = draw(st.sampled_from([SYN, ACK, FIN | ACK, RST]))
        seg = tcp(draw(st.integers(0, 50)), sport=sport, dport=dport, flags=flags)
        ext = draw(st.sampled_from([[], [hop_by_hop(8)]]))
        src6, dst6 = (f"2001:db8::{h.split('.')[-1]}" for h in (a, b))
        return step, LT_IPV6, ipv6(seg, src=src6, dst=dst6, ext=ext)
    if kind == "udp":
        n = draw(st.integers(0, 300))
        return step, LT_RAW, ipv4(udp(n, sport=sport, dport=dport), src=a, dst=b, proto=PROTO_UDP)
    if kind == "frag":  # one host pair and two ids, so later fragments often match a first
        a, b = HOSTS[0], HOSTS[1]
        ident = draw(st.integers(0, 1))
        off = draw(st.sampled_from([0, 0, 8, 16]))
        body = udp(8, sport=sport, dport=dport) if off == 0 else b"z" * 16
        ip = ipv4(body, src=a, dst=b, proto=PROTO_UDP, ident=ident, mf=off < 16, frag_offset=off)
        return step, LT_ETHERNET, ether(ip)
    if kind == "junk":
        return step, draw(st.sampled_from(LINKTYPES)), draw(st.binary(max_size=80))
    lt, frame = CORPUS[draw(st.integers(0, len(CORPUS) - 1))]
    buf = bytearray(frame)
    for _ in range(draw(st.integers(0, 3))):
        buf[draw(st.integers(0, len(buf) - 1))] = draw(st.integers(0, 255))
    return step, lt, bytes(buf[: draw(st.integers(0, len(buf)))])


def records_equal(x: FlowRecords, y: FlowRecords) -> None:
    np.testing.assert_array_equal(x.I, y.I)
    np.testing.assert_array_equal(x.F, y.F)
    np.testing.assert_array_equal(x.K, y.K)


def feed(
    meter: FlowMeter, batches: list[PacketBatch], raw: bool, hold: bool = False
) -> tuple[FlowRecords, list[npt.NDArray[np.int64]]]:
    """Run batches through one entry point; returns all flows and, for ``update``, the
    per-batch statuses (after metering, so orphan fragments are marked). ``hold``:
    update_raw keeps finished flows until its buffer needs room; take() collects them."""
    out: list[FlowRecords] = []
    statuses = []
    for batch in batches:
        if raw:
            out.extend(meter.update_raw(batch, hold=hold))
        else:
            dec = decode(batch)
            check_decoded(dec, batch)
            out.extend(meter.update(dec))
            statuses.append(dec.fields[:, L.DEC_STATUS].copy())  # after metering: orphans
    held = meter.take()
    assert held is None or hold
    if held is not None:
        out.append(held)
    out.extend(meter.flush())
    return FlowRecords.concat(out), statuses


@FUZZ
@given(
    specs=st.lists(packet_specs(), min_size=1, max_size=40),
    split=st.integers(1, 40),
    max_flows=st.sampled_from([1, 2, 3, 1000]),
    idle=st.sampled_from([0.5, 1.0, 120.0]),
    active=st.sampled_from([0.8, 3.0, 3600.0]),
    output_rows=st.sampled_from([3, 4, 65536]),
    grace=st.sampled_from([0.0, 0.4, 1.0]),
)
def test_meter_accounts_for_every_packet(
    specs: list[tuple[int, int, bytes]],
    split: int,
    max_flows: int,
    idle: float,
    active: float,
    output_rows: int,
    grace: float,
) -> None:
    ts = list(np.cumsum([s for s, _, _ in specs]) + T0)
    frames = [f for _, _, f in specs]
    lts = [lt for _, lt, _ in specs]
    whole = batch_of(frames, lts, ts=[int(t) for t in ts])
    # the same packets in batches of `split` (flows span batches)
    parts = [
        batch_of(frames[k : k + split], lts[k : k + split], ts=[int(t) for t in ts[k : k + split]])
        for k in range(0, len(frames), split)
    ]
    cfg = MeterConfig(
        idle_timeout=idle,
        active_timeout=active,
        max_flows=max_flows,
        output_rows=output_rows,
        close_grace=grace,
    )

    meter = FlowMeter(cfg)
    recs, statuses = feed(meter, parts, raw=False)
    status = np.concatenate(statuses)
    st_ = meter.stats
    n_ok = int((status == L.OK).sum())
    skipped = int((status != L.OK).sum())
    assert n_ok == st_.packets and n_ok + skipped == len(frames)
    assert int((status == L.SKIP_ORPHAN_FRAGMENT).sum()) == st_.orphan_fragments
    # every metered packet is in exactly one finished flow
    pk = recs.I[:, S.I_FWD_PKTS] + recs.I[:, S.I_BWD_PKTS]
    assert int(pk.sum()) == st_.packets and (pk >= 1).all()
    assert len(recs) == st_.flows and st_.open_flows == 0
    assert int((recs.I[:, S.I_END_REASON] == S.END_EVICTED).sum()) == st_.evicted
    assert int(recs.I[:, S.I_FRAGMENTS].sum()) == st_.fragments
    assert (recs.I[:, S.I_LAST_TS] >= recs.I[:, S.I_FIRST_TS]).all()
    assert (recs.I[:, S.I_FIRST_TS] >= recs.I[:, S.I_CONN_START]).all()
    assert st_.table_capacity <= max_flows and st_.peak_open_flows <= max_flows
    table = compute_features(recs)
    assert_same_tables(table, compute_features(recs, compiled=False))
    for name in table.column_names:
        col = table.column(name).to_numpy(zero_copy_only=False)
        if col.dtype.kind == "f":
            assert np.isfinite(col).all(), name
            if name != "icmp_type" and name != "icmp_code":
                assert (col >= 0).all() or name.endswith("init_win_bytes"), name

    # the fused path and one big batch give the same flows
    raw_meter = FlowMeter(cfg)
    raw_recs, _ = feed(raw_meter, parts, raw=True)
    records_equal(raw_recs, recs)
    assert raw_meter.status_counts.tolist() == np.bincount(status, minlength=L.SKIP_NCODES).tolist()
    one_meter = FlowMeter(cfg)
    one_recs, _ = feed(one_meter, [whole], raw=True)
    records_equal(one_recs, recs)
    # holding finished flows in the output buffer changes nothing but the chunking
    held_meter = FlowMeter(cfg)
    held_recs, _ = feed(held_meter, parts, raw=True, hold=True)
    records_equal(held_recs, recs)


def test_extract_summary_accounts_for_every_packet(tmp_path: Path) -> None:
    """Through a capture file (the `flowscope flows` path): packets in flows plus
    skipped packets equal packets read, and the flow rows hold every metered packet."""
    rng = random.Random(1234)
    eth = [f for lt, f in CORPUS if lt == LT_ETHERNET]
    packets = []
    t = T0
    for _ in range(400):
        t += rng.choice([0, 1000, 10**6, 2 * NS, -(10**6)])
        frame = bytearray(rng.choice(eth))
        for _ in range(rng.randrange(3)):
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        if rng.random() < 0.2:
            frame = frame[: rng.randrange(len(frame) + 1)]
        if rng.random() < 0.1:
            frame = bytearray(rng.randbytes(rng.randrange(60)))
        packets.append((t, bytes(frame)))
    pcap = write_pcap(tmp_path / "mix.pcap", packets, nanos=True)
    summary = ExtractSummary()
    cfg = MeterConfig(idle_timeout=1.0, max_flows=4)
    rows = [r for tab in extract_capture(pcap, cfg, summary) for r in tab.to_pylist()]
    assert summary.packets_read == len(packets)
    assert summary.packets_in_flows + sum(summary.skipped.values()) == summary.packets_read
    assert sum(r["fwd_packets"] + r["bwd_packets"] for r in rows) == summary.packets_in_flows
    assert len(rows) == summary.flows
    assert summary.malformed <= sum(summary.skipped.values())


# ------------------------------------------------------------------- SYN flood


def syn_flood(n: int, t0: int, first_src: int = 0x0B000000) -> PacketBatch:
    """``n`` SYNs to 10.0.0.2:80, each from a different spoofed source 1 µs apart
    (sources ``first_src`` onwards, by default 11.0.0.0)."""
    template = np.frombuffer(eth_tcp4("0.0.0.0", "10.0.0.2", 40000, 80, SYN), np.uint8)
    size = template.shape[0]
    data = np.tile(template, n).reshape(n, size)
    src = np.arange(n, dtype=np.uint32) + np.uint32(first_src)
    off = 14 + 12  # IPv4 source address
    data[:, off : off + 4] = src.astype(">u4").view(np.uint8).reshape(n, 4)
    return PacketBatch(
        data=data.reshape(-1).copy(),
        offset=np.arange(n, dtype=np.int64) * size,
        caplen=np.full(n, size, np.int32),
        wirelen=np.full(n, size, np.int32),
        ts_ns=t0 + np.arange(n, dtype=np.int64) * 1000,
        linktype=np.full(n, LT_ETHERNET, np.int32),
    )


@pytest.mark.parametrize("raw", [False, True], ids=["decode+update", "update_raw"])
def test_syn_flood_keeps_table_bounded(raw: bool) -> None:
    n, limit, chunk = 50_000, 1000, 5000
    meter = FlowMeter(MeterConfig(max_flows=limit))
    evicted = 0
    for k in range(0, n, chunk):
        batch = syn_flood(chunk, T0 + k * 1000)
        if k == 0:  # the sources really are distinct
            assert len(set(decode(batch).addr[:, L.ADDR_SRC_LO].tolist())) == chunk
        parts = meter.update_raw(batch) if raw else meter.update(decode(batch))
        for recs in parts:
            assert (recs.I[:, S.I_END_REASON] == S.END_EVICTED).all()
            assert (recs.I[:, S.I_FWD_PKTS] == 1).all()
            evicted += len(recs)
        st_ = meter.stats
        assert st_.open_flows <= limit and st_.table_capacity <= limit
    st_ = meter.stats
    assert (st_.flows, st_.packets, st_.evicted) == (n, n, n - limit)
    assert evicted == n - limit and st_.open_flows == limit
    assert st_.peak_open_flows == limit
    assert sum(len(r) for r in meter.flush()) == limit


def test_busy_connection_survives_a_syn_flood() -> None:
    """Second-chance eviction: a connection that keeps sending while a spoofed flood
    overflows the table is re-queued instead of evicted, so it stays one flow.

    max_flows = 1000; 20 000 SYNs from distinct sources, and one packet of the busy UDP
    flow after every 250 SYNs: it reaches the head of the queue about every 1000 new
    flows, and has always sent since it was (re)queued.
    """
    n, limit, chunk = 20_000, 1000, 250
    meter = FlowMeter(MeterConfig(max_flows=limit))
    t = T0
    finished: list[FlowRecords] = []
    for k in range(0, n, chunk):
        finished += meter.update_raw(syn_flood(chunk, t, first_src=0x0B000000 + k))
        t += chunk * 1000
        busy = PacketBatch.from_packets([(t, eth_udp4("10.0.0.1", "10.0.0.2", 5555, 53, 10))])
        finished += meter.update_raw(busy)
        t += 1000
    done = FlowRecords.concat(finished)
    assert (done.I[:, S.I_END_REASON] == S.END_EVICTED).all()
    assert not (done.I[:, S.I_SPORT] == 5555).any()
    st_ = meter.stats
    assert (st_.flows, st_.evicted, st_.open_flows) == (n + 1, n + 1 - limit, limit)
    rest = FlowRecords.concat(list(meter.flush()))
    mine = rest.I[rest.I[:, S.I_SPORT] == 5555]
    assert len(mine) == 1 and mine[0, S.I_FWD_PKTS] == n // chunk


# ------------------------------------------------------------------- text columns


@FUZZ
@given(
    addrs=st.lists(
        st.one_of(
            st.integers(0, 2**128 - 1),
            # sparse addresses: runs of zero groups in every position
            st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0xDB8]), min_size=8, max_size=8).map(
                lambda gs: int.from_bytes(struct.pack(">8H", *gs), "big")
            ),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_ip_text_matches_ipaddress(addrs: list[int]) -> None:
    """Addresses are written as RFC 5952 IPv6 text (what ``ipaddress`` prints), and
    IPv4-mapped ones (how IPv4 is stored) as dotted quads."""
    import ipaddress

    from flowscope.flows._format import format_ips

    hi = np.array([a >> 64 for a in addrs], dtype=np.uint64)
    lo = np.array([a & (2**64 - 1) for a in addrs], dtype=np.uint64)
    want = []
    for a in addrs:
        ip = ipaddress.IPv6Address(a)
        want.append(str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else str(ip))
    assert format_ips(hi, lo).to_pylist() == want


@FUZZ
@given(ns=st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=30))
def test_timestamp_text_matches_datetime(ns: list[int]) -> None:
    """'YYYY-MM-DD HH:MM:SS.ffffff' in UTC, microseconds truncated (int64 ns: up to 2262)."""
    import datetime as dt

    from flowscope.flows._format import format_times

    epoch = dt.datetime(1970, 1, 1)
    want = [
        (epoch + dt.timedelta(microseconds=t // 1000)).strftime("%Y-%m-%d %H:%M:%S.%f") for t in ns
    ]
    assert format_times(np.array(ns, dtype=np.int64)).to_pylist() == want


def _extract(path: Path, cfg: MeterConfig, fast: bool) -> tuple[list[dict[str, object]], object]:
    """All rows and the summary of extract_capture, through the fused pcap walk or not."""
    summary = ExtractSummary()
    if fast:
        tables = list(extract_capture(path, cfg, summary))
    else:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(CaptureReader, "pcap_records", lambda self: None)
            tables = list(extract_capture(path, cfg, summary))
    return [r for t in tables for r in t.to_pylist()], summary


@FUZZ
@given(
    specs=st.lists(packet_specs(), min_size=0, max_size=40),
    linktype=st.sampled_from([LT_ETHERNET, LT_RAW, LT_SLL, LT_IPV4]),
    nanos=st.booleans(),
    big=st.booleans(),
    modified=st.booleans(),
    damage=st.sampled_from(["none", "none", "cut", "caplen"]),
    where=st.integers(0, 10**6),
    max_flows=st.sampled_from([1, 3, 1000]),
    output_rows=st.sampled_from([3, 65536]),
)
def test_fused_pcap_walk_matches_batches(
    specs: list[tuple[int, int, bytes]],
    linktype: int,
    nanos: bool,
    big: bool,
    modified: bool,
    damage: str,
    where: int,
    max_flows: int,
    output_rows: int,
) -> None:
    """`flowscope flows` walks classic pcap records in the compiled loop itself; the rows
    and every count of the summary equal those of reading the file in batches, whatever
    the header variant and however the file is damaged (cut short, impossible length)."""
    ts = [int(t) for t in np.cumsum([s for s, _, _ in specs]) + T0]
    data = bytearray(
        pcap_bytes(
            [(t, f) for t, (_, _, f) in zip(ts, specs, strict=True)],
            linktype=linktype,
            nanos=nanos,
            big_endian=big,
        )
    )
    if modified:  # Kuznetzov's format: 8 more bytes per record header
        e = ">" if big else "<"
        out, pos = [bytes(data[:24])], 24
        out[0] = struct.pack(e + "I", 0xA1B2CD34) + out[0][4:]
        while pos + 16 <= len(data):
            incl = struct.unpack_from(e + "I", data, pos + 8)[0]
            out.append(
                bytes(data[pos : pos + 16]) + b"\0" * 8 + bytes(data[pos + 16 : pos + 16 + incl])
            )
            pos += 16 + incl
        data = bytearray(b"".join(out))
    if damage == "cut" and len(data) > 24:
        data = data[: 24 + where % (len(data) - 24)]
    elif damage == "caplen" and specs:
        hdr = 24 if modified else 16
        pos, k = 24, where % len(specs)
        for _ in range(k):
            incl = struct.unpack_from(">I" if big else "<I", data, pos + 8)[0]
            pos += hdr + incl
        struct.pack_into(">I" if big else "<I", data, pos + 8, 262145 + where % 1000)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.pcap"
        path.write_bytes(bytes(data))
        cfg = MeterConfig(idle_timeout=1.0, max_flows=max_flows, output_rows=output_rows)
        fast_rows, fast = _extract(path, cfg, fast=True)
        slow_rows, slow = _extract(path, cfg, fast=False)
    assert fast_rows == slow_rows
    assert fast == slow


def assert_same_tables(a: pa.Table, b: pa.Table) -> None:
    """Equal schemas and values (floats: same value, NaN equal to NaN)."""
    assert a.schema == b.schema
    for name in a.column_names:
        x = a.column(name).to_numpy(zero_copy_only=False)
        y = b.column(name).to_numpy(zero_copy_only=False)
        if x.dtype.kind == "f":
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            assert x.tolist() == y.tolist(), name


@FUZZ
@given(data=st.data(), n=st.integers(0, 50))
def test_compiled_features_equal_the_registry(data: st.DataObject, n: int) -> None:
    """The one-pass compiled feature columns equal the registry's numpy definitions, also
    for accumulator values no meter produces (zeros, extremes, NaN and infinite times)."""
    ints = st.integers(-(2**40), 2**40) | st.sampled_from([0, 1, -1, 2**62, 2**31])
    floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, 1.0, 2.0])
    I = np.array(
        data.draw(
            st.lists(st.lists(ints, min_size=S.I_NCOLS, max_size=S.I_NCOLS), min_size=n, max_size=n)
        ),
        dtype=np.int64,
    ).reshape(n, S.I_NCOLS)
    F = np.array(
        data.draw(
            st.lists(
                st.lists(floats, min_size=S.F_NCOLS, max_size=S.F_NCOLS), min_size=n, max_size=n
            )
        ),
        dtype=np.float64,
    ).reshape(n, S.F_NCOLS)
    K = np.zeros((n, S.K_NCOLS), np.uint64)
    for order in ("C", "F"):
        recs = FlowRecords(np.array(I, order=order), np.array(F, order=order), K)
        with np.errstate(all="ignore"):
            assert_same_tables(compute_features(recs), compute_features(recs, compiled=False))
