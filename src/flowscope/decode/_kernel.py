"""Compiled packet decoder: link layer → IP → transport, one row of integers per packet.

Every read is bounds-checked against the captured length, so garbage, snaplen-cut and
hostile packets end in a SKIP_* status instead of an exception or an out-of-range read.
Lengths come from the IP header (not from the captured length), so Ethernet padding
is never counted and snaplen-cut packets still report their true size.
"""

from __future__ import annotations

import numpy as np

from flowscope._jit import hot_kernel, inline_kernel, kernel
from flowscope.decode.layout import (
    ADDR_DST_HI,
    ADDR_DST_LO,
    ADDR_SRC_HI,
    ADDR_SRC_LO,
    DEC_DPORT,
    DEC_FLAGS,
    DEC_FRAG,
    DEC_ICMP_CODE,
    DEC_ICMP_TYPE,
    DEC_IP_HDR_LEN,
    DEC_IP_ID,
    DEC_IP_LEN,
    DEC_IPVER,
    DEC_L4_HDR_LEN,
    DEC_PAYLOAD_LEN,
    DEC_PROTO,
    DEC_SEQ,
    DEC_SPORT,
    DEC_STATUS,
    DEC_TS,
    DEC_TTL,
    DEC_VLAN,
    DEC_WINDOW,
    DEC_WIRELEN,
    FRAG_FIRST,
    FRAG_LATER,
    FRAG_NONE,
    OK,
    SKIP_BAD_IP,
    SKIP_BAD_L4,
    SKIP_IP_LENGTH,
    SKIP_LINKTYPE,
    SKIP_NON_IP,
    SKIP_TRUNC_IP,
    SKIP_TRUNC_L4,
    SKIP_TRUNC_LINK,
)

# Sentinel "network layer" kinds returned by the link-layer step.
_NET_IPV4 = 4
_NET_IPV6 = 6
_NET_GUESS = 1  # version nibble decides (raw IP, MPLS payload)

_V4_MAPPED_HI = np.uint64(0)
_V4_MAPPED_LO_PREFIX = np.uint64(0xFFFF00000000)

_MAX_VLAN_TAGS = 4
_MAX_MPLS_LABELS = 8
_MAX_V6_EXT = 8


@inline_kernel
def _u16(d: np.ndarray, i: int) -> int:
    return (np.int64(d[i]) << 8) | np.int64(d[i + 1])


@inline_kernel
def _u32(d: np.ndarray, i: int) -> int:
    return (
        (np.int64(d[i]) << 24)
        | (np.int64(d[i + 1]) << 16)
        | (np.int64(d[i + 2]) << 8)
        | np.int64(d[i + 3])
    )


@inline_kernel
def _u64(d: np.ndarray, i: int) -> np.uint64:
    v = np.uint64(0)
    for k in range(8):
        v = (v << np.uint64(8)) | np.uint64(d[i + k])
    return v


@inline_kernel
def _ethertype_step(d: np.ndarray, pos: int, end: int, etype: int, out: np.ndarray) -> tuple:
    """Follow VLAN/QinQ tags, MPLS labels and PPPoE to the IP header.

    Returns (status, network kind, position of the network header).
    """
    tags = 0
    while etype == 0x8100 or etype == 0x88A8 or etype == 0x9100:
        if pos + 4 > end:
            return SKIP_TRUNC_LINK, 0, pos
        if tags == 0:
            out[DEC_VLAN] = _u16(d, pos) & 0x0FFF
        tags += 1
        if tags > _MAX_VLAN_TAGS:
            return SKIP_TRUNC_LINK, 0, pos
        etype = _u16(d, pos + 2)
        pos += 4
    if etype == 0x0800:
        return OK, _NET_IPV4, pos
    if etype == 0x86DD:
        return OK, _NET_IPV6, pos
    if etype == 0x8847 or etype == 0x8848:  # MPLS unicast/multicast: pop to bottom of stack
        for _ in range(_MAX_MPLS_LABELS):
            if pos + 4 > end:
                return SKIP_TRUNC_LINK, 0, pos
            bottom = d[pos + 2] & 0x01
            pos += 4
            if bottom:
                return OK, _NET_GUESS, pos
        return SKIP_TRUNC_LINK, 0, pos
    if etype == 0x8864:  # PPPoE session: 6-byte header, then a 2-byte PPP protocol
        if pos + 8 > end:
            return SKIP_TRUNC_LINK, 0, pos
        ppp = _u16(d, pos + 6)
        pos += 8
        if ppp == 0x0021:
            return OK, _NET_IPV4, pos
        if ppp == 0x0057:
            return OK, _NET_IPV6, pos
        return SKIP_NON_IP, 0, pos
    return SKIP_NON_IP, 0, pos


@inline_kernel
def _link_step(d: np.ndarray, pos: int, end: int, linktype: int, out: np.ndarray) -> tuple:
    """Strip the link-layer header; returns (status, network kind, network header position)."""
    # Link types with an EtherType find it here and share one _ethertype_step below
    # (one call site: every inlined copy costs compile time).
    if linktype == 1:  # Ethernet
        if pos + 14 > end:
            return SKIP_TRUNC_LINK, 0, pos
        etype = _u16(d, pos + 12)
        if etype < 0x0600:  # 802.3 length field: LLC/SNAP frames (STP, ...) carry no IP here
            return SKIP_NON_IP, 0, pos
        epos = pos + 14
    elif linktype == 113:  # Linux cooked v1
        if pos + 16 > end:
            return SKIP_TRUNC_LINK, 0, pos
        etype = _u16(d, pos + 14)
        epos = pos + 16
    elif linktype == 276:  # Linux cooked v2
        if pos + 20 > end:
            return SKIP_TRUNC_LINK, 0, pos
        etype = _u16(d, pos)
        epos = pos + 20
    else:
        return _other_link(d, pos, end, linktype)
    return _ethertype_step(d, epos, end, etype, out)


@inline_kernel
def _other_link(d: np.ndarray, pos: int, end: int, linktype: int) -> tuple:
    """Link types without an EtherType: raw IP and BSD loopback."""
    if linktype == 101 or linktype == 12 or linktype == 14:  # raw IP
        return OK, _NET_GUESS, pos
    if linktype == 228:
        return OK, _NET_IPV4, pos
    if linktype == 229:
        return OK, _NET_IPV6, pos
    if linktype == 0 or linktype == 108:  # BSD loopback: address family, 4 bytes
        if pos + 4 > end:
            return SKIP_TRUNC_LINK, 0, pos
        be = _u32(d, pos)
        le = (
            np.int64(d[pos])
            | (np.int64(d[pos + 1]) << 8)
            | (np.int64(d[pos + 2]) << 16)
            | (np.int64(d[pos + 3]) << 24)
        )
        af = be if linktype == 108 else (le if d[pos] != 0 else be)
        if af == 2:
            return OK, _NET_IPV4, pos + 4
        if af == 24 or af == 28 or af == 30 or af == 10:
            return OK, _NET_IPV6, pos + 4
        return SKIP_NON_IP, 0, pos + 4
    return SKIP_LINKTYPE, 0, pos


@inline_kernel
def _transport(
    d: np.ndarray, pos: int, end: int, proto: int, ip_payload: int, out: np.ndarray
) -> int:
    """Decode the transport header at ``pos``; ``end`` is the end of captured bytes."""
    avail = end - pos
    if proto == 6:  # TCP
        if avail < 20 or ip_payload < 20:
            return SKIP_TRUNC_L4
        hlen = (d[pos + 12] >> 4) * 4
        if hlen < 20 or hlen > ip_payload:
            return SKIP_BAD_L4
        out[DEC_SPORT] = _u16(d, pos)
        out[DEC_DPORT] = _u16(d, pos + 2)
        out[DEC_SEQ] = _u32(d, pos + 4)
        out[DEC_FLAGS] = d[pos + 13]
        out[DEC_WINDOW] = _u16(d, pos + 14)
        out[DEC_L4_HDR_LEN] = hlen
        return OK
    if proto == 17 or proto == 136:  # UDP, UDP-Lite
        if avail < 8 or ip_payload < 8:
            return SKIP_TRUNC_L4
        out[DEC_SPORT] = _u16(d, pos)
        out[DEC_DPORT] = _u16(d, pos + 2)
        out[DEC_L4_HDR_LEN] = 8
        return OK
    if proto == 1 or proto == 58:  # ICMP, ICMPv6
        if avail < 4 or ip_payload < 4:
            return SKIP_TRUNC_L4
        out[DEC_ICMP_TYPE] = d[pos]
        out[DEC_ICMP_CODE] = d[pos + 1]
        out[DEC_L4_HDR_LEN] = 8 if ip_payload >= 8 else ip_payload
        return OK
    if proto == 132:  # SCTP common header: ports, tag, checksum
        if avail < 12 or ip_payload < 12:
            return SKIP_TRUNC_L4
        out[DEC_SPORT] = _u16(d, pos)
        out[DEC_DPORT] = _u16(d, pos + 2)
        out[DEC_L4_HDR_LEN] = 12
        return OK
    return OK  # any other protocol: a flow by protocol number, all of it payload


@inline_kernel
def _ipv4(
    d: np.ndarray, pos: int, end: int, wire_end: int, out: np.ndarray, addr: np.ndarray
) -> tuple:
    """IPv4 header → (status, transport header position or -1 if none, IP payload bytes)."""
    if pos + 20 > end:
        return SKIP_TRUNC_IP, -1, 0
    if d[pos] >> 4 != 4:
        return SKIP_BAD_IP, -1, 0
    ihl = (d[pos] & 0x0F) * 4
    if ihl < 20:
        return SKIP_BAD_IP, -1, 0
    if pos + ihl > end:
        return SKIP_TRUNC_IP, -1, 0
    total = _u16(d, pos + 2)
    if total == 0:  # TSO/GSO captures write 0: take the length the frame really has
        total = wire_end - pos
    if total < ihl:
        return SKIP_BAD_IP, -1, 0
    if pos + total > wire_end:  # counting bytes that never crossed the wire would lie
        return SKIP_IP_LENGTH, -1, 0
    out[DEC_IPVER] = 4
    out[DEC_IP_LEN] = total
    out[DEC_IP_HDR_LEN] = ihl
    out[DEC_TTL] = d[pos + 8]
    proto = np.int64(d[pos + 9])
    out[DEC_PROTO] = proto
    out[DEC_IP_ID] = _u16(d, pos + 4)
    addr[ADDR_SRC_HI] = _V4_MAPPED_HI
    addr[ADDR_SRC_LO] = _V4_MAPPED_LO_PREFIX | np.uint64(_u32(d, pos + 12))
    addr[ADDR_DST_HI] = _V4_MAPPED_HI
    addr[ADDR_DST_LO] = _V4_MAPPED_LO_PREFIX | np.uint64(_u32(d, pos + 16))
    frag = _u16(d, pos + 6)
    ip_payload = total - ihl
    if frag & 0x1FFF:
        out[DEC_FRAG] = FRAG_LATER
        out[DEC_PAYLOAD_LEN] = ip_payload
        return OK, -1, 0
    if frag & 0x2000:
        out[DEC_FRAG] = FRAG_FIRST
    return OK, pos + ihl, ip_payload


@inline_kernel
def _ipv6(
    d: np.ndarray, pos: int, end: int, wire_end: int, out: np.ndarray, addr: np.ndarray
) -> tuple:
    """IPv6 header and extension headers → (status, transport position or -1, payload)."""
    if pos + 40 > end:
        return SKIP_TRUNC_IP, -1, 0
    if d[pos] >> 4 != 6:
        return SKIP_BAD_IP, -1, 0
    plen = _u16(d, pos + 4)
    if plen == 0:  # jumbogram or offloaded: use the frame's real length
        plen = wire_end - pos - 40
        if plen < 0:
            return SKIP_BAD_IP, -1, 0
    if pos + 40 + plen > wire_end:
        return SKIP_IP_LENGTH, -1, 0
    out[DEC_IPVER] = 6
    out[DEC_IP_LEN] = plen + 40
    out[DEC_TTL] = d[pos + 7]
    addr[ADDR_SRC_HI] = _u64(d, pos + 8)
    addr[ADDR_SRC_LO] = _u64(d, pos + 16)
    addr[ADDR_DST_HI] = _u64(d, pos + 24)
    addr[ADDR_DST_LO] = _u64(d, pos + 32)
    nh = np.int64(d[pos + 6])
    hdr = 40
    for _ in range(_MAX_V6_EXT):
        if nh == 0 or nh == 43 or nh == 60 or nh == 135 or nh == 139 or nh == 140:
            if pos + hdr + 2 > end:
                return SKIP_TRUNC_IP, -1, 0
            elen = (np.int64(d[pos + hdr + 1]) + 1) * 8
        elif nh == 51:  # AH counts in 4-byte units
            if pos + hdr + 2 > end:
                return SKIP_TRUNC_IP, -1, 0
            elen = (np.int64(d[pos + hdr + 1]) + 2) * 4
        elif nh == 44:  # fragment header
            if pos + hdr + 8 > end:
                return SKIP_TRUNC_IP, -1, 0
            off = _u16(d, pos + hdr + 2)
            out[DEC_IP_ID] = _u32(d, pos + hdr + 4)
            if off & 0xFFF8:
                out[DEC_FRAG] = FRAG_LATER
            elif off & 0x1:
                out[DEC_FRAG] = FRAG_FIRST
            elen = 8
        else:
            break
        nxt = np.int64(d[pos + hdr])
        hdr += elen
        if hdr > plen + 40:
            return SKIP_BAD_IP, -1, 0
        nh = nxt
        if out[DEC_FRAG] == FRAG_LATER:
            break
    out[DEC_PROTO] = nh
    out[DEC_IP_HDR_LEN] = hdr
    ip_payload = plen + 40 - hdr
    if out[DEC_FRAG] == FRAG_LATER:
        out[DEC_PAYLOAD_LEN] = ip_payload
        return OK, -1, 0
    if nh == 59:  # no next header
        out[DEC_PAYLOAD_LEN] = 0
        return OK, -1, 0
    return OK, pos + hdr, ip_payload


@hot_kernel
def decode_one(
    data: np.ndarray, start: int, caplen: int, wirelen: int, ts: int, linktype: int,
    row: np.ndarray, a: np.ndarray,
) -> int:  # fmt: skip
    """Decode one packet into ``row`` (DEC_NCOLS) and ``a`` (4 addresses); returns status."""
    for c in range(row.shape[0]):
        row[c] = 0
    row[DEC_ICMP_TYPE] = -1
    row[DEC_ICMP_CODE] = -1
    row[DEC_FRAG] = FRAG_NONE
    row[DEC_WIRELEN] = wirelen
    row[DEC_TS] = ts
    for c in range(4):
        a[c] = 0
    end = start + caplen
    if start < 0 or caplen < 0 or end > data.shape[0]:
        row[DEC_STATUS] = SKIP_TRUNC_LINK
        return SKIP_TRUNC_LINK
    # Where the frame would end on the wire, for headers that say "length 0".
    wire_end = start + max(wirelen, caplen)
    st, kind, pos = _link_step(data, start, end, linktype, row)
    if st == OK:
        if kind == _NET_GUESS:
            if pos >= end:
                st = SKIP_TRUNC_IP
            else:
                ver = data[pos] >> 4
                if ver == 4:
                    kind = _NET_IPV4
                elif ver == 6:
                    kind = _NET_IPV6
                else:
                    st = SKIP_BAD_IP
        if st == OK:
            if kind == _NET_IPV4:
                st, l4, ip_payload = _ipv4(data, pos, end, wire_end, row, a)
            else:
                st, l4, ip_payload = _ipv6(data, pos, end, wire_end, row, a)
            if st == OK and l4 >= 0:
                st = _transport(data, l4, end, row[DEC_PROTO], ip_payload, row)
                if st == OK:
                    row[DEC_PAYLOAD_LEN] = ip_payload - row[DEC_L4_HDR_LEN]
    row[DEC_STATUS] = st
    return st


@kernel
def decode_into(
    data: np.ndarray,
    offset: np.ndarray,
    caplen: np.ndarray,
    wirelen: np.ndarray,
    ts_ns: np.ndarray,
    linktype: np.ndarray,
    dec: np.ndarray,
    addr: np.ndarray,
) -> None:
    """Decode every packet of a batch into ``dec`` (n × DEC_NCOLS) and ``addr`` (n × 4)."""
    for i in range(offset.shape[0]):
        decode_one(data, offset[i], caplen[i], wirelen[i], ts_ns[i], linktype[i], dec[i], addr[i])
