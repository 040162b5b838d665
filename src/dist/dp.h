/* dp.h: the data-parallel training step over dist_comm (comm.h).
 *
 * Every rank runs the forward and backward of its share of the global batch
 * (dist_share) and so holds its share's mean-loss gradient. dp_reduce_grads
 * scales it by the share's weight (count / global, and 1/accum) and sums it
 * over the ranks, so every rank holds the global batch's gradient, as one
 * process with the whole batch computes it (up to float rounding). Then
 *  - plain: every rank applies the same AdamW step to the whole model;
 *  - ZeRO-1 (zero1): the sum is a reduce-scatter, each rank updates only its
 *    range of the flat parameters (dist_range) with its range of the
 *    moments, and an all-gather hands every rank the new parameters. The
 *    arithmetic per parameter is AdamW's, so the result is the plain step's.
 *    The moments stay full-sized in memory (the checkpoint format holds them
 *    whole); dp_gather_state collects the ranges on rank 0 before a save.
 * Gradient clipping needs the whole gradient: not with zero1. */
#ifndef SKELEX_DIST_DP_H
#define SKELEX_DIST_DP_H
#include "dist/comm.h"
#include "nn/model.h"
#include "nn/optim.h"

/* grads *= scale, then the sum over the ranks (all of it, or this rank's
 * range with zero1). bucket: floats per MPI call (0: default). */
int  dp_reduce_grads(dist_comm *c, mae_model *m, float scale, int zero1, size_t bucket, sx_err *err);
/* One AdamW update (o->step advances) of the trainable floats in [lo, hi)
 * of the flat parameter buffer: exactly adamw_step restricted to them. */
void dp_adamw_step_range(adamw *o, mae_model *m, size_t lo, size_t hi);
/* The optimizer step of every rank (plain or zero1, see above). */
int  dp_optimizer_step(dist_comm *c, adamw *o, mae_model *m, int zero1, sx_err *err);
/* zero1: every rank's moment ranges to rank 0 (collective; no-op otherwise). */
int  dp_gather_state(dist_comm *c, adamw *o, int zero1, sx_err *err);

#endif
