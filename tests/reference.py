"""Load other tools' flow outputs and pair their flows with flowscope's.

Used by the parity tests (``test_parity.py``, ``test_ndpi_counts.py``). Readers:

- :func:`load_cic_csv`: CICFlowMeter CSVs in any header dialect (the corrected fork
  "cic", the CIC-IDS2017 CSVs, the CSE-CIC-IDS2018 CSVs, CICFlowMeter v4), with
  column names mapped to flowscope's canonical names through the feature registry.
- :func:`load_nfstream_csv`: NFStream's CSV (ms units, IP-level bytes).
- :func:`load_ndpi_out`: the per-flow lines of nDPI's ``ndpiReader`` output.

:func:`flowscope_flows` runs flowscope on a capture; :func:`match_flows` pairs
reference flows with ours by 5-tuple (either orientation) and nearest start time.

The data root is ``$FLOWSCOPE_SHARED_DATA``, by default ``../shared/data`` beside the
repository; :func:`data_file` skips the calling test when a file is absent.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import ipaddress
import math
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from flowscope.flows.registry import DIALECTS, EXTRAS, FEATURES, IDENTIFIERS, column_name

DATA_ROOT = Path(
    os.environ.get("FLOWSCOPE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)

NS = 1_000_000_000


def data_file(*parts: str) -> Path:
    """Path of a reference file under DATA_ROOT; skips the test when it is absent."""
    path = DATA_ROOT.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"reference data {path} not found (set FLOWSCOPE_SHARED_DATA to the shared data "
            "folder; it is not shipped with the repository)"
        )
    return path


def data_available(*parts: str) -> bool:
    return DATA_ROOT.joinpath(*parts).exists()


# ----------------------------------------------------------------------------- values


def parse_number(text: str) -> float:
    """A CSV cell as a float: 'Infinity', 'NaN', '' (→ NaN), '80.0', '1.68E+07'."""
    s = text.strip()
    if s == "":
        return math.nan
    low = s.lower()
    if low in ("infinity", "+infinity", "inf", "+inf"):
        return math.inf
    if low in ("-infinity", "-inf"):
        return -math.inf
    if low == "nan":
        return math.nan
    return float(s)


_ROUNDED_CELL = re.compile(r"-?\d\.\d{0,4}[eE][+-]?\d+")


def printed_resolution(text: str) -> float:
    """Half a unit in the last printed digit of a number ('1.68E+07' → 5e4, '20' → 0.5)."""
    s = text.strip()
    m = re.fullmatch(r"[+-]?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?", s)
    if not m:
        return 0.0
    decimals = len(m.group(2) or "")
    exponent = int(m.group(3) or 0)
    return 0.5 * 10.0 ** (exponent - decimals)


def normalise_ip(text: str) -> str:
    """Canonical text of an address (compressed IPv6, no brackets)."""
    t = text.strip().strip("[]")
    try:
        return str(ipaddress.ip_address(t))
    except ValueError:
        return t


# ----------------------------------------------------------------------------- flows


@dataclass
class RefFlow:
    """One flow of a reference tool, in flowscope's vocabulary.

    ``values`` holds canonical feature names (plus the extras fwd/bwd_ip_bytes etc.
    where the tool has them); ``tolerance`` the printing precision of a value when
    the file rounded it (e.g. Excel-saved CSVs); ``raw`` the row as read.
    """

    source: str  # file name
    row: int  # position in the file, from 0
    protocol: int
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    first_seen: int | None  # ns since the epoch, None if unknown
    ts_resolution: int  # ns: how precisely first_seen is known
    values: dict[str, float] = field(default_factory=dict)
    tolerance: dict[str, float] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[int, tuple[str, int], tuple[str, int]]:
        return flow_key(self.protocol, self.src_ip, self.src_port, self.dst_ip, self.dst_port)

    def label(self) -> str:
        return (
            f"{self.source}#{self.row} proto {self.protocol} "
            f"{endpoint(self.src_ip, self.src_port)} -> {endpoint(self.dst_ip, self.dst_port)}"
        )


def endpoint(ip: str, port: int) -> str:
    """'1.2.3.4:80' or '[2001:db8::1]:443'."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def flow_key(
    proto: int, a_ip: str, a_port: int, b_ip: str, b_port: int
) -> tuple[int, tuple[str, int], tuple[str, int]]:
    """Direction-free 5-tuple key."""
    a = (normalise_ip(a_ip), int(a_port))
    b = (normalise_ip(b_ip), int(b_port))
    return (int(proto), *sorted((a, b)))  # type: ignore[return-value]


# ----------------------------------------------------------------------------- CIC CSVs


def _cic_header_map() -> dict[str, str]:
    """Column name (any dialect) → canonical name. Raises if dialects disagree."""
    names = [x.name for x in IDENTIFIERS] + [f.name for f in FEATURES]
    out: dict[str, str] = {}
    for dialect in DIALECTS:
        if dialect == "flowscope":
            continue
        for n in names:
            col = column_name(n, dialect)
            if col is None:
                continue
            if out.get(col, n) != n:
                raise AssertionError(f"column {col!r} means {out[col]} and {n}")
            out[col] = n
    # CICFlowMeter v4 spellings not in the registry's three dialects.
    out.setdefault("CWR Flag Count", "cwr_flag_count")
    out.setdefault("CWE Flag Count", "cwr_flag_count")
    return out


CIC_HEADER_MAP: dict[str, str] = _cic_header_map()
# CIC-IDS2017's CSVs repeat "Fwd Header Length"; the second copy is kept in RefFlow.raw
# as "Fwd Header Length.1" (pandas' name for it) and not mapped.

_TS_FORMATS = (
    "%Y-%m-%d %H:%M:%S.%f",  # corrected fork, RustiFlow (after stripping " UTC")
    "%Y-%m-%d %H:%M:%S",
    "%d/%m/%Y %I:%M:%S %p",  # CICFlowMeter v4 (12-hour clock)
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",  # CIC-IDS2017 CSVs: minutes only
)


def parse_cic_timestamp(text: str, utc_offset_s: float = 0.0) -> tuple[int, int]:
    """(ns since the epoch in UTC, resolution in ns) of a CIC Timestamp cell.

    ``utc_offset_s`` is the offset of the clock the tool printed in (e.g. −3 h for the
    CIC-IDS2017 CSVs, written in New Brunswick summer time). Beware: some CIC-IDS2017
    files write afternoon times on a 12-hour clock without AM/PM ('3:30' for 15:30).
    """
    s = text.strip()
    if s.endswith(" UTC"):
        s = s[:-4]
    for fmt in _TS_FORMATS:
        try:
            t = dt.datetime.strptime(s, fmt)
        except ValueError:
            continue
        t = t.replace(tzinfo=dt.UTC) - dt.timedelta(seconds=utc_offset_s)
        if "%f" in fmt:
            res = 1000
        elif "%S" in fmt:
            res = NS
        else:
            res = 60 * NS
        return _epoch_ns(t), res
    raise ValueError(f"unrecognised CIC timestamp {text!r}")


def _epoch_ns(t: dt.datetime) -> int:
    delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1000


def load_cic_csv(path: str | os.PathLike[str], utc_offset_s: float = 0.0) -> list[RefFlow]:
    """Rows of a CICFlowMeter CSV in any header dialect, keyed by canonical names.

    Header cells are stripped (CIC-IDS2017 has ' Source IP'); ports and protocol may be
    floats ('80.0'); 'Infinity'/'NaN' become floats. If the file was rounded on the way
    (an Excel round trip prints '1.68E+07'), each value's printing precision is kept in
    ``RefFlow.tolerance`` so comparisons allow for it.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    header = [h.strip() for h in rows[0]]
    seen: set[str] = set()
    columns: list[str | None] = []
    for h in header:
        name = h
        if h in seen:  # a repeated header, as pandas would name it
            name = f"{h}.1"
        seen.add(h)
        columns.append(name)
    body = [r for r in rows[1:] if any(c.strip() for c in r)]
    rounded = any(_ROUNDED_CELL.fullmatch(c.strip()) for r in body for c in r)
    out: list[RefFlow] = []
    for i, r in enumerate(body):
        raw = {c: v for c, v in zip(columns, r, strict=False) if c is not None}
        ids: dict[str, str] = {}
        values: dict[str, float] = {}
        tolerance: dict[str, float] = {}
        for col, text in raw.items():
            canon = CIC_HEADER_MAP.get(col)
            if canon is None:
                continue
            if canon in _ID_NAMES:
                ids[canon] = text.strip()
                continue
            try:
                values[canon] = parse_number(text)
            except ValueError:
                continue
            if rounded:
                tolerance[canon] = printed_resolution(text)
        first_seen, res = parse_cic_timestamp(ids["timestamp"], utc_offset_s)
        out.append(
            RefFlow(
                source=path.name,
                row=i,
                protocol=int(float(ids["protocol"])),
                src_ip=normalise_ip(ids["src_ip"]),
                src_port=int(float(ids["src_port"])),
                dst_ip=normalise_ip(ids["dst_ip"]),
                dst_port=int(float(ids["dst_port"])),
                first_seen=first_seen,
                ts_resolution=res,
                values=values,
                tolerance=tolerance,
                raw=raw,
            )
        )
    return out


_ID_NAMES = frozenset(x.name for x in IDENTIFIERS)


# ----------------------------------------------------------------------------- NFStream

# NFStream column → (canonical or extra name, scale to flowscope's unit)
NFSTREAM_COLUMNS: dict[str, tuple[str, float]] = {
    "src2dst_packets": ("fwd_packets", 1.0),
    "dst2src_packets": ("bwd_packets", 1.0),
    "src2dst_bytes": ("fwd_ip_bytes", 1.0),  # NFStream counts IP packet lengths
    "dst2src_bytes": ("bwd_ip_bytes", 1.0),
    "bidirectional_duration_ms": ("flow_duration", 1000.0),
    "src2dst_syn_packets": ("fwd_syn", 1.0),
    "bidirectional_syn_packets": ("syn_flag_count", 1.0),
    "bidirectional_fin_packets": ("fin_flag_count", 1.0),
    "bidirectional_rst_packets": ("rst_flag_count", 1.0),
    "bidirectional_ack_packets": ("ack_flag_count", 1.0),
    "bidirectional_psh_packets": ("psh_flag_count", 1.0),
    "bidirectional_urg_packets": ("urg_flag_count", 1.0),
    "bidirectional_ece_packets": ("ece_flag_count", 1.0),
    "bidirectional_cwr_packets": ("cwr_flag_count", 1.0),
}


def load_nfstream_csv(path: str | os.PathLike[str]) -> list[RefFlow]:
    """NFStream flows: packets and IP bytes per direction, duration (ms → µs), flags."""
    path = Path(path)
    out: list[RefFlow] = []
    with path.open(newline="") as fh:
        for i, r in enumerate(csv.DictReader(fh)):
            values = {
                name: parse_number(r[col]) * scale
                for col, (name, scale) in NFSTREAM_COLUMNS.items()
                if col in r
            }
            out.append(
                RefFlow(
                    source=path.name,
                    row=i,
                    protocol=int(r["protocol"]),
                    src_ip=normalise_ip(r["src_ip"]),
                    src_port=int(r["src_port"]),
                    dst_ip=normalise_ip(r["dst_ip"]),
                    dst_port=int(r["dst_port"]),
                    first_seen=int(r["bidirectional_first_seen_ms"]) * 1_000_000,
                    ts_resolution=1_000_000,
                    values=values,
                    raw=dict(r),
                )
            )
    return out


# ----------------------------------------------------------------------------- nDPI

IP_PROTOCOLS = {
    "ICMP": 1,
    "IGMP": 2,
    "TCP": 6,
    "UDP": 17,
    "GRE": 47,
    "ESP": 50,
    "AH": 51,
    "ICMPV6": 58,
    "PIM": 103,
    "SCTP": 132,
}

_NDPI_LINE = re.compile(
    r"^\t(?P<n>\d+)\t(?P<proto>[A-Za-z0-9]+) (?P<a>\S+) (?P<arrow><->|->) (?P<b>\S+) "
    r"\[(?P<rest>.*)$"
)
_NDPI_COUNTS = re.compile(
    r"\[(?P<pa>\d+) pkts/(?P<ba>\d+) bytes (?:<->|->) (?P<pb>\d+) pkts/(?P<bb>\d+) bytes\]"
)
_NDPI_VLAN = re.compile(r"\[VLAN: (\d+)\]")


@dataclass(frozen=True)
class NdpiFlow:
    """One flow line of ndpiReader: endpoint a is the side nDPI calls the client."""

    source: str
    index: int  # nDPI's flow number
    proto_name: str
    protocol: int  # IP protocol number, -1 if nDPI printed an unknown name
    a_ip: str
    a_port: int
    b_ip: str
    b_port: int
    bidirectional: bool  # '<->' (both directions seen) or '->'
    a_packets: int  # a → b
    a_bytes: int
    b_packets: int  # b → a
    b_bytes: int
    detail: str  # the rest of the line (application protocol, risks, ...)

    @property
    def key(self) -> tuple[int, tuple[str, int], tuple[str, int]]:
        return ndpi_key(self.protocol, self.a_ip, self.a_port, self.b_ip, self.b_port)

    def label(self) -> str:
        return (
            f"{self.source} #{self.index} {self.proto_name} {endpoint(self.a_ip, self.a_port)}"
            f" <-> {endpoint(self.b_ip, self.b_port)} [{self.a_packets} pkts/{self.a_bytes} B"
            f" <-> {self.b_packets} pkts/{self.b_bytes} B]"
        )


def repair_ndpi_ipv6(text: str) -> str:
    """nDPI prints some IPv6 addresses with two '::' (2600:1901:0:7a0b:: as
    '2600:1901::7a0b::'): read every '::' but the last as one zero group."""
    if text.count("::") < 2:
        return text
    head, _, tail = text.rpartition("::")
    return f"{head.replace('::', ':0:')}::{tail}"


def ndpi_key(
    proto: int, a_ip: str, a_port: int, b_ip: str, b_port: int
) -> tuple[int, tuple[str, int], tuple[str, int]]:
    """5-tuple key as nDPI sees it: ports only for TCP and UDP (it prints 0 for SCTP)."""
    if proto not in (6, 17):
        a_port = b_port = 0
    return flow_key(proto, a_ip, a_port, b_ip, b_port)


def _split_endpoint(text: str) -> tuple[str, int]:
    """'1.2.3.4:80', '[fe80::1]:546' or '1.2.3.4' (no port) → (address, port)."""
    if text.startswith("["):
        addr, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and rest[1:] else 0
        return normalise_ip(repair_ndpi_ipv6(addr)), port
    if text.count(":") == 1:
        addr, _, port = text.partition(":")
        return normalise_ip(addr), int(port or 0)
    return normalise_ip(text), 0


def parse_ndpi_line(line: str, source: str = "") -> NdpiFlow | None:
    """One ``\\t<n>\\t<PROTO> a:port <-> b:port [...]`` line, None for other lines."""
    m = _NDPI_LINE.match(line.rstrip("\n"))
    if not m:
        return None
    counts = _NDPI_COUNTS.search(line)
    if not counts:
        return None
    name = m.group("proto").upper()
    proto = IP_PROTOCOLS.get(name, int(name) if name.isdigit() else -1)
    a_ip, a_port = _split_endpoint(m.group("a"))
    b_ip, b_port = _split_endpoint(m.group("b"))
    return NdpiFlow(
        source=source,
        index=int(m.group("n")),
        proto_name=name,
        protocol=proto,
        a_ip=a_ip,
        a_port=a_port,
        b_ip=b_ip,
        b_port=b_port,
        bidirectional=m.group("arrow") == "<->",
        a_packets=int(counts.group("pa")),
        a_bytes=int(counts.group("ba")),
        b_packets=int(counts.group("pb")),
        b_bytes=int(counts.group("bb")),
        detail=m.group("rest"),
    )


def load_ndpi_out(path: str | os.PathLike[str]) -> list[NdpiFlow]:
    """Every per-flow line of an ndpiReader ``.out`` file."""
    path = Path(path)
    flows = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            f = parse_ndpi_line(line, path.name)
            if f is not None:
                flows.append(f)
    return flows


# ----------------------------------------------------------------------------- flowscope


@dataclass
class OurFlow:
    """A flowscope flow as a plain dict of its table row."""

    row: int
    data: dict[str, Any]

    @property
    def key(self) -> tuple[int, tuple[str, int], tuple[str, int]]:
        d = self.data
        return flow_key(d["protocol"], d["src_ip"], d["src_port"], d["dst_ip"], d["dst_port"])

    @property
    def ndpi_key(self) -> tuple[int, tuple[str, int], tuple[str, int]]:
        d = self.data
        return ndpi_key(d["protocol"], d["src_ip"], d["src_port"], d["dst_ip"], d["dst_port"])

    @property
    def first_seen(self) -> int:
        return int(self.data["first_seen"])

    def __getitem__(self, name: str) -> Any:
        return self.data[name]

    def label(self) -> str:
        d = self.data
        return (
            f"ours#{self.row} proto {d['protocol']} {endpoint(d['src_ip'], d['src_port'])} -> "
            f"{endpoint(d['dst_ip'], d['dst_port'])} ({d['fwd_packets']:.0f}/"
            f"{d['bwd_packets']:.0f} "
            f"pkts, end {d['end_reason']})"
        )


FEATURE_NAMES = tuple(f.name for f in FEATURES)
EXTRA_NAMES = tuple(f.name for f in EXTRAS)


@functools.cache
def _extract(path: str) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
    import pyarrow as pa

    from flowscope.flows.extract import ExtractSummary, extract_capture
    from flowscope.flows.meter import MeterConfig

    summary = ExtractSummary()
    tables = list(extract_capture(path, MeterConfig(), summary))
    rows: list[dict[str, Any]] = []
    if tables:
        rows = pa.concat_tables(tables).to_pylist()
    info = {
        "packets_read": summary.packets_read,
        "packets_in_flows": summary.packets_in_flows,
        "skipped": dict(summary.skipped),
        "flows": summary.flows,
    }
    return tuple(rows), info


def flowscope_flows(path: str | os.PathLike[str]) -> list[OurFlow]:
    """flowscope's flows of a capture with the default MeterConfig (cached per path)."""
    rows, _ = _extract(os.fspath(path))
    return [OurFlow(i, dict(r)) for i, r in enumerate(rows)]


def flowscope_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Packets read / metered / skipped (by reason) for a capture."""
    _, info = _extract(os.fspath(path))
    return info


# ----------------------------------------------------------------------------- matching


@dataclass
class Pair:
    ref: Any  # RefFlow or NdpiFlow
    ours: OurFlow
    swapped: bool  # the reference's source is our destination
    dt_ns: int | None  # our first_seen − the reference's (None when it has no time)


@dataclass
class Matching:
    pairs: list[Pair]
    unmatched_ref: list[Any]
    unmatched_ours: list[OurFlow]

    def summary(self) -> str:
        return (
            f"{len(self.pairs)} matched, {len(self.unmatched_ref)} reference-only, "
            f"{len(self.unmatched_ours)} flowscope-only"
        )


def _ref_src(ref: Any) -> tuple[str, int]:
    if isinstance(ref, NdpiFlow):
        return ref.a_ip, ref.a_port
    return ref.src_ip, ref.src_port


def match_flows(
    refs: Sequence[Any],
    ours: Sequence[OurFlow],
    time_tolerance_ns: int | None = None,
    time_offset_ns: int = 0,
) -> Matching:
    """Pair reference flows with ours: same 5-tuple in either orientation, nearest start.

    Several flows can share a 5-tuple (port reuse, timeouts, a tool that splits a
    connection). Within a 5-tuple, candidate pairs whose start times differ by at most
    ``time_tolerance_ns`` (default: the reference's timestamp resolution + 1 ms) are
    taken greedily, closest first; ties (coarse timestamps) go in time/file order.
    References without a time (nDPI) are paired in order with ours sorted by start.
    ``time_offset_ns`` is added to reference times first (clock/time-zone offsets).
    """
    by_key: dict[Any, list[OurFlow]] = defaultdict(list)
    for o in ours:
        by_key[o.key].append(o)
    ref_by_key: dict[Any, list[Any]] = defaultdict(list)
    for r in refs:
        ref_by_key[r.key].append(r)
    pairs: list[Pair] = []
    unmatched_ref: list[Any] = []
    used: set[int] = set()
    for key, rs in ref_by_key.items():
        cands = sorted(by_key.get(key, []), key=lambda o: (o.first_seen, o.row))
        scored: list[tuple[float, int, int, Any, OurFlow, int | None]] = []
        for ri, r in enumerate(rs):
            t = getattr(r, "first_seen", None)
            for oi, o in enumerate(cands):
                if t is None:
                    scored.append((abs(ri - oi), ri, oi, r, o, None))
                    continue
                d = o.first_seen - (t + time_offset_ns)
                tol = time_tolerance_ns
                if tol is None:
                    tol = r.ts_resolution + 1_000_000
                if -tol <= d <= tol:
                    # minute-resolution stamps: d is only known to within the resolution
                    err = max(0, abs(d) - (r.ts_resolution if r.ts_resolution > 1000 else 0))
                    scored.append((err, ri, oi, r, o, d))
        scored.sort(key=lambda x: (x[0], x[1], x[2]))
        taken_r: set[int] = set()
        for _, ri, _oi, r, o, d in scored:
            if ri in taken_r or o.row in used:
                continue
            taken_r.add(ri)
            used.add(o.row)
            src = _ref_src(r)
            swapped = (normalise_ip(o["src_ip"]), int(o["src_port"])) != src
            pairs.append(Pair(r, o, swapped, d))
        unmatched_ref.extend(r for ri, r in enumerate(rs) if ri not in taken_r)
    unmatched_ours = [o for o in ours if o.row not in used]
    pairs.sort(key=lambda p: p.ours.row)
    return Matching(pairs, unmatched_ref, unmatched_ours)


# ----------------------------------------------------------------------------- comparison


@dataclass
class FeatureStats:
    """Agreement of one feature over matched flows."""

    name: str
    compared: int = 0
    mismatches: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    examples: list[tuple[str, float, float]] = field(default_factory=list)  # (flow, ours, ref)

    def add(self, flow: str, ours: float, ref: float, ok: bool) -> None:
        self.compared += 1
        if math.isfinite(ours) and math.isfinite(ref):
            d = abs(ours - ref)
            self.max_abs = max(self.max_abs, d)
            if ref != 0:
                self.max_rel = max(self.max_rel, d / abs(ref))
            elif d:
                self.max_rel = math.inf
        elif not (ours == ref or (math.isnan(ours) and math.isnan(ref))):
            self.max_abs = math.inf
            self.max_rel = math.inf
        if not ok:
            self.mismatches += 1
            if len(self.examples) < 3:
                self.examples.append((flow, ours, ref))


def close(ours: float, ref: float, rel: float, abs_tol: float) -> bool:
    if math.isnan(ours) or math.isnan(ref):
        return math.isnan(ours) and math.isnan(ref)
    if math.isinf(ours) or math.isinf(ref):
        return ours == ref
    return abs(ours - ref) <= max(abs_tol, rel * max(abs(ours), abs(ref)))


def format_table(
    stats: Iterable[FeatureStats], notes: dict[str, str] | None = None, width: int = 100
) -> str:
    """Feature → compared / mismatches / max abs / max rel diff / examples."""
    notes = notes or {}
    lines = [
        f"{'feature':<24} {'n':>5} {'bad':>5} {'max abs':>11} {'max rel':>9}  "
        "example (ours vs ref) / note"
    ]
    for s in stats:
        ex = ""
        if s.examples:
            flow, o, r = s.examples[0]
            ex = f"{_fmt(o)} vs {_fmt(r)} ({flow})"
        note = notes.get(s.name, "")
        if note:
            ex = f"[{note}] {ex}"
        line = (
            f"{s.name:<24} {s.compared:>5} {s.mismatches:>5} {_fmt(s.max_abs):>11} "
            f"{_fmt(s.max_rel):>9}  {ex}"
        )
        lines.append(line if len(line) <= width * 2 else line[: width * 2 - 1] + "…")
    return "\n".join(lines)


def _fmt(x: float) -> str:
    if isinstance(x, float) and (math.isinf(x) or math.isnan(x)):
        return str(x)
    if x == int(x) and abs(x) < 1e12:
        return str(int(x))
    return f"{x:.6g}"


# ----------------------------------------------------------------------------- nDPI comparison

# Tunnels ndpiReader decapsulates (it reports the inner flow); flowscope meters the
# outer packets as they are, so the inner 5-tuple never appears in its output.
TUNNELS: dict[tuple[int, int], str] = {
    (17, 2152): "GTP-U",
    (17, 4789): "VXLAN",
    (17, 5246): "CAPWAP",
    (17, 5247): "CAPWAP",
    (17, 37008): "TZSP",
    (47, 0): "GRE",
    (4, 0): "IP-in-IP",
    (41, 0): "IPv6-in-IP",
}


def tunnel_of(o: OurFlow) -> str | None:
    """Name of the tunnel whose outer packets flow ``o`` carries, None if not a tunnel."""
    p = int(o["protocol"])
    return TUNNELS.get((p, int(o["dst_port"]))) or TUNNELS.get((p, int(o["src_port"])))


@dataclass
class NdpiOutcome:
    """How one nDPI flow compares with flowscope's flows of the same 5-tuple.

    status: "exact" (one flow each, equal packets and bytes per direction), "split"
    (same totals, but flowscope cut the 5-tuple into several flows: ``cause`` lists why
    its non-final flows ended), "differs" (totals differ), "missing" (no flowscope
    flow has the 5-tuple; ``cause`` says e.g. which tunnel nDPI looked into).
    Counts are (packets a→b, packets b→a, bytes a→b, bytes b→a) with a = nDPI's client;
    flowscope bytes are frame bytes (wire_bytes).
    """

    ndpi: NdpiFlow
    ours: list[OurFlow]
    status: str
    cause: str
    ndpi_counts: tuple[int, int, int, int]
    our_counts: tuple[int, int, int, int]
    swapped: bool  # flowscope's forward direction (first packet) is nDPI's b → a


def fwd_is_a(o: OurFlow, a: tuple[str, int]) -> bool:
    """Is flowscope's forward direction nDPI's a → b? (no ports outside TCP/UDP)"""
    if int(o["protocol"]) not in (6, 17):
        return normalise_ip(o["src_ip"]) == a[0]
    return (normalise_ip(o["src_ip"]), int(o["src_port"])) == a


def our_totals(flows: Sequence[OurFlow], a: tuple[str, int], bytes_kind: str) -> list[int]:
    t = [0, 0, 0, 0]
    for o in flows:
        f = (int(o["fwd_packets"]), int(o[f"fwd_{bytes_kind}_bytes"]))
        b = (int(o["bwd_packets"]), int(o[f"bwd_{bytes_kind}_bytes"]))
        if not fwd_is_a(o, a):
            f, b = b, f
        t[0] += f[0]
        t[1] += b[0]
        t[2] += f[1]
        t[3] += b[1]
    return t


def compare_ndpi(
    out_path: str | os.PathLike[str],
    capture: str | os.PathLike[str],
    bytes_kind: str = "wire",
) -> tuple[list[NdpiOutcome], list[OurFlow]]:
    """Compare every nDPI flow of ``out_path`` with flowscope's flows of ``capture``.

    Returns the outcomes and the flowscope flows whose 5-tuple nDPI does not list.
    nDPI has no start times in its output, so flows are compared per 5-tuple: the
    totals of all flows sharing it (nDPI keeps one flow per 5-tuple for a capture).
    """
    nflows = load_ndpi_out(out_path)
    ours = flowscope_flows(capture)
    summary = flowscope_summary(capture)
    by_key: dict[Any, list[OurFlow]] = defaultdict(list)
    for o in ours:
        by_key[o.ndpi_key].append(o)
    n_by_key: dict[Any, list[NdpiFlow]] = defaultdict(list)
    for n in nflows:
        n_by_key[n.key].append(n)
    tunnels = sorted({t for o in ours if (t := tunnel_of(o))})
    outcomes: list[NdpiOutcome] = []
    for key, ns in n_by_key.items():
        mine = sorted(by_key.get(key, []), key=lambda o: (o.first_seen, o.row))
        a = (ns[0].a_ip, ns[0].a_port)
        nt = [0, 0, 0, 0]
        for n in ns:
            same = (n.a_ip, n.a_port) == a
            pa, pb, ba, bb = n.a_packets, n.b_packets, n.a_bytes, n.b_bytes
            if not same:
                pa, pb, ba, bb = pb, pa, bb, ba
            nt = [nt[0] + pa, nt[1] + pb, nt[2] + ba, nt[3] + bb]
        ot = our_totals(mine, a, bytes_kind)
        swapped = bool(mine) and not fwd_is_a(mine[0], a)
        if not mine:
            if tunnels:
                status, cause = "missing", "tunnel: " + "/".join(tunnels)
            elif summary["skipped"].get("unsupported link type"):
                status, cause = "missing", "unsupported link type"
            else:
                status, cause = "missing", "unexplained"
        elif nt == ot:
            if len(ns) == 1 and len(mine) == 1:
                status, cause = "exact", ""
            else:
                # flows finished in output order; the last one ended the 5-tuple
                done = sorted(mine, key=lambda o: o.row)[:-1]
                ends = sorted({str(o["end_reason"]) for o in done})
                status = "split"
                cause = "flowscope ended at " + "+".join(ends) if ends else "nDPI split"
        else:
            status = "differs"
            frags = sum(int(o["fragments"]) for o in mine)
            if nt[:2] == ot[:2]:
                cause = "bytes"
            elif frags and sum(ot[:2]) - sum(nt[:2]) == frags:
                cause = "IP fragments"
            else:
                cause = "packets"
        for n in ns:
            outcomes.append(
                NdpiOutcome(n, mine, status, cause, tuple(nt), tuple(ot), swapped)  # type: ignore[arg-type]
            )
    listed = set(n_by_key)
    extra = [o for o in ours if o.ndpi_key not in listed]
    return outcomes, extra
