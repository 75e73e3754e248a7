"""Reading the NSL-KDD files (Tavallaee et al. 2009) into model matrices.

Each line holds the 41 features, the attack label and a difficulty level (how many of
21 classifiers in Tavallaee et al. got the record right); KDDTest-21 is the subset of
KDDTest+ that not all 21 got right. Only numpy and the standard library are used, so
tests and evaluation need nothing from the training extra.

The data are not part of flowscope: they live in the shared data folder
(``$FLOWSCOPE_SHARED_DATA``, default ``../shared/data`` beside the repository).
"""

from __future__ import annotations

import csv
import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from flowscope.errors import FlowscopeError
from flowscope.kdd.vocab import (
    ATTACK_CATEGORY,
    ATTACK_FAMILY,
    FAMILIES,
    KDD_FEATURES,
    VOCABULARIES,
)

SPLITS: dict[str, str] = {
    "train": "KDDTrain+.txt.gz",
    "test": "KDDTest+.txt.gz",
    "test21": "KDDTest-21.txt.gz",
}
SPLIT_TITLES: dict[str, str] = {"train": "KDDTrain+", "test": "KDDTest+", "test21": "KDDTest-21"}


def default_data_dir() -> Path:
    """``$FLOWSCOPE_SHARED_DATA/nsl-kdd``, else ``<repo>/../shared/data/nsl-kdd``."""
    env = os.environ.get("FLOWSCOPE_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return root / "nsl-kdd"


@dataclass
class KddSet:
    """One split: features as the model matrix, plus labels."""

    x: npt.NDArray[np.float32]  # n × 41, categorical columns as vocabulary codes
    attack: npt.NDArray[np.str_]  # "normal", "neptune", ...
    difficulty: npt.NDArray[np.int16]

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def category(self) -> npt.NDArray[np.str_]:
        """normal, dos, probe, r2l, u2r."""
        return np.array([ATTACK_CATEGORY[a] for a in self.attack])

    @property
    def family(self) -> npt.NDArray[np.int64]:
        """Index into FAMILIES (0 = benign)."""
        code = {f: i for i, f in enumerate(FAMILIES)}
        return np.array([code[ATTACK_FAMILY[a]] for a in self.attack], np.int64)

    @property
    def is_attack(self) -> npt.NDArray[np.bool_]:
        return self.attack != "normal"

    def subset(self, idx: npt.NDArray[np.integer] | npt.NDArray[np.bool_]) -> KddSet:
        return KddSet(self.x[idx], self.attack[idx], self.difficulty[idx])


def parse_lines(lines: list[str], where: str = "NSL-KDD") -> KddSet:
    """Parse NSL-KDD CSV lines (41 features, label, difficulty)."""
    n = len(lines)
    k = len(KDD_FEATURES)
    x = np.zeros((n, k), np.float32)
    attack = np.empty(n, dtype=object)
    diff = np.zeros(n, np.int16)
    codes = {name: {v: i for i, v in enumerate(vocab)} for name, vocab in VOCABULARIES.items()}
    cat_cols = {KDD_FEATURES.index(name): codes[name] for name in VOCABULARIES}
    for i, row in enumerate(csv.reader(lines)):
        if len(row) != k + 2:
            raise FlowscopeError(f"{where}: line {i + 1} has {len(row)} fields, not {k + 2}")
        try:
            for j in range(k):
                vocab = cat_cols.get(j)
                x[i, j] = vocab[row[j]] if vocab is not None else float(row[j])
            diff[i] = int(row[k + 1])
        except (KeyError, ValueError) as e:
            raise FlowscopeError(f"{where}: line {i + 1}: unexpected value {e}") from None
        label = row[k]
        if label not in ATTACK_CATEGORY:
            raise FlowscopeError(f"{where}: line {i + 1}: unknown attack type {label!r}")
        attack[i] = label
    return KddSet(x, attack.astype(str), diff)


def load_split(data_dir: str | os.PathLike[str], split: str, limit: int | None = None) -> KddSet:
    """Load one split ("train", "test", "test21"), optionally only its first rows."""
    path = Path(data_dir) / SPLITS[split]
    if not path.is_file():
        raise FlowscopeError(
            f"{path}: NSL-KDD file not found (pass the folder holding {SPLITS[split]})"
        )
    lines: list[str] = []
    with gzip.open(path, "rt", encoding="ascii") as fh:
        for line in fh:
            if line.strip():
                lines.append(line)
            if limit is not None and len(lines) >= limit:
                break
    return parse_lines(lines, str(path))
