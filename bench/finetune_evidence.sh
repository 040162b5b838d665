#!/usr/bin/env bash
# Evidence for adaptation: full fine-tuning at 100 % of the labels on
# FracAtlas fracture (and any TASKS given), for (a) random initialisation and
# (b) an MAE-pretrained encoder, then the table of probe + fine-tune results.
# Usage: bash bench/finetune_evidence.sh PRETRAINED_DIR [OUT]
#   env: TASKS (default fracatlas_fracture), EPOCHS (default 50), WARMUP (5),
#        ONLY_FOLDS (default: all 5), PROBE_DIRS (probe outputs to add to the table)
set -euo pipefail
cd "$(dirname "$0")/.."
pre=${1:?pretrained model directory}; out=${2:-runs/finetune-evidence}
root=../shared/data
[ -d "$root" ] || { echo "no $root: nothing to do"; exit 0; }
make -s skelex
mkdir -p "$out"
folds=(); [ -n "${ONLY_FOLDS:-}" ] && folds=(--only-folds "$ONLY_FOLDS")
for task in ${TASKS:-fracatlas_fracture}; do
  for m in random pretrained; do
    src=(--model "$pre"); [ $m = random ] && src=(--config "$pre/config.json")
    echo "== $task, $m"
    ./skelex finetune --task tasks/$task.json --data-root "$root" --skip-missing "${src[@]}" \
        --out "$out/$task-$m" --epochs "${EPOCHS:-50}" --warmup-epochs "${WARMUP:-5}" "${folds[@]}"
  done
done
python3 bench/adaptation_table.py ${PROBE_DIRS:-} "$out"/*/ | tee "$out/table.md"
