/* finetune_run.c: the k-fold fine-tuning protocol (finetune.h): a fold's
 * classifier trained with finetune_fold, its best epoch reloaded and scored
 * on the fixed test split, results over folds. */
#include "adapt/external.h"
#include "adapt/finetune.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* 0 when path is missing or an empty folder; 1 when it holds something. */
static int holds_something(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) return 1;
    DIR *d = opendir(path);
    if (!d) return 1;
    struct dirent *e;
    int any = 0;
    while (!any && (e = readdir(d))) any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return any;
}

/* Fold k: train, reload the best epoch, score it on the test split. The
 * fold's metrics (with fold, n_train, n_val, best_epoch, val scores) or NULL. */
static cJSON *run_fold(const task *t, const split *sp, const finetune_run_opts *o, const image_cache *ic,
                       const image_cache *ic_ext, int k, const size_t *test_idx, size_t n_test, sx_err *err) {
    size_t ntr, nva, *tr = NULL, *va = split_indices(sp, SPLIT_VAL, k, &nva);
    if (split_train_subset(t, sp, k, o->label_fraction, o->ft.seed + 17, &tr, &ntr, err)) { free(va); return NULL; }
    char fdir[FT_FDIR], best[FT_FPATH], tdir[FT_FPATH], label[FT_FLABEL], title[256];
    ft_fold_paths(o->out, k, fdir, best, tdir, label);
    cJSON *mj = NULL;
    classifier c;
    ft_result res = {0};
    if (adapt_mkdir(fdir, err) ||
        classifier_create(&c, o->model, o->config, t->type, t->n_classes, (const char *const *)t->class_names,
                          o->ft.seed * 1000 + (uint64_t)k, err))
        goto done;
    int frc = finetune_fold(&c, t, ic, tr, ntr, va, nva, &o->ft, best, fdir, label, &res, err);
    classifier_free(&c);
    if (frc) goto done;
    if (classifier_load(&c, best, err)) goto done;   /* the model scored is the one saved at the best epoch */
    snprintf(title, sizeof title, "%s fine-tuned, fold %d (epoch %d), test", t->name, k, res.best_epoch);
    mj = finetune_evaluate(&c, t, ic, test_idx, n_test, o->ft.eval_batch, tdir, title, o->ft.seed + (uint64_t)k, err);
    if (mj && o->external) {   /* every external sample, by the same saved model */
        const task *e = o->external;
        size_t *eidx = external_indices(e);
        snprintf(tdir, sizeof tdir, "%s/external", fdir);
        snprintf(title, sizeof title, "%s fine-tuned, fold %d (epoch %d), external %s", t->name, k, res.best_epoch,
                 e->name);
        cJSON *ej = finetune_evaluate(&c, e, ic_ext, eidx, e->n, o->ft.eval_batch, tdir, title,
                                      o->ft.seed + 7919 + (uint64_t)k, err);
        free(eidx);
        if (ej) cJSON_AddItemToObject(mj, "external", ej);
        else { cJSON_Delete(mj); mj = NULL; }
    }
    classifier_free(&c);
    if (mj) {
        const ft_epoch *bl = &res.log[res.best_epoch - 1], *last = &res.log[res.n_log - 1];
        cJSON_AddNumberToObject(mj, "fold", k);
        cJSON_AddNumberToObject(mj, "n_train", (double)ntr);
        cJSON_AddNumberToObject(mj, "n_val", (double)nva);
        cJSON_AddNumberToObject(mj, "best_epoch", res.best_epoch);
        cJSON_AddNumberToObject(mj, "val_score_best", bl->val_score);
        cJSON_AddNumberToObject(mj, "val_score_last", last->val_score);
    }
done:
    ft_result_free(&res);
    free(tr); free(va);
    return mj;
}

static void table_row(FILE *f, const task *t, const cJSON *mj) {
    if (!f) return;
    const cJSON *ej = cJSON_GetObjectItem(mj, "external");
    const char *last = t->type == TASK_REGRESSION ? "mae" : "ece";
    const cJSON *cols[8] = {cJSON_GetObjectItem(mj, "auroc"), cJSON_GetObjectItem(mj, "balanced_accuracy"),
                            cJSON_GetObjectItem(mj, "qwk"), cJSON_GetObjectItem(mj, last),
                            cJSON_GetObjectItem(ej, "auroc"), cJSON_GetObjectItem(ej, "balanced_accuracy"),
                            cJSON_GetObjectItem(ej, "qwk"), cJSON_GetObjectItem(ej, last)};
    double vb = cJSON_GetObjectItem(mj, "val_score_best")->valuedouble;
    fprintf(f, "%-5d %8.0f %6.0f %10.4f", (int)cJSON_GetObjectItem(mj, "fold")->valuedouble,
            cJSON_GetObjectItem(mj, "n_train")->valuedouble, cJSON_GetObjectItem(mj, "best_epoch")->valuedouble,
            t->type == TASK_REGRESSION ? -vb : vb);
    for (int q = 0; q < (ej ? 8 : 4); q++) {
        if (cJSON_IsNumber(cols[q])) fprintf(f, " %8.4f", cols[q]->valuedouble);
        else fprintf(f, " %8s", "-");
    }
    fprintf(f, "\n");
    fflush(f);
}

int finetune_run(const task *t, const split *sp, const finetune_run_opts *o, sx_err *err) {
    if (!o->config) return sx_fail(err, "finetune: no model configuration");
    if (!(o->label_fraction > 0 && o->label_fraction <= 1))
        return sx_fail(err, "finetune: label fraction %g is not in (0, 1]", o->label_fraction);
    if (!(o->ft.lr > 0) || !isfinite(o->ft.lr) || !(o->ft.min_lr >= 0) || !isfinite(o->ft.min_lr))
        return sx_fail(err, "finetune: need a finite lr > 0 and min_lr >= 0");
    if (!o->force && holds_something(o->out))
        return sx_fail(err, "%s already holds results; use --force to overwrite them, or another --out", o->out);
    if (o->external && external_check(t, o->external, err)) return -1;
    if (adapt_start_out(o->out, t, sp, err)) return -1;
    char path[4400];
    int rc;
    if (o->ft.progress)
        fprintf(o->ft.progress, "finetune %s: %zu images, %d classes, %d folds, from %s\n", t->name, t->n,
                t->n_classes, sp->folds, o->init_name ? o->init_name : "?");
    image_cache ic = {0};
    const char **paths = sx_malloc(sizeof(char *) * (t->n ? t->n : 1));
    for (size_t i = 0; i < t->n; i++) paths[i] = t->samples[i].path;
    rc = image_cache_build(&ic, paths, t->n, o->config->image_size, o->ft.progress, err);
    free(paths);
    if (rc) return -1;
    image_cache ic_ext = {0};
    if (o->external) {
        const task *e = o->external;
        external_note(o->ft.progress, "finetune", t, e);
        paths = sx_malloc(sizeof(char *) * (e->n ? e->n : 1));
        for (size_t i = 0; i < e->n; i++) paths[i] = e->samples[i].path;
        rc = image_cache_build(&ic_ext, paths, e->n, o->config->image_size, o->ft.progress, err);
        free(paths);
        if (rc) { image_cache_free(&ic); return -1; }
    }

    size_t n_test = 0, *test_idx = split_indices(sp, SPLIT_TEST, 0, &n_test);
    cJSON *results = cJSON_CreateObject(), *fold_arr;
    cJSON_AddStringToObject(results, "task", t->name);
    cJSON_AddStringToObject(results, "model", o->init_name ? o->init_name : "");
    cJSON_AddStringToObject(results, "init", o->model ? "checkpoint" : "random");
    cJSON_AddNumberToObject(results, "label_fraction", o->label_fraction);
    cJSON_AddNumberToObject(results, "epochs", o->ft.epochs);
    cJSON_AddBoolToObject(results, "balance_classes", o->ft.balance);
    cJSON_AddNumberToObject(results, "test_images", (double)n_test);
    if (o->external) cJSON_AddItemToObject(results, "external", external_info(t, o->external));
    fold_arr = cJSON_AddArrayToObject(results, "folds");
    cJSON **per = sx_calloc((size_t)sp->folds, sizeof(cJSON *));
    int n_done = 0;
    if (o->table)
    {
        const char *last = t->type == TASK_REGRESSION ? "MAE" : "ECE";
        fprintf(o->table, "%-5s %8s %6s %10s %8s %8s %8s %8s", "fold", "n_train", "best", "val_best", "AUROC",
                "bal_acc", "QWK", last);
        if (o->external) fprintf(o->table, " %8s %8s %8s %5s_%s", "e_AUROC", "e_balacc", "e_QWK", "e", last);
        fprintf(o->table, "\n");
    }
    for (int k = 0; k < sp->folds && !rc; k++) {
        if (o->only && !o->only[k]) continue;
        cJSON *mj = run_fold(t, sp, o, &ic, &ic_ext, k, test_idx, n_test, err);
        if (!mj) { rc = -1; break; }
        cJSON_AddItemToArray(fold_arr, mj);
        per[n_done++] = mj;
        table_row(o->table, t, mj);
    }
    if (!rc && !n_done) rc = sx_fail(err, "finetune: no fold was run");
    if (!rc) {
        cJSON *summary = metrics_summary(per, n_done), *ext_summary = NULL;
        cJSON_AddItemToObject(results, "summary", summary);
        if (o->external) {
            cJSON **ext = sx_calloc((size_t)sp->folds, sizeof(cJSON *));
            external_of(per, n_done, ext);
            ext_summary = metrics_summary(ext, n_done);
            cJSON_AddItemToObject(results, "external_summary", ext_summary);
            free(ext);
        }
        if (o->table && !o->external) {
            fprintf(o->table, "mean ± SD over %d fold(s):", n_done);
            for (const cJSON *e = summary->child; e; e = e->next)
                fprintf(o->table, "  %s %.4f ± %.4f", e->string, cJSON_GetObjectItem(e, "mean")->valuedouble,
                        cJSON_GetObjectItem(e, "sd")->valuedouble);
            fprintf(o->table, "\n");
        }
        if (o->external) {
            char title[160];
            snprintf(title, sizeof title, "%d fold(s): test split vs external %s", n_done, o->external->name);
            external_table(o->table, title, summary, ext_summary);
        }
        snprintf(path, sizeof path, "%s/results.json", o->out);
        rc = json_write_file(path, results, err);
    }
    cJSON_Delete(results);
    free(per);
    free(test_idx);
    image_cache_free(&ic);
    image_cache_free(&ic_ext);
    return rc;
}
