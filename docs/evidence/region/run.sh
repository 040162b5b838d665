#!/bin/sh
# The evidence of docs/evidence/region/README.md, exactly as run (from the
# repository root, with ../shared/data present). 2 shared CPU cores: a tiny
# model (tiny96.json: ViT 192 wide, 6 layers, 96 px, patch 16), fold 0 only.
set -e
W=${W:-/tmp/heads_ev}
mkdir -p "$W"
# 1. MAE pretraining (self-supervised, no labels), stopped by SIGTERM at step 621 of 1200 (time budget)
./skelex pretrain --config docs/evidence/region/tiny96.json --data ../shared/data/fracatlas/images \
    --data ../shared/data/flatfoot --data ../shared/data/knee-kl --out "$W/mae" --steps 1200 --batch 64 \
    --blr 1.5e-3 --threads 2 --loader-threads 1 --save-every 400 --panel-every 100000 --log-every 50
# 2. multi-head fine-tuning on FracAtlas + flatfoot + knee-kl (val/ only), fold 0, 6 epochs, IoR crops
OMP_NUM_THREADS=2 ./skelex finetune --task docs/evidence/region/open_multihead_small.json --data-root ../shared/data \
    --model "$W/mae/checkpoint" --out "$W/ft" --force --only-folds 0 --epochs 6 --warmup-epochs 1 \
    --batch 64 --micro-batch 64 --lr 1e-3 --seed 0
# 3. per-group scores on the test split: whole image, given boxes, error-map regions, side by side
OMP_NUM_THREADS=2 ./skelex eval --model "$W/ft/fold0/best" --task docs/evidence/region/open_multihead_small.json \
    --data-root ../shared/data --seed 0 --out docs/evidence/region/eval \
    --regions boxes:../shared/data/fracatlas/Annotations/YOLO --mae "$W/mae/checkpoint"
mkdir -p docs/evidence/region/train
cp "$W/ft/results.json" "$W/ft/fold0/log.csv" "$W/ft/fold0/val_score.svg" "$W/ft/fold0/curves.svg" docs/evidence/region/train/
