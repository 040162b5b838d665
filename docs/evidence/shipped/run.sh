#!/bin/sh
# The evidence of docs/evidence/shipped/README.md, as run (from the repository
# root, ../shared/data present, 2 shared CPU cores). W holds the runs.
set -e
W=${W:-/work/exp}
D=../shared/data
T=tasks
mkdir -p "$W"
# 0. the random-init twin (same architecture, seed 0) and the per-task test splits
./skelex init --config docs/evidence/shipped/skelex-tiny-mae.config.json --out "$W/random112" --seed 0 --force
for t in fracatlas_fracture fracatlas_hardware flatfoot; do
  ./skelex probe --task $T/$t.json --data-root $D --model "$W/random112" --out "$W/probe_random/$t" --label-fraction 0.1,1 --batch 64
done
./skelex probe --task $T/knee_kl_train.json --test-task $T/knee_kl_val.json --data-root $D --model "$W/random112" \
  --out "$W/probe_random/knee_kl" --label-fraction 0.1,1 --batch 64
# 1. the pretraining list: every FracAtlas, knee-kl train/ and flatfoot image except the
#    test-split images of the four tasks above (982 held out; 8708 left)
/usr/bin/python3 tools/pretrain_list.py "$W" $D > "$W/pretrain_list.txt"
# 2. MAE pretraining, 5000 steps of 128 images (73 epochs), 112 px, norm_pix_loss, light decoder
./skelex pretrain --data "$W/pretrain_list.txt" --config docs/evidence/shipped/skelex-tiny-mae.config.json --out "$W/pt1" \
  --batch 128 --steps 5000 --lr 1.5e-3 --warmup-steps 250 --weight-decay 0.05 --save-every 500 --panel-every 1000 \
  --panel-images docs/evidence/shipped/panel_list.txt --log-every 25 --seed 0 --threads 2
