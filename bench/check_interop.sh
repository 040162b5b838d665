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
