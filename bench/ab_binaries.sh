#!/usr/bin/env bash
# A/B of two skelex binaries on one machine, alternating ROUNDS rounds (so a
# shared VM's drift hits both sides alike): MAE training step and a 10-pass
# error map. Usage: bench/ab_binaries.sh OLD_BIN NEW_BIN [OUT]
# Used to check that a change does not slow bench train / bench errormap.
set -uo pipefail
OLD=$1; NEW=$2; OUT=${3:-/dev/stdout}; ROUNDS=${ROUNDS:-3}
export OMP_PROC_BIND=true OMP_PLACES=cores
for r in $(seq "$ROUNDS"); do
  for side in old new; do
    bin=$OLD; [ "$side" = new ] && bin=$NEW
    t=$("$bin" bench train --config small --batch 16 --steps 3 2>/dev/null | grep -o 'images_per_s=[0-9.]*')
    e=$("$bin" bench errormap --config base --passes 10 --steps 3 2>/dev/null | grep -o 'seconds_per_image=[0-9.]*')
    echo "round $r $side train_small_b16 $t errormap_base_p10 $e"
  done
done | tee "$OUT"
