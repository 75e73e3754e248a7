"""Compiled walk over a TPACKET_V3 receive ring: ready blocks → a PacketBatch's arrays.

The ring is a shared mapping of ``block_nr`` blocks of ``block_size`` bytes. The kernel
fills one block at a time with packets, then hands it to user space by setting
``TP_STATUS_USER`` in the block descriptor (when the block is full, or when the retire
timer fires and it holds at least one packet). :func:`drain` copies the packets of
ready blocks into preallocated output arrays and gives each finished block back by
writing ``TP_STATUS_KERNEL``. Copying (rather than handing out views of the ring)
releases blocks at once, so the ring keeps its full depth for the kernel while the
consumer works on the batch, and it lets the kernel re-insert VLAN tags.

Layouts (``/usr/include/linux/if_packet.h``; all fields host byte order unless noted):

``struct tpacket_block_desc`` at the start of each block::

    0 version  4 offset_to_priv  8 block_status  12 num_pkts  16 offset_to_first_pkt
    20 blk_len  24 seq_num (u64)  32 ts_first_pkt  40 ts_last_pkt        (48 bytes)

``struct tpacket3_hdr`` in front of each packet, followed at offset 48
(``TPACKET_ALIGN(sizeof(struct tpacket3_hdr))``) by a ``struct sockaddr_ll``::

    0 tp_next_offset  4 tp_sec  8 tp_nsec  12 tp_snaplen  16 tp_len  20 tp_status
    24 tp_mac (u16)  26 tp_net (u16)  28 tp_rxhash  32 tp_vlan_tci  36 tp_vlan_tpid (u16)
    48 sll_family (u16)  50 sll_protocol (u16, network order)  52 sll_ifindex (i32)
    56 sll_hatype (u16)  58 sll_pkttype (u8)  59 sll_halen (u8)  60 sll_addr[8]

Ordering: the kernel writes a block's packets, then (after a write barrier) its status.
We read the status, fence, then the packets; and fence again before writing the status
back, so neither the compiler nor the CPU can move our reads of a block past the moment
it is returned. The fences cost nothing next to a block's worth of packets.

Like the file scanners, nothing here allocates (``_nrt=False``) or trusts lengths it has
not checked against the block: a header pointing outside its block ends that block
(counted in ``C_BAD``) instead of reading out of bounds. The kernel releases the GIL
(``nogil``), so a capture thread can drain the ring while another thread processes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from numba import njit, types
from numba.extending import intrinsic

# Like flowscope._jit.kernel, plus nogil: draining may run in its own thread.
_ring_kernel = njit(_nrt=False, cache=True, nogil=True)  # type: ignore[call-overload]

# Block status bits and packet status bits (if_packet.h).
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_LOSING = 1 << 2
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
PACKET_OUTGOING = 4

# Offsets in the block descriptor.
BD_STATUS = 8
BD_NUM_PKTS = 12
BD_FIRST = 16
BD_LEN = 20
BD_SIZE = 48
# Offsets in a packet's tpacket3_hdr + sockaddr_ll.
H_NEXT = 0
H_SEC = 4
H_NSEC = 8
H_SNAPLEN = 12
H_LEN = 16
H_STATUS = 20
H_MAC = 24
H_VLAN_TCI = 32
H_VLAN_TPID = 36
H_SIZE = 48
SLL = 48
SLL_PROTOCOL = SLL + 2
SLL_IFINDEX = SLL + 4
SLL_HATYPE = SLL + 8
SLL_PKTTYPE = SLL + 10
SLL_HALEN = SLL + 11
SLL_ADDR = SLL + 12
SLL_SIZE = 20

# How packets are written out (the batch's link type follows from it).
MODE_ETHERNET = 0  # frames as captured (SOCK_RAW on Ethernet/loopback); VLAN tag re-inserted
MODE_RAW = 1  # network-layer packets (SOCK_DGRAM on raw-IP devices); VLAN tags dropped
MODE_SLL2 = 2  # a Linux cooked v2 header built from sockaddr_ll, then the packet
SLL2_HDR = 20

# state[]: where the walk stands, kept between calls.
S_BLOCK = 0  # index of the block the walk is in (or the next one to wait for)
S_PKT = 1  # packets of that block already copied (0: not started)
S_POS = 2  # offset in the block of the next packet (when S_PKT > 0)
S_NCOLS = 3

# counters[]: running totals reported in LiveStats.
C_BLOCKS = 0  # blocks returned to the kernel
C_VLAN = 1  # VLAN tags put back into frames
C_OUT_DUP = 2  # outgoing copies of loopback packets skipped (they are seen twice)
C_TRUNC = 3  # packets captured shorter than on the wire (snap length, block size)
C_BAD = 4  # packet headers that did not fit their block (never seen in practice)
C_PEAK_READY = 5  # most blocks found waiting for user space at once
C_LOSING = 6  # packets the kernel marked TP_STATUS_LOSING (drops happened before them)
C_BYTES = 7  # wire bytes of the packets delivered
C_NCOLS = 8

_INT32_MAX = 2147483647
_NS = 1_000_000_000


def _fence_typer(typingctx: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


_fence: Callable[[], None] = cast(Any, intrinsic(_fence_typer))
"""A full memory barrier, for the compiler and the CPU (LLVM ``fence seq_cst``)."""


@njit(_nrt=False, cache=True, nogil=True, inline="always")  # type: ignore[call-overload]
def _copy(dst: npt.NDArray[np.uint8], d: int, src: npt.NDArray[np.uint8], s: int, n: int) -> None:
    """``dst[d:d+n] = src[s:s+n]`` without the temporary numba's slice assignment makes."""
    for k in range(n):
        dst[d + k] = src[s + k]


@_ring_kernel
def ready_blocks(
    ring32: npt.NDArray[np.uint32], block_words: int, block_nr: int, first: int
) -> int:
    """Number of consecutive blocks, from ``first``, that wait for user space."""
    k = 0
    b = first
    while k < block_nr:
        if (ring32[b * block_words + BD_STATUS // 4] & TP_STATUS_USER) == 0:
            break
        k += 1
        b += 1
        if b == block_nr:
            b = 0
    return k


@_ring_kernel
def drain(
    ring8: npt.NDArray[np.uint8],
    ring16: npt.NDArray[np.uint16],
    ring32: npt.NDArray[np.uint32],
    block_size: int,
    block_nr: int,
    mode: int,
    lo_ifindex: int,
    state: npt.NDArray[np.int64],
    counters: npt.NDArray[np.int64],
    out_data: npt.NDArray[np.uint8],
    out_off: npt.NDArray[np.int64],
    out_cap: npt.NDArray[np.int32],
    out_wire: npt.NDArray[np.int32],
    out_ts: npt.NDArray[np.int64],
) -> tuple[int, int]:
    """Copy packets of ready blocks into the output arrays; return ``(packets, bytes)``.

    Stops at the first block the kernel still owns, or when the next packet does not
    fit the output (``out_off`` entries or ``out_data`` bytes); in the latter case the
    position inside the block is kept in ``state`` and the next call resumes there, the
    block being returned only once all its packets are copied. ``out_data`` must hold
    at least one block's worth of bytes (plus ``SLL2_HDR + 4``) so that every packet
    fits an empty output. ``lo_ifindex`` (or -1): outgoing packets on this interface
    index are skipped, since loopback shows each packet once leaving and once arriving.
    """
    pkt_cap = out_off.shape[0]
    data_cap = out_data.shape[0]
    n = 0
    d = np.int64(0)
    b = state[S_BLOCK]
    waiting = ready_blocks(ring32, block_size // 4, block_nr, b)
    if waiting > counters[C_PEAK_READY]:
        counters[C_PEAK_READY] = waiting
    for _ in range(block_nr):
        base = b * block_size
        status = ring32[(base + BD_STATUS) >> 2]
        _fence()
        if (status & TP_STATUS_USER) == 0:
            break
        num = np.int64(ring32[(base + BD_NUM_PKTS) >> 2])
        i = state[S_PKT]
        if i == 0:
            pos = np.int64(ring32[(base + BD_FIRST) >> 2])
        else:
            pos = state[S_POS]
        full = False
        while i < num:
            # The header, and the sockaddr_ll behind it, must lie inside the block.
            if pos < BD_SIZE or pos + SLL + SLL_SIZE > block_size or (pos & 3) != 0:
                counters[C_BAD] += 1
                break
            h = base + pos
            nxt = np.int64(ring32[(h + H_NEXT) >> 2])
            snap = np.int64(ring32[(h + H_SNAPLEN) >> 2])
            wire = np.int64(ring32[(h + H_LEN) >> 2])
            pst = ring32[(h + H_STATUS) >> 2]
            mac = np.int64(ring16[(h + H_MAC) >> 1])
            src = h + mac
            if mac < H_SIZE or pos + mac + snap > block_size:
                counters[C_BAD] += 1
                break
            if (
                lo_ifindex >= 0
                and ring8[h + SLL_PKTTYPE] == PACKET_OUTGOING
                and np.int64(np.int32(ring32[(h + SLL_IFINDEX) >> 2])) == lo_ifindex
            ):
                counters[C_OUT_DUP] += 1
            else:
                vlan = (pst & TP_STATUS_VLAN_VALID) != 0 and mode != MODE_RAW
                extra = 4 if vlan else 0
                if mode == MODE_SLL2:
                    extra += SLL2_HDR
                if n >= pkt_cap or d + snap + extra > data_cap:
                    full = True
                    break
                out_off[n] = d
                tpid = np.int64(0x8100)
                tci = np.int64(0)
                if (pst & TP_STATUS_LOSING) != 0:
                    counters[C_LOSING] += 1
                if vlan:
                    if (pst & TP_STATUS_VLAN_TPID_VALID) != 0:
                        tpid = np.int64(ring16[(h + H_VLAN_TPID) >> 1])
                    tci = np.int64(ring32[(h + H_VLAN_TCI) >> 2]) & 0xFFFF
                    counters[C_VLAN] += 1
                if mode == MODE_SLL2:
                    # protocol (network order, as in sockaddr_ll), reserved, ifindex,
                    # hatype (both to network order), packet type, address length, address
                    if vlan:
                        out_data[d] = np.uint8(tpid >> 8)
                        out_data[d + 1] = np.uint8(tpid & 0xFF)
                    else:
                        out_data[d] = ring8[h + SLL_PROTOCOL]
                        out_data[d + 1] = ring8[h + SLL_PROTOCOL + 1]
                    out_data[d + 2] = 0
                    out_data[d + 3] = 0
                    ifx = np.int64(ring32[(h + SLL_IFINDEX) >> 2])
                    out_data[d + 4] = np.uint8((ifx >> 24) & 0xFF)
                    out_data[d + 5] = np.uint8((ifx >> 16) & 0xFF)
                    out_data[d + 6] = np.uint8((ifx >> 8) & 0xFF)
                    out_data[d + 7] = np.uint8(ifx & 0xFF)
                    hat = np.int64(ring16[(h + SLL_HATYPE) >> 1])
                    out_data[d + 8] = np.uint8(hat >> 8)
                    out_data[d + 9] = np.uint8(hat & 0xFF)
                    out_data[d + 10] = ring8[h + SLL_PKTTYPE]
                    out_data[d + 11] = ring8[h + SLL_HALEN]
                    for k in range(8):
                        out_data[d + 12 + k] = ring8[h + SLL_ADDR + k]
                    w = d + SLL2_HDR
                    if vlan:
                        # 802.1Q tag behind the header: TCI, then the real protocol.
                        out_data[w] = np.uint8(tci >> 8)
                        out_data[w + 1] = np.uint8(tci & 0xFF)
                        out_data[w + 2] = ring8[h + SLL_PROTOCOL]
                        out_data[w + 3] = ring8[h + SLL_PROTOCOL + 1]
                        w += 4
                    _copy(out_data, w, ring8, src, snap)
                elif vlan and snap >= 12:
                    # Ethernet: the tag goes back between the source MAC and the type.
                    _copy(out_data, d, ring8, src, 12)
                    out_data[d + 12] = np.uint8(tpid >> 8)
                    out_data[d + 13] = np.uint8(tpid & 0xFF)
                    out_data[d + 14] = np.uint8(tci >> 8)
                    out_data[d + 15] = np.uint8(tci & 0xFF)
                    _copy(out_data, d + 16, ring8, src + 12, snap - 12)
                else:
                    if vlan:  # a runt too short for a MAC header: nowhere to put the tag
                        extra = 0
                    _copy(out_data, d, ring8, src, snap)
                if snap < wire:
                    counters[C_TRUNC] += 1
                out_cap[n] = np.int32(snap + extra)
                wire_out = wire + extra
                out_wire[n] = np.int32(wire_out if wire_out < _INT32_MAX else _INT32_MAX)
                sec = np.int64(ring32[(h + H_SEC) >> 2])
                nsec = np.int64(ring32[(h + H_NSEC) >> 2])
                out_ts[n] = sec * _NS + nsec
                counters[C_BYTES] += wire + extra
                d += snap + extra
                n += 1
            i += 1
            if nxt == 0:
                # The last packet of a block has no successor; anything else is corrupt.
                if i < num:
                    counters[C_BAD] += 1
                break
            pos += nxt
        if full:
            state[S_PKT] = i
            state[S_POS] = pos
            break
        # Every packet of the block is copied: give it back to the kernel.
        _fence()
        ring32[(base + BD_STATUS) >> 2] = TP_STATUS_KERNEL
        counters[C_BLOCKS] += 1
        state[S_PKT] = 0
        state[S_POS] = 0
        b += 1
        if b == block_nr:
            b = 0
        state[S_BLOCK] = b
    return n, int(d)
