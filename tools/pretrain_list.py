#!/usr/bin/python3
"""pretrain_list.py W DATA: the pretraining image list of docs/evidence/shipped:
every image of FracAtlas, knee-kl/train and flatfoot under DATA, except those
in the test split of W/probe_random/<task>/split.json (fold -1) of the four
evaluation tasks, so that no test image is seen during pretraining."""
import json
import os
import sys

w, data = sys.argv[1], sys.argv[2]
test = set()
for t in ("fracatlas_fracture", "fracatlas_hardware", "flatfoot", "knee_kl"):
    with open(os.path.join(w, "probe_random", t, "split.json")) as f:
        test |= {i["path"] for i in json.load(f)["images"] if i["fold"] == -1}
imgs = []
for sub in ("fracatlas/images", "knee-kl/train", "flatfoot"):
    for root, _, files in os.walk(os.path.join(data, sub)):
        for name in files:
            if name.lower().endswith((".jpg", ".jpeg", ".png")):
                rel = os.path.relpath(os.path.join(root, name), data)
                if rel not in test:
                    imgs.append(os.path.abspath(os.path.join(data, rel)))
print(f"{len(imgs)} pretraining images, {len(test)} test images held out", file=sys.stderr)
print("\n".join(sorted(imgs)))
