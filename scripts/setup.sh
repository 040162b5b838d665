#!/usr/bin/env bash
# One command: install dependencies, build ./skelex, and run a short
# demonstration (init a model, reconstruct a radiograph, benchmark a step),
# then start the web application (`skelex serve`) on that model in the
# background and print the URL to open. SKELEX_PORT sets its port (8080);
# stop it with: kill $(cat runs/demo/serve.pid)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
make -j2 skelex
mkdir -p runs/demo
echo "== skelex init: a ViT-Tiny MAE in Hugging Face layout"
./skelex init --config tiny --out runs/demo/tiny --seed 0 --force
./skelex info runs/demo/tiny
img=examples/phantom.png
real=$(ls ../shared/data/fracatlas/images/Fractured/*.jpg 2>/dev/null | head -n 1 || true)
[ -n "$real" ] && img=$real
echo "== skelex reconstruct on $img (untrained model: expect a blurry reconstruction)"
./skelex reconstruct --model runs/demo/tiny --image "$img" --seed 1 --out runs/demo/reconstruction
echo "== skelex errormap on $img (zero-shot map: overlay, panel, .npy, summary.csv)"
./skelex errormap --model runs/demo/tiny --out runs/demo/maps --passes 4 "$img"
echo "== skelex bench train (ViT-Tiny, batch 8, 2 steps)"
./skelex bench train --config tiny --batch 8 --steps 2
echo "demo outputs are in runs/demo/ (reconstruction.png is the 4-panel image)"
echo "== skelex serve: the web application, in the background"
port=${SKELEX_PORT:-8080}
pidfile=runs/demo/serve.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "stopping the demo server started before (pid $(cat "$pidfile"))"
  kill "$(cat "$pidfile")" || true
  for _ in $(seq 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
fi
nohup ./skelex serve --model runs/demo/tiny --port "$port" > runs/demo/serve.out 2> runs/demo/serve.log < /dev/null &
echo $! > "$pidfile"
healthy=""
for _ in $(seq 100); do
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then break; fi
  if { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
    printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    if head -n 1 <&3 | grep -q " 200 "; then healthy=1; fi
    exec 3<&- 3>&-
    [ -n "$healthy" ] && break
  fi
  sleep 0.2
done
if [ -z "$healthy" ]; then
  echo "skelex serve did not come up on port $port (see runs/demo/serve.log):"
  tail -n 5 runs/demo/serve.log
  exit 1
fi
echo "skelex serve is running (pid $(cat "$pidfile"), log runs/demo/serve.log); open:"
echo "  http://127.0.0.1:$port/"
