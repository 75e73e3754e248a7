#!/usr/bin/env bash
# Reproduce the shipped default flow model from scratch (`make model`).
#
# 1. Lab runs (root; skipped when present): the "training" scenario (~53 min) and the
#    "holdout" scenario (~20 min), under $RUNS.
# 2. Train LightGBM, ResCNN and MLP on the training run plus 60 % of the real benign
#    captures (by file name; the other 40 % are reserved for testing).
# 3. Evaluate every model on the holdout lab run and on real captures it never saw
#    (the reserved benign captures and every attack capture of ../shared/data/pcaps).
# 4. benchmarks/bench_models.py measures each model's inference speed, and
#    scripts/select_model.py picks the best by those evaluations among the models that
#    classify >= 200,000 flows/s on one core.
# 5. Cross-source check: the winning algorithm trained on lab traffic only, tested on
#    all real captures.
# 6. scripts/select_model.py ships the winner as src/flowscope/data/models/default and
#    writes the reports into docs/models.md.
set -euo pipefail
cd "$(dirname "$0")/.."
FS=${FS:-.venv/bin/flowscope}
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-runs}
BUILD=${BUILD:-build}
PCAPS=${PCAPS:-../shared/data/pcaps}
SEED=${SEED:-0}

for pair in training:train1 holdout:holdout1; do
  scenario=${pair%%:*}; dir=$RUNS/${pair##*:}
  if [ ! -f "$dir/labels.csv" ]; then
    [ "$(id -u)" = 0 ] || { echo "need root to create lab run $dir (or set RUNS=)" >&2; exit 2; }
    $FS lab run "$scenario" -o "$dir"
  fi
done

REAL=("$PCAPS/ndpi" "$PCAPS/benign" "$PCAPS/scans" "$PCAPS/dos" "$PCAPS/bruteforce" "$PCAPS/web")
rm -rf "$BUILD/models" "$BUILD/models-labonly" "$BUILD/eval"
$FS train "$RUNS/train1" "$PCAPS/ndpi" "$PCAPS/benign" --test-fraction 0.4 --seed "$SEED" \
  -a all -o "$BUILD/models"
for alg in lightgbm rescnn mlp; do
  $FS evaluate "$BUILD/models/$alg" "$RUNS/holdout1" --title "lab holdout run" \
    -o "$BUILD/eval/$alg/holdout" > /dev/null
  $FS evaluate "$BUILD/models/$alg" "${REAL[@]}" --title "real captures not trained on" \
    -o "$BUILD/eval/$alg/real" > /dev/null
done
$PY benchmarks/bench_models.py "$BUILD"/models/* --rows 300000 --no-docs --json "$BUILD/speed.json"
best=$($PY scripts/select_model.py "$BUILD" --pick)
$FS train "$RUNS/train1" --seed "$SEED" -a "$best" -o "$BUILD/models-labonly"
$FS evaluate "$BUILD/models-labonly/$best" "${REAL[@]}" \
  --title "cross-source: trained on lab traffic only, tested on real captures" \
  -o "$BUILD/eval/labonly-$best/real" > /dev/null
$PY scripts/select_model.py "$BUILD"
