"""Evaluation reports: JSON (everything), Markdown (for people and the model card), PNG plots."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any


def _pct(v: float) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f} %"


def _num(v: float, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def markdown(report: dict[str, Any], top_sources: int = 12) -> str:
    """A compact Markdown rendering of one evaluation (see metrics.evaluate_arrays)."""
    m = report["metrics"]
    b = m["binary"]
    lines = [
        f"### {report['title']}",
        "",
        f"Model `{report['model']}` ({report['algorithm']}), threshold {m['threshold']:.3f}. "
        f"Test data: {m['flows']:,} flows ({m['benign_flows']:,} benign, "
        f"{m['malicious_flows']:,} malicious) from {len(report['inputs'])} input(s): "
        + ", ".join(f"`{i}`" for i in report["inputs"][:6])
        + (" …" if len(report["inputs"]) > 6 else "")
        + ".",
        "",
        "| detection | recall | precision | F1 | FPR | PR-AUC | ROC-AUC | macro-F1 (families) |",
        "|---|---|---|---|---|---|---|---|",
        f"| malicious vs benign | {_pct(b['recall'])} | {_pct(b['precision'])} | {_num(b['f1'])} "
        f"| {_pct(b['fpr'])} ({b['fp']:,} of {b['fp'] + b['tn']:,}) | {_num(b['pr_auc'])} "
        f"| {_num(b['roc_auc'])} | {_num(m['macro_f1'])} |",
        "",
        "| family | flows | recall (right family) | detected (any family) | precision | F1 |",
        "|---|---|---|---|---|---|",
    ]
    for fam, v in m["families"].items():
        if v["support"] == 0 and v["precision"] != v["precision"]:
            continue
        lines.append(
            f"| {fam} | {v['support']:,} | {_pct(v['recall'])} | {_pct(v['detected'])} "
            f"| {_pct(v['precision'])} | {_num(v['f1'])} |"
        )
    labels = m["confusion"]["labels"]
    lines += ["", "Confusion matrix (rows: true family, columns: verdict):", ""]
    lines.append("| true \\ verdict | " + " | ".join(labels) + " |")
    lines.append("|---" * (len(labels) + 1) + "|")
    for lab, row in zip(labels, m["confusion"]["matrix"], strict=True):
        lines.append(f"| {lab} | " + " | ".join(f"{c:,}" for c in row) + " |")
    if m.get("kinds"):
        lines += [
            "",
            "| attack kind | family | flows | detected | right family |",
            "|---|---|---|---|---|",
        ]
        for kind, v in m["kinds"].items():
            lines.append(
                f"| {kind} | {v['family']} | {v['support']:,} | {_pct(v['detected'])} "
                f"| {_pct(v['family_correct'])} |"
            )
    srcs = m.get("sources") or {}
    if len(srcs) > 1:
        worst = sorted(
            srcs.items(), key=lambda kv: (-kv[1]["false_positives"], -kv[1]["malicious"])
        )[:top_sources]
        lines += [
            "",
            f"Inputs with the most false positives (of {len(srcs)}):",
            "",
            "| input | flows | benign | false positives | malicious | detected |",
            "|---|---|---|---|---|---|",
        ]
        for name, v in worst:
            lines.append(
                f"| `{Path(name).name}` | {v['flows']:,} | {v['benign']:,} | "
                f"{v['false_positives']:,} | {v['malicious']:,} | {v['detected']:,} |"
            )
    return "\n".join(lines) + "\n"


def plots(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """pr.png (PR curve with the operating point) and confusion.png (row-normalised)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m = report["metrics"]
    written = []
    fig, ax = plt.subplots(figsize=(5, 4), dpi=110)
    curve = m["pr_curve"]
    ax.plot(curve["recall"], curve["precision"], lw=1.5)
    b = m["binary"]
    if b["recall"] == b["recall"] and b["precision"] == b["precision"]:
        ax.scatter(
            [b["recall"]],
            [b["precision"]],
            color="C3",
            zorder=3,
            label=f"threshold {m['threshold']:.2f}",
        )
        ax.legend(loc="lower left")
    ax.set_xlabel("recall (malicious flows flagged)")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.set_title(f"{report['model']}: {report['title']}\nPR-AUC {_num(b['pr_auc'])}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    p = out_dir / "pr.png"
    fig.savefig(p)
    plt.close(fig)
    written.append(p)

    labels = m["confusion"]["labels"]
    cm = np.asarray(m["confusion"]["matrix"], dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2, 1.0 * len(labels) + 1.5), dpi=110)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{int(cm[i, j]):,}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if norm[i, j] > 0.6 else "black",
            )
    ax.set_xlabel("verdict")
    ax.set_ylabel("true family")
    ax.set_title(f"{report['model']}: {report['title']}", fontsize=9)
    fig.tight_layout()
    p = out_dir / "confusion.png"
    fig.savefig(p)
    plt.close(fig)
    written.append(p)
    return written


def write_report(report: dict[str, Any], out_dir: Path, with_plots: bool = True) -> list[Path]:
    """report.json, report.md and (if matplotlib is installed) the plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    j = out_dir / "report.json"
    j.write_text(json.dumps(report, indent=1, default=float) + "\n")
    md = out_dir / "report.md"
    md.write_text(markdown(report))
    written = [j, md]
    if with_plots:
        with contextlib.suppress(ImportError):  # matplotlib is in the train extra
            written += plots(report, out_dir)
    return written
