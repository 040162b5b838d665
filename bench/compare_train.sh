#!/usr/bin/env bash
# Compare skelex's MAE training step with the PyTorch twin on this machine,
# in the same run: ViT-S/16 and ViT-B/16, 224 px, MAE decoder (512 x 8),
# batch 32, 2 threads. Needs Debian's python3-torch for the peer.
# Usage: bash bench/compare_train.sh [configs...]   (default: small base)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s skelex
configs=("$@"); [ ${#configs[@]} -eq 0 ] && configs=(small base)
BATCH=${BATCH:-32}; STEPS=${STEPS:-3}; THREADS=${THREADS:-2}
out=bench/results; mkdir -p "$out"
stamp=$(date -u +%Y-%m-%dT%H:%MZ)
printf "config,impl,precision,batch,threads,images_per_s,peak_rss_mib\n" > "$out/train.csv.new"
for c in "${configs[@]}"; do
  precs="fp32"
  ./skelex bench infer --config tiny --batch 1 --steps 1 --precision bf16 2>/dev/null | grep -q "precision=bf16" && precs="fp32 bf16"
  for prec in $precs; do
    r=$(OMP_NUM_THREADS=$THREADS ./skelex bench train --config "$c" --batch "$BATCH" --steps "$STEPS" --precision $prec 2>/dev/null)
    ips=$(sed -n 's/^images_per_s=//p' <<<"$r"); rss=$(sed -n 's/^peak_rss_mib=//p' <<<"$r")
    echo "$c skelex $prec: $ips images/s (peak RSS $rss MiB)"
    echo "$c,skelex,$prec,$BATCH,$THREADS,$ips,$rss" >> "$out/train.csv.new"
  done
  if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    r=$(OMP_PROC_BIND=true OMP_PLACES=cores \
        /usr/bin/python3 tools/mae_twin.py bench --config "$c" --batch "$BATCH" --steps "$STEPS" --threads "$THREADS" 2>/dev/null)
    ips=$(sed -n 's/^images_per_s=//p' <<<"$r")
    echo "$c pytorch fp32: $ips images/s"
    echo "$c,pytorch,fp32,$BATCH,$THREADS,$ips," >> "$out/train.csv.new"
  fi
done
[ "$precs" = fp32 ] && echo "bf16: not measured, oneDNN has no bf16 matmul on this CPU (no AVX-512/AMX)"
mv "$out/train.csv.new" "$out/train.csv"
echo "results: $out/train.csv ($stamp, $(lscpu | sed -n 's/^Model name: *//p'))"
