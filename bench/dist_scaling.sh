#!/bin/sh
# 1 rank vs 2 ranks on this machine, same global batch, tiny model on
# synthetic images; and the shard loader against the folder loader.
#   bench/dist_scaling.sh [STEPS] [BATCH] [CONFIG]   (default 30, 32, tiny)
# Prints img/s of each run and the gradient-reduction share (rank 0's line).
set -e
cd "$(dirname "$0")/.."
STEPS=${1:-30} BATCH=${2:-32} CONFIG=${3:-tiny}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
python3 - "$W/data" <<'PY'
import math, os, struct, sys, zlib
d = sys.argv[1]; os.makedirs(d)
def png(p, w, h, px):
    raw = b''.join(b'\0' + bytes(px[y*w:(y+1)*w]) for y in range(h))
    c = lambda t, x: struct.pack('>I', len(x)) + t + x + struct.pack('>I', zlib.crc32(t + x) & 0xffffffff)
    open(p, 'wb').write(b'\x89PNG\r\n\x1a\n' + c(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0)) + c(b'IDAT', zlib.compress(raw)) + c(b'IEND', b''))
for k in range(128):
    a = 0.3 * k; co, si = math.cos(a), math.sin(a)
    px = [min(255, 20 + (180 if abs((x-64)*co+(y-64)*si) < 45 and abs(-(x-64)*si+(y-64)*co) < 10 else 0) + (x+y) % 7) for y in range(128) for x in range(128)]
    png(f"{d}/img{k:04d}.png", 128, 128, px)
PY
./skelex shard --data "$W/data" --out "$W/sh" --shard-mb 0.2 >/dev/null
A="--config $CONFIG --steps $STEPS --batch $BATCH --log-every $STEPS --save-every 100000 --panel-every 100000"
run() { # name, then the command; prints the last log line's img/s
    "$@" > "$W/log" 2>&1 || { cat "$W/log"; exit 1; }
    printf '%-34s %s img/s  %s\n' "$NAME" "$(tail -n 20 "$W/log" | grep -o '[0-9.]* img/s' | tail -1 | cut -d' ' -f1)" \
        "$(grep -o 'gradient reduction.*' "$W/log" || true)"
}
NAME="1 process, 2 threads, folder"; run ./skelex pretrain $A --data "$W/data" --threads 2 --out "$W/r1"
NAME="1 process, 2 threads, shards"; run ./skelex pretrain $A --data "$W/sh" --threads 2 --out "$W/r2"
if command -v mpirun >/dev/null; then
NAME="2 ranks x 1 thread, folder"; run mpirun --oversubscribe -np 2 ./skelex pretrain $A --data "$W/data" --threads 1 --out "$W/r3"
NAME="2 ranks x 1 thread, shards"; run mpirun --oversubscribe -np 2 ./skelex pretrain $A --data "$W/sh" --threads 1 --out "$W/r4"
NAME="2 ranks x 1 thread, ZeRO-1"; run mpirun --oversubscribe -np 2 ./skelex pretrain $A --data "$W/data" --threads 1 --zero1 --out "$W/r5"
fi
