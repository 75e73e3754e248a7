"""`flowscope train` and `flowscope evaluate` as library calls.

fit(): labelled inputs → leak-free split → per-attack sampling → model → ONNX bundle
whose ONNX predictions are checked against the native model, with the decision
threshold chosen on the validation split for a target false-positive rate.

evaluate(): a bundle + labelled test inputs (other lab runs, other networks' captures)
→ metrics JSON, Markdown and plots.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from flowscope import __version__
from flowscope.errors import FlowscopeError
from flowscope.models.bundle import FLOW_FEATURE_SET, BundleMeta, load_bundle, save_bundle
from flowscope.models.classify import FlowClassifier, load_detector
from flowscope.train.common import Trained, check_agreement
from flowscope.train.data import FEATURE_NAMES, Dataset, load_labelled, to_dataset
from flowscope.train.metrics import choose_threshold, evaluate_arrays
from flowscope.train.split import cap_per_attack, reserved_captures, validation_mask

ALGORITHMS = ("lightgbm", "rescnn", "mlp")
DEFAULT_TARGET_FPR = 0.005
Log = Callable[[str], None]


def _fit_one(algorithm: str, train: Dataset, val: Dataset, seed: int, log: Log) -> Trained:
    if algorithm == "lightgbm":
        from flowscope.train.trees import train_lightgbm

        return train_lightgbm(train, val, seed=seed)
    if algorithm in ("mlp", "rescnn"):
        from flowscope.train.nets import train_net

        return train_net(algorithm, train, val, seed=seed, log=log)
    raise FlowscopeError(f"unknown algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}")


def _summary(ds: Dataset) -> dict[str, Any]:
    kinds = Counter(str(k) for k, a in zip(ds.kind, ds.attack_id, strict=True) if a != "")
    return {
        "flows": len(ds),
        "families": ds.family_counts(),
        "attack_kinds": dict(sorted(kinds.items())),
        "attack_instances": len(
            {(s, a) for s, a in zip(ds.source, ds.attack_id, strict=True) if a}
        ),
        "sources": sorted({str(s) for s in ds.source}),
    }


def fit(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    algorithms: Sequence[str] = ALGORITHMS,
    validation: Sequence[str | os.PathLike[str]] | None = None,
    target_fpr: float = DEFAULT_TARGET_FPR,
    max_per_attack: int = 4000,
    seed: int = 0,
    test_fraction: float = 0.0,
    mapping: Path | None = None,
    log: Log = lambda s: None,
) -> dict[str, Path]:
    """Train each algorithm; write one bundle per algorithm under ``out_dir``."""
    for a in algorithms:
        if a not in ALGORITHMS:
            raise FlowscopeError(f"unknown algorithm {a!r}; choose from {', '.join(ALGORITHMS)}")
    if not 0 < target_fpr < 1:
        raise FlowscopeError("--target-fpr must be between 0 and 1")
    t0 = time.perf_counter()
    table = load_labelled(inputs, mapping=mapping, on_table=lambda s, n: log(f"  {s}: {n:,} flows"))
    full = to_dataset(table)
    reserved = reserved_captures(full.source, test_fraction)
    if reserved:
        full = full.subset(~np.isin(full.source, np.array(sorted(reserved), dtype=object)))
        log(f"reserved {len(reserved)} captures for testing (--test-fraction {test_fraction})")
    if validation:
        vtable = load_labelled(validation, mapping=mapping)
        val_full = to_dataset(vtable, full.classes)
        train_full = full
        split_rule = f"validation inputs given: {', '.join(map(str, validation))}"
    else:
        mask = validation_mask(full)
        train_full, val_full = full.subset(~mask), full.subset(mask)
        split_rule = (
            "per attack kind the middle instance (by time) held out; benign: every fifth "
            "300 s block of lab runs, whole captures for short sources"
        )
    log(f"loaded {len(full):,} flows in {time.perf_counter() - t0:.1f} s; {split_rule}")
    rng = np.random.default_rng(seed)
    train = train_full.subset(cap_per_attack(train_full, max_per_attack, rng))
    val = val_full.subset(cap_per_attack(val_full, max_per_attack, rng))
    counts = train.family_counts()
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise FlowscopeError(f"no training flows for {', '.join(empty)}")
    if val.family_counts()["benign"] == 0:
        raise FlowscopeError("validation split has no benign flows; add benign traffic")
    log(f"train {counts}; validation {val.family_counts()}")
    baseline = np.nanmedian(np.where(np.isfinite(train.x), train.x, np.nan)[train.y == 0], axis=0)
    baseline = np.nan_to_num(baseline).astype(np.float64)
    training_info = {
        "inputs": [str(p) for p in inputs],
        "split": split_rule,
        "max_flows_per_attack_instance": max_per_attack,
        "seed": seed,
        "reserved_for_test": sorted(reserved),
        "train": _summary(train),
        "validation": _summary(val),
        "weights": (
            "each family the same total weight; within a family, lab runs and single "
            "captures each half"
        ),
    }
    out = Path(out_dir)
    written: dict[str, Path] = {}
    for algorithm in algorithms:
        t1 = time.perf_counter()
        trained = _fit_one(algorithm, train, val, seed, log)
        fit_s = time.perf_counter() - t1
        meta = BundleMeta(
            name=f"flow-{algorithm}",
            description=f"{algorithm} flow classifier ({len(train.classes)} classes)",
            algorithm=algorithm,
            feature_set=FLOW_FEATURE_SET,
            features=list(FEATURE_NAMES),
            preprocessing=trained.preprocessing,
            classes=list(train.classes),
            output_name=trained.output_name,
            explain=trained.explain,  # type: ignore[arg-type]
            baseline=baseline.tolist(),
            training={**training_info, "model": trained.info, "fit_seconds": round(fit_s, 1)},
        )
        with tempfile.TemporaryDirectory() as tmp:
            bundle = load_bundle(save_bundle(tmp, meta, trained.onnx, trained.side_files))
            diff = check_agreement(trained, bundle.predict_proba, val.x)
            proba = bundle.predict_proba(val.x)
        score = 1.0 - proba[:, 0]
        threshold = choose_threshold(score[val.y == 0], target_fpr)
        clf_classes = np.asarray(train.classes, dtype=object)
        top = clf_classes[np.argmax(proba[:, 1:], axis=1) + 1]
        pred = np.where(score >= threshold, top, "benign")
        metrics = evaluate_arrays(clf_classes[val.y], score, pred, threshold, kind=val.kind)
        metrics.pop("pr_curve", None)
        meta = meta.model_copy(
            update={
                "threshold": threshold,
                "threshold_rule": (
                    f"smallest threshold ≥ 0.5 with FPR ≤ {target_fpr:g} on the validation "
                    "split's benign flows"
                ),
                "metrics": {"validation": metrics, "onnx_native_max_abs_diff": diff},
            }
        )
        path = save_bundle(out / algorithm, meta, trained.onnx, trained.side_files)
        written[algorithm] = path
        b = metrics["binary"]
        log(
            f"{algorithm}: fit {fit_s:.0f} s, threshold {threshold:.3f}; validation recall "
            f"{b['recall']:.3f}, FPR {b['fpr']:.4f}, macro-F1 {metrics['macro_f1']:.3f}, "
            f"ONNX/native max diff {diff:.1e} → {path}"
        )
    return written


def evaluate(
    bundle_path: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    title: str = "evaluation",
    mapping: Path | None = None,
    log: Log = lambda s: None,
) -> dict[str, Any]:
    """Score labelled inputs with a bundle; return the report dict (see report.py)."""
    detector = load_detector(bundle_path)
    meta = detector.bundle.meta
    table = load_labelled(inputs, mapping=mapping)
    table, excluded = _drop_seen_sources(table, meta.training)
    if excluded:
        log(f"excluded {sum(excluded.values()):,} flows of {len(excluded)} inputs the model saw")
    log(f"{table.num_rows:,} labelled flows")
    t0 = time.perf_counter()
    if isinstance(detector, FlowClassifier):
        verdicts = detector.classify(table)
    else:
        # stateful detectors (KDD windows) see each source in time order, one at a time
        order = np.lexsort(
            (
                np.asarray(table.column("first_seen").to_numpy()),
                np.asarray(
                    table.column("source").to_numpy(zero_copy_only=False), dtype=object
                ).astype(str),
            )
        )
        table = table.take(order)
        verdicts = _classify_by_source(detector, table)
    elapsed = time.perf_counter() - t0
    fam = np.asarray(table.column("family").to_numpy(zero_copy_only=False), dtype=object)
    names = np.asarray(verdicts.classes, dtype=object)
    pred = names[verdicts.family]
    metrics = evaluate_arrays(
        fam,
        verdicts.score,
        pred,
        verdicts.threshold,
        kind=np.asarray(table.column("attack_kind").to_numpy(zero_copy_only=False), dtype=object),
        source=np.asarray(table.column("source").to_numpy(zero_copy_only=False), dtype=object),
    )
    report: dict[str, Any] = {
        "title": title,
        "model": meta.name,
        "algorithm": meta.algorithm,
        "bundle": str(bundle_path),
        "inputs": [str(p) for p in inputs],
        "flowscope_version": __version__,
        "classify_seconds": round(elapsed, 3),
        "metrics": metrics,
    }
    if excluded:
        report["excluded_seen_sources"] = excluded
    if verdicts.suppressed is not None:
        sup = verdicts.suppressed
        mal = fam != "benign"
        report["filter"] = {
            "suppressed": int(sup.sum()),
            "false_positives_removed": int((sup & ~mal).sum()),
            "attacks_lost": int((sup & mal).sum()),
        }
    return report


def _norm(source: str) -> str:
    return os.path.realpath(source)


def _drop_seen_sources(table: Any, training: dict[str, Any]) -> tuple[Any, dict[str, int]]:
    """Remove flows of inputs the bundle was trained or validated on (no leakage)."""
    seen = set()
    for part in ("train", "validation"):
        seen |= {_norm(s) for s in training.get(part, {}).get("sources", [])}
    if not seen:
        return table, {}
    src = np.asarray(table.column("source").to_numpy(zero_copy_only=False), dtype=object)
    uniq = {s: _norm(str(s)) in seen for s in set(src.tolist())}
    drop = np.array([uniq[s] for s in src], dtype=bool)
    if not drop.any():
        return table, {}
    excluded = {str(s): int((src == s).sum()) for s, d in uniq.items() if d}
    if drop.all():
        raise FlowscopeError("every test input was used to train or validate this model")
    return table.filter(pa.array(~drop)), excluded


def _classify_by_source(detector: Any, table: Any) -> Any:
    """Run a stateful detector once per source (fresh state each), concatenating verdicts."""
    from flowscope.models.classify import Verdicts

    src = np.asarray(table.column("source").to_numpy(zero_copy_only=False), dtype=object)
    parts = []
    start = 0
    while start < len(src):
        end = (
            start + int(np.argmax(src[start:] != src[start]))
            if (src[start:] != src[start]).any()
            else len(src)
        )
        fresh = type(detector)(detector.bundle)
        parts.append(fresh.classify(table.slice(start, end - start)))
        start = end
    first = parts[0]

    def cat(name: str) -> Any:
        vals = [getattr(p, name) for p in parts]
        return None if any(v is None for v in vals) else np.concatenate(vals)

    return Verdicts(
        first.classes,
        cat("proba"),
        cat("score"),
        cat("malicious"),
        cat("top_family"),
        first.threshold,
        cat("suppressed"),
        cat("rule"),
    )
