"""Property tests: the capture readers survive any input and round-trip any valid one.

The contract under test: ``open_capture`` raises nothing but CaptureError, and
``batches()`` raises nothing at all, on arbitrary bytes; every yielded batch is
internally consistent; and a valid file reads back exactly, whatever the chunk
and batch sizes.
"""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capwriter import (
    Epb,
    Interface,
    Item,
    ObsoletePb,
    RawBlock,
    Section,
    Spb,
    ns_as_read,
    pcap_bytes,
    pcapng_bytes,
    simple_section,
)
from flowscope.capture import PacketBatch, open_capture
from flowscope.capture._pcap import MAX_CAPLEN
from flowscope.errors import CaptureError

FUZZ = settings(
    max_examples=200,
    deadline=None,  # the first example pays for numba compilation
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
T0 = 1_700_000_000_000_000_000

MAGICS = [
    b"",
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\x34\xcd\xb2\xa1",
    b"\x0a\x0d\x0d\x0a",
    b"\x1f\x8b",
]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Module-scoped: hypothesis reuses it across examples (tmp_path is per test call).
    with tempfile.TemporaryDirectory(prefix="capfuzz") as d:
        yield Path(d)


def check_batch(b: PacketBatch) -> None:
    n = len(b)
    assert b.data.dtype == np.uint8 and b.data.ndim == 1
    for a, dt in (
        (b.offset, np.int64),
        (b.caplen, np.int32),
        (b.wirelen, np.int32),
        (b.ts_ns, np.int64),
        (b.linktype, np.int32),
    ):
        assert a.dtype == dt and a.shape == (n,)
    assert n > 0  # readers do not yield empty batches
    assert (b.offset >= 0).all()
    assert (b.caplen >= 0).all() and (b.caplen <= MAX_CAPLEN).all()
    assert (b.wirelen >= 0).all()
    assert (b.offset + b.caplen <= b.data.shape[0]).all()


def read_everything(path: Path, chunk_size: int, batch_packets: int) -> int | None:
    """Read a file the way a consumer would; None when it is refused at open."""
    try:
        r = open_capture(path, batch_packets=batch_packets, chunk_size=chunk_size)
    except CaptureError as e:
        assert "\n" not in str(e)
        return None
    n = 0
    with r:
        for b in r.batches():
            check_batch(b)
            assert len(b) <= batch_packets
            n += len(b)
    s = r.stats
    assert s.records == n
    assert len(s.errors) <= 8
    assert s.truncated_records in (0, 1)
    assert r.position >= 0
    return n


chunk_sizes = st.sampled_from([1, 13, 64, 1000, 1 << 20])
batch_sizes = st.sampled_from([1, 3, 262144])


@FUZZ
@given(prefix=st.sampled_from(MAGICS), body=st.binary(max_size=2000), cs=chunk_sizes)
def test_random_bytes(workdir: Path, prefix: bytes, body: bytes, cs: int) -> None:
    p = workdir / "random.bin"
    p.write_bytes(prefix + body)
    read_everything(p, cs, 7)


# -- valid files, built from drawn packets -------------------------------------------------

payloads = st.binary(max_size=120)
packets = st.lists(st.tuples(st.integers(0, 10**6), payloads, st.integers(0, 2000)), max_size=25)


def as_pcap(pkts: list[tuple[int, bytes, int]], nanos: bool, big: bool) -> tuple[bytes, list]:
    step = 1 if nanos else 1000
    expected = [(T0 + t * step, d, w) for t, d, w in pkts]
    return pcap_bytes(expected, nanos=nanos, big_endian=big), expected


def as_pcapng(
    pkts: list[tuple[int, bytes, int]], big: bool, resols: list[int | None]
) -> tuple[bytes, list]:
    """Packets spread over interfaces of different resolutions, some as SPB/obsolete PB."""
    ifaces = [Interface(linktype=i + 1, tsresol=r, tsoffset=i) for i, r in enumerate(resols)]
    items: list[Item] = [*ifaces, RawBlock(4, b"nrb")]
    expected = []
    last_ts = 0
    for k, (t, d, w) in enumerate(pkts):
        i = k % len(ifaces)
        ts = T0 + t * 997
        if k % 7 == 6:
            items.append(Spb(d, len(d)))
            expected.append((last_ts, d, len(d)))
            continue
        items.append(ObsoletePb(i, ts, d, w) if k % 5 == 4 else Epb(i, ts, d, w))
        last_ts = ns_as_read(ifaces[i], ts)
        expected.append((last_ts, d, w))
    return pcapng_bytes(Section(items, big_endian=big)), expected


resolutions = st.lists(
    st.sampled_from([None, 0, 3, 6, 9, 0x80 | 10, 0x80 | 20, 0x80 | 30]), min_size=1, max_size=3
)


@st.composite
def valid_files(draw: st.DrawFn) -> tuple[bytes, list]:
    pkts = draw(packets)
    fmt = draw(st.sampled_from(["pcap", "pcapng"]))
    big = draw(st.booleans())
    if fmt == "pcap":
        data, expected = as_pcap(pkts, draw(st.booleans()), big)
    else:
        data, expected = as_pcapng(pkts, big, draw(resolutions))
    if draw(st.booleans()):
        data = gzip.compress(data, compresslevel=1)
    return data, expected


@FUZZ
@given(f=valid_files(), cs=chunk_sizes, bp=batch_sizes)
def test_valid_files_round_trip(workdir: Path, f: tuple[bytes, list], cs: int, bp: int) -> None:
    data, expected = f
    p = workdir / "valid.bin"
    p.write_bytes(data)
    got = []
    with open_capture(p, batch_packets=bp, chunk_size=cs) as r:
        for b in r.batches():
            check_batch(b)
            for i in range(len(b)):
                o, c = int(b.offset[i]), int(b.caplen[i])
                got.append((int(b.ts_ns[i]), b.data[o : o + c].tobytes(), int(b.wirelen[i])))
    assert got == expected
    s = r.stats
    assert (s.bad_records, s.truncated_records, s.errors) == (0, 0, [])


# -- mutated valid files ---------------------------------------------------------------------

BASES = [
    pcap_bytes([(T0 + i * 1000, bytes([i]) * i, 100) for i in range(12)]),
    pcap_bytes([(T0 + i, bytes([i]) * 30, 30) for i in range(12)], nanos=True, big_endian=True),
    pcapng_bytes(
        [
            simple_section([(T0 + i * 1000, bytes([i]) * i) for i in range(6)]),
            Section(
                [
                    Interface(113, 64, 9, 5),
                    Interface(101, 0, 0x80 | 20),
                    Epb(0, T0, b"a" * 40),
                    Spb(b"spb" * 5, 15),
                    RawBlock(5, b"isb-body"),
                    Epb(1, T0 + 10**6, b"b" * 20),
                    ObsoletePb(1, T0 + 10**7, b"c" * 9),
                ],
                big_endian=True,
            ),
        ]
    ),
]
PLAIN_BASES = list(BASES)
BASES += [gzip.compress(b, compresslevel=1) for b in BASES]


@st.composite
def mutated(draw: st.DrawFn, bases: list[bytes] = BASES) -> bytes:
    data = bytearray(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        i = draw(st.integers(0, len(data)))
        if op == "flip" and i < len(data):
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and i < len(data):
            v = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]))
            data[i : i + 4] = bytes([v]) * len(data[i : i + 4])
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 16))]
    return bytes(data)


@FUZZ
@given(data=mutated(), cs=chunk_sizes, bp=batch_sizes)
def test_mutated_files(workdir: Path, data: bytes, cs: int, bp: int) -> None:
    p = workdir / "mutated.bin"
    p.write_bytes(data)
    read_everything(p, cs, bp)


@FUZZ
@given(data=mutated(PLAIN_BASES))
def test_chunk_size_does_not_change_the_result(workdir: Path, data: bytes) -> None:
    """Even on damaged input, what is read must not depend on where chunks end.

    Uncompressed input only: when a gzip stream is corrupt, zlib discards the
    output of the call that hit the damage, so how much of it survives depends
    on the step size.
    """
    p = workdir / "chunked.bin"
    p.write_bytes(data)
    results = []
    for cs in (1, 29, 1 << 20):
        try:
            r = open_capture(p, chunk_size=cs)
        except CaptureError as e:
            results.append(("error", str(e)))
            continue
        flat: list[tuple[int, int, int, int]] = []
        with r:
            for b in r.batches():
                cols = (b.ts_ns, b.caplen, b.wirelen, b.linktype)
                flat += zip(*(c.tolist() for c in cols), strict=True)
        s = r.stats
        results.append(("ok", (flat, s.records, s.bad_records, s.truncated_records)))
    assert results[0] == results[1] == results[2]
