/* probe.h: frozen-encoder features and a linear head trained on them (the
 * linear probe of the SKELEX protocol), and the probe protocol itself.
 * Features are the final-LayerNorm CLS token and the mean of the patch
 * tokens, concatenated (2*D values). */
#ifndef SKELEX_PROBE_H
#define SKELEX_PROBE_H
#include "nn/classifier.h"
#include "data/split.h"
#include <stdio.h>

/* Features of n images (2*D floats each), batch by batch; progress (may be
 * NULL) gets progress lines. An image that cannot be read, or whose
 * features are not finite (NaN weights), is an error naming it. */
int features_extract(mae_model *m, const char *const *paths, size_t n, int batch, float *feats, FILE *progress,
                     sx_err *err);
/* The same from the outputs of encoder blocks layers[0..n_layers) (1-based,
 * the residual stream before the final LayerNorm), CLS and patch mean per
 * block, concatenated: 2*D*n_layers floats an image. n_layers 0: as
 * features_extract. A layer outside 1..num_hidden_layers is an error. */
int features_extract_layers(mae_model *m, const char *const *paths, size_t n, int batch, const int *layers,
                            int n_layers, float *feats, FILE *progress, sx_err *err);

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
/* logits: (n, K) raw head outputs (the target standardised for HEAD_LINEAR). */
void linear_head_logits(const linear_head *h, const float *X, size_t n, float *logits);
/* out: (n, K) probabilities (softmax / sigmoid) or (n) values. */
void linear_head_predict(const linear_head *h, const float *X, size_t n, float *out);
/* The head's outputs in the eval_set layout, exactly as a classifier with
 * these logits gives them (classifier_outputs): prob (n x max(K,2)) or pred
 * (n) in the target's units; either may be NULL. */
void linear_head_outputs(const linear_head *h, task_type type, int n_classes, const float *X, size_t n, double *prob,
                         double *pred);
void linear_head_free(linear_head *h);

/* ------------------------------------------------------------------------ */
/* The protocol (`skelex probe`)                                            */

typedef struct {
    const char *model;          /* encoder checkpoint (MAE or ViT) */
    const char *out;            /* results folder, created */
    const double *fractions;    /* training-label fractions in (0, 1], distinct */
    int n_fractions;
    int batch, iters;           /* feature batch; head iterations (>= 10) */
    double lr, wd;              /* head AdamW */
    uint64_t seed;              /* subsampling and bootstrap seed */
    FILE *progress;             /* feature progress lines (NULL: none) */
    FILE *table;                /* one line per fraction and fold, then the means (NULL: none) */
    const task *external;       /* an external test set (same label space), or NULL */
    const int *layers;          /* encoder blocks whose outputs are the features (1-based), */
    int n_layers;               /* or 0: the final LayerNorm's output (the default) */
} probe_opts;

/* probe_opts_default: batch 32, iters 300, lr 0.01, wd 1e-4, fraction 1. */
void probe_opts_default(probe_opts *o);

/* Features of every image of t are extracted once (features.npy); per label
 * fraction F and fold k of sp a head is trained on the fold's training part
 * (subsampled to F), its best iteration chosen on the fold's validation part,
 * and scored on the test split: out/frac_F/foldk/ gets predictions.csv
 * (image, label, per-class probability, predicted, fold), metrics.json and
 * the plots; out/split.json and out/results.json (per fold metrics and
 * mean/SD over folds). With an external task (external.h) every one of its
 * samples is scored by each fold's head too: out/external_features.npy,
 * out/frac_F/foldk/external/ (predictions.csv, metrics.json, plots), the
 * fold's metrics get an "external" object and results.json
 * frac_<F>_external_<metric>_mean / _sd and "external" (the task's name,
 * root and counts). Every file is written atomically and every write
 * failure is an error. A head or encoder that diverges (non-finite
 * features or weights) is an error, never a silent NaN. */
int probe_run(const task *t, const split *sp, const probe_opts *o, sx_err *err);

#endif
