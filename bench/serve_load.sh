#!/usr/bin/env bash
# serve_load.sh: load test of `skelex serve` with wrk: POST /api/analyze for
# DURATION seconds (default 30) from CONNECTIONS connections (default 8) on a
# tiny MAE (64 px, patch 16, width 32, 1 layer), 4 passes per request,
# examples/phantom.png (300 x 360) as the body. Writes bench/results/serve_load.txt.
#   bash bench/serve_load.sh [DURATION] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-30}
CONN=${2:-8}
WORKERS=${WORKERS:-2}
command -v wrk >/dev/null || { echo "serve_load: wrk is not installed (scripts/deps.sh)"; exit 1; }
make -s -j2 skelex
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
cat > "$tmp/cfg.json" <<'CFG'
{"image_size": 64, "patch_size": 16, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
 "intermediate_size": 64, "decoder_hidden_size": 16, "decoder_num_hidden_layers": 1,
 "decoder_num_attention_heads": 2, "decoder_intermediate_size": 32}
CFG
./skelex init --config "$tmp/cfg.json" --out "$tmp/mae" --seed 1 >/dev/null
cp examples/phantom.png "$tmp/img.png"
OMP_NUM_THREADS=1 ./skelex serve --model "$tmp/mae" --port 0 --workers "$WORKERS" --queue 64 --passes 4 \
  > "$tmp/out.txt" 2> "$tmp/serve.log" &
pid=$!
for _ in $(seq 100); do grep -q "open http" "$tmp/out.txt" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[^ ]*' "$tmp/out.txt" | head -n 1)
[ -n "$url" ] || { echo "serve_load: the server did not start"; cat "$tmp/serve.log"; exit 1; }
load0=$(cut -d" " -f1-3 /proc/loadavg)
out=$(SKELEX_BENCH_IMAGE="$tmp/img.png" wrk -t 2 -c "$CONN" -d "${DUR}s" --timeout 30s -s bench/serve_post.lua "${url}api/analyze")
echo "$out"
w=$(python3 -c "import struct;d=open('$tmp/img.png','rb').read(24);print(*struct.unpack('>II',d[16:24]))" 2>/dev/null || echo "?")
{
  echo "# skelex serve load test (bench/serve_load.sh), $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "# machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), shared"
  echo "# load average before the run: $load0 (other work on the machine slows these figures)"
  echo "# wrk -t 2 -c $CONN -d ${DUR}s POST /api/analyze, examples/phantom.png ($w px) as the body,"
  echo "# tiny MAE (64 px, patch 16, width 32, 1+1 layers), 4 passes, $WORKERS workers x 1 thread"
  echo "$out" | grep -E '^(requests=|latency_ms|errors)'
  echo "non2xx=$(echo "$out" | sed -n 's/.*status(non-2xx\/3xx)=\([0-9]*\).*/\1/p')"
} > bench/results/serve_load.txt
cat bench/results/serve_load.txt
