/* task.c: task files -> labelled image lists (see task.h for the format).
 *
 * What it does: parses and validates the task JSON, reads CSV files with a
 * small RFC 4180 reader (quoted fields, "" escapes, CRLF or LF, a UTF-8 BOM;
 * bounded file, record and field counts so hostile input cannot make it
 * allocate without limit), scans class folders, resolves and stat()s every
 * image, and checks labels, duplicates and empty classes.
 * What it does not do: open or decode images, or split them. */
#include "data/task.h"
#include "core/json.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define TASK_JSON_MAX ((size_t)1 << 20)       /* a task file is small */
#define CSV_FILE_MAX ((size_t)256 << 20)      /* MURA's and GRAZPEDWRI's CSVs are a few MB */
#define CSV_RECORD_MAX ((size_t)1 << 20)      /* bytes in one record, quoted newlines included */
#define CSV_FIELDS_MAX 4096
#define TASK_CLASSES_MAX 1000
#define SCAN_DEPTH_MAX 32
#define MISSING_SHOWN 5

/* ------------------------------------------------------------------ helpers */

typedef struct { char **v; size_t n, cap; } strvec;

static void sv_push(strvec *s, char *str) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        char **v = realloc(s->v, s->cap * sizeof *v);
        if (!v) { fprintf(stderr, "skelex: out of memory\n"); exit(3); }
        s->v = v;
    }
    s->v[s->n++] = str;
}

static void sv_free(strvec *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    *s = (strvec){0};
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(sx_malloc(n), s, n);
}

/* a/b; b when b is absolute or a is empty. */
static char *join_path(const char *a, const char *b) {
    if (!a || !*a || b[0] == '/') return xstrdup(b);
    if (!*b) return xstrdup(a);
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

static int read_whole(const char *path, size_t max, char **buf, size_t *len, sx_err *err) {
    FILE *f = sx_fopen_input(path, NULL, err);
    if (!f) return -1;
    size_t cap = 1 << 16, n = 0;
    char *b = sx_malloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= max) { free(b); fclose(f); return sx_fail(err, "%s: larger than %zu bytes", path, max); }
            cap = cap * 2 > max ? max : cap * 2;
            char *nb = realloc(b, cap + 1);
            if (!nb) { free(b); fclose(f); return sx_fail(err, "%s: out of memory", path); }
            b = nb;
        }
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(b); return sx_fail(err, "%s: read error", path); }
    b[n] = 0;
    *buf = b;
    *len = n;
    return 0;
}

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    static const char *ext[] = {".png", ".jpg", ".jpeg", ".dcm", ".dicom"};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (strcasecmp(dot, ext[i]) == 0) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Images under dir, recursively, appended to out in strcmp order. Names
 * starting with '.' are skipped; links to folders are not followed. */
static int scan_rec(const char *dir, int depth, strvec *out, sx_err *err) {
    if (depth > SCAN_DEPTH_MAX) return sx_fail(err, "%s: folders nested deeper than %d", dir, SCAN_DEPTH_MAX);
    DIR *d = opendir(dir);
    if (!d) return sx_fail(err, "%s: cannot open folder (%s)", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = join_path(dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) != 0) { free(p); continue; }
        if (S_ISDIR(st.st_mode)) rc = scan_rec(p, depth + 1, out, err);
        else if ((S_ISREG(st.st_mode) || (S_ISLNK(st.st_mode) && is_file(p))) && has_image_ext(e->d_name)) {
            sv_push(out, p);
            p = NULL;
        }
        free(p);
    }
    closedir(d);
    return rc;
}

static int scan_images(const char *dir, strvec *out, sx_err *err) {
    size_t start = out->n;
    if (scan_rec(dir, 0, out, err)) return -1;
    qsort(out->v + start, out->n - start, sizeof(char *), cmp_str);
    return 0;
}

/* ---------------------------------------------------------------- CSV reader */

typedef struct {
    const char *name;            /* file name, for messages */
    const char *buf;
    size_t len, pos;
    size_t line;                 /* physical line of buf[pos], 1-based */
    size_t rec_line;             /* line where the current record starts */
    char *text;                  /* the record's fields, each NUL-terminated */
    size_t text_len, text_cap;
    size_t *off;                 /* field k starts at text + off[k] */
    size_t nf, off_cap;
} csv_reader;

static void csv_init(csv_reader *r, const char *name, const char *buf, size_t len) {
    *r = (csv_reader){.name = name, .buf = buf, .len = len, .line = 1};
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) r->pos = 3;  /* UTF-8 BOM */
}

static void csv_free(csv_reader *r) { free(r->text); free(r->off); }

static int csv_put(csv_reader *r, char c, sx_err *err) {
    if (r->text_len + 1 > CSV_RECORD_MAX)
        return sx_fail(err, "%s:%zu: record longer than %zu bytes", r->name, r->rec_line, CSV_RECORD_MAX);
    if (r->text_len + 1 > r->text_cap) {
        size_t cap = r->text_cap ? 2 * r->text_cap : 256;
        if (cap > CSV_RECORD_MAX) cap = CSV_RECORD_MAX;
        char *t = realloc(r->text, cap);
        if (!t) return sx_fail(err, "%s: out of memory", r->name);
        r->text = t;
        r->text_cap = cap;
    }
    r->text[r->text_len++] = c;
    return 0;
}

static int csv_begin_field(csv_reader *r, sx_err *err) {
    if (r->nf >= CSV_FIELDS_MAX) return sx_fail(err, "%s:%zu: more than %d fields", r->name, r->rec_line, CSV_FIELDS_MAX);
    if (r->nf == r->off_cap) {
        size_t cap = r->off_cap ? 2 * r->off_cap : 32;
        size_t *o = realloc(r->off, cap * sizeof *o);
        if (!o) return sx_fail(err, "%s: out of memory", r->name);
        r->off = o;
        r->off_cap = cap;
    }
    r->off[r->nf++] = r->text_len;
    return 0;
}

static int csv_quoted(csv_reader *r, sx_err *err) {
    size_t start_line = r->line;
    r->pos++;  /* opening quote */
    for (;;) {
        if (r->pos >= r->len)
            return sx_fail(err, "%s:%zu: quoted field is never closed", r->name, start_line);
        char c = r->buf[r->pos++];
        if (c == '"') {
            if (r->pos < r->len && r->buf[r->pos] == '"') { r->pos++; if (csv_put(r, '"', err)) return -1; continue; }
            break;
        }
        if (c == 0) return sx_fail(err, "%s:%zu: NUL byte", r->name, r->line);
        if (c == '\n') r->line++;
        if (csv_put(r, c, err)) return -1;
    }
    if (r->pos < r->len && r->buf[r->pos] != ',' && r->buf[r->pos] != '\n' && r->buf[r->pos] != '\r')
        return sx_fail(err, "%s:%zu: text after a closing quote", r->name, r->line);
    return 0;
}

/* Read the next record. 1: a record (fields via csv_field), 0: end, -1: error.
 * Blank lines are skipped. A quote inside an unquoted field is kept as text. */
static int csv_next(csv_reader *r, sx_err *err) {
    for (;;) {
        if (r->pos >= r->len) return 0;
        r->text_len = r->nf = 0;
        r->rec_line = r->line;
        int quoted = 0;
        for (;;) {
            if (csv_begin_field(r, err)) return -1;
            if (r->pos < r->len && r->buf[r->pos] == '"') {
                quoted = 1;
                if (csv_quoted(r, err)) return -1;
            } else {
                while (r->pos < r->len) {
                    char c = r->buf[r->pos];
                    if (c == ',' || c == '\n' || c == '\r') break;
                    if (c == 0) return sx_fail(err, "%s:%zu: NUL byte", r->name, r->line);
                    if (csv_put(r, c, err)) return -1;
                    r->pos++;
                }
            }
            if (csv_put(r, 0, err)) return -1;
            if (r->pos >= r->len) break;
            char c = r->buf[r->pos++];
            if (c == ',') continue;
            if (c == '\r' && r->pos < r->len && r->buf[r->pos] == '\n') r->pos++;
            r->line++;
            break;
        }
        if (r->nf == 1 && !quoted && !*trim(r->text)) continue;  /* blank line */
        return 1;
    }
}

static char *csv_field(csv_reader *r, size_t k) { return r->text + r->off[k]; }

/* --------------------------------------------------------------- task spec */

typedef struct {
    const char *name, *description;
    task_type type;
    const char *image_root;
    const char **image_dirs;
    int n_image_dirs;
    const char **class_folders;
    int n_class_folders;
    const char **csv;
    int n_csv;
    int csv_header, study_dirs, skip_invalid;
    const cJSON *image_column, *label_column, *label_columns, *patient_column;
    const char *image_suffix;
    const cJSON *label_map, *where;
    const char **classes;
    int n_classes;
    const char *patient_prefix;
    int patient_name_chars;
} task_spec;

static void spec_free(task_spec *s) {
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

static int parse_patient_from(const cJSON *v, task_spec *s, const char *file, sx_err *err) {
    if (!cJSON_IsObject(v) || cJSON_GetArraySize(v) != 1)
        return sx_fail(err, "%s: 'patient_from' must be {\"path_component_prefix\": \"...\"} or {\"name_chars\": N}", file);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(v, "path_component_prefix");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "name_chars");
    if (cJSON_IsString(p) && *p->valuestring) { s->patient_prefix = p->valuestring; return 0; }
    if (cJSON_IsNumber(c) && c->valuedouble >= 1 && c->valuedouble <= 256 && c->valuedouble == floor(c->valuedouble)) {
        s->patient_name_chars = (int)c->valuedouble;
        return 0;
    }
    return sx_fail(err, "%s: 'patient_from' must be {\"path_component_prefix\": \"...\"} or {\"name_chars\": 1..256}", file);
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
    if (s->patient_column && (s->patient_prefix || s->patient_name_chars))
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

static int parse_spec(const cJSON *root, task_spec *s, const char *file, sx_err *err) {
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
        b->cap = b->cap ? 2 * b->cap : 1024;
        task_sample *s = realloc(b->s, b->cap * sizeof *s);
        if (!s) { fprintf(stderr, "skelex: out of memory\n"); exit(3); }
        b->s = s;
    }
    b->s[b->n++] = (task_sample){xstrdup(path), xstrdup(patient ? patient : path), label, target};
}

static void note_missing(builder *b, const char *what) {
    if (b->missing.n < MISSING_SHOWN) sv_push(&b->missing, xstrdup(what));
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
    if (!sp->n_image_dirs) { b->bases[0] = xstrdup(b->root); return 0; }
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
                if (sp->patient_prefix || sp->patient_name_chars) {
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

static int find_column(const cJSON *ref, csv_reader *hdr, const char *key, size_t *out, sx_err *err) {
    if (!hdr) { *out = (size_t)ref->valuedouble; return 0; }
    for (size_t k = 0; k < hdr->nf; k++)
        if (strcmp(trim(csv_field(hdr, k)), ref->valuestring) == 0) { *out = k; return 0; }
    return sx_fail(err, "%s: no column '%s' (%s) in the header", hdr->name, ref->valuestring, key);
}

static int resolve_columns(const task_spec *sp, csv_reader *hdr, csv_cols *c, sx_err *err) {
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

static int where_keeps(const task_spec *sp, const csv_cols *c, csv_reader *r) {
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
static int row_label(const task_spec *sp, const csv_cols *c, csv_reader *r, int *label, double *target, sx_err *err) {
    if (sp->type == TASK_REGRESSION) {
        const char *cell = trim(csv_field(r, c->label));
        if (!parse_num(cell, target)) {
            sx_fail(err, "%s:%zu: target '%.40s' is not a number", r->name, r->rec_line, cell);
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
        sx_fail(err, "%s:%zu: label '%.40s' is not one of the %d classes (%s, ...)", r->name, r->rec_line, cell,
                sp->n_classes, sp->classes[0]);
        return -2;
    }
    int found = -1, none = -1;
    for (int k = 0; k < sp->n_classes; k++) {
        if (c->labels[k] == SIZE_MAX) { none = k; continue; }
        const char *cell = trim(csv_field(r, c->labels[k]));
        int on;
        if (truthy(cell, &on))
            return sx_fail(err, "%s:%zu: '%.40s' in label column %d is not 0/1", r->name, r->rec_line, cell, k);
        if (!on) continue;
        if (found >= 0) {
            sx_fail(err, "%s:%zu: more than one label column is set (classes '%s' and '%s')", r->name, r->rec_line,
                    sp->classes[found], sp->classes[k]);
            return -2;
        }
        found = k;
    }
    if (found < 0) found = none;
    if (found < 0) {
        sx_fail(err, "%s:%zu: none of the label columns is set", r->name, r->rec_line);
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
        if (want_dir ? is_dir(rel) : is_file(rel)) { *path = xstrdup(rel); return 0; }
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

static int add_row(builder *b, const csv_cols *c, csv_reader *r, sx_err *err) {
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
        if (!*pid) return sx_fail(err, "%s:%zu: empty patient id", r->name, r->rec_line);
    }
    const char *cell = trim(csv_field(r, c->image));
    if (!*cell) return sx_fail(err, "%s:%zu: empty image cell", r->name, r->rec_line);
    const char *suffix = sp->image_suffix ? sp->image_suffix : "";
    size_t lc = strlen(cell), ls = strlen(suffix);
    char *rel = sx_malloc(lc + ls + 1);
    memcpy(rel, cell, lc);
    memcpy(rel + lc, suffix, ls + 1);
    char *path, patient[512];
    int rc = locate(b, rel, sp->study_dirs, &path, err);
    if (rc < 0) { free(rel); return -1; }
    if (rc == 1) { note_missing(b, rel); free(rel); return 0; }
    if (!pid && (sp->patient_prefix || sp->patient_name_chars)) {
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
        if (read_whole(path, CSV_FILE_MAX, &buf, &len, err)) { free(path); return -1; }
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
                if (r.nf < cols.need) {
                    rc = sx_fail(err, "%s:%zu: %zu fields, the task needs %zu", path, r.rec_line, r.nf, cols.need);
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
    t->name = xstrdup(sp->name);
    t->data_root = xstrdup(data_root ? data_root : "");
    t->description = xstrdup(sp->description ? sp->description : "");
    t->type = sp->type;
    t->has_patients = sp->patient_column || sp->patient_prefix || sp->patient_name_chars;
    if (sp->type == TASK_REGRESSION) {
        t->n_classes = 1;
        t->class_names = sx_malloc(sizeof(char *));
        t->class_names[0] = xstrdup(cJSON_IsString(sp->label_column) ? sp->label_column->valuestring : "target");
    } else {
        t->n_classes = sp->n_classes;
        t->class_names = sx_malloc(sizeof(char *) * (size_t)sp->n_classes);
        for (int k = 0; k < sp->n_classes; k++) t->class_names[k] = xstrdup(sp->classes[k]);
    }
    t->samples = b->s;
    t->n = b->n;
    t->n_missing = b->n_missing;
    t->n_invalid = b->n_invalid;
    b->s = NULL;
    b->n = 0;
}

/* ------------------------------------------------------------------ public */

int task_load_flags(const char *task_json, const char *data_root, unsigned flags, task *t, sx_err *err) {
    memset(t, 0, sizeof *t);
    char *text;
    size_t len;
    if (read_whole(task_json, TASK_JSON_MAX, &text, &len, err)) return -1;
    cJSON *root = sx_json_parse(text, len, task_json, err);  /* strict: trailing text, duplicate keys */
    free(text);
    if (!root) return -1;
    task_spec sp;
    builder b = {.spec = &sp, .file = task_json, .flags = flags};
    int rc = parse_spec(root, &sp, task_json, err);
    if (!rc) rc = build_bases(&b, data_root, err);
    if (!rc) rc = sp.class_folders ? build_class_folders(&b, err) : build_csv(&b, data_root, err);
    if (!rc) rc = check_samples(&b, err);
    if (!rc) fill_task(&b, &sp, data_root, t);
    builder_free(&b);
    spec_free(&sp);
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

void task_class_counts(const task *t, size_t *counts) {
    memset(counts, 0, sizeof(size_t) * (size_t)t->n_classes);
    if (t->type == TASK_REGRESSION) { counts[0] = t->n; return; }
    for (size_t i = 0; i < t->n; i++) counts[t->samples[i].label]++;
}

size_t task_patient_count(const task *t) {
    if (!t->n) return 0;
    char **p = sx_malloc(sizeof(char *) * t->n);
    for (size_t i = 0; i < t->n; i++) p[i] = t->samples[i].patient;
    qsort(p, t->n, sizeof *p, cmp_str);
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
