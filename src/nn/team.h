/* team.h: one training step's forward and backward split across the cores.
 *
 * Each OpenMP thread takes a share of the batch and runs the whole forward
 * and backward on it with its own activations and gradients (a replica that
 * shares the weights, mae_build_replica). The matrix products then run one
 * per core, where oneDNN's single-threaded kernels are at their best, and no
 * layer waits at a barrier. The gradients are summed afterwards, each share
 * weighted by its number of images (every image has the same number of
 * masked patches), so the result is the whole batch's loss and gradient, as
 * mae_forward + mae_backward give it, up to float rounding. Measured on 2
 * cores (ViT-B MAE, batch 32, steps alternating in one process): 3 to 7 %
 * faster than each product on both cores. It costs one more gradient buffer
 * per extra share (0.45 GB for ViT-B).
 *
 * At bf16 too: each share runs its products in its replica's own context
 * (primitive cache, buffers), reading the owner's bf16 weight copies, which
 * are refreshed before the shares start. Off (one share) for batches of one
 * image, and when SKELEX_SPLIT=0; fewer
 * shares when their extra gradient buffers would take more than a quarter of
 * the memory available. */
#ifndef SKELEX_TEAM_H
#define SKELEX_TEAM_H
#include "nn/model.h"

#define MAE_TEAM_MAX 4  /* shares at most: each costs a gradient buffer */

typedef struct {
    int n;             /* shares; 1: the step runs on m alone */
    mae_model *m;      /* the caller's model: share 0, and where the gradients end up */
    mae_model *rep;    /* n - 1 replicas for shares 1 .. n-1 */
} mae_team;

/* Plan a team for batches of up to B images over m, with one share per
 * OpenMP thread (at most MAE_TEAM_MAX). */
int  mae_team_init(mae_team *t, mae_model *m, int B, sx_err *err);
/* Forward and backward of the B images: the gradients accumulate into
 * m->grads (as mae_backward does; call mae_zero_grad first for a fresh step)
 * and m->loss is the batch's loss. m's activations afterwards hold share 0
 * only. */
int  mae_team_step(mae_team *t, const float *pixels, const float *noise, int B, sx_err *err);
void mae_team_free(mae_team *t);

#endif
