"""Run a KDD detector over labelled flows: per-family recall and benign FPR.

Inputs are labelled Parquet flow tables (a lab run's ``flows.parquet``, or the
output of ``flowscope label -o X.parquet``: they carry a ``family`` column) or
anything ``flowscope label`` accepts (captures listed in the shared-capture mapping,
lab run directories), which are metered and labelled on the fly. Each source (capture
or run) starts with empty traffic windows; its flows are classified in the order the
meter finished them, in chunks, as the sensor would.

"Alarm rate" is the share of a family's flows raised as an alarm: recall for attack
families, false-positive rate for benign. Flows the labeller calls "unknown" (the
background of captures whose other traffic is not known to be benign) get their own
row and count as neither. Both are given before and after the rule
filter, with the exact number of flows the filter changed.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flowscope.errors import FlowscopeError
from flowscope.kdd.detector import KddDetector
from flowscope.kdd.features import FLOW_COLUMNS
from flowscope.lab.scenario import ALL_FAMILIES

CHUNK = 65_536  # flows per classify call when replaying a stored table


@dataclass
class FamilyCounts:
    """Flows, alarms before the filter and alarms after it, per true family."""

    flows: dict[str, int] = field(default_factory=dict)
    dnn: dict[str, int] = field(default_factory=dict)
    filtered: dict[str, int] = field(default_factory=dict)
    right_family: dict[str, int] = field(default_factory=dict)  # alarm with the true family

    def add(
        self, family: np.ndarray, alarm: np.ndarray, after: np.ndarray, pred: np.ndarray
    ) -> None:
        for f in np.unique(family):
            m = family == f
            k = str(f)
            self.flows[k] = self.flows.get(k, 0) + int(m.sum())
            self.dnn[k] = self.dnn.get(k, 0) + int(alarm[m].sum())
            self.filtered[k] = self.filtered.get(k, 0) + int(after[m].sum())
            self.right_family[k] = self.right_family.get(k, 0) + int(
                (after[m] & (pred[m] == f)).sum()
            )

    def merge(self, other: FamilyCounts) -> None:
        for mine, theirs in (
            (self.flows, other.flows),
            (self.dnn, other.dnn),
            (self.filtered, other.filtered),
            (self.right_family, other.right_family),
        ):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in sorted(
            self.flows, key=lambda x: ALL_FAMILIES.index(x) if x in ALL_FAMILIES else 99
        ):
            n = self.flows[f]
            out[f] = {
                "flows": n,
                "alarms_dnn": self.dnn[f],
                "alarms_filtered": self.filtered[f],
                "rate_dnn": round(self.dnn[f] / n, 4) if n else None,
                "rate_filtered": round(self.filtered[f] / n, 4) if n else None,
                "right_family": self.right_family[f],
            }
        return out


def _table_sources(path: Path) -> Iterator[tuple[str, Iterator[pa.Table]]]:
    """(source, chunks) of a stored labelled flow table, one source at a time."""
    try:
        schema = pq.read_schema(path)
        cols = [c for c in (*FLOW_COLUMNS, "family", "source", "capture") if c in schema.names]
        table = pq.read_table(path, columns=cols)
    except (OSError, pa.ArrowInvalid) as e:
        raise FlowscopeError(f"{path}: unreadable Parquet flow table: {e}") from None
    if "family" not in table.column_names:
        raise FlowscopeError(f"{path}: no 'family' column (label it with `flowscope label`)")
    key = "source" if "source" in table.column_names else "capture"
    if key not in table.column_names:
        yield str(path), iter([table])
        return
    values = table.column(key)
    for name in pc.unique(values).to_pylist():
        part = table.filter(pc.equal(values, name))
        yield f"{path}:{name}", (part.slice(s, CHUNK) for s in range(0, part.num_rows, CHUNK))


def _capture_sources(inputs: list[Path]) -> Iterator[tuple[str, Iterator[pa.Table]]]:
    """(source, chunks) of captures / lab runs, metered and labelled as they are read."""
    from flowscope.lab.labels import iter_labelled

    tables = (t for t in iter_labelled(inputs) if t.num_rows)
    # Streams: each source's chunks are consumed before the next source is metered.
    for source, chunks in itertools.groupby(tables, key=lambda t: t.column("source")[0].as_py()):
        yield str(source), chunks


def iter_sources(
    inputs: Iterable[str | os.PathLike[str]],
) -> Iterator[tuple[str, Iterator[pa.Table]]]:
    paths = [Path(p) for p in inputs]
    tables = [p for p in paths if p.suffix == ".parquet"]
    others = [p for p in paths if p.suffix != ".parquet"]
    for t in tables:
        if not t.is_file():
            raise FlowscopeError(f"{t}: no such file")
        yield from _table_sources(t)
    if others:
        yield from _capture_sources(others)


def evaluate_sources(
    detector: KddDetector, inputs: Iterable[str | os.PathLike[str]]
) -> dict[str, FamilyCounts]:
    """Per source, counts of flows and alarms by true family."""
    classes = np.asarray(detector.classes, dtype=object)
    out: dict[str, FamilyCounts] = {}
    for source, chunks in iter_sources(inputs):
        detector.reset()
        counts = FamilyCounts()
        for t in chunks:
            if t.num_rows == 0:
                continue
            v = detector.classify(t)
            after = np.asarray(v.malicious, bool)
            alarm = after | (v.suppressed if v.suppressed is not None else False)
            fam = np.asarray(t.column("family").to_numpy(zero_copy_only=False), dtype=object)
            counts.add(fam.astype(str), alarm, after, classes[v.top_family].astype(str))
        out[source] = counts
    return out


def total(counts: Iterable[FamilyCounts]) -> FamilyCounts:
    acc = FamilyCounts()
    for c in counts:
        acc.merge(c)
    return acc


def markdown(per_source: dict[str, FamilyCounts], title: str = "") -> str:
    """A row per (source, family): flows, alarm rate before/after the rules."""
    lines = [f"**{title}**", ""] if title else []
    lines += [
        "| source | family | flows | alarm rate (DNN) | alarm rate (DNN + rules) | right family |",
        "|---|---|---:|---:|---:|---:|",
    ]
    rows = dict(per_source)
    if len(per_source) > 1:
        rows["**all**"] = total(per_source.values())
    for src, c in rows.items():
        for fam, d in c.as_dict().items():
            lines.append(
                f"| {Path(src).name if src != '**all**' else src} | {fam} | {d['flows']} | "
                f"{_pct(d['rate_dnn'])} | {_pct(d['rate_filtered'])} | "
                f"{d['right_family'] if fam not in ('benign', 'unknown') else '—'} |"
            )
    return "\n".join(lines) + "\n"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.2f} %"
