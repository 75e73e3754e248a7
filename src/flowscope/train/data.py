"""Labelled flows for training and evaluation, from lab runs, captures or CSV/Parquet tables.

Every row keeps where it came from (``source``: the lab run or capture file) and which
attack instance it belongs to (``attack_id``), because honest evaluation splits by run,
capture or attack instance — never by random flow, which would put near-identical flood
flows on both sides of the split.

Inputs, by kind:

- a lab run directory (has labels.csv): its capture is metered with the engine and
  labelled by the run's attack windows (:mod:`flowscope.lab.labels`);
- capture files or folders of them listed in the shared-capture mapping
  (``shared_pcaps.toml``), labelled per file the same way;
- a labelled table (.parquet/.csv/.jsonl as written by ``flowscope label``), or an
  external CSV in a CIC header dialect with a ``Label`` column (CIC-IDS2017 names such
  as ``PortScan`` or ``DoS Hulk`` are mapped to flowscope's families). Features a
  table lacks are NaN (LightGBM treats them as missing; networks see 0).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.errors import FlowscopeError
from flowscope.flows.registry import DIALECTS, EXTRAS, FEATURES, IDENTIFIERS, column_name
from flowscope.lab.scenario import ALL_FAMILIES

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
# Identifier and extra columns are kept too: detectors such as the KDD path need them.
KEEP: tuple[str, ...] = (*(i.name for i in IDENTIFIERS), *(e.name for e in EXTRAS))
LABELS = ("family", "attack_kind", "attack_id", "source")
TABLE_SUFFIXES = (".parquet", ".csv", ".jsonl")

# CIC-IDS2017 / CSE-CIC-IDS2018 label strings → flowscope family (case-insensitive prefix).
CIC_LABELS: tuple[tuple[str, str], ...] = (
    ("benign", "benign"),
    ("portscan", "scan"),
    ("ddos", "dos"),
    ("dos", "dos"),
    ("ftp-patator", "bruteforce"),
    ("ssh-patator", "bruteforce"),
    ("ftp-bruteforce", "bruteforce"),
    ("ssh-bruteforce", "bruteforce"),
    ("brute force -web", "web"),
    ("brute force -xss", "web"),
    ("sql injection", "web"),
    ("web attack", "web"),
    ("bot", "other"),
    ("infilteration", "other"),
    ("infiltration", "other"),
    ("heartbleed", "other"),
)


def cic_family(label: str) -> str:
    """Family of a CIC dataset label (``"Web Attack \x96 XSS"`` → web); unknown → other."""
    low = re.sub(r"[^a-z0-9 \-]", " ", label.lower()).strip()
    low = re.sub(r"\s+", " ", low)
    for prefix, fam in CIC_LABELS:
        if low.startswith(prefix):
            return fam
    return "other"


def _canonical_names() -> dict[str, str]:
    """Every dialect's column name (stripped, lower-case) → canonical name."""
    out: dict[str, str] = {}
    names = [f.name for f in FEATURES] + [i.name for i in IDENTIFIERS] + [e.name for e in EXTRAS]
    for name in names:
        for d in DIALECTS:
            col = column_name(name, d)
            if col:
                out.setdefault(col.strip().lower(), name)
    return out


def _read_table(path: Path) -> pa.Table:
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if path.suffix == ".jsonl":
            import pyarrow.json as pj

            return pj.read_json(path)
        import pyarrow.csv as pcsv

        return pcsv.read_csv(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise FlowscopeError(
            f"{path}: cannot read labelled table: {str(e).splitlines()[0]}"
        ) from None


def read_labelled_table(path: Path) -> pa.Table:
    """A labelled flow table in any dialect, with canonical column names and a family."""
    t = _read_table(path)
    canon = _canonical_names()
    cols: dict[str, pa.ChunkedArray] = {}
    for name in t.column_names:
        key = name.strip()
        target = key if key in (*FEATURE_NAMES, *KEEP, *LABELS) else canon.get(key.lower())
        if target is not None and target not in cols:
            cols[target] = t.column(name)
    n = t.num_rows
    if "family" not in cols:
        label_col = next((c for c in t.column_names if c.strip().lower() == "label"), None)
        if label_col is None:
            raise FlowscopeError(f"{path}: no 'family' or 'Label' column to learn from")
        labels = t.column(label_col).to_pylist()
        fams = [cic_family(str(v)) for v in labels]
        cols["family"] = pa.chunked_array([pa.array(fams, pa.string())])
        cols.setdefault("attack_kind", pa.chunked_array([pa.array([str(v) for v in labels])]))
    bad = set(pc.unique(cols["family"]).to_pylist()) - {*ALL_FAMILIES, "unknown"}
    if bad:
        raise FlowscopeError(f"{path}: unknown families {sorted(map(str, bad))}")
    if "source" not in cols:
        cols["source"] = pa.chunked_array([pa.array([str(path)] * n, pa.string())])
    if "attack_kind" not in cols:
        cols["attack_kind"] = cols["family"]
    if "attack_id" not in cols:
        fam = np.asarray(cols["family"].to_numpy(zero_copy_only=False), dtype=object)
        ids = np.where(fam == "benign", "", f"F:{path.name}")
        cols["attack_id"] = pa.chunked_array([pa.array(ids.tolist(), pa.string())])
    missing = [f for f in FEATURE_NAMES if f not in cols]
    if len(missing) == len(FEATURE_NAMES):
        raise FlowscopeError(f"{path}: no known feature columns (is it a flow table?)")
    for name in missing:
        cols[name] = pa.chunked_array([pa.nulls(n, pa.float64())])
    return pa.table(cols)


def _is_table(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in TABLE_SUFFIXES


def load_labelled(
    inputs: Sequence[str | os.PathLike[str]],
    mapping: Path | None = None,
    on_table: Callable[[str, int], None] | None = None,
) -> pa.Table:
    """All inputs as one table: features, a few identifiers, family, kind, attack_id, source."""
    from flowscope.lab.labels import iter_labelled

    wanted = [*KEEP, *FEATURE_NAMES, *LABELS]
    parts: list[pa.Table] = []
    captures = [p for p in map(Path, inputs) if not _is_table(p)]
    for p in map(Path, inputs):
        if _is_table(p):
            t = read_labelled_table(p)
            parts.append(_select(t, wanted))
            if on_table:
                on_table(str(p), t.num_rows)
    if captures:
        for t in iter_labelled(captures, mapping=mapping):
            parts.append(_select(t, wanted))
            if on_table:
                on_table(str(t.column("source")[0]), t.num_rows)
    if not parts:
        raise FlowscopeError("no labelled flows in the inputs")
    out = pa.concat_tables(parts, promote_options="permissive").combine_chunks()
    unknown = pc.equal(out.column("family"), "unknown")
    n_unknown = int(pc.sum(unknown).as_py() or 0)
    if n_unknown:
        out = out.filter(pc.invert(unknown))
        if on_table:
            on_table("flows of unknown ground truth left out", n_unknown)
    if out.num_rows == 0:
        raise FlowscopeError("the inputs hold no flows")
    return out


def _select(t: pa.Table, wanted: Iterable[str]) -> pa.Table:
    cols, names = [], []
    for name in wanted:
        if name in t.column_names:
            col = t.column(name)
            if name in FEATURE_NAMES:
                col = pc.cast(col, pa.float64())
            cols.append(col)
            names.append(name)
    return pa.table(cols, names=names)


@dataclass
class Dataset:
    """Model-ready arrays, aligned by row."""

    x: npt.NDArray[np.float32]  # raw features, FEATURE_NAMES order; NaN = missing
    y: npt.NDArray[np.int64]  # index into classes
    classes: tuple[str, ...]
    kind: npt.NDArray[np.object_]
    attack_id: npt.NDArray[np.object_]
    source: npt.NDArray[np.object_]
    first_seen: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, idx: npt.NDArray[np.int64] | npt.NDArray[np.bool_]) -> Dataset:
        return Dataset(
            self.x[idx],
            self.y[idx],
            self.classes,
            self.kind[idx],
            self.attack_id[idx],
            self.source[idx],
            self.first_seen[idx],
        )

    def family_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=len(self.classes))
        return {c: int(counts[i]) for i, c in enumerate(self.classes)}


def to_dataset(table: pa.Table, classes: Sequence[str] | None = None) -> Dataset:
    """Arrays from a labelled table. ``classes`` defaults to the families present."""
    fam = np.asarray(table.column("family").to_numpy(zero_copy_only=False), dtype=object)
    present = set(fam.tolist())
    if classes is None:
        classes = [f for f in ALL_FAMILIES if f in present]
        if "benign" not in classes:
            classes.insert(0, "benign")
    unknown = present - set(classes)
    if unknown:
        raise FlowscopeError(f"families {sorted(unknown)} are not among the model's classes")
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[f] for f in fam], dtype=np.int64)
    x = np.empty((table.num_rows, len(FEATURE_NAMES)), np.float32)
    for j, name in enumerate(FEATURE_NAMES):
        col = table.column(name) if name in table.column_names else None
        x[:, j] = np.nan if col is None else col.to_numpy(zero_copy_only=False)

    def obj(name: str, fill: str = "") -> npt.NDArray[np.object_]:
        if name not in table.column_names:
            return np.full(table.num_rows, fill, dtype=object)
        return np.asarray(table.column(name).fill_null(fill).to_numpy(zero_copy_only=False), object)

    if "first_seen" in table.column_names:
        first = np.asarray(table.column("first_seen").fill_null(0).to_numpy(), np.int64)
    else:
        first = np.zeros(table.num_rows, np.int64)
    return Dataset(x, y, tuple(classes), obj("attack_kind"), obj("attack_id"), obj("source"), first)
