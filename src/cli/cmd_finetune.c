/* cmd_finetune.c: `skelex finetune`: arguments -> finetune_run
 * (adapt/finetune.h). */
#include "cli/cli.h"
#include "cli/precision_args.h"
#include "adapt/finetune.h"
#include "cli/task_args.h"
#include "cli/heads_args.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: skelex finetune --task TASK.json (--model DIR | --config NAME) --out OUT [options]\n"
    "\n"
    "Fine-tunes the whole model (encoder + a linear head on the CLS token, as HF\n"
    "ViTForImageClassification) under the SKELEX protocol: a fixed stratified test\n"
    "split (grouped by patient when the task has patients), stratified k-fold\n"
    "cross-validation on the rest; per fold the epoch with the best validation\n"
    "AUROC (regression: lowest MAE) is saved to OUT/fold<k>/best and THAT model is\n"
    "scored on the test split. Loss: BCE (binary), cross-entropy (multiclass,\n"
    "ordinal), MSE (regression).\n"
    "\n"
    "  --task FILE          task description (see tasks/)\n"
    "  --data-root DIR      root for the task's relative paths (default .)\n"
    "  --skip-missing       drop samples whose image file is missing (counted)\n"
    "  --model DIR          start from this MAE (ViTMAEForPreTraining) or ViT checkpoint\n"
    "                       (default, without --config: the shipped models/skelex-tiny-mae)\n"
    "  --config NAME|FILE   or start from random initialisation of this architecture\n"
    "  --out OUT            split.json, results.json, fold<k>/{best/, log.csv, curves.svg,\n"
    "                       val_score.svg, test/{predictions.csv, metrics.json, *.svg}}\n"
    TASK_ARGS_TEST_TASK_HELP
    "                       by each fold's best model (OUT/fold<k>/external/)\n"
    TASK_ARGS_TEST_ROOT_HELP
    "  --folds K            cross-validation folds, 2..100 (default 5)\n"
    "  --only-folds LIST    run only these folds, e.g. 0 or 0,2: each in 0..K-1, once\n"
    "                       (default: all)\n"
    "  --force              overwrite an existing results folder (default: refuse)\n"
    "  --test-frac F        test split share (default 0.1)\n"
    "  --label-fraction F   use this stratified share of each fold's training labels (default 1)\n"
    "  --seed S             split, subsampling, initialisation and shuffling seed (default 0)\n"
    "  --epochs N           1..100000 (default 50)\n"
    "  --warmup-epochs N    linear warmup, then cosine to --min-lr (default 5)\n"
    "  --batch B            images per optimizer step (default 64)\n"
    "  --micro-batch M      images per forward/backward; gradients add up to the batch's (default 32)\n"
    "  --lr X               peak learning rate of the top layer, (0, 10] (default 5e-5)\n"
    "  --min-lr X           default 0\n"
    "  --layer-decay X      layer-wise lr decay (default 0.75)\n"
    "  --wd X               AdamW weight decay, not on biases, norms, tokens (default 0.05)\n"
    "  --clip X             gradient-norm clipping (default 0 = off)\n"
    "  --precision P        auto (default), fp32 or bf16: see skelex bench --help\n"
    "  --balance-classes    weight the loss of class k by n / (K n_k) on the fold's training\n"
    "                       part, so a rare class counts as much as a common one (default off)\n"
    "  --no-augment         no augmentation\n"
    "  --rotate DEG --flip P --brightness X --contrast X\n"
    "                       augmentation (defaults 10, 0.5, 0.2, 0.2)\n"
    "A multi-head task (\"type\": \"multihead\", e.g. tasks/open_multihead.json) trains one\n"
    "head of grouped outputs with the masked multi-head loss on IoR crops around its\n"
    "boxes; the best epoch has the best mean validation AUROC over outputs and groups:\n"
    "  --no-ior             whole-image augmentation instead of IoR crops\n"
    "  --crop-side N        long side of the decoded crop sources (default 2 x image size)\n"
    "Threads: OMP_NUM_THREADS (pinned).\n"
    "\n"
    "Exit status: 0 success, 1 failure (unreadable data or model, a diverged run,\n"
    "a failed write, an existing --out without --force), 2 usage error (also: a\n"
    "--test-task whose label space is not the task's).\n";

/* "0,2" -> only[k] = 1; every entry a fold number in 0..folds-1, once. */
static int parse_only(const char *s, int folds, unsigned char *only) {
    memset(only, 0, FT_MAX_FOLDS);
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char tok[16], *end;
        if (len == 0 || len >= sizeof tok)
            return cli_usage_error("finetune", "--only-folds '%s': expected fold numbers like 0 or 0,2", s);
        memcpy(tok, p, len);
        tok[len] = 0;
        long k = strtol(tok, &end, 10);
        if (*end || end == tok || k < 0 || k >= folds)
            return cli_usage_error("finetune", "--only-folds: '%s' is not a fold number in 0..%d", tok, folds - 1);
        if (only[k]) return cli_usage_error("finetune", "--only-folds: fold %ld is given twice", k);
        only[k] = 1;
        if (!comma) return 0;
        p = comma + 1;
    }
}

int cmd_finetune(int argc, char **argv) {
    const char *config = NULL, *only_s = NULL, *precision = "auto";
    finetune_run_opts ro = {.label_fraction = 1.0};
    task_args ta;
    task_args_default(&ta);
    ft_opts *o = &ro.ft;
    ft_opts_default(o);
    fth_opts ho;
    fth_opts_default(&ho);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) { fputs(HELP, stdout); return 0; }
        else if (task_args_parse(&ta, argc, argv, &i) || heads_finetune_arg(&ho, argc, argv, &i)) continue;
        else if (!strcmp(a, "--model")) ro.model = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--config")) config = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--out")) ro.out = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--only-folds")) only_s = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--force")) ro.force = 1;
        else if (!strcmp(a, "--label-fraction")) ro.label_fraction = cli_double(a, cli_value(argc, argv, &i), 1e-6, 1);
        else if (!strcmp(a, "--epochs")) o->epochs = (int)cli_long(a, cli_value(argc, argv, &i), 1, 100000);
        else if (!strcmp(a, "--warmup-epochs")) o->warmup_epochs = (int)cli_long(a, cli_value(argc, argv, &i), 0, 100000);
        else if (!strcmp(a, "--batch")) o->batch = (int)cli_long(a, cli_value(argc, argv, &i), 1, 65536);
        else if (!strcmp(a, "--micro-batch")) o->micro_batch = (int)cli_long(a, cli_value(argc, argv, &i), 1, 65536);
        else if (!strcmp(a, "--lr")) o->lr = cli_double(a, cli_value(argc, argv, &i), 1e-12, 10);
        else if (!strcmp(a, "--min-lr")) o->min_lr = cli_double(a, cli_value(argc, argv, &i), 0, 10);
        else if (!strcmp(a, "--layer-decay")) o->layer_decay = cli_double(a, cli_value(argc, argv, &i), 1e-6, 1);
        else if (!strcmp(a, "--wd")) o->weight_decay = cli_double(a, cli_value(argc, argv, &i), 0, 10);
        else if (!strcmp(a, "--clip")) o->clip = cli_double(a, cli_value(argc, argv, &i), 0, 1e6);
        else if (!strcmp(a, "--no-augment")) o->augment = 0;
        else if (!strcmp(a, "--balance-classes")) o->balance = 1;
        else if (!strcmp(a, "--rotate")) o->aug.rotate_deg = cli_double(a, cli_value(argc, argv, &i), 0, 180);
        else if (!strcmp(a, "--flip")) o->aug.flip_p = cli_double(a, cli_value(argc, argv, &i), 0, 1);
        else if (!strcmp(a, "--brightness")) o->aug.brightness = cli_double(a, cli_value(argc, argv, &i), 0, 1);
        else if (!strcmp(a, "--precision")) precision = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--contrast")) o->aug.contrast = cli_double(a, cli_value(argc, argv, &i), 0, 1);
        else return cli_usage_error("finetune", "unknown option '%s'", a);
    }
    if (!ta.task || !ro.out) return cli_usage_error("finetune", "--task and --out are required");
    if (ro.model && config) return cli_usage_error("finetune", "--model and --config exclude each other");
    char shipped[4200];
    if (!config && !(ro.model = cli_model_or_shipped("finetune", ro.model, CLI_MAE_MODEL, shipped, sizeof shipped))) return 2;
    if (task_args_check(&ta, "finetune")) return 2;
    if (o->min_lr > o->lr) return cli_usage_error("finetune", "--min-lr exceeds --lr");
    unsigned char only[FT_MAX_FOLDS];
    if (only_s && parse_only(only_s, ta.folds, only)) return 2;
    ro.only = only_s ? only : NULL;
    gemm_set_precision(cli_precision("finetune", precision));   /* the models follow the process default */
    o->eval_batch = o->micro_batch;
    o->seed = (uint64_t)ta.seed;
    o->progress = stderr;
    ro.table = stdout;
    ro.init_name = ro.model ? ro.model : config;

    sx_err err;
    mae_config cfg;
    if (config_resolve(ro.init_name, &cfg, &err)) { fprintf(stderr, "skelex finetune: %s\n", err.msg); return 1; }
    ro.config = &cfg;
    if (heads_is_task(&ta)) return heads_finetune_main(&ta, &ro, &ho);
    task t, ext;
    split sp;
    int erc = task_args_open_all(&ta, "finetune", &t, &sp, &ext);
    if (erc) return erc;
    ro.external = ta.test_task ? &ext : NULL;
    int rc = finetune_run(&t, &sp, &ro, &err);
    if (ta.test_task) task_free(&ext);
    if (rc) fprintf(stderr, "skelex finetune: %s\n", err.msg);
    else printf("wrote %s/results.json\n", ro.out);
    split_free(&sp);
    task_free(&t);
    return rc ? 1 : 0;
}
