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
/* After a step's micro-batches: 0, or -1 with "diverged" when the summed loss is not finite. */
int ft_check_step(double lsum, int ep, long s, const ft_opts *o, sx_err *err);
/* Append epoch ep to res->log; NULL with err when its training loss is over
 * FT_DIVERGED_X x the chance loss (the run diverged). */
ft_epoch *ft_log_epoch(ft_result *res, int ep, double train_loss, double lr, double chance, const ft_opts *o,
                       sx_err *err);
/* dir/log.csv and the plots of the epochs so far. */
void ft_write_logs(const char *dir, const ft_result *r, int regression);

#endif
