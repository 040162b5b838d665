/* split.c: stratified, patient-grouped test split, k folds and label-fraction
 * subsets (see split.h for the rules). Everything is driven by rng.c seeded
 * from the caller's seed, so a split is the same on every machine.
 * Not here: loading tasks (task.c), training or scoring. */
#include "data/split.h"
#include "core/rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BINS 10
#define TEST_STREAM 0x7465737473706c74ull   /* separate RNG streams: "testsplt" */
#define FOLD_STREAM 0x666f6c6473706c74ull   /* "foldsplt" */
#define SUBSET_STREAM 0x6c6162656c667263ull /* "labelfrc" */

typedef struct {
    size_t first, size;   /* members: order[first .. first+size-1] */
} group;

static void shuffle(size_t *v, size_t n, sx_rng *r) {
    for (size_t i = n; i > 1; i--) {
        size_t j = rng_below(r, (uint32_t)i);
        size_t t = v[i - 1]; v[i - 1] = v[j]; v[j] = t;
    }
}

static uint64_t mix(uint64_t seed, uint64_t stream) {
    uint64_t z = seed ^ stream;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    return z ^ (z >> 27);
}

/* ------------------------------------------------------------- strata */

typedef struct { double v; size_t i; } keyed;

static int cmp_keyed(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Quantile bins (0 .. bins-1) of values v[0..n-1] by rank; returns bins. */
static int quantile_bins(const double *v, size_t n, int *bin) {
    int bins = (int)(n / 20);
    if (bins > MAX_BINS) bins = MAX_BINS;
    if (bins < 1) bins = 1;
    keyed *k = sx_malloc(sizeof(keyed) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) k[i] = (keyed){v[i], i};
    qsort(k, n, sizeof *k, cmp_keyed);
    for (size_t r = 0; r < n; r++) bin[k[r].i] = (int)((double)r * bins / (double)n);
    free(k);
    return bins;
}

/* Stratum of each of the given samples: the label, or for regression the
 * target's quantile bin among them. Returns the number of strata. */
static int sample_strata(const task *t, const size_t *idx, size_t n, int *stratum) {
    if (t->type != TASK_REGRESSION) {
        for (size_t i = 0; i < n; i++) stratum[i] = t->samples[idx[i]].label;
        return t->n_classes;
    }
    double *v = sx_malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) v[i] = t->samples[idx[i]].target;
    int bins = quantile_bins(v, n, stratum);
    free(v);
    return bins;
}

/* ------------------------------------------------------------- groups */

/* Samples grouped by patient, groups ordered by patient id: order gets the
 * sample indices, *out the groups; returns the group count. */
static size_t make_groups(const task *t, size_t *order, group **out) {
    sx_keyed *bp = sx_malloc(sizeof(sx_keyed) * (t->n ? t->n : 1));   /* by patient */
    for (size_t i = 0; i < t->n; i++) bp[i] = (sx_keyed){t->samples[i].patient, i};
    qsort(bp, t->n, sizeof *bp, sx_cmp_keyed);
    for (size_t i = 0; i < t->n; i++) order[i] = bp[i].i;
    free(bp);
    group *g = sx_malloc(sizeof(group) * (t->n ? t->n : 1));
    size_t ng = 0;
    for (size_t i = 0; i < t->n;) {
        size_t j = i + 1;
        while (j < t->n && strcmp(t->samples[order[j]].patient, t->samples[order[i]].patient) == 0) j++;
        g[ng++] = (group){i, j - i};
        i = j;
    }
    *out = g;
    return ng;
}

typedef struct { size_t size, pos, group; } sized;

static int cmp_size_desc(const void *a, const void *b) {
    const sized *x = a, *y = b;
    if (x->size != y->size) return x->size > y->size ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* The listed groups shuffled with r, then largest first (stable). */
static void order_groups(const group *g, size_t *list, size_t m, sx_rng *r) {
    shuffle(list, m, r);
    sized *v = sx_malloc(sizeof(sized) * (m ? m : 1));
    for (size_t i = 0; i < m; i++) v[i] = (sized){g[list[i]].size, i, list[i]};
    qsort(v, m, sizeof *v, cmp_size_desc);
    for (size_t i = 0; i < m; i++) list[i] = v[i].group;
    free(v);
}

/* ------------------------------------------------------------- assignment */

/* The two greedy steps share this view: gc[k * S + c] = images of group k in
 * stratum c; total[c] = images of stratum c among the groups considered. */
typedef struct {
    const size_t *gc;
    int S;
    const double *total;
} strata_view;

/* Change of sum_c ((have_c + add_c - want_c)^2 - (have_c - want_c)^2) / total_c
 * when group k is added to a side holding have[] of a target want[]. */
static double added_cost(const strata_view *v, size_t k, const double *have, const double *want) {
    double d = 0;
    for (int c = 0; c < v->S; c++) {
        double a = (double)v->gc[k * (size_t)v->S + c];
        if (a == 0 || v->total[c] == 0) continue;
        d += a * (2 * (have[c] - want[c]) + a) / v->total[c];
    }
    return d;
}

/* Test side: groups (shuffled, largest first) join it while that brings
 * every stratum's test count closer to test_frac of the stratum. */
static void assign_test(const group *g, size_t ng, const strata_view *v, double test_frac, uint64_t seed, int *gfold) {
    sx_rng r;
    rng_seed(&r, mix(seed, TEST_STREAM));
    size_t *list = sx_malloc(sizeof(size_t) * (ng ? ng : 1));
    for (size_t k = 0; k < ng; k++) list[k] = k;
    order_groups(g, list, ng, &r);
    double *have = sx_calloc((size_t)v->S, sizeof(double)), *want = sx_malloc(sizeof(double) * (size_t)v->S);
    for (int c = 0; c < v->S; c++) want[c] = test_frac * v->total[c];
    for (size_t i = 0; i < ng; i++) {
        size_t k = list[i];
        if (added_cost(v, k, have, want) >= 0) continue;
        gfold[k] = -1;
        for (int c = 0; c < v->S; c++) have[c] += (double)v->gc[k * (size_t)v->S + c];
    }
    free(have);
    free(want);
    free(list);
}

/* Folds: each remaining group (shuffled, largest first) goes to the fold
 * where it adds least to the squared deviation from an equal share of
 * every stratum (ties: the fold with fewest images, then the lower one). */
static void assign_folds(const group *g, size_t ng, const strata_view *v, int folds, uint64_t seed, int *gfold) {
    sx_rng r;
    rng_seed(&r, mix(seed, FOLD_STREAM));
    size_t *list = sx_malloc(sizeof(size_t) * (ng ? ng : 1)), m = 0;
    for (size_t k = 0; k < ng; k++)
        if (gfold[k] != -1) list[m++] = k;
    order_groups(g, list, m, &r);
    int S = v->S;
    double *have = sx_calloc((size_t)folds * S, sizeof(double)), *want = sx_malloc(sizeof(double) * (size_t)S);
    size_t *images = sx_calloc((size_t)folds, sizeof(size_t));
    for (int c = 0; c < S; c++) want[c] = v->total[c] / folds;
    for (size_t i = 0; i < m; i++) {
        size_t k = list[i];
        int best = 0;
        double best_cost = added_cost(v, k, have, want);
        for (int f = 1; f < folds; f++) {
            double cost = added_cost(v, k, have + (size_t)f * S, want);
            if (cost < best_cost || (cost == best_cost && images[f] < images[best])) { best = f; best_cost = cost; }
        }
        gfold[k] = best;
        images[best] += g[k].size;
        for (int c = 0; c < S; c++) have[(size_t)best * S + c] += (double)v->gc[k * (size_t)S + c];
    }
    free(have);
    free(want);
    free(images);
    free(list);
}

/* ------------------------------------------------------------------ public */

int split_make(const task *t, double test_frac, int folds, uint64_t seed, split *s, sx_err *err) {
    memset(s, 0, sizeof *s);
    if (!(test_frac >= 0 && test_frac <= 0.9)) return sx_fail(err, "split: test fraction %g is outside [0, 0.9]", test_frac);
    if (folds < 2 || folds > 100) return sx_fail(err, "split: %d folds (expected 2 to 100)", folds);
    size_t *order = sx_malloc(sizeof(size_t) * (t->n ? t->n : 1));
    group *g;
    size_t ng = make_groups(t, order, &g);
    if (ng < (size_t)folds + (test_frac > 0)) {
        free(order);
        free(g);
        return sx_fail(err, "split: task %s has %zu patient group(s), too few for %d folds%s", t->name, ng, folds,
                       test_frac > 0 ? " and a test split" : "");
    }
    /* strata of the samples (in group order), counted per group */
    int *stratum = sx_malloc(sizeof(int) * (t->n ? t->n : 1));
    int S = sample_strata(t, order, t->n, stratum);
    size_t *gc = sx_calloc(ng * (size_t)S, sizeof(size_t));
    double *total = sx_calloc((size_t)S, sizeof(double));
    for (size_t k = 0; k < ng; k++)
        for (size_t i = g[k].first; i < g[k].first + g[k].size; i++) gc[k * (size_t)S + stratum[i]]++;
    for (size_t i = 0; i < t->n; i++) total[stratum[i]] += 1;
    strata_view v = {gc, S, total};
    int *gfold = sx_calloc(ng, sizeof(int));
    if (test_frac > 0) assign_test(g, ng, &v, test_frac, seed, gfold);
    for (int c = 0; c < S; c++) total[c] = 0;   /* the folds share what the test side left */
    for (size_t k = 0; k < ng; k++)
        if (gfold[k] != -1)
            for (int c = 0; c < S; c++) total[c] += (double)gc[k * (size_t)S + c];
    assign_folds(g, ng, &v, folds, seed, gfold);
    s->n = t->n;
    s->fold = sx_malloc(sizeof(int) * (t->n ? t->n : 1));
    for (size_t k = 0; k < ng; k++)
        for (size_t i = 0; i < g[k].size; i++) s->fold[order[g[k].first + i]] = gfold[k];
    s->folds = folds;
    s->test_frac = test_frac;
    s->seed = seed;
    free(gfold);
    free(gc);
    free(total);
    free(stratum);
    free(g);
    free(order);
    return 0;
}

void split_free(split *s) {
    if (!s) return;
    free(s->fold);
    memset(s, 0, sizeof *s);
}

static int in_part(const split *s, size_t i, split_part part, int fold) {
    int f = s->fold[i];
    switch (part) {
    case SPLIT_TRAIN: return f >= 0 && (fold < 0 || f != fold);
    case SPLIT_VAL: return f >= 0 && f == fold;
    case SPLIT_TEST: return f == -1;
    case SPLIT_DEV: return f >= 0;
    }
    return 0;
}

size_t *split_indices(const split *s, split_part part, int fold, size_t *n) {
    size_t *idx = sx_malloc(sizeof(size_t) * (s->n ? s->n : 1)), m = 0;
    for (size_t i = 0; i < s->n; i++)
        if (in_part(s, i, part, fold)) idx[m++] = i;
    *n = m;
    return idx;
}

static int cmp_size_t(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

int split_train_subset(const task *t, const split *s, int fold, double label_fraction, uint64_t seed, size_t **idx,
                       size_t *n, sx_err *err) {
    *idx = NULL;
    *n = 0;
    if (s->n != t->n) return sx_fail(err, "split: made for %zu samples, task %s has %zu", s->n, t->name, t->n);
    if (fold < -1 || fold >= s->folds) return sx_fail(err, "split: fold %d outside -1 .. %d", fold, s->folds - 1);
    if (!(label_fraction > 0 && label_fraction <= 1))
        return sx_fail(err, "split: label fraction %g is outside (0, 1]", label_fraction);
    size_t m;
    size_t *train = split_indices(s, SPLIT_TRAIN, fold, &m);
    int *stratum = sx_malloc(sizeof(int) * (m ? m : 1)), n_strata = sample_strata(t, train, m, stratum);
    sx_rng r;
    rng_seed(&r, mix(mix(seed, SUBSET_STREAM), (uint64_t)(fold + 1)));
    size_t *out = sx_malloc(sizeof(size_t) * (m ? m : 1)), *members = sx_malloc(sizeof(size_t) * (m ? m : 1)), k = 0;
    for (int st = 0; st < n_strata; st++) {
        size_t c = 0;
        for (size_t i = 0; i < m; i++)
            if (stratum[i] == st) members[c++] = train[i];
        shuffle(members, c, &r);
        size_t keep = (size_t)floor(label_fraction * (double)c + 0.5);
        if (keep == 0 && c > 0) keep = 1;
        for (size_t i = 0; i < keep; i++) out[k++] = members[i];
    }
    qsort(out, k, sizeof *out, cmp_size_t);
    free(members);
    free(stratum);
    free(train);
    *idx = out;
    *n = k;
    return 0;
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

uint64_t split_test_fingerprint(const task *t, const split *s) {
    size_t m;
    size_t *test = split_indices(s, SPLIT_TEST, 0, &m);
    const char **p = sx_malloc(sizeof(char *) * (m ? m : 1));
    for (size_t i = 0; i < m; i++) p[i] = task_rel_path(t, test[i]);
    qsort(p, m, sizeof *p, cmp_cstr);
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < m; i++) {
        for (const unsigned char *c = (const unsigned char *)p[i]; *c; c++) h = (h ^ *c) * 0x100000001b3ull;
        h = (h ^ '\n') * 0x100000001b3ull;
    }
    free(p);
    free(test);
    return h;
}

static cJSON *class_counts(const task *t, const split *s, int fold) {
    int K = t->n_classes;
    double *c = sx_calloc((size_t)K, sizeof(double));
    for (size_t i = 0; i < t->n; i++)
        if (s->fold[i] == fold) c[t->type == TASK_REGRESSION ? 0 : t->samples[i].label] += 1;
    cJSON *a = cJSON_CreateDoubleArray(c, K);
    free(c);
    return a;
}

cJSON *split_to_json(const task *t, const split *s) {
    cJSON *j = cJSON_CreateObject();
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)split_test_fingerprint(t, s));
    cJSON_AddStringToObject(j, "task", t->name);
    cJSON_AddNumberToObject(j, "seed", (double)s->seed);
    cJSON_AddNumberToObject(j, "test_frac", s->test_frac);
    cJSON_AddNumberToObject(j, "folds", s->folds);
    cJSON_AddStringToObject(j, "test_fingerprint", hex);
    cJSON_AddBoolToObject(j, "patients_grouped", t->has_patients);
    cJSON *counts = cJSON_AddObjectToObject(j, "counts");
    cJSON_AddItemToObject(counts, "test", class_counts(t, s, -1));
    for (int f = 0; f < s->folds; f++) {
        char key[16];
        snprintf(key, sizeof key, "fold%d", f);
        cJSON_AddItemToObject(counts, key, class_counts(t, s, f));
    }
    cJSON *images = cJSON_AddArrayToObject(j, "images");
    for (size_t i = 0; i < t->n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "path", task_rel_path(t, i));
        cJSON_AddNumberToObject(e, "fold", s->fold[i]);
        cJSON_AddItemToArray(images, e);
    }
    return j;
}
