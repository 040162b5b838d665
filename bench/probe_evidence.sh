#!/usr/bin/env bash
# Evidence for adaptation: linear probe at 10 % and 100 % of the training
# labels on FracAtlas fracture, FracAtlas hardware and knee KL grade, for
# (a) a randomly initialised encoder and (b) an MAE-pretrained one.
# Usage: bash bench/probe_evidence.sh PRETRAINED_DIR [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
pre=${1:?pretrained model directory}; out=${2:-runs/probe-evidence}
root=../shared/data
[ -d "$root" ] || { echo "no $root: nothing to do"; exit 0; }
make -s skelex
mkdir -p "$out"
./skelex init --config "$pre/config.json" --out "$out/random-init" --seed 1 >/dev/null
for task in ${TASKS:-fracatlas_fracture knee_kl fracatlas_hardware}; do
  for m in random-init pretrained; do
    dir=$pre; [ $m = random-init ] && dir=$out/random-init
    echo "== $task, $m"
    ./skelex probe --task tasks/$task.json --data-root "$root" --skip-missing --model "$dir" \
        --out "$out/$task-$m" --label-fraction 0.1,1 --folds 5 | grep -E "mean|wrote"
  done
done
