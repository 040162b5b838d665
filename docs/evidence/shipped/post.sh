#!/bin/bash
# after pretraining: evidence + shipped models. Run from /work/main.
set -x
W=/work/exp; D=../shared/data; T=tasks
export OMP_NUM_THREADS=2
cd /work/main
MAE=$W/mae_final
rm -rf $MAE && cp -rL $W/pt1/checkpoint $MAE
mkdir -p $W/probe_pre $W/probe_pre6 $W/probe_rand6
for t in fracatlas_fracture fracatlas_hardware flatfoot; do
  for v in "pre $MAE" "pre6 $MAE --layers 6" "rand6 $W/random112 --layers 6"; do
    set -- $v; n=$1; shift; m=$1; shift
    ./skelex probe --task $T/$t.json --data-root $D --model $m "$@" --out $W/probe_$n/$t --label-fraction 0.1,1 --batch 64 > $W/probe_$n/$t.log 2>&1
  done
done
for v in "pre $MAE" "pre6 $MAE --layers 6" "rand6 $W/random112 --layers 6"; do
  set -- $v; n=$1; shift; m=$1; shift
  ./skelex probe --task $T/knee_kl_train.json --test-task $T/knee_kl_val.json --data-root $D --model $m "$@" --out $W/probe_$n/knee_kl --label-fraction 0.1,1 --batch 64 > $W/probe_$n/knee_kl.log 2>&1
done
echo PROBES_DONE
# zero-shot localisation: unseen test-split fractures, and all 588 fractured images
for m in "pre $MAE" "rand $W/random112"; do
  set -- $m
  for l in test all; do
    ./skelex errormap --model $2 --out $W/loc_$1_$l --passes 10 --boxes $D/fracatlas/Annotations/YOLO $W/loc_$l.txt > $W/loc_$1_$l.log 2>&1
  done
done
echo LOC_DONE
# the shipped heads: fold 0, 3 epochs
./skelex finetune --task $T/skelex_heads.json --data-root $D --model $MAE --out $W/heads --force --only-folds 0 \
  --epochs 3 --warmup-epochs 1 --batch 64 --micro-batch 32 --lr 5e-4 --seed 0 > $W/heads.log 2>&1
echo HEADS_DONE
for t in flatfoot fracatlas_fracture; do
  ep=3; [ $t = flatfoot ] && ep=10
  for m in "pre --model $MAE" "rand --model $W/random112"; do
    set -- $m; n=$1; shift
    ./skelex finetune --task $T/$t.json --data-root $D "$@" --out $W/ft_${n}_$t --force --only-folds 0 \
      --epochs $ep --warmup-epochs 1 --batch 32 --micro-batch 32 --lr 5e-4 --seed 0 > $W/ft_${n}_$t.log 2>&1
  done
done
echo FT_DONE
