"""`flowscope models import`: a user's Keras model (.keras / .h5) becomes a model bundle.

The older tools asked users to drop a Keras file into a folder and hoped its inputs
matched. Here an import is checked once, up front, and produces an ordinary bundle:

- the model is loaded with Keras 3 on the torch backend in *safe mode*, so a Lambda
  layer's stored Python code is refused rather than run, and exported to ONNX; the ONNX
  graph must reproduce Keras's probabilities (within :data:`TOLERANCE`) on a few hundred
  probe rows, or nothing is written;
- the feature list may use any header dialect of the registry (CICFlowMeter, CIC-IDS2017,
  CSE-CIC-IDS2018 or flowscope names) and is mapped to canonical names, so the sensor feeds
  exactly the columns the model was trained on;
- the scaler becomes the bundle's JSON preprocessing steps and association rules become
  a RuleSet JSON side file, so the bundle never needs unpickling. Pickled inputs (a joblib
  scaler, a pickled rule list) are read only when the caller passes ``trust_pickle``,
  because unpickling runs whatever code the file names.

Keras, torch and onnx are an optional extra (``flowscope[keras]``): they are imported
only when a model is actually converted.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from flowscope.errors import FlowscopeError, first_problem
from flowscope.models.bundle import (
    GRAPH_FILE,
    META_FILE,
    BundleMeta,
    Step,
    builtin_dir,
    load_bundle,
    save_bundle,
    user_models_dir,
)
from flowscope.models.rules import Item, Rule, RuleSet

# ONNX and Keras probabilities may differ by float32 rounding in a different operation
# order (observed: ~1e-7); 1e-4 is far above that and far below any threshold decision.
TOLERANCE = 1e-4
# The conventional cut on P(malicious). The old dashboard hard-coded 0.65 for its model;
# a user who knows their model's operating point passes it with --threshold.
DEFAULT_THRESHOLD = 0.5
PROBE_SEED = 20240613
RULES_FILE = "rules.json"
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
INSTALL_HINT = "pip install 'flowscope[keras]'"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
_BENIGN_LABELS = {"benign", "normal"}
_MAX_EXPANDED_RULES = 10_000

Matrix = npt.NDArray[np.float32]


class ModelImportError(FlowscopeError):
    """The model, its feature list, scaler or rules cannot become a bundle (one line)."""


def _one_line(e: BaseException, limit: int = 240) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelImportError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise ModelImportError(f"{path}: {what} is a directory, expected a file") from None
    except OSError as e:
        raise ModelImportError(f"{path}: cannot read {what}: {e.strerror or e}") from None


def _is_json(data: bytes) -> bool:
    """JSON files here are objects or arrays; pickles and joblib files are binary."""
    head = data.lstrip()[:1]
    return head in (b"{", b"[")


def _parse_json(data: bytes, path: Path, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelImportError(f"{path}: {what} is not valid JSON: {e}") from None


def _unpickle(path: Path, trust_pickle: bool, what: str, safe_alternative: str) -> Any:
    """Load a pickle/joblib file, but only when the user said they trust it.

    Unpickling calls whatever constructors the file names, so a downloaded scaler can run
    any code as the importing user. The converted bundle holds plain JSON instead, so the
    trust decision is made once, here, and never again at load time.
    """
    if not trust_pickle:
        raise ModelImportError(
            f"{path}: {what} is a pickle/joblib file, and unpickling runs any code the file "
            f"names; pass --trust-pickle only if you trust its origin, or provide "
            f"{safe_alternative}"
        )
    try:
        try:
            import joblib
        except ImportError:  # a plain pickle needs no joblib; compressed joblib files do
            import pickle

            with path.open("rb") as fh:
                return pickle.load(fh)  # the user passed --trust-pickle
        return joblib.load(path)
    except ModuleNotFoundError as e:
        raise ModelImportError(
            f"{path}: unpickling the {what} needs the Python module {e.name!r} "
            f"(e.g. pip install scikit-learn pandas)"
        ) from None
    except Exception as e:  # pickle raises many unrelated types on a bad file
        raise ModelImportError(f"{path}: cannot unpickle the {what}: {_one_line(e)}") from None


# ----------------------------------------------------------------------------- features


def _norm(name: str) -> str:
    return " ".join(name.strip().split()).casefold()


@dataclass(frozen=True)
class _Names:
    """Registry lookups keyed by normalised spelling (see _norm)."""

    feature: dict[str, str]  # spelling → canonical feature
    dialects: dict[str, set[str]]  # spelling → the dialects that use it
    display: dict[str, str]  # spelling → as written in the registry (for hints)
    identifier: dict[str, str]  # spelling → identifier column (never a model input)
    counters: set[str]  # computed counters that are not model inputs


@cache
def _names() -> _Names:
    from flowscope.flows.registry import DIALECTS, EXTRAS, FEATURES, IDENTIFIERS, column_name

    names = _Names({}, {}, {}, {}, {_norm(x.name) for x in EXTRAS})
    for f in FEATURES:
        for d in DIALECTS:
            col = column_name(f.name, d)
            if col is None:
                continue
            key = _norm(col)
            if names.feature.setdefault(key, f.name) != f.name:  # would be ambiguous
                raise RuntimeError(f"registry: {col!r} names {names.feature[key]} and {f.name}")
            names.dialects.setdefault(key, set()).add(d)
            names.display.setdefault(key, col)
    for ident in IDENTIFIERS:
        for col in (ident.name, ident.cic, ident.ids2017, ident.ids2018):
            if col:
                names.identifier[_norm(col)] = ident.name
    return names


@dataclass(frozen=True)
class FeatureMapping:
    """The model's input columns in canonical names, and the bundle's features.

    A model may read one feature twice (CIC-IDS2017's CSVs carry "Fwd Header Length"
    twice; pandas renames the copy "Fwd Header Length.1"). A bundle lists each feature
    once, so ``index`` tells the exported graph which bundle feature feeds each column.
    """

    source: list[str]  # names as given, one per model input column
    columns: list[str]  # canonical name per model input column (may repeat)
    features: list[str]  # unique canonical names, first-appearance order
    index: list[int]  # column j reads features[index[j]]
    dialect: str  # the one dialect every name belongs to, or "mixed"

    @property
    def duplicated(self) -> bool:
        return len(self.columns) != len(self.features)


def map_feature_names(names: Sequence[str], where: str = "features") -> FeatureMapping:
    """Map names in any header dialect to canonical feature names, or say which fail.

    Identifiers (ports, addresses, protocol, timestamp) are refused: they say which host
    a flow belongs to, not how it behaves, the engine never feeds them to a model, and a
    model that learned the CIC datasets' destination ports learned the capture lab's
    layout. Such a model has to be retrained without them.
    """
    from difflib import get_close_matches

    from flowscope.flows.registry import DIALECTS

    tables = _names()
    index = tables.feature
    if not names:
        raise ModelImportError(f"{where}: the feature list is empty")
    columns: list[str] = []
    unknown: list[str] = []
    identifiers: list[str] = []
    counters: list[str] = []
    seen_dialects: list[set[str]] = []
    for raw in names:
        key = _norm(raw)
        dup = re.fullmatch(r"(.+)\.(\d+)", key)
        if key not in index and dup and dup.group(1) in index:
            key = dup.group(1)  # pandas' name for a repeated CSV column
        if key in index:
            columns.append(index[key])
            seen_dialects.append(tables.dialects[key])
        elif key in tables.identifier:
            identifiers.append(f"{raw!r} ({tables.identifier[key]})")
        elif key in tables.counters:
            counters.append(repr(raw))
        else:
            close = get_close_matches(key, list(index), n=1, cutoff=0.8)
            hint = f" (did you mean {tables.display[close[0]]!r}?)" if close else ""
            unknown.append(f"{raw!r}{hint}")
    problems: list[str] = []
    if unknown:
        shown = ", ".join(unknown[:10]) + (
            f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        )
        problems.append(f"{len(unknown)} unknown feature name(s): {shown}")
    if identifiers:
        problems.append(
            "flow identifiers are not model inputs (they name hosts and services, not "
            f"behaviour; retrain without them): {', '.join(identifiers)}"
        )
    if counters:
        problems.append(f"diagnostic counters are not model inputs: {', '.join(counters)}")
    if problems:
        raise ModelImportError(f"{where}: " + "; ".join(problems))
    features = list(dict.fromkeys(columns))
    pos = {f: i for i, f in enumerate(features)}
    common = set(DIALECTS).intersection(*seen_dialects)
    dialect = next((d for d in DIALECTS if d in common), "mixed")
    return FeatureMapping(list(names), columns, features, [pos[c] for c in columns], dialect)


def read_feature_list(path: Path) -> list[str]:
    """Names from a text file (one per line, '#' comments), a CSV header line or JSON.

    JSON may be a list of names or an object with a "features" list. A single line with
    commas is read as a CSV header, so the header row of a training CSV can be used
    after deleting its label and identifier columns.
    """
    data = _read_bytes(path, "feature list")
    if _is_json(data):
        obj = _parse_json(data, path, "feature list")
        if isinstance(obj, dict):
            obj = obj.get("features")
        if not isinstance(obj, list) or not all(isinstance(x, str) for x in obj):
            raise ModelImportError(
                f'{path}: JSON feature list must be a list of names or {{"features": [...]}}'
            )
        return [x.strip() for x in obj]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ModelImportError(f"{path}: feature list is not UTF-8 text") from None
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if len(lines) == 1 and "," in lines[0]:
        return [x.strip().strip('"') for x in lines[0].split(",") if x.strip()]
    return lines


# ------------------------------------------------------------------------------ scaler


@dataclass
class Preprocessing:
    """Scaler steps over the model's input columns, before de-duplication."""

    steps: list[Step]
    kind: str
    from_pickle: bool = False
    baseline: list[float] | None = None  # occlusion reference (the training mean if known)


def _vector(obj: Any, n: int, what: str, where: str) -> list[float]:
    arr = np.asarray(obj, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise ModelImportError(f"{where}: {what} has {arr.shape[0]} values for {n} features")
    if not np.all(np.isfinite(arr)):
        raise ModelImportError(f"{where}: {what} holds NaN or infinite values")
    return [float(v) for v in arr]


def _check_scaler_names(names: Any, columns: Sequence[str], where: str) -> None:
    """A scaler that knows its feature names must have been fitted on the same columns."""
    if names is None:
        return
    mapped = map_feature_names([str(x) for x in names], f"{where} (scaler feature names)")
    if mapped.columns != list(columns):
        j = next(
            (i for i, (a, b) in enumerate(zip(mapped.columns, columns, strict=False)) if a != b),
            min(len(mapped.columns), len(columns)),
        )
        raise ModelImportError(
            f"{where}: the scaler was fitted on other columns than the feature list "
            f"(first difference at column {j + 1})"
        )


def _json_step(obj: Any, n: int, where: str) -> tuple[list[Step], str, list[float] | None]:
    if not isinstance(obj, dict):
        raise ModelImportError(f"{where}: scaler entries must be JSON objects")
    if "op" in obj:
        try:
            step = Step.model_validate(obj)
        except ValidationError as e:
            raise ModelImportError(f"{where}: invalid step: {first_problem(e)}") from None
        for vec in ("mean", "scale", "min", "max"):
            if getattr(step, vec) is not None:
                _vector(getattr(step, vec), n, vec, where)
        return [step], f"json:{step.op}", None
    keys = set(obj) - {"features", "clip"}
    if keys == {"mean", "scale"}:
        mean = _vector(obj["mean"], n, "mean", where)
        scale = _vector(obj["scale"], n, "scale", where)
        return [Step(op="standardize", mean=mean, scale=scale)], "json:standardize", mean
    if keys == {"min", "max"}:
        lo = _vector(obj["min"], n, "min", where)
        hi = _vector(obj["max"], n, "max", where)
        step = Step(op="minmax", min=lo, max=hi, clip=bool(obj.get("clip", False)))
        return [step], "json:minmax", None
    raise ModelImportError(
        f'{where}: a scaler is {{"mean": [...], "scale": [...]}} or {{"min": [...], '
        f'"max": [...]}} (or a list of those); got keys {sorted(obj)}'
    )


def _json_scaler(obj: Any, columns: Sequence[str], where: str) -> Preprocessing:
    n = len(columns)
    entries = obj if isinstance(obj, list) else obj.get("steps", [obj])
    if not isinstance(entries, list) or not entries:
        raise ModelImportError(f"{where}: the scaler has no steps")
    steps: list[Step] = []
    kinds: list[str] = []
    baseline: list[float] | None = None
    for entry in entries:
        if isinstance(entry, dict):
            _check_scaler_names(entry.get("features"), columns, where)
        more, kind, base = _json_step(entry, n, where)
        steps += more
        kinds.append(kind)
        baseline = base if len(entries) == 1 else None
    return Preprocessing(steps, "+".join(kinds), baseline=baseline)


def _estimator_steps(est: Any, n: int, where: str) -> tuple[list[Step], list[str]]:
    """scikit-learn scalers → Steps, by duck typing on the fitted attributes (no import)."""
    kind = type(est).__name__
    if est is None or (isinstance(est, str) and est == "passthrough"):
        return [], []
    if kind == "Pipeline":
        steps: list[Step] = []
        kinds: list[str] = []
        for _, sub in est.steps:
            more, sub_kinds = _estimator_steps(sub, n, where)
            steps += more
            kinds += sub_kinds
        return steps, kinds
    if not hasattr(est, "n_features_in_"):
        raise ModelImportError(
            f"{where}: the scaler ({kind}) is not fitted, or is not a scikit-learn scaler"
        )
    if int(est.n_features_in_) != n:
        raise ModelImportError(
            f"{where}: the {kind} was fitted on {est.n_features_in_} features, "
            f"the feature list names {n}"
        )
    zeros, ones = [0.0] * n, [1.0] * n
    if kind in ("StandardScaler", "RobustScaler"):
        # sklearn may compute mean_/center_ yet skip it in transform (with_mean=False), so
        # the flags decide, not the attributes' presence.
        standard = kind == "StandardScaler"
        center = getattr(est, "mean_" if standard else "center_", None)
        scale = getattr(est, "scale_", None)
        use_center = getattr(est, "with_mean" if standard else "with_centering", True)
        use_scale = getattr(est, "with_std" if standard else "with_scaling", True)
        mean = _vector(center, n, "center", where) if use_center and center is not None else zeros
        std = _vector(scale, n, "scale_", where) if use_scale and scale is not None else ones
        return [Step(op="standardize", mean=mean, scale=std)], [kind]
    if kind == "MaxAbsScaler":
        scale = _vector(est.scale_, n, "scale_", where)
        return [Step(op="standardize", mean=zeros, scale=scale)], [kind]
    if kind == "MinMaxScaler":
        a, b = (float(v) for v in est.feature_range)
        clip = bool(getattr(est, "clip", False))
        if (a, b) == (0.0, 1.0):
            lo = _vector(est.data_min_, n, "data_min_", where)
            hi = _vector(est.data_max_, n, "data_max_", where)
            return [Step(op="minmax", min=lo, max=hi, clip=clip)], [kind]
        # Another range: sklearn computes x·scale_ + min_, i.e. (x − (−min_/scale_)) / (1/scale_).
        s = np.asarray(_vector(est.scale_, n, "scale_", where))
        m = np.asarray(_vector(est.min_, n, "min_", where))
        if np.any(s == 0):
            raise ModelImportError(f"{where}: the MinMaxScaler has a zero scale_")
        mean = [float(v) for v in -m / s]
        steps = [Step(op="standardize", mean=mean, scale=[float(v) for v in 1.0 / s])]
        if clip:
            steps.append(Step(op="clip", lo=a, hi=b))
        return steps, [kind]
    raise ModelImportError(
        f"{where}: unsupported preprocessor {kind}; supported: StandardScaler, MinMaxScaler, "
        "MaxAbsScaler, RobustScaler and Pipelines of them"
    )


def read_scaler(path: Path, columns: Sequence[str], trust_pickle: bool) -> Preprocessing:
    """The scaler as bundle Steps over the model's columns: JSON, or a trusted pickle."""
    data = _read_bytes(path, "scaler")
    where = str(path)
    if _is_json(data):
        return _json_scaler(_parse_json(data, path, "scaler"), columns, where)
    est = _unpickle(path, trust_pickle, "scaler", 'a JSON scaler {"mean": [...], "scale": [...]}')
    names = getattr(est, "feature_names_in_", None)
    if names is None and type(est).__name__ == "Pipeline":
        names = getattr(est.steps[0][1], "feature_names_in_", None) if est.steps else None
    _check_scaler_names(names, columns, where)
    steps, kinds = _estimator_steps(est, len(columns), where)
    if not steps:
        raise ModelImportError(f"{where}: the preprocessor has no scaling steps")
    # The training mean is the natural "typical value" to occlude a feature with.
    has_mean = kinds == ["StandardScaler"] and bool(getattr(est, "with_mean", False))
    baseline = steps[0].mean if has_mean else None
    return Preprocessing(steps, "+".join(kinds), from_pickle=True, baseline=baseline)


def _dedupe(vec: list[float] | None, mapping: FeatureMapping, what: str, where: str) -> Any:
    """A per-column vector as a per-feature vector; repeated columns must agree."""
    if vec is None or not mapping.duplicated:
        return vec
    out: list[float | None] = [None] * len(mapping.features)
    for j, f in enumerate(mapping.index):
        prev = out[f]
        if prev is None:
            out[f] = vec[j]
        elif not math.isclose(prev, vec[j], rel_tol=1e-6, abs_tol=1e-12):
            raise ModelImportError(
                f"{where}: {what} differs between the repeated columns of "
                f"{mapping.features[f]} ({prev} vs {vec[j]}); the model cannot be fed one value"
            )
    return out


def _dedupe_steps(pre: Preprocessing, mapping: FeatureMapping, where: str) -> list[Step]:
    steps = []
    for s in pre.steps:
        update = {
            k: _dedupe(getattr(s, k), mapping, f"scaler {k}", where)
            for k in ("mean", "scale", "min", "max")
            if getattr(s, k) is not None
        }
        steps.append(s.model_copy(update=update))
    return steps


# ------------------------------------------------------------------------------- rules


def _ge32(a: float) -> float:
    """Smallest float32 ≥ a (the matrix the rules see is float32)."""
    f = np.float32(a)
    if float(f) < a:
        f = np.nextafter(f, np.float32(np.inf))
    return float(f)


def _gt32(a: float) -> float:
    """Smallest float32 > a."""
    f = np.float32(_ge32(a))
    if float(f) == a:
        f = np.nextafter(f, np.float32(np.inf))
    return float(f)


_NUM = r"[-+]?(?:inf|infinity|(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)"
_INTERVAL_RE = re.compile(rf"^([\[(])\s*({_NUM})\s*,\s*({_NUM})\s*([\])])$", re.IGNORECASE)
_ITEM_RE = re.compile(r"^(.+?)\s*(<=|>=|==|=|<|>)\s*(.+)$")


def _interval(value: Any, op: str, where: str) -> tuple[float | None, float | None]:
    """A condition as a float32 half-open range [lo, hi) (None: unbounded)."""
    if hasattr(value, "left") and hasattr(value, "closed"):  # pandas.Interval
        closed = str(value.closed)
        left = "[" if closed in ("left", "both") else "("
        right = "]" if closed in ("right", "both") else ")"
        value = f"{left}{value.left}, {value.right}{right}"
    text = str(value).strip()
    m = _INTERVAL_RE.match(text)
    if m and op in ("=", "=="):
        a, b = float(m.group(2)), float(m.group(3))
        lo = None if a == -math.inf else _ge32(a) if m.group(1) == "[" else _gt32(a)
        hi = None if b == math.inf else _ge32(b) if m.group(4) == ")" else _gt32(b)
        return lo, hi
    try:
        v = float(text)
    except ValueError:
        raise ModelImportError(
            f"{where}: value {text!r} is a label without bin edges; rules must carry the "
            "numbers they were mined with (a value, an interval like (0.5, 10] or <=, >=)"
        ) from None
    if not math.isfinite(v):
        raise ModelImportError(f"{where}: value {text!r} is not a finite number")
    if op in ("=", "=="):  # the float32 value the matrix holds for v
        r = float(np.float32(v))
        return r, _gt32(r)
    return {
        "<": (None, _ge32(v)),
        "<=": (None, _gt32(v)),
        ">": (_gt32(v), None),
        ">=": (_ge32(v), None),
    }[op]


def _items(obj: Any) -> list[Any]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, (set, frozenset, list, tuple)):
        return list(obj)
    raise ValueError(f"expected items, got {type(obj).__name__}")


def _is_benign(consequent: Any) -> bool:
    for it in _items(consequent):
        text = str(it[1] if isinstance(it, tuple) and len(it) == 2 else it)
        if _norm(text.rsplit("=", 1)[-1]).rstrip(".") in _BENIGN_LABELS:  # KDD: "normal."
            return True
    return False


def _is_rule(r: Any) -> bool:
    if isinstance(r, dict):
        return any(k in r for k in ("antecedent", "antecedents"))
    if not isinstance(r, (tuple, list)) or not 2 <= len(r) <= 5:
        return False
    ante, cons = r[0], r[1]
    if not isinstance(ante, (set, frozenset, list, tuple)):
        return False
    return all(isinstance(i, (str, tuple)) for i in ante) and (
        isinstance(cons, str)
        or (
            isinstance(cons, (set, frozenset, list, tuple))
            and all(isinstance(c, str) for c in cons)
        )
    )


def _rule_records(obj: Any, where: str) -> list[dict[str, Any]]:
    """Normalise the accepted rule shapes to {antecedent, consequent, support, ...} dicts.

    Accepted: an mlxtend ``association_rules`` DataFrame, one rule or a list of rules, a
    rule being a dict or a tuple (antecedent items, consequent[, support, confidence,
    lift]) with items "feature=value" (or "<=", ">=" … comparisons, or intervals).
    """
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):  # pandas DataFrame
        cols = set(obj.columns)
        if not {"antecedents", "consequents"} <= cols:
            raise ModelImportError(
                f"{where}: a rules DataFrame needs 'antecedents' and 'consequents' columns"
            )
        rows = obj.to_dict("records")
    elif _is_rule(obj):
        rows = [obj]
    elif isinstance(obj, (list, tuple)) and obj and all(_is_rule(r) for r in obj):
        rows = list(obj)
    else:
        raise ModelImportError(
            f"{where}: not a rule list: expected an mlxtend association_rules DataFrame or "
            "(antecedent items, consequent[, support, confidence, lift]) tuples"
        )
    out = []
    for r in rows:
        if isinstance(r, dict):
            out.append(
                {
                    "antecedent": r.get("antecedents", r.get("antecedent")),
                    "consequent": r.get("consequents", r.get("consequent", "normal")),
                    "support": r.get("support"),
                    "confidence": r.get("confidence"),
                    "lift": r.get("lift"),
                }
            )
        else:
            vals = [*list(r), None, None, None][:5]
            out.append(
                dict(
                    zip(
                        ["antecedent", "consequent", "support", "confidence", "lift"],
                        vals,
                        strict=True,
                    )
                )
            )
    return out


def rules_from_records(
    records: Iterable[dict[str, Any]], features: Sequence[str], where: str
) -> tuple[RuleSet, list[str]]:
    """Build a RuleSet over ``features`` with the bin edges the conditions imply.

    Every numeric condition becomes a float32 half-open range; the edges of all ranges on
    a feature become its bins, and a range covering several bins becomes one rule per bin
    (rules are alternatives, so the veto fires exactly where the original rule held).
    Rules that do not conclude benign/normal cannot veto an alarm and are skipped.
    """
    notes: list[str] = []
    wanted = set(features)
    parsed: list[tuple[dict[str, tuple[float | None, float | None]], dict[str, Any]]] = []
    skipped = 0
    for i, rec in enumerate(records):
        here = f"{where}: rule {i + 1}"
        try:
            ante = _items(rec["antecedent"])
            benign = _is_benign(rec["consequent"])
        except (ValueError, TypeError) as e:
            raise ModelImportError(f"{here}: {e}") from None
        if not benign:
            skipped += 1
            continue
        if not ante:
            raise ModelImportError(f"{here}: empty antecedent")
        conds: dict[str, tuple[float | None, float | None]] = {}
        for it in ante:
            if isinstance(it, tuple) and len(it) == 2:
                name, op, value = str(it[0]), "=", it[1]
            else:
                m = _ITEM_RE.match(str(it))
                if not m:
                    raise ModelImportError(f"{here}: item {it!r} is not feature=value")
                name, op, value = m.group(1), m.group(2), m.group(3)
            feat = map_feature_names([name], f"{here}").columns[0]
            if feat not in wanted:
                raise ModelImportError(f"{here}: {name!r} is not one of the model's features")
            lo, hi = _interval(value, op, f"{here}: {name}")
            plo, phi = conds.get(feat, (None, None))
            lo = lo if plo is None else plo if lo is None else max(lo, plo)
            hi = hi if phi is None else phi if hi is None else min(hi, phi)
            conds[feat] = (lo, hi)
        if any(lo is not None and hi is not None and lo >= hi for lo, hi in conds.values()):
            notes.append(f"rule {i + 1} can never hold (empty range) and was dropped")
            continue
        stats = {k: rec.get(k) for k in ("support", "confidence", "lift")}
        parsed.append((conds, stats))
    if skipped:
        notes.append(f"{skipped} rule(s) without a benign/normal consequent skipped")
    if not parsed:
        raise ModelImportError(f"{where}: no rule concludes benign/normal, nothing can veto")
    edges: dict[str, list[float]] = {}
    for conds, _ in parsed:
        for feat, (lo, hi) in conds.items():
            edges.setdefault(feat, []).extend(v for v in (lo, hi) if v is not None)
    bins = {f: sorted(set(v)) for f, v in edges.items() if v}
    rules: list[Rule] = []
    for conds, stats in parsed:
        choices: list[list[Item]] = []
        for feat, (lo, hi) in conds.items():
            if lo is None and hi is None:
                continue  # an unbounded condition always holds
            cuts = np.asarray(bins[feat], dtype=np.float64)
            first = 0 if lo is None else int(np.searchsorted(cuts, lo, side="right"))
            stop = len(cuts) + 1 if hi is None else int(np.searchsorted(cuts, hi, side="right"))
            choices.append([Item(feature=feat, bin=b) for b in range(first, stop)])
        if not choices:
            raise ModelImportError(f"{where}: a rule's conditions always hold; it would veto all")
        for combo in itertools.product(*choices):
            rules.append(
                Rule(
                    antecedent=list(combo),
                    support=float(stats["support"] or 0.0),
                    confidence=float(stats["confidence"] or 0.0),
                    lift=None if stats["lift"] is None else float(stats["lift"]),
                )
            )
            if len(rules) > _MAX_EXPANDED_RULES:
                raise ModelImportError(f"{where}: rules expand to over {_MAX_EXPANDED_RULES} bins")
    if len(rules) != len(parsed):
        notes.append(f"{len(parsed)} rule(s) became {len(rules)} single-bin rules")
    try:
        ruleset = RuleSet(
            description=f"converted from {Path(where).name} by flowscope models import",
            features=list(features),
            bins={f: bins[f] for f in features if f in bins},
            rules=rules,
        )
    except ValidationError as e:
        raise ModelImportError(f"{where}: {e.errors()[0]['msg']}") from None
    return ruleset, notes


def _remap_ruleset(rs: RuleSet, features: Sequence[str], where: str) -> RuleSet:
    """A RuleSet JSON over the bundle's feature matrix (names in any dialect accepted)."""

    def canon(name: str) -> str:
        feat = map_feature_names([name], f"{where}: rules").columns[0]
        if feat not in features:
            raise ModelImportError(f"{where}: rules use {name!r}, not one of the model's features")
        return feat

    raw = rs.model_dump()
    raw["features"] = list(features)
    raw["bins"] = {canon(k): v for k, v in rs.bins.items()}
    raw["categories"] = {canon(k): v for k, v in rs.categories.items()}
    for rule in raw["rules"]:
        for it in rule["antecedent"]:
            it["feature"] = canon(it["feature"])
    try:
        return RuleSet.model_validate(raw)
    except ValidationError as e:
        raise ModelImportError(f"{where}: invalid rules: {first_problem(e)}") from None


def read_rules(
    path: Path, features: Sequence[str], trust_pickle: bool
) -> tuple[RuleSet, bool, list[str]]:
    """Rules as a RuleSet over the bundle features: (rules, came from a pickle, notes).

    A RuleSet JSON is validated; a JSON list of rules, or a pickled rule list (only with
    ``trust_pickle``), is converted with :func:`rules_from_records`.
    """
    data = _read_bytes(path, "rules")
    where = str(path)
    if _is_json(data):
        obj = _parse_json(data, path, "rules")
        if isinstance(obj, dict):
            try:
                rs = RuleSet.model_validate(obj)
            except ValidationError as e:
                raise ModelImportError(f"{where}: invalid rules: {first_problem(e)}") from None
            return _remap_ruleset(rs, features, where), False, []
        rs, notes = rules_from_records(_rule_records(obj, where), features, where)
        return rs, False, notes
    obj = _unpickle(path, trust_pickle, "rules", "rules as RuleSet JSON")
    rs, notes = rules_from_records(_rule_records(obj, where), features, where)
    return rs, True, notes


# ------------------------------------------------------------------------------- keras


def _keras() -> Any:
    """Keras 3 on the torch backend, or a one-line error saying how to install it."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError as e:
        missing = getattr(e, "name", None) or "keras"
        raise ModelImportError(
            f"importing Keras models needs Keras 3 and torch ({missing} is missing): {INSTALL_HINT}"
        ) from None
    if int(str(keras.__version__).split(".")[0]) < 3:
        raise ModelImportError(f"Keras {keras.__version__} found, Keras 3 needed: {INSTALL_HINT}")
    if keras.backend.backend() != "torch":
        raise ModelImportError(
            f"Keras runs on the {keras.backend.backend()} backend; flowscope converts on "
            "torch: unset KERAS_BACKEND or set it to torch"
        )
    return keras


def sniff_model_file(path: Path) -> str:
    """'keras' (zip archive) or 'h5' (HDF5), from the file's first bytes, not its name."""
    if path.is_dir():
        raise ModelImportError(
            f"{path}: a directory (TensorFlow SavedModel?); save the model as .keras or .h5"
        )
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except FileNotFoundError:
        raise ModelImportError(f"{path}: model file not found") from None
    except OSError as e:
        raise ModelImportError(f"{path}: cannot read the model: {e.strerror or e}") from None
    if head.startswith(_HDF5_MAGIC):
        return "h5"
    if head.startswith(_ZIP_MAGIC):
        return "keras"
    raise ModelImportError(f"{path}: not a Keras model (neither an HDF5 .h5 nor a .keras archive)")


def load_keras_model(path: Path) -> Any:
    """Load a .keras or legacy .h5 model in Keras safe mode, without compiling it.

    ``safe_mode=True`` (Keras applies it to both formats) refuses to deserialise Lambda
    layers holding Python bytecode, the one way a model file could run code on load.
    """
    kind = sniff_model_file(path)
    keras = _keras()
    with tempfile.TemporaryDirectory(prefix="flowscope-import-") as td:
        src = path
        ok = (".keras",) if kind == "keras" else (".h5", ".hdf5")
        if path.suffix.lower() not in ok:  # Keras chooses its loader by the file name
            src = Path(td) / f"model{ok[0]}"
            shutil.copyfile(path, src)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return keras.models.load_model(src, compile=False, safe_mode=True)
        except ImportError as e:
            raise ModelImportError(f"{path}: {_one_line(e)}: {INSTALL_HINT}") from None
        except Exception as e:  # Keras raises ValueError, TypeError, OSError, KeyError …
            msg = _one_line(e)
            if "Lambda" in msg:
                raise ModelImportError(
                    f"{path}: the model has a Lambda layer with stored Python code; flowscope "
                    "loads models in Keras safe mode and never runs such code. Replace the "
                    "Lambda by built-in layers and save the model again"
                ) from None
            if "Unknown" in msg or "Could not locate" in msg or "custom_objects" in msg:
                raise ModelImportError(
                    f"{path}: the model uses a layer or object Keras does not know (a custom "
                    f"class?); only built-in Keras layers can be imported: {msg}"
                ) from None
            raise ModelImportError(f"{path}: Keras cannot load the model: {msg}") from None


def keras_version() -> str:
    return str(_keras().__version__)


def _io_shapes(model: Any, where: str) -> tuple[tuple[int, ...], int]:
    """(input dims without the batch axis, output width) of a single-input model."""
    inputs = getattr(model, "inputs", None)
    outputs = getattr(model, "outputs", None)
    if not inputs or not outputs:
        raise ModelImportError(
            f"{where}: the model does not declare its inputs (a subclassed model?); "
            "save a Sequential or functional model"
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelImportError(
            f"{where}: the model has {len(inputs)} input(s) and {len(outputs)} output(s); "
            "flowscope feeds one feature vector and reads one probability vector"
        )
    dims = tuple(inputs[0].shape)[1:]
    if not dims or any(d is None for d in dims):
        raise ModelImportError(f"{where}: input shape {tuple(inputs[0].shape)} is not fixed")
    out = tuple(outputs[0].shape)
    if len(out) != 2 or out[1] is None:
        raise ModelImportError(f"{where}: output shape {out} is not (batch, classes)")
    return tuple(int(d) for d in dims), int(out[1])


def keras_predict(model: Any, x: Matrix, dims: tuple[int, ...]) -> Matrix:
    """The Keras model's own outputs for rows of its input columns (reference values)."""
    import torch

    with torch.no_grad():  # on the torch backend a Keras model returns a torch tensor
        y = model(x.reshape((x.shape[0], *dims)), training=False)
    return np.asarray(y.detach().cpu().numpy(), dtype=np.float32).reshape(x.shape[0], -1)


def _column_runs(index: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive ascending runs of ``index`` as [start, stop) slices."""
    runs: list[tuple[int, int]] = []
    for i in index:
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def export_onnx(model: Any, mapping: FeatureMapping, dims: tuple[int, ...]) -> bytes:
    """ONNX bytes taking [batch, len(features)] float32, through Keras's own exporter.

    The model is wrapped in a functional model that takes the bundle's features, repeats
    columns the model reads twice (slices + concatenate: exact, unlike a 0/1 matrix that
    turns an infinite value into NaN) and restores its input shape (e.g. (k, 1) for 1-D
    convolutions). Keras 3 exports through torch.onnx's TorchScript exporter when the
    batch axis is dynamic; if that fails, the wrapper (a torch module on this backend) is
    exported by torch.onnx directly.
    """
    keras = _keras()
    k = len(mapping.features)
    inp = keras.Input((k,), name="features", dtype="float32")
    x = inp
    runs = _column_runs(mapping.index)
    if runs != [(0, k)]:
        x = keras.ops.concatenate([inp[:, a:b] for a, b in runs], axis=1)
    if dims != (len(mapping.columns),):
        x = keras.layers.Reshape(dims)(x)
    wrapper = keras.Model(inp, model(x), name="flowscope_import")
    wrapper(np.zeros((1, k), np.float32))  # Keras's exporter wants a model that has run
    with tempfile.TemporaryDirectory(prefix="flowscope-onnx-") as td, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter from torch
        out = Path(td) / GRAPH_FILE
        try:
            wrapper.export(str(out), format="onnx", verbose=False)
        except Exception as first:
            try:
                _torch_export(wrapper, k, out)
            except Exception:
                raise ModelImportError(f"ONNX export failed: {_one_line(first)}") from None
        return out.read_bytes()


def _torch_export(module: Any, width: int, out: Path) -> None:
    """Fallback: torch.onnx's TorchScript exporter on the Keras model's torch module."""
    import torch

    module.eval()
    torch.onnx.export(
        module,
        (torch.zeros(1, width),),
        str(out),
        input_names=["features"],
        output_names=["probabilities"],
        dynamic_axes={"features": {0: "batch"}, "probabilities": {0: "batch"}},
        dynamo=False,
    )


def probe_rows(width: int, rng: np.random.Generator) -> Matrix:
    """Model-space inputs for the ONNX-vs-Keras check.

    Standardised-looking rows (most models see scaled inputs), [0, 1] rows (MinMax),
    zeros, large values (saturated activations) and raw-flow-like positive magnitudes
    (models trained on unscaled features).
    """
    parts = [
        rng.standard_normal((160, width)),
        rng.uniform(0.0, 1.0, (48, width)),
        np.zeros((1, width)),
        rng.standard_normal((16, width)) * 100.0,
        np.abs(rng.standard_normal((32, width))) * 10.0 ** rng.uniform(0, 6, (32, width)),
    ]
    return np.concatenate(parts).astype(np.float32)


def _check_probabilities(y: Matrix, where: str) -> None:
    if not np.all(np.isfinite(y)):
        raise ModelImportError(f"{where}: the model outputs NaN or infinity on probe inputs")
    lo, hi = float(y.min()), float(y.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ModelImportError(
            f"{where}: outputs range {lo:.3g}..{hi:.3g}, not probabilities; the last layer "
            "must be a softmax (or one sigmoid unit)"
        )
    if y.shape[1] > 1:
        sums = y.sum(axis=1)
        if np.abs(sums - 1.0).max() > 1e-3:
            raise ModelImportError(
                f"{where}: output rows sum to {sums.min():.3g}..{sums.max():.3g}, not 1; the "
                "last layer must be a softmax over the classes"
            )


# ------------------------------------------------------------------------------ import


@dataclass
class ImportResult:
    """What an import wrote and how closely the ONNX graph matched Keras."""

    path: Path
    meta: BundleMeta
    rows_checked: int
    max_abs_diff: float
    notes: list[str] = field(default_factory=list)


def parse_classes(text: str | None, width: int, where: str) -> list[str]:
    """Class names for the model's outputs; one sigmoid unit means benign vs malicious."""
    if text is None:
        if width in (1, 2):
            return ["benign", "malicious"]
        raise ModelImportError(
            f"{where}: the model has {width} outputs; name them with --classes benign,...,"
            " in the order of the training labels"
        )
    classes = [c.strip() for c in text.split(",") if c.strip()]
    if not classes or classes[0] != "benign":
        raise ModelImportError("--classes must start with benign (the model's output 0)")
    if len(set(classes)) != len(classes):
        raise ModelImportError("--classes has duplicate names")
    expected = 2 if width == 1 else width
    if len(classes) != expected:
        what = "one sigmoid output (2 classes)" if width == 1 else f"{width} outputs"
        raise ModelImportError(f"{where}: the model has {what}; --classes names {len(classes)}")
    return classes


def default_name(model_path: Path) -> str:
    """A bundle name from the model file's name (letters, digits, '.', '_', '-')."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", model_path.stem).strip("-._")
    return name[:64] or "model"


def _target(name: str | None, out_dir: Path | None, model_path: Path) -> tuple[str, Path]:
    if name is None:
        name = out_dir.resolve().name if out_dir is not None else default_name(model_path)
    if not _NAME_RE.match(name):
        raise ModelImportError(
            f"bundle name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)"
        )
    if out_dir is None:
        if (builtin_dir() / name).exists():
            raise ModelImportError(
                f"{name!r} is the name of a shipped model, which takes precedence; choose "
                "another --name"
            )
        out_dir = user_models_dir() / name
    return name, out_dir


def _check_target(target: Path, force: bool) -> None:
    """Never overwrite something that is not a bundle; replace a bundle only with force."""
    if not target.exists():
        return
    if not target.is_dir():
        raise ModelImportError(f"{target}: exists and is not a directory")
    if not any(target.iterdir()):
        return
    if not (target / META_FILE).is_file():
        raise ModelImportError(f"{target}: exists, is not empty and is not a model bundle")
    if not force:
        raise ModelImportError(f"{target}: a bundle exists there; pass --force to replace it")


def _install(staged: Path, target: Path) -> None:
    """Move a checked bundle into place; an existing bundle is swapped out, then deleted."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
    staged.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def import_keras_model(
    model_path: str | os.PathLike[str],
    features_path: str | os.PathLike[str],
    *,
    scaler_path: str | os.PathLike[str] | None = None,
    rules_path: str | os.PathLike[str] | None = None,
    classes: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    name: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    description: str = "",
    trust_pickle: bool = False,
    force: bool = False,
) -> ImportResult:
    """Convert a Keras model and its inputs description into a checked bundle.

    Cheap checks (files, feature names, scaler, rules, target) run before Keras is
    imported, so a typo costs no torch start-up. The bundle is staged next to its target,
    loaded back with :func:`load_bundle` and compared with Keras; only then is it moved
    into place, so a failed import never leaves a half-written bundle behind.
    """
    model_file = Path(model_path)
    where = str(model_file)
    kind = sniff_model_file(model_file)
    feat_file = Path(features_path)
    mapping = map_feature_names(read_feature_list(feat_file), str(feat_file))
    if not 0.0 <= threshold <= 1.0:
        raise ModelImportError(f"--threshold {threshold} is not within [0, 1]")
    notes: list[str] = []
    if mapping.duplicated:
        notes.append(
            f"{len(mapping.columns) - len(mapping.features)} repeated column(s) are fed from "
            "one feature each"
        )
    pre = Preprocessing([], "none")
    scaler_file = Path(scaler_path) if scaler_path is not None else None
    if scaler_file is not None:
        pre = read_scaler(scaler_file, mapping.columns, trust_pickle)
    steps = [Step(op="nan_to_num"), *_dedupe_steps(pre, mapping, str(scaler_file))]
    baseline = _dedupe(pre.baseline, mapping, "scaler mean", str(scaler_file))
    side: dict[str, tuple[str, bytes]] = {}
    training: dict[str, Any] = {
        "source_file": model_file.name,
        "source_sha256": sha256_file(model_file),
        "source_format": kind,
        "source_features": mapping.source,
        "feature_dialect": mapping.dialect,
        "imported_by": "flowscope models import",
    }
    if scaler_file is not None:
        training["scaler"] = {
            "file": scaler_file.name,
            "sha256": sha256_file(scaler_file),
            "kind": pre.kind,
            "from_pickle": pre.from_pickle,
        }
    if rules_path is not None:
        rules_file = Path(rules_path)
        ruleset, from_pickle, rule_notes = read_rules(rules_file, mapping.features, trust_pickle)
        notes += rule_notes
        side["rules"] = (
            RULES_FILE,
            (ruleset.model_dump_json(indent=1, exclude_none=True) + "\n").encode(),
        )
        training["rules"] = {
            "file": rules_file.name,
            "sha256": sha256_file(rules_file),
            "from_pickle": from_pickle,
            "count": len(ruleset.rules),
        }
    name, target = _target(name, Path(out_dir) if out_dir is not None else None, model_file)
    _check_target(target, force)

    model = load_keras_model(model_file)
    dims, width = _io_shapes(model, where)
    if math.prod(dims) != len(mapping.columns):
        raise ModelImportError(
            f"{where}: the model takes {math.prod(dims)} inputs (shape {dims}) but the "
            f"feature list names {len(mapping.columns)}"
        )
    class_names = parse_classes(classes, width, where)
    rng = np.random.default_rng(PROBE_SEED)
    probe = probe_rows(len(mapping.features), rng)
    expected = keras_predict(model, probe[:, mapping.index], dims)
    _check_probabilities(expected, where)
    onnx_bytes = export_onnx(model, mapping, dims)
    training["keras_version"] = keras_version()
    training["keras_backend"] = "torch"

    meta = BundleMeta(
        name=name,
        description=description or f"Keras model imported from {model_file.name}",
        algorithm="keras",
        features=mapping.features,
        preprocessing=steps,
        classes=class_names,
        output="sigmoid" if width == 1 else "probabilities",
        threshold=threshold,
        threshold_rule=(
            "default 0.5 (not tuned by flowscope)"
            if threshold == DEFAULT_THRESHOLD
            else "set by the user at import (--threshold)"
        ),
        training=training,
        explain="occlusion",
        baseline=baseline,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{name}.import-", dir=target.parent))
    try:
        save_bundle(staged, meta, onnx_bytes, side)
        bundle = load_bundle(staged)
        got = bundle.run(probe)
        ref = np.stack([1.0 - expected[:, 0], expected[:, 0]], axis=1) if width == 1 else expected
        diff = float(np.abs(got - ref).max())
        if not diff <= TOLERANCE:  # also catches NaN
            raise ModelImportError(
                f"{where}: the ONNX export disagrees with Keras by up to {diff:.3g} "
                f"(tolerance {TOLERANCE:g}); the model uses an operation that does not convert"
            )
        meta = bundle.meta.model_copy(
            update={
                "training": {
                    **training,
                    "onnx_check": {
                        "rows": len(probe),
                        "max_abs_diff": diff,
                        "tolerance": TOLERANCE,
                    },
                }
            }
        )
        (staged / META_FILE).write_text(meta.model_dump_json(indent=2) + "\n", encoding="utf-8")
        _install(staged, target)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return ImportResult(target, meta, len(probe), diff, notes)
