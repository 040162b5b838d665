/* cmd_probe.c: `skelex probe`: the linear probe of the SKELEX protocol.
 * Features of a frozen encoder are extracted once; per label fraction and
 * cross-validation fold a linear head is trained on the fold's training part,
 * its best iteration chosen on the fold's validation part, and scored on the
 * fixed test split. Results: mean and SD over folds. */
#include "cli/cli.h"
#include "io/checkpoint.h"
#include "eval/metrics.h"
#include "io/npy.h"
#include "adapt/probe.h"
#include "eval/report.h"
#include "data/split.h"
#include "data/task.h"
#include "cli/task_args.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
    "  --model DIR          encoder checkpoint\n"
    "  --out OUT            features.npy, split.json, results.json, and per fraction\n"
    "                       frac_<F>/fold<k>/ with metrics.json and plots\n"
    "  --label-fraction L   comma-separated training-label fractions (default 1)\n"
    "  --folds K            cross-validation folds (default 5)\n"
    "  --test-frac F        test split share (default 0.1)\n"
    "  --seed S             split and subsampling seed (default 0)\n"
    "  --batch B            feature-extraction batch (default 32)\n"
    "  --iters N            head training iterations, full batch (default 300)\n"
    "  --lr X  --wd X       head AdamW learning rate and weight decay (default 0.01, 1e-4)\n";

typedef struct { const task *t; } score_ctx;

/* Eval-set arrays for the head's predictions on samples X (n) with labels y. */
static void head_outputs(const linear_head *h, const task *t, const float *X, size_t n, double *prob, double *pred) {
    int K = t->n_classes;
    float *out = sx_malloc(sizeof(float) * n * (size_t)h->K);
    linear_head_predict(h, X, n, out);
    for (size_t i = 0; i < n; i++) {
        if (h->kind == HEAD_LINEAR) pred[i] = out[i];
        else if (h->kind == HEAD_SIGMOID) { prob[i * 2] = 1.0 - out[i]; prob[i * 2 + 1] = out[i]; }
        else for (int k = 0; k < K; k++) prob[i * K + k] = out[i * K + k];
    }
    free(out);
}

static double score_val(const linear_head *h, const float *X, const float *y, size_t n, void *vctx) {
    const task *t = ((score_ctx *)vctx)->t;
    int K = t->n_classes;
    double *prob = sx_malloc(sizeof(double) * n * (size_t)(K > 2 ? K : 2)), *pred = sx_malloc(sizeof(double) * n);
    int *lab = sx_malloc(sizeof(int) * n);
    head_outputs(h, t, X, n, prob, pred);
    double s;
    if (h->kind == HEAD_LINEAR) {
        double *tg = sx_malloc(sizeof(double) * n);
        for (size_t i = 0; i < n; i++) tg[i] = y[i];
        s = -metric_mae(pred, tg, n);
        free(tg);
    } else {
        for (size_t i = 0; i < n; i++) lab[i] = (int)y[i];
        s = metric_auroc_prob(prob, K, lab, n, NULL);
        if (isnan(s)) s = -INFINITY;
    }
    free(prob); free(pred); free(lab);
    return s;
}

static void gather(const float *feats, int F, const task *t, const size_t *idx, size_t n, float *X, float *y) {
    for (size_t i = 0; i < n; i++) {
        memcpy(X + i * F, feats + idx[i] * F, sizeof(float) * F);
        y[i] = t->type == TASK_REGRESSION ? (float)t->samples[idx[i]].target : (float)t->samples[idx[i]].label;
    }
}

static double json_num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int cmd_probe(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *fracs = "1";
    int batch = 32, iters = 300;
    double lr = 0.01, wd = 1e-4;
    task_args ta;
    task_args_default(&ta);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) { fputs(HELP, stdout); return 0; }
        else if (task_args_parse(&ta, argc, argv, &i)) continue;
        else if (!strcmp(a, "--model")) model = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--out")) out = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--label-fraction")) fracs = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--batch")) batch = (int)cli_long(a, cli_value(argc, argv, &i), 1, 4096);
        else if (!strcmp(a, "--iters")) iters = (int)cli_long(a, cli_value(argc, argv, &i), 10, 1000000);
        else if (!strcmp(a, "--lr")) lr = cli_double(a, cli_value(argc, argv, &i), 0, 10);
        else if (!strcmp(a, "--wd")) wd = cli_double(a, cli_value(argc, argv, &i), 0, 10);
        else return cli_usage_error("probe", "unknown option '%s'", a);
    }
    if (!ta.task || !model || !out) return cli_usage_error("probe", "--task, --model and --out are required");
    sx_err err;
    task t;
    split sp;
    if (task_args_open(&ta, "probe", &t, &sp)) return 1;
    int folds = ta.folds;
    long seed = ta.seed;
    if (mkdir(out, 0755) && errno != EEXIST) { fprintf(stderr, "skelex probe: %s: cannot create\n", out); return 1; }
    char path[4400];
    snprintf(path, sizeof path, "%s/split.json", out);
    cJSON *sj = split_to_json(&t, &sp);
    if (json_write_file(path, sj, &err)) fprintf(stderr, "skelex probe: %s\n", err.msg);
    cJSON_Delete(sj);

    mae_model m;
    if (checkpoint_load_encoder(model, &m, &err)) { fprintf(stderr, "skelex probe: %s\n", err.msg); return 1; }
    int F = 2 * m.cfg.hidden_size, K = t.n_classes;
    float *feats = sx_malloc(sizeof(float) * t.n * F);
    const char **paths = sx_malloc(sizeof(char *) * t.n);
    for (size_t i = 0; i < t.n; i++) paths[i] = t.samples[i].path;
    fprintf(stderr, "probe %s: %zu images, %d classes, features %d from %s\n", t.name, t.n, K, F, model);
    int rc = features_extract(&m, paths, t.n, batch, feats, &err);
    free(paths);
    mae_free(&m);
    if (rc) { fprintf(stderr, "skelex probe: %s\n", err.msg); return 1; }
    int64_t fshape[2] = {(int64_t)t.n, F};
    snprintf(path, sizeof path, "%s/features.npy", out);
    npy_write_f32(path, feats, 2, fshape, &err);

    head_kind kind = t.type == TASK_REGRESSION ? HEAD_LINEAR : (t.type == TASK_BINARY ? HEAD_SIGMOID : HEAD_SOFTMAX);
    size_t n_test;
    size_t *test_idx = split_indices(&sp, SPLIT_TEST, 0, &n_test);
    float *Xt = sx_malloc(sizeof(float) * n_test * F), *yt = sx_malloc(sizeof(float) * n_test);
    gather(feats, F, &t, test_idx, n_test, Xt, yt);
    cJSON *results = cJSON_CreateObject(), *by_frac = cJSON_AddObjectToObject(results, "label_fractions");
    cJSON_AddStringToObject(results, "task", t.name);
    cJSON_AddStringToObject(results, "model", model);
    cJSON_AddNumberToObject(results, "images", (double)t.n);
    cJSON_AddNumberToObject(results, "test_images", (double)n_test);
    printf("%-8s %-5s %8s %8s %8s %8s %8s\n", "fraction", "fold", "n_train", "AUROC", "bal_acc", "QWK", "ECE/MAE");
    char fbuf[256];
    snprintf(fbuf, sizeof fbuf, "%s", fracs);
    for (char *tok = strtok(fbuf, ","); tok; tok = strtok(NULL, ",")) {
        double frac = cli_double("--label-fraction", tok, 1e-6, 1);
        cJSON *fj = cJSON_AddArrayToObject(by_frac, tok);
        double sums[4][2] = {{0}};
        int nf = 0, nvalid[4] = {0};
        for (int k = 0; k < folds; k++) {
            size_t ntr, nva, *tr, *va = split_indices(&sp, SPLIT_VAL, k, &nva);
            if (split_train_subset(&t, &sp, k, frac, (uint64_t)seed + 17, &tr, &ntr, &err)) {
                fprintf(stderr, "skelex probe: %s\n", err.msg);
                free(va);
                continue;
            }
            float *X = sx_malloc(sizeof(float) * ntr * F), *y = sx_malloc(sizeof(float) * ntr);
            float *Xv = sx_malloc(sizeof(float) * nva * F), *yv = sx_malloc(sizeof(float) * nva);
            gather(feats, F, &t, tr, ntr, X, y);
            gather(feats, F, &t, va, nva, Xv, yv);
            linear_head h;
            score_ctx ctx = {&t};
            linear_head_train(&h, kind, K, X, y, ntr, F, Xv, yv, nva, score_val, &ctx, iters, (float)lr, (float)wd);
            int KK = K > 2 ? K : 2;
            double *prob = sx_malloc(sizeof(double) * n_test * KK), *pred = sx_malloc(sizeof(double) * n_test);
            double *target = sx_malloc(sizeof(double) * n_test);
            int *lab = sx_malloc(sizeof(int) * n_test);
            head_outputs(&h, &t, Xt, n_test, prob, pred);
            for (size_t i = 0; i < n_test; i++) { lab[i] = (int)yt[i]; target[i] = yt[i]; }
            eval_set es = {t.type, K, (const char *const *)t.class_names, n_test,
                           kind == HEAD_LINEAR ? NULL : prob, kind == HEAD_LINEAR ? NULL : lab,
                           kind == HEAD_LINEAR ? pred : NULL, kind == HEAD_LINEAR ? target : NULL};
            cJSON *mj = metrics_json(&es, 1000, (uint64_t)seed + (uint64_t)k, &err);
            if (!mj) fprintf(stderr, "skelex probe: %s\n", err.msg);
            else {
                snprintf(path, sizeof path, "%s/frac_%s", out, tok);
                mkdir(path, 0755);
                snprintf(path, sizeof path, "%s/frac_%s/fold%d", out, tok, k);
                mkdir(path, 0755);
                char title[256];
                snprintf(title, sizeof title, "%s probe, %s labels, fold %d, test", t.name, tok, k);
                report_write_all(path, title, &es, &err);
                cJSON_AddNumberToObject(mj, "fold", k);
                cJSON_AddNumberToObject(mj, "n_train", (double)ntr);
                double v[4] = {json_num(mj, "auroc"), json_num(mj, "balanced_accuracy"), json_num(mj, "qwk"),
                               kind == HEAD_LINEAR ? json_num(mj, "mae") : json_num(mj, "ece")};
                for (int q = 0; q < 4; q++)
                    if (!isnan(v[q])) { sums[q][0] += v[q]; sums[q][1] += v[q] * v[q]; nvalid[q]++; }
                nf++;
                printf("%-8s %-5d %8zu %8.4f %8.4f %8.4f %8.4f\n", tok, k, ntr, v[0], v[1], v[2], v[3]);
                cJSON_AddItemToArray(fj, mj);
            }
            free(prob); free(pred); free(target); free(lab);
            linear_head_free(&h);
            free(X); free(y); free(Xv); free(yv); free(tr); free(va);
        }
        const char *names[4] = {"auroc", "balanced_accuracy", "qwk", kind == HEAD_LINEAR ? "mae" : "ece"};
        printf("%-8s %-5s %8s", tok, "mean", "");
        for (int q = 0; q < 4; q++) {
            int nq = nvalid[q];
            double mean = nq ? sums[q][0] / nq : NAN, var = nq > 1 ? (sums[q][1] - nq * mean * mean) / (nq - 1) : NAN;
            if (nq) printf(" %4.3f±%.3f", mean, sqrt(var > 0 ? var : 0));
            else printf(" %11s", "n/a");
            if (!nq) continue;
            char key[64];
            snprintf(key, sizeof key, "frac_%s_%s_mean", tok, names[q]);
            cJSON_AddNumberToObject(results, key, mean);
            snprintf(key, sizeof key, "frac_%s_%s_sd", tok, names[q]);
            cJSON_AddNumberToObject(results, key, sqrt(var > 0 ? var : 0));
        }
        printf("\n");
    }
    snprintf(path, sizeof path, "%s/results.json", out);
    if (json_write_file(path, results, &err)) fprintf(stderr, "skelex probe: %s\n", err.msg);
    cJSON_Delete(results);
    printf("wrote %s\n", path);
    free(feats); free(Xt); free(yt); free(test_idx);
    split_free(&sp);
    task_free(&t);
    return 0;
}
