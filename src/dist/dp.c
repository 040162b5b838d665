/* dp.c: gradient reduction and the (optionally sharded) AdamW step; see dp.h. */
#include "dist/dp.h"

int dp_reduce_grads(dist_comm *c, mae_model *m, float scale, int zero1, size_t bucket, sx_err *err) {
    if (scale != 1.0f)
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < m->n_floats; i++) m->grads[i] *= scale;
    if (zero1) return dist_reduce_scatter_sum(c, m->grads, m->n_floats, err);
    return dist_allreduce_sum(c, m->grads, m->n_floats, bucket, err);
}

void dp_adamw_step_range(adamw *o, mae_model *m, size_t lo, size_t hi) {
    o->step++;
    for (int t = 0; t < m->n_info; t++) {
        const param_info *pi = &m->info[t];
        if (pi->flags & (PARAM_FROZEN | PARAM_ABSENT)) continue;
        size_t a = pi->offset > lo ? pi->offset : lo, b = pi->offset + pi->numel < hi ? pi->offset + pi->numel : hi;
        if (a >= b) continue;
        adamw_update(m->params + a, m->grads + a, o->m + a, o->v + a, b - a, o->lr,
                     (pi->flags & PARAM_DECAY) ? o->weight_decay : 0.0f, o->beta1, o->beta2, o->eps, o->step);
    }
}

int dp_optimizer_step(dist_comm *c, adamw *o, mae_model *m, int zero1, sx_err *err) {
    if (!zero1 || c->size == 1) { adamw_step(o, m); return 0; }
    size_t lo, hi;
    dist_range(m->n_floats, c->rank, c->size, &lo, &hi);
    dp_adamw_step_range(o, m, lo, hi);
    return dist_allgather(c, m->params, m->n_floats, err);
}

int dp_gather_state(dist_comm *c, adamw *o, int zero1, sx_err *err) {
    if (!zero1 || c->size == 1) return 0;
    if (dist_gather(c, o->m, o->n, 0, err)) return -1;
    return dist_gather(c, o->v, o->n, 0, err);
}
