"""What the DNN and its rule filter do on labelled rows: numbers and a Markdown table.

Numpy only: used by training (NSL-KDD splits) and by evaluation on flowscope flows
(labelled captures and lab runs). "Alarm" means the verdict is malicious; the filter
turns an alarm off when a rule matches, so it can only remove false positives (normal
rows) or lose detections (attack rows), and both are counted exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Bool = npt.NDArray[np.bool_]


def _ratio(a: float, b: float) -> float | None:
    return None if b == 0 else round(float(a) / float(b), 4)


def alarm_summary(attack: Bool, alarm: Bool) -> dict[str, Any]:
    """Binary view: accuracy, detection rate (recall of attacks), FPR, precision."""
    attack = np.asarray(attack, bool)
    alarm = np.asarray(alarm, bool)
    tp = int((alarm & attack).sum())
    fp = int((alarm & ~attack).sum())
    tn = int((~alarm & ~attack).sum())
    fn = int((~alarm & attack).sum())
    return {
        "accuracy": _ratio(tp + tn, len(attack)),
        "detection_rate": _ratio(tp, tp + fn),
        "fpr": _ratio(fp, fp + tn),
        "precision": _ratio(tp, tp + fp),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def group_recall(groups: npt.NDArray[Any], alarm: Bool, names: Sequence[str]) -> dict[str, Any]:
    """Per group (category or family): rows and share raised as an alarm."""
    out: dict[str, Any] = {}
    for g in names:
        m = groups == g
        out[g] = {"rows": int(m.sum()), "alarm_rate": _ratio(int(alarm[m].sum()), int(m.sum()))}
    return out


def split_report(
    attack: Bool,
    groups: npt.NDArray[Any],
    group_names: Sequence[str],
    alarm: Bool,
    suppressed: Bool | None,
    true_family: npt.NDArray[np.int64] | None = None,
    pred_family: npt.NDArray[np.int64] | None = None,
) -> dict[str, Any]:
    """Metrics without and with the rule filter, and the filter's exact effect.

    ``alarm`` is the DNN's verdict before the filter, ``suppressed`` the alarms a rule
    vetoed (None: no filter). For the groups (e.g. KDD categories, or flowscope
    families), the rate is the share of rows raised as an alarm: recall for attack
    groups, false-positive rate for the normal/benign group.
    """
    attack = np.asarray(attack, bool)
    alarm = np.asarray(alarm, bool)
    rep: dict[str, Any] = {"rows": len(attack), "attacks": int(attack.sum())}
    rep["dnn"] = alarm_summary(attack, alarm)
    rep["dnn"]["groups"] = group_recall(groups, alarm, group_names)
    if true_family is not None and pred_family is not None:
        fam = np.where(alarm, pred_family, 0)
        rep["dnn"]["family_accuracy"] = _ratio(int((fam == true_family).sum()), len(attack))
    if suppressed is not None:
        sup = np.asarray(suppressed, bool) & alarm
        after = alarm & ~sup
        rep["filtered"] = alarm_summary(attack, after)
        rep["filtered"]["groups"] = group_recall(groups, after, group_names)
        if true_family is not None and pred_family is not None:
            fam = np.where(after, pred_family, 0)
            rep["filtered"]["family_accuracy"] = _ratio(
                int((fam == true_family).sum()), len(attack)
            )
        lost = sup & attack
        rep["filter"] = {
            "false_positives_removed": int((sup & ~attack).sum()),
            "attacks_lost": int(lost.sum()),
            "attacks_lost_by_group": {
                g: int((lost & (groups == g)).sum())
                for g in group_names
                if (lost & (groups == g)).any()
            },
        }
    return rep


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.2f} %"


def markdown_table(
    title: str, reports: dict[str, dict[str, Any]], group_names: Sequence[str]
) -> str:
    """One table: a column per (split, with/without filter), a row per metric."""
    cols: list[tuple[str, dict[str, Any]]] = []
    for split, rep in reports.items():
        cols.append((f"{split}", rep["dnn"]))
        if "filtered" in rep:
            cols.append((f"{split} + rules", rep["filtered"]))
    lines = [f"**{title}**", "", "| metric | " + " | ".join(c for c, _ in cols) + " |"]
    lines.append("|---|" + "---|" * len(cols))
    rows: list[tuple[str, Any]] = [
        ("accuracy (attack vs normal)", lambda m: _pct(m["accuracy"])),
        ("family accuracy", lambda m: _pct(m.get("family_accuracy"))),
        ("detection rate", lambda m: _pct(m["detection_rate"])),
        ("false-positive rate", lambda m: _pct(m["fpr"])),
        ("false positives", lambda m: str(m["fp"])),
    ]
    for g in group_names:
        rows.append((f"alarm rate: {g}", lambda m, g=g: _pct(m["groups"][g]["alarm_rate"])))
    for name, fn in rows:
        lines.append(f"| {name} | " + " | ".join(fn(m) for _, m in cols) + " |")
    out = "\n".join(lines) + "\n"
    effects = [
        f"- {split}: the rules removed {rep['filter']['false_positives_removed']} false "
        f"positives and lost {rep['filter']['attacks_lost']} detected attacks"
        + (
            " ("
            + ", ".join(f"{g} {n}" for g, n in rep["filter"]["attacks_lost_by_group"].items())
            + ")"
            if rep["filter"]["attacks_lost_by_group"]
            else ""
        )
        for split, rep in reports.items()
        if "filter" in rep
    ]
    if effects:
        out += "\n" + "\n".join(effects) + "\n"
    return out
