"""Finished-flow accumulators → a feature table (pyarrow), vectorised over flows.

Addresses and timestamps are formatted by compiled kernels and flow ids joined by
pyarrow, so no column costs a Python object per flow.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.flows import state as S
from flowscope.flows._format import format_ips, format_times
from flowscope.flows.meter import FlowRecords
from flowscope.flows.registry import EXTRAS, FEATURES, FlowView

_END_NAMES = pa.array([""] + [S.END_REASONS[k] for k in sorted(S.END_REASONS)], pa.string())


def compute_features(records: FlowRecords) -> pa.Table:
    """All identifier, feature and extra columns for a set of finished flows."""
    I, F, K = records.I, records.F, records.K
    view = FlowView(I, F)
    src = format_ips(K[:, S.K_SRC_HI], K[:, S.K_SRC_LO])
    dst = format_ips(K[:, S.K_DST_HI], K[:, S.K_DST_LO])
    sport = I[:, S.I_SPORT].astype(np.int32)
    dport = I[:, S.I_DPORT].astype(np.int32)
    proto = I[:, S.I_PROTO].astype(np.int16)
    first = I[:, S.I_FIRST_TS]
    last = I[:, S.I_LAST_TS]
    sp = pc.cast(pa.array(sport), pa.string())
    dp = pc.cast(pa.array(dport), pa.string())
    pr = pc.cast(pa.array(proto), pa.string())
    flow_id = pc.binary_join_element_wise(src, dst, sp, dp, pr, "-")
    stamp = format_times(first)
    reason_idx = np.clip(I[:, S.I_END_REASON], 0, len(_END_NAMES) - 1).astype(np.int8)
    reasons = pa.DictionaryArray.from_arrays(pa.array(reason_idx), _END_NAMES)
    cols: dict[str, pa.Array] = {
        "flow_id": flow_id,
        "src_ip": src,
        "src_port": pa.array(sport),
        "dst_ip": dst,
        "dst_port": pa.array(dport),
        "protocol": pa.array(proto),
        "timestamp": stamp,
        "first_seen": pa.array(first),
        "last_seen": pa.array(last),
        "end_reason": reasons.dictionary_decode(),
        "ip_version": pa.array(I[:, S.I_IPVER].astype(np.int8)),
        "vlan_id": pa.array(I[:, S.I_VLAN].astype(np.int32)),
    }
    for feat in FEATURES:
        cols[feat.name] = pa.array(np.asarray(feat.compute(view), dtype=np.float64))
    for feat in EXTRAS:
        cols[feat.name] = pa.array(np.asarray(feat.compute(view)).astype(np.int64))
    return pa.table(cols)


def feature_matrix(records: FlowRecords) -> npt.NDArray[np.float32]:
    """Model input: FEATURES in registry order as a float32 matrix (n × len(FEATURES))."""
    view = FlowView(records.I, records.F)
    out = np.empty((len(records), len(FEATURES)), dtype=np.float32)
    for j, feat in enumerate(FEATURES):
        out[:, j] = feat.compute(view)
    return out
