"""Write small pcap and pcapng captures by hand, for tests.

Tests that need a capture build one here instead of shipping binary files, so the
content is visible in the test and any corner of the formats can be produced.

Packets are ``(ts_ns, data)`` or ``(ts_ns, data, wirelen)`` tuples; ``wirelen``
defaults to ``len(data)``.

pcap::

    write_pcap(path, [(1_000, b"..."), (2_000, b"...", 1514)], linktype=1)

pcapng: a file is one or more :class:`Section` objects, each a list of items
written in order: :class:`Interface` (interface ids count from 0 in each
section), :class:`Epb`, :class:`Spb`, :class:`ObsoletePb` and :class:`RawBlock`
(any other block, e.g. name resolution or a deliberately broken one)::

    write_pcapng(path, [Section([Interface(linktype=1, tsresol=9), Epb(0, 5, b"...")])])
    write_pcapng(path, simple_section([(1_000, b"...")]))

Timestamps given in nanoseconds are converted to the interface's units by floor
division (after subtracting its tsoffset); :func:`ns_as_read` gives what a reader
should return for them. ``Epb(ts_units=...)`` writes raw units instead.
Every writer takes ``gzip=True`` to compress the file.
"""

from __future__ import annotations

import gzip as gzip_mod
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

NS = 1_000_000_000
Packet = tuple[int, bytes] | tuple[int, bytes, int]

# -- pcap ------------------------------------------------------------------------


def pcap_bytes(
    packets: Iterable[Packet],
    *,
    linktype: int = 1,
    nanos: bool = False,
    big_endian: bool = False,
    snaplen: int = 262144,
    version: tuple[int, int] = (2, 4),
) -> bytes:
    """A classic pcap file as bytes (microsecond or nanosecond timestamps, either byte order)."""
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, version[0], version[1], 0, 0, snaplen, linktype)]
    div = 1 if nanos else 1000
    for p in packets:
        ts, data = p[0], p[1]
        wirelen = p[2] if len(p) > 2 else len(data)  # type: ignore[misc]
        sec, frac = divmod(ts, NS)
        out.append(struct.pack(e + "IIII", sec, frac // div, len(data), wirelen))
        out.append(data)
    return b"".join(out)


def write_pcap(
    path: str | Path,
    packets: Iterable[Packet],
    *,
    linktype: int = 1,
    nanos: bool = False,
    big_endian: bool = False,
    snaplen: int = 262144,
    gzip: bool = False,
) -> Path:
    """Write a classic pcap file; returns its path."""
    data = pcap_bytes(
        packets, linktype=linktype, nanos=nanos, big_endian=big_endian, snaplen=snaplen
    )
    return write_bytes(path, data, gzip=gzip)


# -- pcapng ----------------------------------------------------------------------


@dataclass(frozen=True)
class Interface:
    """An Interface Description Block.

    ``tsresol`` is the raw if_tsresol byte (None: option absent, i.e. microseconds):
    ``9`` means 10^-9 s, ``0x80 | 20`` means 2^-20 s. ``tsoffset`` is in seconds.
    """

    linktype: int = 1
    snaplen: int = 0
    tsresol: int | None = None
    tsoffset: int = 0

    def to_units(self, ts_ns: int) -> int:
        """Nanoseconds to this interface's timestamp units (floor)."""
        t = ts_ns - self.tsoffset * NS
        r = 6 if self.tsresol is None else self.tsresol
        if r & 0x80:
            return (t << (r & 0x7F)) // NS
        return t * 10**r // NS

    def to_ns(self, units: int) -> int:
        """This interface's timestamp units to nanoseconds (floor), as a reader should."""
        r = 6 if self.tsresol is None else self.tsresol
        ns = (units * NS) >> (r & 0x7F) if r & 0x80 else units * NS // 10**r
        return ns + self.tsoffset * NS


@dataclass(frozen=True)
class Epb:
    """An Enhanced Packet Block on interface ``iface``; ``ts_units`` overrides ``ts_ns``."""

    iface: int
    ts_ns: int
    data: bytes
    wirelen: int | None = None
    ts_units: int | None = None


@dataclass(frozen=True)
class ObsoletePb:
    """The obsolete Packet Block (type 2): like an EPB with a 16-bit interface id."""

    iface: int
    ts_ns: int
    data: bytes
    wirelen: int | None = None


@dataclass(frozen=True)
class Spb:
    """A Simple Packet Block: interface 0, no timestamp. ``data`` is what is stored."""

    data: bytes
    wirelen: int | None = None


@dataclass(frozen=True)
class RawBlock:
    """Any block, written as type + body (padded to 32 bits) with correct lengths."""

    btype: int
    body: bytes = b""


Item = Interface | Epb | ObsoletePb | Spb | RawBlock


@dataclass
class Section:
    """A Section Header Block followed by its items, in one byte order."""

    items: list[Item] = field(default_factory=list)
    big_endian: bool = False
    version: tuple[int, int] = (1, 0)


def _pad4(b: bytes) -> bytes:
    return b + b"\x00" * (-len(b) % 4)


def block(btype: int, body: bytes, *, big_endian: bool = False) -> bytes:
    """One pcapng block: type, total length, padded body, total length."""
    e = ">" if big_endian else "<"
    body = _pad4(body)
    total = 12 + len(body)
    return struct.pack(e + "II", btype, total) + body + struct.pack(e + "I", total)


def shb(*, big_endian: bool = False, version: tuple[int, int] = (1, 0)) -> bytes:
    """A Section Header Block with unknown section length."""
    e = ">" if big_endian else "<"
    body = struct.pack(e + "IHHq", 0x1A2B3C4D, version[0], version[1], -1)
    return block(0x0A0D0D0A, body, big_endian=big_endian)


def _option(code: int, value: bytes, e: str) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + _pad4(value)


def idb(iface: Interface, *, big_endian: bool = False) -> bytes:
    """An Interface Description Block with if_tsresol/if_tsoffset options as needed."""
    e = ">" if big_endian else "<"
    opts = b""
    if iface.tsresol is not None:
        opts += _option(9, bytes([iface.tsresol]), e)
    if iface.tsoffset:
        opts += _option(14, struct.pack(e + "q", iface.tsoffset), e)
    if opts:
        opts += struct.pack(e + "HH", 0, 0)
    body = struct.pack(e + "HHI", iface.linktype, 0, iface.snaplen) + opts
    return block(1, body, big_endian=big_endian)


def epb(
    iface: int, ts_units: int, data: bytes, wirelen: int | None = None, *, big_endian: bool = False
) -> bytes:
    """An Enhanced Packet Block with a raw timestamp in interface units."""
    e = ">" if big_endian else "<"
    wl = len(data) if wirelen is None else wirelen
    hi, lo = (ts_units >> 32) & 0xFFFFFFFF, ts_units & 0xFFFFFFFF
    body = struct.pack(e + "IIIII", iface, hi, lo, len(data), wl) + _pad4(data)
    return block(6, body, big_endian=big_endian)


def obsolete_pb(
    iface: int, ts_units: int, data: bytes, wirelen: int | None = None, *, big_endian: bool = False
) -> bytes:
    """An obsolete Packet Block (drops count 0)."""
    e = ">" if big_endian else "<"
    wl = len(data) if wirelen is None else wirelen
    hi, lo = (ts_units >> 32) & 0xFFFFFFFF, ts_units & 0xFFFFFFFF
    body = struct.pack(e + "HHIIII", iface, 0, hi, lo, len(data), wl) + _pad4(data)
    return block(2, body, big_endian=big_endian)


def spb(data: bytes, wirelen: int | None = None, *, big_endian: bool = False) -> bytes:
    """A Simple Packet Block."""
    e = ">" if big_endian else "<"
    wl = len(data) if wirelen is None else wirelen
    return block(3, struct.pack(e + "I", wl) + _pad4(data), big_endian=big_endian)


def section_bytes(section: Section) -> bytes:
    """One section: its header, then its items in order."""
    be = section.big_endian
    out = [shb(big_endian=be, version=section.version)]
    ifaces: list[Interface] = []
    for item in section.items:
        if isinstance(item, Interface):
            ifaces.append(item)
            out.append(idb(item, big_endian=be))
        elif isinstance(item, Epb):
            units = item.ts_units
            if units is None:
                units = ifaces[item.iface].to_units(item.ts_ns)
            out.append(epb(item.iface, units, item.data, item.wirelen, big_endian=be))
        elif isinstance(item, ObsoletePb):
            units = ifaces[item.iface].to_units(item.ts_ns)
            out.append(obsolete_pb(item.iface, units, item.data, item.wirelen, big_endian=be))
        elif isinstance(item, Spb):
            out.append(spb(item.data, item.wirelen, big_endian=be))
        else:
            out.append(block(item.btype, item.body, big_endian=be))
    return b"".join(out)


def pcapng_bytes(sections: Section | Sequence[Section]) -> bytes:
    """A pcapng file as bytes."""
    if isinstance(sections, Section):
        sections = [sections]
    return b"".join(section_bytes(s) for s in sections)


def simple_section(
    packets: Iterable[Packet],
    *,
    linktype: int = 1,
    tsresol: int | None = None,
    big_endian: bool = False,
) -> Section:
    """One interface and its packets as EPBs: the common case."""
    items: list[Item] = [Interface(linktype=linktype, tsresol=tsresol)]
    for p in packets:
        wl = p[2] if len(p) > 2 else None  # type: ignore[misc]
        items.append(Epb(0, p[0], p[1], wl))
    return Section(items, big_endian=big_endian)


def write_pcapng(
    path: str | Path, sections: Section | Sequence[Section], *, gzip: bool = False
) -> Path:
    """Write a pcapng file; returns its path."""
    return write_bytes(path, pcapng_bytes(sections), gzip=gzip)


def ns_as_read(iface: Interface, ts_ns: int) -> int:
    """The timestamp a reader should report for a packet written with ``ts_ns``."""
    return iface.to_ns(iface.to_units(ts_ns))


def write_bytes(path: str | Path, data: bytes, *, gzip: bool = False) -> Path:
    """Write raw bytes (optionally gzip-compressed); returns the path."""
    p = Path(path)
    p.write_bytes(gzip_mod.compress(data) if gzip else data)
    return p
