"""Build packets byte by byte for tests, with ``struct`` only (no scapy).

Each layer is a function that takes the bytes it carries and returns its own header
followed by them, so a frame reads inside out::

    frame = ether(ipv4(tcp(b"hello", sport=40000, dport=80, flags=PSH | ACK), src=A, dst=B))

Payloads may be given as ``bytes`` or as an ``int`` (that many filler bytes). Every
header field a test may want to break can be overridden (``ihl=``, ``total_length=``,
``data_offset=``, ...). Checksums are left 0: the decoder does not verify them.

Layers:

- link: :func:`ether` (with 802.1Q / QinQ tags), :func:`sll` (Linux cooked v1),
  :func:`sll2` (v2), :func:`null_loop` (BSD loopback), and raw IP (no link header:
  pass :func:`ipv4` / :func:`ipv6` output directly with link type 101/228/229);
  :func:`pad` adds Ethernet minimum-size padding; :func:`arp` is a non-IP frame.
- network: :func:`ipv4` (options, fragments: ``ident``, ``mf``, ``frag_offset``),
  :func:`ipv6` with extension headers :func:`hop_by_hop`, :func:`dest_opts`,
  :func:`frag6`.
- transport: :func:`tcp` (flags, seq/ack, window, option bytes), :func:`udp`,
  :func:`icmp` (echo layout, also for ICMPv6 with types 128/129).

Shortcuts build whole Ethernet frames: :func:`eth_tcp4`, :func:`eth_udp4`.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass

# -- constants ---------------------------------------------------------------------

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80

ETH_IPV4, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806
TPID_8021Q, TPID_8021AD = 0x8100, 0x88A8

PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMPV6 = 1, 6, 17, 58
ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129

# pcap link types
LT_NULL, LT_ETHERNET, LT_RAW, LT_SLL, LT_IPV4, LT_IPV6, LT_SLL2 = 0, 1, 101, 113, 228, 229, 276

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")

Payload = bytes | int


def data(payload: Payload) -> bytes:
    """``bytes`` as given, or ``n`` filler bytes for an int."""
    if isinstance(payload, int):
        return bytes((0x41 + k % 26) for k in range(payload))
    return payload


# -- link layer ----------------------------------------------------------------------


def ether(
    payload: bytes,
    ethertype: int = ETH_IPV4,
    *,
    vlans: Sequence[int] = (),
    outer_tpid: int = TPID_8021Q,
    src: bytes = MAC_A,
    dst: bytes = MAC_B,
) -> bytes:
    """Ethernet II frame. ``vlans`` are VLAN ids, outermost first: one id is an 802.1Q
    tag; with two, pass ``outer_tpid=TPID_8021AD`` for standard QinQ (inner tags use
    0x8100). No padding is added (see :func:`pad`)."""
    # Each tag is a TPID (in the type slot) and a TCI (priority 0, VLAN id); the
    # payload's own type follows the last tag.
    tags = b"".join(
        struct.pack(">HH", outer_tpid if k == 0 else TPID_8021Q, vid & 0x0FFF)
        for k, vid in enumerate(vlans)
    )
    return dst + src + tags + struct.pack(">H", ethertype) + payload


def pad(frame: bytes, size: int = 60) -> bytes:
    """Zero-pad a frame to the Ethernet minimum (60 bytes without the FCS)."""
    return frame + bytes(max(0, size - len(frame)))


def sll(payload: bytes, ethertype: int = ETH_IPV4, *, pkttype: int = 0) -> bytes:
    """Linux cooked capture v1 (link type 113): 16-byte header, protocol last."""
    # packet type, ARPHRD_ETHER, address length, 8-byte address field, protocol
    return struct.pack(">HHH8sH", pkttype, 1, 6, MAC_A, ethertype) + payload


def sll2(payload: bytes, ethertype: int = ETH_IPV4, *, ifindex: int = 2) -> bytes:
    """Linux cooked capture v2 (link type 276): 20-byte header, protocol first."""
    # protocol, reserved, interface index, ARPHRD_ETHER, packet type, address length, address
    return struct.pack(">HHIHBB8s", ethertype, 0, ifindex, 1, 0, 6, MAC_A) + payload


def null_loop(payload: bytes, family: int = 2, *, big_endian: bool = False) -> bytes:
    """BSD loopback (link type 0: host byte order, here little-endian; 108: big-endian).
    Family 2 = IPv4; 24, 28 or 30 = IPv6 depending on the BSD."""
    return struct.pack(">I" if big_endian else "<I", family) + payload


def arp(*, sender: str = "10.0.0.1", target: str = "10.0.0.2") -> bytes:
    """An Ethernet ARP request: a valid frame that carries no IP."""
    body = struct.pack(
        ">HHBBH6s4s6s4s",
        1,  # hardware type: Ethernet
        ETH_IPV4,
        6,
        4,
        1,  # request
        MAC_A,
        ipaddress.IPv4Address(sender).packed,
        bytes(6),
        ipaddress.IPv4Address(target).packed,
    )
    return ether(body, ETH_ARP, dst=b"\xff" * 6)


# -- network layer ---------------------------------------------------------------------


def ipv4(
    payload: bytes,
    *,
    src: str = "10.0.0.1",
    dst: str = "10.0.0.2",
    proto: int = PROTO_TCP,
    ttl: int = 64,
    ident: int = 0,
    df: bool = False,
    mf: bool = False,
    frag_offset: int = 0,
    options: bytes = b"",
    total_length: int | None = None,
    ihl: int | None = None,
    version: int = 4,
    tos: int = 0,
) -> bytes:
    """IPv4 header + payload. ``frag_offset`` is in bytes (a multiple of 8);
    ``options`` must be a multiple of 4 bytes; ``ihl`` (32-bit words) and
    ``total_length`` default to the real sizes and may be set to lie."""
    if len(options) % 4:
        raise ValueError("IPv4 options must be padded to a multiple of 4 bytes")
    if frag_offset % 8:
        raise ValueError("fragment offsets are multiples of 8 bytes")
    hlen = 20 + len(options)
    ihl = hlen // 4 if ihl is None else ihl
    total = hlen + len(payload) if total_length is None else total_length
    frag = (0x4000 if df else 0) | (0x2000 if mf else 0) | (frag_offset // 8)
    head = struct.pack(
        ">BBHHHBBH4s4s",
        (version << 4) | (ihl & 0x0F),
        tos,
        total,
        ident,
        frag,
        ttl,
        proto,
        0,  # checksum
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return head + options + payload


@dataclass(frozen=True)
class Ext:
    """An IPv6 extension header: its type and its bytes after the next-header byte."""

    kind: int
    body: bytes


def _opts_header(kind: int, size: int) -> Ext:
    if size < 8 or size % 8:
        raise ValueError("hop-by-hop / destination options headers are 8*n bytes")
    # Header extension length in 8-byte units not counting the first 8; the options
    # area is filled with Pad1 options (zero bytes).
    return Ext(kind, bytes([size // 8 - 1]) + bytes(size - 2))


def hop_by_hop(size: int = 8) -> Ext:
    """Hop-by-hop options header (type 0) of ``size`` bytes."""
    return _opts_header(0, size)


def dest_opts(size: int = 8) -> Ext:
    """Destination options header (type 60) of ``size`` bytes."""
    return _opts_header(60, size)


def frag6(*, offset: int = 0, more: bool = False, ident: int = 0) -> Ext:
    """IPv6 fragment header (type 44, 8 bytes); ``offset`` in bytes, a multiple of 8."""
    return Ext(44, struct.pack(">BHI", 0, (offset & 0xFFF8) | int(more), ident))


def ipv6(
    payload: bytes,
    *,
    src: str = "2001:db8::1",
    dst: str = "2001:db8::2",
    next_header: int = PROTO_TCP,
    hop_limit: int = 64,
    ext: Sequence[Ext] = (),
    payload_length: int | None = None,
) -> bytes:
    """IPv6 header, extension headers in order, then the upper-layer ``payload``
    (whose protocol is ``next_header``). ``payload_length`` defaults to the truth."""
    chain = b""
    kinds = [e.kind for e in ext] + [next_header]
    for k, e in enumerate(ext):
        chain += bytes([kinds[k + 1]]) + e.body
    plen = len(chain) + len(payload) if payload_length is None else payload_length
    head = struct.pack(
        ">IHBB16s16s",
        6 << 28,
        plen,
        kinds[0],
        hop_limit,
        ipaddress.IPv6Address(src).packed,
        ipaddress.IPv6Address(dst).packed,
    )
    return head + chain + payload


# -- transport layer -------------------------------------------------------------------


def tcp(
    payload: Payload = b"",
    *,
    sport: int = 40000,
    dport: int = 80,
    flags: int = ACK,
    seq: int = 0,
    ack: int = 0,
    window: int = 65535,
    options: bytes | int = b"",
    data_offset: int | None = None,
    urgent: int = 0,
) -> bytes:
    """TCP header + payload. ``options`` as bytes, or an int: that many NOP bytes
    (a multiple of 4). ``data_offset`` (32-bit words) defaults to the real size."""
    opts = b"\x01" * options if isinstance(options, int) else options
    if len(opts) % 4:
        raise ValueError("TCP options must be padded to a multiple of 4 bytes")
    doff = (20 + len(opts)) // 4 if data_offset is None else data_offset
    head = struct.pack(
        ">HHIIBBHHH",
        sport,
        dport,
        seq & 0xFFFFFFFF,
        ack & 0xFFFFFFFF,
        (doff & 0x0F) << 4,
        flags,
        window,
        0,  # checksum
        urgent,
    )
    return head + opts + data(payload)


def udp(
    payload: Payload = b"", *, sport: int = 40000, dport: int = 53, length: int | None = None
) -> bytes:
    """UDP header + payload; ``length`` defaults to 8 + payload."""
    body = data(payload)
    return struct.pack(">HHHH", sport, dport, 8 + len(body) if length is None else length, 0) + body


def icmp(
    payload: Payload = b"",
    *,
    type: int = ICMP_ECHO_REQUEST,
    code: int = 0,
    ident: int = 1,
    seq: int = 1,
) -> bytes:
    """ICMP (or ICMPv6) echo-style message: 8-byte header (type, code, checksum,
    identifier, sequence) + payload."""
    return struct.pack(">BBHHH", type, code, 0, ident, seq) + data(payload)


# -- whole frames ------------------------------------------------------------------------


def eth_tcp4(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    flags: int,
    payload: Payload = b"",
    *,
    ttl: int = 64,
    vlans: Sequence[int] = (),
    **tcp_fields: int,
) -> bytes:
    """Ethernet / IPv4 / TCP frame; extra keywords go to :func:`tcp`."""
    seg = tcp(payload, sport=sport, dport=dport, flags=flags, **tcp_fields)  # type: ignore[arg-type]
    return ether(ipv4(seg, src=src, dst=dst, proto=PROTO_TCP, ttl=ttl), vlans=vlans)


def eth_udp4(
    src: str, dst: str, sport: int, dport: int, payload: Payload = b"", *, ttl: int = 64
) -> bytes:
    """Ethernet / IPv4 / UDP frame."""
    return ether(
        ipv4(udp(payload, sport=sport, dport=dport), src=src, dst=dst, proto=PROTO_UDP, ttl=ttl)
    )
