#!/usr/bin/env bash
# Interoperability check (developers; needs Debian's python3-torch): a
# checkpoint written by skelex loads with strict=True into the PyTorch twin of
# HF ViTMAEForPreTraining, and both give the same loss and logits for the
# same input and mask. Usage: bash bench/check_interop.sh [preset]
set -euo pipefail
cd "$(dirname "$0")/.."
make -s skelex
cfg=${1:-tiny}; d=$(mktemp -d)
./skelex init --config "$cfg" --out "$d/m" --seed 3 >/dev/null
n=$(./skelex info "$d/m" | sed -n 's/.*-> \([0-9]*\) patches.*/\1/p')
/usr/bin/python3 -c "import numpy as np; np.save('$d/noise.npy', np.random.default_rng(0).random($n).astype(np.float32))"
./skelex reconstruct --model "$d/m" --image examples/phantom.png --noise "$d/noise.npy" --out "$d/r" --save-input | head -1 | sed 's/^/skelex:  /'
/usr/bin/python3 tools/mae_twin.py check "$d/m" --pixels "$d/r_input.npy" --noise "$d/noise.npy" --dump-logits "$d/t.npy" | tail -1 | sed 's/^/pytorch: /'
/usr/bin/python3 -c "
import numpy as np; a=np.load('$d/r.npy'); b=np.load('$d/t.npy')
print('logits', a.shape, 'max abs diff %.3g' % np.abs(a-b).max(), '(max |logit| %.3g)' % np.abs(b).max())"
rm -rf "$d"

# A fine-tuned classifier (HF ViTForImageClassification layout) loads with
# strict=True into the PyTorch twin and predicts the same probabilities.
d=$(mktemp -d)
/usr/bin/python3 - "$d" <<'PY'
import sys, os, numpy as np
from PIL import Image
d = sys.argv[1]; r = np.random.default_rng(0)
for c in ("neg", "pos"):
    os.makedirs(f"{d}/data/{c}")
    for i in range(20):
        a = r.normal(100, 30, (40, 40)); a[:16 if c == "pos" else 0] += 80
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(f"{d}/data/{c}/im{i:02d}.png")
open(f"{d}/task.json", "w").write('{"name": "interop", "type": "multiclass", "image_root": "data", "class_folders": ["neg", "pos"]}')
PY
./skelex finetune --task "$d/task.json" --data-root "$d" --config "${1:-tiny}" --out "$d/ft" --folds 2 --only-folds 0 \
    --epochs 1 --warmup-epochs 0 --lr 1e-3 --batch 8 >/dev/null 2>&1
size=$(/usr/bin/python3 -c "import json; print(json.load(open('$d/ft/fold0/best/config.json'))['image_size'])")
mkdir -p "$d/pre"
for f in "$d"/data/pos/im0[0-3].png "$d"/data/neg/im0[0-3].png; do
  ./skelex preprocess "$f" --out "$d/pre/$(basename "$(dirname "$f")")_$(basename "$f")" --size "$size" >/dev/null
done
./skelex eval --model "$d/ft/fold0/best" --images "$d/pre" --out "$d/ev" >/dev/null
/usr/bin/python3 tools/mae_twin.py check-classifier "$d/ft/fold0/best" "$d"/pre/*.png > "$d/twin.csv"
/usr/bin/python3 - "$d" <<'PY'
import sys, csv, numpy as np
d = sys.argv[1]
ours = {r[0].split("/")[-1]: [float(v) for v in r[2:-1]] for r in list(csv.reader(open(f"{d}/ev/predictions.csv")))[1:]}
twin = {r[0].split("/")[-1]: [float(v) for v in r[1:]] for r in csv.reader(open(f"{d}/twin.csv"))}
diff = max(abs(a - b) for k in twin for a, b in zip(ours[k], twin[k]))
print("classifier: %d images, loaded strict=True, max abs probability diff %.3g" % (len(twin), diff))
PY
rm -rf "$d"
