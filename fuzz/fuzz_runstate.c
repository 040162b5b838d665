/* fuzz_runstate.c: libFuzzer harness for the two files a resumed run is
 * rebuilt from (train/runstate.c): the first byte picks run.json (even) or
 * training_state.bin (odd); the rest is the file. An accepted run.json must
 * hold in-range options and survive a write/parse round trip; an accepted
 * state must have its checksum. Errors must keep the one-line contract. */
#include "train/runstate.h"
#include "fuzz_util.h"
#include <cjson/cJSON.h>

/* What train_opts_default gives (train.c is not linked here). */
static void defaults(train_opts *o) {
    *o = (train_opts){.batch = 32, .accum = 1, .blr = 1.5e-4, .weight_decay = 0.05, .beta1 = 0.9, .beta2 = 0.95,
                      .save_every = 500, .log_every = 10, .panel_every = 500, .crop_min = 0.2, .crop_max = 1.0,
                      .ratio_min = 0.75, .ratio_max = 4.0 / 3.0, .flip_prob = 0.5, .augment = 1};
}

static void fuzz_run_json(const uint8_t *data, size_t n) {
    train_opts o;
    defaults(&o);
    long total = 0;
    run_plan plan;
    cJSON *keep = NULL;
    sx_err err;
    if (runstate_parse_json((const char *)data, n, "run.json", &o, &total, &plan, &keep, &err)) {
        fuzz_check_error(&err, "run.json");
        if (keep) abort();
        return;
    }
    if (o.n_data < 1 || o.n_data > TRAIN_MAX_DATA || o.batch < 1 || o.accum < 1 || total < 1 || o.warmup_steps < 0 ||
        o.seed < 0 || o.save_every < 1 || o.log_every < 1 || o.panel_every < 1 || plan.threads < 0 || plan.shares < 0)
        abort();
    cJSON *again = runstate_to_json(&o, total, &plan);
    char *text = cJSON_PrintUnformatted(again);
    cJSON_Delete(again);
    train_opts o2;
    defaults(&o2);
    long total2 = 0;
    run_plan plan2;
    cJSON *keep2 = NULL;
    if (runstate_parse_json(text, strlen(text), "run.json", &o2, &total2, &plan2, &keep2, &err)) abort();
    if (total2 != total || o2.batch != o.batch || o2.n_data != o.n_data || plan2.images != plan.images) abort();
    cJSON_Delete(keep2);
    free(text);
    cJSON_Delete(keep);
}

static void fuzz_state(const uint8_t *data, size_t n) {
    state_header h;
    size_t params = 0;
    if (n >= sizeof h) {
        memcpy(&h, data, sizeof h);
        params = h.n_floats <= 4096 ? (size_t)h.n_floats : 4096;  /* a model is never sized by the file */
    }
    float *m = malloc((params + 1) * 4), *v = malloc((params + 1) * 4);
    sx_err err;
    if (runstate_parse_state(data, n, params, "training_state.bin", &h, m, v, &err)) {
        fuzz_check_error(&err, "training_state.bin");
    } else {
        uint64_t stored;
        memcpy(&stored, data + n - 8, 8);
        if (h.n_floats != params || n != sizeof h + 8 * params + 8 || runstate_checksum(&h, m, v, params) != stored ||
            h.step < 0 || h.position < 0)
            abort();
    }
    free(m);
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    if (n < 1) return 0;
    if (data[0] & 1) fuzz_state(data + 1, n - 1);
    else fuzz_run_json(data + 1, n - 1);
    return 0;
}
