#!/usr/bin/python3
"""Make tests/fixtures/metrics/metrics.json: reference metric values computed
by scikit-learn (and numpy for ECE) on small fixed arrays, for
tests/eval/test_metrics.c (compared to 1e-9).

Developers only: needs Debian's python3-sklearn (apt-get install -y
python3-sklearn). Run from the repository root:
    /usr/bin/python3 tools/make_metrics_fixture.py

The bootstrap confidence intervals are reproduced exactly: this script
re-implements src/core/rng.c (xoshiro256** seeded through splitmix64, and
rng_below) so it draws the same resamples as the C code, skips the same
single-class resamples and takes numpy's linear percentiles.
"""
import json
import os

import numpy as np
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, cohen_kappa_score, confusion_matrix,
                             f1_score, mean_absolute_error, mean_squared_error, recall_score, roc_auc_score)

OUT = "tests/fixtures/metrics"
N_BOOT = 1000
BOOT_SEED = 12345
BINS = 15
M64 = (1 << 64) - 1


class Rng:
    """src/core/rng.c: xoshiro256** seeded by splitmix64."""

    def __init__(self, seed):
        x = seed & M64
        self.s = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & M64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def _rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M64

    def u64(self):
        s = self.s
        result = (self._rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def below(self, n):
        return ((self.u64() >> 32) * n) >> 32


def headline_auroc(y, p, K):
    if K == 2:
        return roc_auc_score(y, p[:, 1])
    return roc_auc_score(y, p, multi_class="ovr", average="macro")


def bootstrap_auroc(y, p, K):
    r = Rng(BOOT_SEED)
    n = len(y)
    vals = []
    for _ in range(N_BOOT):
        idx = np.array([r.below(n) for _ in range(n)])
        yb = y[idx]
        if len(np.unique(yb)) < K:   # a class is missing: skipped, as in C
            continue
        vals.append(headline_auroc(yb, p[idx], K))
    lo, hi = np.percentile(np.array(vals), [2.5, 97.5])
    return float(lo), float(hi), len(vals)


def bootstrap_mae(pred, target):
    r = Rng(BOOT_SEED)
    n = len(pred)
    vals = []
    for _ in range(N_BOOT):
        idx = np.array([r.below(n) for _ in range(n)])
        vals.append(np.mean(np.abs(pred[idx] - target[idx])))
    lo, hi = np.percentile(np.array(vals), [2.5, 97.5])
    return float(lo), float(hi)


def calibration(y, p):
    """ECE with 15 equal-width bins (lo, hi] of the max probability."""
    conf = p.max(axis=1)
    pred = p.argmax(axis=1)
    correct = (pred == y).astype(float)
    edges = np.arange(BINS + 1, dtype=np.float64) * (1.0 / BINS)
    edges[BINS] = 1.0
    counts, ece = [], 0.0
    for b in range(BINS):
        lo_ok = conf > edges[b] if b > 0 else np.ones_like(conf, dtype=bool)
        hi_ok = conf <= edges[b + 1] if b < BINS - 1 else np.ones_like(conf, dtype=bool)
        m = lo_ok & hi_ok
        counts.append(int(m.sum()))
        if m.any():
            ece += m.sum() / len(y) * abs(correct[m].mean() - conf[m].mean())
    return float(ece), counts


def classification_case(name, kind, y, p):
    K = p.shape[1]
    pred = p.argmax(axis=1)
    labels = list(range(K))
    per_class = [float(roc_auc_score((y == c).astype(int), p[:, c])) for c in range(K)]
    lo, hi, valid = bootstrap_auroc(y, p, K)
    ece, counts = calibration(y, p)
    expect = {
        "auroc": float(headline_auroc(y, p, K)),
        "auroc_per_class": per_class,
        "auroc_ci95": [lo, hi],
        "auroc_ci_valid": valid,
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "f1": float(f1_score(y, pred) if K == 2 else f1_score(y, pred, average="macro", labels=labels,
                                                                zero_division=0)),
        "qwk": float(cohen_kappa_score(y, pred, weights="quadratic", labels=labels)),
        "ece": ece,
        "calibration_count": counts,
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
    }
    if K == 2:
        expect["sensitivity"] = float(recall_score(y, pred, pos_label=1))
        expect["specificity"] = float(recall_score(y, pred, pos_label=0))
    return {"name": name, "type": kind, "K": K, "prob": p.tolist(), "label": y.tolist(), "expect": expect}


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def main():
    rs = np.random.RandomState(20240601)
    cases = []

    # Binary with many tied scores (one decimal) and a tie across classes.
    n = 48
    y = (rs.rand(n) < 0.4).astype(int)
    s = np.clip(np.round(0.35 + 0.3 * y + 0.25 * rs.randn(n), 1), 0.0, 1.0)
    s[:4] = 0.5   # includes p1 == p0: predicted negative (argmax takes the lower class)
    cases.append(classification_case("binary_ties", "binary", y, np.stack([1 - s, s], axis=1)))

    # Binary, small and lopsided: a few positives, bootstrap skips resamples without one.
    y = np.array([0] * 17 + [1] * 3)
    s = np.array([0.1, 0.2, 0.2, 0.3, 0.3, 0.3, 0.4, 0.1, 0.05, 0.6, 0.2, 0.15, 0.45, 0.35, 0.25, 0.3, 0.7,
                  0.8, 0.3, 0.65])
    cases.append(classification_case("binary_rare", "binary", y, np.stack([1 - s, s], axis=1)))

    # Multiclass (4 classes): integer logits, so equal rows give tied scores.
    n = 64
    y = rs.randint(0, 4, n)
    z = rs.randint(0, 3, (n, 4)).astype(float)
    z[np.arange(n), y] += rs.randint(0, 2, n)
    cases.append(classification_case("multiclass_ties", "multiclass", y, softmax(z)))

    # Ordinal (5 grades): probabilities peaked near the true grade, with an off-by-one shift.
    n = 90
    y = np.concatenate([np.arange(5), rs.randint(0, 5, n - 5)])
    centre = np.clip(y + rs.choice([-1, 0, 0, 0, 1], n), 0, 4)
    z = -0.8 * (np.arange(5)[None, :] - centre[:, None]) ** 2 + np.round(rs.randn(n, 5), 1)
    cases.append(classification_case("ordinal_kl", "ordinal", y, softmax(z)))

    # Regression (bone age in months).
    n = 57
    target = np.round(rs.uniform(20, 220, n), 1)
    pred = target + np.round(rs.randn(n) * 12, 2)
    lo, hi = bootstrap_mae(pred, target)
    cases.append({"name": "regression_boneage", "type": "regression", "K": 1, "pred": pred.tolist(),
                  "target": target.tolist(),
                  "expect": {"mae": float(mean_absolute_error(target, pred)),
                             "rmse": float(np.sqrt(mean_squared_error(target, pred))), "mae_ci95": [lo, hi]}})

    # numpy percentile on a small vector (linear interpolation).
    v = rs.randn(37)
    pct = {"values": v.tolist(), "q": [0.0, 0.025, 0.5, 0.975, 1.0],
           "expect": [float(np.percentile(v, 100 * q)) for q in [0.0, 0.025, 0.5, 0.975, 1.0]]}

    os.makedirs(OUT, exist_ok=True)
    doc = {"generator": "tools/make_metrics_fixture.py", "n_boot": N_BOOT, "bootstrap_seed": BOOT_SEED,
           "cases": cases, "percentile": pct}
    with open(os.path.join(OUT, "metrics.json"), "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print("wrote", os.path.join(OUT, "metrics.json"), "with", len(cases), "cases")


if __name__ == "__main__":
    main()
