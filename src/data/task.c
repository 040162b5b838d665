/* task.c: the task file: reading it as strict JSON, validating its keys
 * into a task_spec (see task.h for the format), and the small queries on a
 * loaded task. Building the samples is samples.c's job; CSV is csv.c's. */
#include "data/task_spec.h"
#include "data/csv.h"
#include "core/json.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TASK_JSON_MAX ((size_t)1 << 20)       /* a task file is small */

/* ------------------------------------------------------------------ files */

int task_read_file(const char *path, size_t max, char **buf, size_t *len, sx_err *err) {
    uint64_t size;
    FILE *f = sx_fopen_input(path, &size, err);
    if (!f) return -1;
    if (size > max) { fclose(f); return sx_fail(err, "%s: larger than %zu bytes", path, max); }
    char *b = sx_malloc((size_t)size + 1);
    size_t n = fread(b, 1, (size_t)size, f);
    int bad = ferror(f) || n != size || fgetc(f) != EOF;   /* a file that changed while read */
    fclose(f);
    if (bad) { free(b); return sx_fail(err, "%s: read error (or the file changed while read)", path); }
    b[n] = 0;
    *buf = b;
    *len = n;
    return 0;
}

static int cmp_key(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* --------------------------------------------------------------- task spec */


void task_spec_free(task_spec *s) {
    free(s->image_dirs);
    free(s->class_folders);
    free(s->csv);
    free(s->classes);
}

/* A string, or an array of non-empty strings, into a new array. */
static int string_list(const cJSON *item, const char *key, const char *file, int allow_single, const char ***out,
                       int *n, sx_err *err) {
    if (allow_single && cJSON_IsString(item)) {
        *out = sx_malloc(sizeof(char *));
        (*out)[0] = item->valuestring;
        *n = 1;
        return 0;
    }
    if (!cJSON_IsArray(item)) return sx_fail(err, "%s: '%s' must be an array of strings", file, key);
    int m = cJSON_GetArraySize(item);
    if (m < 1 || m > TASK_CLASSES_MAX) return sx_fail(err, "%s: '%s' must have 1 to %d entries", file, key, TASK_CLASSES_MAX);
    *out = sx_malloc(sizeof(char *) * (size_t)m);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, item) {
        if (!cJSON_IsString(e)) { free(*out); *out = NULL; return sx_fail(err, "%s: '%s'[%d] is not a string", file, key, i); }
        (*out)[i++] = e->valuestring;
    }
    *n = m;
    return 0;
}

static int check_keys(const cJSON *root, const char *file, sx_err *err) {
    static const char *known[] = {"name", "description", "type", "image_root", "image_dirs", "class_folders", "csv",
                                  "csv_header", "image_column", "image_suffix", "study_dirs", "label_column",
                                  "label_columns", "label_map", "classes", "where", "patient_column",
                                  "patient_from", "invalid_labels"};
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        int ok = 0;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) ok |= strcmp(e->string, known[k]) == 0;
        if (!ok) return sx_fail(err, "%s: unknown key '%s'", file, e->string);
    }
    return 0;
}

static const char *opt_string(const cJSON *root, const char *key, const char *file, int *bad, sx_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) return NULL;
    if (!cJSON_IsString(v)) { *bad = 1; sx_fail(err, "%s: '%s' must be a string", file, key); return NULL; }
    return v->valuestring;
}

static int opt_bool(const cJSON *root, const char *key, int def, const char *file, int *out, sx_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) { *out = def; return 0; }
    if (!cJSON_IsBool(v)) return sx_fail(err, "%s: '%s' must be true or false", file, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* A column reference: a name (with a header) or a 0-based number (without). */
static int check_column(const cJSON *v, const char *key, int header, const char *file, sx_err *err) {
    if (header && !(cJSON_IsString(v) && *v->valuestring))
        return sx_fail(err, "%s: '%s' must be a column name", file, key);
    if (!header && !(cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < CSV_FIELDS_MAX &&
                     v->valuedouble == floor(v->valuedouble)))
        return sx_fail(err, "%s: '%s' must be a 0-based column number (csv_header is false)", file, key);
    return 0;
}

#define PATIENT_FROM_FORMS "{\"path_component_prefix\": \"...\"}, {\"name_chars\": 1..256} or " \
    "{\"name_before\": \"...\"} (optionally with \"ignore_case\": true)"

static int parse_patient_from(const cJSON *v, task_spec *s, const char *file, sx_err *err) {
    int n = cJSON_IsObject(v) ? cJSON_GetArraySize(v) : 0;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(v, "path_component_prefix");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "name_chars");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(v, "name_before");
    const cJSON *ic = cJSON_GetObjectItemCaseSensitive(v, "ignore_case");
    if (n == 1 && cJSON_IsString(p) && *p->valuestring) { s->patient_prefix = p->valuestring; return 0; }
    if (n == 1 && cJSON_IsNumber(c) && c->valuedouble >= 1 && c->valuedouble <= 256 &&
        c->valuedouble == floor(c->valuedouble)) {
        s->patient_name_chars = (int)c->valuedouble;
        return 0;
    }
    if (cJSON_IsString(b) && *b->valuestring && !strchr(b->valuestring, '/') &&
        (n == 1 || (n == 2 && cJSON_IsBool(ic)))) {
        s->patient_before = b->valuestring;
        s->patient_before_icase = ic && cJSON_IsTrue(ic);
        return 0;
    }
    return sx_fail(err, "%s: 'patient_from' must be " PATIENT_FROM_FORMS, file);
}

static int check_classes(const task_spec *s, const char *file, sx_err *err) {
    if (s->type == TASK_BINARY && s->n_classes != 2)
        return sx_fail(err, "%s: a binary task needs exactly 2 classes, got %d", file, s->n_classes);
    if (s->n_classes < 2) return sx_fail(err, "%s: a %s task needs at least 2 classes", file, task_type_name(s->type));
    for (int i = 0; i < s->n_classes; i++) {
        if (!*s->classes[i]) return sx_fail(err, "%s: class %d has an empty name", file, i);
        for (int j = 0; j < i; j++)
            if (strcmp(s->classes[i], s->classes[j]) == 0)
                return sx_fail(err, "%s: class '%s' is listed twice", file, s->classes[i]);
    }
    return 0;
}

/* Keys that only make sense with a CSV. */
static int reject_csv_keys(const cJSON *root, const char *file, sx_err *err) {
    static const char *keys[] = {"csv_header", "image_column", "image_suffix", "study_dirs", "label_column",
                                 "label_columns", "label_map", "classes", "where", "patient_column",
                                 "invalid_labels"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        if (cJSON_GetObjectItemCaseSensitive(root, keys[k]))
            return sx_fail(err, "%s: '%s' applies to csv tasks, not to class_folders", file, keys[k]);
    return 0;
}

static int parse_csv_spec(const cJSON *root, task_spec *s, const char *file, sx_err *err) {
    if (string_list(cJSON_GetObjectItemCaseSensitive(root, "csv"), "csv", file, 1, &s->csv, &s->n_csv, err)) return -1;
    if (opt_bool(root, "csv_header", 1, file, &s->csv_header, err)) return -1;
    if (opt_bool(root, "study_dirs", 0, file, &s->study_dirs, err)) return -1;
    int bad = 0;
    s->image_suffix = opt_string(root, "image_suffix", file, &bad, err);
    if (bad) return -1;
    const char *inv = opt_string(root, "invalid_labels", file, &bad, err);
    if (bad) return -1;
    if (inv && strcmp(inv, "skip") != 0 && strcmp(inv, "error") != 0)
        return sx_fail(err, "%s: 'invalid_labels' must be \"error\" or \"skip\"", file);
    s->skip_invalid = inv && strcmp(inv, "skip") == 0;
    s->image_column = cJSON_GetObjectItemCaseSensitive(root, "image_column");
    s->label_column = cJSON_GetObjectItemCaseSensitive(root, "label_column");
    s->label_columns = cJSON_GetObjectItemCaseSensitive(root, "label_columns");
    s->patient_column = cJSON_GetObjectItemCaseSensitive(root, "patient_column");
    s->label_map = cJSON_GetObjectItemCaseSensitive(root, "label_map");
    s->where = cJSON_GetObjectItemCaseSensitive(root, "where");
    if (!s->image_column) return sx_fail(err, "%s: a csv task needs 'image_column'", file);
    if (check_column(s->image_column, "image_column", s->csv_header, file, err)) return -1;
    if (!s->label_column == !s->label_columns)
        return sx_fail(err, "%s: give exactly one of 'label_column' and 'label_columns'", file);
    if (s->label_column && check_column(s->label_column, "label_column", s->csv_header, file, err)) return -1;
    if (s->patient_column && check_column(s->patient_column, "patient_column", s->csv_header, file, err)) return -1;
    if (s->patient_column && task_spec_has_patient_from(s))
        return sx_fail(err, "%s: give at most one of 'patient_column' and 'patient_from'", file);
    if (s->where) {
        if (!cJSON_IsObject(s->where)) return sx_fail(err, "%s: 'where' must be an object: column -> value(s)", file);
        const cJSON *w;
        cJSON_ArrayForEach(w, s->where) {
            if (!s->csv_header) return sx_fail(err, "%s: 'where' needs named columns (csv_header true)", file);
            int ok = cJSON_IsString(w) || cJSON_IsNumber(w);
            if (cJSON_IsArray(w)) {
                ok = cJSON_GetArraySize(w) > 0;
                const cJSON *x;
                cJSON_ArrayForEach(x, w) ok &= cJSON_IsString(x) || cJSON_IsNumber(x);
            }
            if (!ok) return sx_fail(err, "%s: 'where'.'%s' must be a string, a number or an array of them", file, w->string);
        }
    }
    if (s->type == TASK_REGRESSION) {
        static const char *no[] = {"label_columns", "label_map", "classes"};
        for (size_t k = 0; k < 3; k++)
            if (cJSON_GetObjectItemCaseSensitive(root, no[k]))
                return sx_fail(err, "%s: '%s' does not apply to a regression task", file, no[k]);
        return 0;
    }
    if (s->label_map) {
        if (!cJSON_IsObject(s->label_map)) return sx_fail(err, "%s: 'label_map' must be an object: text -> class", file);
        const cJSON *m;
        cJSON_ArrayForEach(m, s->label_map)
            if (!cJSON_IsString(m)) return sx_fail(err, "%s: 'label_map'.'%s' must be a class name", file, m->string);
    }
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(root, "classes");
    if (cl) {
        if (string_list(cl, "classes", file, 0, &s->classes, &s->n_classes, err)) return -1;
    } else if (s->type == TASK_BINARY) {
        static const char *def[] = {"0", "1"};
        s->classes = sx_malloc(sizeof def);
        memcpy(s->classes, def, sizeof def);
        s->n_classes = 2;
    } else {
        return sx_fail(err, "%s: a %s csv task needs 'classes'", file, task_type_name(s->type));
    }
    if (s->label_columns) {
        if (!cJSON_IsArray(s->label_columns) || cJSON_GetArraySize(s->label_columns) != s->n_classes)
            return sx_fail(err, "%s: 'label_columns' must be an array with one entry per class (%d)", file, s->n_classes);
        int nulls = 0, i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, s->label_columns) {
            if (cJSON_IsNull(c)) { nulls++; i++; continue; }
            char key[48];
            snprintf(key, sizeof key, "label_columns[%d]", i++);
            if (check_column(c, key, s->csv_header, file, err)) return -1;
        }
        if (nulls > 1) return sx_fail(err, "%s: at most one entry of 'label_columns' may be null", file);
        if (s->label_map) return sx_fail(err, "%s: 'label_map' applies to 'label_column', not 'label_columns'", file);
    }
    return 0;
}

int task_spec_parse(const cJSON *root, task_spec *s, const char *file, sx_err *err) {
    memset(s, 0, sizeof *s);
    if (!cJSON_IsObject(root)) return sx_fail(err, "%s: not a JSON object", file);
    if (check_keys(root, file, err)) return -1;
    int bad = 0;
    s->name = opt_string(root, "name", file, &bad, err);
    if (bad) return -1;
    s->description = opt_string(root, "description", file, &bad, err);
    if (bad) return -1;
    const char *type = opt_string(root, "type", file, &bad, err);
    if (bad) return -1;
    s->image_root = opt_string(root, "image_root", file, &bad, err);
    if (bad) return -1;
    if (!s->name || !*s->name) return sx_fail(err, "%s: missing 'name'", file);
    if (!type) return sx_fail(err, "%s: missing 'type'", file);
    if (task_type_parse(type, &s->type))
        return sx_fail(err, "%s: unknown type '%s' (expected binary, multiclass, ordinal or regression)", file, type);
    if (!s->image_root) return sx_fail(err, "%s: missing 'image_root'", file);
    const cJSON *dirs = cJSON_GetObjectItemCaseSensitive(root, "image_dirs");
    if (dirs && string_list(dirs, "image_dirs", file, 0, &s->image_dirs, &s->n_image_dirs, err)) return -1;
    const cJSON *pf = cJSON_GetObjectItemCaseSensitive(root, "patient_from");
    if (pf && parse_patient_from(pf, s, file, err)) return -1;
    const cJSON *cf = cJSON_GetObjectItemCaseSensitive(root, "class_folders");
    const cJSON *csv = cJSON_GetObjectItemCaseSensitive(root, "csv");
    if (!cf == !csv) return sx_fail(err, "%s: give exactly one of 'class_folders' and 'csv'", file);
    if (cf) {
        if (s->type == TASK_REGRESSION) return sx_fail(err, "%s: a regression task needs a csv, not class_folders", file);
        if (reject_csv_keys(root, file, err)) return -1;
        if (string_list(cf, "class_folders", file, 0, &s->class_folders, &s->n_class_folders, err)) return -1;
        s->classes = sx_malloc(sizeof(char *) * (size_t)s->n_class_folders);
        memcpy(s->classes, s->class_folders, sizeof(char *) * (size_t)s->n_class_folders);
        s->n_classes = s->n_class_folders;
        for (int i = 0; i < s->n_classes; i++)
            if (strchr(s->classes[i], '/') || strcmp(s->classes[i], "..") == 0)
                return sx_fail(err, "%s: class folder '%s' must be a plain folder name", file, s->classes[i]);
        return check_classes(s, file, err);
    }
    if (parse_csv_spec(root, s, file, err)) return -1;
    return s->type == TASK_REGRESSION ? 0 : check_classes(s, file, err);
}
/* ------------------------------------------------------------------ public */

int task_load_flags(const char *task_json, const char *data_root, unsigned flags, task *t, sx_err *err) {
    memset(t, 0, sizeof *t);
    char *text;
    size_t len;
    if (task_read_file(task_json, TASK_JSON_MAX, &text, &len, err)) return -1;
    cJSON *root = sx_json_parse(text, len, task_json, err);  /* strict: trailing text, NUL, duplicate keys */
    free(text);
    if (!root) return -1;
    task_spec sp;
    int rc = task_spec_parse(root, &sp, task_json, err);
    if (!rc) rc = samples_build(&sp, task_json, data_root, flags, t, err);
    task_spec_free(&sp);
    cJSON_Delete(root);
    return rc;
}

int task_load(const char *task_json, const char *data_root, task *t, sx_err *err) {
    return task_load_flags(task_json, data_root, 0, t, err);
}

void task_free(task *t) {
    if (!t) return;
    free(t->name);
    free(t->description);
    free(t->data_root);
    for (int k = 0; k < t->n_classes && t->class_names; k++) free(t->class_names[k]);
    free(t->class_names);
    for (size_t i = 0; i < t->n; i++) { free(t->samples[i].path); free(t->samples[i].patient); }
    free(t->samples);
    memset(t, 0, sizeof *t);
}

const char *task_type_name(task_type type) {
    switch (type) {
    case TASK_BINARY: return "binary";
    case TASK_MULTICLASS: return "multiclass";
    case TASK_ORDINAL: return "ordinal";
    case TASK_REGRESSION: return "regression";
    }
    return "?";
}

int task_type_parse(const char *s, task_type *out) {
    for (int k = TASK_BINARY; k <= TASK_REGRESSION; k++)
        if (strcmp(s, task_type_name((task_type)k)) == 0) { *out = (task_type)k; return 0; }
    return -1;
}

int task_same_labels(const task *a, const task *b, sx_err *err) {
    if (a->type != b->type)
        return sx_fail(err, "task '%s' is %s but task '%s' is %s: the label spaces differ", b->name,
                       task_type_name(b->type), a->name, task_type_name(a->type));
    if (a->type == TASK_REGRESSION) return 0;
    if (a->n_classes != b->n_classes)
        return sx_fail(err, "task '%s' has %d classes but task '%s' has %d: the label spaces differ", b->name,
                       b->n_classes, a->name, a->n_classes);
    for (int k = 0; k < a->n_classes; k++)
        if (strcmp(a->class_names[k], b->class_names[k]))
            return sx_fail(err, "class %d of task '%s' is '%s' but of task '%s' is '%s': the label spaces differ "
                           "(same class names in the same order)", k, b->name, b->class_names[k], a->name,
                           a->class_names[k]);
    return 0;
}

void task_class_counts(const task *t, size_t *counts) {
    memset(counts, 0, sizeof(size_t) * (size_t)t->n_classes);
    if (t->type == TASK_REGRESSION) { counts[0] = t->n; return; }
    for (size_t i = 0; i < t->n; i++) counts[t->samples[i].label]++;
}

size_t task_patient_count(const task *t) {
    if (!t->n) return 0;
    char **p = sx_malloc(sizeof(char *) * t->n);
    for (size_t i = 0; i < t->n; i++) p[i] = t->samples[i].patient;
    qsort(p, t->n, sizeof *p, cmp_key);
    size_t k = 1;
    for (size_t i = 1; i < t->n; i++) k += strcmp(p[i], p[i - 1]) != 0;
    free(p);
    return k;
}

const char *task_rel_path(const task *t, size_t i) {
    const char *p = t->samples[i].path, *r = t->data_root;
    size_t n = r ? strlen(r) : 0;
    while (n > 1 && r[n - 1] == '/') n--;
    if (!n || strncmp(p, r, n) != 0) return p;
    if (p[n] == '/') return p + n + 1;
    if (n == 1 && r[0] == '/') return p + 1;
    return p;
}
