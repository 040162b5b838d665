/* samples.c: a parsed task spec -> the task's samples: the image folders
 * resolved against the data root, class folders scanned (data.c's
 * directory scan), CSV rows (csv.c) filtered, labelled and located on disk,
 * patients derived, and the result checked (no duplicates, no empty class).
 * What it does not do: parse the task JSON (task.c), open or decode images,
 * or split them (split.c). */
#include "data/task_spec.h"
#include "data/csv.h"
#include "data/data.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MISSING_SHOWN 5

/* ------------------------------------------------------------------ helpers */

typedef struct { char **v; size_t n, cap; } strvec;

static void sv_push(strvec *s, char *str) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        char **v = sx_malloc(cap * sizeof *v);
        if (s->n) memcpy(v, s->v, s->n * sizeof *v);
        free(s->v);
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = str;
}

static void sv_free(strvec *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    *s = (strvec){0};
}

/* a/b; b when b is absolute or a is empty. */
static char *join_path(const char *a, const char *b) {
    if (!a || !*a || b[0] == '/') return sx_strdup(b);
    if (!*b) return sx_strdup(a);
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/') la--;
    int sep = a[la - 1] != '/';  /* only "/" itself still ends in '/' */
    char *p = sx_malloc(la + lb + 2);
    memcpy(p, a, la);
    if (sep) p[la] = '/';
    memcpy(p + la + sep, b, lb + 1);
    return p;
}

static int is_dir(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISDIR(st.st_mode); }
static int is_file(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISREG(st.st_mode); }

/* Trim blanks (space, tab) at both ends, in place. */
static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = 0;
    return s;
}

/* A whole string that is a finite number (surrounding blanks allowed). */
static int parse_num(const char *s, double *v) {
    while (*s == ' ' || *s == '\t') s++;
    if (!*s) return 0;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || errno == ERANGE || !isfinite(x)) return 0;
    while (*end == ' ' || *end == '\t') end++;
    if (*end) return 0;
    *v = x;
    return 1;
}

/* Equal as text, or both numbers and numerically equal ("1.0" == "1"). */
static int cell_equals(const char *cell, const char *want) {
    if (strcmp(cell, want) == 0) return 1;
    double a, b;
    return parse_num(cell, &a) && parse_num(want, &b) && a == b;
}

/* Images under dir, recursively (dataset_add_dir's rules: names starting
 * with '.' skipped, links to folders not followed), appended to out in
 * strcmp order; only regular files (a link is followed to one) are kept. */
static int scan_images(const char *dir, strvec *out, sx_err *err) {
    dataset ds;
    dataset_init(&ds);
    int rc = dataset_add_dir(&ds, dir, err);
    if (!rc && ds.unreadable_dirs)   /* a task never runs on part of a folder */
        rc = sx_fail(err, "%s: %zu sub-folder(s) cannot be read", dir, ds.unreadable_dirs);
    for (size_t i = 0; !rc && i < dataset_count(&ds); i++)
        if (is_file(dataset_path(&ds, i))) sv_push(out, sx_strdup(dataset_path(&ds, i)));
    dataset_free(&ds);
    return rc;
}

/* ------------------------------------------------------------ building */

typedef struct {
    const task_spec *spec;
    const char *file;        /* the task file, for messages */
    char *root;              /* data root + image root */
    char **bases;            /* the folders images are looked up in */
    int n_bases;
    task_sample *s;
    size_t n, cap;
    size_t n_missing;        /* images (or studies) not found */
    size_t n_invalid;        /* rows skipped for their label */
    strvec missing;          /* the first MISSING_SHOWN of them */
    unsigned flags;
} builder;

static void add_sample(builder *b, const char *path, const char *patient, int label, double target) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 1024;
        task_sample *s = sx_malloc(cap * sizeof *s);
        if (b->n) memcpy(s, b->s, b->n * sizeof *s);
        free(b->s);
        b->s = s;
        b->cap = cap;
    }
    b->s[b->n++] = (task_sample){sx_strdup(path), sx_strdup(patient ? patient : path), label, target};
}

static void note_missing(builder *b, const char *what) {
    if (b->missing.n < MISSING_SHOWN) sv_push(&b->missing, sx_strdup(what));
    b->n_missing++;
}

/* "a, b, c" of the noted missing entries into buf. */
static void missing_list(const builder *b, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < b->missing.n && used + 1 < cap; i++) {
        int w = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", b->missing.v[i]);
        if (w < 0) break;
        used += (size_t)w < cap - used ? (size_t)w : cap - used - 1;
    }
}

/* Patient id of an image from its path below the image folder (rel). */
static int derive_patient(const task_spec *sp, const char *rel, char *out, size_t cap, sx_err *err) {
    if (sp->patient_prefix) {
        size_t pl = strlen(sp->patient_prefix);
        for (const char *c = rel; *c;) {
            const char *slash = strchr(c, '/');
            size_t len = slash ? (size_t)(slash - c) : strlen(c);
            if (len >= pl && strncmp(c, sp->patient_prefix, pl) == 0) {
                if (len >= cap) break;
                memcpy(out, c, len);
                out[len] = 0;
                return 0;
            }
            if (!slash) break;
            c = slash + 1;
        }
        return sx_fail(err, "%s: no path component starts with '%s' (patient_from)", rel, sp->patient_prefix);
    }
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    if (sp->patient_before) {
        size_t ml = strlen(sp->patient_before), bl = strlen(base);
        for (size_t i = 1; i + ml <= bl; i++) {   /* i >= 1: the id is never empty */
            int hit = sp->patient_before_icase ? !strncasecmp(base + i, sp->patient_before, ml)
                                               : !strncmp(base + i, sp->patient_before, ml);
            if (!hit) continue;
            if (i >= cap) break;
            memcpy(out, base, i);
            out[i] = 0;
            return 0;
        }
        return sx_fail(err, "%s: the file name has no '%s' after its first character (patient_from name_before%s)",
                       rel, sp->patient_before, sp->patient_before_icase ? ", ignore_case" : "");
    }
    size_t want = (size_t)sp->patient_name_chars;
    if (strlen(base) < want || want >= cap)
        return sx_fail(err, "%s: file name shorter than %zu characters (patient_from)", rel, want);
    memcpy(out, base, want);
    out[want] = 0;
    return 0;
}

static int build_bases(builder *b, const char *data_root, sx_err *err) {
    const task_spec *sp = b->spec;
    b->root = join_path(data_root, sp->image_root);
    if (!is_dir(b->root))
        return sx_fail(err, "task %s: image root %s is missing or not a folder (data root '%s')", sp->name, b->root,
                       data_root && *data_root ? data_root : ".");
    b->n_bases = sp->n_image_dirs ? sp->n_image_dirs : 1;
    b->bases = sx_calloc((size_t)b->n_bases, sizeof(char *));
    if (!sp->n_image_dirs) { b->bases[0] = sx_strdup(b->root); return 0; }
    for (int i = 0; i < sp->n_image_dirs; i++) {
        b->bases[i] = join_path(b->root, sp->image_dirs[i]);
        if (!is_dir(b->bases[i])) note_missing(b, b->bases[i]);
    }
    if (b->n_missing) {
        char list[300];
        missing_list(b, list, sizeof list);
        return sx_fail(err, "task %s: %zu image folder(s) missing: %s", sp->name, b->n_missing, list);
    }
    return 0;
}

static int build_class_folders(builder *b, sx_err *err) {
    const task_spec *sp = b->spec;
    strvec files = {0};
    char patient[512];
    for (int k = 0; k < sp->n_class_folders; k++) {
        for (int d = 0; d < b->n_bases; d++) {
            char *dir = join_path(b->bases[d], sp->class_folders[k]);
            if (!is_dir(dir)) { note_missing(b, dir); free(dir); continue; }
            size_t start = files.n;
            if (scan_images(dir, &files, err)) { free(dir); sv_free(&files); return -1; }
            size_t dl = strlen(dir);
            for (size_t i = start; i < files.n; i++) {
                const char *rel = files.v[i] + dl + 1;
                const char *pid = NULL;
                if (task_spec_has_patient_from(sp)) {
                    if (derive_patient(sp, rel, patient, sizeof patient, err)) { free(dir); sv_free(&files); return -1; }
                    pid = patient;
                }
                add_sample(b, files.v[i], pid, k, k);
            }
            free(dir);
        }
    }
    sv_free(&files);
    if (b->n_missing) {
        char list[300];
        missing_list(b, list, sizeof list);
        return sx_fail(err, "task %s: %zu class folder(s) missing: %s", sp->name, b->n_missing, list);
    }
    return 0;
}

/* Column references resolved to field indices for one CSV file. */
typedef struct {
    size_t image, label, patient, need;   /* need: fields a row must have */
    size_t *labels;                       /* label_columns; SIZE_MAX for the null entry */
    size_t *where;                        /* one per 'where' entry */
    int n_where;
} csv_cols;

static int find_column(const cJSON *ref, const csv_reader *hdr, const char *key, size_t *out, sx_err *err) {
    if (!hdr) { *out = (size_t)ref->valuedouble; return 0; }
    for (size_t k = 0; k < csv_nfields(hdr); k++)
        if (strcmp(trim(csv_field(hdr, k)), ref->valuestring) == 0) { *out = k; return 0; }
    return sx_fail(err, "%s: no column '%s' (%s) in the header", hdr->name, ref->valuestring, key);
}

static int resolve_columns(const task_spec *sp, const csv_reader *hdr, csv_cols *c, sx_err *err) {
    memset(c, 0, sizeof *c);
    c->patient = SIZE_MAX;
    if (find_column(sp->image_column, hdr, "image_column", &c->image, err)) return -1;
    c->need = c->image;
    if (sp->label_column) {
        if (find_column(sp->label_column, hdr, "label_column", &c->label, err)) return -1;
        if (c->label > c->need) c->need = c->label;
    } else {
        c->labels = sx_malloc(sizeof(size_t) * (size_t)sp->n_classes);
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, sp->label_columns) {
            c->labels[i] = SIZE_MAX;
            if (!cJSON_IsNull(e)) {
                if (find_column(e, hdr, "label_columns", &c->labels[i], err)) return -1;
                if (c->labels[i] > c->need) c->need = c->labels[i];
            }
            i++;
        }
    }
    if (sp->patient_column) {
        if (find_column(sp->patient_column, hdr, "patient_column", &c->patient, err)) return -1;
        if (c->patient > c->need) c->need = c->patient;
    }
    if (sp->where) {
        c->n_where = cJSON_GetArraySize(sp->where);
        c->where = sx_malloc(sizeof(size_t) * (size_t)(c->n_where ? c->n_where : 1));
        int i = 0;
        const cJSON *w;
        cJSON_ArrayForEach(w, sp->where) {
            cJSON ref = {.type = cJSON_String, .valuestring = w->string};
            if (find_column(&ref, hdr, "where", &c->where[i], err)) return -1;
            if (c->where[i] > c->need) c->need = c->where[i];
            i++;
        }
    }
    c->need++;
    return 0;
}

static void cols_free(csv_cols *c) { free(c->labels); free(c->where); }

static int where_keeps(const task_spec *sp, const csv_cols *c, const csv_reader *r) {
    int i = 0;
    const cJSON *w;
    cJSON_ArrayForEach(w, sp->where) {
        const char *cell = trim(csv_field(r, c->where[i++]));
        int any = 0;
        const cJSON *one = cJSON_IsArray(w) ? w->child : w;
        for (; one && !any; one = cJSON_IsArray(w) ? one->next : NULL) {
            if (cJSON_IsString(one)) any = cell_equals(cell, one->valuestring);
            else { double v; any = parse_num(cell, &v) && v == one->valuedouble; }
        }
        if (!any) return 0;
    }
    return 1;
}

static int truthy(const char *cell, int *out) {
    double v;
    if (!*cell) { *out = 0; return 0; }
    if (parse_num(cell, &v)) { *out = v != 0; return 0; }
    if (!strcasecmp(cell, "true") || !strcasecmp(cell, "yes")) { *out = 1; return 0; }
    if (!strcasecmp(cell, "false") || !strcasecmp(cell, "no")) { *out = 0; return 0; }
    return -1;
}

/* The row's label (classification) or target (regression). -1: a malformed
 * cell; -2: a well-formed row whose label is not one of the classes. */
static int row_label(const task_spec *sp, const csv_cols *c, const csv_reader *r, int *label, double *target, sx_err *err) {
    if (sp->type == TASK_REGRESSION) {
        const char *cell = trim(csv_field(r, c->label));
        if (!parse_num(cell, target)) {
            sx_fail(err, "%s:%zu: target '%.40s' is not a number", r->name, csv_line(r), cell);
            return -2;
        }
        *label = -1;
        return 0;
    }
    if (sp->label_column) {
        const char *cell = trim(csv_field(r, c->label)), *name = cell;
        const cJSON *m = sp->label_map ? cJSON_GetObjectItemCaseSensitive(sp->label_map, cell) : NULL;
        if (!m && sp->label_map) {
            const cJSON *e;
            cJSON_ArrayForEach(e, sp->label_map) if (!m && cell_equals(cell, e->string)) m = e;
        }
        if (m) name = m->valuestring;
        for (int k = 0; k < sp->n_classes; k++)
            if (strcmp(name, sp->classes[k]) == 0) { *label = k; *target = k; return 0; }
        for (int k = 0; k < sp->n_classes; k++)
            if (cell_equals(name, sp->classes[k])) { *label = k; *target = k; return 0; }
        sx_fail(err, "%s:%zu: label '%.40s' is not one of the %d classes (%s, ...)", r->name, csv_line(r), cell,
                sp->n_classes, sp->classes[0]);
        return -2;
    }
    int found = -1, none = -1;
    for (int k = 0; k < sp->n_classes; k++) {
        if (c->labels[k] == SIZE_MAX) { none = k; continue; }
        const char *cell = trim(csv_field(r, c->labels[k]));
        int on;
        if (truthy(cell, &on))
            return sx_fail(err, "%s:%zu: '%.40s' in label column %d is not 0/1", r->name, csv_line(r), cell, k);
        if (!on) continue;
        if (found >= 0) {
            sx_fail(err, "%s:%zu: more than one label column is set (classes '%s' and '%s')", r->name, csv_line(r),
                    sp->classes[found], sp->classes[k]);
            return -2;
        }
        found = k;
    }
    if (found < 0) found = none;
    if (found < 0) {
        sx_fail(err, "%s:%zu: none of the label columns is set", r->name, csv_line(r));
        return -2;
    }
    *label = found;
    *target = found;
    return 0;
}

/* The one base folder holding rel (a file or, for studies, a folder).
 * 0 found (*path set), 1 missing, -1 ambiguous (err set). */
static int locate(builder *b, const char *rel, int want_dir, char **path, sx_err *err) {
    *path = NULL;
    if (rel[0] == '/') {
        if (want_dir ? is_dir(rel) : is_file(rel)) { *path = sx_strdup(rel); return 0; }
        return 1;
    }
    for (int d = 0; d < b->n_bases; d++) {
        char *p = join_path(b->bases[d], rel);
        if (!(want_dir ? is_dir(p) : is_file(p))) { free(p); continue; }
        if (*path) {
            int rc = sx_fail(err, "task %s: %s is found in both %s and %s; which one is meant is ambiguous",
                             b->spec->name, rel, *path, p);
            free(p);
            free(*path);
            *path = NULL;
            return rc;
        }
        *path = p;
    }
    return *path ? 0 : 1;
}

static int add_row(builder *b, const csv_cols *c, const csv_reader *r, sx_err *err) {
    const task_spec *sp = b->spec;
    if (sp->where && !where_keeps(sp, c, r)) return 0;
    int label = -1;
    double target = 0;
    int lr = row_label(sp, c, r, &label, &target, err);
    if (lr == -2 && sp->skip_invalid) { b->n_invalid++; return 0; }
    if (lr) return -1;
    const char *pid = NULL;
    if (c->patient != SIZE_MAX) {
        pid = trim(csv_field(r, c->patient));
        if (!*pid) return sx_fail(err, "%s:%zu: empty patient id", r->name, csv_line(r));
    }
    const char *cell = trim(csv_field(r, c->image));
    if (!*cell) return sx_fail(err, "%s:%zu: empty image cell", r->name, csv_line(r));
    const char *suffix = sp->image_suffix ? sp->image_suffix : "";
    size_t lc = strlen(cell), ls = strlen(suffix);
    char *rel = sx_malloc(lc + ls + 1);
    memcpy(rel, cell, lc);
    memcpy(rel + lc, suffix, ls + 1);
    char *path, patient[512];
    int rc = locate(b, rel, sp->study_dirs, &path, err);
    if (rc < 0) { free(rel); return -1; }
    if (rc == 1) { note_missing(b, rel); free(rel); return 0; }
    if (!pid && (task_spec_has_patient_from(sp))) {
        if (derive_patient(sp, rel, patient, sizeof patient, err)) { free(rel); free(path); return -1; }
        pid = patient;
    }
    if (!sp->study_dirs) {
        add_sample(b, path, pid, label, target);
    } else {
        strvec files = {0};
        if (scan_images(path, &files, err)) { free(rel); free(path); sv_free(&files); return -1; }
        if (!files.n) note_missing(b, rel);  /* a study without images is as good as missing */
        for (size_t i = 0; i < files.n; i++) add_sample(b, files.v[i], pid, label, target);
        sv_free(&files);
    }
    free(rel);
    free(path);
    return 0;
}

static int build_csv(builder *b, const char *data_root, sx_err *err) {
    const task_spec *sp = b->spec;
    for (int f = 0; f < sp->n_csv; f++) {
        char *path = join_path(data_root, sp->csv[f]);
        if (!is_file(path)) {
            int rc = sx_fail(err, "task %s: csv %s is missing (data root '%s')", sp->name, path,
                             data_root && *data_root ? data_root : ".");
            free(path);
            return rc;
        }
        char *buf;
        size_t len;
        if (task_read_file(path, CSV_FILE_MAX, &buf, &len, err)) { free(path); return -1; }
        csv_reader r;
        csv_init(&r, path, buf, len);
        csv_cols cols = {0};
        int rc = 0;
        if (sp->csv_header) {
            rc = csv_next(&r, err);
            if (rc == 0) rc = sx_fail(err, "%s: empty (no header row)", path);
            if (rc > 0) rc = resolve_columns(sp, &r, &cols, err);
        } else {
            rc = resolve_columns(sp, NULL, &cols, err);
        }
        if (rc == 0) {
            while ((rc = csv_next(&r, err)) == 1) {
                if (csv_nfields(&r) < cols.need) {
                    rc = sx_fail(err, "%s:%zu: %zu fields, the task needs %zu", path, csv_line(&r), csv_nfields(&r), cols.need);
                    break;
                }
                if ((rc = add_row(b, &cols, &r, err)) != 0) break;
            }
        }
        cols_free(&cols);
        csv_free(&r);
        free(buf);
        free(path);
        if (rc < 0) return -1;
    }
    if (b->n_missing && !(b->flags & TASK_SKIP_MISSING)) {
        char list[300];
        missing_list(b, list, sizeof list);
        return sx_fail(err, "task %s: %zu listed %s missing under %s (e.g. %s)", sp->name, b->n_missing,
                       sp->study_dirs ? "studies are" : "images are", b->root, list);
    }
    return 0;
}

static int cmp_sample_path(const void *a, const void *b) {
    return strcmp((*(task_sample *const *)a)->path, (*(task_sample *const *)b)->path);
}

static int check_samples(const builder *b, sx_err *err) {
    const task_spec *sp = b->spec;
    if (!b->n) return sx_fail(err, "task %s: no images", sp->name);
    task_sample **order = sx_malloc(sizeof(task_sample *) * b->n);
    for (size_t i = 0; i < b->n; i++) order[i] = &b->s[i];
    qsort(order, b->n, sizeof *order, cmp_sample_path);
    size_t dups = 0;
    const char *first = NULL;
    for (size_t i = 1; i < b->n; i++)
        if (strcmp(order[i]->path, order[i - 1]->path) == 0) { if (!dups++) first = order[i]->path; }
    int rc = 0;
    if (dups) rc = sx_fail(err, "task %s: %zu duplicate image(s), e.g. %s is listed twice", sp->name, dups, first);
    free(order);
    if (rc || sp->type == TASK_REGRESSION) return rc;
    size_t *count = sx_calloc((size_t)sp->n_classes, sizeof(size_t));
    for (size_t i = 0; i < b->n; i++) count[b->s[i].label]++;
    for (int k = 0; k < sp->n_classes && !rc; k++)
        if (!count[k]) rc = sx_fail(err, "task %s: class '%s' has no images", sp->name, sp->classes[k]);
    free(count);
    return rc;
}

static void builder_free(builder *b) {
    free(b->root);
    for (int i = 0; i < b->n_bases; i++) free(b->bases[i]);
    free(b->bases);
    for (size_t i = 0; i < b->n; i++) { free(b->s[i].path); free(b->s[i].patient); }
    free(b->s);
    sv_free(&b->missing);
}

static void fill_task(builder *b, const task_spec *sp, const char *data_root, task *t) {
    t->name = sx_strdup(sp->name);
    t->data_root = sx_strdup(data_root ? data_root : "");
    t->description = sx_strdup(sp->description ? sp->description : "");
    t->type = sp->type;
    t->has_patients = sp->patient_column || task_spec_has_patient_from(sp);
    if (sp->type == TASK_REGRESSION) {
        t->n_classes = 1;
        t->class_names = sx_malloc(sizeof(char *));
        t->class_names[0] = sx_strdup(cJSON_IsString(sp->label_column) ? sp->label_column->valuestring : "target");
    } else {
        t->n_classes = sp->n_classes;
        t->class_names = sx_malloc(sizeof(char *) * (size_t)sp->n_classes);
        for (int k = 0; k < sp->n_classes; k++) t->class_names[k] = sx_strdup(sp->classes[k]);
    }
    t->samples = b->s;
    t->n = b->n;
    t->n_missing = b->n_missing;
    t->n_invalid = b->n_invalid;
    b->s = NULL;
    b->n = 0;
}

int samples_build(const task_spec *sp, const char *file, const char *data_root, unsigned flags, task *t, sx_err *err) {
    memset(t, 0, sizeof *t);
    builder b = {.spec = sp, .file = file, .flags = flags};
    int rc = build_bases(&b, data_root, err);
    if (!rc) rc = sp->class_folders ? build_class_folders(&b, err) : build_csv(&b, data_root, err);
    if (!rc) rc = check_samples(&b, err);
    if (!rc) fill_task(&b, sp, data_root, t);
    builder_free(&b);
    return rc;
}
