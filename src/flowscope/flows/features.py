"""Finished-flow accumulators → a feature table (pyarrow), vectorised over flows.

Addresses, flow ids and timestamps are formatted by compiled kernels, so no column
costs a Python object per flow. Numeric columns become Arrow arrays over their numpy
buffers without a copy (``pa.array`` would also do, but its first call imports pandas,
a fifth of a second of start-up for nothing).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from flowscope.flows import _feature_kernel as _fk
from flowscope.flows import state as S
from flowscope.flows._format import format_flow_ids, format_ips, format_times
from flowscope.flows.meter import FlowRecords
from flowscope.flows.registry import EXTRAS, FEATURE_NAMES, FEATURES, FlowView

_ARROW_TYPES: dict[np.dtype[np.generic], pa.DataType] = {
    np.dtype(np.float64): pa.float64(),
    np.dtype(np.int64): pa.int64(),
    np.dtype(np.int32): pa.int32(),
    np.dtype(np.int16): pa.int16(),
    np.dtype(np.int8): pa.int8(),
}


def arrow_array(a: npt.NDArray[np.generic]) -> pa.Array:
    """A numeric numpy array as an Arrow array sharing its memory (copied if strided)."""
    a = np.ascontiguousarray(a)
    return pa.Array.from_buffers(_ARROW_TYPES[a.dtype], a.shape[0], [None, pa.py_buffer(a)])


def _string_array(values: list[str]) -> pa.Array:
    """A small StringArray built from its buffers (no pandas, see the module docstring)."""
    data = [v.encode() for v in values]
    offsets = np.zeros(len(data) + 1, np.int32)
    offsets[1:] = np.cumsum([len(d) for d in data])
    return pa.StringArray.from_buffers(
        len(data), pa.py_buffer(offsets), pa.py_buffer(b"".join(data))
    )


# The compiled pass computes exactly the registry's columns. Should the lists ever differ
# (a feature added or renamed in the registry only), the registry's numpy code is used.
_EXTRA_NAMES = tuple(f.name for f in EXTRAS)
_COMPILED = FEATURE_NAMES == _fk.FEATURE_COLUMNS and _EXTRA_NAMES == _fk.EXTRA_COLUMNS

_END_NAMES = _string_array([""] + [S.END_REASONS[k] for k in sorted(S.END_REASONS)])


def repeat_string(value: str, n: int) -> pa.Array:
    """``value`` n times, as a plain StringArray."""
    idx = arrow_array(np.zeros(n, np.int32))
    return pa.DictionaryArray.from_arrays(idx, _string_array([value])).dictionary_decode()


_G = TypeVar("_G", bound=np.generic)


def _columns_contiguous(a: npt.NDArray[_G]) -> npt.NDArray[_G]:
    """``a`` with each column contiguous in memory (the meter hands records out that way).

    Every feature reads whole columns; on a row-major matrix each of those reads would
    pull every cache line of every row.
    """
    if a.shape[0] <= 1 or a.strides[0] == a.itemsize:
        return a
    return np.asfortranarray(a)


def compute_features(records: FlowRecords, *, compiled: bool = True) -> pa.Table:
    """All identifier, feature and extra columns for a set of flows.

    Snapshots (``records.active``) get one more column, ``active`` (all true), after
    the identifiers; finished flows never have it.

    The feature columns come from one compiled pass (:mod:`._feature_kernel`), or with
    ``compiled=False`` from the registry's numpy definitions; both give the same values.
    """
    I = _columns_contiguous(records.I)
    F = _columns_contiguous(records.F)
    K = _columns_contiguous(records.K)
    src = format_ips(K[:, S.K_SRC_HI], K[:, S.K_SRC_LO])
    dst = format_ips(K[:, S.K_DST_HI], K[:, S.K_DST_LO])
    sport = I[:, S.I_SPORT].astype(np.int32)
    dport = I[:, S.I_DPORT].astype(np.int32)
    proto = I[:, S.I_PROTO].astype(np.int16)
    flow_id = format_flow_ids(src, dst, sport, dport, proto)
    reason_idx = np.clip(I[:, S.I_END_REASON], 0, len(_END_NAMES) - 1).astype(np.int8)
    reasons = pa.DictionaryArray.from_arrays(arrow_array(reason_idx), _END_NAMES)
    cols: dict[str, pa.Array] = {
        "flow_id": flow_id,
        "src_ip": src,
        "src_port": arrow_array(sport),
        "dst_ip": dst,
        "dst_port": arrow_array(dport),
        "protocol": arrow_array(proto),
        "timestamp": format_times(I[:, S.I_FIRST_TS]),
        "first_seen": arrow_array(I[:, S.I_FIRST_TS].copy()),
        "last_seen": arrow_array(I[:, S.I_LAST_TS].copy()),
        "end_reason": reasons.dictionary_decode(),
        "ip_version": arrow_array(I[:, S.I_IPVER].astype(np.int8)),
        "vlan_id": arrow_array(I[:, S.I_VLAN].astype(np.int32)),
    }
    if records.active:  # snapshots of open flows (FlowMeter.snapshot), see FlowRecords
        cols["active"] = pa.repeat(pa.scalar(True), len(records))
    if compiled and _COMPILED:
        out_a = _rows(_fk.SPLIT, len(records), np.float64)
        out_b = _rows(len(FEATURES) - _fk.SPLIT, len(records), np.float64)
        extra = _rows(len(EXTRAS), len(records), np.int64)
        _fk.compute_columns(I, F, out_a, out_b, extra)
        for j, feat in enumerate(FEATURES):
            cols[feat.name] = arrow_array(out_a[j] if j < _fk.SPLIT else out_b[j - _fk.SPLIT])
        for j, feat in enumerate(EXTRAS):
            cols[feat.name] = arrow_array(extra[j])
    else:
        view = FlowView(I, F)
        for feat in FEATURES:
            cols[feat.name] = arrow_array(_own(feat.compute(view), np.float64, records))
        for feat in EXTRAS:
            cols[feat.name] = arrow_array(_own(feat.compute(view), np.int64, records))
    return pa.table(cols)


def _rows(rows: int, n: int, dtype: type[_G]) -> npt.NDArray[_G]:
    """rows × n, each row a column of the table; rows one cache line apart (not a multiple
    of 4 KiB, which would make the compiled pass's writes to them evict each other)."""
    return np.empty((rows, n + 8), dtype=dtype)[:, :n]


def _own(
    values: npt.NDArray[np.generic], dtype: type[np.generic], records: FlowRecords
) -> npt.NDArray[np.generic]:
    """``values`` as ``dtype``, never a view of the records (which may be borrowed)."""
    out = np.asarray(values, dtype=dtype)
    if np.may_share_memory(out, records.I) or np.may_share_memory(out, records.F):
        out = out.copy()
    return out


def feature_matrix(records: FlowRecords) -> npt.NDArray[np.float32]:
    """Model input: FEATURES in registry order as a float32 matrix (n × len(FEATURES))."""
    view = FlowView(_columns_contiguous(records.I), _columns_contiguous(records.F))
    out = np.empty((len(records), len(FEATURES)), dtype=np.float32)
    for j, feat in enumerate(FEATURES):
        out[:, j] = feat.compute(view)
    return out
