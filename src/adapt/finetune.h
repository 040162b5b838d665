/* finetune.h: full fine-tuning of a classifier on one cross-validation fold
 * (the SKELEX downstream protocol), and batched prediction.
 *
 *  - images of the task are decoded once into an image cache (image_cache.h);
 *    training augments from the cache (augment.h), allocating once per run;
 *  - AdamW (decoupled decay on weight matrices and the head weight only)
 *    with layer-wise lr decay: the lr of a tensor is
 *    lr * layer_decay^(L + 1 - layer_id) (classifier_layer_id);
 *  - schedule per step: linear warmup for warmup_epochs, then cosine to min_lr;
 *  - a batch may be split into micro-batches whose gradients add up to the
 *    whole batch's (same result, less memory);
 *  - a run that diverges is an error: a non-finite loss (stopped at that
 *    step), or an epoch whose mean training loss exceeds FT_DIVERGED_X times
 *    the chance-level loss (ln K; ln 2 for binary; 1 for the standardised
 *    regression target);
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
#include "data/image_cache.h"
#include "data/split.h"
#include "data/task.h"


#define FT_DIVERGED_X 50

typedef struct {
    int epochs, warmup_epochs, batch, micro_batch, eval_batch;
    double lr, min_lr, layer_decay, weight_decay, beta1, beta2, eps, clip;
    int augment;
    int balance;                /* weight the loss by n / (K n_k) of the training part (classification) */
    cls_aug aug;
    uint64_t seed;
    int quiet;                  /* no progress lines */
    FILE *progress;             /* progress lines go here (NULL: none) */
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
/* Fold k's folders under out: out/foldk, out/foldk/best, out/foldk/test, and the label "fold k". */
enum { FT_FDIR = 4400, FT_FPATH = 4500, FT_FLABEL = 32 };
void ft_fold_paths(const char *out, int k, char fdir[FT_FDIR], char best[FT_FPATH], char tdir[FT_FPATH],
                   char label[FT_FLABEL]);

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

/* The outputs on samples idx of t (prob n x max(K,2), or pred for
 * regression) into dir (created): predictions.csv (with a fold column when
 * fold >= 0), metrics.json (with "fold") and the plots titled title; every
 * file written atomically, any failure an error. Returns the metrics object
 * (the caller deletes it) or NULL with err. finetune_evaluate and the probe
 * both write through this. */
/* mkdir dir (an existing one is fine), or an error naming it. */
int adapt_mkdir(const char *dir, sx_err *err);
/* Create the results folder out and write out/split.json (atomically). */
int adapt_start_out(const char *out, const task *t, const split *sp, sx_err *err);

struct cJSON *adapt_write_outputs(const task *t, const size_t *idx, size_t n, const double *prob, const double *pred,
                                  int fold, const char *dir, const char *title, uint64_t seed, sx_err *err);

/* ------------------------------------------------------------------------ */
/* The protocol (`skelex finetune`)                                         */

#define FT_MAX_FOLDS 100

typedef struct {
    const char *model;          /* start from this MAE or ViT checkpoint, or */
    const mae_config *config;   /* ... (model NULL) from random initialisation of this architecture */
    const char *init_name;      /* what results.json names as the start (model dir or config name) */
    const char *out;            /* results folder */
    int force;                  /* overwrite an existing results folder */
    const unsigned char *only;  /* NULL: every fold; else only[k] != 0 runs fold k (sp->folds entries) */
    double label_fraction;      /* of each fold's training labels, (0, 1] */
    ft_opts ft;                 /* the training options; ft.seed is the run's seed */
    FILE *table;                /* one line per fold and the mean (NULL: none) */
    const task *external;       /* an external test set (same label space), or NULL */
} finetune_run_opts;

/* Per chosen fold k of sp: a classifier from model/config is fine-tuned on
 * the fold's training part (label_fraction of it), the best validation
 * epoch saved to out/fold<k>/best, and that saved model scored on the test
 * split (out/fold<k>/test/: predictions.csv, metrics.json, plots); out gets
 * split.json and results.json (per fold metrics, mean/SD). out must not
 * hold anything yet unless force. With an external task (external.h) the
 * same saved model scores every one of its samples: out/fold<k>/external/,
 * the fold's metrics get an "external" object, results.json "external"
 * (the task) and "external_summary" (mean/SD beside "summary"). Every
 * failure (a diverged run, a write) is an error. */
int finetune_run(const task *t, const split *sp, const finetune_run_opts *o, sx_err *err);

#endif
