"""Stable 64-bit hashes of addresses and key tuples, computed without a Python loop.

The detectors keep their state in numpy arrays keyed by integers. Flow tables carry
addresses as text, so every address is turned into a 64-bit hash straight from the
Arrow string buffers (bytes gathered into a padded matrix, folded 8 bytes at a time
with the splitmix64 finaliser). The same text always gives the same hash, in every
batch and every process, which a dictionary encoding per batch would not. Collisions
need ~2³² distinct values before they become likely, far beyond any capped state here.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

U64 = npt.NDArray[np.uint64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix64(x: npt.ArrayLike) -> U64:
    """splitmix64 finaliser: a bijection of uint64 that spreads every input bit."""
    z = np.asarray(x).astype(np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def combine(*parts: npt.ArrayLike) -> U64:
    """Hash of a tuple of integer columns (order matters); broadcasts like numpy."""
    h = mix64(parts[0])
    for p in parts[1:]:
        # The odd multiplier makes the fold order-sensitive: (a, b) and (b, a) differ.
        h = mix64((h * _M1) ^ mix64(np.asarray(p).astype(np.int64).astype(np.uint64)))
    return h


def _as_string_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], pa.string())
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    if values.null_count:
        values = pc.fill_null(values, "")
    return values


def hash_strings(values: pa.Array | pa.ChunkedArray) -> U64:
    """64-bit hash of every string of an Arrow array (nulls hash like "")."""
    arr = _as_string_array(values)
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32)[arr.offset : arr.offset + n + 1]
    offsets = offsets.astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else None
    lengths = np.diff(offsets)
    width = int(lengths.max()) if n else 0
    h = mix64(lengths)
    if width == 0 or data is None or data.size == 0:
        return h
    width8 = (width + 7) // 8 * 8
    cols = np.arange(width8, dtype=np.int64)
    idx = offsets[:-1, None] + cols[None, :]
    valid = cols[None, :] < lengths[:, None]
    mat = np.where(valid, data[np.minimum(idx, data.size - 1)], 0).astype(np.uint8)
    words = np.ascontiguousarray(mat).view(np.uint64)  # (n, width8 / 8), native order
    for j in range(words.shape[1]):
        h = mix64(h ^ words[:, j])
    return h
