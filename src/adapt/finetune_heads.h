/* finetune_heads.h: fine-tuning a multi-head classifier (issue 16) under
 * the protocol of finetune.h: a fixed test split and k folds (split.c over
 * the task's strata and patients), per fold AdamW with layer-wise lr decay,
 * warmup + cosine, micro-batches, divergence checks, best epoch saved at
 * once to fold<k>/best and that model scored on the test split.
 *
 * Differences from finetune_run:
 *  - loss: the masked multi-head loss (heads_loss). With micro-batches each
 *    micro-batch's loss is normalised over its own known entries and
 *    weighted by its share of the batch (equal to the batch's loss when
 *    micro_batch >= batch);
 *  - training inputs: IoR crops (ior_crop.h) of the sample's image with its
 *    boxes (SKELEX defaults; images without a box take a random window),
 *    cut from a copy of the image decoded once with its long side at most
 *    crop_side pixels (default 2 x the model size, so a 0.2 crop is still
 *    ~0.4 x the model's resolution); ior = 0: the whole-image augmentation
 *    of finetune (cls_aug) instead;
 *  - best epoch: the highest mean validation AUROC (evaluate_heads.h: the
 *    AUROC of every sigmoid output and the macro AUROC of every softmax
 *    group over their known entries), ties to the lower validation loss;
 *  - the test split is scored with eval's whole-image metrics per group:
 *    fold<k>/test/{metrics.json, predictions.csv}; results.json has, per
 *    fold, n_train, n_val, best_epoch, val_score_best/last and the test
 *    metrics. The divergence bound is FT_DIVERGED_X x the chance loss
 *    (ln 2 for the sigmoid part + ln n_g per softmax group). */
#ifndef SKELEX_FINETUNE_HEADS_H
#define SKELEX_FINETUNE_HEADS_H
#include "adapt/finetune.h"
#include "adapt/ior_crop.h"
#include "data/multitask.h"

typedef struct {
    int ior;          /* 1 (default): IoR crops; 0: finetune's augmentation */
    int crop_side;    /* 0: 2 x image size */
    ior_params ip;    /* out_size is set from the model */
} fth_opts;

void fth_opts_default(fth_opts *h);

/* The protocol above on mt with the split sp (made over mt->view). */
int finetune_heads_run(const multitask *mt, const split *sp, const finetune_run_opts *o, const fth_opts *h, sx_err *err);

#endif
