/* test_cuda_layers.cu: every CUDA layer against its CPU twin (src/nn/) on
 * random inputs, then a tiny transformer block chained from them. Built by
 * `make cuda-test` into build/test_cuda (linked with the CPU objects of
 * libskelex.a). Error measure, per output tensor: max |gpu - cpu| over
 * max |cpu| (the largest error relative to the tensor's scale); it must be
 * at most 1e-5 for fp32 layers and 2e-2 for the bf16 product. Without a
 * device it prints one skip line and exits 0. Exit status: 0 all passed (or
 * skipped), 1 any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime.h>
extern "C" {
#include "nn/layers.h"
#include "nn/optim.h"
}
#include "cuda/cuda_layers.h"

static const double TOL32 = 1e-5, TOLBF16 = 2e-2;
static int n_pass, n_fail, cur_fail;
static sx_err E;

/* ---- small helpers: host randoms, device copies freed at the end of each test ---- */

static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;
static float frand(void) {  // uniform in [-1, 1)
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) * (1.0 / (1ull << 24))) * 2.0f - 1.0f;
}
static float *hrand(size_t n, float scale) {
    float *h = (float *)malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) h[i] = scale * frand();
    return h;
}
enum { MAXDEV = 64 };
static void *devs[MAXDEV];
static int ndev;
static void *dalloc(size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 4) != cudaSuccess || ndev == MAXDEV) {
        fprintf(stderr, "test_cuda: cudaMalloc of %zu bytes failed\n", bytes);
        exit(1);
    }
    return devs[ndev++] = p;
}
static void dfree_all(void) {
    for (int i = 0; i < ndev; i++) cudaFree(devs[i]);
    ndev = 0;
}
static float *up(const float *h, size_t n) {
    float *d = (float *)dalloc(sizeof(float) * n);
    cudaMemcpy(d, h, sizeof(float) * n, cudaMemcpyHostToDevice);
    cudaDeviceSynchronize();
    return d;
}
static int *upi(const int *h, size_t n) {
    int *d = (int *)dalloc(sizeof(int) * n);
    cudaMemcpy(d, h, sizeof(int) * n, cudaMemcpyHostToDevice);
    cudaDeviceSynchronize();
    return d;
}

/* A layer call that returns -1 fails the test with its message. */
#define OK(call) do { if ((call) != 0) { fprintf(stderr, "    FAIL %s: %s\n", #call, E.msg); cur_fail++; return; } } while (0)

/* Compare device tensor d (n floats) with the CPU result ref. */
static void check(const char *what, const float *d, const float *ref, size_t n, double tol) {
    if (sx_cuda_sync(&E)) { fprintf(stderr, "    FAIL %s: %s\n", what, E.msg); cur_fail++; return; }
    float *g = (float *)malloc(sizeof(float) * (n ? n : 1));
    cudaMemcpy(g, d, sizeof(float) * n, cudaMemcpyDeviceToHost);
    double maxd = 0.0, maxr = 0.0;
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(g[i])) finite = 0;
        double e = fabs((double)g[i] - ref[i]);
        if (e > maxd) maxd = e;
        if (fabs(ref[i]) > maxr) maxr = fabs(ref[i]);
    }
    double rel = maxr > 0 ? maxd / maxr : maxd;
    int ok = finite && rel <= tol && maxr > 0;  // an all-zero reference would prove nothing
    printf("    %-34s max err %.3g (of max %.3g: rel %.3g, tol %.0e) %s\n", what, maxd, maxr, rel, tol,
           ok ? "ok" : "FAIL");
    if (!ok) cur_fail++;
    free(g);
}
static void check_scalar(const char *what, double gpu, double cpu, double tol) {
    double rel = fabs(gpu - cpu) / (fabs(cpu) > 0 ? fabs(cpu) : 1.0);
    int ok = isfinite(gpu) && rel <= tol;
    printf("    %-34s %.9g vs %.9g (rel %.3g, tol %.0e) %s\n", what, gpu, cpu, rel, tol, ok ? "ok" : "FAIL");
    if (!ok) cur_fail++;
}

/* Distinct random indices: idx (n) a random subset of 0..m-1 (n <= m), in
 * random order. */
static void rand_subset(int *idx, int n, int m) {
    int *all = (int *)malloc(sizeof(int) * m);
    for (int i = 0; i < m; i++) all[i] = i;
    for (int i = m - 1; i > 0; i--) {
        int j = (int)((frand() * 0.5f + 0.5f) * (i + 1)) % (i + 1), t = all[i];
        all[i] = all[j];
        all[j] = t;
    }
    memcpy(idx, all, sizeof(int) * n);
    free(all);
}

/* ---------------------------------------------------------------- tests */

static void test_linear(void) {
    int N = 67, C = 96, OC = 80;
    float *inp = hrand((size_t)N * C, 1), *w = hrand((size_t)OC * C, 0.1f), *b = hrand(OC, 0.5f);
    float *out = hrand((size_t)N * OC, 1), *out_nb = hrand((size_t)N * OC, 1);
    float *dinp = hrand((size_t)N * C, 1), *dw = hrand((size_t)OC * C, 1), *db = hrand(OC, 1);
    float *dout = hrand((size_t)N * OC, 1);
    float *g_inp = up(inp, (size_t)N * C), *g_w = up(w, (size_t)OC * C), *g_b = up(b, OC);
    float *g_out = up(out, (size_t)N * OC), *g_dinp = up(dinp, (size_t)N * C), *g_dw = up(dw, (size_t)OC * C);
    float *g_db = up(db, OC), *g_dout = up(dout, (size_t)N * OC);
    linear_forward(out, inp, w, b, N, C, OC);
    OK(linear_forward_cuda(g_out, g_inp, g_w, g_b, N, C, OC, &E));
    check("linear_forward (bias)", g_out, out, (size_t)N * OC, TOL32);
    linear_forward(out_nb, inp, w, NULL, N, C, OC);
    OK(linear_forward_cuda(g_out, g_inp, g_w, NULL, N, C, OC, &E));
    check("linear_forward (no bias)", g_out, out_nb, (size_t)N * OC, TOL32);
    // bf16 operands against the fp32 CPU layer
    uint16_t *g_inp16 = (uint16_t *)dalloc(2 * (size_t)N * C), *g_w16 = (uint16_t *)dalloc(2 * (size_t)OC * C);
    OK(sx_cuda_to_bf16(g_inp16, g_inp, (size_t)N * C, &E));
    OK(sx_cuda_to_bf16(g_w16, g_w, (size_t)OC * C, &E));
    OK(linear_forward_bf16_cuda(g_out, g_inp16, g_w16, g_b, N, C, OC, &E));
    check("linear_forward_bf16 (bias)", g_out, out, (size_t)N * OC, TOLBF16);
    linear_backward(dinp, dw, db, dout, inp, w, N, C, OC);
    OK(linear_backward_cuda(g_dinp, g_dw, g_db, g_dout, g_inp, g_w, N, C, OC, &E));
    check("linear_backward dinp", g_dinp, dinp, (size_t)N * C, TOL32);
    check("linear_backward dw (+=)", g_dw, dw, (size_t)OC * C, TOL32);
    check("linear_backward db (+=)", g_db, db, OC, TOL32);
    free(inp); free(w); free(b); free(out); free(out_nb); free(dinp); free(dw); free(db); free(dout);
}

static void test_layernorm(void) {
    int N = 53, C = 200;
    float *inp = hrand((size_t)N * C, 2), *w = hrand(C, 1), *b = hrand(C, 1), *out = hrand((size_t)N * C, 1);
    float *mean = hrand(N, 1), *rstd = hrand(N, 1), *dout = hrand((size_t)N * C, 1);
    float *dinp = hrand((size_t)N * C, 1), *dw = hrand(C, 1), *db = hrand(C, 1);
    for (int i = 0; i < C; i++) inp[i] += 3.0f;  // a row with a large mean
    float *g_inp = up(inp, (size_t)N * C), *g_w = up(w, C), *g_b = up(b, C), *g_out = up(out, (size_t)N * C);
    float *g_mean = up(mean, N), *g_rstd = up(rstd, N), *g_dout = up(dout, (size_t)N * C);
    float *g_dinp = up(dinp, (size_t)N * C), *g_dw = up(dw, C), *g_db = up(db, C);
    layernorm_forward(out, mean, rstd, inp, w, b, N, C, 1e-12f);
    OK(layernorm_forward_cuda(g_out, g_mean, g_rstd, g_inp, g_w, g_b, N, C, 1e-12f, &E));
    check("layernorm_forward out", g_out, out, (size_t)N * C, TOL32);
    check("layernorm_forward mean", g_mean, mean, N, TOL32);
    check("layernorm_forward rstd", g_rstd, rstd, N, TOL32);
    layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
    OK(layernorm_backward_cuda(g_dinp, g_dw, g_db, g_dout, g_inp, g_w, g_mean, g_rstd, N, C, &E));
    check("layernorm_backward dinp (+=)", g_dinp, dinp, (size_t)N * C, TOL32);
    check("layernorm_backward dw (+=)", g_dw, dw, C, TOL32);
    check("layernorm_backward db (+=)", g_db, db, C, TOL32);
    free(inp); free(w); free(b); free(out); free(mean); free(rstd); free(dout); free(dinp); free(dw); free(db);
}

static void test_gelu(void) {
    int N = 45, C = 130;
    size_t n = (size_t)N * C;
    float *inp = hrand(n, 3), *b = hrand(C, 1), *out = hrand(n, 1), *d = hrand(n, 1), *db = hrand(C, 1);
    float *g_inp = up(inp, n), *g_b = up(b, C), *g_out = up(out, n), *g_d = up(d, n), *g_db = up(db, C);
    gelu_forward(out, inp, b, N, C);
    OK(gelu_forward_cuda(g_out, g_inp, g_b, N, C, &E));
    check("gelu_forward out", g_out, out, n, TOL32);
    check("gelu_forward inp += b", g_inp, inp, n, TOL32);
    gelu_backward(d, inp, db, N, C, NULL);
    OK(gelu_backward_cuda(g_d, g_inp, g_db, N, C, &E));
    check("gelu_backward d", g_d, d, n, TOL32);
    check("gelu_backward db (+=)", g_db, db, C, TOL32);
    free(inp); free(b); free(out); free(d); free(db);
}

static void test_residual_rows(void) {
    int B = 3, T = 40, Tq = 17, C = 72, n = 90;
    float *out = hrand((size_t)B * Tq * C, 1), *x = hrand((size_t)B * T * C, 1), *bias = hrand(C, 1);
    float *full = hrand((size_t)B * T * C, 1), *dx = hrand((size_t)B * T * C, 1), *dst = hrand((size_t)n * C, 1);
    int *rows = (int *)malloc(sizeof(int) * B * Tq), *idx = (int *)malloc(sizeof(int) * n);
    for (int b = 0; b < B; b++) rand_subset(rows + b * Tq, Tq, T);
    for (int i = 0; i < n; i++) idx[i] = (i * 7 + (i % 3)) % (B * T / 2);  // repeats
    float *g_out = up(out, (size_t)B * Tq * C), *g_x = up(x, (size_t)B * T * C), *g_bias = up(bias, C);
    float *g_full = up(full, (size_t)B * T * C), *g_dx = up(dx, (size_t)B * T * C), *g_dst = up(dst, (size_t)n * C);
    int *g_rows = upi(rows, (size_t)B * Tq), *g_idx = upi(idx, n);
    residual_forward(full, x, bias, B * T, C);
    OK(residual_forward_cuda(g_full, g_x, g_bias, B * T, C, &E));
    check("residual_forward", g_full, full, (size_t)B * T * C, TOL32);
    residual_rows_forward(out, x, bias, rows, B, Tq, T, C);
    OK(residual_rows_forward_cuda(g_out, g_x, g_bias, g_rows, B, Tq, T, C, &E));
    check("residual_rows_forward", g_out, out, (size_t)B * Tq * C, TOL32);
    residual_rows_backward(dx, out, rows, B, Tq, T, C);
    OK(residual_rows_backward_cuda(g_dx, g_out, g_rows, B, Tq, T, C, &E));
    check("residual_rows_backward (+=)", g_dx, dx, (size_t)B * T * C, TOL32);
    rows_gather(dst, x, idx, n, C);
    OK(rows_gather_cuda(g_dst, g_x, g_idx, n, C, &E));
    check("rows_gather", g_dst, dst, (size_t)n * C, TOL32);
    rows_gather_backward(dx, dst, idx, n, C);
    OK(rows_gather_backward_cuda(g_dx, g_dst, g_idx, n, C, &E));
    check("rows_gather_backward (repeats)", g_dx, dx, (size_t)B * T * C, TOL32);
    free(out); free(x); free(bias); free(full); free(dx); free(dst); free(rows); free(idx);
}

static void attention_case(const char *label, int B, int T, int C, int NH, int Tq, int subset) {
    size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * Tq * C, natt = (size_t)B * NH * Tq * T;
    float *qkv = hrand(nqkv, 1.5f), *out = hrand(nout, 1), *att = hrand(natt, 1), *dout = hrand(nout, 1);
    float *dqkv = hrand(nqkv, 1);
    int *rows = NULL, *g_rows = NULL;
    if (subset) {
        rows = (int *)malloc(sizeof(int) * B * Tq);
        for (int b = 0; b < B; b++) rand_subset(rows + b * Tq, Tq, T);
        g_rows = upi(rows, (size_t)B * Tq);
    }
    float *g_qkv = up(qkv, nqkv), *g_out = up(out, nout), *g_att = up(att, natt), *g_dout = up(dout, nout);
    float *g_dqkv = up(dqkv, nqkv);
    char what[96];
    attention_forward(out, att, qkv, B, T, C, NH, rows, Tq, NULL);
    OK(attention_forward_cuda(g_out, g_att, g_qkv, B, T, C, NH, g_rows, Tq, &E));
    snprintf(what, sizeof what, "attention_forward out %s", label);
    check(what, g_out, out, nout, TOL32);
    snprintf(what, sizeof what, "attention_forward att %s", label);
    check(what, g_att, att, natt, TOL32);
    if ((C / NH) % 32 == 0) {  // the streaming forward, against the same CPU output
        OK(attention_forward_flash_cuda(g_dout, g_qkv, B, T, C, NH, g_rows, Tq, &E));
        snprintf(what, sizeof what, "attention_forward_flash %s", label);
        check(what, g_dout, out, nout, TOL32);
        OK(cudaMemcpy(g_dout, dout, sizeof(float) * nout, cudaMemcpyHostToDevice) == cudaSuccess ? 0 : -1);
    }
    attention_backward(dqkv, dout, qkv, att, B, T, C, NH, rows, Tq, NULL);
    OK(attention_backward_cuda(g_dqkv, g_dout, g_qkv, g_att, B, T, C, NH, g_rows, Tq, &E));
    snprintf(what, sizeof what, "attention_backward dqkv %s", label);
    check(what, g_dqkv, dqkv, nqkv, TOL32);
    free(qkv); free(out); free(att); free(dout); free(dqkv); free(rows);
}

static void test_attention(void) {
    attention_case("(all rows)", 2, 50, 64, 4, 50, 0);
    attention_case("(qrows)", 2, 50, 64, 4, 21, 1);
    attention_case("(hs 32, qrows)", 2, 61, 128, 4, 30, 1);
    attention_case("(ViT-B head, T=197)", 1, 197, 768, 12, 197, 0);
}

static void test_embed(void) {
    int B = 2, C = 3, S = 32, p = 8, D = 48, g = S / p, N = g * g, Lk = 5, cpp = C * p * p;
    float *pix = hrand((size_t)B * C * S * S, 1), *w = hrand((size_t)D * cpp, 0.1f), *b = hrand(D, 1);
    float *out = hrand((size_t)B * Lk * D, 1), *patches = hrand((size_t)B * Lk * cpp, 1);
    float *dw = hrand((size_t)D * cpp, 1), *db = hrand(D, 1), *dout = hrand((size_t)B * Lk * D, 1);
    float *cls = hrand(D, 1), *pos = hrand((size_t)(1 + N) * D, 1), *h = hrand((size_t)B * (1 + Lk) * D, 1);
    float *demb = hrand((size_t)B * Lk * D, 1), *dcls = hrand(D, 1);
    int *keep = (int *)malloc(sizeof(int) * B * Lk);
    for (int bb = 0; bb < B; bb++) rand_subset(keep + bb * Lk, Lk, N);
    float *g_pix = up(pix, (size_t)B * C * S * S), *g_w = up(w, (size_t)D * cpp), *g_b = up(b, D);
    float *g_out = up(out, (size_t)B * Lk * D), *g_patches = up(patches, (size_t)B * Lk * cpp);
    float *g_dw = up(dw, (size_t)D * cpp), *g_db = up(db, D), *g_dout = up(dout, (size_t)B * Lk * D);
    float *g_cls = up(cls, D), *g_pos = up(pos, (size_t)(1 + N) * D), *g_h = up(h, (size_t)B * (1 + Lk) * D);
    float *g_demb = up(demb, (size_t)B * Lk * D), *g_dcls = up(dcls, D);
    int *g_keep = upi(keep, (size_t)B * Lk);
    patch_embed_forward(out, patches, pix, keep, w, b, B, Lk, C, S, p, D);
    OK(patch_embed_forward_cuda(g_out, g_patches, g_pix, g_keep, g_w, g_b, B, Lk, C, S, p, D, &E));
    check("patch_embed_forward patches", g_patches, patches, (size_t)B * Lk * cpp, TOL32);
    check("patch_embed_forward out", g_out, out, (size_t)B * Lk * D, TOL32);
    patch_embed_backward(dw, db, dout, patches, B, Lk, cpp, D);
    OK(patch_embed_backward_cuda(g_dw, g_db, g_dout, g_patches, B, Lk, cpp, D, &E));
    check("patch_embed_backward dw (+=)", g_dw, dw, (size_t)D * cpp, TOL32);
    check("patch_embed_backward db (+=)", g_db, db, D, TOL32);
    embed_forward(h, out, cls, pos, keep, B, Lk, D);
    OK(embed_forward_cuda(g_h, g_out, g_cls, g_pos, g_keep, B, Lk, D, &E));
    check("embed_forward", g_h, h, (size_t)B * (1 + Lk) * D, TOL32);
    embed_backward(demb, dcls, h, B, Lk, D);
    OK(embed_backward_cuda(g_demb, g_dcls, g_h, B, Lk, D, &E));
    check("embed_backward demb", g_demb, demb, (size_t)B * Lk * D, TOL32);
    check("embed_backward dcls (+=)", g_dcls, dcls, D, TOL32);
    free(pix); free(w); free(b); free(out); free(patches); free(dw); free(db); free(dout); free(cls); free(pos);
    free(h); free(demb); free(dcls); free(keep);
}

static void mse_case(int masked_only, int norm_pix) {
    int B = 3, N = 49, Lk = 12, P = 48, Nm = N - Lk, Tp = masked_only ? Nm : 1 + N;
    float *target = hrand((size_t)B * N * P, 2), *pred = hrand((size_t)B * Tp * P, 2);
    float *mask = (float *)calloc((size_t)B * N, sizeof(float)), *dpred = hrand((size_t)B * Tp * P, 1);
    int *perm = (int *)malloc(sizeof(int) * N);
    for (int b = 0; b < B; b++) {
        rand_subset(perm, Nm, N);
        for (int j = 0; j < Nm; j++) mask[b * N + perm[j]] = 1.0f;
    }
    float *g_target = up(target, (size_t)B * N * P), *g_pred = up(pred, (size_t)B * Tp * P);
    float *g_mask = up(mask, (size_t)B * N), *g_dpred = up(dpred, (size_t)B * Tp * P);
    float gloss = NAN, loss = masked_mse_forward(target, pred, mask, B, N, P, Tp, masked_only, norm_pix);
    OK(masked_mse_forward_cuda(&gloss, g_target, g_pred, g_mask, B, N, P, Tp, masked_only, norm_pix, &E));
    char what[96];
    snprintf(what, sizeof what, "masked_mse_forward (mo=%d np=%d)", masked_only, norm_pix);
    check_scalar(what, gloss, loss, TOL32);
    if (norm_pix) check("patch_norm_forward (the target)", g_target, target, (size_t)B * N * P, TOL32);
    masked_mse_backward(dpred, pred, target, mask, B, N, P, Tp, masked_only, 0.5f);
    OK(masked_mse_backward_cuda(g_dpred, g_pred, g_target, g_mask, B, N, P, Tp, masked_only, 0.5f, &E));
    snprintf(what, sizeof what, "masked_mse_backward (mo=%d)", masked_only);
    check(what, g_dpred, dpred, (size_t)B * Tp * P, TOL32);
    free(target); free(pred); free(mask); free(dpred); free(perm);
}

static void test_masked_mse(void) {
    mse_case(1, 1);
    mse_case(0, 0);
    mse_case(0, 1);
}

static void test_adamw(void) {
    size_t n = 3001;
    float *p = hrand(n, 1), *g = hrand(n, 0.1f), *m = hrand(n, 0.01f), *v = hrand(n, 0.001f);
    for (size_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
    float *g_p = up(p, n), *g_g = up(g, n), *g_m = up(m, n), *g_v = up(v, n);
    for (long step = 1; step <= 3; step++) {
        adamw_update(p, g, m, v, n, 1e-3f, 0.05f, 0.9f, 0.95f, 1e-8f, step);
        OK(adamw_update_cuda(g_p, g_g, g_m, g_v, n, 1e-3f, 0.05f, 0.9f, 0.95f, 1e-8f, step, &E));
    }
    check("adamw_update p (3 steps)", g_p, p, n, TOL32);
    check("adamw_update m", g_m, m, n, TOL32);
    check("adamw_update v", g_v, v, n, TOL32);
    free(p); free(g); free(m); free(v);
}

/* One pre-LN ViT block, as model.c chains the layers (bias-less linears
 * whose bias rides on the residual or the GELU), on both sides. */
static void test_tiny_block(void) {
    int B = 2, T = 33, C = 96, NH = 4, H = 4 * C, N = B * T;
    size_t nc = (size_t)N * C;
    float *x = hrand(nc, 1), *ln_w = hrand(C, 1), *ln_b = hrand(C, 0.1f), *wqkv = hrand((size_t)3 * C * C, 0.1f);
    float *bqkv = hrand(3 * C, 0.1f), *wo = hrand((size_t)C * C, 0.1f), *bo = hrand(C, 0.1f);
    float *w1 = hrand((size_t)H * C, 0.1f), *b1 = hrand(H, 0.1f), *w2 = hrand((size_t)C * H, 0.05f), *b2 = hrand(C, 0.1f);
    float *ln = hrand(nc, 1), *mean = hrand(N, 1), *rstd = hrand(N, 1), *qkv = hrand(nc * 3, 1);
    float *att = hrand((size_t)B * NH * T * T, 1), *ao = hrand(nc, 1), *h1 = hrand(nc, 1);
    float *pre = hrand((size_t)N * H, 1), *act = hrand((size_t)N * H, 1), *h2 = hrand(nc, 1);
    float *d_x = up(x, nc), *d_lnw = up(ln_w, C), *d_lnb = up(ln_b, C), *d_wqkv = up(wqkv, (size_t)3 * C * C);
    float *d_bqkv = up(bqkv, 3 * C), *d_wo = up(wo, (size_t)C * C), *d_bo = up(bo, C), *d_w1 = up(w1, (size_t)H * C);
    float *d_b1 = up(b1, H), *d_w2 = up(w2, (size_t)C * H), *d_b2 = up(b2, C), *d_ln = up(ln, nc);
    float *d_mean = up(mean, N), *d_rstd = up(rstd, N), *d_qkv = up(qkv, nc * 3);
    float *d_att = up(att, (size_t)B * NH * T * T), *d_ao = up(ao, nc), *d_h1 = up(h1, nc);
    float *d_pre = up(pre, (size_t)N * H), *d_act = up(act, (size_t)N * H), *d_h2 = up(h2, nc);
    // CPU: h1 = x + proj(attn(ln1 x)); h2 = h1 + fc2(gelu(fc1(ln2 h1)))
    layernorm_forward(ln, mean, rstd, x, ln_w, ln_b, N, C, 1e-12f);
    linear_forward(qkv, ln, wqkv, bqkv, N, C, 3 * C);
    attention_forward(ao, att, qkv, B, T, C, NH, NULL, T, NULL);
    linear_forward(h1, ao, wo, NULL, N, C, C);
    residual_forward(h1, x, bo, N, C);
    layernorm_forward(ln, mean, rstd, h1, ln_w, ln_b, N, C, 1e-12f);
    linear_forward(pre, ln, w1, NULL, N, C, H);
    gelu_forward(act, pre, b1, N, H);
    linear_forward(h2, act, w2, NULL, N, H, C);
    residual_forward(h2, h1, b2, N, C);
    // GPU: the same chain
    OK(layernorm_forward_cuda(d_ln, d_mean, d_rstd, d_x, d_lnw, d_lnb, N, C, 1e-12f, &E));
    OK(linear_forward_cuda(d_qkv, d_ln, d_wqkv, d_bqkv, N, C, 3 * C, &E));
    OK(attention_forward_cuda(d_ao, d_att, d_qkv, B, T, C, NH, NULL, T, &E));
    OK(linear_forward_cuda(d_h1, d_ao, d_wo, NULL, N, C, C, &E));
    OK(residual_forward_cuda(d_h1, d_x, d_bo, N, C, &E));
    OK(layernorm_forward_cuda(d_ln, d_mean, d_rstd, d_h1, d_lnw, d_lnb, N, C, 1e-12f, &E));
    OK(linear_forward_cuda(d_pre, d_ln, d_w1, NULL, N, C, H, &E));
    OK(gelu_forward_cuda(d_act, d_pre, d_b1, N, H, &E));
    OK(linear_forward_cuda(d_h2, d_act, d_w2, NULL, N, H, C, &E));
    OK(residual_forward_cuda(d_h2, d_h1, d_b2, N, C, &E));
    check("tiny block forward h1", d_h1, h1, nc, TOL32);
    check("tiny block forward h2 (output)", d_h2, h2, nc, TOL32);
    free(x); free(ln_w); free(ln_b); free(wqkv); free(bqkv); free(wo); free(bo); free(w1); free(b1); free(w2);
    free(b2); free(ln); free(mean); free(rstd); free(qkv); free(att); free(ao); free(h1); free(pre); free(act);
    free(h2);
}

static void test_unshuffle_cls_head(void) {
    int B = 3, N = 36, Lk = 9, D = 40, K = 5, Te = 1 + Lk, Td = 1 + N;
    float *y = hrand((size_t)B * Te * D, 1), *mt = hrand(D, 1), *pos = hrand((size_t)Td * D, 1);
    float *z = hrand((size_t)B * Td * D, 1), *dy = hrand((size_t)B * Te * D, 1), *dmt = hrand(D, 1);
    float *w = hrand((size_t)K * D, 0.3f), *b = hrand(K, 1), *logits = hrand((size_t)B * K, 1);
    float *dlog = hrand((size_t)B * K, 1), *dw = hrand((size_t)K * D, 1), *db = hrand(K, 1);
    float *dlat = hrand((size_t)B * Td * D, 1);
    int *restore = (int *)malloc(sizeof(int) * B * N);
    for (int bb = 0; bb < B; bb++) rand_subset(restore + bb * N, N, N);  // a permutation per image
    float *g_y = up(y, (size_t)B * Te * D), *g_mt = up(mt, D), *g_pos = up(pos, (size_t)Td * D);
    float *g_z = up(z, (size_t)B * Td * D), *g_dy = up(dy, (size_t)B * Te * D), *g_dmt = up(dmt, D);
    float *g_w = up(w, (size_t)K * D), *g_b = up(b, K), *g_logits = up(logits, (size_t)B * K);
    float *g_dlog = up(dlog, (size_t)B * K), *g_dw = up(dw, (size_t)K * D), *g_db = up(db, K);
    float *g_dlat = up(dlat, (size_t)B * Td * D);
    int *g_restore = upi(restore, (size_t)B * N);
    unshuffle_forward(z, y, mt, pos, restore, B, N, Lk, D);
    OK(unshuffle_forward_cuda(g_z, g_y, g_mt, g_pos, g_restore, B, N, Lk, D, &E));
    check("unshuffle_forward", g_z, z, (size_t)B * Td * D, TOL32);
    unshuffle_backward(dy, dmt, z, restore, B, N, Lk, D);
    OK(unshuffle_backward_cuda(g_dy, g_dmt, g_z, g_restore, B, N, Lk, D, &E));
    check("unshuffle_backward dy", g_dy, dy, (size_t)B * Te * D, TOL32);
    check("unshuffle_backward dmask_token (+=)", g_dmt, dmt, D, TOL32);
    cls_head_forward(logits, z, w, b, B, Td, D, K);
    OK(cls_head_forward_cuda(g_logits, g_z, g_w, g_b, B, Td, D, K, &E));
    check("cls_head_forward", g_logits, logits, (size_t)B * K, TOL32);
    cls_head_backward(dlat, dw, db, dlog, z, w, B, Td, D, K);
    OK(cls_head_backward_cuda(g_dlat, g_dw, g_db, g_dlog, g_z, g_w, B, Td, D, K, &E));
    check("cls_head_backward dlatent (+=)", g_dlat, dlat, (size_t)B * Td * D, TOL32);
    check("cls_head_backward dw (+=)", g_dw, dw, (size_t)K * D, TOL32);
    check("cls_head_backward db (+=)", g_db, db, K, TOL32);
    free(y); free(mt); free(pos); free(z); free(dy); free(dmt); free(w); free(b); free(logits); free(dlog);
    free(dw); free(db); free(dlat); free(restore);
}

/* An error comes back as a value with a message (no exit, no print). */
static void test_errors(void) {
    sx_err e;
    e.msg[0] = 0;
    int rc = attention_forward_cuda(NULL, NULL, NULL, 1, 8, 10, 3, NULL, 8, &e);
    if (rc == -1 && strstr(e.msg, "multiple")) printf("    %-34s -1 with \"%s\" ok\n", "attention C % NH != 0", e.msg);
    else { printf("    attention C %% NH != 0: rc %d, \"%s\" FAIL\n", rc, e.msg); cur_fail++; }
    rc = adamw_update_cuda(NULL, NULL, NULL, NULL, 10, 1e-3f, 0, 0.9f, 0.999f, 1e-8f, 0, &e);
    if (rc == -1 && strstr(e.msg, "1-based")) printf("    %-34s -1 with \"%s\" ok\n", "adamw step 0", e.msg);
    else { printf("    adamw step 0: rc %d FAIL\n", rc); cur_fail++; }
}

int main(void) {
    sx_err err;
    if (sx_cuda_device_count(&err) == 0) {
        printf("test_cuda: skip: %s\n", err.msg);
        return 0;
    }
    if (sx_cuda_init(0, &err)) { printf("test_cuda: FAIL: %s\n", err.msg); return 1; }
    static const struct { const char *name; void (*fn)(void); } tests[] = {
        {"linear", test_linear}, {"layernorm", test_layernorm}, {"gelu", test_gelu},
        {"residual_rows", test_residual_rows}, {"attention", test_attention}, {"embed", test_embed},
        {"unshuffle_cls_head", test_unshuffle_cls_head},
        {"masked_mse", test_masked_mse}, {"adamw", test_adamw}, {"tiny_block", test_tiny_block},
        {"errors", test_errors},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        cur_fail = 0;
        printf("%s\n", tests[i].name);
        tests[i].fn();
        dfree_all();
        if (cur_fail) n_fail++; else n_pass++;
        printf("  %s %s\n", cur_fail ? "FAIL" : "ok", tests[i].name);
    }
    sx_cuda_shutdown();
    printf("test_cuda: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
