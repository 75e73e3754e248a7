"""KddDetector: the NSL-KDD DNN and its rule filter as a flowscope detector.

Selected by :func:`flowscope.models.load_detector` for bundles whose feature set is
``nsl-kdd-1``. For each batch of finished flows it computes the KDD rows (the traffic
windows continue from the previous batch, as in a live sensor), runs the ONNX graph,
and lets the bundle's association rules veto alarms: a vetoed flow has
``malicious = False``, ``suppressed = True`` and the index of the first matching rule in
``rule``. Flows that are not TCP, UDP or ICMP have no KDD meaning and are benign with
score 0.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from flowscope.kdd.features import KddFeaturizer, KddRows
from flowscope.models.bundle import Bundle
from flowscope.models.classify import Contribution, FlowClassifier, Verdicts, make_verdicts
from flowscope.models.rules import RuleSet


class KddDetector:
    """Detector over flow tables for a KDD bundle (see the module docstring).

    ``use_rules=False`` runs the DNN alone; ``host_window`` overrides the bundle's
    connection-window size (for experiments: the model was trained on NSL-KDD rows).
    """

    def __init__(
        self, bundle: Bundle, use_rules: bool = True, host_window: int | None = None
    ) -> None:
        self.bundle = bundle
        self.meta = bundle.meta
        self.classes = tuple(bundle.meta.classes)
        self.threshold = bundle.meta.threshold
        win = dict(bundle.meta.training.get("kdd_windows", {}))
        self.time_window_s = float(win.get("time_window_s", 2.0))
        self.host_window = int(host_window or win.get("host_window", 100))
        self.featurizer = self.new_featurizer()
        path = bundle.side_file("rules")
        self.rules: RuleSet | None = RuleSet.load(path) if path is not None else None
        self.use_rules = use_rules and self.rules is not None
        self._scorer = FlowClassifier(bundle)  # ONNX + occlusion explanations on a matrix
        self._last: tuple[pa.Table, KddRows] | None = None

    def new_featurizer(self) -> KddFeaturizer:
        """A featurizer with the bundle's window settings and empty windows."""
        return KddFeaturizer(time_window_s=self.time_window_s, host_window=self.host_window)

    def reset(self) -> None:
        """Forget the traffic windows (start of an unrelated capture)."""
        self.featurizer.reset()
        self._last = None

    def features(self, flows: pa.Table) -> KddRows:
        """KDD rows for a batch; advances the windows like :meth:`classify`."""
        rows = self.featurizer.transform(flows)
        self._last = (flows, rows)
        return rows

    def classify(self, flows: pa.Table) -> Verdicts:
        return self.classify_rows(self.features(flows))

    def classify_rows(self, rows: KddRows) -> Verdicts:
        """Verdicts for KDD rows already computed (e.g. NSL-KDD records)."""
        proba = self.bundle.predict_proba(rows.matrix)
        if not rows.applicable.all():
            proba[~rows.applicable] = 0.0
            proba[~rows.applicable, 0] = 1.0
        v = make_verdicts(self.classes, proba, self.threshold)
        if self.use_rules and self.rules is not None:
            hit = self.rules.first_match(rows.matrix)
            vetoed = v.malicious & (hit >= 0) & rows.applicable
            v.malicious = v.malicious & ~vetoed
            v.suppressed = vetoed
            v.rule = np.where(vetoed, hit, -1).astype(np.int32)
        return v

    def explain(
        self, flows: pa.Table, verdicts: Verdicts, rows: npt.ArrayLike, top: int = 5
    ) -> list[list[Contribution]]:
        """Occlusion over the KDD row: how much the Malicious score drops when a feature
        takes its benign median (categorical features: their commonest normal value;
        values of categorical features are vocabulary codes, see flowscope.kdd.vocab).

        Uses the rows of the last classified batch when ``flows`` is that batch;
        otherwise the windows are recomputed from ``flows`` alone.
        """
        if self._last is not None and self._last[0] is flows:
            kdd = self._last[1]
        else:
            kdd = self.new_featurizer().transform(flows)
        return self._scorer.explain_matrix(kdd.matrix, verdicts, rows, top)
