#!/usr/bin/env bash
# Evidence for zero-shot error maps: run `skelex errormap --boxes` with a
# pretrained model on the fractured FracAtlas images and score the maps
# against the fracture boxes. Usage: bash bench/errormap_evidence.sh MODEL_DIR [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?model directory}; out=${2:-runs/errormap-evidence}
data=../shared/data/fracatlas
[ -d "$data" ] || { echo "no $data: nothing to do"; exit 0; }
make -s skelex
mkdir -p "$out"
./skelex bench errormap --config "$model" --passes 10 --steps 3 2>/dev/null | grep seconds_per_image
for m in balanced random; do
  ./skelex errormap --model "$model" --out "$out/$m" --passes 10 --masking $m \
      --boxes "$data/Annotations/YOLO" "$data/images/Fractured" | tee "$out/$m.txt"
done
