"""Detection metrics computed with numpy: what `flowscope evaluate` reports.

Two questions are kept apart. *Detection* is binary: is the flow flagged (score at or
above the threshold)? Its numbers are recall (detection rate), precision, false-positive
rate over benign flows, PR-AUC (average precision, threshold-free) and ROC-AUC.
*Attribution* is per family: a flow counts as correctly classified when it is flagged
with its true family, or not flagged if benign. Per-family recall, precision and F1,
macro-F1 over the families present, and the confusion matrix are computed on that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from flowscope.lab.scenario import ALL_FAMILIES

FloatArray = npt.NDArray[np.float64]


def average_precision(y: npt.NDArray[np.bool_], score: npt.ArrayLike) -> float:
    """Area under the precision–recall curve as the step sum Σ (Rₖ − Rₖ₋₁)·Pₖ.

    Tied scores form one step (all flows at a score are flagged together), so the value
    does not depend on the order of ties.
    """
    s = np.asarray(score, np.float64)
    pos = int(y.sum())
    if pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s, yy = s[order], y[order]
    distinct = np.flatnonzero(np.diff(s)) if s.size > 1 else np.zeros(0, np.int64)
    ends = np.concatenate([distinct, [s.size - 1]])
    tp = np.cumsum(yy)[ends].astype(np.float64)
    flagged = (ends + 1).astype(np.float64)
    precision = tp / flagged
    recall = tp / pos
    prev = np.concatenate([[0.0], recall[:-1]])
    return float(np.sum((recall - prev) * precision))


def roc_auc(y: npt.NDArray[np.bool_], score: npt.ArrayLike) -> float:
    """Probability that a random malicious flow outscores a random benign one (ties ½)."""
    s = np.asarray(score, np.float64)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    _, inv, counts = np.unique(s, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1
    avg_rank = first_rank + (counts - 1) / 2.0
    ranks = avg_rank[inv]
    return float((ranks[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def pr_curve(
    y: npt.NDArray[np.bool_], score: npt.ArrayLike, points: int = 200
) -> dict[str, list[float]]:
    """A down-sampled precision–recall curve for plots."""
    s = np.asarray(score, np.float64)
    pos = max(int(y.sum()), 1)
    thresholds = np.unique(np.quantile(s, np.linspace(0, 1, points))) if s.size else np.zeros(0)
    prec, rec = [], []
    for t in thresholds:
        flag = s >= t
        tp = int((flag & y).sum())
        prec.append(tp / max(int(flag.sum()), 1))
        rec.append(tp / pos)
    return {"threshold": thresholds.tolist(), "precision": prec, "recall": rec}


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def evaluate_arrays(
    true_family: Sequence[str] | npt.NDArray[np.object_],
    score: npt.ArrayLike,
    predicted_family: Sequence[str] | npt.NDArray[np.object_],
    threshold: float,
    kind: Sequence[str] | npt.NDArray[np.object_] | None = None,
    source: Sequence[str] | npt.NDArray[np.object_] | None = None,
) -> dict[str, Any]:
    """All metrics for one test set. ``predicted_family`` is "benign" for unflagged flows."""
    truth = np.asarray(true_family, dtype=object)
    pred = np.asarray(predicted_family, dtype=object)
    s = np.asarray(score, np.float64)
    n = truth.size
    mal = truth != "benign"
    flag = s >= threshold
    tp = int((flag & mal).sum())
    fp = int((flag & ~mal).sum())
    fn = int((~flag & mal).sum())
    tn = int((~flag & ~mal).sum())
    recall = _ratio(tp, tp + fn)
    precision = _ratio(tp, tp + fp)
    binary = {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "recall": recall,
        "precision": precision,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "fpr": _ratio(fp, fp + tn),
        "pr_auc": average_precision(mal, s),
        "roc_auc": roc_auc(mal, s),
    }
    labels = [f for f in ALL_FAMILIES if f in set(truth.tolist()) | set(pred.tolist())]
    labels += sorted((set(truth.tolist()) | set(pred.tolist())) - set(labels))
    idx = {f: i for i, f in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), np.int64)
    np.add.at(
        cm,
        (np.array([idx[t] for t in truth], np.int64), np.array([idx[p] for p in pred], np.int64)),
        1,
    )
    families: dict[str, dict[str, float | int]] = {}
    f1s = []
    for f in labels:
        i = idx[f]
        support = int(cm[i].sum())
        predicted = int(cm[:, i].sum())
        hit = int(cm[i, i])
        rec = _ratio(hit, support)
        prec = _ratio(hit, predicted)
        f1 = _ratio(2 * hit, support + predicted)
        rows = truth == f
        families[f] = {
            "support": support,
            "recall": rec,
            "precision": prec,
            "f1": f1,
            # flagged at all (any family): the detection rate of this family
            "detected": _ratio(int((flag & rows).sum()), support),
        }
        if support:
            f1s.append(0.0 if np.isnan(f1) else f1)
    out: dict[str, Any] = {
        "flows": int(n),
        "benign_flows": int((~mal).sum()),
        "malicious_flows": int(mal.sum()),
        "threshold": float(threshold),
        "binary": binary,
        "families": families,
        "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
        "confusion": {"labels": labels, "matrix": cm.tolist()},
    }
    if kind is not None:
        k = np.asarray(kind, dtype=object)
        kinds: dict[str, dict[str, float | int | str]] = {}
        for name in sorted(set(k[mal].tolist())):
            rows = mal & (k == name)
            sup = int(rows.sum())
            kinds[str(name)] = {
                "family": str(truth[rows][0]),
                "support": sup,
                "detected": _ratio(int((flag & rows).sum()), sup),
                "family_correct": _ratio(int((rows & (pred == truth)).sum()), sup),
            }
        out["kinds"] = kinds
    if source is not None:
        src = np.asarray(source, dtype=object)
        sources: dict[str, dict[str, float | int]] = {}
        for name in sorted(set(src.tolist())):
            rows = src == name
            sources[str(name)] = {
                "flows": int(rows.sum()),
                "malicious": int((rows & mal).sum()),
                "detected": int((rows & mal & flag).sum()),
                "false_positives": int((rows & ~mal & flag).sum()),
                "benign": int((rows & ~mal).sum()),
            }
        out["sources"] = sources
    out["pr_curve"] = pr_curve(mal, s)
    return out


def choose_threshold(benign_scores: npt.ArrayLike, target_fpr: float, floor: float = 0.5) -> float:
    """Smallest threshold whose false-positive rate on ``benign_scores`` is ≤ target.

    Never below ``floor`` (0.5 by default: a flow is only called malicious when the model
    finds an attack at least as likely as benign traffic), never above 0.999.
    """
    b = np.sort(np.asarray(benign_scores, np.float64))[::-1]
    if b.size == 0:
        return floor
    allowed = int(np.floor(target_fpr * b.size))
    t = float(np.nextafter(b[allowed], np.inf)) if allowed < b.size else 0.0
    return float(min(max(t, floor), 0.999))
