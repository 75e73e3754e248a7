"""Leak-free validation splits and per-attack sampling.

Random flow splits flatter a model: a flood contributes tens of thousands of nearly
identical flows, and a random split puts their twins in both halves. The validation set
here is made of whole units instead:

- attacks: whole attack *instances* (``source``, ``attack_id``). For every attack kind
  with at least two instances, the middle one in time is held out, so the model is
  validated on a run of the attack it has never seen (usually another intensity);
- benign traffic of long sources (lab runs): whole time blocks (every fifth block of
  ``block_s`` seconds); flows are assigned by their start;
- benign traffic of short sources (single captures): whole captures, chosen by a
  stable hash of the source name (not by the random seed).

Test sets are never drawn from the training inputs at all: ``flowscope evaluate`` runs
on other lab runs (the holdout scenario) and on captures from other networks.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import numpy.typing as npt

from flowscope.train.data import Dataset

BLOCK_S = 300.0
LONG_SOURCE_S = 1500.0


def validation_mask(ds: Dataset, block_s: float = BLOCK_S) -> npt.NDArray[np.bool_]:
    """True for rows of the validation split (see module docstring)."""
    n = len(ds)
    val = np.zeros(n, dtype=bool)
    attack = ds.attack_id != ""
    # attacks: per kind, hold out the middle instance by start time
    starts: dict[tuple[str, str], int] = {}
    kinds: dict[tuple[str, str], str] = {}
    for i in np.flatnonzero(attack):
        key = (ds.source[i], ds.attack_id[i])
        t = int(ds.first_seen[i])
        if key not in starts or t < starts[key]:
            starts[key] = t
        kinds[key] = ds.kind[i]
    by_kind: dict[str, list[tuple[int, tuple[str, str]]]] = defaultdict(list)
    for key, t in starts.items():
        by_kind[kinds[key]].append((t, key))
    held: set[tuple[str, str]] = set()
    for inst in by_kind.values():
        if len(inst) >= 2:
            inst.sort()
            held.add(inst[len(inst) // 2][1])
    if held:
        keys = np.array([f"{s}\x1f{a}" for s, a in held], dtype=object)
        row_keys = np.char.add(
            np.char.add(ds.source.astype(str), "\x1f"), ds.attack_id.astype(str)
        ).astype(object)
        val |= attack & np.isin(row_keys, keys)
    # benign: time blocks of long sources, whole short sources
    benign = ~attack
    for src in np.unique(ds.source[benign]):
        rows = benign & (ds.source == src)
        t = ds.first_seen[rows]
        span = (t.max() - t.min()) / 1e9 if t.size else 0.0
        if span >= LONG_SOURCE_S:
            block = ((t - t.min()) / 1e9 // block_s).astype(np.int64)
            val[np.flatnonzero(rows)[block % 5 == 3]] = True
        elif zlib.crc32(str(src).encode()) % 5 == 3:
            val[rows] = True
    return val


def stable_fraction(name: str) -> float:
    """A number in [0, 1) fixed by a file's name: assigns captures to splits reproducibly."""
    return zlib.crc32(Path(name).name.encode()) / 2**32


def reserved_captures(sources: npt.NDArray[np.object_], fraction: float) -> set[str]:
    """Single-capture sources (not lab run directories) reserved for testing.

    A capture is reserved when its name's stable fraction is below ``fraction``; the
    model never sees it, so `flowscope evaluate` can test on it afterwards.
    """
    if fraction <= 0:
        return set()
    return {
        str(s)
        for s in set(sources.tolist())
        if not Path(str(s)).is_dir() and stable_fraction(str(s)) < fraction
    }


def cap_per_attack(
    ds: Dataset, cap: int, rng: np.random.Generator, benign_cap: int | None = None
) -> npt.NDArray[np.int64]:
    """Row indices keeping at most ``cap`` flows per attack instance (random within it).

    Floods produce 10⁴–10⁵ flows per instance against a few hundred for a brute force;
    capping per instance keeps every kind visible to the model while class weights
    balance the families. Benign rows are kept unless ``benign_cap`` is set.
    """
    keep: list[npt.NDArray[np.int64]] = []
    attack = ds.attack_id != ""
    keys = np.char.add(ds.source.astype(str), np.char.add("\x1f", ds.attack_id.astype(str)))
    for key in np.unique(keys[attack]):
        rows = np.flatnonzero(attack & (keys == key))
        if rows.size > cap:
            rows = np.sort(rng.choice(rows, cap, replace=False))
        keep.append(rows)
    rows = np.flatnonzero(~attack)
    if benign_cap is not None and rows.size > benign_cap:
        rows = np.sort(rng.choice(rows, benign_cap, replace=False))
    keep.append(rows)
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)


def sample_weights(ds: Dataset) -> npt.NDArray[np.float64]:
    """Per-row weights: every family the same total weight, and within a family the lab
    runs and the single captures (other networks) each half of it.

    Why: a lab run holds ~20 k benign flows of a handful of protocols, the real benign
    captures ~1 k flows of hundreds of applications. Weighted by count, the real ones
    would barely move the model; their diversity is what keeps false positives down on
    networks the model has never seen.
    """
    k = int(ds.y.max()) + 1 if len(ds) else 0
    run = np.array([Path(str(s)).is_dir() for s in ds.source], dtype=bool)
    w = np.zeros(len(ds))
    present = [c for c in range(k) if (ds.y == c).any()]
    for c in present:
        fam = ds.y == c
        groups = [g for g in (fam & run, fam & ~run) if g.any()]
        for g in groups:
            w[g] = len(ds) / (len(present) * len(groups) * g.sum())
    return w


def cap_per_family(ds: Dataset, cap: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Row indices with at most ``cap`` random rows per family (the networks' budget:
    on a CPU they cost ~1000x a tree per row, and gain nothing from the 40th thousand
    near-identical flood flow)."""
    keep = []
    for c in np.unique(ds.y):
        rows = np.flatnonzero(ds.y == c)
        if rows.size > cap:
            rows = rng.choice(rows, cap, replace=False)
        keep.append(rows)
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)


def class_weights(y: npt.NDArray[np.int64], n_classes: int) -> npt.NDArray[np.float64]:
    """Per-row weights that give every present family the same total weight."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    per_class = np.zeros(n_classes)
    per_class[present] = y.size / (present.sum() * counts[present])
    return per_class[y]
