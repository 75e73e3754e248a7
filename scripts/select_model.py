"""Pick the default flow model from `flowscope evaluate` reports and ship it.

Used by `make model` (scripts/make-model.sh). Input: BUILD/eval/<algorithm>/<test>/report.json
for every trained algorithm and both test sets ("holdout": the lab holdout run, "real":
captures from other networks that no model was trained on). The winner has the highest
mean macro-F1 over the two test sets (ties: lower false-positive rate on "real"). It is
copied to src/flowscope/data/models/default with its test metrics added to bundle.json,
and the reports are written into docs/models.md between generated-section markers.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from flowscope.models.bundle import META_FILE, BundleMeta  # noqa: E402

DOCS = REPO / "docs" / "models.md"
TESTS = ("holdout", "real")
TARGET_FLOWS_PER_S = 200_000


def _summary(report: dict) -> dict:
    m = report["metrics"]
    return {
        "title": report["title"],
        "inputs": report["inputs"],
        "flows": m["flows"],
        "binary": m["binary"],
        "macro_f1": m["macro_f1"],
        "families": m["families"],
    }


def _replace(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        return head + block + rest.split(end, 1)[1]
    return text.rstrip("\n") + "\n\n" + block + "\n"


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    build = Path(args[0] if args else "build")
    reports: dict[str, dict[str, dict]] = {}
    for alg_dir in sorted((build / "eval").iterdir()):
        if alg_dir.name.startswith("labonly"):
            continue
        got = {t: json.loads((alg_dir / t / "report.json").read_text()) for t in TESTS}
        reports[alg_dir.name] = got

    def key(alg: str) -> tuple[float, float]:
        r = reports[alg]
        mean_f1 = sum(r[t]["metrics"]["macro_f1"] for t in TESTS) / len(TESTS)
        return (mean_f1, -r["real"]["metrics"]["binary"]["fpr"])

    ranking = sorted(reports, key=key, reverse=True)
    # The sensor classifies every flow: a default slower than the inference target is not
    # deployable, however accurate. benchmarks/bench_models.py measured each candidate.
    speed_file = build / "speed.json"
    speed: dict[str, float] = {}
    if speed_file.exists():
        for r in json.loads(speed_file.read_text()):
            speed[Path(r["bundle"]).name] = r["flows_per_s"]
    fast = [a for a in ranking if speed.get(a, TARGET_FLOWS_PER_S) >= TARGET_FLOWS_PER_S]
    best = (fast or ranking)[0]
    if "--pick" in sys.argv:
        print(best)
        return
    src = build / "models" / best
    dst = REPO / "src" / "flowscope" / "data" / "models" / "default"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    meta = BundleMeta.model_validate_json((dst / META_FILE).read_text())
    selection = {
        alg: {
            **{t: round(reports[alg][t]["metrics"]["macro_f1"], 4) for t in TESTS},
            "flows_per_s": round(speed.get(alg, float("nan"))),
        }
        for alg in ranking
    }
    meta = meta.model_copy(
        update={
            "name": "default",
            "description": f"flowscope's default flow classifier ({best}): the highest mean "
            "macro-F1 on the lab holdout run and on real captures among the models that "
            f"classify ≥ {TARGET_FLOWS_PER_S:,} flows/s on one core",
            "metrics": {
                **meta.metrics,
                "test": {t: _summary(reports[best][t]) for t in TESTS},
                "selection": selection,
            },
        }
    )
    (dst / META_FILE).write_text(meta.model_dump_json(indent=2) + "\n")
    print(f"default model: {best}  (macro-F1 holdout/real: {selection})")

    text = DOCS.read_text() if DOCS.exists() else "# Models\n"
    rows = [
        "| algorithm | macro-F1 lab holdout | macro-F1 real captures | FPR real "
        "| flows/s (one core) | selected |",
        "|---|---|---|---|---|---|",
    ]
    for alg in ranking:
        r = reports[alg]
        rows.append(
            f"| {alg} | {r['holdout']['metrics']['macro_f1']:.3f} | "
            f"{r['real']['metrics']['macro_f1']:.3f} | "
            f"{100 * r['real']['metrics']['binary']['fpr']:.2f} % | "
            f"{speed.get(alg, float('nan')) / 1e3:,.0f} k | {'✔' if alg == best else ''} |"
        )
    text = _replace(text, "selection", "\n".join(rows))
    for t in TESTS:
        text = _replace(text, f"default-{t}", (build / "eval" / best / t / "report.md").read_text())
    lab_only = build / "eval" / f"labonly-{best}" / "real" / "report.md"
    if lab_only.exists():
        text = _replace(text, "labonly-real", lab_only.read_text())
    DOCS.write_text(text)
    print(f"updated {DOCS}")


if __name__ == "__main__":
    main()
