"""Compiled kernels for classic pcap records, plus the byte readers both formats share.

Everything that runs once per packet lives here as an ``@njit`` function over a
uint8 buffer, because a Python loop over millions of records would cost more than
the whole rest of the pipeline. The kernels never allocate and never raise: they
report what they found through their return values, and the Python side decides
whether to read more, grow a table, or stop.

Numba does not bounds-check array accesses, so every read below is preceded by a
length check against ``end`` (which the caller guarantees is ``<= len(buf)``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from flowscope._jit import kernel, prefetch_l2

# Kernel outcomes (the third element of every kernel's return tuple).
ST_FULL = 0  # the output arrays are full: yield them and call again from ``pos``
ST_NEED_MORE = 1  # the record at ``pos`` is incomplete: ``need`` bytes from ``pos`` are needed
ST_BAD = 2  # the input is corrupt beyond recovery: stop reading
ST_IFACES_FULL = 3  # (pcapng) the interface table is full: grow it and call again

# A captured length above this is taken as corruption, not as a packet: real link
# types stay at or below 256 KiB (tcpdump's maximum snapshot length), and refusing
# bigger values keeps one garbage header from making us buffer gigabytes.
MAX_CAPLEN = 262144
INT32_MAX = 2147483647
NS_PER_S = 1_000_000_000
# How far ahead of the record being parsed the walk asks for the file's cache lines.
# Records form a chain (each header gives the next one's position), so without the
# hint every header read would wait for memory; a few KiB cover a few records.
PREFETCH_AHEAD = 4096


@kernel
def read_u16(buf: npt.NDArray[np.uint8], p: int, big: bool) -> int:
    """Unsigned 16-bit integer at ``buf[p]`` in the file's byte order."""
    b0 = int(buf[p])
    b1 = int(buf[p + 1])
    if big:
        return (b0 << 8) | b1
    return b0 | (b1 << 8)


@kernel
def read_u32(buf: npt.NDArray[np.uint8], p: int, big: bool) -> int:
    """Unsigned 32-bit integer at ``buf[p]`` in the file's byte order (as int64)."""
    b0 = int(buf[p])
    b1 = int(buf[p + 1])
    b2 = int(buf[p + 2])
    b3 = int(buf[p + 3])
    if big:
        return (b0 << 24) | (b1 << 16) | (b2 << 8) | b3
    return b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)


@kernel
def read_i64(buf: npt.NDArray[np.uint8], p: int, big: bool) -> int:
    """Signed 64-bit integer at ``buf[p]`` in the file's byte order (wraps, never raises)."""
    if big:
        hi = read_u32(buf, p, big)
        lo = read_u32(buf, p + 4, big)
    else:
        lo = read_u32(buf, p, big)
        hi = read_u32(buf, p + 4, big)
    return (hi << 32) | lo


@kernel
def scan_pcap(
    buf: npt.NDArray[np.uint8],
    pos: int,
    end: int,
    big: bool,
    hdr_len: int,
    frac_mult: int,
    out_off: npt.NDArray[np.int64],
    out_cap: npt.NDArray[np.int32],
    out_wire: npt.NDArray[np.int32],
    out_ts: npt.NDArray[np.int64],
) -> tuple[int, int, int, int]:
    """Walk pcap records in ``buf[pos:end]`` and fill the output arrays.

    ``hdr_len`` is 16 for standard pcap and 24 for the "modified" (Kuznetzov)
    variant whose record headers carry 8 extra bytes. ``frac_mult`` turns the
    sub-second field into nanoseconds (1000 for microsecond files, 1 for
    nanosecond files). Offsets written to ``out_off`` are relative to the
    starting ``pos``, so the caller can hand out ``buf[start:new_pos]`` as the
    batch's data without rewriting them.

    Returns ``(n, new_pos, status, need)``: ``n`` packets were written and
    ``new_pos`` is the first unconsumed byte. With ``ST_NEED_MORE``, ``need`` is
    the number of bytes from ``new_pos`` that the next record occupies (or its
    header size, when even the header is incomplete). With ``ST_BAD`` the record
    at ``new_pos`` has an impossible captured length: pcap has no sync markers, so
    nothing after it can be trusted.
    """
    start = pos
    max_n = out_off.shape[0]
    n = 0
    status = ST_NEED_MORE
    need = 0
    ahead = pos  # every line below this one has been prefetched
    while True:
        while ahead < pos + PREFETCH_AHEAD:
            prefetch_l2(buf, ahead)
            ahead += 64
        if n >= max_n:
            status = ST_FULL
            break
        avail = end - pos
        if avail < hdr_len:
            need = hdr_len
            break
        incl = read_u32(buf, pos + 8, big)
        if incl > MAX_CAPLEN:
            status = ST_BAD
            break
        rec = hdr_len + incl
        if avail < rec:
            need = rec
            break
        sec = read_u32(buf, pos, big)
        frac = read_u32(buf, pos + 4, big)
        orig = read_u32(buf, pos + 12, big)
        out_off[n] = pos + hdr_len - start
        out_cap[n] = incl
        out_wire[n] = min(orig, INT32_MAX)
        out_ts[n] = sec * NS_PER_S + frac * frac_mult
        n += 1
        pos += rec
    return n, pos, status, need
