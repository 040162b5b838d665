/* probe_run.c: the linear-probe protocol (probe.h): features once, then per
 * label fraction and fold a head trained, selected on validation and scored
 * on the test split, with every fold's outputs written as `eval` writes
 * them (adapt_write_outputs). */
#include "adapt/probe.h"
#include "adapt/external.h"
#include "adapt/finetune.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "io/checkpoint.h"
#include "io/npy.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void probe_opts_default(probe_opts *o) {
    static const double one = 1.0;
    *o = (probe_opts){.fractions = &one, .n_fractions = 1, .batch = 32, .iters = 300, .lr = 0.01, .wd = 1e-4};
}

typedef struct {
    const task *t;
    const float *feats;
    int F;
    const task *ext;        /* external test set (NULL: none) */
    const float *ext_feats; /* its features, every sample */
} probe_data;

/* Features and labels of samples idx. */
static void gather(const probe_data *d, const size_t *idx, size_t n, float *X, float *y) {
    for (size_t i = 0; i < n; i++) {
        memcpy(X + i * d->F, d->feats + idx[i] * d->F, sizeof(float) * d->F);
        const task_sample *s = &d->t->samples[idx[i]];
        y[i] = d->t->type == TASK_REGRESSION ? (float)s->target : (float)s->label;
    }
}

/* The head's outputs on samples idx, as eval_set arrays (prob n x max(K,2), pred n). */
typedef struct {
    const probe_data *d;
    const size_t *idx;
    double *prob, *pred;
} val_ctx;

static double score_val(const linear_head *h, const float *X, const float *y, size_t n, void *vctx) {
    (void)y;
    val_ctx *v = vctx;
    const task *t = v->d->t;
    linear_head_outputs(h, t->type, t->n_classes, X, n, v->prob, v->pred);
    double s = metric_task_score(t, v->idx, n, v->prob, v->pred);
    return isnan(s) ? -INFINITY : s;
}

static int head_finite(const linear_head *h) {
    for (size_t j = 0; j < (size_t)h->K * h->F; j++)
        if (!isfinite(h->w[j])) return 0;
    for (int k = 0; k < h->K; k++)
        if (!isfinite(h->b[k])) return 0;
    return 1;
}

static double json_num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* The fold's head on every external sample: fold dir/external/, and the
 * metrics as mj's "external" object. */
static int probe_external(const probe_data *d, const linear_head *h, double frac, int k, const char *fold_dir,
                          uint64_t seed, cJSON *mj, sx_err *err) {
    const task *e = d->ext;
    int K = e->n_classes, KK = K > 2 ? K : 2, reg = e->type == TASK_REGRESSION;
    size_t n = e->n, *idx = external_indices(e);
    double *prob = sx_malloc(sizeof(double) * (n ? n : 1) * KK), *pred = sx_malloc(sizeof(double) * (n ? n : 1));
    linear_head_outputs(h, e->type, K, d->ext_feats, n, prob, pred);
    char dir[4500], title[256];
    snprintf(dir, sizeof dir, "%s/external", fold_dir);
    snprintf(title, sizeof title, "%s probe, %g labels, fold %d, external %s", d->t->name, frac, k, e->name);
    cJSON *ej = adapt_write_outputs(e, idx, n, reg ? NULL : prob, reg ? pred : NULL, k, dir, title, seed, err);
    free(prob); free(pred); free(idx);
    if (!ej) return -1;
    cJSON_AddItemToObject(mj, "external", ej);
    return 0;
}

/* One fold of one fraction: train, select, score on the test split, write
 * frac dir/fold<k>/. Returns the fold's metrics (with fold, n_train) or NULL. */
static cJSON *probe_fold(const probe_data *d, const split *sp, const probe_opts *o, double frac, int k,
                         const char *frac_dir, const size_t *test_idx, size_t n_test, const float *Xt, sx_err *err) {
    const task *t = d->t;
    int F = d->F, K = t->n_classes, KK = K > 2 ? K : 2;
    head_kind kind = t->type == TASK_REGRESSION ? HEAD_LINEAR : t->type == TASK_BINARY ? HEAD_SIGMOID : HEAD_SOFTMAX;
    size_t ntr, nva, *tr = NULL, *va = split_indices(sp, SPLIT_VAL, k, &nva);
    if (split_train_subset(t, sp, k, frac, o->seed + 17, &tr, &ntr, err)) { free(va); return NULL; }
    size_t nmax = nva > n_test ? nva : n_test;
    float *X = sx_malloc(sizeof(float) * (ntr ? ntr : 1) * F), *y = sx_malloc(sizeof(float) * (ntr ? ntr : 1));
    float *Xv = sx_malloc(sizeof(float) * (nva ? nva : 1) * F), *yv = sx_malloc(sizeof(float) * (nva ? nva : 1));
    double *prob = sx_malloc(sizeof(double) * (nmax ? nmax : 1) * KK), *pred = sx_malloc(sizeof(double) * (nmax ? nmax : 1));
    gather(d, tr, ntr, X, y);
    gather(d, va, nva, Xv, yv);
    val_ctx vc = {d, va, prob, pred};
    linear_head h;
    cJSON *mj = NULL;
    linear_head_train(&h, kind, K, X, y, ntr, F, Xv, yv, nva, nva ? score_val : NULL, &vc, o->iters, (float)o->lr,
                      (float)o->wd);
    if (!head_finite(&h)) {
        sx_fail(err, "probe: the linear head diverged (non-finite weights) at label fraction %g, fold %d "
                "(lr %g; try a lower --lr)", frac, k, o->lr);
    } else {
        linear_head_outputs(&h, t->type, K, Xt, n_test, prob, pred);
        char dir[4400], title[256];
        snprintf(dir, sizeof dir, "%s/fold%d", frac_dir, k);
        snprintf(title, sizeof title, "%s probe, %g labels, fold %d, test", t->name, frac, k);
        mj = adapt_write_outputs(t, test_idx, n_test, kind == HEAD_LINEAR ? NULL : prob,
                                 kind == HEAD_LINEAR ? pred : NULL, k, dir, title, o->seed + (uint64_t)k, err);
        if (mj) cJSON_AddNumberToObject(mj, "n_train", (double)ntr);
        if (mj && d->ext && probe_external(d, &h, frac, k, dir, o->seed + 7919 + (uint64_t)k, mj, err)) {
            cJSON_Delete(mj);
            mj = NULL;
        }
    }
    linear_head_free(&h);
    free(X); free(y); free(Xv); free(yv); free(prob); free(pred); free(tr); free(va);
    return mj;
}

static const char *last_metric(const task *t) { return t->type == TASK_REGRESSION ? "mae" : "ece"; }

/* The four table columns of a metrics object (NaN where absent). */
static void table_values(const task *t, const cJSON *mj, double v[4]) {
    const char *cols[4] = {"auroc", "balanced_accuracy", "qwk", last_metric(t)};
    for (int q = 0; q < 4; q++) v[q] = mj ? json_num(mj, cols[q]) : NAN;
}

/* v: 4 test values, then 4 external ones when n_v is 8. */
static void table_row(FILE *f, const char *frac, const char *fold, const double *v, int n_v) {
    if (!f) return;
    fprintf(f, "%-8s %-5s", frac, fold);
    for (int q = 0; q < n_v; q++) {
        if (isnan(v[q])) fprintf(f, " %8s", "-");
        else fprintf(f, " %8.4f", v[q]);
    }
    fprintf(f, "\n");
}

/* One label fraction: every fold, then the mean/SD into results. */
static int probe_fraction(const probe_data *d, const split *sp, const probe_opts *o, double frac, const size_t *test_idx,
                          size_t n_test, const float *Xt, cJSON *by_frac, cJSON *results, sx_err *err) {
    const task *t = d->t;
    char name[64], frac_dir[4300];
    snprintf(name, sizeof name, "%g", frac);
    snprintf(frac_dir, sizeof frac_dir, "%s/frac_%s", o->out, name);
    if (adapt_mkdir(frac_dir, err)) return -1;
    cJSON *fj = cJSON_AddArrayToObject(by_frac, name);
    cJSON **per = sx_calloc((size_t)sp->folds, sizeof(cJSON *));
    int n = 0, rc = 0;
    int nv = d->ext ? 8 : 4;
    for (int k = 0; k < sp->folds && !rc; k++) {
        cJSON *mj = probe_fold(d, sp, o, frac, k, frac_dir, test_idx, n_test, Xt, err);
        if (!mj) { rc = -1; break; }
        cJSON_AddItemToArray(fj, mj);
        per[n++] = mj;
        double v[8];
        table_values(t, mj, v);
        table_values(t, cJSON_GetObjectItemCaseSensitive(mj, "external"), v + 4);
        char fold[16];
        snprintf(fold, sizeof fold, "%d", k);
        table_row(o->table, name, fold, v, nv);
    }
    if (!rc) {   /* mean and SD over folds: results.json keys frac_<F>[_external]_<metric>_mean / _sd */
        cJSON **ext = sx_calloc((size_t)sp->folds, sizeof(cJSON *));
        external_of(per, n, ext);
        cJSON *sum[2] = {metrics_summary(per, n), d->ext ? metrics_summary(ext, n) : NULL};
        for (int s = 0; s < 2 && sum[s]; s++)
            for (const cJSON *e = sum[s]->child; e; e = e->next) {
                char key[160];
                snprintf(key, sizeof key, "frac_%s_%s%s_mean", name, s ? "external_" : "", e->string);
                cJSON_AddNumberToObject(results, key, json_num(e, "mean"));
                snprintf(key, sizeof key, "frac_%s_%s%s_sd", name, s ? "external_" : "", e->string);
                cJSON_AddNumberToObject(results, key, json_num(e, "sd"));
            }
        const char *cols[4] = {"auroc", "balanced_accuracy", "qwk", last_metric(t)};
        double v[8];
        for (int q = 0; q < nv; q++) v[q] = json_num(cJSON_GetObjectItem(sum[q / 4], cols[q % 4]), "mean");
        table_row(o->table, name, "mean", v, nv);
        if (d->ext) {
            char title[128];
            snprintf(title, sizeof title, "label fraction %s: test split vs external %s", name, d->ext->name);
            external_table(o->table, title, sum[0], sum[1]);
        }
        cJSON_Delete(sum[0]);
        cJSON_Delete(sum[1]);
        free(ext);
    }
    free(per);
    return rc;
}

/* Features of every external sample (out/external_features.npy). */
static int probe_external_features(mae_model *m, const task *t, const probe_opts *o, int F, float **out, sx_err *err) {
    const task *e = o->external;
    external_note(o->progress, "probe", t, e);
    float *feats = sx_malloc(sizeof(float) * (e->n ? e->n : 1) * F);
    const char **paths = sx_malloc(sizeof(char *) * (e->n ? e->n : 1));
    for (size_t i = 0; i < e->n; i++) paths[i] = e->samples[i].path;
    int rc = features_extract_layers(m, paths, e->n, o->batch, o->layers, o->n_layers, feats, o->progress, err);
    free(paths);
    if (!rc) {
        char path[4400];
        int64_t shape[2] = {(int64_t)e->n, F};
        snprintf(path, sizeof path, "%s/external_features.npy", o->out);
        rc = npy_write_f32(path, feats, 2, shape, err);
    }
    if (rc) { free(feats); return -1; }
    *out = feats;
    return 0;
}

int probe_run(const task *t, const split *sp, const probe_opts *o, sx_err *err) {
    if (o->n_fractions < 1) return sx_fail(err, "probe: no label fraction");
    for (int i = 0; i < o->n_fractions; i++) {
        if (!(o->fractions[i] > 0 && o->fractions[i] <= 1))
            return sx_fail(err, "probe: label fraction %g is not in (0, 1]", o->fractions[i]);
        for (int j = 0; j < i; j++)
            if (o->fractions[j] == o->fractions[i]) return sx_fail(err, "probe: label fraction %g is given twice", o->fractions[i]);
    }
    if (o->batch < 1 || o->iters < 10 || !(o->lr > 0) || !isfinite(o->lr) || !(o->wd >= 0) || !isfinite(o->wd))
        return sx_fail(err, "probe: need batch >= 1, iters >= 10, lr > 0 and wd >= 0 (finite)");
    if (o->external && external_check(t, o->external, err)) return -1;
    if (adapt_start_out(o->out, t, sp, err)) return -1;
    char path[4400];
    int rc;

    mae_model m;
    if (checkpoint_load_encoder_inference(o->model, &m, err)) return -1;
    int F = 2 * m.cfg.hidden_size * (o->n_layers > 0 ? o->n_layers : 1);
    float *feats = sx_malloc(sizeof(float) * (t->n ? t->n : 1) * F);
    const char **paths = sx_malloc(sizeof(char *) * (t->n ? t->n : 1));
    for (size_t i = 0; i < t->n; i++) paths[i] = t->samples[i].path;
    if (o->progress)
        fprintf(o->progress, "probe %s: %zu images, %d classes, features %d from %s\n", t->name, t->n, t->n_classes, F,
                o->model);
    rc = features_extract_layers(&m, paths, t->n, o->batch, o->layers, o->n_layers, feats, o->progress, err);
    free(paths);
    if (!rc) {
        int64_t fshape[2] = {(int64_t)t->n, F};
        snprintf(path, sizeof path, "%s/features.npy", o->out);
        rc = npy_write_f32(path, feats, 2, fshape, err);
    }
    float *ext_feats = NULL;
    if (!rc && o->external) rc = probe_external_features(&m, t, o, F, &ext_feats, err);
    mae_free(&m);
    if (rc) { free(feats); return -1; }

    probe_data d = {t, feats, F, o->external, ext_feats};
    size_t n_test;
    size_t *test_idx = split_indices(sp, SPLIT_TEST, 0, &n_test);
    float *Xt = sx_malloc(sizeof(float) * (n_test ? n_test : 1) * F), *yt = sx_malloc(sizeof(float) * (n_test ? n_test : 1));
    gather(&d, test_idx, n_test, Xt, yt);
    cJSON *results = cJSON_CreateObject();
    cJSON_AddStringToObject(results, "task", t->name);
    cJSON_AddStringToObject(results, "model", o->model);
    if (o->n_layers > 0) {
        cJSON *ly = cJSON_AddArrayToObject(results, "feature_layers");
        for (int q = 0; q < o->n_layers; q++) cJSON_AddItemToArray(ly, cJSON_CreateNumber(o->layers[q]));
    } else cJSON_AddStringToObject(results, "feature_layers", "final_layernorm");
    cJSON_AddNumberToObject(results, "images", (double)t->n);
    cJSON_AddNumberToObject(results, "test_images", (double)n_test);
    cJSON *by_frac = cJSON_AddObjectToObject(results, "label_fractions");
    if (o->external) cJSON_AddItemToObject(results, "external", external_info(t, o->external));
    if (o->table) {
        const char *last = t->type == TASK_REGRESSION ? "MAE" : "ECE";
        fprintf(o->table, "%-8s %-5s %8s %8s %8s %8s", "fraction", "fold", "AUROC", "bal_acc", "QWK", last);
        if (o->external) fprintf(o->table, " %8s %8s %8s %5s_%s", "e_AUROC", "e_balacc", "e_QWK", "e", last);
        fprintf(o->table, "\n");
    }
    for (int i = 0; i < o->n_fractions && !rc; i++)
        rc = probe_fraction(&d, sp, o, o->fractions[i], test_idx, n_test, Xt, by_frac, results, err);
    if (!rc) {
        snprintf(path, sizeof path, "%s/results.json", o->out);
        rc = json_write_file(path, results, err);
    }
    cJSON_Delete(results);
    free(feats); free(ext_feats); free(Xt); free(yt); free(test_idx);
    return rc;
}
