/* test_probe_layers.c: probe features from chosen encoder blocks
 * (`skelex probe --layers`): the last block's CLS after the final LayerNorm
 * is the default feature's CLS; blocks concatenate in the order given. */
#include "adapt/probe.h"
#include "io/checkpoint.h"
#include "io/image.h"
#include "testlib.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

TEST(probe_features_from_chosen_blocks) {
    sx_err err;
    mae_model m;
    CHECKF(checkpoint_load_encoder_inference("tests/fixtures/twin_pix", &m, &err) == 0, "%s", err.msg);
    if (!m.params) return;
    const mae_config *c = &m.cfg;
    int D = c->hidden_size, L = c->num_hidden_layers;
    CHECK(L >= 2);
    const char *paths[2] = {tl_path("a.png"), tl_path("b.png")};
    uint8_t px[48 * 40];
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 48 * 40; i++) px[i] = (uint8_t)(30 + (i * (k + 3)) % 200);
        CHECK(png_write_u8(paths[k], px, 48, 40, 1, &err) == 0);
    }
    float *fin = malloc(sizeof(float) * 2 * 2 * D), *last = malloc(sizeof(float) * 2 * 2 * D);
    float *both = malloc(sizeof(float) * 2 * 4 * D);
    int only_last[1] = {L}, first_last[2] = {1, L};
    CHECK(features_extract(&m, paths, 2, 2, fin, NULL, &err) == 0);
    CHECK(features_extract_layers(&m, paths, 2, 2, only_last, 1, last, NULL, &err) == 0);
    CHECK(features_extract_layers(&m, paths, 2, 2, first_last, 2, both, NULL, &err) == 0);
    double worst = 0, diff_first = 0, diff_final = 0;
    for (int b = 0; b < 2; b++) {
        const float *x = last + (size_t)b * 2 * D;   /* block L's CLS, before the final LayerNorm */
        double mu = 0, var = 0;
        for (int i = 0; i < D; i++) mu += x[i] / D;
        for (int i = 0; i < D; i++) var += (x[i] - mu) * (x[i] - mu) / D;
        for (int i = 0; i < D; i++) {
            double y = (x[i] - mu) / sqrt(var + c->layer_norm_eps) * m.p.enc_norm_w[i] + m.p.enc_norm_b[i];
            worst = fmax(worst, fabs(y - fin[(size_t)b * 2 * D + i]));
            diff_final = fmax(diff_final, fabs(x[i] - fin[(size_t)b * 2 * D + i]));
        }
        for (int i = 0; i < 2 * D; i++) {   /* {1, L}: block 1, then block L, as given */
            CHECK(both[(size_t)b * 4 * D + 2 * D + i] == x[i]);
            diff_first = fmax(diff_first, fabs(both[(size_t)b * 4 * D + i] - x[i]));
        }
    }
    CHECKF(worst < 1e-4, "LayerNorm(block %d CLS) vs the final feature: %g", L, worst);
    CHECK(diff_final > 1e-3);   /* the block output is not already normalised */
    CHECK(diff_first > 1e-3);   /* block 1 is not block L */
    int bad[1] = {L + 1}, zero[1] = {0};
    CHECK(features_extract_layers(&m, paths, 2, 2, bad, 1, last, NULL, &err) != 0 && strstr(err.msg, "blocks 1.."));
    CHECK(features_extract_layers(&m, paths, 2, 2, zero, 1, last, NULL, &err) != 0);
    free(fin);
    free(last);
    free(both);
    mae_free(&m);
}
