/* api_internal.h: what the opaque handles of include/skelex.h hold, and the
 * helpers the src/api files share. Not installed; not part of the contract. */
#ifndef SKELEX_API_INTERNAL_H
#define SKELEX_API_INTERNAL_H
#include "skelex.h"
#include "io/image.h"
#include "nn/classifier.h"
#include "nn/model.h"
#include "adapt/heads.h"

struct skx_image {
    gray_image g;       /* raw intensities, as the loaders give them */
    uint8_t *gray8;     /* g after the per-image min-max (made at load) */
};

struct skx_model {
    skx_model_kind kind;
    mae_model mae;      /* SKX_MODEL_MAE: the shared weights (no forward runs on it) */
    classifier cls;     /* SKX_MODEL_CLASSIFIER: encoder weights + head */
    char name[256];
    /* classifier: its output groups, member indices in skx output numbering
     * (a binary head's one logit is output 1); n_groups 0 for regression */
    head_layout layout;
    int multihead;      /* config.json has "groups": probabilities per group (heads_probs) */
};

/* Read the groups of classifier m from dir/config.json into m->layout. */
int api_load_groups(skx_model *m, const char *dir, sx_err *e);

struct skx_ctx {
    const skx_model *m;
    int max_batch, threads;
    mae_model rep;      /* a replica over m's weights: its own activations */
    int have_rep;
    classifier cls;     /* classifier: enc is a replica, head pointers are m's */
};

/* Fill *err (may be NULL) with code and msg; returns code. */
int api_fail(skx_error *err, int code, const char *msg);
/* The skx_code for an sx_err message from the library (its words: "not
 * found", "too large", "out of memory", ...), else dflt. */
int api_code_of(const char *msg, int dflt);
/* api_fail with api_code_of(e->msg, dflt). */
int api_fail_sx(skx_error *err, const sx_err *e, int dflt);
void api_ok(skx_error *err);


/* Run the calling thread's compute with ctx's thread count; restore after. */
int api_threads_begin(const skx_ctx *ctx);
void api_threads_end(int saved);

/* dir/config.json (at most max_bytes), which must be a JSON object; its path
 * goes to path[cap]. The tree, or NULL with err ("PATH: not a JSON object
 * (corrupt config)" when it is not one). */
struct cJSON *api_config_json(const char *dir, size_t max_bytes, char *path, size_t cap, sx_err *err);

#endif
