"""The registry's feature columns computed in one compiled pass over the flows.

:mod:`flowscope.flows.registry` defines every feature as vectorised numpy code, and it
stays the definition. Evaluated that way a chunk of flows costs a few hundred numpy
calls, each a pass over a column plus temporaries; this kernel computes the same
columns per flow in one pass, with the same floating-point operations in the same
order, so every value is bit for bit what the registry gives (see
``tests/test_registry.py``, which checks that on fuzzed flows, and the feature table's
fallback when the column lists differ).

``np.maximum`` is mirrored as numpy computes it (NaN wins; of two equal values the
second, which only shows for zeros of different sign, impossible in these sums).
"""

from __future__ import annotations

import numpy as np

from flowscope._jit import inline_kernel, kernel
from flowscope.flows import state as S

# Column order of the kernel's output: the registry's FEATURES, then its EXTRAS.
FEATURE_COLUMNS: tuple[str, ...] = (
    "flow_duration", "fwd_packets", "bwd_packets", "fwd_bytes", "bwd_bytes",
    "fwd_pkt_len_max", "fwd_pkt_len_min", "fwd_pkt_len_mean", "fwd_pkt_len_std",
    "bwd_pkt_len_max", "bwd_pkt_len_min", "bwd_pkt_len_mean", "bwd_pkt_len_std",
    "flow_bytes_per_s", "flow_packets_per_s",
    "flow_iat_mean", "flow_iat_std", "flow_iat_max", "flow_iat_min",
    "fwd_iat_total", "fwd_iat_mean", "fwd_iat_std", "fwd_iat_max", "fwd_iat_min",
    "bwd_iat_total", "bwd_iat_mean", "bwd_iat_std", "bwd_iat_max", "bwd_iat_min",
    "fwd_psh_flags", "bwd_psh_flags", "fwd_urg_flags", "bwd_urg_flags",
    "fwd_rst_flags", "bwd_rst_flags", "fwd_header_bytes", "bwd_header_bytes",
    "fwd_packets_per_s", "bwd_packets_per_s",
    "pkt_len_min", "pkt_len_max", "pkt_len_mean", "pkt_len_std", "pkt_len_var",
    "fin_flag_count", "syn_flag_count", "rst_flag_count", "psh_flag_count",
    "ack_flag_count", "urg_flag_count", "cwr_flag_count", "ece_flag_count",
    "down_up_ratio", "avg_packet_size", "fwd_seg_size_avg", "bwd_seg_size_avg",
    "fwd_bytes_per_bulk", "fwd_packets_per_bulk", "fwd_bulk_rate",
    "bwd_bytes_per_bulk", "bwd_packets_per_bulk", "bwd_bulk_rate",
    "subflow_fwd_packets", "subflow_fwd_bytes", "subflow_bwd_packets", "subflow_bwd_bytes",
    "fwd_init_win_bytes", "bwd_init_win_bytes", "fwd_act_data_packets",
    "bwd_act_data_packets", "fwd_seg_size_min", "bwd_seg_size_min",
    "active_mean", "active_std", "active_max", "active_min",
    "idle_mean", "idle_std", "idle_max", "idle_min",
    "icmp_code", "icmp_type", "fwd_tcp_retrans", "bwd_tcp_retrans", "tcp_retrans",
    "connection_time",
)  # fmt: skip
EXTRA_COLUMNS: tuple[str, ...] = (
    "fwd_ip_bytes", "bwd_ip_bytes", "fwd_wire_bytes", "bwd_wire_bytes", "fragments",
    "fwd_tcp_flags", "bwd_tcp_flags", "fwd_ttl_min", "bwd_ttl_min",
)  # fmt: skip


@inline_kernel
def _npmax(a: float, b: float) -> float:
    """np.maximum for floats: NaN if either is NaN, else the larger, b if they are equal."""
    return a if (a > b or a != a) else b


@inline_kernel
def _div(a: float, b: float) -> float:
    """registry._div: a / b where b > 0, else 0."""
    return a / (b if b > 0 else 1.0) if b > 0 else 0.0


@inline_kernel
def _per_second(a: float, duration_us: float) -> float:
    return _div(a, duration_us / 1e6)


@inline_kernel
def _w_std(F: np.ndarray, r: int, base: int) -> float:
    """FlowView.std: sample standard deviation of a Welford block."""
    n = F[r, base + S.W_N]
    den = _npmax(n - 1, 1.0)
    var = F[r, base + S.W_M2] / den if n > 1 else 0.0
    return np.sqrt(_npmax(var, 0.0))


@inline_kernel
def _len_var(n: int, total: int, sumsq: int) -> float:
    """FlowView.len_stat variance from exact integer sums."""
    nn = max(n, 1)
    q = total // nn
    r = total - q * nn
    m2 = np.float64(sumsq - q * total - r * q) - (r * r) / nn
    if n > 1:
        return _npmax(m2, 0.0) / max(n - 1, 1)
    return 0.0


SPLIT = 44  # output columns in the first array (see compute_columns)


@inline_kernel
def _put(out_a: np.ndarray, out_b: np.ndarray, c: int, r: int, v: float) -> None:
    if c < SPLIT:
        out_a[c, r] = v
    else:
        out_b[c - SPLIT, r] = v


@kernel
def compute_columns(
    I: np.ndarray, F: np.ndarray, out_a: np.ndarray, out_b: np.ndarray, extra: np.ndarray
) -> None:
    """FEATURE_COLUMNS for the flows (rows) of I and F, one output row per column: the
    first SPLIT in ``out_a``, the rest in ``out_b`` (float64); EXTRA_COLUMNS in ``extra``
    (int64). Two arrays because one would be large enough for the C allocator to map
    fresh (page-faulting) memory for every chunk instead of reusing freed memory."""
    for r in range(I.shape[0]):
        fp = np.float64(I[r, S.I_FWD_PKTS])
        bp = np.float64(I[r, S.I_BWD_PKTS])
        fb = np.float64(I[r, S.I_FWD_BYTES])
        bb = np.float64(I[r, S.I_BWD_BYTES])
        dur = (I[r, S.I_LAST_TS] - I[r, S.I_FIRST_TS]) / 1000.0
        packets = fp + bp
        payload = fb + bb
        subflows = np.float64(I[r, S.I_SUBFLOWS]) + 1.0
        c = 0
        _put(out_a, out_b, c, r, dur)
        _put(out_a, out_b, c + 1, r, fp)
        _put(out_a, out_b, c + 2, r, bp)
        _put(out_a, out_b, c + 3, r, fb)
        _put(out_a, out_b, c + 4, r, bb)
        c += 5
        # per-direction payload lengths: max, min, mean, std
        for d in range(2):
            pk = S.I_FWD_PKTS if d == 0 else S.I_BWD_PKTS
            by = S.I_FWD_BYTES if d == 0 else S.I_BWD_BYTES
            sq = S.I_FWD_LEN_SUMSQ if d == 0 else S.I_BWD_LEN_SUMSQ
            lo = S.I_FWD_LEN_MIN if d == 0 else S.I_BWD_LEN_MIN
            hi = S.I_FWD_LEN_MAX if d == 0 else S.I_BWD_LEN_MAX
            n = I[r, pk]
            _put(out_a, out_b, c, r, np.float64(I[r, hi] if n > 0 else 0))
            _put(out_a, out_b, c + 1, r, np.float64(I[r, lo] if n > 0 else 0))
            _put(out_a, out_b, c + 2, r, I[r, by] / max(n, 1) if n > 0 else 0.0)
            _put(out_a, out_b, c + 3, r, np.sqrt(_len_var(n, I[r, by], I[r, sq])))
            c += 4
        _put(out_a, out_b, c, r, _per_second(payload, dur))
        _put(out_a, out_b, c + 1, r, _per_second(packets, dur))
        c += 2
        # inter-arrival times: flow (no total), fwd, bwd
        for k in range(3):
            base = S.F_FLOW_IAT if k == 0 else (S.F_FWD_IAT if k == 1 else S.F_BWD_IAT)
            n = F[r, base + S.W_N]
            mean = F[r, base + S.W_MEAN] if n > 0 else 0.0
            if k > 0:
                _put(out_a, out_b, c, r, mean * n)
                c += 1
            _put(out_a, out_b, c, r, mean)
            _put(out_a, out_b, c + 1, r, _w_std(F, r, base))
            _put(out_a, out_b, c + 2, r, F[r, base + S.W_MAX] if n > 0 else 0.0)
            _put(out_a, out_b, c + 3, r, F[r, base + S.W_MIN] if n > 0 else 0.0)
            c += 4
        for k in (S.FLAG_PSH, S.FLAG_URG, S.FLAG_RST):
            _put(out_a, out_b, c, r, np.float64(I[r, S.I_FWD_FLAG0 + k]))
            _put(out_a, out_b, c + 1, r, np.float64(I[r, S.I_BWD_FLAG0 + k]))
            c += 2
        _put(out_a, out_b, c, r, np.float64(I[r, S.I_FWD_HDR]))
        _put(out_a, out_b, c + 1, r, np.float64(I[r, S.I_BWD_HDR]))
        _put(out_a, out_b, c + 2, r, _per_second(fp, dur))
        _put(out_a, out_b, c + 3, r, _per_second(bp, dur))
        c += 4
        # payload lengths over both directions: min, max, mean, std, var
        n = I[r, S.I_FWD_PKTS] + I[r, S.I_BWD_PKTS]
        total = I[r, S.I_FWD_BYTES] + I[r, S.I_BWD_BYTES]
        sumsq = I[r, S.I_FWD_LEN_SUMSQ] + I[r, S.I_BWD_LEN_SUMSQ]
        lo = min(I[r, S.I_FWD_LEN_MIN], I[r, S.I_BWD_LEN_MIN])
        hi = max(I[r, S.I_FWD_LEN_MAX], I[r, S.I_BWD_LEN_MAX])
        var = _len_var(n, total, sumsq)
        _put(out_a, out_b, c, r, np.float64(lo if n > 0 else 0))
        _put(out_a, out_b, c + 1, r, np.float64(hi if n > 0 else 0))
        _put(out_a, out_b, c + 2, r, total / max(n, 1) if n > 0 else 0.0)
        _put(out_a, out_b, c + 3, r, np.sqrt(var))
        _put(out_a, out_b, c + 4, r, var)
        c += 5
        for k in (S.FLAG_FIN, S.FLAG_SYN, S.FLAG_RST, S.FLAG_PSH, S.FLAG_ACK, S.FLAG_URG,
                  S.FLAG_CWR, S.FLAG_ECE):  # fmt: skip
            both = np.float64(I[r, S.I_FWD_FLAG0 + k]) + np.float64(I[r, S.I_BWD_FLAG0 + k])
            _put(out_a, out_b, c, r, both)
            c += 1
        _put(out_a, out_b, c, r, _div(bp, fp))
        _put(out_a, out_b, c + 1, r, _div(payload, packets))
        _put(out_a, out_b, c + 2, r, _div(fb, fp))
        _put(out_a, out_b, c + 3, r, _div(bb, bp))
        c += 4
        for d in range(2):
            base = S.I_FWD_BULK0 if d == 0 else S.I_BWD_BULK0
            count = np.float64(I[r, base + S.BULK_COUNT])
            _put(out_a, out_b, c, r, _div(np.float64(I[r, base + S.BULK_BYTES]), count * 1.0))
            _put(out_a, out_b, c + 1, r, _div(np.float64(I[r, base + S.BULK_PKTS]), count * 1.0))
            seconds = np.float64(I[r, base + S.BULK_DURATION]) * 1e-9
            _put(out_a, out_b, c + 2, r, _div(np.float64(I[r, base + S.BULK_BYTES]), seconds))
            c += 3
        _put(out_a, out_b, c, r, _div(fp, subflows))
        _put(out_a, out_b, c + 1, r, _div(fb, subflows))
        _put(out_a, out_b, c + 2, r, _div(bp, subflows))
        _put(out_a, out_b, c + 3, r, _div(bb, subflows))
        _put(out_a, out_b, c + 4, r, np.float64(I[r, S.I_FWD_INIT_WIN]))
        _put(out_a, out_b, c + 5, r, np.float64(I[r, S.I_BWD_INIT_WIN]))
        _put(out_a, out_b, c + 6, r, np.float64(I[r, S.I_FWD_ACT_DATA]))
        _put(out_a, out_b, c + 7, r, np.float64(I[r, S.I_BWD_ACT_DATA]))
        _put(out_a, out_b, c + 8, r, _npmax(np.float64(I[r, S.I_FWD_HDR_MIN]), 0.0))
        _put(out_a, out_b, c + 9, r, _npmax(np.float64(I[r, S.I_BWD_HDR_MIN]), 0.0))
        c += 10
        for k in range(2):
            base = S.F_ACTIVE if k == 0 else S.F_IDLE
            n = F[r, base + S.W_N]
            _put(out_a, out_b, c, r, F[r, base + S.W_MEAN] if n > 0 else 0.0)
            _put(out_a, out_b, c + 1, r, _w_std(F, r, base))
            _put(out_a, out_b, c + 2, r, F[r, base + S.W_MAX] if n > 0 else 0.0)
            _put(out_a, out_b, c + 3, r, F[r, base + S.W_MIN] if n > 0 else 0.0)
            c += 4
        _put(out_a, out_b, c, r, np.float64(I[r, S.I_ICMP_CODE]))
        _put(out_a, out_b, c + 1, r, np.float64(I[r, S.I_ICMP_TYPE]))
        _put(out_a, out_b, c + 2, r, np.float64(I[r, S.I_FWD_RETX]))
        _put(out_a, out_b, c + 3, r, np.float64(I[r, S.I_BWD_RETX]))
        retx = np.float64(I[r, S.I_FWD_RETX]) + np.float64(I[r, S.I_BWD_RETX])
        _put(out_a, out_b, c + 4, r, retx)
        _put(out_a, out_b, c + 5, r, (I[r, S.I_LAST_TS] - I[r, S.I_CONN_START]) / 1000.0)
        # extras (int64, via float64 like the registry's astype)
        extra[0, r] = np.int64(np.float64(I[r, S.I_FWD_IP_BYTES]))
        extra[1, r] = np.int64(np.float64(I[r, S.I_BWD_IP_BYTES]))
        extra[2, r] = np.int64(np.float64(I[r, S.I_FWD_WIRE_BYTES]))
        extra[3, r] = np.int64(np.float64(I[r, S.I_BWD_WIRE_BYTES]))
        extra[4, r] = np.int64(np.float64(I[r, S.I_FRAGMENTS]))
        extra[5, r] = np.int64(np.float64(I[r, S.I_FWD_FLAGS_OR]))
        extra[6, r] = np.int64(np.float64(I[r, S.I_BWD_FLAGS_OR]))
        extra[7, r] = np.int64(np.float64(I[r, S.I_FWD_TTL_MIN]) if fp > 0 else 0.0)
        extra[8, r] = np.int64(np.float64(I[r, S.I_BWD_TTL_MIN]) if bp > 0 else 0.0)
