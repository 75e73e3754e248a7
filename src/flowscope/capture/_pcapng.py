"""Compiled kernel that walks pcapng blocks.

pcapng is a sequence of self-describing blocks: section headers (which set the
byte order and reset the interface list), interface descriptions (link type,
snapshot length, timestamp resolution and offset) and packet blocks that point at
an interface. The walk is done in one ``@njit`` loop so that per-packet cost stays
a handful of integer operations; the interface table is a small int64 matrix the
Python side owns and grows on request.

Unlike pcap, every pcapng block carries its length at both ends, so a block whose
content is nonsense (an undefined interface, a captured length that overruns the
block) can be skipped and reading goes on. Only a broken block *frame* (length
not a multiple of 4, shorter than a header, implausibly large, or disagreeing
with the trailing copy) stops the walk, because after that we cannot tell where
the next block starts.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from flowscope._jit import kernel, prefetch_l2
from flowscope.capture._pcap import (
    INT32_MAX,
    MAX_CAPLEN,
    NS_PER_S,
    PREFETCH_AHEAD,
    ST_BAD,
    ST_FULL,
    ST_IFACES_FULL,
    ST_NEED_MORE,
    read_i64,
    read_u16,
    read_u32,
)

# Largest block we accept. Real packet blocks are at most MAX_CAPLEN plus options;
# name-resolution or custom blocks can be larger, but 16 MiB is far above anything
# a capture tool writes and keeps a corrupt length from demanding a huge buffer.
MAX_BLOCK = 16 * 1024 * 1024
# Upper bound on interfaces per section: each costs a row in the table, and a
# crafted file of tiny IDBs must not grow it without limit.
MAX_IFACES = 65536

BT_SHB = 0x0A0D0D0A
BT_IDB = 1
BT_PB = 2  # obsolete Packet Block
BT_SPB = 3
BT_EPB = 6

# Columns of the interface table.
IF_LINKTYPE = 0
IF_SNAPLEN = 1
IF_TSRESOL = 2  # raw if_tsresol byte: 10^-v, or 2^-(v & 0x7f) when the top bit is set
IF_TSOFFSET = 3  # seconds added to every timestamp of the interface
IF_COLUMNS = 4
DEFAULT_TSRESOL = 6

# Slots of the ``state`` array, which carries the walk across calls.
S_BIG = 0  # current section is big-endian
S_NIF = 1  # interfaces defined in the current section
S_LAST_TS = 2  # timestamp of the previous packet, for Simple Packet Blocks
S_SLOTS = 3

# Slots of the ``counters`` array.
C_SKIPPED = 0  # blocks that carry no packets and are ignored (NRB, ISB, DSB, custom, unknown)
C_SPB_NO_TS = 1  # Simple Packet Blocks, which get the previous packet's timestamp
C_SLOTS = 2

# Reasons a block counts as bad; index into ``err_count``/``err_off``.
R_BLOCK_LEN = 0  # block length field impossible (stops the walk)
R_TRAILER = 1  # trailing block length differs from the leading one (stops the walk)
R_BOM = 2  # section header with an invalid byte-order magic (stops the walk)
R_VERSION = 3  # section header with an unsupported major version (stops the walk)
R_SHORT = 4  # block too short for its type (skipped)
R_IFACE = 5  # packet names an interface the section never defined (skipped)
R_CAPLEN = 6  # captured length overruns the block or exceeds MAX_CAPLEN (skipped)
R_TOO_MANY_IFACES = 7  # more than MAX_IFACES interfaces in one section (skipped)
N_REASONS = 8

# 10**k for k = 0..18, the decimal resolutions that fit in int64.
_POW10 = np.array([10**k for k in range(19)], dtype=np.int64)


@kernel
def units_to_ns(ts: int, tsresol: int) -> int:
    """Convert a timestamp in if_tsresol units to nanoseconds, exactly where possible.

    Decimal resolutions are an exact multiply or a floor division. Binary
    resolutions split the value into whole seconds and a fraction so that the
    fraction times 10^9 does not overflow: 10^9 = 1953125 * 2^9, so multiplying
    by 1953125 and shifting by ``v - 9`` is exact for ``v`` up to 42 bits, which
    covers any resolution a real capture uses. Garbage values wrap instead of
    raising, and shift counts are clamped so no shift is undefined.
    """
    if tsresol & 0x80:
        v = tsresol & 0x7F
        if v == 0:
            return ts * NS_PER_S
        if v > 62:
            v = 62
        sec = ts >> v
        frac = ts & ((1 << v) - 1)
        if v > 42:
            frac = frac >> (v - 42)
            v = 42
        frac_ns = (frac * 1953125) >> (v - 9) if v >= 9 else (frac * NS_PER_S) >> v
        return sec * NS_PER_S + frac_ns
    v = tsresol
    if v <= 9:
        return ts * int(_POW10[9 - v])
    if v - 9 > 18:
        return 0
    return ts // int(_POW10[v - 9])


@kernel
def _bad(
    err_count: npt.NDArray[np.int64], err_off: npt.NDArray[np.int64], reason: int, off: int
) -> None:
    """Count a bad block and remember where the first one of its kind was."""
    if err_count[reason] == 0:
        err_off[reason] = off
    err_count[reason] += 1


@kernel
def scan_pcapng(
    buf: npt.NDArray[np.uint8],
    pos: int,
    end: int,
    state: npt.NDArray[np.int64],
    ifaces: npt.NDArray[np.int64],
    counters: npt.NDArray[np.int64],
    err_count: npt.NDArray[np.int64],
    err_off: npt.NDArray[np.int64],
    out_off: npt.NDArray[np.int64],
    out_cap: npt.NDArray[np.int32],
    out_wire: npt.NDArray[np.int32],
    out_ts: npt.NDArray[np.int64],
    out_lt: npt.NDArray[np.int32],
) -> tuple[int, int, int, int]:
    """Walk pcapng blocks in ``buf[pos:end]`` and fill the output arrays.

    Returns ``(n, new_pos, status, need)`` with the same meaning as
    :func:`flowscope.capture._pcap.scan_pcap`; offsets in ``out_off`` are relative
    to the starting ``pos``. ``state``, ``ifaces``, ``counters``, ``err_count``
    and ``err_off`` are updated in place so a walk can resume in the next buffer.
    With ``ST_IFACES_FULL`` the block at ``new_pos`` is an interface description
    that did not fit: the caller grows ``ifaces`` and calls again.
    """
    start = pos
    max_n = out_off.shape[0]
    big = state[S_BIG] != 0
    n_if = state[S_NIF]
    last_ts = state[S_LAST_TS]
    n = 0
    status = ST_NEED_MORE
    need = 0
    ahead = pos  # every line below this one has been prefetched (see scan_pcap)
    while True:
        while ahead < pos + PREFETCH_AHEAD:
            prefetch_l2(buf, ahead)
            ahead += 64
        if n >= max_n:
            status = ST_FULL
            break
        avail = end - pos
        if avail < 12:
            need = 12
            break
        if read_u32(buf, pos, False) == BT_SHB:
            # Section header (its type reads the same in both byte orders): its own
            # byte-order magic says how to read its length.
            b8 = buf[pos + 8]
            b9 = buf[pos + 9]
            b10 = buf[pos + 10]
            b11 = buf[pos + 11]
            if b8 == 0x1A and b9 == 0x2B and b10 == 0x3C and b11 == 0x4D:
                nbig = True
            elif b8 == 0x4D and b9 == 0x3C and b10 == 0x2B and b11 == 0x1A:
                nbig = False
            else:
                _bad(err_count, err_off, R_BOM, pos)
                status = ST_BAD
                break
            blen = read_u32(buf, pos + 4, nbig)
            if blen < 28 or blen % 4 != 0 or blen > MAX_BLOCK:
                _bad(err_count, err_off, R_BLOCK_LEN, pos)
                status = ST_BAD
                break
            if avail < blen:
                need = blen
                break
            if read_u32(buf, pos + blen - 4, nbig) != blen:
                _bad(err_count, err_off, R_TRAILER, pos)
                status = ST_BAD
                break
            if read_u16(buf, pos + 12, nbig) != 1:
                _bad(err_count, err_off, R_VERSION, pos)
                status = ST_BAD
                break
            big = nbig
            n_if = 0
            pos += blen
            continue

        btype = read_u32(buf, pos, big)
        blen = read_u32(buf, pos + 4, big)
        if blen < 12 or blen % 4 != 0 or blen > MAX_BLOCK:
            _bad(err_count, err_off, R_BLOCK_LEN, pos)
            status = ST_BAD
            break
        if avail < blen:
            need = blen
            break
        if read_u32(buf, pos + blen - 4, big) != blen:
            _bad(err_count, err_off, R_TRAILER, pos)
            status = ST_BAD
            break

        if btype in (BT_EPB, BT_PB):
            if blen < 32:
                _bad(err_count, err_off, R_SHORT, pos)
            else:
                if btype == BT_EPB:
                    ifid = read_u32(buf, pos + 8, big)
                else:
                    ifid = read_u16(buf, pos + 8, big)
                caplen = read_u32(buf, pos + 20, big)
                if ifid >= n_if:
                    _bad(err_count, err_off, R_IFACE, pos)
                elif caplen > blen - 32 or caplen > MAX_CAPLEN:
                    _bad(err_count, err_off, R_CAPLEN, pos)
                else:
                    ts = (read_u32(buf, pos + 12, big) << 32) | read_u32(buf, pos + 16, big)
                    ts_ns = units_to_ns(ts, ifaces[ifid, IF_TSRESOL])
                    ts_ns += ifaces[ifid, IF_TSOFFSET] * NS_PER_S
                    out_off[n] = pos + 28 - start
                    out_cap[n] = caplen
                    out_wire[n] = min(read_u32(buf, pos + 24, big), INT32_MAX)
                    out_ts[n] = ts_ns
                    out_lt[n] = ifaces[ifid, IF_LINKTYPE]
                    last_ts = ts_ns
                    n += 1
        elif btype == BT_SPB:
            if blen < 16:
                _bad(err_count, err_off, R_SHORT, pos)
            elif n_if == 0:
                _bad(err_count, err_off, R_IFACE, pos)
            else:
                orig = read_u32(buf, pos + 8, big)
                caplen = min(orig, blen - 16)
                snap = ifaces[0, IF_SNAPLEN]
                if snap > 0:
                    caplen = min(caplen, snap)
                if caplen > MAX_CAPLEN:
                    _bad(err_count, err_off, R_CAPLEN, pos)
                else:
                    out_off[n] = pos + 12 - start
                    out_cap[n] = caplen
                    out_wire[n] = min(orig, INT32_MAX)
                    out_ts[n] = last_ts
                    out_lt[n] = ifaces[0, IF_LINKTYPE]
                    counters[C_SPB_NO_TS] += 1
                    n += 1
        elif btype == BT_IDB:
            if blen < 20:
                _bad(err_count, err_off, R_SHORT, pos)
            elif n_if >= MAX_IFACES:
                _bad(err_count, err_off, R_TOO_MANY_IFACES, pos)
            elif n_if >= ifaces.shape[0]:
                status = ST_IFACES_FULL
                break
            else:
                tsresol = DEFAULT_TSRESOL
                tsoffset = 0
                opt = pos + 16
                opt_end = pos + blen - 4
                while opt_end - opt >= 4:
                    code = read_u16(buf, opt, big)
                    olen = read_u16(buf, opt + 2, big)
                    if code == 0:  # opt_endofopt
                        break
                    val = opt + 4
                    if olen > opt_end - val:
                        break  # option overruns the block: ignore the rest
                    if code == 9 and olen >= 1:  # if_tsresol
                        tsresol = int(buf[val])
                    elif code == 14 and olen >= 8:  # if_tsoffset
                        tsoffset = read_i64(buf, val, big)
                    opt = val + ((olen + 3) & ~3)
                ifaces[n_if, IF_LINKTYPE] = read_u16(buf, pos + 8, big)
                ifaces[n_if, IF_SNAPLEN] = read_u32(buf, pos + 12, big)
                ifaces[n_if, IF_TSRESOL] = tsresol
                ifaces[n_if, IF_TSOFFSET] = tsoffset
                n_if += 1
        else:
            counters[C_SKIPPED] += 1
        pos += blen

    state[S_BIG] = 1 if big else 0
    state[S_NIF] = n_if
    state[S_LAST_TS] = last_ts
    return n, pos, status, need
