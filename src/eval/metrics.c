/* metrics.c: AUROC (with bootstrap CI), accuracy, balanced accuracy, F1,
 * quadratic weighted kappa, ECE, MAE/RMSE and metrics.json (definitions in
 * metrics.h). AUROC is computed from the scores sorted once: every tie group
 * contributes (positives x negatives below) + 1/2 (positives x negatives in
 * the group), with per-sample weights, so a bootstrap resample (a multiset
 * of samples) costs O(n) per class instead of a new sort.
 * Not here: plotting (report.c), anything that reads or writes files. */
#include "eval/metrics.h"
#include "core/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ AUROC */

typedef struct { double v; size_t i; } keyed;

static int cmp_keyed(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Column c of an n x K matrix, sorted ascending: the sample order. */
static size_t *sort_column(const double *m, int K, int c, size_t n) {
    keyed *k = sx_malloc(sizeof(keyed) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) k[i] = (keyed){m[i * (size_t)K + c], i};
    qsort(k, n, sizeof *k, cmp_keyed);
    size_t *order = sx_malloc(sizeof(size_t) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) order[i] = k[i].i;
    free(k);
    return order;
}

/* Weighted AUROC of column c (scores m[i*K+c]) for "label == pos"; w NULL
 * means every weight is 1. NaN when either side has zero weight. */
static double auc_sorted(const double *m, int K, int c, const size_t *order, size_t n, const int *label, int pos,
                         const unsigned *w) {
    double P = 0, N = 0, num = 0, neg_below = 0;
    for (size_t i = 0; i < n;) {
        double v = m[order[i] * (size_t)K + c], pg = 0, ng = 0;
        size_t j = i;
        for (; j < n && (j == i || m[order[j] * (size_t)K + c] == v); j++) {   /* j == i: always advance */
            size_t k = order[j];
            double wk = w ? w[k] : 1.0;
            if (label[k] == pos) pg += wk; else ng += wk;
        }
        num += pg * neg_below + 0.5 * pg * ng;
        neg_below += ng;
        P += pg;
        N += ng;
        i = j;
    }
    return P > 0 && N > 0 ? num / (P * N) : NAN;
}

static int all_finite(const double *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

double metric_auroc(const double *score, const int *positive, size_t n) {
    if (!all_finite(score, n)) return NAN;
    int *lab = sx_malloc(sizeof(int) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) lab[i] = positive[i] != 0;
    size_t *order = sort_column(score, 1, 0, n);
    double a = auc_sorted(score, 1, 0, order, n, lab, 1, NULL);
    free(order);
    free(lab);
    return a;
}

/* The sorted orders that the AUROC of an n x K matrix needs. */
typedef struct { size_t **orders; int K; } auc_plan;

static void plan_make(auc_plan *p, const double *prob, int K, size_t n) {
    p->K = K;
    p->orders = sx_malloc(sizeof(size_t *) * (size_t)K);
    for (int c = 0; c < K; c++) p->orders[c] = sort_column(prob, K, c, n);
}

static void plan_free(auc_plan *p) {
    for (int c = 0; c < p->K; c++) free(p->orders[c]);
    free(p->orders);
}

/* Headline AUROC (binary: class 1; else macro over classes) for weights w. */
static double auc_headline(const auc_plan *p, const double *prob, const int *label, size_t n, const unsigned *w,
                           double *per_class) {
    int K = p->K;
    if (K == 2 && !per_class) return auc_sorted(prob, K, 1, p->orders[1], n, label, 1, w);
    double sum = 0;
    for (int c = 0; c < K; c++) {
        double a = auc_sorted(prob, K, c, p->orders[c], n, label, c, w);
        if (per_class) per_class[c] = a;
        sum += a;
    }
    if (K == 2) return per_class[1];
    return sum / K;   /* NaN if any class's AUROC is */
}

double metric_auroc_prob(const double *prob, int K, const int *label, size_t n, double *per_class) {
    if (!all_finite(prob, n * (size_t)K)) {
        for (int c = 0; per_class && c < K; c++) per_class[c] = NAN;
        return NAN;
    }
    auc_plan p;
    plan_make(&p, prob, K, n);
    double a = auc_headline(&p, prob, label, n, NULL, per_class);
    plan_free(&p);
    return a;
}

/* ------------------------------------------------------------- bootstrap */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double metric_percentile(double *v, size_t n, double q) {
    if (!n) return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    double h = (double)(n - 1) * q;
    size_t lo = (size_t)floor(h), hi = lo + 1 < n ? lo + 1 : n - 1;
    return v[lo] + (h - (double)lo) * (v[hi] - v[lo]);
}

/* One resample: w[i] = how often sample i was drawn (n draws). */
static void draw_weights(sx_rng *r, size_t n, unsigned *w) {
    memset(w, 0, sizeof(unsigned) * n);
    for (size_t i = 0; i < n; i++) w[rng_below(r, (uint32_t)n)]++;
}

static metric_ci ci_from(double *vals, int valid, int resamples, double level) {
    metric_ci ci = {NAN, NAN, resamples, valid};
    if (valid >= 2) {
        double a = (1 - level) / 2;
        ci.lo = metric_percentile(vals, (size_t)valid, a);
        ci.hi = metric_percentile(vals, (size_t)valid, 1 - a);
    }
    return ci;
}

metric_ci metric_auroc_ci(const double *prob, int K, const int *label, size_t n, int n_boot, double level,
                          uint64_t seed) {
    if (!n || n > UINT32_MAX || n_boot < 1 || K < 2 || !all_finite(prob, n * (size_t)K))
        return (metric_ci){NAN, NAN, n_boot > 0 ? n_boot : 0, 0};
    auc_plan p;
    plan_make(&p, prob, K, n);
    unsigned *w = sx_malloc(sizeof(unsigned) * n);
    double *vals = sx_malloc(sizeof(double) * (size_t)n_boot);
    sx_rng r;
    rng_seed(&r, seed);
    int valid = 0;
    for (int b = 0; b < n_boot; b++) {
        draw_weights(&r, n, w);
        double a = auc_headline(&p, prob, label, n, w, NULL);
        if (!isnan(a)) vals[valid++] = a;
    }
    metric_ci ci = ci_from(vals, valid, n_boot, level);
    free(vals);
    free(w);
    plan_free(&p);
    return ci;
}

metric_ci metric_mae_ci(const double *pred, const double *target, size_t n, int n_boot, double level, uint64_t seed) {
    if (!n || n > UINT32_MAX || n_boot < 1) return (metric_ci){NAN, NAN, n_boot > 0 ? n_boot : 0, 0};
    unsigned *w = sx_malloc(sizeof(unsigned) * n);
    double *vals = sx_malloc(sizeof(double) * (size_t)n_boot);
    sx_rng r;
    rng_seed(&r, seed);
    for (int b = 0; b < n_boot; b++) {
        draw_weights(&r, n, w);
        double s = 0;
        for (size_t i = 0; i < n; i++) s += w[i] * fabs(pred[i] - target[i]);
        vals[b] = s / (double)n;
    }
    metric_ci ci = ci_from(vals, n_boot, n_boot, level);
    free(vals);
    free(w);
    return ci;
}

/* ------------------------------------------------- threshold metrics */

int metric_argmax(const double *row, int K) {
    int best = 0;
    for (int k = 1; k < K; k++)
        if (row[k] > row[best]) best = k;
    return best;
}

void metric_confusion(const int *pred, const int *label, size_t n, int K, size_t *cm) {
    memset(cm, 0, sizeof(size_t) * (size_t)K * (size_t)K);
    for (size_t i = 0; i < n; i++) cm[(size_t)label[i] * (size_t)K + (size_t)pred[i]]++;
}

double metric_accuracy(const int *pred, const int *label, size_t n) {
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) ok += pred[i] == label[i];
    return n ? (double)ok / (double)n : NAN;
}

double metric_balanced_accuracy(const int *pred, const int *label, size_t n, int K) {
    size_t *cm = sx_malloc(sizeof(size_t) * (size_t)K * (size_t)K);
    metric_confusion(pred, label, n, K, cm);
    double sum = 0;
    int present = 0;
    for (int t = 0; t < K; t++) {
        size_t row = 0;
        for (int p = 0; p < K; p++) row += cm[(size_t)t * K + p];
        if (!row) continue;
        sum += (double)cm[(size_t)t * K + t] / (double)row;
        present++;
    }
    free(cm);
    return present ? sum / present : NAN;
}

/* F1 of class c: 2 tp / (2 tp + fp + fn), 0 when that is 0/0. */
static double f1_class(const size_t *cm, int K, int c) {
    size_t tp = cm[(size_t)c * K + c], fp = 0, fn = 0;
    for (int k = 0; k < K; k++) {
        if (k == c) continue;
        fp += cm[(size_t)k * K + c];
        fn += cm[(size_t)c * K + k];
    }
    double den = 2.0 * (double)tp + (double)fp + (double)fn;
    return den > 0 ? 2.0 * (double)tp / den : 0.0;
}

double metric_f1(const int *pred, const int *label, size_t n, int K) {
    size_t *cm = sx_malloc(sizeof(size_t) * (size_t)K * (size_t)K);
    metric_confusion(pred, label, n, K, cm);
    double f;
    if (K == 2) {
        f = f1_class(cm, K, 1);
    } else {
        f = 0;
        for (int c = 0; c < K; c++) f += f1_class(cm, K, c);
        f /= K;
    }
    free(cm);
    return f;
}

double metric_qwk(const int *pred, const int *label, size_t n, int K) {
    size_t *cm = sx_malloc(sizeof(size_t) * (size_t)K * (size_t)K);
    metric_confusion(pred, label, n, K, cm);
    double *rows = sx_calloc((size_t)K, sizeof(double)), *cols = sx_calloc((size_t)K, sizeof(double));
    for (int t = 0; t < K; t++)
        for (int p = 0; p < K; p++) { rows[t] += (double)cm[(size_t)t * K + p]; cols[p] += (double)cm[(size_t)t * K + p]; }
    double observed = 0, expected = 0;
    for (int t = 0; t < K; t++)
        for (int p = 0; p < K; p++) {
            double w = (double)(t - p) * (double)(t - p);
            observed += w * (double)cm[(size_t)t * K + p];
            expected += w * rows[t] * cols[p] / (double)n;
        }
    free(rows);
    free(cols);
    free(cm);
    return expected > 0 ? 1.0 - observed / expected : NAN;
}

/* ------------------------------------------------------------ regression */

double metric_mae(const double *pred, const double *target, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fabs(pred[i] - target[i]);
    return n ? s / (double)n : NAN;
}

double metric_rmse(const double *pred, const double *target, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (pred[i] - target[i]) * (pred[i] - target[i]);
    return n ? sqrt(s / (double)n) : NAN;
}

/* ----------------------------------------------------------- calibration */

void metric_calibration(const double *prob, int K, const int *label, size_t n, calibration *c) {
    double edges[CALIB_BINS + 1], conf_sum[CALIB_BINS] = {0}, hit[CALIB_BINS] = {0};
    for (int b = 0; b <= CALIB_BINS; b++) edges[b] = (double)b * (1.0 / CALIB_BINS);
    edges[CALIB_BINS] = 1.0;
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < n; i++) {
        const double *row = prob + i * (size_t)K;
        int p = metric_argmax(row, K), b = 0;
        while (b < CALIB_BINS - 1 && row[p] > edges[b + 1]) b++;
        c->count[b]++;
        conf_sum[b] += row[p];
        hit[b] += p == label[i];
    }
    for (int b = 0; b < CALIB_BINS; b++) {
        c->accuracy[b] = c->count[b] ? hit[b] / (double)c->count[b] : NAN;
        c->confidence[b] = c->count[b] ? conf_sum[b] / (double)c->count[b] : NAN;
        if (c->count[b]) c->ece += (double)c->count[b] / (double)n * fabs(c->accuracy[b] - c->confidence[b]);
    }
}

/* ------------------------------------------------------------- ROC curve */

int metric_roc_curve(const double *score, const int *positive, size_t n, double **fpr, double **tpr, size_t *m) {
    *fpr = *tpr = NULL;
    *m = 0;
    if (!all_finite(score, n)) return -1;
    size_t *order = sort_column(score, 1, 0, n);   /* ascending: walk it from the end */
    double P = 0, N = 0;
    for (size_t i = 0; i < n; i++) { if (positive[i]) P++; else N++; }
    if (P == 0 || N == 0) { free(order); return -1; }
    double *x = sx_malloc(sizeof(double) * (n + 1)), *y = sx_malloc(sizeof(double) * (n + 1)), tp = 0, fp = 0;
    size_t k = 0;
    x[k] = y[k] = 0;
    k++;
    for (size_t j = n; j > 0;) {
        double v = score[order[j - 1]];
        size_t j0 = j;
        for (; j > 0 && (j == j0 || score[order[j - 1]] == v); j--) { if (positive[order[j - 1]]) tp++; else fp++; }
        x[k] = fp / N;
        y[k] = tp / P;
        k++;
    }
    free(order);
    *fpr = x;
    *tpr = y;
    *m = k;
    return 0;
}

double metric_task_score(const task *t, const size_t *idx, size_t n, const double *prob, const double *pred) {
    if (t->type == TASK_REGRESSION) {
        double *tg = sx_malloc(sizeof(double) * (n ? n : 1));
        for (size_t i = 0; i < n; i++) tg[i] = t->samples[idx[i]].target;
        double s = -metric_mae(pred, tg, n);
        free(tg);
        return s;
    }
    int *lab = sx_malloc(sizeof(int) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) lab[i] = t->samples[idx[i]].label;
    double s = metric_auroc_prob(prob, t->n_classes > 2 ? t->n_classes : 2, lab, n, NULL);
    free(lab);
    return s;
}

/* ------------------------------------------------------------ metrics.json */

int eval_set_check(const eval_set *e, sx_err *err) {
    if (!e->n) return sx_fail(err, "metrics: no samples");
    if (e->n > UINT32_MAX) return sx_fail(err, "metrics: %zu samples is too many", e->n);
    if (e->type == TASK_REGRESSION) {
        if (!e->pred || !e->target) return sx_fail(err, "metrics: regression needs pred and target");
        for (size_t i = 0; i < e->n; i++)
            if (!isfinite(e->pred[i]) || !isfinite(e->target[i]))
                return sx_fail(err, "metrics: sample %zu has a non-finite prediction or target", i);
        return 0;
    }
    int K = e->n_classes;
    if (K < 2 || (e->type == TASK_BINARY && K != 2)) return sx_fail(err, "metrics: %d classes for a %s task", K, task_type_name(e->type));
    if (!e->prob || !e->label) return sx_fail(err, "metrics: classification needs prob and label");
    for (size_t i = 0; i < e->n; i++) {
        if (e->label[i] < 0 || e->label[i] >= K)
            return sx_fail(err, "metrics: sample %zu has label %d outside 0..%d", i, e->label[i], K - 1);
        double s = 0;
        for (int k = 0; k < K; k++) {
            double p = e->prob[i * (size_t)K + k];
            if (!(p >= 0 && p <= 1))
                return sx_fail(err, "metrics: sample %zu has probability %g outside [0, 1]%s", i, p,
                               isnan(p) ? " (the model diverged?)" : "");
            s += p;
        }
        if (fabs(s - 1) > 1e-3) return sx_fail(err, "metrics: sample %zu's probabilities sum to %g, not 1", i, s);
    }
    return 0;
}

static void add_num(cJSON *o, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

static cJSON *num_array(const double *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, isfinite(v[i]) ? cJSON_CreateNumber(v[i]) : cJSON_CreateNull());
    return a;
}

static void add_ci(cJSON *o, const char *key, const char *info_key, metric_ci ci, uint64_t seed) {
    double lohi[2] = {ci.lo, ci.hi};
    cJSON_AddItemToObject(o, key, num_array(lohi, 2));
    cJSON *b = cJSON_AddObjectToObject(o, info_key);
    cJSON_AddNumberToObject(b, "resamples", ci.resamples);
    cJSON_AddNumberToObject(b, "valid", ci.valid);
    cJSON_AddNumberToObject(b, "seed", (double)seed);
    cJSON_AddStringToObject(b, "method", "percentile");
}

static void add_classification(cJSON *o, const eval_set *e, int n_boot, uint64_t seed) {
    int K = e->n_classes;
    size_t n = e->n;
    int *pred = sx_malloc(sizeof(int) * n);
    for (size_t i = 0; i < n; i++) pred[i] = metric_argmax(e->prob + i * (size_t)K, K);
    double *per = sx_malloc(sizeof(double) * (size_t)K), *counts = sx_calloc((size_t)K, sizeof(double));
    for (size_t i = 0; i < n; i++) counts[e->label[i]] += 1;
    if (e->class_names) {
        cJSON *names = cJSON_AddArrayToObject(o, "classes");
        for (int k = 0; k < K; k++) cJSON_AddItemToArray(names, cJSON_CreateString(e->class_names[k]));
    }
    cJSON_AddItemToObject(o, "class_counts", num_array(counts, K));
    add_num(o, "auroc", metric_auroc_prob(e->prob, K, e->label, n, per));
    cJSON_AddItemToObject(o, "auroc_per_class", num_array(per, K));
    add_ci(o, "auroc_ci95", "auroc_bootstrap", metric_auroc_ci(e->prob, K, e->label, n, n_boot, 0.95, seed), seed);
    add_num(o, "accuracy", metric_accuracy(pred, e->label, n));
    add_num(o, "balanced_accuracy", metric_balanced_accuracy(pred, e->label, n, K));
    add_num(o, K == 2 ? "f1" : "f1_macro", metric_f1(pred, e->label, n, K));
    size_t *cm = sx_malloc(sizeof(size_t) * (size_t)K * (size_t)K);
    metric_confusion(pred, e->label, n, K, cm);
    if (K == 2) {
        double pos = (double)(cm[2] + cm[3]), neg = (double)(cm[0] + cm[1]);
        add_num(o, "sensitivity", pos > 0 ? (double)cm[3] / pos : NAN);
        add_num(o, "specificity", neg > 0 ? (double)cm[0] / neg : NAN);
    }
    if (e->type == TASK_ORDINAL) add_num(o, "qwk", metric_qwk(pred, e->label, n, K));
    calibration c;
    metric_calibration(e->prob, K, e->label, n, &c);
    add_num(o, "ece", c.ece);
    cJSON *cal = cJSON_AddObjectToObject(o, "calibration");
    double cnt[CALIB_BINS];
    for (int b = 0; b < CALIB_BINS; b++) cnt[b] = (double)c.count[b];
    cJSON_AddNumberToObject(cal, "bins", CALIB_BINS);
    cJSON_AddItemToObject(cal, "count", num_array(cnt, CALIB_BINS));
    cJSON_AddItemToObject(cal, "accuracy", num_array(c.accuracy, CALIB_BINS));
    cJSON_AddItemToObject(cal, "confidence", num_array(c.confidence, CALIB_BINS));
    cJSON *rows = cJSON_AddArrayToObject(o, "confusion_matrix");
    for (int t = 0; t < K; t++) {
        for (int p = 0; p < K; p++) per[p] = (double)cm[(size_t)t * K + p];
        cJSON_AddItemToArray(rows, num_array(per, K));
    }
    free(cm);
    free(per);
    free(counts);
    free(pred);
}

cJSON *metrics_json(const eval_set *e, int n_boot, uint64_t seed, sx_err *err) {
    if (eval_set_check(e, err)) return NULL;
    if (n_boot < 1 || n_boot > 1000000) { sx_fail(err, "metrics: %d bootstrap resamples (expected 1 to 1e6)", n_boot); return NULL; }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task_type", task_type_name(e->type));
    cJSON_AddNumberToObject(o, "n", (double)e->n);
    if (e->type == TASK_REGRESSION) {
        add_num(o, "mae", metric_mae(e->pred, e->target, e->n));
        add_ci(o, "mae_ci95", "mae_bootstrap", metric_mae_ci(e->pred, e->target, e->n, n_boot, 0.95, seed), seed);
        add_num(o, "rmse", metric_rmse(e->pred, e->target, e->n));
    } else {
        cJSON_AddNumberToObject(o, "n_classes", e->n_classes);
        add_classification(o, e, n_boot, seed);
    }
    return o;
}

cJSON *metrics_summary(cJSON *const *per_fold, int n) {
    static const char *keys[] = {"auroc", "balanced_accuracy", "f1", "f1_macro", "qwk", "ece", "mae", "rmse"};
    cJSON *o = cJSON_CreateObject();
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        double s = 0, s2 = 0;
        int m = 0;
        for (int i = 0; i < n; i++) {
            const cJSON *v = per_fold[i] ? cJSON_GetObjectItemCaseSensitive(per_fold[i], keys[k]) : NULL;
            if (!cJSON_IsNumber(v)) continue;
            s += v->valuedouble;
            s2 += v->valuedouble * v->valuedouble;
            m++;
        }
        if (!m) continue;
        double mean = s / m, var = m > 1 ? (s2 - m * mean * mean) / (m - 1) : 0.0;
        cJSON *e = cJSON_AddObjectToObject(o, keys[k]);
        cJSON_AddNumberToObject(e, "mean", mean);
        cJSON_AddNumberToObject(e, "sd", sqrt(var > 0 ? var : 0));
        cJSON_AddNumberToObject(e, "n", m);
    }
    return o;
}
