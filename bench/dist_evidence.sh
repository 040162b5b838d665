#!/bin/sh
# Real radiographs (../shared/data/knee-kl/train), one process vs mpirun -np 2
# with the same global batch, a small MAE (96 px); logs and the per-step loss
# comparison go to docs/evidence/dist/.   bench/dist_evidence.sh [STEPS] [BATCH]
set -e
cd "$(dirname "$0")/.."
D=../shared/data/knee-kl/train
[ -d "$D" ] || { echo "skip: $D absent"; exit 0; }
STEPS=${1:-40} BATCH=${2:-16}
E=docs/evidence/dist W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$E"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cat > "$W/cfg.json" <<'JSON'
{"image_size": 96, "patch_size": 16, "hidden_size": 192, "num_hidden_layers": 4, "num_attention_heads": 3,
 "intermediate_size": 768, "decoder_hidden_size": 128, "decoder_num_hidden_layers": 2,
 "decoder_num_attention_heads": 4, "decoder_intermediate_size": 512}
JSON
A="--data $D --config $W/cfg.json --steps $STEPS --batch $BATCH --lr 1e-3 --warmup-steps 5 --log-every 10 --save-every 100000 --panel-every 100000 --seed 3"
OMP_NUM_THREADS=1 ./skelex pretrain $A --threads 1 --out "$W/one" > "$E/one.log" 2>&1
mpirun --oversubscribe -np 2 ./skelex pretrain $A --threads 1 --out "$W/two" > "$E/two.log" 2>&1
cp "$W/one/log.csv" "$E/one_log.csv"; cp "$W/two/log.csv" "$E/two_log.csv"; cp "$W/two/loss.svg" "$E/two_loss.svg"
# per step: loss of 1 process, of 2 ranks, relative difference
awk -F, 'NR==FNR { if (FNR > 1) a[$1] = $3; next } FNR > 1 { d = $3 - a[$1]; if (d < 0) d = -d;
         r = d / a[$1]; if (r > m) m = r; printf "%s,%s,%s,%.2e\n", $1, a[$1], $3, r } END { printf "max_rel,,,%.2e\n", m > "/dev/stderr" }' \
    "$E/one_log.csv" "$E/two_log.csv" > "$E/compare.csv" 2> "$E/max_rel.txt"
sed -i '1i step,loss_1proc,loss_2ranks,rel_diff' "$E/compare.csv"
cat "$E/max_rel.txt"; tail -2 "$E/one.log"; tail -2 "$E/two.log"
