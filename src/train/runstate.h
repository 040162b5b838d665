/* runstate.h: the two files a resumed run is rebuilt from, parsed from
 * bytes (so the parsers are fuzzed exactly as the program uses them):
 *   RUN/run.json                the run's options, its image count and its
 *                               thread/split plan (written at the start)
 *   checkpoint/training_state.bin  header (magic "SKXTRAIN", version 1,
 *                               step, AdamW step, data position, parameter
 *                               count), the AdamW moments m and v (float32
 *                               each), and an FNV-1a checksum of all of it.
 * Every value is range-checked: a hostile file is an error naming the file
 * and the field, never a wrong cast or an allocation sized by its bytes. */
#ifndef SKELEX_RUNSTATE_H
#define SKELEX_RUNSTATE_H
#include "train/train.h"

struct cJSON;

/* How the run split its work: resume is bit-exact only with the same plan. */
typedef struct {
    int threads;   /* compute threads (OpenMP) */
    int shares;    /* batch shares (nn/team.h); 1: unsplit */
    long images;   /* images in the data when the run started */
} run_plan;

/* run.json as a cJSON object (the caller deletes it). */
struct cJSON *runstate_to_json(const train_opts *o, long total, const run_plan *plan);

/* Parse run.json's text[0..len): fills the options it holds into *o (data
 * paths point into *keep, which the caller deletes), *total and *plan
 * (fields absent from an older run.json are 0). what names the file. */
int runstate_parse_json(const char *text, size_t len, const char *what, train_opts *o, long *total,
                        run_plan *plan, struct cJSON **keep, sx_err *err);

typedef struct {
    char magic[8];            /* "SKXTRAIN" */
    uint32_t version, pad;
    int64_t step, adam_step, position;
    uint64_t n_floats;
} state_header;

/* The FNV-1a checksum the state file ends with, over header, m and v. */
uint64_t runstate_checksum(const state_header *h, const float *m, const float *v, size_t n);

/* Check a header read from what: magic, version, non-negative counters and
 * n_floats == n_params. */
int runstate_check_header(const state_header *h, size_t n_params, const char *what, sx_err *err);

/* Parse a whole training_state.bin held in bytes[0..len) for a model of
 * n_params parameters: m and v (n_params floats each) are filled. */
int runstate_parse_state(const uint8_t *bytes, size_t len, size_t n_params, const char *what, state_header *h,
                         float *m, float *v, sx_err *err);

#endif
