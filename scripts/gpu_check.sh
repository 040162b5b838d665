#!/usr/bin/env bash
# gpu_check.sh: the CUDA backend's checks on a GPU machine, in one call of
# under 5 minutes (docs/cuda.md).
#   scripts/gpu_check.sh [OUTDIR]     (default: $OUT if set, else build/cuda_check)
# Steps, each logged to OUTDIR:
#   1. the GPU (nvidia-smi) and the compiler (nvcc --version)        gpu.txt
#   2. src/cuda/*.cu compiled with this machine's nvcc (sm_90 + PTX)  build.log
#   3. the layer checks and the tiny block: build/test_cuda when skelex's
#      Debian libraries are here (then also `make cuda` and `skelex cuda`),
#      else the prebuilt build/cuda_bundle (`make cuda-bundle` on the build
#      machine; carry build/cuda_bundle)                             test_cuda.log
#   4. summary.txt: one line per step, PASS / FAIL / SKIP
# Exit status: 0 every step passed; 1 a step failed; 2 usage.
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${1:-${OUT:-build/cuda_check}}
[ $# -le 1 ] || { echo "usage: scripts/gpu_check.sh [OUTDIR]" >&2; exit 2; }
mkdir -p "$OUTDIR" || exit 2
SUMMARY=$OUTDIR/summary.txt
: >"$SUMMARY"
status=0
note() { echo "$1" | tee -a "$SUMMARY"; case $1 in FAIL*) status=1 ;; esac; }
export PATH=$PATH:/usr/local/cuda/bin
JOBS=$(nproc 2>/dev/null || echo 4)
t0=$(date +%s)

# 1. the machine
{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv; nvcc --version; } \
  >"$OUTDIR/gpu.txt" 2>&1
if nvidia-smi -L >/dev/null 2>&1; then note "PASS gpu: $(nvidia-smi -L | head -1)"; else note "FAIL gpu: nvidia-smi sees no GPU"; fi

# 2. the CUDA sources, compiled here
if ! command -v nvcc >/dev/null 2>&1; then
  note "FAIL build: no nvcc on PATH"
elif timeout 200 make -j"$JOBS" cuda-objs >"$OUTDIR/build.log" 2>&1; then
  note "PASS build: src/cuda/*.cu with $(nvcc --version | grep -o 'release [0-9.]*') ($(( $(date +%s) - t0 )) s so far)"
else
  note "FAIL build: src/cuda/*.cu (see build.log)"
fi

# 3. the layer checks
have_deps() { echo '#include <oneapi/dnnl/dnnl.h>
#include <cjson/cJSON.h>
#include <spng.h>
#include <microhttpd.h>
#include <dcmtk/config/osconfig.h>' | ${CC:-cc} -E -x c - >/dev/null 2>&1; }
runner=""
if have_deps; then
  if timeout 240 make -j"$JOBS" cuda build/test_cuda >>"$OUTDIR/build.log" 2>&1; then
    runner=build/test_cuda
    note "PASS make cuda: ./skelex and build/test_cuda from source"
    ./skelex cuda >"$OUTDIR/skelex_cuda.txt" 2>&1 && note "PASS skelex cuda: $(head -1 "$OUTDIR/skelex_cuda.txt")" \
      || note "FAIL skelex cuda: $(head -1 "$OUTDIR/skelex_cuda.txt")"
  else
    note "FAIL make cuda (see build.log)"
  fi
elif [ -x build/cuda_bundle/test_cuda ]; then
  runner=build/cuda_bundle/test_cuda
  export LD_LIBRARY_PATH=$PWD/build/cuda_bundle/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  # cuBLASLt from CUDA 13 wherever this machine keeps it (toolkit or pip wheel)
  lt=$(ls /usr/local/cuda/lib64/libcublasLt.so.13 2>/dev/null || find / -xdev -name 'libcublasLt.so.13' 2>/dev/null | head -1)
  [ -n "$lt" ] && export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$(dirname "$lt")
  note "SKIP make cuda: skelex's Debian libraries are not here; running the prebuilt build/cuda_bundle"
else
  note "FAIL test_cuda: no skelex libraries here and no build/cuda_bundle (make cuda-bundle, then carry it)"
fi
if [ -n "$runner" ]; then
  OMP_NUM_THREADS=$JOBS timeout 240 "$runner" >"$OUTDIR/test_cuda.log" 2>&1
  rc=$?
  last=$(grep '^test_cuda: ' "$OUTDIR/test_cuda.log" | tail -1)
  if [ $rc -eq 0 ] && grep -q ' passed, 0 failed' <<<"$last"; then note "PASS $last"
  else note "FAIL ${last:-test_cuda: exit $rc, no summary line} (see test_cuda.log)"; fi
  grep -E 'FAIL' "$OUTDIR/test_cuda.log" | head -20 | sed 's/^/  /' | tee -a "$SUMMARY"
fi
note "time: $(( $(date +%s) - t0 )) s"
exit $status
