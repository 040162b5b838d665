/* test_encode.c: the encoder-only path used for features and fine-tuning:
 * equal to the MAE encoder with nothing masked, and its backward equal to
 * finite differences. */
#include "io/checkpoint.h"
#include "core/rng.h"
#include "testlib.h"
#include <stdlib.h>
#include <string.h>

TEST(test_encode_matches_unmasked_mae) {
    sx_err err;
    mae_model a, b;
    CHECK(checkpoint_load("tests/fixtures/twin_pix", &a, &err) == 0);
    mae_config c = a.cfg;
    c.mask_ratio = 0.0;
    mae_model full;
    CHECK(mae_build(&full, &c, &err) == 0 && mae_build(&b, &c, &err) == 0);
    memcpy(full.params, a.params, a.n_floats * 4);
    memcpy(b.params, a.params, a.n_floats * 4);
    b.encoder_only = 1;
    int N = config_num_patches(&c), D = c.hidden_size, S = c.image_size;
    float *px = malloc(sizeof(float) * 2 * 3 * S * S), noise[2 * 16];
    sx_rng r;
    rng_seed(&r, 3);
    for (int i = 0; i < 2 * 3 * S * S; i++) px[i] = rng_normal(&r);
    for (int i = 0; i < 2 * N; i++) noise[i] = rng_uniform(&r);
    CHECK(mae_forward(&full, px, noise, 2, &err) == 0);
    CHECK(mae_encode(&b, px, 2, &err) == 0);
    CHECK(mae_forward(&b, px, noise, 2, &err) == -1);  // encoder-only has no decoder
    for (int s = 0; s < 2; s++) {
        // CLS rows agree; patch rows agree once the MAE's shuffle is undone
        for (int i = 0; i < D; i++) CHECK_NEAR(b.latent[(size_t)s * (N + 1) * D + i], full.latent[(size_t)s * (N + 1) * D + i], 1e-5);
        for (int j = 0; j < N; j++) {
            int n = full.ids_keep[s * N + j];
            const float *x = full.latent + ((size_t)s * (N + 1) + 1 + j) * D, *y = b.latent + ((size_t)s * (N + 1) + 1 + n) * D;
            for (int i = 0; i < D; i++) CHECK_NEAR(y[i], x[i], 1e-5);
        }
    }
    // backward against central differences on a few parameters of L = sum(latent * probe)
    float *probe = malloc(sizeof(float) * 2 * (N + 1) * D);
    for (int i = 0; i < 2 * (N + 1) * D; i++) probe[i] = rng_normal(&r);
    CHECK(mae_encode(&b, px, 2, &err) == 0);
    mae_zero_grad(&b);
    memcpy(mae_encode_grad(&b), probe, sizeof(float) * 2 * (N + 1) * D);
    mae_encode_backward(&b);
    const char *names[] = {"vit.embeddings.cls_token", "vit.encoder.layer.0.attention.attention.query.weight",
                           "vit.encoder.layer.1.intermediate.dense.bias", "vit.layernorm.weight",
                           "vit.embeddings.patch_embeddings.projection.weight"};
    for (int k = 0; k < 5; k++) {
        const param_info *pi = mae_find_param(&b, names[k]);
        for (int t = 0; t < 3; t++) {
            size_t at = pi->offset + (size_t)(t * 7919) % pi->numel;
            float keep = b.params[at], h = 1e-2f;
            double l[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                b.params[at] = keep + (sgn ? -h : h);
                mae_encode(&b, px, 2, &err);
                double acc = 0;
                for (int i = 0; i < 2 * (N + 1) * D; i++) acc += (double)b.latent[i] * probe[i];
                l[sgn] = acc;
            }
            b.params[at] = keep;
            double num = (l[0] - l[1]) / (2 * h), ana = b.grads[at];
            CHECKF(fabs(num - ana) <= 2e-2 * (fabs(ana) + 1e-1), "%s[%zu]: numeric %.5g analytic %.5g", names[k], at - pi->offset, num, ana);
        }
    }
    free(px); free(probe);
    mae_free(&a); mae_free(&b); mae_free(&full);
}
