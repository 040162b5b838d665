/* runstate.c: run.json and training_state.bin; see runstate.h. */
#include "train/runstate.h"
#include "core/json.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

/* The options run.json holds, one row each: key, where in train_opts, its
 * type and its range. Writing and reading both walk this table. */
typedef enum { F_INT, F_LONG, F_DOUBLE, F_BOOL } field_type;
typedef struct {
    const char *key;
    size_t off;
    field_type type;
    double lo, hi;
} field;

#define BIG 1099511627776.0 /* 2^40, as the command line allows */
#define F(key, member, type, lo, hi) {key, offsetof(train_opts, member), type, lo, hi}
static const field FIELDS[] = {
    F("batch", batch, F_INT, 1, 65536),          F("accum", accum, F_INT, 1, 65536),
    F("blr", blr, F_DOUBLE, 0, 10),              F("lr", lr, F_DOUBLE, 0, 10),
    F("min_lr", min_lr, F_DOUBLE, 0, 10),        F("warmup_steps", warmup_steps, F_LONG, 0, BIG),
    F("weight_decay", weight_decay, F_DOUBLE, 0, 10), F("beta1", beta1, F_DOUBLE, 0, 0.999999),
    F("beta2", beta2, F_DOUBLE, 0, 0.999999),    F("clip", clip, F_DOUBLE, 0, 1e6),
    F("seed", seed, F_LONG, 0, 2147483647.0),    F("bf16", bf16, F_BOOL, 0, 1),
    F("save_every", save_every, F_LONG, 1, BIG), F("log_every", log_every, F_LONG, 1, BIG),
    F("panel_every", panel_every, F_LONG, 1, BIG), F("augment", augment, F_BOOL, 0, 1),
    F("crop_min", crop_min, F_DOUBLE, 1e-3, 1),  F("crop_max", crop_max, F_DOUBLE, 1e-3, 1),
    F("ratio_min", ratio_min, F_DOUBLE, 1e-3, 100), F("ratio_max", ratio_max, F_DOUBLE, 1e-3, 100),
    F("flip_prob", flip_prob, F_DOUBLE, 0, 1),
};
#undef F

static double get_field(const train_opts *o, const field *f) {
    const char *p = (const char *)o + f->off;
    switch (f->type) {
    case F_INT: case F_BOOL: return *(const int *)p;
    case F_LONG: return (double)*(const long *)p;
    default: return *(const double *)p;
    }
}

static void set_field(train_opts *o, const field *f, double v) {
    char *p = (char *)o + f->off;
    switch (f->type) {
    case F_INT: case F_BOOL: *(int *)p = (int)v; break;
    case F_LONG: *(long *)p = (long)v; break;
    default: *(double *)p = v;
    }
}

cJSON *runstate_to_json(const train_opts *o, long total, const run_plan *plan) {
    cJSON *r = cJSON_CreateObject(), *d = cJSON_AddArrayToObject(r, "data");
    for (int i = 0; i < o->n_data; i++) cJSON_AddItemToArray(d, cJSON_CreateString(o->data[i]));
    cJSON_AddNumberToObject(r, "total_steps", (double)total);
    for (size_t i = 0; i < sizeof FIELDS / sizeof FIELDS[0]; i++) {
        if (FIELDS[i].type == F_BOOL) cJSON_AddBoolToObject(r, FIELDS[i].key, get_field(o, &FIELDS[i]) != 0);
        else cJSON_AddNumberToObject(r, FIELDS[i].key, get_field(o, &FIELDS[i]));
    }
    if (o->panel_images) cJSON_AddStringToObject(r, "panel_images", o->panel_images);
    cJSON_AddNumberToObject(r, "threads", plan->threads);
    cJSON_AddNumberToObject(r, "shares", plan->shares);
    cJSON_AddNumberToObject(r, "images", (double)plan->images);
    return r;
}

/* key: absent -> 0 (unchanged); else its value, checked against f, into *out. */
static int read_field(const cJSON *r, const field *f, double *out, const char *what, sx_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, f->key);
    if (!v) return 0;
    if (f->type == F_BOOL) {
        if (!cJSON_IsBool(v)) return sx_fail(err, "%s: \"%s\" must be true or false", what, f->key);
        *out = cJSON_IsTrue(v);
        return 1;
    }
    double x = v->valuedouble;
    int integer = f->type != F_DOUBLE;
    if (!cJSON_IsNumber(v) || !isfinite(x) || x < f->lo || x > f->hi || (integer && x != floor(x)))
        return sx_fail(err, "%s: \"%s\" must be %s in [%g, %g]", what, f->key, integer ? "an integer" : "a number",
                       f->lo, f->hi);
    *out = x;
    return 1;
}

int runstate_parse_json(const char *text, size_t len, const char *what, train_opts *o, long *total,
                        run_plan *plan, cJSON **keep, sx_err *err) {
    *keep = NULL;
    *plan = (run_plan){0};
    cJSON *r = sx_json_parse(text, len, what, err);
    if (!r) return -1;
    if (!cJSON_IsObject(r)) { cJSON_Delete(r); return sx_fail(err, "%s: not a JSON object", what); }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "data"), *it;
    int rc = 0;
    train_opts t = *o;  /* o changes only when all of it is good */
    t.n_data = 0;
    if (!cJSON_IsArray(d)) rc = sx_fail(err, "%s: \"data\" must be a list of paths", what);
    cJSON_ArrayForEach(it, d) {
        if (rc) break;
        if (!cJSON_IsString(it) || !it->valuestring[0]) rc = sx_fail(err, "%s: \"data\" must hold paths (strings)", what);
        else if (t.n_data == TRAIN_MAX_DATA) rc = sx_fail(err, "%s: more than %d data paths", what, TRAIN_MAX_DATA);
        else t.data[t.n_data++] = it->valuestring;
    }
    if (!rc && !t.n_data) rc = sx_fail(err, "%s: lists no data", what);
    double x, tot = 0;
    for (size_t i = 0; !rc && i < sizeof FIELDS / sizeof FIELDS[0]; i++) {
        int got = read_field(r, &FIELDS[i], &x, what, err);
        if (got < 0) rc = -1;
        else if (got) set_field(&t, &FIELDS[i], x);
    }
    static const field TOTAL = {"total_steps", 0, F_LONG, 1, BIG}, THREADS = {"threads", 0, F_INT, 0, 4096},
                       SHARES = {"shares", 0, F_INT, 0, 64}, IMAGES = {"images", 0, F_LONG, 0, 4294967295.0};
    int got = rc ? 0 : read_field(r, &TOTAL, &tot, what, err);
    if (!rc && got == 0) rc = sx_fail(err, "%s: \"total_steps\" is missing", what);
    if (got < 0) rc = -1;
    double thr = 0, shares = 0, images = 0;
    if (!rc && (read_field(r, &THREADS, &thr, what, err) < 0 || read_field(r, &SHARES, &shares, what, err) < 0 ||
                read_field(r, &IMAGES, &images, what, err) < 0))
        rc = -1;
    if (!rc && (t.crop_min > t.crop_max || t.ratio_min > t.ratio_max))
        rc = sx_fail(err, "%s: crop_min/ratio_min must not exceed crop_max/ratio_max", what);
    const cJSON *pi = cJSON_GetObjectItemCaseSensitive(r, "panel_images");
    if (!rc && pi && !cJSON_IsString(pi)) rc = sx_fail(err, "%s: \"panel_images\" must be a path", what);
    if (rc) { cJSON_Delete(r); return -1; }
    if (pi) t.panel_images = pi->valuestring;
    *o = t;
    *total = (long)tot;
    *plan = (run_plan){(int)thr, (int)shares, (long)images};
    *keep = r;
    return 0;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 0x100000001b3ull; }
    return h;
}

uint64_t runstate_checksum(const state_header *h, const float *m, const float *v, size_t n) {
    uint64_t sum = 0xcbf29ce484222325ull;
    sum = fnv1a(sum, h, sizeof *h);
    sum = fnv1a(sum, m, n * 4);
    return fnv1a(sum, v, n * 4);
}

int runstate_check_header(const state_header *h, size_t n_params, const char *what, sx_err *err) {
    if (memcmp(h->magic, "SKXTRAIN", 8) || h->version != 1) return sx_fail(err, "%s: not a skelex training state", what);
    if (h->n_floats != n_params)
        return sx_fail(err, "%s: state for %llu parameters, the model has %zu", what, (unsigned long long)h->n_floats, n_params);
    if (h->step < 0 || h->adam_step < 0 || h->position < 0)
        return sx_fail(err, "%s: negative step or data position (corrupt)", what);
    return 0;
}

int runstate_parse_state(const uint8_t *bytes, size_t len, size_t n_params, const char *what, state_header *h,
                         float *m, float *v, sx_err *err) {
    if (len < sizeof *h) return sx_fail(err, "%s: not a skelex training state", what);
    memcpy(h, bytes, sizeof *h);
    if (runstate_check_header(h, n_params, what, err)) return -1;
    size_t body;
    if (sx_mul_size(n_params, 8, &body) || body > SIZE_MAX - sizeof *h - 8 || len != sizeof *h + body + 8)
        return sx_fail(err, "%s: %zu bytes, a state for %zu parameters has %zu (truncated or corrupt)", what, len,
                       n_params, sizeof *h + n_params * 8 + 8);
    memcpy(m, bytes + sizeof *h, n_params * 4);
    memcpy(v, bytes + sizeof *h + n_params * 4, n_params * 4);
    uint64_t stored;
    memcpy(&stored, bytes + sizeof *h + body, 8);
    if (runstate_checksum(h, m, v, n_params) != stored) return sx_fail(err, "%s: checksum mismatch (corrupt)", what);
    return 0;
}
