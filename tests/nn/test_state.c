/* test_state.c: per-model state. Two models with different precisions,
 * trained in two threads at once, give bit for bit what each gives alone:
 * precision, the bf16 primitive cache and the profile counters belong to
 * each model's product context, not to the process. */
#include "nn/model.h"
#include "nn/gemm.h"
#include "testlib.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    sx_precision prec;
    float loss[3];
    float *grads;       /* after the last step (malloc'ed copy) */
    size_t n;
    int ok;
} run;

static void *train3(void *v) {
    run *r = v;
    sx_err err;
    mae_config c = tl_toy_config(32);
    c.hidden_size = 128; c.intermediate_size = 256; c.num_attention_heads = 4;   /* products over 1e6 flops: bf16 would engage */
    c.decoder_hidden_size = 64; c.decoder_intermediate_size = 128;
    mae_model m;
    r->ok = mae_build(&m, &c, &err) == 0;
    if (!r->ok) return NULL;
    mae_init_weights(&m, 17);
    mae_set_precision(&m, r->prec);
    r->ok = mae_precision(&m) == r->prec;
    int B = 4, N = config_num_patches(&c), S = c.image_size;
    float *px = malloc(sizeof(float) * (size_t)B * 3 * S * S), *noise = malloc(sizeof(float) * (size_t)B * N);
    for (int i = 0; i < B * 3 * S * S; i++) px[i] = (float)sin(i * 0.011);
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < B * N; i++) noise[i] = (float)sin(i * 1.7 + s);
        r->ok &= mae_forward(&m, px, noise, B, &err) == 0;
        mae_zero_grad(&m);
        mae_backward(&m);
        r->loss[s] = m.loss;
    }
    r->n = m.n_floats;
    r->grads = malloc(sizeof(float) * r->n);
    memcpy(r->grads, m.grads, sizeof(float) * r->n);
    free(px); free(noise);
    mae_free(&m);
    return NULL;
}

TEST(test_two_models_two_precisions_two_threads) {
    sx_precision before = gemm_get_precision();
    run alone[2] = {{.prec = PREC_FP32}, {.prec = PREC_BF16}}, both[2] = {{.prec = PREC_FP32}, {.prec = PREC_BF16}};
    for (int k = 0; k < 2; k++) train3(&alone[k]);
    pthread_t t[2];
    for (int k = 0; k < 2; k++) CHECK(pthread_create(&t[k], NULL, train3, &both[k]) == 0);
    for (int k = 0; k < 2; k++) pthread_join(t[k], NULL);
    for (int k = 0; k < 2; k++) {
        CHECK(alone[k].ok && both[k].ok && alone[k].n == both[k].n);
        for (int s = 0; s < 3; s++) CHECKF(alone[k].loss[s] == both[k].loss[s], "model %d step %d: %.9g vs %.9g", k, s,
                                           alone[k].loss[s], both[k].loss[s]);
        CHECK(isfinite(alone[k].loss[2]));
        if (alone[k].grads && both[k].grads) CHECK(!memcmp(alone[k].grads, both[k].grads, sizeof(float) * alone[k].n));
        free(alone[k].grads); free(both[k].grads);
    }
    // bf16 (where this CPU has it) rounds: the two models then differ; fp32 is the reference either way
    if (gemm_bf16_available()) CHECK(alone[0].loss[0] != alone[1].loss[0]);
    else fprintf(stderr, "    (no bf16 on this CPU: the bf16 model ran its products in fp32)\n");
    CHECK(gemm_get_precision() == before);   // a model's precision is not the process default
}

TEST(test_model_precision_follows_default_until_set) {
    sx_err err;
    mae_config c = tl_toy_config(32);
    mae_model a, b;
    CHECK(mae_build(&a, &c, &err) == 0 && mae_build(&b, &c, &err) == 0);
    sx_precision before = gemm_get_precision();
    gemm_set_precision(PREC_BF16);
    CHECK(mae_precision(&a) == PREC_BF16 && mae_precision(&b) == PREC_BF16);
    mae_set_precision(&b, PREC_FP32);
    CHECK(mae_precision(&a) == PREC_BF16 && mae_precision(&b) == PREC_FP32);
    gemm_set_precision(PREC_FP32);
    mae_set_precision(&a, PREC_BF16);
    CHECK(mae_precision(&a) == PREC_BF16 && mae_precision(&b) == PREC_FP32);
    gemm_set_precision(before);
    mae_free(&a); mae_free(&b);
}
