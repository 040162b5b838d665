/* cmd_finetune.c: `skelex finetune`: full fine-tuning under the SKELEX
 * protocol: a fixed stratified (patient-grouped) test split, k-fold
 * cross-validation on the rest; per fold the epoch with the best validation
 * score is saved and that saved model is scored on the test split. */
#include "cli/cli.h"
#include "adapt/finetune.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "data/split.h"
#include "cli/task_args.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
    "  --config NAME|FILE   or start from random initialisation of this architecture\n"
    "  --out OUT            split.json, results.json, fold<k>/{best/, log.csv, curves.svg,\n"
    "                       val_score.svg, test/{predictions.csv, metrics.json, *.svg}}\n"
    "  --folds K            cross-validation folds (default 5)\n"
    "  --only-folds LIST    run only these folds, e.g. 0 or 0,2 (default: all)\n"
    "  --test-frac F        test split share (default 0.1)\n"
    "  --label-fraction F   use this stratified share of each fold's training labels (default 1)\n"
    "  --seed S             split, subsampling, initialisation and shuffling seed (default 0)\n"
    "  --epochs N           default 50\n"
    "  --warmup-epochs N    linear warmup, then cosine to --min-lr (default 5)\n"
    "  --batch B            images per optimizer step (default 64)\n"
    "  --micro-batch M      images per forward/backward; gradients add up to the batch's (default 32)\n"
    "  --lr X               peak learning rate of the top layer (default 5e-5)\n"
    "  --min-lr X           default 0\n"
    "  --layer-decay X      layer-wise lr decay (default 0.75)\n"
    "  --wd X               AdamW weight decay, not on biases, norms, tokens (default 0.05)\n"
    "  --clip X             gradient-norm clipping (default 0 = off)\n"
    "  --balance-classes    weight the loss of class k by n / (K n_k) on the fold's training\n"
    "                       part, so a rare class counts as much as a common one (default off)\n"
    "  --no-augment         no augmentation\n"
    "  --rotate DEG --flip P --brightness X --contrast X\n"
    "                       augmentation (defaults 10, 0.5, 0.2, 0.2)\n"
    "Threads: OMP_NUM_THREADS (pinned).\n";

static int mkdirs(const char *p) { return mkdir(p, 0755) && errno != EEXIST ? -1 : 0; }

static int in_list(const char *list, int k) {
    if (!list) return 1;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
        if (atoi(tok) == k) return 1;
    return 0;
}

int cmd_finetune(int argc, char **argv) {
    const char *model = NULL, *config = NULL, *out = NULL, *only = NULL;
    double frac = 1.0;
    task_args ta;
    task_args_default(&ta);
    ft_opts o;
    ft_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) { fputs(HELP, stdout); return 0; }
        else if (task_args_parse(&ta, argc, argv, &i)) continue;
        else if (!strcmp(a, "--model")) model = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--config")) config = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--out")) out = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--only-folds")) only = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--label-fraction")) frac = cli_double(a, cli_value(argc, argv, &i), 1e-6, 1);
        else if (!strcmp(a, "--epochs")) o.epochs = (int)cli_long(a, cli_value(argc, argv, &i), 1, 100000);
        else if (!strcmp(a, "--warmup-epochs")) o.warmup_epochs = (int)cli_long(a, cli_value(argc, argv, &i), 0, 100000);
        else if (!strcmp(a, "--batch")) o.batch = (int)cli_long(a, cli_value(argc, argv, &i), 1, 65536);
        else if (!strcmp(a, "--micro-batch")) o.micro_batch = (int)cli_long(a, cli_value(argc, argv, &i), 1, 65536);
        else if (!strcmp(a, "--lr")) o.lr = cli_double(a, cli_value(argc, argv, &i), 0, 10);
        else if (!strcmp(a, "--min-lr")) o.min_lr = cli_double(a, cli_value(argc, argv, &i), 0, 10);
        else if (!strcmp(a, "--layer-decay")) o.layer_decay = cli_double(a, cli_value(argc, argv, &i), 0, 1);
        else if (!strcmp(a, "--wd")) o.weight_decay = cli_double(a, cli_value(argc, argv, &i), 0, 10);
        else if (!strcmp(a, "--clip")) o.clip = cli_double(a, cli_value(argc, argv, &i), 0, 1e6);
        else if (!strcmp(a, "--no-augment")) o.augment = 0;
        else if (!strcmp(a, "--balance-classes")) o.balance = 1;
        else if (!strcmp(a, "--rotate")) o.aug.rotate_deg = cli_double(a, cli_value(argc, argv, &i), 0, 180);
        else if (!strcmp(a, "--flip")) o.aug.flip_p = cli_double(a, cli_value(argc, argv, &i), 0, 1);
        else if (!strcmp(a, "--brightness")) o.aug.brightness = cli_double(a, cli_value(argc, argv, &i), 0, 1);
        else if (!strcmp(a, "--contrast")) o.aug.contrast = cli_double(a, cli_value(argc, argv, &i), 0, 1);
        else return cli_usage_error("finetune", "unknown option '%s'", a);
    }
    if (!ta.task || !out || !model == !config)
        return cli_usage_error("finetune", "--task, --out and one of --model or --config are required");
    if (!(frac > 0 && frac <= 1)) return cli_usage_error("finetune", "--label-fraction must be in (0, 1]");
    if (!(o.lr > 0) || o.min_lr < 0 || !(o.layer_decay > 0 && o.layer_decay <= 1) || o.weight_decay < 0 || o.clip < 0)
        return cli_usage_error("finetune", "need --lr > 0, --min-lr >= 0, --layer-decay in (0, 1], --wd >= 0, --clip >= 0");
    if (o.aug.rotate_deg < 0 || o.aug.rotate_deg > 180 || o.aug.flip_p < 0 || o.aug.flip_p > 1 || o.aug.brightness < 0 ||
        o.aug.brightness > 1 || o.aug.contrast < 0 || o.aug.contrast > 1)
        return cli_usage_error("finetune", "augmentation: --rotate in [0,180], --flip, --brightness, --contrast in [0,1]");
    o.eval_batch = o.micro_batch;
    long seed = ta.seed;
    int folds = ta.folds;
    o.seed = (uint64_t)seed;

    sx_err err;
    mae_config cfg;
    if (config_resolve(model ? model : config, &cfg, &err)) { fprintf(stderr, "skelex finetune: %s\n", err.msg); return 1; }
    task t;
    split sp;
    if (task_args_open(&ta, "finetune", &t, &sp)) return 1;
    int rc = 1;
    char path[4400];
    image_cache ic = {0};
    size_t n_test = 0, *test_idx = split_indices(&sp, SPLIT_TEST, 0, &n_test);
    cJSON *results = cJSON_CreateObject(), *fold_arr = cJSON_AddArrayToObject(results, "folds");
    cJSON **fold_metrics = sx_calloc((size_t)folds, sizeof(cJSON *));
    int n_done = 0;
    if (mkdirs(out)) { fprintf(stderr, "skelex finetune: %s: cannot create (%s)\n", out, strerror(errno)); goto done; }
    snprintf(path, sizeof path, "%s/split.json", out);
    cJSON *sj = split_to_json(&t, &sp);
    if (json_write_file(path, sj, &err)) fprintf(stderr, "skelex finetune: %s\n", err.msg);
    cJSON_Delete(sj);
    fprintf(stderr, "finetune %s: %zu images (%zu test), %d classes, %d folds, from %s\n", t.name, t.n, n_test,
            t.n_classes, folds, model ? model : config);
    const char **paths = sx_malloc(sizeof(char *) * (t.n ? t.n : 1));
    for (size_t i = 0; i < t.n; i++) paths[i] = t.samples[i].path;
    int crc = image_cache_build(&ic, paths, t.n, cfg.image_size, &err);
    free(paths);
    if (crc) { fprintf(stderr, "skelex finetune: %s\n", err.msg); goto done; }

    cJSON_AddStringToObject(results, "task", t.name);
    cJSON_AddStringToObject(results, "model", model ? model : config);
    cJSON_AddStringToObject(results, "init", model ? "checkpoint" : "random");
    cJSON_AddNumberToObject(results, "label_fraction", frac);
    cJSON_AddNumberToObject(results, "epochs", o.epochs);
    cJSON_AddBoolToObject(results, "balance_classes", o.balance);
    cJSON_AddNumberToObject(results, "test_images", (double)n_test);
    printf("%-5s %8s %6s %10s %8s %8s %8s %8s\n", "fold", "n_train", "best", "val_best", "AUROC", "bal_acc", "QWK",
           t.type == TASK_REGRESSION ? "MAE" : "ECE");
    for (int k = 0; k < folds; k++) {
        if (!in_list(only, k)) continue;
        size_t ntr, nva, *tr = NULL, *va = split_indices(&sp, SPLIT_VAL, k, &nva);
        if (split_train_subset(&t, &sp, k, frac, (uint64_t)seed + 17, &tr, &ntr, &err)) {
            fprintf(stderr, "skelex finetune: %s\n", err.msg);
            free(va);
            goto done;
        }
        char fdir[4400], best[4500], label[32];
        snprintf(fdir, sizeof fdir, "%s/fold%d", out, k);
        snprintf(best, sizeof best, "%s/best", fdir);
        snprintf(label, sizeof label, "fold %d", k);
        mkdirs(fdir);
        classifier c;
        if (classifier_create(&c, model, &cfg, t.type, t.n_classes, (const char *const *)t.class_names,
                              (uint64_t)seed * 1000 + (uint64_t)k, &err)) {
            fprintf(stderr, "skelex finetune: %s\n", err.msg);
            free(tr); free(va);
            goto done;
        }
        ft_result res;
        int frc = finetune_fold(&c, &t, &ic, tr, ntr, va, nva, &o, best, fdir, label, &res, &err);
        classifier_free(&c);
        if (frc) { fprintf(stderr, "skelex finetune: %s\n", err.msg); free(tr); free(va); ft_result_free(&res); goto done; }
        /* the model scored on the test split is the one saved at the best epoch */
        cJSON *mj = NULL;
        if (classifier_load(&c, best, &err)) fprintf(stderr, "skelex finetune: %s\n", err.msg);
        else {
            char tdir[4500], title[256];
            snprintf(tdir, sizeof tdir, "%s/test", fdir);
            snprintf(title, sizeof title, "%s fine-tuned, fold %d (epoch %d), test", t.name, k, res.best_epoch);
            mj = finetune_evaluate(&c, &t, &ic, test_idx, n_test, o.eval_batch, tdir, title, (uint64_t)seed + k, &err);
            if (!mj) fprintf(stderr, "skelex finetune: %s\n", err.msg);
            classifier_free(&c);
        }
        if (mj) {
            const ft_epoch *bl = &res.log[res.best_epoch - 1], *last = &res.log[res.n_log - 1];
            cJSON_AddNumberToObject(mj, "fold", k);
            cJSON_AddNumberToObject(mj, "n_train", (double)ntr);
            cJSON_AddNumberToObject(mj, "n_val", (double)nva);
            cJSON_AddNumberToObject(mj, "best_epoch", res.best_epoch);
            cJSON_AddNumberToObject(mj, "val_score_best", bl->val_score);
            cJSON_AddNumberToObject(mj, "val_score_last", last->val_score);
            cJSON_AddItemToArray(fold_arr, mj);
            fold_metrics[n_done++] = mj;
            const cJSON *au = cJSON_GetObjectItem(mj, "auroc"), *ba = cJSON_GetObjectItem(mj, "balanced_accuracy"),
                        *qw = cJSON_GetObjectItem(mj, "qwk"),
                        *ex = cJSON_GetObjectItem(mj, t.type == TASK_REGRESSION ? "mae" : "ece");
            printf("%-5d %8zu %6d %10.4f", k, ntr, res.best_epoch, t.type == TASK_REGRESSION ? -bl->val_score : bl->val_score);
            const cJSON *cols[4] = {au, ba, qw, ex};
            for (int q = 0; q < 4; q++)
                if (cJSON_IsNumber(cols[q])) printf(" %8.4f", cols[q]->valuedouble);
                else printf(" %8s", "-");
            printf("\n");
            fflush(stdout);
        }
        ft_result_free(&res);
        free(tr); free(va);
    }
    cJSON *summary = metrics_summary(fold_metrics, n_done);
    cJSON_AddItemToObject(results, "summary", summary);
    printf("mean ± SD over %d fold(s):", n_done);
    for (const cJSON *e = summary->child; e; e = e->next)
        printf("  %s %.4f ± %.4f", e->string, cJSON_GetObjectItem(e, "mean")->valuedouble,
               cJSON_GetObjectItem(e, "sd")->valuedouble);
    printf("\n");
    snprintf(path, sizeof path, "%s/results.json", out);
    if (json_write_file(path, results, &err)) { fprintf(stderr, "skelex finetune: %s\n", err.msg); goto done; }
    printf("wrote %s\n", path);
    rc = n_done ? 0 : 1;
done:
    cJSON_Delete(results);
    free(fold_metrics);
    free(test_idx);
    image_cache_free(&ic);
    split_free(&sp);
    task_free(&t);
    return rc;
}
