"""The 41 NSL-KDD connection features of flowscope flows.

One flowscope flow is one KDD connection. The basic features come from the flow's own
columns, the traffic features from :mod:`flowscope.kdd.windows`, the content features
are 0 (flowscope reads no payload). How each is derived, and where it departs from
KDD'99 as Bro computed it, is in docs/kdd.md; in short:

- ``duration``: whole seconds of ``flow_duration`` (KDD stores integers); 0 for ICMP.
- ``protocol_type``: tcp (6), udp (17), icmp (1 and ICMPv6 58). Flows of other
  protocols (GRE, ESP, SCTP, ...) are not KDD connections: they are marked not
  applicable, get an all-zero row and take no part in the windows.
- ``service``: :mod:`flowscope.kdd.services`; ``flag``: :mod:`flowscope.kdd.connstate`.
- ``src_bytes``/``dst_bytes``: transport payload bytes forward/backward (Bro counts
  TCP and UDP data bytes the same way). KDD records every ICMP message as its own
  connection, with the ICMP header counted and dst_bytes 0 (smurf replies are 1032
  bytes: 1024 of data and the 8-byte header), whereas flowscope meters all ICMP
  between two hosts as one flow; so an ICMP flow's src_bytes is its mean forward
  message size including the header, and dst_bytes and duration are 0.
- ``land``: same address and port at both ends.
- ``wrong_fragment``: 0 (see :data:`flowscope.kdd.vocab.ZERO_AT_RUNTIME`).
- ``urgent``: TCP packets with URG, both directions.

Categorical features are vocabulary codes in the matrix (float32), as the model and
the rule filter expect; :func:`kdd_table` turns them back into the dataset's words.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.errors import FlowscopeError
from flowscope.kdd.connstate import flow_conn_states
from flowscope.kdd.services import service_codes
from flowscope.kdd.vocab import (
    COLUMN,
    FLAG,
    KDD_FEATURES,
    PROTO,
    RATE_FEATURES,
    RERROR_FLAGS,
    SERROR_FLAGS,
    VOCABULARIES,
)
from flowscope.kdd.windows import Connections, TrafficWindows, address_keys

__all__ = [
    "FLOW_COLUMNS",
    "KDD_FEATURES",
    "KddFeaturizer",
    "KddRows",
    "extract_kdd",
    "kdd_table",
]

# Flow-table columns the KDD features are derived from.
FLOW_COLUMNS: tuple[str, ...] = (
    "src_ip", "src_port", "dst_ip", "dst_port", "protocol", "first_seen", "flow_duration",
    "fwd_packets", "bwd_packets", "fwd_bytes", "bwd_bytes", "fwd_tcp_flags", "bwd_tcp_flags",
    "fwd_rst_flags", "bwd_rst_flags", "urg_flag_count", "icmp_type", "icmp_code",
)  # fmt: skip

_ICMP_HEADER = 8
_SERROR = np.array([FLAG[f] for f in SERROR_FLAGS])
_RERROR = np.array([FLAG[f] for f in RERROR_FLAGS])
_TRAFFIC0 = COLUMN["count"]


@dataclass
class KddRows:
    """KDD feature rows of a flow table, aligned with its rows."""

    matrix: npt.NDArray[np.float32]  # n × 41, categorical columns as vocabulary codes
    applicable: npt.NDArray[np.bool_]  # False: not tcp/udp/icmp, row is all zero

    def __len__(self) -> int:
        return int(self.matrix.shape[0])


def _num(flows: pa.Table, name: str) -> npt.NDArray[np.int64]:
    return np.asarray(flows.column(name).to_numpy(zero_copy_only=False)).astype(np.int64)


class KddFeaturizer:
    """Flow tables → KDD rows; keeps the traffic windows between calls (live use).

    Use one featurizer per traffic source: flows of unrelated captures must not share
    windows (call :meth:`reset` between them).
    """

    def __init__(
        self,
        time_window_s: float = 2.0,
        host_window: int = 100,
        retention_s: float = 125.0,
        max_history: int = 500_000,
    ) -> None:
        self.windows = TrafficWindows(time_window_s, host_window, retention_s, max_history)

    def reset(self) -> None:
        self.windows.reset()

    def transform(self, flows: pa.Table) -> KddRows:
        """KDD rows for ``flows`` (any order); advances the windows."""
        missing = [c for c in FLOW_COLUMNS if c not in flows.column_names]
        if missing:
            raise FlowscopeError(f"flow table lacks columns {', '.join(missing[:5])}")
        n = flows.num_rows
        x = np.zeros((n, len(KDD_FEATURES)), np.float64)
        proto = _num(flows, "protocol")
        tcp, udp = proto == 6, proto == 17
        icmp = (proto == 1) | (proto == 58)
        ok = tcp | udp | icmp
        dport = _num(flows, "dst_port")
        svc = service_codes(proto, dport, _num(flows, "icmp_type"), _num(flows, "icmp_code"))
        flag = flow_conn_states(flows)
        fwd_pkts = _num(flows, "fwd_packets")
        fwd_bytes = _num(flows, "fwd_bytes")

        x[:, COLUMN["duration"]] = np.where(
            icmp, 0.0, np.floor(flows.column("flow_duration").to_numpy() / 1e6)
        )
        x[:, COLUMN["protocol_type"]] = np.select(
            [tcp, udp, icmp], [PROTO["tcp"], PROTO["udp"], PROTO["icmp"]], 0
        )
        x[:, COLUMN["service"]] = svc
        x[:, COLUMN["flag"]] = flag
        icmp_msg = np.round((fwd_bytes + _ICMP_HEADER * fwd_pkts) / np.maximum(fwd_pkts, 1))
        x[:, COLUMN["src_bytes"]] = np.where(icmp, icmp_msg, fwd_bytes)
        x[:, COLUMN["dst_bytes"]] = np.where(icmp, 0, _num(flows, "bwd_bytes"))
        same_addr = pc.equal(flows.column("src_ip"), flows.column("dst_ip"))
        same_addr_np = np.asarray(same_addr.to_numpy(zero_copy_only=False), dtype=bool)
        x[:, COLUMN["land"]] = same_addr_np & (_num(flows, "src_port") == dport)
        x[:, COLUMN["urgent"]] = _num(flows, "urg_flag_count")

        idx = np.flatnonzero(ok)
        if idx.size:
            ids = pa.array(idx)
            srv = (np.where(icmp, (1 << 20) + svc.astype(np.int64), dport) + (proto << 32)).astype(
                np.uint64
            )
            conns = Connections(
                ts=_num(flows, "first_seen")[idx],
                host=address_keys(pc.take(flows.column("dst_ip"), ids)),
                srv=srv[idx],
                svc=svc[idx].astype(np.int64),
                sport=_num(flows, "src_port")[idx],
                serror=np.isin(flag[idx], _SERROR),
                rerror=np.isin(flag[idx], _RERROR),
            )
            x[idx, _TRAFFIC0:] = self.windows.update(conns)
        x[~ok] = 0.0
        return KddRows(x.astype(np.float32), ok)


def kdd_table(rows: KddRows) -> pa.Table:
    """The 41 features as the NSL-KDD files write them: words for categorical columns,
    integers for counts, two-decimal rates; empty categorical fields for rows that are
    not KDD connections."""
    cols: dict[str, pa.Array] = {}
    for j, name in enumerate(KDD_FEATURES):
        v = rows.matrix[:, j]
        if name in VOCABULARIES:
            words = pa.array(list(VOCABULARIES[name]), pa.string())
            codes = pa.array(v.astype(np.int32), mask=~rows.applicable)
            cols[name] = pa.DictionaryArray.from_arrays(codes, words).dictionary_decode()
        elif name in RATE_FEATURES:
            cols[name] = pa.array(np.round(v.astype(np.float64), 2))
        else:
            cols[name] = pa.array(v.astype(np.int64))
    return pa.table(cols)


def extract_kdd(
    path: str | os.PathLike[str], host_window: int = 100
) -> Iterator[tuple[pa.Table, KddRows]]:
    """(flow table, KDD rows) chunks of one capture, with windows private to it."""
    from flowscope.flows.extract import ExtractSummary, extract_capture
    from flowscope.flows.meter import MeterConfig

    feat = KddFeaturizer(host_window=host_window)
    for flows in extract_capture(path, MeterConfig(), ExtractSummary()):
        yield flows, feat.transform(flows)
