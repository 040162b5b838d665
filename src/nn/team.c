/* team.c: the batch split across cores; see team.h. */
#include "nn/team.h"
#include "nn/gemm.h"
#include "core/common.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int mae_team_init(mae_team *t, mae_model *m, int B, sx_err *err) {
    const char *env = getenv("SKELEX_SPLIT");
    int n = omp_get_max_threads();
    if (n > MAE_TEAM_MAX) n = MAE_TEAM_MAX;
    if (n > B) n = B;
    if ((env && !strcmp(env, "0")) || m->encoder_only || n < 1) n = 1;
    // each extra share holds a gradient buffer (activations only split): keep
    // those within a quarter of the memory available now
    long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    double avail = pages > 0 && psz > 0 ? (double)pages * (double)psz : 0.0, grad = (double)m->n_floats * sizeof(float);
    while (n > 1 && avail > 0 && (n - 1) * grad > avail / 4) n--;
    *t = (mae_team){n, m, NULL};
    if (n == 1) return 0;
    // a share's own parallel loops must stay on its thread, never nest (the
    // libgomp default, unless OMP_NESTED or OMP_MAX_ACTIVE_LEVELS say otherwise)
    omp_set_max_active_levels(1);
    t->rep = sx_calloc((size_t)n - 1, sizeof *t->rep);
    for (int k = 0; k < n - 1; k++)
        if (mae_build_replica(&t->rep[k], m, err)) {
            t->n = k + 1;  /* free what was built */
            mae_team_free(t);
            return -1;
        }
    return 0;
}

void mae_team_free(mae_team *t) {
    for (int k = 0; k < t->n - 1; k++) mae_free(&t->rep[k]);
    free(t->rep);
    *t = (mae_team){0};
}

int mae_team_step(mae_team *t, const float *pixels, const float *noise, int B, sx_err *err) {
    mae_model *m = t->m;
    int n = t->n < B ? t->n : B;
    if (n <= 1) {
        if (mae_forward(m, pixels, noise, B, err)) return -1;
        mae_backward(m);
        return 0;
    }
    const mae_config *c = &m->cfg;
    size_t px = (size_t)c->num_channels * c->image_size * c->image_size, np = (size_t)config_num_patches(c);
    int rc[MAE_TEAM_MAX] = {0};
    sx_err errs[MAE_TEAM_MAX];
    float loss = 0.0f;
    mae_bf16_sync(m);   /* the shares read the owner's bf16 weight copies: refresh them before the region */
    // one share per thread; nested regions inside (the layers' loops, oneDNN) run on that thread alone
#pragma omp parallel num_threads(n) reduction(+ : loss)
    for (int k = omp_get_thread_num(); k < n; k += omp_get_num_threads()) {
        mae_model *r = k ? &t->rep[k - 1] : m;
        int b0 = (int)((long)B * k / n), b1 = (int)((long)B * (k + 1) / n);
        float w = (float)(b1 - b0) / (float)B;
        if (k) memset(r->grads, 0, r->n_floats * sizeof(float));
        rc[k] = mae_forward(r, pixels + b0 * px, noise + b0 * np, b1 - b0, &errs[k]);
        if (rc[k]) continue;
        r->grad_scale = w;
        mae_backward(r);
        r->grad_scale = 1.0f;
        loss += w * r->loss;
    }
    for (int k = 0; k < n; k++)
        if (rc[k]) { *err = errs[k]; return -1; }
    float *g = m->grads;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < m->n_floats; i++)
        for (int k = 0; k < n - 1; k++) g[i] += t->rep[k].grads[i];
    m->loss = loss;
    return 0;
}
