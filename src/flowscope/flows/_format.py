"""Compiled text formatting of addresses and timestamps straight into Arrow buffers.

Formatting a hundred thousand flows' addresses through Python objects costs more
than metering their packets; these kernels write the characters into one byte
buffer plus offsets, which becomes a pyarrow StringArray without copying.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from numba import njit

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8).copy()
_V4_PREFIX = np.uint64(0xFFFF00000000)
_V4_PREFIX_MASK = np.uint64(0xFFFFFFFF00000000)


@njit(cache=True, inline="always")
def _put_dec(buf: np.ndarray, pos: int, v: int) -> int:
    """Write a non-negative integer in decimal; returns the new position."""
    digits = 1
    t = v
    while t >= 10:
        t //= 10
        digits += 1
    for k in range(digits - 1, -1, -1):
        buf[pos + k] = 48 + v % 10
        v //= 10
    return pos + digits


@njit(cache=True)
def _format_ips(
    hi: np.ndarray, lo: np.ndarray, hexd: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    n = hi.shape[0]
    buf = np.empty(n * 39 + 1, np.uint8)  # the longest IPv6 text is 39 characters
    offsets = np.empty(n + 1, np.int32)
    pos = 0
    groups = np.empty(8, np.int64)
    for i in range(n):
        offsets[i] = pos
        h = hi[i]
        lo_i = lo[i]
        if h == 0 and (lo_i & _V4_PREFIX_MASK) == _V4_PREFIX:
            v4 = np.int64(lo_i & np.uint64(0xFFFFFFFF))
            for shift in (24, 16, 8, 0):
                pos = _put_dec(buf, pos, (v4 >> shift) & 0xFF)
                if shift:
                    buf[pos] = 46  # '.'
                    pos += 1
            continue
        for g in range(4):
            groups[g] = np.int64((h >> np.uint64(48 - 16 * g)) & np.uint64(0xFFFF))
            groups[4 + g] = np.int64((lo_i >> np.uint64(48 - 16 * g)) & np.uint64(0xFFFF))
        # RFC 5952: compress the longest run (≥ 2) of zero groups, the first if tied.
        best_start, best_len, cur_start, cur_len = -1, 0, -1, 0
        for g in range(8):
            if groups[g] == 0:
                if cur_start < 0:
                    cur_start, cur_len = g, 1
                else:
                    cur_len += 1
                if cur_len > best_len:
                    best_start, best_len = cur_start, cur_len
            else:
                cur_start, cur_len = -1, 0
        if best_len < 2:
            best_start = -1
        g = 0
        while g < 8:
            if g == best_start:
                buf[pos] = 58
                buf[pos + 1] = 58
                pos += 2
                g += best_len
                continue
            if g > 0 and not (best_start >= 0 and g == best_start + best_len):
                buf[pos] = 58  # ':'
                pos += 1
            v = groups[g]
            started = False
            for sh in (12, 8, 4, 0):
                d = (v >> sh) & 0xF
                if d or started or sh == 0:
                    buf[pos] = hexd[d]
                    pos += 1
                    started = True
            g += 1
    offsets[n] = pos
    return buf[:pos], offsets


@njit(cache=True, inline="always")
def _put2(buf: np.ndarray, pos: int, v: int) -> None:
    buf[pos] = 48 + v // 10
    buf[pos + 1] = 48 + v % 10


@njit(cache=True)
def _format_times(ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """'YYYY-MM-DD HH:MM:SS.ffffff' (UTC) for each ns timestamp (years 0–9999)."""
    n = ns.shape[0]
    width = 26
    buf = np.empty(n * width, np.uint8)
    offsets = (np.arange(n + 1) * width).astype(np.int32)
    for i in range(n):
        us = ns[i] // 1000
        secs = us // 1_000_000
        frac = us - secs * 1_000_000
        days = secs // 86400
        rem = secs - days * 86400
        # civil-from-days (proleptic Gregorian), Howard Hinnant's published algorithm
        z = days + 719468
        era = (z if z >= 0 else z - 146096) // 146097
        doe = z - era * 146097
        yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
        y = yoe + era * 400
        doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
        mp = (5 * doy + 2) // 153
        d = doy - (153 * mp + 2) // 5 + 1
        m = mp + 3 if mp < 10 else mp - 9
        if m <= 2:
            y += 1
        y = min(max(y, 0), 9999)
        p = i * width
        _put2(buf, p, y // 100)
        _put2(buf, p + 2, y % 100)
        buf[p + 4] = 45
        _put2(buf, p + 5, m)
        buf[p + 7] = 45
        _put2(buf, p + 8, d)
        buf[p + 10] = 32
        _put2(buf, p + 11, rem // 3600)
        buf[p + 13] = 58
        _put2(buf, p + 14, (rem // 60) % 60)
        buf[p + 16] = 58
        _put2(buf, p + 17, rem % 60)
        buf[p + 19] = 46
        for k in range(6):
            buf[p + 25 - k] = 48 + frac % 10
            frac //= 10
    return buf, offsets


@njit(cache=True, inline="always")
def _put_int(buf: np.ndarray, pos: int, v: int) -> int:
    """Write an integer in decimal, with a '-' if negative; returns the new position."""
    if v < 0:
        buf[pos] = 45
        return _put_dec(buf, pos + 1, -np.int64(v))
    return _put_dec(buf, pos, v)


@njit(cache=True)
def _join_ids(
    src_buf: np.ndarray, src_off: np.ndarray, dst_buf: np.ndarray, dst_off: np.ndarray,
    sport: np.ndarray, dport: np.ndarray, proto: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """'src-dst-sport-dport-proto' per flow, from the formatted addresses."""
    n = sport.shape[0]
    # Two addresses, four dashes, two int32 and an int16 of at most 11 and 6 characters.
    size = (src_off[n] - src_off[0]) + (dst_off[n] - dst_off[0]) + n * 32
    buf = np.empty(size, np.uint8)
    offsets = np.empty(n + 1, np.int32)
    pos = 0
    for i in range(n):
        offsets[i] = pos
        for k in range(src_off[i], src_off[i + 1]):
            buf[pos] = src_buf[k]
            pos += 1
        buf[pos] = 45  # '-'
        pos += 1
        for k in range(dst_off[i], dst_off[i + 1]):
            buf[pos] = dst_buf[k]
            pos += 1
        buf[pos] = 45
        pos = _put_int(buf, pos + 1, sport[i])
        buf[pos] = 45
        pos = _put_int(buf, pos + 1, dport[i])
        buf[pos] = 45
        pos = _put_int(buf, pos + 1, proto[i])
    offsets[n] = pos
    return buf[:pos], offsets


def _to_arrow(buf: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int32]) -> pa.Array:
    n = offsets.shape[0] - 1
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf))


def format_ips(hi: npt.NDArray[np.uint64], lo: npt.NDArray[np.uint64]) -> pa.Array:
    """IPv4-mapped addresses as dotted quads, others as RFC 5952 IPv6 text."""
    buf, offsets = _format_ips(
        np.ascontiguousarray(hi, dtype=np.uint64), np.ascontiguousarray(lo, dtype=np.uint64), _HEX
    )
    return _to_arrow(buf, offsets)


def format_flow_ids(
    src: pa.Array, dst: pa.Array, sport: npt.NDArray[np.integer[Any]],
    dport: npt.NDArray[np.integer[Any]], proto: npt.NDArray[np.integer[Any]],
) -> pa.Array:  # fmt: skip
    """CICFlowMeter's flow id 'src-dst-sport-dport-proto' from formatted address arrays.

    The numbers are written as they are (ports as int32, the protocol as int16, like the
    table's own columns); real flows only have small non-negative ones.
    """
    s_off, s_buf = _string_buffers(src)
    d_off, d_buf = _string_buffers(dst)
    buf, offsets = _join_ids(
        s_buf, s_off, d_buf, d_off,
        np.ascontiguousarray(sport, dtype=np.int64), np.ascontiguousarray(dport, dtype=np.int64),
        np.ascontiguousarray(proto, dtype=np.int64),
    )  # fmt: skip
    return _to_arrow(buf, offsets)


def _string_buffers(a: pa.Array) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint8]]:
    """Offsets and characters of a StringArray without a null bitmap, as numpy views."""
    _, off, data = a.buffers()
    n = len(a)
    offsets = np.frombuffer(off, np.int32, n + 1, a.offset * 4)
    chars = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    return offsets, chars


def format_times(ns: npt.NDArray[np.int64]) -> pa.Array:
    """CICFlowMeter-style 'YYYY-MM-DD HH:MM:SS.ffffff' UTC text."""
    buf, offsets = _format_times(np.ascontiguousarray(ns, dtype=np.int64))
    return _to_arrow(buf, offsets)
