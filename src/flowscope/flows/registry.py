"""The feature registry: the single source of truth for every flow column.

Each :class:`Feature` has a canonical name, a unit, a definition, the vectorised
function that computes it from the flow accumulators, and its column name in each
CSV header dialect (CICFlowMeter v4, the CIC-IDS2017 CSVs, the CSE-CIC-IDS2018 CSVs).
Models, writers, dialect readers and docs/features.md are all derived from this list,
so a feature cannot mean one thing in training and another in production.

Run ``python -m flowscope.flows.registry`` to print docs/features.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from flowscope.flows import state as S

Array = npt.NDArray[np.float64]
_T = TypeVar("_T")


class FlowView:
    """Read access to the accumulators of many finished flows, with safe statistics."""

    def __init__(self, i: npt.NDArray[np.int64], f: npt.NDArray[np.float64]) -> None:
        self._i = i
        self._f = f
        self._cols: dict[int, Array] = {}
        self._memo: dict[tuple[object, ...], object] = {}

    def _once(self, key: tuple[object, ...], compute: Callable[[], _T]) -> _T:
        """``compute()``, evaluated once per view: several features share these values."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]  # type: ignore[return-value]

    def i(self, col: int) -> Array:
        """Integer accumulator column as float64 (converted once, then reused)."""
        out = self._cols.get(col)
        if out is None:
            out = self._cols[col] = self._i[:, col].astype(np.float64)
        return out

    def n(self, base: int) -> Array:
        return self._f[:, base + S.W_N]

    def mean(self, base: int) -> Array:
        return np.where(self.n(base) > 0, self._f[:, base + S.W_MEAN], 0.0)

    def total(self, base: int) -> Array:
        return self.mean(base) * self.n(base)

    def std(self, base: int) -> Array:
        """Sample standard deviation (n − 1), as CICFlowMeter's Apache Commons statistics."""
        n = self.n(base)
        with np.errstate(invalid="ignore", divide="ignore"):
            var = np.where(n > 1, self._f[:, base + S.W_M2] / np.maximum(n - 1, 1), 0.0)
        return np.sqrt(np.maximum(var, 0.0))

    def var(self, base: int) -> Array:
        return self.std(base) ** 2

    def min(self, base: int) -> Array:
        return np.where(self.n(base) > 0, self._f[:, base + S.W_MIN], 0.0)

    def max(self, base: int) -> Array:
        return np.where(self.n(base) > 0, self._f[:, base + S.W_MAX], 0.0)

    def span_us(self, start: int, end: int) -> Array:
        """µs between two ns timestamp columns, subtracted as integers (exact)."""
        return (self._i[:, end] - self._i[:, start]) / 1000.0

    def _len_parts(self, direction: str) -> tuple[Array, Array, Array, Array, Array]:
        """(count, sum, sum of squares, min, max) of payload lengths, as int64 arrays."""
        return self._once(("len_parts", direction), lambda: self._len_parts_of(direction))

    def _len_parts_of(self, direction: str) -> tuple[Array, Array, Array, Array, Array]:
        i = self._i
        if direction == "fwd":
            cols = (S.I_FWD_PKTS, S.I_FWD_BYTES, S.I_FWD_LEN_SUMSQ, S.I_FWD_LEN_MIN,
                    S.I_FWD_LEN_MAX)  # fmt: skip
            return tuple(i[:, c] for c in cols)  # type: ignore[return-value]
        if direction == "bwd":
            cols = (S.I_BWD_PKTS, S.I_BWD_BYTES, S.I_BWD_LEN_SUMSQ, S.I_BWD_LEN_MIN,
                    S.I_BWD_LEN_MAX)  # fmt: skip
            return tuple(i[:, c] for c in cols)  # type: ignore[return-value]
        f, b = self._len_parts("fwd"), self._len_parts("bwd")
        return (f[0] + b[0], f[1] + b[1], f[2] + b[2], np.minimum(f[3], b[3]),
                np.maximum(f[4], b[4]))  # fmt: skip

    def len_stat(self, stat: str, direction: str) -> Array:
        """Payload length statistic from exact integer sums.

        The variance M2 = Σx² − (Σx)²/n is evaluated as Σx² − q·Σx − r·q − r²/n with
        q, r = divmod(Σx, n): every term but the last is an exact int64 product, so equal
        lengths give a standard deviation of exactly 0.
        """
        n, total, sumsq, lo, hi = self._len_parts(direction)
        has = n > 0
        if stat == "min":
            return np.where(has, lo, 0).astype(np.float64)
        if stat == "max":
            return np.where(has, hi, 0).astype(np.float64)
        nn = np.maximum(n, 1)
        if stat == "mean":
            return np.where(has, total / nn, 0.0)

        def variance() -> Array:
            q, r = np.divmod(total, nn)
            m2 = (sumsq - q * total - r * q).astype(np.float64) - (r * r) / nn
            return np.where(n > 1, np.maximum(m2, 0.0) / np.maximum(n - 1, 1), 0.0)

        var = self._once(("len_var", direction), variance)
        return var if stat == "var" else np.sqrt(var)

    def duration_us(self) -> Array:
        return self._once(("duration",), lambda: self.span_us(S.I_FIRST_TS, S.I_LAST_TS))

    def packets(self) -> Array:
        return self._once(("packets",), lambda: self.i(S.I_FWD_PKTS) + self.i(S.I_BWD_PKTS))

    def payload(self) -> Array:
        return self._once(("payload",), lambda: self.i(S.I_FWD_BYTES) + self.i(S.I_BWD_BYTES))

    def flag(self, k: int, direction: str = "both") -> Array:
        fwd = self.i(S.I_FWD_FLAG0 + k)
        bwd = self.i(S.I_BWD_FLAG0 + k)
        return fwd if direction == "fwd" else bwd if direction == "bwd" else fwd + bwd

    def subflows(self) -> Array:
        return self._once(("subflows",), lambda: self.i(S.I_SUBFLOWS) + 1.0)

    def bulk(self, base: int, what: int) -> Array:
        return self.i(base + what)


def _div(a: Array, b: Array) -> Array:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), 0.0)


def _per_second(a: Array, duration_us: Array) -> Array:
    return _div(a, duration_us / 1e6)


Compute = Callable[[FlowView], Array]


def _stat(stat: str, base: int) -> Compute:
    """A running statistic (mean, std, min, max, total) of one Welford block."""
    return lambda v: getattr(v, stat)(base)


def _len(direction: str, stat: str) -> Compute:
    """A payload-length statistic of one direction (fwd, bwd) or of both (all)."""
    return lambda v: v.len_stat(stat, direction)


def _flag(k: int) -> Compute:
    return lambda v: v.flag(k)


def _bulk(base: int, num: int, den: int, den_scale: float = 1.0) -> Compute:
    """Ratio of two bulk counters of one direction (den_scale converts ns to s)."""
    return lambda v: _div(v.bulk(base, num), v.bulk(base, den) * den_scale)


@dataclass(frozen=True, slots=True)
class Feature:
    """One model feature: how it is computed and what the other tools call it."""

    name: str
    unit: str
    definition: str
    compute: Compute
    cic: str | None  # CICFlowMeter v4 CSV (the corrected fork's header)
    ids2017: str | None  # CIC-IDS2017 MachineLearningCVE/TrafficLabelling CSVs
    ids2018: str | None  # CSE-CIC-IDS2018 CSVs (the older dashboard's 54 features)
    deviation: str = ""  # deliberate difference from CICFlowMeter, with the reason


FEATURES: list[Feature] = []


def _add(
    name: str,
    unit: str,
    definition: str,
    compute: Compute,
    cic: str | None,
    ids2017: str | None,
    ids2018: str | None,
    deviation: str = "",
) -> None:
    FEATURES.append(Feature(name, unit, definition, compute, cic, ids2017, ids2018, deviation))


_PAYLOAD = "transport payload bytes (IP length minus IP, extension and TCP/UDP/ICMP headers)"
_ICMP_LEN = (
    "ICMP payload is counted after the 8-byte ICMP header; CICFlowMeter reports 0 for every "
    "non-TCP/UDP packet, which hides ping and ICMP-flood sizes."
)

# -------------------------------------------------------------------- basic volume
_add(
    "flow_duration",
    "µs",
    "last packet time − first packet time",
    lambda v: v.duration_us(),
    "Flow Duration",
    "Flow Duration",
    "Flow Duration",
)
_add(
    "fwd_packets",
    "packets",
    "packets from the flow's initiator",
    lambda v: v.i(S.I_FWD_PKTS),
    "Total Fwd Packet",
    "Total Fwd Packets",
    "Tot Fwd Pkts",
)
_add(
    "bwd_packets",
    "packets",
    "packets from the responder",
    lambda v: v.i(S.I_BWD_PKTS),
    "Total Bwd packets",
    "Total Backward Packets",
    "Tot Bwd Pkts",
)
_add(
    "fwd_bytes",
    "bytes",
    f"sum of forward {_PAYLOAD}",
    lambda v: v.i(S.I_FWD_BYTES),
    "Total Length of Fwd Packet",
    "Total Length of Fwd Packets",
    "TotLen Fwd Pkts",
    _ICMP_LEN,
)
_add(
    "bwd_bytes",
    "bytes",
    f"sum of backward {_PAYLOAD}",
    lambda v: v.i(S.I_BWD_BYTES),
    "Total Length of Bwd Packet",
    "Total Length of Bwd Packets",
    "TotLen Bwd Pkts",
    _ICMP_LEN,
)

for _d, _D, _c17, _c18 in (
    ("fwd", "Fwd", "Fwd Packet Length", "Fwd Pkt Len"),
    ("bwd", "Bwd", "Bwd Packet Length", "Bwd Pkt Len"),
):
    _add(
        f"{_d}_pkt_len_max",
        "bytes",
        f"largest {_d} payload",
        _len(_d, "max"),
        f"{_D} Packet Length Max",
        f"{_c17} Max",
        f"{_c18} Max",
        _ICMP_LEN,
    )
    _add(
        f"{_d}_pkt_len_min",
        "bytes",
        f"smallest {_d} payload",
        _len(_d, "min"),
        f"{_D} Packet Length Min",
        f"{_c17} Min",
        f"{_c18} Min",
        _ICMP_LEN,
    )
    _add(
        f"{_d}_pkt_len_mean",
        "bytes",
        f"mean {_d} payload",
        _len(_d, "mean"),
        f"{_D} Packet Length Mean",
        f"{_c17} Mean",
        f"{_c18} Mean",
        _ICMP_LEN,
    )
    _add(
        f"{_d}_pkt_len_std",
        "bytes",
        f"sample standard deviation of {_d} payload",
        _len(_d, "std"),
        f"{_D} Packet Length Std",
        f"{_c17} Std",
        f"{_c18} Std",
        _ICMP_LEN,
    )

_add(
    "flow_bytes_per_s",
    "bytes/s",
    "(fwd_bytes + bwd_bytes) / duration; 0 when duration is 0",
    lambda v: _per_second(v.payload(), v.duration_us()),
    "Flow Bytes/s",
    "Flow Bytes/s",
    "Flow Byts/s",
    "0 instead of Infinity/NaN for zero-duration flows (CIC-IDS2017 holds 'Infinity'); "
    "ICMP payload counts (CICFlowMeter: 0 for non-TCP/UDP).",
)
_add(
    "flow_packets_per_s",
    "packets/s",
    "packets / duration; 0 when duration is 0",
    lambda v: _per_second(v.packets(), v.duration_us()),
    "Flow Packets/s",
    "Flow Packets/s",
    "Flow Pkts/s",
    "0 instead of Infinity for zero-duration flows.",
)

# -------------------------------------------------------------------- inter-arrival
for _d, _base, _cic, _c17, _c18 in (
    ("flow", S.F_FLOW_IAT, "Flow IAT", "Flow IAT", "Flow IAT"),
    ("fwd", S.F_FWD_IAT, "Fwd IAT", "Fwd IAT", "Fwd IAT"),
    ("bwd", S.F_BWD_IAT, "Bwd IAT", "Bwd IAT", "Bwd IAT"),
):
    _what = "consecutive packets" if _d == "flow" else f"consecutive {_d} packets"
    if _d != "flow":
        _add(
            f"{_d}_iat_total",
            "µs",
            f"sum of gaps between {_what}",
            _stat("total", _base),
            f"{_cic} Total",
            f"{_c17} Total",
            f"{_c18} Tot",
        )
    _add(
        f"{_d}_iat_mean",
        "µs",
        f"mean gap between {_what}",
        _stat("mean", _base),
        f"{_cic} Mean",
        f"{_c17} Mean",
        f"{_c18} Mean",
    )
    _add(
        f"{_d}_iat_std",
        "µs",
        f"sample standard deviation of gaps between {_what}",
        _stat("std", _base),
        f"{_cic} Std",
        f"{_c17} Std",
        f"{_c18} Std",
    )
    _add(
        f"{_d}_iat_max",
        "µs",
        f"largest gap between {_what}",
        _stat("max", _base),
        f"{_cic} Max",
        f"{_c17} Max",
        f"{_c18} Max",
    )
    _add(
        f"{_d}_iat_min",
        "µs",
        f"smallest gap between {_what}",
        _stat("min", _base),
        f"{_cic} Min",
        f"{_c17} Min",
        f"{_c18} Min",
    )

# -------------------------------------------------------------------- flags & headers
_add(
    "fwd_psh_flags",
    "packets",
    "forward TCP packets with PSH",
    lambda v: v.flag(S.FLAG_PSH, "fwd"),
    "Fwd PSH Flags",
    "Fwd PSH Flags",
    "Fwd PSH Flags",
)
_add(
    "bwd_psh_flags",
    "packets",
    "backward TCP packets with PSH",
    lambda v: v.flag(S.FLAG_PSH, "bwd"),
    "Bwd PSH Flags",
    "Bwd PSH Flags",
    "Bwd PSH Flags",
)
_add(
    "fwd_urg_flags",
    "packets",
    "forward TCP packets with URG",
    lambda v: v.flag(S.FLAG_URG, "fwd"),
    "Fwd URG Flags",
    "Fwd URG Flags",
    "Fwd URG Flags",
)
_add(
    "bwd_urg_flags",
    "packets",
    "backward TCP packets with URG",
    lambda v: v.flag(S.FLAG_URG, "bwd"),
    "Bwd URG Flags",
    "Bwd URG Flags",
    "Bwd URG Flags",
)
_add(
    "fwd_rst_flags",
    "packets",
    "forward TCP packets with RST",
    lambda v: v.flag(S.FLAG_RST, "fwd"),
    "Fwd RST Flags",
    None,
    None,
)
_add(
    "bwd_rst_flags",
    "packets",
    "backward TCP packets with RST",
    lambda v: v.flag(S.FLAG_RST, "bwd"),
    "Bwd RST Flags",
    None,
    None,
)
_HDR_DEV = (
    "ICMP's 8-byte header is counted (CICFlowMeter counts 0 for non-TCP/UDP); IP headers are "
    "not included, as in CICFlowMeter."
)
_add(
    "fwd_header_bytes",
    "bytes",
    "sum of forward transport header lengths (TCP incl. options, UDP 8, ICMP 8, SCTP 12)",
    lambda v: v.i(S.I_FWD_HDR),
    "Fwd Header Length",
    "Fwd Header Length",
    "Fwd Header Len",
    _HDR_DEV,
)
_add(
    "bwd_header_bytes",
    "bytes",
    "sum of backward transport header lengths",
    lambda v: v.i(S.I_BWD_HDR),
    "Bwd Header Length",
    "Bwd Header Length",
    "Bwd Header Len",
    _HDR_DEV,
)
_add(
    "fwd_packets_per_s",
    "packets/s",
    "fwd_packets / duration",
    lambda v: _per_second(v.i(S.I_FWD_PKTS), v.duration_us()),
    "Fwd Packets/s",
    "Fwd Packets/s",
    "Fwd Pkts/s",
)
_add(
    "bwd_packets_per_s",
    "packets/s",
    "bwd_packets / duration",
    lambda v: _per_second(v.i(S.I_BWD_PKTS), v.duration_us()),
    "Bwd Packets/s",
    "Bwd Packets/s",
    "Bwd Pkts/s",
)
_add(
    "pkt_len_min",
    "bytes",
    "smallest payload in either direction",
    _len("all", "min"),
    "Packet Length Min",
    "Min Packet Length",
    "Pkt Len Min",
    _ICMP_LEN,
)
_add(
    "pkt_len_max",
    "bytes",
    "largest payload in either direction",
    _len("all", "max"),
    "Packet Length Max",
    "Max Packet Length",
    "Pkt Len Max",
    _ICMP_LEN,
)
_add(
    "pkt_len_mean",
    "bytes",
    "mean payload over both directions",
    _len("all", "mean"),
    "Packet Length Mean",
    "Packet Length Mean",
    "Pkt Len Mean",
    _ICMP_LEN,
)
_add(
    "pkt_len_std",
    "bytes",
    "sample standard deviation of payload over both directions",
    _len("all", "std"),
    "Packet Length Std",
    "Packet Length Std",
    "Pkt Len Std",
    _ICMP_LEN,
)
_add(
    "pkt_len_var",
    "bytes²",
    "sample variance of payload over both directions",
    _len("all", "var"),
    "Packet Length Variance",
    "Packet Length Variance",
    "Pkt Len Var",
    _ICMP_LEN,
)

for _k, _fname, _c17, _c18 in (
    (S.FLAG_FIN, "FIN", "FIN Flag Count", "FIN Flag Cnt"),
    (S.FLAG_SYN, "SYN", "SYN Flag Count", "SYN Flag Cnt"),
    (S.FLAG_RST, "RST", "RST Flag Count", "RST Flag Cnt"),
    (S.FLAG_PSH, "PSH", "PSH Flag Count", "PSH Flag Cnt"),
    (S.FLAG_ACK, "ACK", "ACK Flag Count", "ACK Flag Cnt"),
    (S.FLAG_URG, "URG", "URG Flag Count", "URG Flag Cnt"),
    (S.FLAG_CWR, "CWR", "CWE Flag Count", "CWE Flag Count"),
    (S.FLAG_ECE, "ECE", "ECE Flag Count", "ECE Flag Cnt"),
):
    _add(
        f"{_fname.lower()}_flag_count",
        "packets",
        f"TCP packets (both directions) with {_fname}",
        _flag(_k),
        f"{_fname} Flag Count",
        _c17,
        _c18,
        "Counted per packet and direction exactly once (CICFlowMeter's released version "
        "counted some flags over both directions twice and named CWR 'CWE')."
        if _fname in ("CWR", "ECE")
        else "",
    )

_add(
    "down_up_ratio",
    "ratio",
    "bwd_packets / fwd_packets",
    lambda v: _div(v.i(S.I_BWD_PKTS), v.i(S.I_FWD_PKTS)),
    "Down/Up Ratio",
    "Down/Up Ratio",
    "Down/Up Ratio",
    "A real ratio; CICFlowMeter truncates it to an integer.",
)
_add(
    "avg_packet_size",
    "bytes",
    "(fwd_bytes + bwd_bytes) / packets",
    lambda v: _div(v.payload(), v.packets()),
    "Average Packet Size",
    "Average Packet Size",
    "Pkt Size Avg",
    _ICMP_LEN,
)
_add(
    "fwd_seg_size_avg",
    "bytes",
    "fwd_bytes / fwd_packets",
    lambda v: _div(v.i(S.I_FWD_BYTES), v.i(S.I_FWD_PKTS)),
    "Fwd Segment Size Avg",
    "Avg Fwd Segment Size",
    "Fwd Seg Size Avg",
    _ICMP_LEN,
)
_add(
    "bwd_seg_size_avg",
    "bytes",
    "bwd_bytes / bwd_packets",
    lambda v: _div(v.i(S.I_BWD_BYTES), v.i(S.I_BWD_PKTS)),
    "Bwd Segment Size Avg",
    "Avg Bwd Segment Size",
    "Bwd Seg Size Avg",
    _ICMP_LEN,
)

# -------------------------------------------------------------------- bulk
_BULK_DEF = (
    "a bulk is ≥ 4 consecutive data packets in one direction, ≤ 1 s apart, with no data "
    "packet in the other direction in between"
)
_BULK_DEV = (
    "CICFlowMeter compares against the other direction's *bulk start* time, so forward "
    "bulks are almost never detected (Engelen et al. 2021); the definition is applied as "
    "written."
)
for _d, _D, _base, _c17, _c18 in (
    ("fwd", "Fwd", S.I_FWD_BULK0, "Fwd", "Fwd"),
    ("bwd", "Bwd", S.I_BWD_BULK0, "Bwd", "Bwd"),
):
    _add(
        f"{_d}_bytes_per_bulk",
        "bytes",
        f"{_d} bulk payload bytes / {_d} bulks ({_BULK_DEF})",
        _bulk(_base, S.BULK_BYTES, S.BULK_COUNT),
        f"{_D} Bytes/Bulk Avg",
        f"{_c17} Avg Bytes/Bulk",
        f"{_c18} Byts/b Avg",
        _BULK_DEV,
    )
    _add(
        f"{_d}_packets_per_bulk",
        "packets",
        f"{_d} bulk packets / {_d} bulks",
        _bulk(_base, S.BULK_PKTS, S.BULK_COUNT),
        f"{_D} Packet/Bulk Avg",
        f"{_c17} Avg Packets/Bulk",
        f"{_c18} Pkts/b Avg",
        _BULK_DEV,
    )
    _add(
        f"{_d}_bulk_rate",
        "bytes/s",
        f"{_d} bulk bytes / total {_d} bulk duration",
        _bulk(_base, S.BULK_BYTES, S.BULK_DURATION, 1e-9),
        f"{_D} Bulk Rate Avg",
        f"{_c17} Avg Bulk Rate",
        f"{_c18} Blk Rate Avg",
        _BULK_DEV,
    )

# -------------------------------------------------------------------- subflows
_SUB_DEV = (
    "Subflows = 1 + number of gaps > 1 s between consecutive packets; CICFlowMeter starts its "
    "counter at −1 and so reports 0 or inflated values for short flows."
)
_add(
    "subflow_fwd_packets",
    "packets",
    "fwd_packets / subflows",
    lambda v: _div(v.i(S.I_FWD_PKTS), v.subflows()),
    "Subflow Fwd Packets",
    "Subflow Fwd Packets",
    "Subflow Fwd Pkts",
    _SUB_DEV,
)
_add(
    "subflow_fwd_bytes",
    "bytes",
    "fwd_bytes / subflows",
    lambda v: _div(v.i(S.I_FWD_BYTES), v.subflows()),
    "Subflow Fwd Bytes",
    "Subflow Fwd Bytes",
    "Subflow Fwd Byts",
    _SUB_DEV,
)
_add(
    "subflow_bwd_packets",
    "packets",
    "bwd_packets / subflows",
    lambda v: _div(v.i(S.I_BWD_PKTS), v.subflows()),
    "Subflow Bwd Packets",
    "Subflow Bwd Packets",
    "Subflow Bwd Pkts",
    _SUB_DEV,
)
_add(
    "subflow_bwd_bytes",
    "bytes",
    "bwd_bytes / subflows",
    lambda v: _div(v.i(S.I_BWD_BYTES), v.subflows()),
    "Subflow Bwd Bytes",
    "Subflow Bwd Bytes",
    "Subflow Bwd Byts",
    _SUB_DEV,
)

# -------------------------------------------------------------------- TCP details
_WIN_DEV = "−1 when the direction sent no TCP packet (CIC-IDS2017 convention; the fork uses 0)."
_add(
    "fwd_init_win_bytes",
    "bytes",
    "TCP window field of the first forward packet",
    lambda v: v.i(S.I_FWD_INIT_WIN),
    "FWD Init Win Bytes",
    "Init_Win_bytes_forward",
    "Init Fwd Win Byts",
    _WIN_DEV,
)
_add(
    "bwd_init_win_bytes",
    "bytes",
    "TCP window field of the first backward packet",
    lambda v: v.i(S.I_BWD_INIT_WIN),
    "Bwd Init Win Bytes",
    "Init_Win_bytes_backward",
    "Init Bwd Win Byts",
    _WIN_DEV,
)
_add(
    "fwd_act_data_packets",
    "packets",
    "forward packets with ≥ 1 byte of payload",
    lambda v: v.i(S.I_FWD_ACT_DATA),
    "Fwd Act Data Pkts",
    "act_data_pkt_fwd",
    "Fwd Act Data Pkts",
    _ICMP_LEN,
)
_add(
    "bwd_act_data_packets",
    "packets",
    "backward packets with ≥ 1 byte of payload",
    lambda v: v.i(S.I_BWD_ACT_DATA),
    "Bwd Act Data Pkts",
    None,
    None,
    _ICMP_LEN,
)
_add(
    "fwd_seg_size_min",
    "bytes",
    "smallest forward transport header length",
    lambda v: np.maximum(v.i(S.I_FWD_HDR_MIN), 0.0),
    "Fwd Seg Size Min",
    "min_seg_size_forward",
    "Fwd Seg Size Min",
    _HDR_DEV,
)
_add(
    "bwd_seg_size_min",
    "bytes",
    "smallest backward transport header length",
    lambda v: np.maximum(v.i(S.I_BWD_HDR_MIN), 0.0),
    "Bwd Seg Size Min",
    None,
    None,
    "The corrected CICFlowMeter fork writes 0 in every row (a bug: seen in all rows of the "
    "parity captures, TCP flows with backward packets included); flowscope reports the "
    "value. ICMP's 8-byte header counts, as for fwd_seg_size_min.",
)

# -------------------------------------------------------------------- active / idle
_ACT_DEF = "a new active period starts after a gap > 5 s (the activity timeout)"
_ACT_DEV = (
    "The last active period is recorded when the flow ends, so a flow that is active for its "
    "whole life has Active = its duration (CICFlowMeter reports 0 for it)."
)
for _what, _base, _text in (
    ("active", S.F_ACTIVE, "active period"),
    ("idle", S.F_IDLE, "idle gap"),
):
    _W = _what.capitalize()
    _add(
        f"{_what}_mean",
        "µs",
        f"mean {_text} length ({_ACT_DEF})",
        _stat("mean", _base),
        f"{_W} Mean",
        f"{_W} Mean",
        f"{_W} Mean",
        _ACT_DEV,
    )
    _add(
        f"{_what}_std",
        "µs",
        f"sample standard deviation of {_text} lengths",
        _stat("std", _base),
        f"{_W} Std",
        f"{_W} Std",
        f"{_W} Std",
        _ACT_DEV,
    )
    _add(
        f"{_what}_max",
        "µs",
        f"longest {_text}",
        _stat("max", _base),
        f"{_W} Max",
        f"{_W} Max",
        f"{_W} Max",
        _ACT_DEV,
    )
    _add(
        f"{_what}_min",
        "µs",
        f"shortest {_text}",
        _stat("min", _base),
        f"{_W} Min",
        f"{_W} Min",
        f"{_W} Min",
        _ACT_DEV,
    )

# -------------------------------------------------------------------- corrected-fork extras
_add(
    "icmp_code",
    "code",
    "ICMP/ICMPv6 code of the flow's first ICMP packet, −1 otherwise",
    lambda v: v.i(S.I_ICMP_CODE),
    "ICMP Code",
    None,
    None,
)
_add(
    "icmp_type",
    "type",
    "ICMP/ICMPv6 type of the flow's first ICMP packet, −1 otherwise",
    lambda v: v.i(S.I_ICMP_TYPE),
    "ICMP Type",
    None,
    None,
)
_RETX = (
    "a TCP data segment whose end (seq + payload) is not beyond the highest end already seen "
    "in that direction"
)
_add(
    "fwd_tcp_retrans",
    "packets",
    f"forward retransmissions: {_RETX}",
    lambda v: v.i(S.I_FWD_RETX),
    "Fwd TCP Retrans. Count",
    None,
    None,
)
_add(
    "bwd_tcp_retrans",
    "packets",
    "backward retransmissions",
    lambda v: v.i(S.I_BWD_RETX),
    "Bwd TCP Retrans. Count",
    None,
    None,
)
_add(
    "tcp_retrans",
    "packets",
    "retransmissions in both directions",
    lambda v: v.i(S.I_FWD_RETX) + v.i(S.I_BWD_RETX),
    "Total TCP Retrans. Count",
    None,
    None,
)
_add(
    "connection_time",
    "µs",
    "time from the first packet of the connection (before any "
    "active-timeout split) to this flow's last packet",
    lambda v: v.span_us(S.I_CONN_START, S.I_LAST_TS),
    "Total Connection Flow Time",
    None,
    None,
    "Defined for every protocol; the corrected fork writes 0 for ICMP flows.",
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}

# ------------------------------------------------------------------ identifiers
# Columns that identify a flow rather than describe it; never model inputs.


@dataclass(frozen=True, slots=True)
class Identifier:
    name: str
    unit: str
    definition: str
    cic: str | None
    ids2017: str | None
    ids2018: str | None


IDENTIFIERS: list[Identifier] = [
    Identifier(
        "flow_id",
        "text",
        "src_ip-dst_ip-src_port-dst_port-protocol",
        "Flow ID",
        "Flow ID",
        "Flow ID",
    ),
    Identifier(
        "src_ip",
        "address",
        "forward-direction source (the first packet's sender)",
        "Src IP",
        "Source IP",
        "Src IP",
    ),
    Identifier(
        "src_port",
        "port",
        "source port (0 for protocols without ports)",
        "Src Port",
        "Source Port",
        "Src Port",
    ),
    Identifier(
        "dst_ip", "address", "forward-direction destination", "Dst IP", "Destination IP", "Dst IP"
    ),
    Identifier("dst_port", "port", "destination port", "Dst Port", "Destination Port", "Dst Port"),
    Identifier("protocol", "number", "IP protocol number", "Protocol", "Protocol", "Protocol"),
    Identifier(
        "timestamp",
        "text",
        "first packet time, UTC, 'YYYY-MM-DD HH:MM:SS.ffffff'",
        "Timestamp",
        "Timestamp",
        "Timestamp",
    ),
    Identifier("first_seen", "ns", "first packet time, ns since the Unix epoch", None, None, None),
    Identifier("last_seen", "ns", "last packet time, ns since the Unix epoch", None, None, None),
    Identifier(
        "end_reason",
        "text",
        "why the flow ended: idle, active, fin, rst, evicted, eof; running for a snapshot "
        "of an open flow (the sensor's early verdicts)",
        None,
        None,
        None,
    ),
    Identifier("ip_version", "number", "4 or 6", None, None, None),
    Identifier("vlan_id", "number", "outer 802.1Q VLAN id, 0 if untagged", None, None, None),
]

# Counters kept beside the CIC features: useful for checks and dashboards, not model inputs.
EXTRAS: list[Feature] = [
    Feature(
        "fwd_ip_bytes",
        "bytes",
        "forward IP bytes (headers + payload)",
        lambda v: v.i(S.I_FWD_IP_BYTES),
        None,
        None,
        None,
    ),
    Feature(
        "bwd_ip_bytes",
        "bytes",
        "backward IP bytes (headers + payload)",
        lambda v: v.i(S.I_BWD_IP_BYTES),
        None,
        None,
        None,
    ),
    Feature(
        "fwd_wire_bytes",
        "bytes",
        "forward frame bytes on the wire (link layer included)",
        lambda v: v.i(S.I_FWD_WIRE_BYTES),
        None,
        None,
        None,
    ),
    Feature(
        "bwd_wire_bytes",
        "bytes",
        "backward frame bytes on the wire",
        lambda v: v.i(S.I_BWD_WIRE_BYTES),
        None,
        None,
        None,
    ),
    Feature(
        "fragments",
        "packets",
        "non-first IP fragments attributed to the flow",
        lambda v: v.i(S.I_FRAGMENTS),
        None,
        None,
        None,
    ),
    Feature(
        "fwd_tcp_flags",
        "bitmask",
        "OR of all forward TCP flags",
        lambda v: v.i(S.I_FWD_FLAGS_OR),
        None,
        None,
        None,
    ),
    Feature(
        "bwd_tcp_flags",
        "bitmask",
        "OR of all backward TCP flags",
        lambda v: v.i(S.I_BWD_FLAGS_OR),
        None,
        None,
        None,
    ),
    Feature(
        "fwd_ttl_min",
        "hops",
        "smallest forward IP TTL / hop limit",
        lambda v: np.where(v.i(S.I_FWD_PKTS) > 0, v.i(S.I_FWD_TTL_MIN), 0.0),
        None,
        None,
        None,
    ),
    Feature(
        "bwd_ttl_min",
        "hops",
        "smallest backward IP TTL / hop limit",
        lambda v: np.where(v.i(S.I_BWD_PKTS) > 0, v.i(S.I_BWD_TTL_MIN), 0.0),
        None,
        None,
        None,
    ),
]

DIALECTS = ("flowscope", "cic", "cic-ids2017", "cse-cic-ids2018")


def column_name(name: str, dialect: str) -> str | None:
    """Name of a canonical column in a header dialect, None if the dialect lacks it."""
    if dialect == "flowscope":
        return name
    item: Feature | Identifier | None = BY_NAME.get(name)
    if item is None:
        item = next((x for x in IDENTIFIERS if x.name == name), None)
    if item is None:
        return None
    if dialect == "cic":
        return item.cic
    if dialect == "cic-ids2017":
        return item.ids2017
    if dialect == "cse-cic-ids2018":
        return item.ids2018
    raise ValueError(f"unknown dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")


def dialect_columns(dialect: str) -> list[tuple[str, str]]:
    """(canonical, dialect name) pairs in the dialect's column order."""
    names = [x.name for x in IDENTIFIERS] + list(FEATURE_NAMES) + [x.name for x in EXTRAS]
    pairs = []
    for n in names:
        c = column_name(n, dialect)
        if c is not None:
            pairs.append((n, c))
    return pairs


def render_markdown() -> str:
    """docs/features.md, generated so it cannot drift from the code."""
    from flowscope.flows.docs import render

    return render()


if __name__ == "__main__":
    print(render_markdown(), end="")
