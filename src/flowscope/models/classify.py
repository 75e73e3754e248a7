"""Flow classification with a bundle: verdicts, family and the features behind them.

The interface follows scikit-learn's estimator vocabulary (``predict_proba``) so that
it reads the same in training scripts and in the sensor, but it only ever runs the
bundle's ONNX graph. ``Detector`` is what the sensor and the dashboard use; the flow
model (:class:`FlowClassifier`) and the NSL-KDD path (:mod:`flowscope.kdd.detector`)
both implement it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from flowscope.models.bundle import (
    KDD_FEATURE_SET,
    Bundle,
    BundleError,
    Matrix,
    load_bundle,
)
from flowscope.models.rules import RuleSet


@dataclass
class Verdicts:
    """Per-flow results of one batch; arrays are aligned with the input rows.

    ``score`` is the Malicious score, 1 − P(benign). A flow is malicious when the score
    reaches the bundle's threshold; its family is then the most probable attack class
    (also reported for benign verdicts, as ``top_family``, so an analyst sees the
    runner-up).
    """

    classes: tuple[str, ...]
    proba: Matrix
    score: npt.NDArray[np.float32]
    malicious: npt.NDArray[np.bool_]
    top_family: npt.NDArray[np.int16]  # index into classes, never 0 (benign)
    threshold: float
    # Set by detectors with a veto filter (the KDD path's association rules): the alarms
    # a rule suppressed (their ``malicious`` is already False) and the rule index, or −1.
    suppressed: npt.NDArray[np.bool_] | None = None
    rule: npt.NDArray[np.int32] | None = None

    def __len__(self) -> int:
        return int(self.score.shape[0])

    @property
    def family(self) -> npt.NDArray[np.int16]:
        """Class index of the verdict: 0 (benign) unless malicious."""
        return np.where(self.malicious, self.top_family, 0).astype(np.int16)

    def family_names(self) -> list[str]:
        names = np.asarray(self.classes, dtype=object)
        return list(names[self.family])

    def to_table(self) -> pa.Table:
        """Verdict columns: score, verdict (Normal/Malicious), family and p_<class>."""
        names = pa.array(list(self.classes), pa.string())
        fam = pa.DictionaryArray.from_arrays(pa.array(self.family.astype(np.int32)), names)
        verdict = pa.DictionaryArray.from_arrays(
            pa.array(self.malicious.astype(np.int32)), pa.array(["Normal", "Malicious"])
        )
        cols: dict[str, pa.Array] = {
            "score": pa.array(self.score),
            "verdict": verdict.dictionary_decode(),
            "family": fam.dictionary_decode(),
        }
        for j, c in enumerate(self.classes):
            cols[f"p_{c}"] = pa.array(self.proba[:, j])
        if self.suppressed is not None:
            cols["suppressed"] = pa.array(self.suppressed)
        if self.rule is not None:
            cols["rule"] = pa.array(self.rule)
        return pa.table(cols)


def make_verdicts(classes: tuple[str, ...], proba: Matrix, threshold: float) -> Verdicts:
    proba = np.asarray(proba, np.float32)
    score = np.clip(1.0 - proba[:, 0], 0.0, 1.0).astype(np.float32)
    if proba.shape[1] > 1:
        top = (np.argmax(proba[:, 1:], axis=1) + 1).astype(np.int16)
    else:
        top = np.zeros(proba.shape[0], np.int16)
    return Verdicts(classes, proba, score, score >= threshold, top, threshold)


def apply_rules(verdicts: Verdicts, match: npt.NDArray[np.int32]) -> None:
    """Veto alarms that a "→ normal" rule matches; record what was suppressed and by which."""
    suppressed = verdicts.malicious & (match >= 0)
    verdicts.malicious = verdicts.malicious & ~suppressed
    verdicts.suppressed = suppressed
    verdicts.rule = np.where(suppressed, match, -1).astype(np.int32)


@dataclass
class Contribution:
    """One feature's part in a verdict: positive pushes towards the flagged family."""

    feature: str
    value: float
    weight: float


class Detector(Protocol):
    """What the sensor needs from any model: verdicts and explanations for flow tables."""

    bundle: Bundle

    def classify(self, flows: pa.Table) -> Verdicts: ...

    def explain(
        self, flows: pa.Table, verdicts: Verdicts, rows: npt.ArrayLike, top: int = 5
    ) -> list[list[Contribution]]: ...


class FlowClassifier:
    """Classifies flow-feature tables (the columns of :func:`compute_features`)."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.meta = bundle.meta
        self.classes = tuple(bundle.meta.classes)
        self.threshold = bundle.meta.threshold
        self._booster: Any = None
        self.rules: RuleSet | None = None
        self._rule_cols: npt.NDArray[np.int64] | None = None
        rules_path = bundle.side_file("rules")
        if rules_path is not None:
            self.rules = RuleSet.load(rules_path)
            where = {n: j for j, n in enumerate(self.meta.features)}
            missing = [f for f in self.rules.features if f not in where]
            if missing:
                raise BundleError(
                    f"{bundle.path}: rules use features the model lacks: {', '.join(missing[:5])}"
                )
            self._rule_cols = np.array([where[f] for f in self.rules.features], np.int64)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FlowClassifier:
        return cls(load_bundle(path))

    def matrix(self, flows: pa.Table) -> Matrix:
        """The bundle's features, in its order, as float32 (raw, before preprocessing)."""
        # pa.Table.column_names builds a new list of ~100 names on every access (~60 µs;
        # schema.names ~10 µs): per-name lookups made each call quadratic.
        have = set(flows.schema.names)
        missing = [f for f in self.meta.features if f not in have]
        if missing:
            raise BundleError(f"flow table lacks features {', '.join(missing[:5])}")
        x = np.empty((flows.num_rows, len(self.meta.features)), np.float32)
        for j, name in enumerate(self.meta.features):
            x[:, j] = flows.column(name).to_numpy(zero_copy_only=False)
        return x

    def predict_proba(self, x: Matrix) -> Matrix:
        return self.bundle.predict_proba(x)

    def classify_matrix(self, x: Matrix) -> Verdicts:
        v = make_verdicts(self.classes, self.predict_proba(x), self.threshold)
        if self.rules is not None and self._rule_cols is not None:
            apply_rules(v, self.rules.first_match(x[:, self._rule_cols]))
        return v

    def classify(self, flows: pa.Table) -> Verdicts:
        return self.classify_matrix(self.matrix(flows))

    def explain(
        self, flows: pa.Table, verdicts: Verdicts, rows: npt.ArrayLike, top: int = 5
    ) -> list[list[Contribution]]:
        return self.explain_matrix(self.matrix(flows), verdicts, rows, top)

    def explain_matrix(
        self, x: Matrix, verdicts: Verdicts, rows: npt.ArrayLike, top: int = 5
    ) -> list[list[Contribution]]:
        """The ``top`` features that moved each row towards its family (or towards benign).

        LightGBM bundles give exact tree contributions (TreeSHAP, from the text model in
        the bundle): the part of each feature in log(P(family) / P(benign)). Other bundles
        use occlusion: the drop in the Malicious score when a feature is set to its
        benign-median baseline. Either way a positive weight argues for the flagged family.
        """
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            return []
        xs = x[idx]
        fam = verdicts.top_family[idx].astype(np.int64)
        if self.meta.explain == "lightgbm" and self._lightgbm() is not None:
            w = self._tree_weights(xs, fam)
        elif self.meta.explain != "none":
            w = self._occlusion_weights(xs)
        else:
            return [[] for _ in idx]
        out: list[list[Contribution]] = []
        names = self.meta.features
        for r in range(len(idx)):
            sign = 1.0 if verdicts.malicious[idx[r]] else -1.0
            order = np.argsort(-sign * w[r], kind="stable")[:top]
            out.append([Contribution(names[j], float(xs[r, j]), float(w[r, j])) for j in order])
        return out

    def _lightgbm(self) -> Any:
        if self._booster is None:
            path = self.bundle.side_file("lightgbm")
            if path is None:
                return None
            try:
                import lightgbm as lgb
            except ImportError:  # explanations fall back to occlusion
                return None
            # LightGBM's text format is parsed, never unpickled.
            self._booster = lgb.Booster(model_str=path.read_text(encoding="utf-8"))
        return self._booster

    def _tree_weights(self, xs: Matrix, fam: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        booster = self._lightgbm()
        k = xs.shape[1]
        raw = np.asarray(booster.predict(xs.astype(np.float64), pred_contrib=True))
        c = len(self.classes)
        contrib = raw.reshape(xs.shape[0], c, k + 1)[:, :, :k]
        r = np.arange(xs.shape[0])
        return contrib[r, fam, :] - contrib[r, 0, :]

    def _occlusion_weights(self, xs: Matrix) -> npt.NDArray[np.float64]:
        base = self.meta.baseline
        k = xs.shape[1]
        baseline = np.zeros(k, np.float32) if base is None else np.asarray(base, np.float32)
        n = xs.shape[0]
        rep = np.repeat(xs[:, None, :], k, axis=1)  # n × k × k
        diag = np.arange(k)
        rep[:, diag, diag] = baseline[diag]
        score0 = 1.0 - self.predict_proba(xs)[:, 0]
        occl = 1.0 - self.predict_proba(rep.reshape(n * k, k))[:, 0]
        return score0[:, None].astype(np.float64) - occl.reshape(n, k).astype(np.float64)


def load_detector(path: str | os.PathLike[str], threads: int = 1) -> Detector:
    """The right detector for a bundle: flow features, or NSL-KDD connection features."""
    bundle = load_bundle(path, threads=threads)
    if bundle.meta.feature_set == KDD_FEATURE_SET:
        from flowscope.kdd.detector import KddDetector

        return KddDetector(bundle)
    return FlowClassifier(bundle)
