/* json.c: strict JSON reading and writing; see json.h. */
#include "core/json.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Line and column of byte offset at in text, for messages. */
static void where(const char *text, size_t at, size_t *line, size_t *col) {
    *line = 1; *col = 1;
    for (size_t i = 0; i < at; i++) {
        if (text[i] == '\n') { (*line)++; *col = 1; } else (*col)++;
    }
}

static int cmp_key(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first duplicate key or non-finite number below node, as a message.
 * Keys are compared sorted (n log n: an object of a million keys is fast). */
static int check_tree(const cJSON *node, const char *what, sx_err *err) {
    if (cJSON_IsNumber(node) && !isfinite(node->valuedouble))
        return sx_fail(err, "%s: a number is out of range%s%s", what, node->string ? " at key " : "",
                       node->string ? node->string : "");
    if (cJSON_IsObject(node)) {
        size_t n = 0, k = 0;
        for (const cJSON *a = node->child; a; a = a->next) n++;
        if (n > 1) {
            const char **keys = sx_malloc(n * sizeof *keys);
            for (const cJSON *a = node->child; a; a = a->next) keys[k++] = a->string ? a->string : "";
            qsort(keys, n, sizeof *keys, cmp_key);
            const char *dup = NULL;
            for (size_t i = 1; i < n && !dup; i++)
                if (!strcmp(keys[i - 1], keys[i])) dup = keys[i];
            int rc = dup ? sx_fail(err, "%s: key \"%s\" appears twice in one object", what, dup) : 0;
            free(keys);
            if (rc) return -1;
        }
    }
    for (const cJSON *a = node->child; a; a = a->next)
        if (check_tree(a, what, err)) return -1;
    return 0;
}

struct cJSON *sx_json_parse(const char *text, size_t len, const char *what, sx_err *err) {
    if (memchr(text, 0, len)) { sx_fail(err, "%s: not valid JSON (a NUL byte)", what); return NULL; }
    const char *end = NULL;
    cJSON *r = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    size_t line, col;
    if (!r) {
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        where(text, at, &line, &col);
        sx_fail(err, "%s: not valid JSON (line %zu, column %zu)", what, line, col);
        return NULL;
    }
    size_t at = (size_t)(end - text);
    while (at < len && strchr(" \t\r\n", text[at])) at++;
    if (at < len) {
        where(text, at, &line, &col);
        sx_fail(err, "%s: not valid JSON (text after the value at line %zu, column %zu)", what, line, col);
        cJSON_Delete(r);
        return NULL;
    }
    if (check_tree(r, what, err)) { cJSON_Delete(r); return NULL; }
    return r;
}

struct cJSON *sx_json_load(const char *path, size_t max_bytes, sx_err *err) {
    uint64_t size;
    FILE *f = sx_fopen_input(path, &size, err);
    if (!f) return NULL;
    if (size > max_bytes) {
        fclose(f);
        sx_fail(err, "%s: %llu bytes, larger than %zu: not a small JSON file", path, (unsigned long long)size, max_bytes);
        return NULL;
    }
    char *text = sx_malloc(max_bytes + 1);
    size_t n = fread(text, 1, max_bytes, f);
    int too_big = n == max_bytes && fgetc(f) != EOF, bad = ferror(f);
    fclose(f);
    cJSON *r = NULL;
    if (bad) sx_fail(err, "%s: read failed", path);
    else if (too_big) sx_fail(err, "%s: larger than %zu bytes: not a small JSON file", path, max_bytes);
    else r = sx_json_parse(text, n, path, err);
    free(text);
    return r;
}

int json_write_file(const char *path, const cJSON *r, sx_err *err) {
    char tmp[4608];   /* PATH_MAX and the .tmp.PID suffix */
    FILE *f = sx_atomic_open(path, tmp, sizeof tmp, err);
    if (!f) return -1;
    char *text = cJSON_Print(r);
    if (text) { fputs(text, f); fputc('\n', f); }
    free(text);
    if (!text) { fclose(f); unlink(tmp); return sx_fail(err, "%s: out of memory", path); }
    return sx_atomic_commit(f, tmp, path, err);
}

void json_add_numbers(cJSON *o, const json_number *f, size_t n) {
    for (size_t i = 0; i < n; i++) cJSON_AddNumberToObject(o, f[i].name, f[i].value);
}
