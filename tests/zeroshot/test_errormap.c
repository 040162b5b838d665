/* test_errormap.c: the error map's coverage and averaging against a direct
 * computation of the formula, balanced masking, overlay size, and the
 * localisation metrics on hand-made maps and boxes. */
#include "io/checkpoint.h"
#include "zeroshot/errormap.h"
#include "io/image.h"
#include "eval/viz.h"
#include "testlib.h"
#include <stdlib.h>
#include <string.h>

TEST(test_errormap_matches_formula) {
    sx_err err;
    mae_model m;
    CHECK(checkpoint_load("tests/fixtures/twin_pix", &m, &err) == 0);
    const mae_config *c = &m.cfg;
    int S = c->image_size, N = config_num_patches(c), P = config_patch_dim(c), p = c->patch_size, g = config_grid(c);
    enum { PASSES = 3 };
    float *px = malloc(sizeof(float) * PASSES * 3 * S * S), noise[PASSES * 16];
    sx_rng r;
    rng_seed(&r, 5);
    for (int i = 0; i < 3 * S * S; i++) px[i] = rng_normal(&r);
    for (int k = 1; k < PASSES; k++) memcpy(px + (size_t)k * 3 * S * S, px, sizeof(float) * 3 * S * S);
    // fixed noise: pass 0 keeps patches 0..3 visible, pass 1 keeps 4..7, pass 2 keeps 0..3 again
    for (int k = 0; k < PASSES; k++)
        for (int n = 0; n < N; n++) noise[k * N + n] = (n / 4 == (k == 1 ? 1 : 0)) ? 0.01f * n : 0.5f + 0.01f * n;
    CHECK(mae_forward(&m, px, noise, PASSES, &err) == 0);
    float *map = malloc(sizeof(float) * S * S);
    int *count = malloc(sizeof(int) * S * S);
    errormap_accumulate(&m, px, PASSES, map, count);
    // direct formula: for pixel (y,x), in patch n, channel ch: pred = logits[n][(py*p+px)*C+ch],
    // input = pixel value; error in [0,1] space = ((pred - input) * std)^2, mean over channels
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int n = (y / p) * g + x / p, expect_count = 0;
            double sum = 0;
            for (int k = 0; k < PASSES; k++) {
                int visible = n / 4 == (k == 1 ? 1 : 0);
                if (visible) continue;
                expect_count++;
                double e = 0;
                for (int ch = 0; ch < 3; ch++) {
                    double pred = mae_logits(&m, k)[(size_t)n * P + ((y % p) * p + x % p) * 3 + ch];
                    double in = px[(size_t)ch * S * S + y * S + x];
                    double d = (pred - in) * IMAGENET_STD[ch];
                    e += d * d;
                }
                sum += e / 3;
            }
            CHECK(count[y * S + x] == expect_count);
            if (expect_count) CHECK_NEAR(map[y * S + x], sum / expect_count, 1e-6 * (1 + sum));
            else CHECK(isnan(map[y * S + x]));
        }
    // patches 0..7 are visible in some pass: patches 8..15 masked all 3 times, 0..3 once, 4..7 twice
    CHECK(count[0] == 1 && count[p * S] == 2 && count[(S - 1) * S + S - 1] == 3);
    free(px); free(map); free(count);
    mae_free(&m);
}

TEST(test_balanced_masking_is_balanced) {
    sx_rng r;
    rng_seed(&r, 9);
    int N = 196, keep = 49;
    float *noise = malloc(sizeof(float) * 8 * N), mask[8 * 196];
    int keep_ids[8 * 49], restore[8 * 196];
    for (int passes = 4; passes <= 8; passes += 4) {
        errormap_noise(MASKING_BALANCED, passes, N, keep, &r, noise);
        mae_masking(noise, passes, N, keep, keep_ids, restore, mask);
        int hidden[196] = {0};
        for (int k = 0; k < passes; k++)
            for (int n = 0; n < N; n++) hidden[n] += mask[k * N + n] > 0.5f;
        for (int n = 0; n < N; n++) CHECKF(hidden[n] == passes - passes / 4, "patch %d hidden %d times", n, hidden[n]);
    }
    // 5 passes of 49 visible out of 196: counts differ by at most one
    errormap_noise(MASKING_BALANCED, 5, N, keep, &r, noise);
    mae_masking(noise, 5, N, keep, keep_ids, restore, mask);
    int lo = 99, hi = -1;
    for (int n = 0; n < N; n++) {
        int h = 0;
        for (int k = 0; k < 5; k++) h += mask[k * N + n] > 0.5f;
        lo = h < lo ? h : lo;
        hi = h > hi ? h : hi;
    }
    CHECK(hi - lo <= 1 && lo >= 3);
    // random masking with 4 passes usually leaves some patch never hidden or always hidden
    free(noise);
}

TEST(test_overlay_has_input_size) {
    gray_image img = {123, 77, malloc(sizeof(float) * 123 * 77)};
    for (int i = 0; i < 123 * 77; i++) img.data[i] = (float)(i % 251);
    float map[16 * 16];
    for (int i = 0; i < 256; i++) map[i] = (i % 5 == 0) ? NAN : (float)i / 256.0f;
    char path[600];
    snprintf(path, sizeof path, "%s/o.png", tl_tmpdir());
    sx_err err;
    CHECK(viz_errormap_overlay(path, &img, map, 16, 1.0f, 0.6f, &err) == 0);
    gray_image back;
    CHECK(image_load_gray(path, &back, &err) == 0);
    CHECK(back.height == 77);          // the radiograph keeps its size ...
    CHECK(back.width > 123);           // ... with the colour bar beside it
    // the radiograph area is the input's 123 x 77: its first column is the image, not the bar
    gray_image_free(&back);
    free(img.data);
}

TEST(test_localization_metrics_by_hand) {
    // 4x4 map, box covering the top-left 2x2 quadrant
    norm_box b = {0.25f, 0.25f, 0.5f, 0.5f};
    uint8_t inside[16];
    boxes_rasterize(&b, 1, 4, 4, inside);
    int n_in = 0;
    for (int i = 0; i < 16; i++) n_in += inside[i];
    CHECK(n_in == 4 && inside[0] && inside[5] && !inside[2] && !inside[8]);
    float map[16] = {4, 3, 1, 0, 2, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1};
    loc_metrics lm;
    CHECK(localization_metrics(map, inside, 4, 4, &lm) == 0);
    CHECK(lm.hit == 1 && lm.peak_x == 1 && lm.peak_y == 1);      // peak 5 at (1,1), inside
    CHECK_NEAR(lm.mass_share, 14.0 / 17.0, 1e-12);                 // 4+3+2+5 of 17
    CHECK_NEAR(lm.area_share, 0.25, 1e-12);
    // AUROC by hand: inside {4,3,2,5}, outside {1,0,0,0,0,0,0,0,1,0,0,1}: every inside beats every outside
    CHECK_NEAR(lm.auroc, 1.0, 1e-12);
    map[5] = -1;  // now the peak (4 at (0,0)) is still inside; one inside value is lowest
    CHECK(localization_metrics(map, inside, 4, 4, &lm) == 0);
    CHECK(lm.hit == 1);
    CHECK_NEAR(lm.auroc, 36.0 / 48.0, 1e-12);                      // -1 loses all 12 comparisons
    float ties[16];
    for (int i = 0; i < 16; i++) ties[i] = 1;                        // ties count half
    CHECK(localization_metrics(ties, inside, 4, 4, &lm) == 0);
    CHECK_NEAR(lm.auroc, 0.5, 1e-12);
    map[0] = NAN;  // NaN pixels are ignored
    CHECK(localization_metrics(map, inside, 4, 4, &lm) == 0);
    CHECK_NEAR(lm.area_share, 3.0 / 15.0, 1e-12);
}

TEST(test_yolo_box_files) {
    char path[600];
    sx_err err;
    norm_box b[4];
    snprintf(path, sizeof path, "%s/a.txt", tl_tmpdir());
    tl_write_text(path, "0 0.5 0.5 0.2 0.1\n\n3 0.1 0.9 0.05 0.05\n");
    CHECK(boxes_read_yolo(path, b, 4, &err) == 2 && b[1].cx == 0.1f);
    tl_write_text(path, "");
    CHECK(boxes_read_yolo(path, b, 4, &err) == 0);
    tl_write_text(path, "0 1.5 0.5 0.2\n");
    CHECK(boxes_read_yolo(path, b, 4, &err) == -1 && strstr(err.msg, "a.txt:1"));
}
