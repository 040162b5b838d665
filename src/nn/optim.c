/* optim.c: AdamW and gradient clipping over the flat parameter buffer. */
#include "nn/optim.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void adamw_init(adamw *o, const mae_model *model, float lr, float beta1, float beta2, float eps, float wd) {
    *o = (adamw){lr, beta1, beta2, eps, wd, 0, NULL, NULL, model->n_floats};
    o->m = sx_alloc_large(o->n * sizeof(float));
    o->v = sx_alloc_large(o->n * sizeof(float));
    if (!o->m || !o->v) { fprintf(stderr, "skelex: out of memory for optimizer state\n"); exit(4); }
    memset(o->m, 0, o->n * sizeof(float));
    memset(o->v, 0, o->n * sizeof(float));
}

void adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float wd, float b1, float b2,
                  float eps, long step) {
    double bc1 = 1.0 - pow(b1, (double)step), bc2 = 1.0 - pow(b2, (double)step);
    float step_size = (float)(lr / bc1), inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2)), decay = 1.0f - lr * wd;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        p[i] *= decay;                                   // decoupled weight decay
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        float denom = sqrtf(v[i]) * inv_sqrt_bc2 + eps;  // as torch: sqrt(v)/sqrt(bc2) + eps
        p[i] -= step_size * m[i] / denom;
    }
}

void adamw_free(adamw *o) {
    sx_free_large(o->m, o->n * sizeof(float));
    sx_free_large(o->v, o->n * sizeof(float));
    o->m = o->v = NULL;
}

void adamw_step(adamw *o, mae_model *model) {
    o->step++;
    for (int t = 0; t < model->n_info; t++) {
        const param_info *pi = &model->info[t];
        if (pi->flags & (PARAM_FROZEN | PARAM_ABSENT)) continue;
        size_t off = pi->offset;
        adamw_update(model->params + off, model->grads + off, o->m + off, o->v + off, pi->numel, o->lr,
                     (pi->flags & PARAM_DECAY) ? o->weight_decay : 0.0f, o->beta1, o->beta2, o->eps, o->step);
    }
    mae_weights_changed(model);   /* bf16 copies: refreshed once, before the next product */
}

float grad_clip(mae_model *model, float max_norm) {
    double ss = 0.0;
    for (int t = 0; t < model->n_info; t++) {
        const param_info *pi = &model->info[t];
        if (pi->flags & (PARAM_FROZEN | PARAM_ABSENT)) continue;
        const float *g = model->grads + pi->offset;
        double s = 0.0;
#pragma omp parallel for reduction(+ : s) schedule(static)
        for (size_t i = 0; i < pi->numel; i++) s += (double)g[i] * g[i];
        ss += s;
    }
    float norm = (float)sqrt(ss);
    if (max_norm > 0.0f) {
        float coef = max_norm / (norm + 1e-6f);
        if (coef < 1.0f)
            for (int t = 0; t < model->n_info; t++) {
                const param_info *pi = &model->info[t];
                if (pi->flags & (PARAM_FROZEN | PARAM_ABSENT)) continue;
                float *g = model->grads + pi->offset;
                for (size_t i = 0; i < pi->numel; i++) g[i] *= coef;
            }
    }
    return norm;
}
