/* test_dist.c: data-parallel arithmetic in one process (no MPI needed): the
 * shares of a global batch partition it; the ranks' weighted share
 * gradients summed are the whole batch's gradient (what the all-reduce
 * computes); ZeRO-1's per-range AdamW steps make the whole step; a rank's
 * loader share yields exactly its slice of the single loader's batches; and a
 * process not started by mpirun is a rank of one. */
#include "dist/comm.h"
#include "dist/dp.h"
#include "data/data.h"
#include "io/image.h"
#include "testlib.h"
#include <stdlib.h>
#include <string.h>

TEST(test_dist_shares_partition_the_batch) {
    const long globals[] = {1, 2, 7, 8, 31, 256};
    for (size_t g = 0; g < sizeof globals / sizeof *globals; g++)
        for (int size = 1; size <= 8; size++) {
            if (globals[g] < size) continue;
            long next = 0, lo = globals[g], hi = 0;
            for (int r = 0; r < size; r++) {
                long off, cnt;
                dist_share(globals[g], r, size, &off, &cnt);
                CHECKF(off == next, "global %ld size %d rank %d: offset %ld, expected %ld", globals[g], size, r, off, next);
                next = off + cnt;
                if (cnt < lo) lo = cnt;
                if (cnt > hi) hi = cnt;
            }
            CHECK(next == globals[g]);
            CHECK(hi - lo <= 1 && lo >= 1);
        }
    size_t a, b, prev = 0;
    for (int r = 0; r < 3; r++) {
        dist_range(10, r, 3, &a, &b);
        CHECK(a == prev && b > a);
        prev = b;
    }
    CHECK(prev == 10);
}

static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) { num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]); den += (double)b[i] * b[i]; }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* One model's forward and backward over B images, then the same split over
 * `size` simulated ranks: each rank's share gradient times its weight,
 * summed (the all-reduce), equals the whole batch's gradient and loss. */
static void shares_vs_whole(int B, int size) {
    sx_err err;
    mae_config cfg = tl_toy_config(16);
    mae_model m;
    if (mae_build(&m, &cfg, &err)) { CHECKF(0, "%s", err.msg); return; }
    mae_init_weights(&m, 11);
    m.loss_only = 1;
    int N = config_num_patches(&cfg), S = cfg.image_size;
    size_t per = (size_t)cfg.num_channels * S * S;
    float *px = malloc(sizeof(float) * per * B), *noise = malloc(sizeof(float) * (size_t)B * N);
    float *whole = malloc(sizeof(float) * m.n_floats), *sum = calloc(m.n_floats, sizeof(float));
    sx_rng r;
    rng_seed(&r, 5);
    for (size_t i = 0; i < per * B; i++) px[i] = rng_normal(&r);
    for (int i = 0; i < B * N; i++) noise[i] = rng_uniform(&r);
    mae_zero_grad(&m);
    CHECK(mae_forward(&m, px, noise, B, &err) == 0);
    mae_backward(&m);
    double loss_whole = m.loss, loss_sum = 0;
    memcpy(whole, m.grads, sizeof(float) * m.n_floats);
    dist_comm one;
    dist_single(&one);
    for (int k = 0; k < size; k++) {
        long off, cnt;
        dist_share(B, k, size, &off, &cnt);
        mae_zero_grad(&m);
        CHECK(mae_forward(&m, px + (size_t)off * per, noise + (size_t)off * N, (int)cnt, &err) == 0);
        mae_backward(&m);
        float w = dist_share_weight(cnt, B);
        loss_sum += m.loss * w;
        CHECK(dp_reduce_grads(&one, &m, w, 0, 0, &err) == 0);  /* scales; a rank of one sums nothing */
        for (size_t i = 0; i < m.n_floats; i++) sum[i] += m.grads[i];
    }
    CHECKF(fabs(loss_sum - loss_whole) <= 1e-6 * fabs(loss_whole), "B %d size %d: loss %.9g vs %.9g", B, size, loss_sum, loss_whole);
    double e = rel_err(sum, whole, m.n_floats);
    CHECKF(e < 1e-5, "B %d over %d ranks: gradient rel err %.2e", B, size, e);
    free(px); free(noise); free(whole); free(sum);
    mae_free(&m);
}

TEST(test_dist_share_gradients_sum_to_the_batch) {
    shares_vs_whole(4, 2);
    shares_vs_whole(5, 2);   // uneven: 3 + 2
    shares_vs_whole(7, 3);   // 3 + 2 + 2
    shares_vs_whole(3, 1);
}

TEST(test_dist_zero1_ranges_make_the_whole_step) {
    sx_err err;
    mae_config cfg = tl_toy_config(16);
    mae_model a, b;
    CHECK(mae_build(&a, &cfg, &err) == 0 && mae_build(&b, &cfg, &err) == 0);
    mae_init_weights(&a, 3);
    memcpy(b.params, a.params, sizeof(float) * a.n_floats);
    sx_rng r;
    rng_seed(&r, 9);
    adamw oa, ob;
    adamw_init(&oa, &a, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.05f);
    adamw_init(&ob, &b, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.05f);
    for (int step = 0; step < 3; step++) {
        for (size_t i = 0; i < a.n_floats; i++) a.grads[i] = b.grads[i] = 0.01f * rng_normal(&r);
        adamw_step(&oa, &a);
        for (int k = 0; k < 3; k++) {  /* three ranks' ranges, one after the other */
            size_t lo, hi;
            dist_range(b.n_floats, k, 3, &lo, &hi);
            long keep = ob.step;
            dp_adamw_step_range(&ob, &b, lo, hi);
            if (k < 2) ob.step = keep;  /* each rank counts one step */
        }
    }
    CHECK(ob.step == oa.step);
    CHECK(memcmp(a.params, b.params, sizeof(float) * a.n_floats) == 0);
    CHECK(memcmp(oa.m, ob.m, sizeof(float) * a.n_floats) == 0 && memcmp(oa.v, ob.v, sizeof(float) * a.n_floats) == 0);
    // and a range alone leaves the rest untouched
    float before = b.params[b.n_floats - 1];
    size_t lo, hi;
    dist_range(b.n_floats, 0, 3, &lo, &hi);
    dp_adamw_step_range(&ob, &b, lo, hi);
    CHECK(b.params[b.n_floats - 1] == before);
    adamw_free(&oa); adamw_free(&ob);
    mae_free(&a); mae_free(&b);
}

TEST(test_dist_loader_share_is_a_slice_of_the_batch) {
    char dir[600], p[700];
    snprintf(dir, sizeof dir, "%s/imgs", tl_tmpdir());
    snprintf(p, sizeof p, "mkdir -p %s", dir);
    CHECK(system(p) == 0);
    uint8_t px[20 * 20];
    for (int k = 0; k < 9; k++) {
        for (int i = 0; i < 400; i++) px[i] = (uint8_t)(k * 25 + (i * (k + 1)) % 17);
        snprintf(p, sizeof p, "%s/i%d.png", dir, k);
        sx_err e;
        CHECK(png_write_u8(p, px, 20, 20, 1, &e) == 0);
    }
    sx_err err;
    dataset ds;
    dataset_init(&ds);
    CHECK(dataset_add(&ds, dir, &err) == 0);
    aug_config aug = aug_default(16);
    const int G = 5, size = 2;
    size_t per = 3 * 16 * 16;
    float *whole = malloc(sizeof(float) * per * G), *part = malloc(sizeof(float) * per * G);
    loader *L = loader_create(&ds, G, &aug, 4, 0, 2, NULL, &err);
    loader *R[2];
    long off[2], cnt[2];
    for (int k = 0; k < size; k++) {
        dist_share(G, k, size, &off[k], &cnt[k]);
        R[k] = loader_create_share(&ds, (int)cnt[k], G, off[k], &aug, 4, k, 2, NULL, &err);  /* threaded and inline */
        CHECKF(R[k] != NULL, "%s", err.msg);
    }
    if (!L || !R[0] || !R[1]) goto done;
    for (int b = 0; b < 3; b++) {  /* crosses the epoch boundary (9 images) */
        CHECK(loader_next(L, whole, NULL, &err) == 0);
        for (int k = 0; k < size; k++) {
            CHECK(loader_next(R[k], part, NULL, &err) == 0);
            CHECKF(memcmp(part, whole + (size_t)off[k] * per, sizeof(float) * per * cnt[k]) == 0, "batch %d rank %d", b, k);
            CHECK(loader_position(R[k]) == loader_position(L));
        }
    }
    CHECK(loader_create_share(&ds, 3, 5, 3, &aug, 4, 0, 0, NULL, &err) == NULL);  /* 3..5 does not fit */
done:
    loader_destroy(L); loader_destroy(R[0]); loader_destroy(R[1]);
    free(whole); free(part);
    dataset_free(&ds);
}

TEST(test_dist_single_process_without_launcher) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (int i = 0; i < 3; i++)
        if (getenv(vars[i])) TEST_SKIP("running under an MPI launcher");
    dist_comm c;
    sx_err err;
    CHECK(dist_init(&c, &err) == 0);
    CHECK(c.rank == 0 && c.size == 1 && !c.mpi);
    float v[3] = {1, 2, 3};
    CHECK(dist_allreduce_sum(&c, v, 3, 2, &err) == 0 && v[0] == 1 && v[2] == 3);
    CHECK(dist_first_set(&c, 0, &err) == -1 && dist_first_set(&c, 1, &err) == 0);
    dist_finalize(&c);
}
