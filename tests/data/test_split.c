/* test_split.c: the evaluation splits (split.h): stratification, patient
 * grouping, coverage, reproducibility, regression bins, label-fraction
 * subsets and argument errors, on in-memory tasks. */
#include "data/split.h"
#include "data/task.h"
#include "testlib.h"
#include "core/rng.h"
#include <stdlib.h>
#include <string.h>

/* An in-memory task: label of sample i from labels[], patient from pid[]
 * (NULL: one patient per image). */
static void fake_task(task *t, task_type type, int K, size_t n, const int *labels, const double *targets,
                      const int *pid) {
    memset(t, 0, sizeof *t);
    t->name = strdup("fake");
    t->description = strdup("");
    t->data_root = strdup("");
    t->type = type;
    t->n_classes = K;
    t->class_names = calloc((size_t)K, sizeof(char *));
    for (int k = 0; k < K; k++) { char b[16]; snprintf(b, sizeof b, "c%d", k); t->class_names[k] = strdup(b); }
    t->samples = calloc(n, sizeof(task_sample));
    t->n = n;
    t->has_patients = pid != NULL;
    for (size_t i = 0; i < n; i++) {
        char b[64];
        snprintf(b, sizeof b, "img/%06zu.png", i);
        t->samples[i].path = strdup(b);
        if (pid) snprintf(b, sizeof b, "p%05d", pid[i]);
        t->samples[i].patient = strdup(b);
        t->samples[i].label = labels ? labels[i] : -1;
        t->samples[i].target = targets ? targets[i] : labels[i];
    }
}

static void check_partition(const split *s, int folds) {
    size_t ntr, nva, nte, ndev;
    for (int f = 0; f < folds; f++) {
        size_t *tr = split_indices(s, SPLIT_TRAIN, f, &ntr), *va = split_indices(s, SPLIT_VAL, f, &nva);
        size_t *te = split_indices(s, SPLIT_TEST, f, &nte), *dev = split_indices(s, SPLIT_DEV, f, &ndev);
        CHECK(ntr + nva == ndev && ndev + nte == s->n);
        char *seen = calloc(s->n, 1);
        for (size_t i = 0; i < ntr; i++) seen[tr[i]] |= 1;
        for (size_t i = 0; i < nva; i++) seen[va[i]] |= 2;
        for (size_t i = 0; i < nte; i++) seen[te[i]] |= 4;
        int bad = 0;
        for (size_t i = 0; i < s->n; i++) bad += seen[i] != 1 && seen[i] != 2 && seen[i] != 4;
        CHECK(bad == 0);
        free(seen); free(tr); free(va); free(te); free(dev);
    }
    for (size_t i = 0; i < s->n; i++) CHECK(s->fold[i] >= -1 && s->fold[i] < folds);
}

/* *s := split_make(t, test_frac, folds, seed) (CHECKed), then check_partition. */
static void split_checked(const task *t, double test_frac, int folds, uint64_t seed, split *s) {
    sx_err err;
    CHECK(split_make(t, test_frac, folds, seed, s, &err) == 0);
    check_partition(s, folds);
}

TEST(test_split_stratified) {
    enum { N = 523, K = 3 };
    int labels[N];
    sx_rng r;
    rng_seed(&r, 1);
    for (int i = 0; i < N; i++) { float u = rng_uniform(&r); labels[i] = u < 0.6f ? 0 : (u < 0.9f ? 1 : 2); }
    task t;
    fake_task(&t, TASK_MULTICLASS, K, N, labels, NULL, NULL);
    split s;
    split_checked(&t, 0.1, 5, 7, &s);
    size_t total[K] = {0}, test[K] = {0}, fold[5][K] = {{0}};
    for (int i = 0; i < N; i++) {
        total[labels[i]]++;
        if (s.fold[i] < 0) test[labels[i]]++;
        else fold[s.fold[i]][labels[i]]++;
    }
    for (int k = 0; k < K; k++) {
        double ideal = 0.1 * total[k];
        CHECKF(fabs(test[k] - ideal) <= 1, "class %d test %zu ideal %.1f", k, test[k], ideal);
        double fold_ideal = (double)(total[k] - test[k]) / 5;
        for (int f = 0; f < 5; f++)
            CHECKF(fabs(fold[f][k] - fold_ideal) <= 1, "class %d fold %d: %zu vs %.1f", k, f, fold[f][k], fold_ideal);
    }
    /* fold sizes overall within one of each other */
    size_t lo = N, hi = 0;
    for (int f = 0; f < 5; f++) {
        size_t m = fold[f][0] + fold[f][1] + fold[f][2];
        lo = m < lo ? m : lo;
        hi = m > hi ? m : hi;
    }
    CHECKF(hi - lo <= 1, "fold sizes %zu..%zu", lo, hi);
    split_free(&s);
    task_free(&t);
}

TEST(test_split_grouped_by_patient) {
    enum { N = 700 };
    int labels[N], pid[N], n = 0, p = 0;
    sx_rng r;
    rng_seed(&r, 2);
    while (n < N) {   /* patients with 1 to 4 images, mostly one label, sometimes mixed */
        int m = 1 + (int)rng_below(&r, 4), lab = rng_uniform(&r) < 0.3f;
        for (int j = 0; j < m && n < N; j++, n++) {
            pid[n] = p;
            labels[n] = rng_uniform(&r) < 0.1f ? !lab : lab;
        }
        p++;
    }
    /* shuffle the rows: grouping must not rely on adjacency */
    for (int i = N - 1; i > 0; i--) {
        int j = (int)rng_below(&r, (uint32_t)i + 1), a = labels[i], b = pid[i];
        labels[i] = labels[j]; pid[i] = pid[j]; labels[j] = a; pid[j] = b;
    }
    task t;
    fake_task(&t, TASK_BINARY, 2, N, labels, NULL, pid);
    split s;
    sx_err err;
    split_checked(&t, 0.1, 5, 11, &s);
    int *pfold = malloc(sizeof(int) * (size_t)p);
    for (int i = 0; i < p; i++) pfold[i] = -2;
    int conflicts = 0;
    for (int i = 0; i < N; i++) {
        if (pfold[pid[i]] == -2) pfold[pid[i]] = s.fold[i];
        else conflicts += pfold[pid[i]] != s.fold[i];
    }
    CHECKF(conflicts == 0, "%d images away from their patient's side", conflicts);
    /* stratified within a few images (groups of up to 4 move together) */
    size_t total[2] = {0}, test[2] = {0};
    for (int i = 0; i < N; i++) { total[labels[i]]++; test[labels[i]] += s.fold[i] < 0; }
    for (int k = 0; k < 2; k++) CHECKF(fabs(test[k] - 0.1 * total[k]) <= 6, "class %d: %zu of %zu", k, test[k], total[k]);
    /* the row order does not matter: reversing the task gives the same sides */
    task t2;
    int lr[N], pr[N];
    for (int i = 0; i < N; i++) { lr[i] = labels[N - 1 - i]; pr[i] = pid[N - 1 - i]; }
    fake_task(&t2, TASK_BINARY, 2, N, lr, NULL, pr);
    for (int i = 0; i < N; i++) {   /* same paths for the same rows */
        free(t2.samples[i].path);
        t2.samples[i].path = strdup(t.samples[N - 1 - i].path);
    }
    split s2;
    CHECK(split_make(&t2, 0.1, 5, 11, &s2, &err) == 0);
    CHECK(split_test_fingerprint(&t, &s) == split_test_fingerprint(&t2, &s2));
    split_free(&s2);
    task_free(&t2);
    free(pfold);
    split_free(&s);
    task_free(&t);
}

TEST(test_split_reproducible) {
    enum { N = 300 };
    int labels[N];
    for (int i = 0; i < N; i++) labels[i] = i % 7 == 0;
    task t;
    fake_task(&t, TASK_BINARY, 2, N, labels, NULL, NULL);
    split a, b, c, d;
    sx_err err;
    CHECK(split_make(&t, 0.1, 5, 42, &a, &err) == 0);
    CHECK(split_make(&t, 0.1, 5, 42, &b, &err) == 0);
    CHECK(split_make(&t, 0.1, 5, 43, &c, &err) == 0);
    CHECK(split_make(&t, 0.1, 10, 42, &d, &err) == 0);
    CHECK(memcmp(a.fold, b.fold, sizeof(int) * N) == 0);
    CHECK(memcmp(a.fold, c.fold, sizeof(int) * N) != 0);
    CHECK(split_test_fingerprint(&t, &a) != split_test_fingerprint(&t, &c));
    /* the number of folds does not change the test side */
    CHECK(split_test_fingerprint(&t, &a) == split_test_fingerprint(&t, &d));
    int same = 1;
    for (int i = 0; i < N; i++) same &= (a.fold[i] == -1) == (d.fold[i] == -1);
    CHECK(same);
    cJSON *j = split_to_json(&t, &a);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "images")) == N);
    const cJSON *fp = cJSON_GetObjectItem(j, "test_fingerprint");
    CHECK(cJSON_IsString(fp) && strlen(fp->valuestring) == 16);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "counts"), "fold4") != NULL);
    cJSON_Delete(j);
    split_free(&a); split_free(&b); split_free(&c); split_free(&d);
    task_free(&t);
}

TEST(test_split_regression_bins) {
    enum { N = 400 };
    double target[N];
    sx_rng r;
    rng_seed(&r, 3);
    for (int i = 0; i < N; i++) target[i] = 240.0 * rng_uniform(&r);
    task t;
    fake_task(&t, TASK_REGRESSION, 1, N, NULL, target, NULL);
    split s;
    sx_err err;
    split_checked(&t, 0.1, 5, 5, &s);
    /* every decile of the target has its share of test images (within one) */
    double sorted[N];
    memcpy(sorted, target, sizeof sorted);
    for (int i = 1; i < N; i++)
        for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) { double x = sorted[j]; sorted[j] = sorted[j - 1]; sorted[j - 1] = x; }
    for (int d = 0; d < 10; d++) {
        double lo = sorted[d * N / 10], hi = d == 9 ? 1e9 : sorted[(d + 1) * N / 10];
        int in = 0;
        for (int i = 0; i < N; i++) in += s.fold[i] == -1 && target[i] >= lo && target[i] < hi;
        CHECKF(in >= 3 && in <= 5, "decile %d: %d test images", d, in);
    }
    size_t *idx, n;
    CHECK(split_train_subset(&t, &s, 0, 0.25, 1, &idx, &n, &err) == 0);
    size_t ntr;
    free(split_indices(&s, SPLIT_TRAIN, 0, &ntr));
    CHECKF(n >= ntr / 4 - 5 && n <= ntr / 4 + 5, "%zu of %zu", n, ntr);
    free(idx);
    split_free(&s);
    task_free(&t);
}

TEST(test_split_label_fraction) {
    enum { N = 1000 };
    int labels[N];
    for (int i = 0; i < N; i++) labels[i] = i < 3 ? 2 : (i % 4 == 0);   /* class 2: only 3 images */
    task t;
    fake_task(&t, TASK_MULTICLASS, 3, N, labels, NULL, NULL);
    split s;
    sx_err err;
    CHECK(split_make(&t, 0.1, 5, 9, &s, &err) == 0);
    size_t ntr;
    size_t *train = split_indices(&s, SPLIT_TRAIN, 2, &ntr);
    size_t cls[3] = {0};
    for (size_t i = 0; i < ntr; i++) cls[labels[train[i]]]++;
    double fr[3] = {0.01, 0.1, 0.5};
    size_t *prev = NULL, nprev = 0;
    for (int q = 0; q < 3; q++) {
        size_t *idx, n, got[3] = {0};
        CHECK(split_train_subset(&t, &s, 2, fr[q], 77, &idx, &n, &err) == 0);
        for (size_t i = 0; i < n; i++) got[labels[idx[i]]]++;
        size_t want_total = 0;
        for (int k = 0; k < 3; k++) {
            size_t want = (size_t)floor(fr[q] * cls[k] + 0.5);
            if (!want && cls[k]) want = 1;   /* at least one per class */
            CHECKF(got[k] == want, "fraction %.2f class %d: %zu vs %zu", fr[q], k, got[k], want);
            want_total += want;
        }
        CHECK(n == want_total);
        /* inside the training part, ascending, and nested in the larger fraction */
        size_t j = 0, inside = 0;
        for (size_t i = 0; i < n; i++) {
            while (j < ntr && train[j] < idx[i]) j++;
            inside += j < ntr && train[j] == idx[i];
            if (i) CHECK(idx[i] > idx[i - 1]);
        }
        CHECK(inside == n);
        if (prev) {
            size_t a = 0, contained = 0;
            for (size_t i = 0; i < nprev; i++) {
                while (a < n && idx[a] < prev[i]) a++;
                contained += a < n && idx[a] == prev[i];
            }
            CHECK(contained == nprev);
        }
        free(prev);
        prev = idx;
        nprev = n;
    }
    /* another seed draws another subset; fraction 1 is the whole training part */
    size_t *a, na, *b, nb;
    CHECK(split_train_subset(&t, &s, 2, 0.1, 77, &a, &na, &err) == 0);
    CHECK(split_train_subset(&t, &s, 2, 0.1, 78, &b, &nb, &err) == 0);
    CHECK(na == nb && memcmp(a, b, na * sizeof *a) != 0);
    free(a); free(b);
    CHECK(split_train_subset(&t, &s, 2, 1.0, 1, &b, &nb, &err) == 0);
    CHECK(nb == ntr && memcmp(b, train, ntr * sizeof *b) == 0);
    free(b); free(prev); free(train);
    /* fold -1: every non-test sample */
    CHECK(split_train_subset(&t, &s, -1, 1.0, 1, &a, &na, &err) == 0);
    size_t ndev;
    free(split_indices(&s, SPLIT_DEV, 0, &ndev));
    CHECK(na == ndev);
    free(a);
    CHECK(split_train_subset(&t, &s, 2, 0.0, 1, &a, &na, &err) != 0 && strstr(err.msg, "label fraction"));
    CHECK(split_train_subset(&t, &s, 5, 0.5, 1, &a, &na, &err) != 0 && strstr(err.msg, "fold 5"));
    split_free(&s);
    task_free(&t);
}

TEST(test_split_errors) {
    int labels[6] = {0, 1, 0, 1, 0, 1}, pid[6] = {1, 1, 2, 2, 3, 3};
    task t;
    fake_task(&t, TASK_BINARY, 2, 6, labels, NULL, pid);
    split s;
    sx_err err;
    CHECK(split_make(&t, 0.1, 1, 0, &s, &err) != 0 && strstr(err.msg, "folds"));
    CHECK(split_make(&t, 0.95, 5, 0, &s, &err) != 0 && strstr(err.msg, "test fraction"));
    CHECK(split_make(&t, 0.1, 5, 0, &s, &err) != 0 && strstr(err.msg, "3 patient group(s)"));
    CHECK(split_make(&t, 0.0, 3, 0, &s, &err) == 0);
    size_t n;
    free(split_indices(&s, SPLIT_TEST, 0, &n));
    CHECK(n == 0);
    split_free(&s);
    task_free(&t);
}
