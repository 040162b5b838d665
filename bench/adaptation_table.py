#!/usr/bin/env python3
"""Evidence table for adaptation: reads the results.json files that
`skelex probe` and `skelex finetune` write and prints one markdown table
(mean ± SD over folds on the fixed test split).
Usage: python3 bench/adaptation_table.py DIR|FILE...   (a probe or finetune --out, or a results .json)"""
import json, os, sys

COLS = [("auroc", "AUROC"), ("balanced_accuracy", "bal. acc."), ("qwk", "QWK"), ("ece", "ECE")]


def cell(mean, sd):
    return "-" if mean is None else "%.3f ± %.3f" % (mean, sd or 0.0)


def task_type(name):
    p = os.path.join(os.path.dirname(__file__), "..", "tasks", name + ".json")
    return json.load(open(p))["type"] if os.path.exists(p) else "?"


def rows(d):
    r = json.load(open(d if d.endswith(".json") else os.path.join(d, "results.json")))
    ordinal = task_type(r["task"]) == "ordinal"  # QWK only means something there
    init = "random" if "random" in r.get("model", "") or r.get("init") == "random" else "pretrained"
    if "summary" in r:  # finetune
        s = r["summary"]
        folds = len(r.get("folds", []))
        yield (r["task"], "fine-tune (%d ep, %d fold%s)" % (r["epochs"], folds, "s" * (folds != 1)),
               "%g %%" % (100 * r["label_fraction"]), init,
               [cell(s[k]["mean"], s[k]["sd"]) if k in s and (k != "qwk" or ordinal) else "-" for k, _ in COLS])
    else:  # probe
        for frac in r.get("label_fractions") or r["per_fold"]:  # full, or condensed as in docs/evidence/probe
            yield (r["task"], "linear probe (5 folds)", "%g %%" % (100 * float(frac)), init,
                   [cell(r.get("frac_%s_%s_mean" % (frac, k)), r.get("frac_%s_%s_sd" % (frac, k)))
                    if k != "qwk" or ordinal else "-" for k, _ in COLS])


def main(dirs):
    out = ["| task | method | labels | init | " + " | ".join(n for _, n in COLS) + " |",
           "| --- | --- | --- | --- | " + " | ".join("---" for _ in COLS) + " |"]
    allrows = [row for d in dirs if d.endswith(".json") or os.path.exists(os.path.join(d, "results.json"))
               for row in rows(d)]
    allrows.sort(key=lambda x: (x[0], x[1], x[2], x[3]))
    for t, m, l, i, cells in allrows:
        out.append("| %s | %s | %s | %s | %s |" % (t, m, l, i, " | ".join(cells)))
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1:])
