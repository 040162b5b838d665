#!/usr/bin/python3
"""evidence_table.py: the pretrained-vs-random table of docs/evidence/shipped/.

Reads `skelex probe` and `skelex finetune` result folders and writes one
Markdown table: per task, method, label share and initialisation, the
fold-mean AUROC (SD over folds), the mean of the folds' bootstrap 95 % CIs,
balanced accuracy, QWK (ordinal tasks) and ECE, internal test split and
external test set. Below it, the paired comparison: the folds' test
probabilities averaged per image (one ensemble per side), AUROC of each and
a paired bootstrap 95 % CI of the difference (pretrained - random, 2000
resamples of the test images, seed 0).

usage: evidence_table.py OUT.md ROW [ROW ...]
  ROW = task:method:frac:PRETRAINED_DIR:RANDOM_DIR
        method probe (frac e.g. 0.1 or 1: frac_<F>/fold*/) or finetune
        (frac ignored: fold*/test/)
Standard library only (Debian's python3), so it runs where skelex runs.
"""
import csv
import glob
import json
import os
import random
import statistics
import sys


def folds(d, method, frac, external):
    if method == "probe":
        pat = os.path.join(d, f"frac_{frac}", "fold*", "external" if external else "", "metrics.json")
    else:
        pat = os.path.join(d, "fold*", "external" if external else "test", "metrics.json")
    out = []
    for p in sorted(glob.glob(pat)):
        with open(p) as f:
            out.append((p, json.load(f)))
    return out


def summary(ms):
    def col(k):
        v = [m[k] for _, m in ms if isinstance(m.get(k), (int, float))]
        return v
    a = col("auroc")
    lo = [m["auroc_ci95"][0] for _, m in ms if m.get("auroc_ci95")]
    hi = [m["auroc_ci95"][1] for _, m in ms if m.get("auroc_ci95")]
    r = {"n_folds": len(ms), "n": ms[0][1].get("n") if ms else 0}
    r["auroc"] = (statistics.mean(a), statistics.stdev(a) if len(a) > 1 else 0.0) if a else None
    r["ci"] = (statistics.mean(lo), statistics.mean(hi)) if lo else None
    for k in ("balanced_accuracy", "qwk", "ece"):
        v = col(k)
        r[k] = statistics.mean(v) if v else None
    return r


def auroc_binary(y, s):
    pos = [x for x, t in zip(s, y) if t]
    neg = [x for x, t in zip(s, y) if not t]
    if not pos or not neg:
        return float("nan")
    order = sorted(range(len(s)), key=lambda i: s[i])
    ranks = [0.0] * len(s)
    i = 0
    while i < len(order):   # average ranks over ties
        j = i
        while j + 1 < len(order) and s[order[j + 1]] == s[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rp = sum(r for r, t in zip(ranks, y) if t)
    return (rp - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def auroc(labels, probs, classes):
    """Binary: the positive (last) class; more classes: the mean one-vs-rest AUROC."""
    if len(classes) == 2:
        return auroc_binary([lab == classes[1] for lab in labels], [p[1] for p in probs])
    v = [auroc_binary([lab == c for lab in labels], [p[k] for p in probs]) for k, c in enumerate(classes)]
    v = [x for x in v if x == x]
    return sum(v) / len(v) if v else float("nan")


def ensemble(d, method, frac, external):
    """image -> (label, mean probabilities over folds), classes."""
    if method == "probe":
        pat = os.path.join(d, f"frac_{frac}", "fold*", "external" if external else "", "predictions.csv")
    else:
        pat = os.path.join(d, "fold*", "external" if external else "test", "predictions.csv")
    acc, classes = {}, None
    for p in sorted(glob.glob(pat)):
        with open(p, newline="") as f:
            rd = csv.DictReader(f)
            pc = [c for c in rd.fieldnames if c.startswith("prob_")]
            classes = [c[5:] for c in pc]
            for row in rd:
                e = acc.setdefault(row["image"], [row["label"], [0.0] * len(pc), 0])
                for k, c in enumerate(pc):
                    e[1][k] += float(row[c])
                e[2] += 1
    return {k: (v[0], [x / v[2] for x in v[1]]) for k, v in acc.items()}, classes


def paired(pre, rnd, cp, seed=0, reps=2000):
    imgs = sorted(set(pre[0]) & set(rnd[0]))
    if not imgs or cp is None:
        return None
    lab = [pre[0][i][0] for i in imgs]
    pp = [pre[0][i][1] for i in imgs]
    rp = [rnd[0][i][1] for i in imgs]
    a, b = auroc(lab, pp, cp), auroc(lab, rp, cp)
    rng = random.Random(seed)
    diffs = []
    for _ in range(reps):
        idx = [rng.randrange(len(imgs)) for _ in imgs]
        la = [lab[i] for i in idx]
        x, y = auroc(la, [pp[i] for i in idx], cp), auroc(la, [rp[i] for i in idx], cp)
        if x == x and y == y:
            diffs.append(x - y)
    diffs.sort()
    if not diffs:
        return None
    lo, hi = diffs[int(0.025 * len(diffs))], diffs[min(len(diffs) - 1, int(0.975 * len(diffs)))]
    return len(imgs), a, b, lo, hi


def fmt(x, nd=3):
    return "-" if x is None else f"{x:.{nd}f}"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out = sys.argv[1]
    rows, cmp_rows = [], []
    for spec in sys.argv[2:]:
        task, method, frac, dp, dr = spec.split(":")
        for external in (False, True):
            sides = []
            for name, d in (("pretrained", dp), ("random", dr)):
                ms = folds(d, method, frac, external)
                if ms:
                    sides.append((name, summary(ms)))
            if not sides:
                continue
            where = "external" if external else "internal test"
            meth = f"linear probe ({sides[0][1]['n_folds']} folds)" if method == "probe" else \
                f"fine-tune ({sides[0][1]['n_folds']} fold{'s' if sides[0][1]['n_folds'] > 1 else ''})"
            label = f"{float(frac) * 100:g} %" if method == "probe" else "100 %"
            for name, s in sides:
                au = s["auroc"]
                rows.append(f"| {task} | {where} (n={s['n']}) | {meth} | {label} | {name} | "
                            f"{fmt(au[0]) if au else '-'} ± {fmt(au[1]) if au else '-'} | "
                            f"[{fmt(s['ci'][0]) if s['ci'] else '-'}, {fmt(s['ci'][1]) if s['ci'] else '-'}] | "
                            f"{fmt(s['balanced_accuracy'])} | {fmt(s['qwk'])} | {fmt(s['ece'])} |")
            pe, rn = ensemble(dp, method, frac, external), ensemble(dr, method, frac, external)
            pr = paired(pe, rn, pe[1])
            if pr:
                n, a, b, lo, hi = pr
                verdict = "pretrained better" if lo > 0 else "random better" if hi < 0 else "no difference shown"
                cmp_rows.append(f"| {task} | {where} | {meth} | {label} | {n} | {a:.3f} | {b:.3f} | "
                                f"{a - b:+.3f} [{lo:+.3f}, {hi:+.3f}] | {verdict} |")
    with open(out, "w") as f:
        f.write("| task | test set | method | labels | init | AUROC (fold mean ± SD) | 95 % CI (fold mean) "
                "| bal. acc. | QWK | ECE |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
        f.write("\n".join(rows) + "\n\n")
        f.write("Paired comparison (fold-ensemble probabilities; paired bootstrap over test images, 2000 "
                "resamples):\n\n| task | test set | method | labels | images | AUROC pretrained | AUROC random "
                "| difference [95 % CI] | verdict |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
        f.write("\n".join(cmp_rows) + "\n")
    print(f"wrote {out}: {len(rows)} rows, {len(cmp_rows)} comparisons")


if __name__ == "__main__":
    main()
