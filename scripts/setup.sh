#!/usr/bin/env bash
# One command: install dependencies, build ./skelex, analyse the bundled
# example radiographs (examples/images/, CC BY 4.0, see ATTRIBUTION.md) with
# the shipped models (models/skelex-tiny-mae: the pretrained MAE;
# models/skelex-heads: the region-guided multi-head classifier) into
# zero-shot error maps and predictions, then start the web application
# (`skelex serve`, same models) in the background and print the URL to open.
# SKELEX_PORT sets its port (8080); stop it with: kill $(cat runs/demo/serve.pid)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
make -j2 skelex
mkdir -p runs/demo
for m in models/skelex-tiny-mae models/skelex-heads; do
  [ -f "$m/model.safetensors" ] || { echo "setup: $m is missing (a partial clone?)"; exit 1; }
done
echo "== the shipped models (used by every command when --model is not given)"
./skelex info
imgs=(examples/images/fracatlas_IMG0004010.jpg examples/images/knee_kl3_9023348L.jpg examples/images/flatfoot_103L.jpg)
echo "== skelex errormap: zero-shot maps of where each image is hard to reconstruct"
./skelex errormap --out runs/demo/maps --passes 10 "${imgs[@]}"
echo "== skelex predict: the multi-head classifier on error-map regions (boxes in original pixels)"
./skelex predict --out runs/demo/predict "${imgs[@]}"
echo "predictions (per output: the highest probability over the regions, and where it came from):"
awk -F, 'NR > 1 { n = split($1, p, "/"); printf "  %-28s %-24s %.3f  (%s)\n", p[n], $2, $3, $5 }' runs/demo/predict/predictions.csv
echo "== the same fracture image, scored on its annotated fracture boxes"
./skelex predict --regions boxes:examples/images --out runs/demo/predict_boxes examples/images/fracatlas_IMG0004010.jpg
echo "demo outputs: runs/demo/maps (<name>_errormap.png overlays, summary.csv),"
echo "  runs/demo/predict (predictions.json, predictions.csv, <name>_predict.png)"
echo "== skelex serve: the web application, in the background"
port=${SKELEX_PORT:-8080}
pidfile=runs/demo/serve.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "stopping the demo server started before (pid $(cat "$pidfile"))"
  kill "$(cat "$pidfile")" || true
  for _ in $(seq 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
fi
nohup ./skelex serve --port "$port" > runs/demo/serve.out 2> runs/demo/serve.log < /dev/null &
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
