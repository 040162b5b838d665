/* cmd_probe.c: `skelex probe`: arguments -> probe_run (adapt/probe.h). */
#include "cli/cli.h"
#include "adapt/probe.h"
#include "cli/task_args.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: skelex probe --task TASK.json --model DIR --out OUT [options]\n"
    "\n"
    "Linear probe on a frozen encoder (MAE or ViT checkpoint): features (CLS and\n"
    "mean patch token) are extracted once; a fixed stratified test split (grouped\n"
    "by patient when the task has patients) and stratified k-fold cross-validation\n"
    "on the rest; per fold the head's best iteration is chosen on the fold's\n"
    "validation part (AUROC, or MAE for regression) and scored on the test split.\n"
    "\n"
    "  --task FILE          task description (see tasks/)\n"
    "  --data-root DIR      root for the task's relative paths (default .)\n"
    "  --skip-missing       drop samples whose image file is missing (counted) instead\n"
    "                       of failing\n"
    "  --model DIR          encoder checkpoint (default: the shipped models/skelex-tiny-mae)\n"
    "  --out OUT            features.npy, split.json, results.json, and per fraction\n"
    "                       frac_<F>/fold<k>/ with predictions.csv (image, label,\n"
    "                       per-class probability, predicted, fold), metrics.json and\n"
    "                       plots for the test split\n"
    TASK_ARGS_TEST_TASK_HELP
    "                       (OUT/frac_<F>/fold<k>/external/, external columns)\n"
    TASK_ARGS_TEST_ROOT_HELP
    "  --label-fraction L   comma-separated training-label fractions in (0, 1], each\n"
    "                       once (default 1)\n"
    "  --folds K            cross-validation folds, 2..100 (default 5)\n"
    "  --test-frac F        test split share, 0.01..0.9 (default 0.1)\n"
    "  --seed S             split and subsampling seed (default 0)\n"
    "  --batch B            feature-extraction batch, 1..4096 (default 32)\n"
    "  --layers L[,L...]    features from the outputs of these encoder blocks (1-based,\n"
    "                       before the final LayerNorm; CLS and patch mean of each,\n"
    "                       concatenated), e.g. 6 or 4,8,12; default: the final\n"
    "                       LayerNorm's output. An MAE with a light decoder leaves\n"
    "                       its last blocks doing reconstruction, so a middle block\n"
    "                       often probes better (the MAE paper's finding)\n"
    "  --iters N            head training iterations, full batch, 10..1000000 (default 300)\n"
    "  --lr X  --wd X       head AdamW learning rate in (0, 10] and weight decay in\n"
    "                       [0, 10] (default 0.01, 1e-4)\n"
    "\n"
    "Exit status: 0 success, 1 failure (unreadable data or model, a diverged head\n"
    "or encoder, a failed write), 2 usage error (also: a --test-task whose label\n"
    "space is not the task's).\n";

#define MAX_FRACTIONS 64

/* "0.1,0.5,1" -> fractions: the count, or -1 after a usage message. */
static int parse_fractions(const char *s, double *out) {
    int n = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char tok[64];
        if (len == 0 || len >= sizeof tok) {
            cli_usage_error("probe", "--label-fraction '%s': expected comma-separated numbers in (0, 1]", s);
            return -1;
        }
        if (n == MAX_FRACTIONS) {
            cli_usage_error("probe", "--label-fraction: at most %d fractions", MAX_FRACTIONS);
            return -1;
        }
        memcpy(tok, p, len);
        tok[len] = 0;
        out[n] = cli_double("--label-fraction", tok, 1e-6, 1);
        for (int j = 0; j < n; j++)
            if (out[j] == out[n]) {
                cli_usage_error("probe", "--label-fraction: %s is given twice", tok);
                return -1;
            }
        n++;
        if (!comma) return n;
        p = comma + 1;
    }
}

int cmd_probe(int argc, char **argv) {
    probe_opts o;
    probe_opts_default(&o);
    const char *fracs = "1";
    int layers[64], n_layers = 0;
    task_args ta;
    task_args_default(&ta);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) { fputs(HELP, stdout); return 0; }
        else if (task_args_parse(&ta, argc, argv, &i)) continue;
        else if (!strcmp(a, "--model")) o.model = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--out")) o.out = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--label-fraction")) fracs = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--batch")) o.batch = (int)cli_long(a, cli_value(argc, argv, &i), 1, 4096);
        else if (!strcmp(a, "--layers")) {
            const char *s = cli_value(argc, argv, &i);
            n_layers = 0;
            for (const char *p = s;;) {
                char *end;
                long v = strtol(p, &end, 10);
                if (end == p || v < 1 || v > 4096 || (*end && *end != ',') || n_layers == 64)
                    return cli_usage_error("probe", "--layers '%s': expected comma-separated block numbers 1.. (at most 64)", s);
                for (int j = 0; j < n_layers; j++)
                    if (layers[j] == v) return cli_usage_error("probe", "--layers: %ld is given twice", v);
                layers[n_layers++] = (int)v;
                if (!*end) break;
                p = end + 1;
            }
            o.layers = layers;
            o.n_layers = n_layers;
        }
        else if (!strcmp(a, "--iters")) o.iters = (int)cli_long(a, cli_value(argc, argv, &i), 10, 1000000);
        else if (!strcmp(a, "--lr")) o.lr = cli_double(a, cli_value(argc, argv, &i), 1e-12, 10);
        else if (!strcmp(a, "--wd")) o.wd = cli_double(a, cli_value(argc, argv, &i), 0, 10);
        else return cli_usage_error("probe", "unknown option '%s'", a);
    }
    if (!ta.task || !o.out) return cli_usage_error("probe", "--task and --out are required");
    char shipped[4200];
    if (!(o.model = cli_model_or_shipped("probe", o.model, CLI_MAE_MODEL, shipped, sizeof shipped))) return 2;
    if (task_args_check(&ta, "probe")) return 2;
    double fv[MAX_FRACTIONS];
    int nf = parse_fractions(fracs, fv);
    if (nf < 0) return 2;
    o.fractions = fv;
    o.n_fractions = nf;
    o.seed = (uint64_t)ta.seed;
    o.progress = stderr;
    o.table = stdout;
    task t, ext;
    split sp;
    int erc = task_args_open_all(&ta, "probe", &t, &sp, &ext);
    if (erc) return erc;
    o.external = ta.test_task ? &ext : NULL;
    sx_err err;
    int rc = probe_run(&t, &sp, &o, &err);
    if (rc) fprintf(stderr, "skelex probe: %s\n", err.msg);
    else printf("wrote %s/results.json\n", o.out);
    if (ta.test_task) task_free(&ext);
    split_free(&sp);
    task_free(&t);
    return rc ? 1 : 0;
}
