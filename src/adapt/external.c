/* external.c: checks and reporting for external test sets (external.h). */
#include "adapt/external.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct { dev_t dev; ino_t ino; size_t i; int side; } file_id;

static int cmp_id(const void *a, const void *b) {
    const file_id *x = a, *y = b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return x->side - y->side;
}

int external_check(const task *t, const task *ext, sx_err *err) {
    if (task_same_labels(t, ext, err)) return -1;
    size_t n = t->n + ext->n, m = 0;
    file_id *ids = sx_malloc(sizeof *ids * (n ? n : 1));
    for (int side = 0; side < 2; side++) {
        const task *x = side ? ext : t;
        for (size_t i = 0; i < x->n; i++) {
            struct stat st;
            if (stat(x->samples[i].path, &st) == 0) ids[m++] = (file_id){st.st_dev, st.st_ino, i, side};
        }
    }
    qsort(ids, m, sizeof *ids, cmp_id);
    size_t shared = 0, first = 0;
    for (size_t k = 1; k < m; k++)
        if (ids[k].side && !ids[k - 1].side && ids[k].dev == ids[k - 1].dev && ids[k].ino == ids[k - 1].ino)
            if (!shared++) first = ids[k].i;
    free(ids);
    if (shared)
        return sx_fail(err, "external task '%s' shares %zu image file(s) with task '%s' (e.g. %s): an external test "
                       "set must be disjoint", ext->name, shared, t->name, ext->samples[first].path);
    return 0;
}

size_t *external_indices(const task *ext) {
    size_t *idx = sx_malloc(sizeof(size_t) * (ext->n ? ext->n : 1));
    for (size_t i = 0; i < ext->n; i++) idx[i] = i;
    return idx;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The distinct patient ids of x, sorted; *m gets the count. */
static char **patient_ids(const task *x, size_t *m) {
    char **v = sx_malloc(sizeof(char *) * (x->n ? x->n : 1));
    for (size_t i = 0; i < x->n; i++) v[i] = x->samples[i].patient;
    qsort(v, x->n, sizeof *v, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < x->n; i++)
        if (!k || strcmp(v[i], v[k - 1])) v[k++] = v[i];
    *m = k;
    return v;
}

size_t external_shared_patients(const task *t, const task *ext) {
    if (!t->has_patients || !ext->has_patients) return 0;
    size_t na, nb, i = 0, j = 0, shared = 0;
    char **a = patient_ids(t, &na), **b = patient_ids(ext, &nb);
    while (i < na && j < nb) {
        int c = strcmp(a[i], b[j]);
        if (!c) shared++;
        i += c <= 0;
        j += c >= 0;
    }
    free(a);
    free(b);
    return shared;
}

void external_note(FILE *f, const char *cmd, const task *t, const task *ext) {
    if (!f) return;
    fprintf(f, "%s: external task %s, %zu images\n", cmd, ext->name, ext->n);
    size_t shared = external_shared_patients(t, ext);
    if (shared)
        fprintf(f, "%s: warning: the external task shares %zu patient id(s) with task %s: it is not independent\n", cmd,
                shared, t->name);
}

cJSON *external_info(const task *t, const task *ext) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", ext->name);
    cJSON_AddStringToObject(o, "data_root", ext->data_root ? ext->data_root : "");
    cJSON_AddNumberToObject(o, "images", (double)ext->n);
    if (task_is_classification(ext)) {
        size_t *c = sx_malloc(sizeof(size_t) * (size_t)ext->n_classes);
        task_class_counts(ext, c);
        cJSON *a = cJSON_AddArrayToObject(o, "class_counts");
        for (int k = 0; k < ext->n_classes; k++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)c[k]));
        free(c);
    }
    cJSON_AddNumberToObject(o, "patients", (double)task_patient_count(ext));
    if (t->has_patients && ext->has_patients)
        cJSON_AddNumberToObject(o, "shared_patients", (double)external_shared_patients(t, ext));
    return o;
}

void external_of(cJSON *const *per_fold, int n, cJSON **ext) {
    for (int i = 0; i < n; i++) ext[i] = per_fold[i] ? cJSON_GetObjectItemCaseSensitive(per_fold[i], "external") : NULL;
}

static void cell(FILE *f, const cJSON *sum, const char *key) {
    const cJSON *e = sum ? cJSON_GetObjectItemCaseSensitive(sum, key) : NULL;
    const cJSON *mean = e ? cJSON_GetObjectItemCaseSensitive(e, "mean") : NULL, *sd = e ? cJSON_GetObjectItemCaseSensitive(e, "sd") : NULL;
    char buf[64];
    if (cJSON_IsNumber(mean) && cJSON_IsNumber(sd)) snprintf(buf, sizeof buf, "%.4f ± %.4f", mean->valuedouble, sd->valuedouble);
    else snprintf(buf, sizeof buf, "-");
    fprintf(f, " %-18s", buf);
}

void external_table(FILE *f, const char *title, const cJSON *test, const cJSON *ext) {
    if (!f || !test) return;
    fprintf(f, "%s (mean ± SD over folds)\n%-18s %-18s%s\n", title, "metric", "test", ext ? " external" : "");
    for (const cJSON *e = test->child; e; e = e->next) {
        fprintf(f, "%-18s", e->string);
        cell(f, test, e->string);
        if (ext) cell(f, ext, e->string);
        fprintf(f, "\n");
    }
    fflush(f);
}
