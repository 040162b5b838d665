/* test_alloc.c: a training step allocates nothing (model.h's promise).
 * ASan's malloc hooks (alloc_hook.h) count every allocation of every thread
 * over 3 steady-state steps, after 2 warm-up steps: MAE forward + backward
 * + AdamW (fp32, norm_pix_loss on and off, loss_only on and off) and
 * classifier forward + loss + backward. Allocations made by oneDNN (its
 * packing buffers) and by the OpenMP runtime (see alloc_hook.h for the
 * rule) are reported apart and not counted against us. */
#include "nn/alloc_hook.h"
#include "nn/classifier.h"
#include "nn/optim.h"
#include "testlib.h"
#include <stdlib.h>
#include <string.h>

static void fill(float *x, size_t n, double f) {
    for (size_t i = 0; i < n; i++) x[i] = (float)sin((double)i * f + 0.3);
}

static void mae_steps(int norm_pix, int loss_only, int B) {
    sx_err err;
    mae_config c = tl_toy_config(32);
    c.norm_pix_loss = norm_pix;
    mae_model m;
    CHECK(mae_build(&m, &c, &err) == 0);
    mae_init_weights(&m, 11);
    m.loss_only = loss_only;
    adamw opt;
    adamw_init(&opt, &m, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.05f);
    int N = config_num_patches(&c), S = c.image_size;
    float *px = malloc(sizeof(float) * (size_t)B * 3 * S * S), *noise = malloc(sizeof(float) * (size_t)B * N);
    fill(px, (size_t)B * 3 * S * S, 0.013);
    alloc_count n = {0};
    for (int step = 0; step < 5; step++) {
        fill(noise, (size_t)B * N, 0.7 + step);   // a new mask every step
        if (step == 2) alloc_hook_begin();
        CHECK(mae_forward(&m, px, noise, B, &err) == 0);
        mae_zero_grad(&m);
        mae_backward(&m);
        grad_clip(&m, 1.0f);
        adamw_step(&opt, &m);
        if (step == 4) n = alloc_hook_end();
    }
    CHECK(isfinite(m.loss));
    CHECKF(n.n == 0, "norm_pix %d loss_only %d B %d: %ld allocations in 3 steps (largest %zu bytes)", norm_pix,
           loss_only, B, n.n, n.max_size);
    fprintf(stderr, "    MAE norm_pix %d loss_only %d B %d: %ld allocations of ours, %ld by libgomp or oneDNN\n",
            norm_pix, loss_only, B, n.n, n.runtime);
    free(px); free(noise);
    adamw_free(&opt);
    mae_free(&m);
}

TEST(test_mae_step_allocates_nothing) {
    if (!alloc_hook_available()) TEST_SKIP("needs the ASan malloc hooks");
    mae_steps(0, 0, 3);
    mae_steps(1, 1, 3);
    mae_steps(1, 0, 1);
}

TEST(test_classifier_step_allocates_nothing) {
    if (!alloc_hook_available()) TEST_SKIP("needs the ASan malloc hooks");
    sx_err err;
    mae_config cfg = tl_toy_config(32);
    task_type types[3] = {TASK_BINARY, TASK_MULTICLASS, TASK_REGRESSION};
    for (int k = 0; k < 3; k++) {
        classifier c;
        CHECKF(classifier_create(&c, NULL, &cfg, types[k], 3, NULL, 5, &err) == 0, "%s", err.msg);
        int B = 4, S = cfg.image_size;
        float *px = malloc(sizeof(float) * (size_t)B * 3 * S * S), y[4] = {0, 1, 1, 0};
        fill(px, (size_t)B * 3 * S * S, 0.021);
        alloc_count n = {0};
        for (int step = 0; step < 5; step++) {
            if (step == 2) alloc_hook_begin();
            CHECK(classifier_forward(&c, px, B, &err) == 0);
            classifier_zero_grad(&c);
            CHECK(isfinite(classifier_loss(&c, y, 1.0f)));
            if (step == 4) n = alloc_hook_end();
        }
        CHECKF(n.n == 0, "classifier type %d: %ld allocations in 3 steps (largest %zu bytes)", k, n.n, n.max_size);
        fprintf(stderr, "    classifier type %d: %ld allocations of ours, %ld by libgomp or oneDNN\n", k, n.n, n.runtime);
        free(px);
        classifier_free(&c);
    }
}

/* The counter itself: an allocation between begin and end is seen, so the
 * tests above can fail. */
TEST(test_alloc_hook_counts) {
    if (!alloc_hook_available()) TEST_SKIP("needs the ASan malloc hooks");
    alloc_hook_begin();
    void *volatile p = malloc(1234);
    alloc_count n = alloc_hook_end();
    free(p);
    CHECK(n.n == 1 && n.max_size == 1234);
    int keep[8], restore[16];
    float noise[16], mask[16];
    fill(noise, 16, 0.9);
    alloc_hook_begin();
    mae_masking(noise, 1, 16, 8, keep, restore, mask);   // the allocating convenience form
    n = alloc_hook_end();
    CHECK(n.n == 1);
}
