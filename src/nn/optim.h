/* optim.h: AdamW (decoupled weight decay, as torch.optim.AdamW) and global
 * gradient-norm clipping (as torch.nn.utils.clip_grad_norm_). Weight decay
 * applies only to tensors flagged PARAM_DECAY; frozen and absent tensors are
 * never touched. */
#ifndef SKELEX_OPTIM_H
#define SKELEX_OPTIM_H
#include "nn/model.h"

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    long step;            /* number of updates done */
    float *m, *v;         /* first and second moments, one per parameter float */
    size_t n;
} adamw;

void adamw_init(adamw *o, const mae_model *model, float lr, float beta1, float beta2, float eps, float wd);
void adamw_free(adamw *o);
void adamw_step(adamw *o, mae_model *model);

/* One AdamW update (torch.optim.AdamW arithmetic) of n floats p with
 * gradient g and moments m, v at update number step (1-based); wd is the
 * weight decay (0 for tensors without decay). adamw_step applies it to every
 * trainable tensor; fine-tuning calls it per tensor with its own lr. */
void adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float wd, float beta1,
                  float beta2, float eps, long step);

/* Global L2 norm of the trainable gradients; if max_norm > 0, scale them by
 * max_norm / (norm + 1e-6) when that is below 1. Returns the norm before. */
float grad_clip(mae_model *model, float max_norm);

#endif
