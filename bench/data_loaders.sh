#!/usr/bin/env bash
# Shard vs folder loader throughput: `skelex bench data` on an image folder,
# then on tar shards packed from it (`skelex shard`), same settings; both
# outputs (and the CPU) go to bench/results/data_loaders.txt.
# Usage: bash bench/data_loaders.sh [IMAGE_DIR] [SECONDS]
#   IMAGE_DIR  default ../shared/data/fracatlas/images (skipped with a line if absent)
#   SECONDS    seconds per phase (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/fracatlas/images}; secs=${2:-10}
[ -d "$data" ] || { echo "bench/data_loaders.sh: no $data: skipped"; exit 0; }
make -s -j2 skelex
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# decoder warnings (truncated JPEGs that still decode) become one count line
quiet() { awk '/^skelex: warning: /{w++; next} /^bench data: skipped: /{next} {print} END{print "decoder_warning_lines=" w+0}'; }
out=bench/results/data_loaders.txt
mkdir -p bench/results
{
  echo "# skelex bench data: folder vs shard loader ($(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD))"
  echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores"
  echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared: figures move with it)"
  echo "# data: $data; --seconds $secs per phase, other settings the defaults (size 224, batch 32)"
  echo "## shard: ./skelex shard --data $data --out SHARDS"
  ./skelex shard --data "$data" --out "$tmp/shards" 2>&1 | grep -v 'warning:' || true
  echo "## ./skelex bench data --data $data --seconds $secs"
  ./skelex bench data --data "$data" --seconds "$secs" 2>&1 | quiet
  echo "## ./skelex bench data --data SHARDS --seconds $secs"
  ./skelex bench data --data "$tmp/shards" --seconds "$secs" 2>&1 | quiet
} | tee "$out"
echo "wrote $out"
