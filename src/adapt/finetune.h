/* finetune.h: full fine-tuning of a classifier on one cross-validation fold
 * (the SKELEX downstream protocol), and batched prediction.
 *
 *  - images of the task are decoded once into an image cache: min-max to 8
 *    bits and Pillow-bilinear resize to S x S, exactly the model's plain
 *    preprocessing (image_preprocess); training augments from the cache;
 *  - AdamW (decoupled decay on weight matrices and the head weight only)
 *    with layer-wise lr decay: the lr of a tensor is
 *    lr * layer_decay^(L + 1 - layer_id) (classifier_layer_id);
 *  - schedule per step: linear warmup for warmup_epochs, then cosine to min_lr;
 *  - a batch may be split into micro-batches whose gradients add up to the
 *    whole batch's (same result, less memory);
 *  - after every epoch the model is scored on the fold's validation part
 *    (AUROC, or -MAE for regression; the validation loss when AUROC is
 *    undefined; ties go to the lower validation loss); a better epoch is
 *    saved at once to best_dir (HF
 *    ViTForImageClassification), so best_dir always holds the best epoch so
 *    far, never the last one by accident.
 * Not here: splits (split.c), metrics (metrics.c), the command (cli). */
#ifndef SKELEX_FINETUNE_H
#define SKELEX_FINETUNE_H
#include "nn/classifier.h"
#include "data/data.h"
#include "data/task.h"

typedef struct {
    int S;
    size_t n;
    uint8_t *px;   /* n images of S*S bytes, in task sample order */
} image_cache;

/* Decode n images (threads in parallel, progress on stderr); image i of the
 * cache is paths[i]. An image that cannot be read is an error naming it. */
int image_cache_build(image_cache *ic, const char *const *paths, size_t n, int S, sx_err *err);
void image_cache_free(image_cache *ic);
/* Sample i as the model's input (3,S,S), augmented when a != NULL. */
void image_cache_input(const image_cache *ic, size_t i, const cls_aug *a, sx_rng *r, float *chw);

typedef struct {
    int epochs, warmup_epochs, batch, micro_batch, eval_batch;
    double lr, min_lr, layer_decay, weight_decay, beta1, beta2, eps, clip;
    int augment;
    int balance;                /* weight the loss by n / (K n_k) of the training part (classification) */
    cls_aug aug;
    uint64_t seed;
    int quiet;                  /* no progress lines */
    /* Called after each epoch's update, before validation (tests use it). */
    void (*epoch_hook)(int epoch, classifier *c, void *ctx);
    void *hook_ctx;
} ft_opts;

/* SKELEX defaults: 50 epochs, warmup 5, batch 64 (micro 32), lr 5e-5,
 * min_lr 0, layer decay 0.75, wd 0.05, betas (0.9, 0.999), no clipping,
 * augmentation on (cls_aug_default). */
void ft_opts_default(ft_opts *o);

typedef struct {
    int epoch;                  /* 1-based */
    double train_loss, val_loss, val_score, lr, seconds;
} ft_epoch;

typedef struct {
    ft_epoch *log;              /* one per epoch */
    int n_log, best_epoch;
    double best_score;
} ft_result;

/* Train c on samples tr (ntr) of t, validate on va (nva) after each epoch;
 * the best epoch goes to best_dir. log_dir (may be NULL) gets log.csv and
 * curves.svg, rewritten every epoch. On return c holds the LAST epoch's
 * weights: load best_dir for the chosen model. */
int finetune_fold(classifier *c, const task *t, const image_cache *ic, const size_t *tr, size_t ntr,
                  const size_t *va, size_t nva, const ft_opts *o, const char *best_dir, const char *log_dir,
                  const char *label, ft_result *res, sx_err *err);
void ft_result_free(ft_result *r);

/* The model's outputs on cache images idx (no augmentation), in the
 * eval_set layout: prob (n x max(K,2)) or pred (n); either may be NULL; loss
 * (may be NULL) gets the mean loss against t's labels (t may be NULL for
 * unlabelled images: no loss, NaN). */
int finetune_predict(classifier *c, const task *t, const image_cache *ic, const size_t *idx, size_t n, int batch,
                     double *prob, double *pred, double *loss, sx_err *err);

/* Score c on the samples idx of t: dir (created) gets predictions.csv,
 * metrics.json and the plots of report_write_all titled title. Returns the
 * metrics object (the caller deletes it), or NULL with err. */
struct cJSON;
struct cJSON *finetune_evaluate(classifier *c, const task *t, const image_cache *ic, const size_t *idx, size_t n,
                                int batch, const char *dir, const char *title, uint64_t seed, sx_err *err);

/* The validation score of outputs (higher is better): AUROC, or -MAE. NaN
 * when undefined (a class missing). */
double finetune_score(const classifier *c, const task *t, const size_t *idx, size_t n, const double *prob,
                      const double *pred);

#endif
