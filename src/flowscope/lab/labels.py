"""Per-flow labels: join flow tables with lab `labels.csv` or the shared-pcap mapping.

Rule (lab runs). A flow belongs to attack A iff it overlaps A's window widened by the
slack on both sides (``first_seen <= end + slack`` and ``last_seen >= start - slack``)
and, on A's protocol (if not "any"):

- normal attacks: its two endpoints are A's attacker and an address of A's victim (an
  address, or a CIDR range for sweeps), and if A lists victim ports, the victim-side
  port is one of them;
- spoofed-source attacks: one endpoint is the victim (victim-side port in A's ports, if
  listed) and the other is *not* a lab host other than the attacker (forged sources are
  random addresses; a real client talking to the victim meanwhile stays benign).

Everything else is benign, including the attacker hosts' own benign traffic outside
their windows (the lab keeps attacker hosts quiet for a few seconds around each window,
so the slack does not catch benign sessions). If several attacks match a flow (all ICMP
between two hosts is one flow, which can span several attacks), the attack whose
window overlaps the flow longest wins; ties go to the earlier one. Shared captures use
the same rule with the whole capture as the window (see shared_pcaps.toml).
"""

from __future__ import annotations

import contextlib
import csv
import ipaddress
import itertools
import json
import os
import tomllib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.errors import FlowscopeError
from flowscope.flows.extract import ExtractSummary, extract_capture
from flowscope.flows.meter import MeterConfig
from flowscope.flows.registry import DIALECTS, column_name
from flowscope.lab.scenario import FAMILIES
from flowscope.sinks.files import FlowWriter

PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "any": None}
LABEL_COLUMNS = ("label", "attack_kind", "family", "attack_id")
ALWAYS = (-(2**62), 2**62)  # window of shared captures: all time


@dataclass
class Window:
    """One attack as the labeller sees it."""

    attack_id: str
    kind: str
    family: str
    attacker: str | None  # None: any source (spoofed or `all`)
    victim: str | None  # address or CIDR; None: any peer
    ports: frozenset[int] = frozenset()
    protocol: str = "any"
    spoofed: bool = False
    start_ns: int = ALWAYS[0]
    end_ns: int = ALWAYS[1]
    everything: bool = False
    lab_hosts: frozenset[str] = field(default_factory=frozenset)  # not spoofed sources
    # What the capture's other flows are: "benign", or "unknown" for captures whose
    # background is not known to be benign (e.g. one-way captures of an internet-facing
    # host, full of unsolicited probes); unknown flows are left out of training and tests.
    background: str = "benign"


def _family(kind: str, given: str | None = None) -> str:
    if given:
        return given
    if kind in FAMILIES:
        return FAMILIES[kind]
    return {"dns_amplification": "dos"}.get(kind, "other")


def read_lab_labels(run_dir: Path) -> list[Window]:
    """Windows from a lab run's labels.csv (+ scenario.json for the lab's host list)."""
    try:
        with open(run_dir / "labels.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise FlowscopeError(f"cannot read {run_dir / 'labels.csv'}: {e.strerror}") from None
    hosts: frozenset[str] = frozenset()
    sj = run_dir / "scenario.json"
    if sj.is_file():
        info = json.loads(sj.read_text())
        hosts = frozenset(h["addr"] for h in info.get("hosts", {}).values())
    out = []
    for r in rows:
        try:
            out.append(
                Window(
                    attack_id=r["attack_id"],
                    kind=r["kind"],
                    family=_family(r["kind"], r.get("family")),
                    attacker=r["attacker_addr"],
                    victim=r["victim_addr"],
                    ports=frozenset(int(p) for p in r["victim_ports"].split()),
                    protocol=r["protocol"] or "any",
                    spoofed=r["spoofed"] in ("1", "true", "True"),
                    start_ns=int(r["start_ns"]),
                    end_ns=int(r["end_ns"]),
                    lab_hosts=hosts - {r["attacker_addr"]},
                )
            )
        except (KeyError, ValueError) as e:
            raise FlowscopeError(
                f"{run_dir / 'labels.csv'}: bad row {r.get('attack_id')!r}: {e}"
            ) from None
    return sorted(out, key=lambda w: w.start_ns)


@dataclass
class Mapping:
    """The shared-capture mapping: per-capture attacks and all-benign folders."""

    captures: dict[str, Window]
    benign_folders: set[str]

    def windows_for(self, path: Path) -> list[Window] | None:
        """None if the capture is not in the mapping."""
        key = f"{path.parent.name}/{path.name}"
        if key in self.captures:
            return [self.captures[key]]
        if path.parent.name in self.benign_folders:
            return []
        return None


def load_mapping(path: Path | None = None) -> Mapping:
    """Read shared_pcaps.toml (the shipped one by default); one-line errors."""
    if path is None:
        text = (resources.files("flowscope.lab") / "shared_pcaps.toml").read_text()
        origin = "shared_pcaps.toml"
    else:
        try:
            text, origin = path.read_text(), str(path)
        except OSError as e:
            raise FlowscopeError(f"cannot read {path}: {e.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FlowscopeError(f"{origin}: not valid TOML: {e}") from None
    caps: dict[str, Window] = {}
    for i, c in enumerate(data.get("capture", [])):
        try:
            kind = str(c["kind"])
            for a in (c.get("attacker"), c.get("victim")):
                if a is not None:
                    ipaddress.ip_network(a, strict=False)
            caps[str(c["path"])] = Window(
                attack_id=f"S{i + 1:03d}",
                kind=kind,
                family=_family(kind, c.get("family")),
                attacker=c.get("attacker"),
                victim=c.get("victim"),
                ports=frozenset(int(p) for p in c.get("ports", [])),
                protocol=str(c.get("protocol", "any")),
                spoofed=bool(c.get("spoofed", False)),
                everything=bool(c.get("all", False)),
                background=str(c.get("background", "benign")),
            )
            if caps[str(c["path"])].background not in ("benign", "unknown"):
                raise ValueError("background must be 'benign' or 'unknown'")
            if caps[str(c["path"])].protocol not in PROTOCOLS:
                raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}")
        except (KeyError, ValueError, TypeError) as e:
            raise FlowscopeError(f"{origin}: capture entry #{i + 1}: {e}") from None
    folders = {str(f["path"]) for f in data.get("folder", [])}
    return Mapping(caps, folders)


def _addr_mask(values: pa.Array, spec: str | None) -> np.ndarray:
    """Boolean mask over a dictionary's values: address equals spec / lies in CIDR spec."""
    vals = values.to_pylist()
    if spec is None:
        return np.ones(len(vals), dtype=bool)
    if "/" in spec:
        net = ipaddress.ip_network(spec, strict=False)
        out = np.zeros(len(vals), dtype=bool)
        for i, v in enumerate(vals):
            with contextlib.suppress(ValueError):
                out[i] = ipaddress.ip_address(v) in net
        return out
    want = str(ipaddress.ip_address(spec))
    return np.array([v == want for v in vals], dtype=bool)


def label_table(table: pa.Table, windows: Sequence[Window], slack_ns: int) -> pa.Table:
    """Append label, attack_kind, family, attack_id to a flow table."""
    n = table.num_rows
    src = table.column("src_ip").combine_chunks().dictionary_encode()
    dst = table.column("dst_ip").combine_chunks().dictionary_encode()
    # one dictionary for both columns, so a window's address masks apply to both
    values = pa.concat_arrays([src.dictionary, dst.dictionary]).unique()
    src_i = np.asarray(pc.index_in(src.dictionary, values))[np.asarray(src.indices)]
    dst_i = np.asarray(pc.index_in(dst.dictionary, values))[np.asarray(dst.indices)]
    sport = np.asarray(table.column("src_port").combine_chunks().fill_null(0)).astype(np.int64)
    dport = np.asarray(table.column("dst_port").combine_chunks().fill_null(0)).astype(np.int64)
    proto = np.asarray(table.column("protocol").combine_chunks().fill_null(0)).astype(np.int64)
    first = np.asarray(table.column("first_seen").combine_chunks()).astype(np.int64)
    last = np.asarray(table.column("last_seen").combine_chunks()).astype(np.int64)

    which = np.full(n, -1, dtype=np.int64)
    best = np.full(n, -1, dtype=np.int64)  # overlap (ns) of the flow with its chosen window
    for wi, w in enumerate(windows):
        lo, hi = w.start_ns - slack_ns, w.end_ns + slack_ns
        if w.start_ns == ALWAYS[0]:
            m = np.ones(n, dtype=bool)
            overlap = np.zeros(n, dtype=np.int64)
        else:
            m = (first <= hi) & (last >= lo)
            overlap = np.minimum(last, hi) - np.maximum(first, lo)
        pnum = PROTOCOLS.get(w.protocol)
        if pnum is not None:
            m &= proto == pnum
        if w.everything:
            take = m & (overlap > best)
            which[take], best[take] = wi, overlap[take]
            continue
        vict = _addr_mask(values, w.victim)
        ports = np.array(sorted(w.ports), dtype=np.int64)
        if w.spoofed or w.attacker is None:
            fwd = vict[dst_i]  # victim is the destination of the first packet
            bwd = vict[src_i] & ~fwd
            if ports.size:
                fwd &= np.isin(dport, ports) | (proto == 1)
                bwd &= np.isin(sport, ports) | (proto == 1)
            hit = fwd | bwd
            if w.lab_hosts:
                lab = np.isin(np.array(values.to_pylist(), dtype=object), list(w.lab_hosts))
                peer = np.where(fwd, src_i, dst_i)
                hit &= ~lab[peer]
        else:
            att = _addr_mask(values, w.attacker)
            fwd = att[src_i] & vict[dst_i]
            bwd = vict[src_i] & att[dst_i]
            if ports.size:
                fwd &= np.isin(dport, ports) | (proto == 1)
                bwd &= np.isin(sport, ports) | (proto == 1)
            hit = fwd | bwd
        take = m & hit & (overlap > best)  # the longest overlap wins; ties: earlier window
        which[take], best[take] = wi, overlap[take]

    mal = which >= 0
    bg = "unknown" if any(w.background == "unknown" for w in windows) else "benign"
    kinds = np.array([bg, *(w.kind for w in windows)], dtype=object)[which + 1]
    fams = np.array([bg, *(w.family for w in windows)], dtype=object)[which + 1]
    ids = np.array(["", *(w.attack_id for w in windows)], dtype=object)[which + 1]
    lab_col = np.where(mal, "malicious", bg).astype(object)
    for name, col in zip(LABEL_COLUMNS, (lab_col, kinds, fams, ids), strict=True):
        table = table.append_column(name, pa.array(col, pa.string()))
    return table


def _rename(table: pa.Table, dialect: str) -> pa.Table:
    """Keep a dialect's feature columns under its names, plus the label columns."""
    if dialect == "flowscope":
        return table
    names, cols = [], []
    for name in table.column_names:
        out = name if name in (*LABEL_COLUMNS, "source") else column_name(name, dialect)
        if out is not None:
            names.append(out)
            cols.append(table.column(name))
    return pa.table(cols, names=names)


def _captures_in(inp: Path) -> list[tuple[Path, list[Window] | None, str]]:
    """(capture, windows or None = look up mapping, source) for one CLI input."""
    if inp.is_dir() and (inp / "labels.csv").is_file():
        return [(inp / "capture.pcap", read_lab_labels(inp), str(inp))]
    if inp.is_dir():
        exts = (".pcap", ".pcapng", ".cap", ".pcap.gz")
        files = sorted(p for p in inp.iterdir() if p.is_file() and p.name.endswith(exts))
        return [(p, None, str(p)) for p in files]
    if inp.is_file():
        return [(inp, None, str(inp))]
    raise FlowscopeError(f"{inp}: no such file or directory")


def iter_labelled(
    inputs: Iterable[str | os.PathLike[str]],
    mapping: Path | None = None,
    slack_s: float = 1.0,
    config: MeterConfig | None = None,
    summary: ExtractSummary | None = None,
) -> Iterator[pa.Table]:
    """Meter and label every input; yield labelled flow tables with a ``source`` column.

    ``source`` names the lab run directory or capture file a flow came from, so that
    training and evaluation can split by run or capture rather than by flow. All inputs
    are resolved (and unknown captures rejected) before the first packet is read.
    """
    jobs = [j for inp in inputs for j in _captures_in(Path(inp))]
    mp: Mapping | None = None
    resolved = []
    for cap, windows, source in jobs:
        if windows is None:
            mp = mp or load_mapping(mapping)
            windows = mp.windows_for(cap)
            if windows is None:
                raise FlowscopeError(
                    f"{cap}: not in the capture mapping ({mapping or 'shared_pcaps.toml'}); "
                    "add it there or label a lab run directory"
                )
        resolved.append((cap, windows, source))
    summary = summary if summary is not None else ExtractSummary()
    config = config or MeterConfig()
    slack_ns = int(slack_s * 1e9)
    for cap, windows, source in resolved:
        for t in extract_capture(os.fspath(cap), config, summary):
            t = label_table(t, windows, slack_ns)
            yield t.append_column("source", pa.array([source] * t.num_rows, pa.string()))


def label_inputs(
    inputs: Iterable[Path],
    out: str,
    mapping: Path | None = None,
    slack_s: float = 1.0,
    dialect: str = "flowscope",
    config: MeterConfig | None = None,
) -> Counter[str]:
    """Meter and label every input; write one flow table; return flows per family."""
    if dialect not in DIALECTS:
        raise FlowscopeError(f"unknown dialect {dialect!r}; choose from {', '.join(DIALECTS)}")
    tables = iter_labelled(inputs, mapping=mapping, slack_s=slack_s, config=config)
    first = next(tables, None)  # resolve inputs before creating the output file
    counts: Counter[str] = Counter()
    writer = FlowWriter(out)
    try:
        for t in itertools.chain([] if first is None else [first], tables):
            counts.update(t.column("family").to_pylist())
            writer.write(_rename(t, dialect))
    finally:
        writer.close()
    return counts
