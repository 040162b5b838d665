/* finetune_parts.h: the pieces of the fine-tuning loop (finetune.c) that
 * other loops over a classifier share: AdamW with layer-wise lr decay over
 * the encoder and the head, and the per-epoch logs (log.csv, curves.svg,
 * val_score.svg). The multi-head loop (finetune_heads.c) uses them. */
#ifndef SKELEX_FINETUNE_PARTS_H
#define SKELEX_FINETUNE_PARTS_H
#include "adapt/finetune.h"

typedef struct {
    float *m, *v, *hm, *hv;   /* moments of the encoder (flat) and the head (w then b) */
    float *scale;             /* per encoder tensor: lr multiplier; 0 = not trained */
    long step;
    size_t n;                 /* floats in m and v */
} ft_optim;

/* lr multipliers layer_decay^(L + 1 - layer_id); zero moments. */
int ft_optim_init(ft_optim *op, const classifier *c, double layer_decay, sx_err *err);
void ft_optim_free(ft_optim *op);
/* One AdamW step at lr (o's betas, eps, weight decay and clipping). */
void ft_optim_step(ft_optim *op, classifier *c, const ft_opts *o, double lr);
/* The epoch's order: a Fisher-Yates shuffle of perm drawing from r. */
void ft_shuffle(size_t *perm, size_t n, sx_rng *r);
/* The loop's set-up over the ntr training samples tr: steps per epoch
 * (*spe), in all (*total) and of warm-up (*warm); op initialised (as
 * ft_optim_init). The samples' order to shuffle (a copy of tr), or NULL with err. */
size_t *ft_loop_begin(ft_optim *op, const classifier *c, const ft_opts *o, const size_t *tr, size_t ntr, long *spe,
                      long *total, long *warm, sx_err *err);
/* A run's start: res's log for o->epochs epochs, no best score yet, shuf seeded
 * for the epochs' orders. The progress stream (NULL when quiet). */
FILE *ft_run_begin(ft_result *res, const ft_opts *o, sx_rng *shuf);
/* Step s of an epoch over the ntr samples of perm (at s == 0, perm is
 * shuffled from shuf: the epoch's order): the step's first position in perm
 * (its size in *B), the lr at global step `step` in *lr; c's gradients zeroed. */
size_t ft_step_begin(classifier *c, const ft_opts *o, size_t *perm, size_t ntr, sx_rng *shuf, long s, long step,
                     long total, long warm, size_t *B, double *lr);
/* After a step's micro-batches: 0, or -1 with "diverged" when the summed loss is not finite. */
int ft_check_step(double lsum, int ep, long s, const ft_opts *o, sx_err *err);
/* Append epoch ep to res->log; NULL with err when its training loss is over
 * FT_DIVERGED_X x the chance loss (the run diverged). */
ft_epoch *ft_log_epoch(ft_result *res, int ep, double train_loss, double lr, double chance, const ft_opts *o,
                       sx_err *err);
/* dir/log.csv and the plots of the epochs so far. */
void ft_write_logs(const char *dir, const ft_result *r, int regression);

#endif
