/* probe.h: frozen-encoder features and a linear head trained on them (the
 * linear probe of the SKELEX protocol). Features are the final-LayerNorm
 * CLS token and the mean of the patch tokens, concatenated (2*D values). */
#ifndef SKELEX_PROBE_H
#define SKELEX_PROBE_H
#include "nn/model.h"


/* Features of n images (2*D floats each), batch by batch, with progress on
 * stderr. An image that cannot be read is an error naming it. */
int features_extract(mae_model *m, const char *const *paths, size_t n, int batch, float *feats, sx_err *err);

typedef enum { HEAD_SOFTMAX, HEAD_SIGMOID, HEAD_LINEAR } head_kind;   /* multiclass/ordinal, binary, regression */

typedef struct {
    head_kind kind;
    int F, K;               /* inputs, outputs (1 for sigmoid and linear) */
    float *mean, *std;      /* feature standardisation (from the training set) */
    float *w, *b;           /* (K, F), (K) */
    float y_mean, y_std;    /* regression target standardisation */
} linear_head;

/* Train on X (n, F) with labels y (class index, or target value for
 * HEAD_LINEAR): full-batch AdamW on standardised features. Every 10
 * iterations the head is scored on (Xv, yv) with score_fn (higher is better)
 * and the best iteration's weights are kept. */
typedef double (*head_score_fn)(const linear_head *h, const float *X, const float *y, size_t n, void *ctx);
int linear_head_train(linear_head *h, head_kind kind, int K, const float *X, const float *y, size_t n, int F,
                      const float *Xv, const float *yv, size_t nv, head_score_fn score, void *ctx,
                      int iters, float lr, float wd);
/* out: (n, K) probabilities (softmax / sigmoid) or (n) values. */
void linear_head_predict(const linear_head *h, const float *X, size_t n, float *out);
void linear_head_free(linear_head *h);

#endif
