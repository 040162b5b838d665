#!/usr/bin/env bash
# Compare skelex's MAE training step with the PyTorch twin on this machine,
# in the same run: ViT-S/16 and ViT-B/16, 224 px, MAE decoder (512 x 8),
# batch 32, 2 threads. Needs Debian's python3-torch for the peer.
#
# Where the CPU has native bf16 products (AVX512_BF16 or AMX: skelex bench
# prints bf16_products=native), skelex also runs --precision bf16 and the peer
# runs torch.autocast("cpu", bfloat16) (tools/mae_twin.py --bf16), and the
# ratios are reported against both torch fp32 and torch bf16. Elsewhere the
# bf16 columns are skipped, saying why (emulated bf16 measures nothing useful).
#
# Shared virtual machines are noisy (one step can vary by 20 % between
# runs), so the two programs take turns for ROUNDS rounds of STEPS timed
# steps each (after an untimed warm-up step per run), and each side's
# throughput is batch / median step time over all its timed steps.
# Usage: bash bench/compare_train.sh [configs...]   (default: small base)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s skelex
configs=("$@"); [ ${#configs[@]} -eq 0 ] && configs=(small base)
BATCH=${BATCH:-32}; STEPS=${STEPS:-3}; THREADS=${THREADS:-2}; ROUNDS=${ROUNDS:-2}
out=bench/results; mkdir -p "$out"
stamp=$(date -u +%Y-%m-%dT%H:%MZ)
have_torch=0; /usr/bin/python3 -c "import torch" 2>/dev/null && have_torch=1
have_bf16=0
bf16_products=$(./skelex bench infer --config tiny --batch 1 --steps 1 --precision fp32 2>/dev/null | sed -n 's/^bf16_products=//p')
cpu_isa=$(./skelex bench infer --config tiny --batch 1 --steps 1 --precision fp32 2>/dev/null | sed -n 's/^cpu_isa=//p')
[ "$bf16_products" = native ] && have_bf16=1

median() { tr ',' '\n' | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
field() { sed -n "s/^$1=//p"; }

printf "config,impl,precision,batch,threads,images_per_s,peak_rss_mib,timed_steps\n" > "$out/train.csv.new"
for c in "${configs[@]}"; do
  declare -A times=() rss=()
  precs=fp32; [ $have_bf16 = 1 ] && precs="fp32 bf16"
  for r in $(seq "$ROUNDS"); do
    for prec in $precs; do
      res=$(OMP_NUM_THREADS=$THREADS ./skelex bench train --config "$c" --batch "$BATCH" --steps "$STEPS" --precision $prec 2>/dev/null)
      times[skelex_$prec]+="$(field step_seconds <<<"$res"),"; rss[$prec]=$(field peak_rss_mib <<<"$res")
    done
    if [ $have_torch = 1 ]; then
      res=$(OMP_PROC_BIND=true OMP_PLACES=cores \
            /usr/bin/python3 tools/mae_twin.py bench --config "$c" --batch "$BATCH" --steps "$STEPS" --threads "$THREADS" 2>/dev/null)
      times[pytorch_fp32]+="$(field step_seconds <<<"$res"),"
      if [ $have_bf16 = 1 ]; then
        res=$(OMP_PROC_BIND=true OMP_PLACES=cores \
              /usr/bin/python3 tools/mae_twin.py bench --bf16 --config "$c" --batch "$BATCH" --steps "$STEPS" --threads "$THREADS" 2>/dev/null)
        times[pytorch_bf16]+="$(field step_seconds <<<"$res"),"
      fi
    fi
  done
  for key in skelex_fp32 skelex_bf16 pytorch_fp32 pytorch_bf16; do
    [ -n "${times[$key]:-}" ] || continue
    impl=${key%_*}; prec=${key#*_}; list=${times[$key]%,}
    med=$(median <<<"$list"); n=$(tr ',' '\n' <<<"$list" | wc -l)
    ips=$(awk -v b="$BATCH" -v m="$med" 'BEGIN {printf "%.4f", b / m}')
    r=""; [ "$impl" = skelex ] && r=${rss[$prec]}
    echo "$c $impl $prec: $ips images/s (median of $n steps: $med s${r:+; peak RSS $r MiB})"
    echo "$c,$impl,$prec,$BATCH,$THREADS,$ips,$r,$n" >> "$out/train.csv.new"
    eval "ips_$impl$prec=$ips"
  done
  if [ $have_torch = 1 ]; then
    awk -v a="$ips_skelexfp32" -v b="$ips_pytorchfp32" -v c="$c" 'BEGIN {printf "%s: skelex / PyTorch = %.2fx (fp32)\n", c, a / b}'
    if [ $have_bf16 = 1 ]; then
      awk -v a="$ips_skelexbf16" -v b="$ips_pytorchfp32" -v c="$c" 'BEGIN {printf "%s: skelex bf16 / PyTorch fp32 = %.2fx\n", c, a / b}'
      awk -v a="$ips_skelexbf16" -v b="$ips_pytorchbf16" -v c="$c" 'BEGIN {printf "%s: skelex bf16 / PyTorch bf16 autocast = %.2fx\n", c, a / b}'
      awk -v a="$ips_skelexfp32" -v b="$ips_pytorchbf16" -v c="$c" 'BEGIN {printf "%s: skelex fp32 / PyTorch bf16 autocast = %.2fx\n", c, a / b}'
    fi
  fi
  unset times rss
done
[ $have_bf16 = 0 ] && echo "bf16 columns skipped: this CPU has no native bf16 products (oneDNN isa ${cpu_isa:-?}, bf16 ${bf16_products:-?}; needs AVX512_BF16 or AMX)"
# keep the recorded rows of configs not measured this time
if [ -f "$out/train.csv" ]; then
  tail -n +2 "$out/train.csv" | while IFS=, read -r cfg rest; do
    [[ " ${configs[*]} " == *" $cfg "* ]] || echo "$cfg,$rest"
  done >> "$out/train.csv.new"
fi
mv "$out/train.csv.new" "$out/train.csv"
echo "results: $out/train.csv ($stamp, $(lscpu | sed -n 's/^Model name: *//p'))"
