/* runstate.c: run.json and training_state.bin; see runstate.h. */
#include "train/runstate.h"
#include "core/json.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

cJSON *runstate_to_json(const train_opts *o, long total, const run_plan *plan) {
    cJSON *r = cJSON_CreateObject(), *d = cJSON_AddArrayToObject(r, "data");
    for (int i = 0; i < o->n_data; i++) cJSON_AddItemToArray(d, cJSON_CreateString(o->data[i]));
    cJSON_AddNumberToObject(r, "batch", o->batch);
    cJSON_AddNumberToObject(r, "accum", o->accum);
    cJSON_AddNumberToObject(r, "total_steps", (double)total);
    cJSON_AddNumberToObject(r, "blr", o->blr);
    cJSON_AddNumberToObject(r, "lr", o->lr);
    cJSON_AddNumberToObject(r, "min_lr", o->min_lr);
    cJSON_AddNumberToObject(r, "warmup_steps", (double)o->warmup_steps);
    cJSON_AddNumberToObject(r, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(r, "beta1", o->beta1);
    cJSON_AddNumberToObject(r, "beta2", o->beta2);
    cJSON_AddNumberToObject(r, "clip", o->clip);
    cJSON_AddNumberToObject(r, "seed", (double)o->seed);
    cJSON_AddBoolToObject(r, "bf16", o->bf16);
    cJSON_AddNumberToObject(r, "save_every", (double)o->save_every);
    cJSON_AddNumberToObject(r, "log_every", (double)o->log_every);
    cJSON_AddNumberToObject(r, "panel_every", (double)o->panel_every);
    cJSON_AddBoolToObject(r, "augment", o->augment);
    cJSON_AddNumberToObject(r, "crop_min", o->crop_min);
    cJSON_AddNumberToObject(r, "crop_max", o->crop_max);
    cJSON_AddNumberToObject(r, "ratio_min", o->ratio_min);
    cJSON_AddNumberToObject(r, "ratio_max", o->ratio_max);
    cJSON_AddNumberToObject(r, "flip_prob", o->flip_prob);
    if (o->panel_images) cJSON_AddStringToObject(r, "panel_images", o->panel_images);
    cJSON_AddNumberToObject(r, "threads", plan->threads);
    cJSON_AddNumberToObject(r, "shares", plan->shares);
    cJSON_AddNumberToObject(r, "images", (double)plan->images);
    return r;
}

/* key: absent -> unchanged; else a number in [lo, hi] (integral if integer). */
static int num(const cJSON *r, const char *key, double lo, double hi, int integer, double *out, const char *what,
               sx_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, key);
    if (!v) return 0;
    double x = v->valuedouble;
    if (!cJSON_IsNumber(v) || !isfinite(x) || x < lo || x > hi || (integer && x != floor(x)))
        return sx_fail(err, "%s: \"%s\" must be %s in [%g, %g]", what, key, integer ? "an integer" : "a number", lo, hi);
    *out = x;
    return 0;
}

static int boolean(const cJSON *r, const char *key, int *out, const char *what, sx_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, key);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return sx_fail(err, "%s: \"%s\" must be true or false", what, key);
    *out = cJSON_IsTrue(v);
    return 0;
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
    o->n_data = 0;
    if (!cJSON_IsArray(d)) rc = sx_fail(err, "%s: \"data\" must be a list of paths", what);
    cJSON_ArrayForEach(it, d) {
        if (rc) break;
        if (!cJSON_IsString(it) || !it->valuestring[0]) rc = sx_fail(err, "%s: \"data\" must hold paths (strings)", what);
        else if (o->n_data == TRAIN_MAX_DATA) rc = sx_fail(err, "%s: more than %d data paths", what, TRAIN_MAX_DATA);
        else o->data[o->n_data++] = it->valuestring;
    }
    if (!rc && !o->n_data) rc = sx_fail(err, "%s: lists no data", what);
    const double BIG = 1099511627776.0; /* 2^40, as the command line allows */
    double batch = o->batch, accum = o->accum, tot = 0, warm = (double)o->warmup_steps, seed = (double)o->seed,
           save = (double)o->save_every, logev = (double)o->log_every, panel = (double)o->panel_every;
    double thr = 0, shares = 0, images = 0;
    if (!rc) rc = num(r, "batch", 1, 65536, 1, &batch, what, err);
    if (!rc) rc = num(r, "accum", 1, 65536, 1, &accum, what, err);
    if (!rc) rc = num(r, "total_steps", 1, BIG, 1, &tot, what, err);
    if (!rc && !cJSON_GetObjectItemCaseSensitive(r, "total_steps")) rc = sx_fail(err, "%s: \"total_steps\" is missing", what);
    if (!rc) rc = num(r, "blr", 0, 10, 0, &o->blr, what, err);
    if (!rc) rc = num(r, "lr", 0, 10, 0, &o->lr, what, err);
    if (!rc) rc = num(r, "min_lr", 0, 10, 0, &o->min_lr, what, err);
    if (!rc) rc = num(r, "warmup_steps", 0, BIG, 1, &warm, what, err);
    if (!rc) rc = num(r, "weight_decay", 0, 10, 0, &o->weight_decay, what, err);
    if (!rc) rc = num(r, "beta1", 0, 0.999999, 0, &o->beta1, what, err);
    if (!rc) rc = num(r, "beta2", 0, 0.999999, 0, &o->beta2, what, err);
    if (!rc) rc = num(r, "clip", 0, 1e6, 0, &o->clip, what, err);
    if (!rc) rc = num(r, "seed", 0, 2147483647.0, 1, &seed, what, err);
    if (!rc) rc = boolean(r, "bf16", &o->bf16, what, err);
    if (!rc) rc = num(r, "save_every", 1, BIG, 1, &save, what, err);
    if (!rc) rc = num(r, "log_every", 1, BIG, 1, &logev, what, err);
    if (!rc) rc = num(r, "panel_every", 1, BIG, 1, &panel, what, err);
    if (!rc) rc = boolean(r, "augment", &o->augment, what, err);
    if (!rc) rc = num(r, "crop_min", 1e-3, 1, 0, &o->crop_min, what, err);
    if (!rc) rc = num(r, "crop_max", 1e-3, 1, 0, &o->crop_max, what, err);
    if (!rc) rc = num(r, "ratio_min", 1e-3, 100, 0, &o->ratio_min, what, err);
    if (!rc) rc = num(r, "ratio_max", 1e-3, 100, 0, &o->ratio_max, what, err);
    if (!rc) rc = num(r, "flip_prob", 0, 1, 0, &o->flip_prob, what, err);
    if (!rc) rc = num(r, "threads", 0, 4096, 1, &thr, what, err);
    if (!rc) rc = num(r, "shares", 0, 64, 1, &shares, what, err);
    if (!rc) rc = num(r, "images", 0, 4294967295.0, 1, &images, what, err);
    if (!rc && (o->crop_min > o->crop_max || o->ratio_min > o->ratio_max))
        rc = sx_fail(err, "%s: crop_min/ratio_min must not exceed crop_max/ratio_max", what);
    const cJSON *pi = cJSON_GetObjectItemCaseSensitive(r, "panel_images");
    if (!rc && pi && !cJSON_IsString(pi)) rc = sx_fail(err, "%s: \"panel_images\" must be a path", what);
    if (rc) { cJSON_Delete(r); o->n_data = 0; return -1; }
    if (pi) o->panel_images = pi->valuestring;
    o->batch = (int)batch; o->accum = (int)accum; *total = (long)tot; o->warmup_steps = (long)warm;
    o->seed = (long)seed; o->save_every = (long)save; o->log_every = (long)logev; o->panel_every = (long)panel;
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
