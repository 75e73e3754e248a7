"""Train the KDD DNN and mine its rule filter on KDDTrain+; report on KDDTest+/-21.

Training-only (torch, mlxtend, pandas: the ``train`` extra). One call does everything
the shipped ``kdd-dnn`` bundle holds, deterministically for a given seed:

1. load KDDTrain+, KDDTest+, KDDTest-21 (:mod:`flowscope.kdd.data`);
2. train the runtime model: 4 × 256 DNN over the features flowscope computes (content
   features and wrong_fragment masked, :mod:`flowscope.kdd.net`), five classes
   (benign, scan, dos, bruteforce, other); export it to ONNX and check that
   onnxruntime and torch agree on every KDDTest+ row;
3. mine the rules "items → normal" (:mod:`flowscope.kdd.mining`);
4. measure both splits with and without the filter (:mod:`flowscope.kdd.metrics`);
5. optionally train the same network on all 41 features (the literature's setting)
   for comparison; it is reported, not shipped;
6. write the bundle: bundle.json, model.onnx, rules.json, report.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from flowscope.kdd.data import SPLIT_TITLES, SPLITS, KddSet, load_split
from flowscope.kdd.metrics import markdown_table, split_report
from flowscope.kdd.mining import MiningConfig, mine_rules
from flowscope.kdd.net import NUM_COLUMNS, NetConfig, export_onnx, predict, train_net
from flowscope.kdd.vocab import (
    CATEGORIES,
    FAMILIES,
    KDD_FEATURES,
    VOCABULARIES,
    ZERO_AT_RUNTIME,
)
from flowscope.models.bundle import KDD_FEATURE_SET, BundleError, BundleMeta, Step, save_bundle
from flowscope.models.rules import RuleSet

THRESHOLD = 0.5
WINDOWS = {"time_window_s": 2.0, "host_window": 100}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _use_mask(all_features: bool) -> list[float]:
    return [
        1.0 if all_features or KDD_FEATURES[j] not in ZERO_AT_RUNTIME else 0.0 for j in NUM_COLUMNS
    ]


def _baseline(train: KddSet) -> list[float]:
    """Occlusion reference: per feature, the median of normal rows (mode for codes)."""
    normal = train.x[~train.is_attack]
    base = np.median(normal, axis=0)
    for name in VOCABULARIES:
        j = KDD_FEATURES.index(name)
        base[j] = np.bincount(normal[:, j].astype(np.int64)).argmax()
    for name in ZERO_AT_RUNTIME:
        base[KDD_FEATURES.index(name)] = 0.0
    return [float(v) for v in base]


def _onnx_check(
    onnx_bytes: bytes, x: npt.NDArray[np.float32], p_torch: npt.NDArray[np.float32]
) -> dict[str, Any]:
    """Run the exported graph in onnxruntime; fail if it disagrees with torch."""
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    p_onnx = sess.run(["proba"], {"kdd": x})[0]
    diff = float(np.abs(p_onnx - p_torch).max())
    agree = float((p_onnx.argmax(1) == p_torch.argmax(1)).mean())
    alarm_agree = float(((p_onnx[:, 0] < THRESHOLD) == (p_torch[:, 0] < THRESHOLD)).mean())
    if diff > 1e-4 or alarm_agree < 1.0:
        raise BundleError(
            f"ONNX export disagrees with torch (max |Δp| {diff:.2e}, "
            f"verdicts agree {alarm_agree:.4%})"
        )
    return {"rows": len(x), "max_abs_diff": diff, "argmax_agreement": agree,
            "verdict_agreement": alarm_agree}  # fmt: skip


def evaluate(proba: npt.NDArray[np.float32], data: KddSet, rules: RuleSet | None) -> dict[str, Any]:
    """Metrics of one split (with/without the rule filter) from the DNN's probabilities."""
    alarm = proba[:, 0] < THRESHOLD
    pred_family = (np.argmax(proba[:, 1:], axis=1) + 1).astype(np.int64)
    hit = None if rules is None else rules.first_match(data.x) >= 0
    suppressed = None if hit is None else hit & alarm
    rep = split_report(
        data.is_attack, data.category, CATEGORIES, alarm, suppressed, data.family, pred_family
    )
    rep["family_groups"] = split_report(
        data.is_attack, np.asarray(FAMILIES)[data.family], FAMILIES, alarm, suppressed
    )["dnn"]["groups"]
    if hit is not None:
        rep["rule_matches"] = {
            "normal": int((hit & ~data.is_attack).sum()),
            "attack": int((hit & data.is_attack).sum()),
        }
        lost = suppressed & data.is_attack if suppressed is not None else np.zeros(0, bool)
        types, counts = np.unique(data.attack[lost], return_counts=True)
        order = np.argsort(-counts, kind="stable")
        rep["filter"]["attacks_lost_by_type"] = {str(types[i]): int(counts[i]) for i in order}
    return rep


def train_bundle(
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    net_cfg: NetConfig | None = None,
    mining_cfg: MiningConfig | None = None,
    reference: bool = True,
    limit: int | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Train, mine, evaluate and write the bundle; return the report (also in the bundle).

    ``limit`` keeps only the first rows of every split (smoke tests); a bundle trained
    that way is marked so in its description.
    """
    import torch

    t_start = time.perf_counter()
    net_cfg = net_cfg or NetConfig()
    mining_cfg = mining_cfg or MiningConfig()
    data_dir = Path(data_dir)
    sets = {s: load_split(data_dir, s, limit) for s in SPLITS}
    train = sets["train"]
    log(f"loaded {', '.join(f'{SPLIT_TITLES[s]} {len(d)}' for s, d in sets.items())} rows")

    log("training the runtime model (content features and wrong_fragment masked)")
    net = train_net(train.x, train.family, len(FAMILIES), _use_mask(False), net_cfg, log)
    onnx_bytes = export_onnx(net)
    probas = {s: predict(net, d.x) for s, d in sets.items()}
    check = _onnx_check(onnx_bytes, sets["test"].x, probas["test"])
    log(f"ONNX check: max |Δp| {check['max_abs_diff']:.1e}, verdicts agree on all rows")

    log("mining rules")
    rules = mine_rules(train.x, ~train.is_attack, mining_cfg, log)

    report: dict[str, Any] = {"runtime_model": {}, "reference_model": None}
    for s, d in sets.items():
        report["runtime_model"][s] = evaluate(probas[s], d, rules)
    if reference:
        log("training the reference model (all 41 features, for comparison)")
        ref = train_net(train.x, train.family, len(FAMILIES), _use_mask(True), net_cfg, log)
        report["reference_model"] = {
            s: evaluate(predict(ref, d.x), d, rules) for s, d in sets.items()
        }

    seconds = round(time.perf_counter() - t_start, 1)
    files = {SPLITS[s]: _sha256(data_dir / SPLITS[s]) for s in SPLITS}
    training = {
        "data": "NSL-KDD (Tavallaee et al. 2009)",
        "files_sha256": files,
        "rows": {SPLIT_TITLES[s]: len(d) for s, d in sets.items()},
        "limit": limit,
        "net": asdict(net_cfg),
        "mining": asdict(mining_cfg),
        "masked_features": list(ZERO_AT_RUNTIME),
        "kdd_windows": WINDOWS,
        "onnx_check": check,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "seconds": seconds,
        "command": (
            f"flowscope kdd train --data {os.path.relpath(data_dir)} -o {os.path.relpath(out_dir)} "
            f"--epochs {net_cfg.epochs} --seed {net_cfg.seed}"
            + ("" if reference else " --no-reference")
            + (f" --limit {limit}" if limit else "")
        ),
    }
    summary = {
        SPLIT_TITLES[s]: {
            "dnn": report["runtime_model"][s]["dnn"],
            "filtered": report["runtime_model"][s]["filtered"],
            "filter": report["runtime_model"][s]["filter"],
        }
        for s in ("test", "test21")
    }
    meta = BundleMeta(
        name="kdd-dnn",
        description=(
            "NSL-KDD DNN (4x256) on the 41 KDD connection features computed from flowscope "
            "flows, with an Apriori 'items -> normal' rule filter that vetoes alarms"
            + (f" [smoke run: first {limit} rows per split]" if limit else "")
        ),
        algorithm="kdd-dnn",
        feature_set=KDD_FEATURE_SET,
        features=list(KDD_FEATURES),
        preprocessing=[Step(op="nan_to_num")],
        classes=list(FAMILIES),
        output="probabilities",
        output_name="proba",
        threshold=THRESHOLD,
        threshold_rule="malicious when 1 - P(benign) >= 0.5; fixed, not tuned on any test split",
        training=training,
        metrics=summary,
        explain="occlusion",
        baseline=_baseline(train),
    )
    md = render_report(report, training)
    save_bundle(
        out_dir,
        meta,
        onnx_bytes,
        {
            "rules": (
                "rules.json",
                rules.model_dump_json(indent=1, exclude_none=True).encode() + b"\n",
            ),
            "report": ("report.md", md.encode()),
        },
    )
    report["training"] = training
    log(f"bundle written to {out_dir} in {seconds} s")
    return report


def render_report(report: dict[str, Any], training: dict[str, Any]) -> str:
    """The KDDTest+ / KDDTest-21 report as Markdown (also written into the bundle)."""
    parts = [
        "# kdd-dnn: NSL-KDD results",
        "",
        f"Rows: {json.dumps(training['rows'])}; seed {training['net']['seed']}; "
        f"{training['net']['epochs']} epochs; {training['seconds']} s.",
        "",
        "Alarm rates: recall for attack categories, false-positive rate for normal.",
        "",
    ]
    rt = report["runtime_model"]
    parts.append(
        markdown_table(
            "Runtime model (features flowscope computes; shipped)",
            {SPLIT_TITLES[s]: rt[s] for s in ("test", "test21")},
            CATEGORIES,
        )
    )
    for s in ("test", "test21"):
        lost = rt[s]["filter"]["attacks_lost_by_type"]
        if lost:
            parts.append(
                f"\nAttacks the rules lost on {SPLIT_TITLES[s]}, by type: "
                + ", ".join(f"{k} {v}" for k, v in lost.items())
                + "\n"
            )
    ref = report.get("reference_model")
    if ref:
        parts.append("")
        parts.append(
            markdown_table(
                "Reference model (all 41 features, as in the literature; not shipped)",
                {SPLIT_TITLES[s]: ref[s] for s in ("test", "test21")},
                CATEGORIES,
            )
        )
    fit = rt["train"]["dnn"]
    parts.append(
        f"\nTraining-set fit (runtime model, KDDTrain+): accuracy "
        f"{100 * fit['accuracy']:.2f} %, FPR {100 * fit['fpr']:.2f} %.\n"
    )
    return "\n".join(parts)
