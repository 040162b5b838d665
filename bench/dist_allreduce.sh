#!/bin/sh
# All-reduce time per MB over N local ranks (loopback / shared memory):
#   bench/dist_allreduce.sh [N]     (default 2)
set -e
cd "$(dirname "$0")/.."
command -v mpicc >/dev/null || { echo "mpicc not found (apt-get install libopenmpi-dev openmpi-bin)"; exit 1; }
mkdir -p build/bench
mpicc -O2 -o build/bench/dist_allreduce bench/dist_allreduce.c
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun --oversubscribe -np "${1:-2}" build/bench/dist_allreduce
