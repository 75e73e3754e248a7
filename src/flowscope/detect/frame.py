"""Flow tables → the numeric columns the detectors read, plus per-flow classes.

A :class:`FlowFrame` is a batch of flow records as numpy arrays: hashed addresses,
ports, capture-time stamps, counters and the OR of TCP flags per direction. Every
detector works on whole columns, so a batch costs a handful of vectorised passes no
matter how many flows it holds. Rows carry a ``sign``: +1 for a record as read, −1 for
the retraction of an earlier snapshot of the same flow (see :mod:`.dedupe`), which is
how a flow seen in several snapshots still counts once.

The classes (half-open handshake, failed probe, stealth probe, …) are defined here,
once, so that every rule means the same thing by them. They use only columns that the
flow meter writes for every flow (``docs/features.md``): ``fwd_tcp_flags`` and
``bwd_tcp_flags`` are the OR of all flags a direction sent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.detect.hashing import combine, hash_strings

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
U64 = npt.NDArray[np.uint64]
B = npt.NDArray[np.bool_]

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58
# ICMP messages a host sends unprompted (requests) or that answer nothing it sent
# (an echo reply whose request was not seen): what floods and sweeps are made of.
# Errors (unreachable, time exceeded, …) are excluded: they are a victim's or a
# router's answers, e.g. to a UDP scan, not an attack by their sender.
ICMP_REQUEST_TYPES = (8, 13, 15, 17, 128)
ICMP_UNSOLICITED_TYPES = (0, 8, 13, 15, 17, 128, 129)

REQUIRED_COLUMNS = (
    "src_ip", "dst_ip", "src_port", "dst_port", "protocol", "first_seen", "last_seen",
    "fwd_packets", "bwd_packets", "fwd_bytes", "bwd_bytes", "fwd_tcp_flags", "bwd_tcp_flags",
)  # fmt: skip

# Multicast and limited broadcast: traffic to them is never answered by "the" host,
# so unanswered flows there are not probes of anyone.
_GROUP_ADDRESS = r"^(22[4-9]|23[0-9])\.|^255\.255\.255\.255$|^[fF][fF]"


@dataclass(slots=True)
class FlowFrame:
    """Flow records as numpy columns (one row per record)."""

    src: U64  # hash of the source address text
    dst: U64
    sport: I64
    dport: I64
    proto: I64
    first: I64  # ns, capture time
    last: I64
    fwd_pkts: F64
    bwd_pkts: F64
    fwd_bytes: F64  # transport payload
    bwd_bytes: F64
    fwd_ip_bytes: F64  # IP bytes (headers included): what a flood costs the link
    bwd_ip_bytes: F64
    fwd_flags: I64
    bwd_flags: I64
    icmp_type: I64
    group_dst: B  # destination is multicast/broadcast
    active: B  # snapshot of a running flow
    age: I64  # ns the flow has existed when read (last_seen − first_seen if finished)
    sign: F64  # +1 record, −1 retraction of an earlier snapshot
    pair: I64  # the retraction ↔ newer record partner row in this frame, −1 if none
    row: I64  # index into src_text/dst_text, −1 if the row has no text
    src_text: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    dst_text: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))

    # ------------------------------------------------------------------ building
    @staticmethod
    def numeric_fields() -> list[str]:
        return [f.name for f in dataclasses.fields(FlowFrame) if not f.name.endswith("_text")]

    def __len__(self) -> int:
        return int(self.src.shape[0])

    @classmethod
    def empty(cls) -> FlowFrame:
        z: dict[str, npt.NDArray[Any]] = {
            name: np.zeros(0, dtype=_DTYPES[name]) for name in cls.numeric_fields()
        }
        return cls(**z)

    @classmethod
    def from_table(cls, table: pa.Table, now_ns: int | None = None) -> FlowFrame:
        """Read a flow table (finished flows and/or snapshots with an ``active`` column).

        ``now_ns`` is the capture time the batch was read at (for snapshots: how old a
        running flow is); by default the batch's latest ``last_seen``.
        """
        check_columns(table)
        n = table.num_rows
        have = set(table.schema.names)  # once: column_names is a new list per access

        def num(name: str, dtype: type, default: float | None = None) -> npt.NDArray:
            if name not in have:
                if default is None:
                    raise ValueError(f"flow table lacks column {name}")
                return np.full(n, default, dtype=dtype)
            col = table.column(name)
            if col.null_count:
                col = pc.fill_null(col, default if default is not None else 0)
            return np.asarray(col.to_numpy(), dtype=dtype)

        src_text = _strings(table.column("src_ip"))
        dst_text = _strings(table.column("dst_ip"))
        fwd_pkts = num("fwd_packets", np.float64)
        bwd_pkts = num("bwd_packets", np.float64)
        fwd_bytes = num("fwd_bytes", np.float64)
        bwd_bytes = num("bwd_bytes", np.float64)
        # IP bytes are extras of the meter; estimate them (20-byte IP + 8-byte UDP/ICMP
        # header per packet) for tables written without them.
        fwd_ip = (
            num("fwd_ip_bytes", np.float64)
            if "fwd_ip_bytes" in have
            else fwd_bytes + 28.0 * fwd_pkts
        )
        bwd_ip = (
            num("bwd_ip_bytes", np.float64)
            if "bwd_ip_bytes" in have
            else bwd_bytes + 28.0 * bwd_pkts
        )
        first = num("first_seen", np.int64)
        last = num("last_seen", np.int64)
        active = num("active", np.bool_, False)
        now = int(last.max()) if now_ns is None and n else int(now_ns or 0)
        age = np.where(active, np.maximum(now, last) - first, last - first).astype(np.int64)
        group = np.asarray(
            pc.fill_null(pc.match_substring_regex(dst_text, _GROUP_ADDRESS), False).to_numpy(
                zero_copy_only=False
            ),
            dtype=np.bool_,
        )
        return cls(
            src=hash_strings(src_text),
            dst=hash_strings(dst_text),
            sport=num("src_port", np.int64),
            dport=num("dst_port", np.int64),
            proto=num("protocol", np.int64),
            first=first,
            last=last,
            fwd_pkts=fwd_pkts,
            bwd_pkts=bwd_pkts,
            fwd_bytes=fwd_bytes,
            bwd_bytes=bwd_bytes,
            fwd_ip_bytes=fwd_ip,
            bwd_ip_bytes=bwd_ip,
            fwd_flags=num("fwd_tcp_flags", np.int64),
            bwd_flags=num("bwd_tcp_flags", np.int64),
            icmp_type=num("icmp_type", np.int64, -1),
            group_dst=group,
            active=active,
            age=age,
            sign=np.ones(n, dtype=np.float64),
            pair=np.full(n, -1, dtype=np.int64),
            row=np.arange(n, dtype=np.int64),
            src_text=src_text,
            dst_text=dst_text,
        )

    def take(self, idx: npt.ArrayLike) -> FlowFrame:
        """Rows ``idx`` (the text columns are kept whole: ``row`` indexes them)."""
        i = np.asarray(idx, dtype=np.int64)
        parts = {name: getattr(self, name)[i] for name in self.numeric_fields()}
        return FlowFrame(**parts, src_text=self.src_text, dst_text=self.dst_text)

    def compact(self) -> FlowFrame:
        """The same rows with text columns holding exactly their texts (for storing)."""
        has = self.row >= 0
        rows = self.row[has]
        self.src_text = self.src_text.take(pa.array(rows))
        self.dst_text = self.dst_text.take(pa.array(rows))
        self.row = np.where(has, np.cumsum(has) - 1, -1).astype(np.int64)
        return self

    @staticmethod
    def concat(a: FlowFrame, b: FlowFrame) -> FlowFrame:
        """Rows of ``a`` then rows of ``b``, text columns joined."""
        parts = {
            name: np.concatenate([getattr(a, name), getattr(b, name)])
            for name in FlowFrame.numeric_fields()
        }
        n = len(a.src_text)
        parts["row"] = np.concatenate([a.row, np.where(b.row >= 0, b.row + n, -1)])
        if n == 0:
            src, dst = b.src_text, b.dst_text
        elif len(b.src_text) == 0:
            src, dst = a.src_text, a.dst_text
        else:
            src = pa.concat_arrays([a.src_text, b.src_text])
            dst = pa.concat_arrays([a.dst_text, b.dst_text])
        return FlowFrame(**parts, src_text=src, dst_text=dst)

    # ------------------------------------------------------------------ identity
    def flow_hash(self) -> U64:
        """One flow = its 5-tuple + first_seen: snapshots and the final record share it."""
        return combine(self.src, self.dst, self.sport, self.dport, self.proto, self.first)

    # ------------------------------------------------------------------ classes
    @property
    def tcp(self) -> B:
        return self.proto == TCP

    @property
    def udp(self) -> B:
        return self.proto == UDP

    @property
    def icmp(self) -> B:
        return (self.proto == ICMP) | (self.proto == ICMPV6)

    def fwd(self, flag: int) -> B:
        return (self.fwd_flags & flag) != 0

    def bwd(self, flag: int) -> B:
        return (self.bwd_flags & flag) != 0

    def handshake_done(self) -> B:
        """The initiator's SYN got a SYN-ACK and the initiator acknowledged it."""
        return self.tcp & self.fwd(SYN) & self.bwd(SYN) & self.fwd(ACK)

    def over(self) -> B:
        """The connection is over: a final record, or a TCP snapshot that already saw a
        RST or both FINs. Such a flow only waits out the meter's close grace for stray
        packets, so a rule that counts finished sessions need not wait for it."""
        closed = self.tcp & (self.fwd(RST) | self.bwd(RST) | (self.fwd(FIN) & self.bwd(FIN)))
        return ~self.active | closed

    def half_open(self) -> B:
        """A SYN whose handshake never completed: unanswered, refused (RST), or a
        SYN-ACK the initiator never acknowledged. Spoofed SYN floods, SYN scans and
        hping3-style floods all look like this; a busy server's clients do not."""
        return self.tcp & self.fwd(SYN) & ~self.fwd(ACK)

    def connect_probe(self) -> B:
        """A completed handshake the initiator reset at once, no byte either way
        (nmap -sT on an open port)."""
        return (
            self.handshake_done()
            & self.fwd(RST)
            & (self.fwd_bytes == 0)
            & (self.bwd_bytes == 0)
            & self.over()
        )

    def stealth_probe(self) -> B:
        """A TCP packet without SYN, no payload, answered by nothing or a RST: the probes
        of FIN, NULL, Xmas, ACK, window and Maimon scans. Initiator RSTs are excluded:
        they end connections, they do not probe them."""
        quiet_reply = (self.bwd_pkts == 0) | (
            self.bwd(RST) & ~self.bwd(SYN) & (self.bwd_bytes == 0)
        )
        return (
            self.tcp
            & ~self.fwd(SYN)
            & ~self.fwd(RST)
            & (self.fwd_bytes == 0)
            & (self.fwd_pkts <= 3)
            & quiet_reply
            & ~self.group_dst
        )

    def udp_probe(self) -> B:
        """A UDP flow of at most 3 packets that got no answer (to a unicast address).

        Datagrams from a well-known port to an ephemeral one are answers whose request
        was not seen (one-way captures, asymmetric routes), not probes."""
        answer_shaped = (self.sport < 1024) & (self.dport >= 1024)
        return (
            self.udp
            & (self.bwd_pkts == 0)
            & (self.fwd_pkts <= 3)
            & ~answer_shaped
            & ~self.group_dst
        )

    def icmp_request(self) -> B:
        t = self.icmp_type
        return self.icmp & isin_small(t, ICMP_REQUEST_TYPES) & ~self.group_dst

    def failed_tcp_probe(self) -> B:
        """A connection attempt that shows a scanner, not a client: half-open or a
        connect-and-reset, to a unicast address."""
        return (self.half_open() | self.connect_probe()) & ~self.group_dst


def isin_small(values: npt.NDArray[Any], options: Any) -> npt.NDArray[np.bool_]:
    """``np.isin(values, options)`` for a short list of options (ports, ICMP types).

    The rules run once per batch and per early-verdict snapshot, usually on a handful
    of rows; np.isin's setup (~40 µs a call) then costs far more than the comparisons.
    Long option lists or long arrays still go to np.isin.
    """
    opts = np.asarray(options).reshape(-1)
    if opts.size > 32 or values.size > 4096:
        return np.isin(values, opts)
    out = np.zeros(values.shape, dtype=np.bool_)
    for v in opts.tolist():
        out |= values == v
    return out


def check_columns(table: pa.Table) -> None:
    """Raise ValueError naming the required columns a flow table lacks."""
    have = set(table.schema.names)  # column_names builds a new list on every access
    missing = [c for c in REQUIRED_COLUMNS if c not in have]
    if missing:
        raise ValueError(f"flow table lacks column(s) {', '.join(missing)}")


def _strings(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks else pa.array([], pa.string())
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if not pa.types.is_string(col.type):
        col = col.cast(pa.string())
    return col


_DTYPES: dict[str, type] = {
    "src": np.uint64,
    "dst": np.uint64,
    "sport": np.int64,
    "dport": np.int64,
    "proto": np.int64,
    "first": np.int64,
    "last": np.int64,
    "fwd_pkts": np.float64,
    "bwd_pkts": np.float64,
    "fwd_bytes": np.float64,
    "bwd_bytes": np.float64,
    "fwd_ip_bytes": np.float64,
    "bwd_ip_bytes": np.float64,
    "fwd_flags": np.int64,
    "bwd_flags": np.int64,
    "icmp_type": np.int64,
    "group_dst": np.bool_,
    "active": np.bool_,
    "age": np.int64,
    "sign": np.float64,
    "pair": np.int64,
    "row": np.int64,
}
