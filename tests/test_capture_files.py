"""Capture-file readers on hand-made pcap/pcapng files and on the shared real captures."""

from __future__ import annotations

import gzip
import os
import random
import re
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from capwriter import (
    Epb,
    Interface,
    ObsoletePb,
    RawBlock,
    Section,
    Spb,
    block,
    epb,
    ns_as_read,
    pcap_bytes,
    pcapng_bytes,
    shb,
    simple_section,
    write_bytes,
    write_pcap,
    write_pcapng,
)
from flowscope.capture import CaptureReader, PacketBatch, ReaderStats, open_capture
from flowscope.errors import CaptureError

T0 = 1_700_000_000_000_000_000  # a plausible capture time, whole seconds

# (ts_ns, data, wirelen) as a reader reports them
Pkt = tuple[int, bytes, int]


def sample_packets(n: int = 50, step_ns: int = 1_000) -> list[tuple[int, bytes, int]]:
    """Packets of varied lengths (zero included), timestamps on microsecond boundaries."""
    return [(T0 + i * step_ns, bytes([i % 251]) * (i * 7 % 97), 60 + i) for i in range(n)]


def check_batch(b: PacketBatch) -> None:
    """What every consumer relies on: parallel arrays, packets inside ``data``."""
    n = len(b)
    assert b.data.dtype == np.uint8 and b.offset.dtype == np.int64
    assert b.caplen.dtype == np.int32 and b.wirelen.dtype == np.int32
    assert b.ts_ns.dtype == np.int64 and b.linktype.dtype == np.int32
    for a in (b.caplen, b.wirelen, b.ts_ns, b.linktype):
        assert a.shape == (n,)
    if n:
        assert (b.offset >= 0).all() and (b.caplen >= 0).all()
        assert (b.offset + b.caplen <= b.data.shape[0]).all()


def read_all(path: str | Path, **kw: int) -> tuple[list[Pkt], list[int], CaptureReader]:
    """Every packet of a file as (ts_ns, bytes, wirelen), plus linktypes and the reader."""
    out: list[Pkt] = []
    lts: list[int] = []
    with open_capture(path, **kw) as r:
        for b in r.batches():
            check_batch(b)
            for i in range(len(b)):
                o, c = int(b.offset[i]), int(b.caplen[i])
                out.append((int(b.ts_ns[i]), b.data[o : o + c].tobytes(), int(b.wirelen[i])))
                lts.append(int(b.linktype[i]))
    return out, lts, r


# -- classic pcap ------------------------------------------------------------------


@pytest.mark.parametrize("nanos", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
def test_pcap_roundtrip(tmp_path: Path, nanos: bool, big_endian: bool) -> None:
    pkts = sample_packets()
    if nanos:  # nanosecond files keep the sub-microsecond digits
        pkts = [(ts + i * 7, d, w) for i, (ts, d, w) in enumerate(pkts)]
    p = write_pcap(tmp_path / "a.pcap", pkts, linktype=113, nanos=nanos, big_endian=big_endian)
    got, lts, r = read_all(p)
    assert got == pkts
    assert set(lts) == {113} and r.linktypes == {113}
    assert r.format == "pcap" and not r.compressed
    size = p.stat().st_size
    assert r.stats == ReaderStats(records=len(pkts), bytes_read=size, file_size=size)
    assert r.position == size


def test_pcap_linktype_fcs_bits_are_masked(tmp_path: Path) -> None:
    # Upper bits of the link-type field say "FCS present, 4 bytes": not part of the type.
    p = write_pcap(tmp_path / "a.pcap", sample_packets(3), linktype=0x1000_0000 | 1)
    _, lts, r = read_all(p)
    assert lts == [1, 1, 1] and r.linktypes == {1}


def test_pcap_caplen_above_snaplen_and_zero_length(tmp_path: Path) -> None:
    pkts = [(T0, b"", 0), (T0 + 1000, b"x" * 300, 300), (T0 + 2000, b"", 1514)]
    p = write_pcap(tmp_path / "a.pcap", pkts, snaplen=64)
    got, _, r = read_all(p)
    assert got == pkts and r.stats.bad_records == 0


def test_modified_pcap_variant(tmp_path: Path) -> None:
    # Old Red Hat tcpdump: magic 0xa1b2cd34, record headers 8 bytes longer.
    hdr = struct.pack("<IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 65535, 1)
    recs = b"".join(
        struct.pack("<IIII", 1_700_000_000, 5, 3, 60) + b"\x00" * 8 + b"abc" for _ in range(2)
    )
    got, _, _ = read_all(write_bytes(tmp_path / "m.pcap", hdr + recs))
    assert got == [(T0 + 5000, b"abc", 60)] * 2


def test_pcap_batches_respect_batch_packets(tmp_path: Path) -> None:
    pkts = sample_packets(10)
    p = write_pcap(tmp_path / "a.pcap", pkts)
    with open_capture(p, batch_packets=3) as r:
        sizes = [len(b) for b in r.batches()]
    assert sizes == [3, 3, 3, 1]


@pytest.mark.parametrize("kind", ["pcap", "pcapng", "pcap.gz", "pcapng.gz"])
@pytest.mark.parametrize("chunk_size", [1, 7, 16, 17, 40, 100, 1000])
def test_chunk_boundaries_never_split_packets(tmp_path: Path, kind: str, chunk_size: int) -> None:
    pkts = sample_packets(40)
    gz = kind.endswith(".gz")
    if kind.startswith("pcapng"):
        p = write_pcapng(tmp_path / "a", simple_section(pkts), gzip=gz)
    else:
        p = write_pcap(tmp_path / "a", pkts, gzip=gz)
    expected, _, _ = read_all(p)
    assert expected == pkts
    got, _, r = read_all(p, chunk_size=chunk_size, batch_packets=5)
    assert got == pkts
    assert r.stats.truncated_records == 0 and r.stats.errors == []


def test_batches_stay_valid_after_reader_moves_on(tmp_path: Path) -> None:
    pkts = sample_packets(30)
    p = write_pcap(tmp_path / "a.pcap", pkts)
    with open_capture(p, batch_packets=4, chunk_size=64) as r:
        batches = list(r.batches())
    got = [
        b.data[b.offset[i] : b.offset[i] + b.caplen[i]].tobytes()
        for b in batches
        for i in range(len(b))
    ]
    assert got == [d for _, d, _ in pkts]


@pytest.mark.parametrize("cut", [1, 10, 16, 17])
def test_pcap_truncated_last_record(tmp_path: Path, cut: int) -> None:
    pkts = [(T0, b"a" * 40, 40), (T0 + 1, b"b" * 40, 40)]
    data = pcap_bytes(pkts, nanos=True)
    p = write_bytes(tmp_path / "t.pcap", data[:-cut])
    got, _, r = read_all(p, chunk_size=32)
    assert got == pkts[:1]
    assert r.stats.truncated_records == 1 and r.stats.bad_records == 0
    assert len(r.stats.errors) == 1 and "truncated" in r.stats.errors[0]


def test_pcap_impossible_caplen_stops_reading(tmp_path: Path) -> None:
    good = pcap_bytes([(T0, b"a" * 10, 10), (T0 + 1000, b"b" * 10, 10)])
    bad = struct.pack("<IIII", 1, 2, 0x7FFF_FFFF, 60) + b"junk" * 100
    p = write_bytes(tmp_path / "b.pcap", good + bad + good[24:])
    got, _, r = read_all(p)
    assert len(got) == 2
    assert r.stats.bad_records == 1 and r.stats.truncated_records == 0
    assert "impossible captured length 2147483647" in r.stats.errors[0]


def test_pcap_unsupported_version(tmp_path: Path) -> None:
    p = write_bytes(tmp_path / "v.pcap", pcap_bytes([], version=(3, 0)))
    with pytest.raises(CaptureError, match=r"unsupported version 3\.0"):
        open_capture(p)


def test_pcap_header_truncated(tmp_path: Path) -> None:
    p = write_bytes(tmp_path / "h.pcap", pcap_bytes([])[:10])
    with pytest.raises(CaptureError, match=r"header of .*h\.pcap is truncated: 10 of 24"):
        open_capture(p)


def test_pcap_with_no_packets(tmp_path: Path) -> None:
    got, _, r = read_all(write_pcap(tmp_path / "e.pcap", []))
    assert got == [] and r.stats.records == 0 and r.stats.errors == []


# -- open errors ---------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match=r"cannot open capture .*nope\.pcap: no such file"):
        open_capture(tmp_path / "nope.pcap")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="is a directory"):
        open_capture(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without read permission")
def test_permission_denied(tmp_path: Path) -> None:
    p = write_pcap(tmp_path / "a.pcap", [])
    p.chmod(0)
    with pytest.raises(CaptureError, match="permission denied"):
        open_capture(p)


def test_empty_file(tmp_path: Path) -> None:
    p = write_bytes(tmp_path / "empty.pcap", b"")
    with pytest.raises(CaptureError, match=r"empty\.pcap is empty"):
        open_capture(p)


def test_not_a_capture_shows_magic(tmp_path: Path) -> None:
    p = write_bytes(tmp_path / "x.txt", b"hello world\n")
    with pytest.raises(CaptureError, match=r"x\.txt is not a pcap or pcapng .*0x68656c6c"):
        open_capture(p)


def test_other_compression_gets_a_hint(tmp_path: Path) -> None:
    p = write_bytes(tmp_path / "x.pcap.zst", b"\x28\xb5\x2f\xfd" + b"\x00" * 20)
    with pytest.raises(CaptureError, match="zstd-compressed: decompress it first"):
        open_capture(p)


def test_error_messages_are_one_line(tmp_path: Path) -> None:
    for data in (b"", b"\x01", b"garbage!" * 4, pcap_bytes([])[:5], shb()[:8]):
        p = write_bytes(tmp_path / "x", data)
        with pytest.raises(CaptureError) as ei:
            open_capture(p)
        assert "\n" not in str(ei.value) and str(p) in str(ei.value)


def test_bad_arguments(tmp_path: Path) -> None:
    p = write_pcap(tmp_path / "a.pcap", [])
    with pytest.raises(ValueError):
        open_capture(p, batch_packets=0)


def test_batches_is_single_use_and_closes(tmp_path: Path) -> None:
    p = write_pcap(tmp_path / "a.pcap", sample_packets(3))
    r = open_capture(p)
    assert sum(len(b) for b in r.batches()) == 3
    with pytest.raises(RuntimeError):
        list(r.batches())
    r.close()  # idempotent


def test_stopping_early_closes_the_file(tmp_path: Path) -> None:
    p = write_pcap(tmp_path / "a.pcap", sample_packets(10))
    with open_capture(p, batch_packets=2) as r:
        for _ in r.batches():
            break
    assert r.stats.records == 2


# -- pcapng ----------------------------------------------------------------------------


def test_pcapng_roundtrip_both_byte_orders(tmp_path: Path) -> None:
    pkts = sample_packets(20)
    for be in (False, True):
        p = write_pcapng(tmp_path / "a.pcapng", simple_section(pkts, big_endian=be))
        got, lts, r = read_all(p)
        assert got == pkts and set(lts) == {1}
        assert r.format == "pcapng" and r.stats.records == 20
        assert r.stats.bytes_read == p.stat().st_size == r.position


def test_pcapng_multi_section_interfaces_and_resolutions(tmp_path: Path) -> None:
    ns9 = Interface(linktype=1, tsresol=9)
    bin20 = Interface(linktype=113, tsresol=0x80 | 20, tsoffset=1_000)
    usec = Interface(linktype=101)  # no if_tsresol: microseconds
    t_ns = T0 + 123_456_789
    s1 = Section(
        [ns9, bin20, Epb(0, t_ns, b"a"), Epb(1, t_ns, b"bb", 99), Epb(0, t_ns + 1, b"c")],
        big_endian=False,
    )
    # The second section switches byte order and restarts interface numbering.
    s2 = Section([usec, Epb(0, T0 + 5_000, b"d"), Epb(0, T0 + 6_000, b"e")], big_endian=True)
    p = write_pcapng(tmp_path / "m.pcapng", [s1, s2])
    got, lts, r = read_all(p)
    assert got == [
        (t_ns, b"a", 1),
        (ns_as_read(bin20, t_ns), b"bb", 99),
        (t_ns + 1, b"c", 1),
        (T0 + 5_000, b"d", 1),
        (T0 + 6_000, b"e", 1),
    ]
    assert abs(got[1][0] - t_ns) < 1_000  # 2^-20 s is about 954 ns
    assert lts == [1, 113, 1, 101, 101]
    assert r.linktypes == {1, 101, 113}
    assert r.stats.bad_records == 0


def test_interface_ids_reset_per_section(tmp_path: Path) -> None:
    s1 = Section([Interface(1), Interface(1), Epb(1, T0, b"a")])
    s2 = Section([Interface(1), Epb(0, T0, b"b"), Epb(1, T0, b"c", ts_units=0), Epb(0, T0, b"d")])
    got, _, r = read_all(write_pcapng(tmp_path / "r.pcapng", [s1, s2]))
    assert [d for _, d, _ in got] == [b"a", b"b", b"d"]
    assert r.stats.bad_records == 1
    assert "undefined interface" in r.stats.errors[0]


@pytest.mark.parametrize(
    ("tsresol", "units", "expected"),
    [
        (None, 1_700_000_000_123_456, T0 + 123_456_000),
        (3, 1_700_000_000_123, T0 + 123_000_000),
        (9, 1_700_000_000_123_456_789, T0 + 123_456_789),
        (12, 123_456_789_123, 123_456_789),  # picoseconds (64 bits hold ~213 days)
        (0, 1_700_000_000, T0),
        (0x80, 1_700_000_000, T0),  # 2^0: seconds
        (0x80 | 10, (1_700_000_000 << 10) | 512, T0 + 500_000_000),
        (0x80 | 20, (1_700_000_000 << 20) | 12_345, T0 + 12_345 * 10**9 // 2**20),
        (0x80 | 32, (1 << 32) | (1 << 31), 1_500_000_000),
    ],
)
def test_timestamp_resolutions(
    tmp_path: Path, tsresol: int | None, units: int, expected: int
) -> None:
    sec = Section([Interface(tsresol=tsresol), Epb(0, 0, b"x", ts_units=units)])
    got, _, _ = read_all(write_pcapng(tmp_path / "t.pcapng", sec))
    assert got[0][0] == expected


def test_tsoffset_is_added(tmp_path: Path) -> None:
    iface = Interface(tsresol=9, tsoffset=1_700_000_000)
    sec = Section([iface, Epb(0, 0, b"x", ts_units=42)])
    got, _, _ = read_all(write_pcapng(tmp_path / "t.pcapng", sec))
    assert got[0][0] == T0 + 42


def test_absurd_resolutions_do_not_crash(tmp_path: Path) -> None:
    items: list = [Interface(tsresol=r) for r in (0x7F, 0xFF, 0x80 | 50, 19, 30)]
    items += [Epb(i, 0, b"x", ts_units=(1 << 63) | 12345) for i in range(5)]
    got, _, r = read_all(write_pcapng(tmp_path / "t.pcapng", Section(items)))
    assert len(got) == 5 and r.stats.bad_records == 0


def test_simple_packet_blocks(tmp_path: Path) -> None:
    iface = Interface(linktype=1, snaplen=8)
    sec = Section(
        [
            iface,
            Spb(b"first", 5),  # before any timestamped packet: time 0
            Epb(0, T0 + 7_000, b"epb"),
            Spb(b"abcdefgh", 1500),  # cut at the snapshot length
            Spb(b"abc", 3),  # padded to 4 bytes in the file; original length wins
        ]
    )
    got, lts, r = read_all(write_pcapng(tmp_path / "s.pcapng", sec))
    assert got == [
        (0, b"first", 5),
        (T0 + 7_000, b"epb", 3),
        (T0 + 7_000, b"abcdefgh", 1500),
        (T0 + 7_000, b"abc", 3),
    ]
    assert lts == [1, 1, 1, 1]
    assert r.stats.spb_no_timestamp == 3


def test_spb_bounded_by_block(tmp_path: Path) -> None:
    # Original length larger than what is stored and no snaplen: take what the block holds.
    sec = Section([Interface(snaplen=0), Spb(b"abcd", 1000)])
    got, _, _ = read_all(write_pcapng(tmp_path / "s.pcapng", sec))
    assert got == [(0, b"abcd", 1000)]


def test_obsolete_packet_block(tmp_path: Path) -> None:
    iface = Interface(linktype=105, tsresol=9)
    sec = Section([Interface(), iface, ObsoletePb(1, T0 + 3, b"old", 80)])
    got, lts, _ = read_all(write_pcapng(tmp_path / "o.pcapng", sec))
    assert got == [(T0 + 3, b"old", 80)] and lts == [105]


def test_blocks_without_packets_are_skipped(tmp_path: Path) -> None:
    nrb, isb, dsb, custom, unknown = 4, 5, 10, 0x0000_0BAD, 0x1234_5678
    items: list = [Interface()]
    for bt in (nrb, isb, dsb, custom, unknown):
        items += [RawBlock(bt, b"\x01\x02\x03\x04\x05"), Epb(0, T0, bytes([bt & 0xFF]))]
    got, _, r = read_all(write_pcapng(tmp_path / "k.pcapng", Section(items)))
    assert len(got) == 5
    assert r.stats.skipped_blocks == 5 and r.stats.bad_records == 0


def test_many_interfaces(tmp_path: Path) -> None:
    items: list = [Interface(linktype=1000 + i) for i in range(100)]
    items += [Epb(i, T0, b"x") for i in range(0, 100, 9)]
    _, lts, r = read_all(write_pcapng(tmp_path / "i.pcapng", Section(items)))
    assert lts == [1000 + i for i in range(0, 100, 9)]
    assert r.linktypes == set(lts)


def test_pcapng_epb_with_impossible_caplen_is_skipped(tmp_path: Path) -> None:
    good = epb(0, 1, b"ok")
    # Claims 100 captured bytes in a block that holds 4.
    bad = bytearray(epb(0, 1, b"bad!"))
    bad[20:24] = struct.pack("<I", 100)
    data = pcapng_bytes(Section([Interface()])) + good + bytes(bad) + good
    got, _, r = read_all(write_bytes(tmp_path / "c.pcapng", data))
    assert [d for _, d, _ in got] == [b"ok", b"ok"]
    assert r.stats.bad_records == 1 and "impossible captured length" in r.stats.errors[0]


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda b: b[:4] + struct.pack("<I", 30) + b[8:], "impossible length"),
        (lambda b: b[:4] + struct.pack("<I", 1 << 30) + b[8:], "impossible length"),
        (lambda b: b[:4] + struct.pack("<I", 8) + b[8:], "impossible length"),
        (lambda b: b[:-4] + struct.pack("<I", 40), "trailing length"),
    ],
)
def test_pcapng_broken_block_frame_stops(
    tmp_path: Path, corrupt: Callable[[bytes], bytes], message: str
) -> None:
    head = pcapng_bytes(Section([Interface(), Epb(0, T0, b"first")]))
    broken = corrupt(epb(0, T0, b"two!"))
    p = write_bytes(tmp_path / "f.pcapng", head + broken + epb(0, T0, b"never"))
    got, _, r = read_all(p)
    assert [d for _, d, _ in got] == [b"first"]
    assert r.stats.bad_records == 1 and message in r.stats.errors[0]


def test_pcapng_truncated(tmp_path: Path) -> None:
    data = pcapng_bytes(simple_section(sample_packets(5)))
    for cut in (1, 5, 12, 30):
        got, _, r = read_all(write_bytes(tmp_path / "t.pcapng", data[:-cut]), chunk_size=50)
        assert len(got) == 4
        assert r.stats.truncated_records == 1 and "truncated" in r.stats.errors[0]


def test_pcapng_open_errors(tmp_path: Path) -> None:
    good = shb()
    cases = {
        "byte-order magic": good[:8] + b"\x11\x22\x33\x44" + good[12:],
        "unsupported version 2.0": shb(version=(2, 0)),
        "unreadable section header": good[:4] + struct.pack("<I", 13) + good[8:],
        "is truncated": good[:10],
    }
    for message, data in cases.items():
        p = write_bytes(tmp_path / "e.pcapng", data)
        with pytest.raises(CaptureError, match=message):
            open_capture(p)


def test_pcapng_later_section_with_bad_version_stops(tmp_path: Path) -> None:
    data = pcapng_bytes(
        [
            simple_section([(T0, b"a")]),
            Section([Interface(), Epb(0, T0, b"b")], version=(2, 0)),
        ]
    )
    got, _, r = read_all(write_bytes(tmp_path / "v.pcapng", data))
    assert len(got) == 1 and r.stats.bad_records == 1
    assert "unsupported version" in r.stats.errors[0]


def test_pcapng_without_interfaces(tmp_path: Path) -> None:
    data = shb() + block(5, b"\x00" * 8)
    got, _, r = read_all(write_bytes(tmp_path / "n.pcapng", data))
    assert got == [] and r.stats.skipped_blocks == 1


# -- gzip --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_gzip_both_formats(tmp_path: Path, fmt: str) -> None:
    pkts = sample_packets(200)
    if fmt == "pcap":
        p = write_pcap(tmp_path / "a.pcap.gz", pkts, gzip=True)
    else:
        p = write_pcapng(tmp_path / "a.pcapng.gz", simple_section(pkts), gzip=True)
    got, _, r = read_all(p, chunk_size=1000)
    assert got == pkts
    assert r.compressed and r.format == fmt
    assert r.stats.file_size == p.stat().st_size == r.position
    assert r.stats.bytes_read == len(gzip.decompress(p.read_bytes()))
    assert r.stats.errors == []


def test_gzip_multi_member(tmp_path: Path) -> None:
    pkts = sample_packets(30)
    data = pcap_bytes(pkts)
    half = len(data) // 2
    p = tmp_path / "m.pcap.gz"
    p.write_bytes(gzip.compress(data[:half]) + gzip.compress(data[half:]) + b"\x00" * 8)
    got, _, r = read_all(p, chunk_size=100)
    assert got == pkts and r.stats.errors == []


def test_gzip_truncated(tmp_path: Path) -> None:
    pkts = [(T0 + i, os.urandom(200), 200) for i in range(100)]
    whole = gzip.compress(pcap_bytes(pkts, nanos=True))
    p = write_bytes(tmp_path / "t.pcap.gz", whole[: len(whole) // 2])
    got, _, r = read_all(p, chunk_size=500)
    assert 0 < len(got) < 100 and got == pkts[: len(got)]
    assert any("gzip stream ends early" in e for e in r.stats.errors)


@pytest.mark.parametrize("seed", range(5))
def test_gzip_corrupt(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    pkts = [(T0 + i, rnd.randbytes(200), 200) for i in range(100)]
    whole = bytearray(gzip.compress(pcap_bytes(pkts, nanos=True)))
    whole[len(whole) // 2 : len(whole) // 2 + 50] = b"\xff" * 50
    got, _, r = read_all(write_bytes(tmp_path / "c.pcap.gz", bytes(whole)), chunk_size=500)
    # Deflate may turn damage into wrong bytes before zlib notices (at worst at the
    # CRC check), so only what precedes the damage is sure to be right.
    assert got[:40] == pkts[:40]
    assert r.stats.errors


def test_gzip_open_errors(tmp_path: Path) -> None:
    p = write_bytes(tmp_path / "e.gz", gzip.compress(b""))
    with pytest.raises(CaptureError, match="empty"):
        open_capture(p)
    p = write_bytes(tmp_path / "g.gz", gzip.compress(b"not a capture at all"))
    with pytest.raises(CaptureError, match=r"gzip-compressed file .* 0x6e6f7420"):
        open_capture(p)
    p = write_bytes(tmp_path / "h.gz", b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(CaptureError):
        open_capture(p)


# -- real captures -------------------------------------------------------------------------

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PCAPS = DATA / "pcaps"


def real_captures() -> list[Path]:
    if not PCAPS.is_dir():
        return []
    exts = (".pcap", ".pcapng", ".cap")
    return sorted(p for p in DATA.rglob("*") if p.suffix in exts and p.is_file())


needs_data = pytest.mark.skipif(
    not PCAPS.is_dir(), reason=f"shared captures not present at {PCAPS}"
)


@needs_data
def test_real_captures_read_cleanly() -> None:
    files = real_captures()
    assert len(files) > 100
    for f in files:
        with open_capture(f) as r:
            n = 0
            for b in r.batches():
                check_batch(b)
                n += len(b)
        s = r.stats
        assert n > 0, f
        assert (s.bad_records, s.truncated_records, s.errors) == (0, 0, []), (f, s)
        assert s.bytes_read == s.file_size, f


def tcpdump_timestamps(path: Path) -> list[int]:
    """Packet times in ns as tcpdump prints them (one header line per packet)."""
    out = subprocess.run(
        ["tcpdump", "-r", str(path), "-n", "-q", "-tt", "--time-stamp-precision=nano"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    stamps = re.findall(r"^(\d+)\.(\d{9}) ", out, flags=re.M)
    return [int(s) * 1_000_000_000 + int(f) for s, f in stamps]


@needs_data
@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_real_captures_match_tcpdump() -> None:
    files = sorted((PCAPS / "benign").glob("*.pcapng"))
    files += [DATA / "parity_concap" / "ping" / "dump.pcap", PCAPS / "ndpi" / "sctp.cap"]
    files += sorted((PCAPS / "ndpi").glob("*.pcapng"))[:10]
    for f in files:
        if not f.exists():
            continue
        got, _, _ = read_all(f)
        assert [t for t, _, _ in got] == tcpdump_timestamps(f), f
