#!/usr/bin/env bash
# One command: install dependencies, build ./skelex, and run a short
# demonstration (init a model, reconstruct a radiograph, benchmark a step).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
make -j2 skelex
mkdir -p runs/demo
echo "== skelex init: a ViT-Tiny MAE in Hugging Face layout"
./skelex init --config tiny --out runs/demo/tiny --seed 0
./skelex info runs/demo/tiny
img=examples/phantom.png
real=$(ls ../shared/data/fracatlas/images/Fractured/*.jpg 2>/dev/null | head -n 1 || true)
[ -n "$real" ] && img=$real
echo "== skelex reconstruct on $img (untrained model: expect a blurry reconstruction)"
./skelex reconstruct --model runs/demo/tiny --image "$img" --seed 1 --out runs/demo/reconstruction
echo "== skelex bench train (ViT-Tiny, batch 8, 2 steps)"
./skelex bench train --config tiny --batch 8 --steps 2
echo "demo outputs are in runs/demo/ (reconstruction.png is the 4-panel image)"
