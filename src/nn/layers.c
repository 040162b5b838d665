/* layers.c: forward and backward of each layer, side by side.
 * Matrix products go through gemm(); everything else is an OpenMP loop. */
#pragma GCC optimize("fp-contract=fast")  /* let the compiler fuse a * b + c into FMA (-std=c17 turns it off) */
#include "nn/layers.h"
#include "core/fastmath.h"
#include "nn/gemm.h"
#include "nn/profile.h"
#include "core/common.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- linear */

void linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int C, int OC) {
    // inp is (N,C), w is (OC,C), out is (N,OC)
    gemm(0, 1, N, OC, C, 1.0f, inp, C, w, C, 0.0f, out, OC);
    if (!b) return;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * OC;
        for (int j = 0; j < OC; j++) o[j] += b[j];
    }
}

void colsum_accumulate(float *out, const float *x, int N, int C) {
    // parallel over blocks of columns so that each thread owns its outputs
    enum { CB = 64 };
    int nblocks = (C + CB - 1) / CB;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * CB, c1 = c0 + CB < C ? c0 + CB : C;
        float acc[CB] = {0};
        for (int n = 0; n < N; n++) {
            const float *row = x + (size_t)n * C;
            for (int c = c0; c < c1; c++) acc[c - c0] += row[c];
        }
        for (int c = c0; c < c1; c++) out[c] += acc[c - c0];
    }
}

void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC) {
    // dout is (N,OC): dinp (N,C) = dout @ w; dw (OC,C) += dout^T @ inp; db += colsum(dout)
    if (dinp) gemm(0, 0, N, C, OC, 1.0f, dout, OC, w, C, 0.0f, dinp, C);
    if (dw) gemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    if (db) colsum_accumulate(db, dout, N, OC);
}

/* ------------------------------------------------------------- layernorm */

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int N, int C, float eps) {
    // inp, out are (N,C); mean, rstd are (N)
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        double m = 0.0, v = 0.0;
#pragma omp simd reduction(+ : m)
        for (int i = 0; i < C; i++) m += x[i];
        m /= C;
#pragma omp simd reduction(+ : v)
        for (int i = 0; i < C; i++) { double d = x[i] - m; v += d * d; }
        v /= C;  // biased variance, as torch
        float s = (float)(1.0 / sqrt(v + (double)eps)), mf = (float)m;
        float *o = out + (size_t)n * C;
        for (int i = 0; i < C; i++) o[i] = (x[i] - mf) * s * w[i] + b[i];
        mean[n] = mf;
        rstd[n] = s;
    }
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int N, int C) {
    // dout, inp, dinp are (N,C). Input gradient first (parallel over rows) ...
    if (dinp) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            double dmean = 0.0, dnorm_mean = 0.0;
#pragma omp simd reduction(+ : dmean, dnorm_mean)
            for (int i = 0; i < C; i++) {
                float nrm = (x[i] - m) * s, dn = dy[i] * w[i];
                dmean += dn;
                dnorm_mean += dn * nrm;
            }
            float a = (float)(dmean / C), bb = (float)(dnorm_mean / C);
            float *dx = dinp + (size_t)n * C;
            for (int i = 0; i < C; i++) {
                float nrm = (x[i] - m) * s;
                dx[i] += (dy[i] * w[i] - a - nrm * bb) * s;
            }
        }
    }
    // ... then parameter gradients (parallel over column blocks)
    enum { CB = 64 };
    int nblocks = (C + CB - 1) / CB;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * CB, c1 = c0 + CB < C ? c0 + CB : C;
        float accw[CB] = {0}, accb[CB] = {0};
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            for (int c = c0; c < c1; c++) {
                accw[c - c0] += dy[c] * (x[c] - m) * s;
                accb[c - c0] += dy[c];
            }
        }
        for (int c = c0; c < c1; c++) { dw[c] += accw[c - c0]; db[c] += accb[c - c0]; }
    }
}

/* ------------------------------------------------------------------ gelu */

/* Load the n < 8 floats of a loop tail into a zero-padded vector, and back. */
static inline v8sf load_tail(const float *p, size_t n) { v8sf v = {0}; memcpy(&v, p, sizeof(float) * n); return v; }
static inline void store_tail(float *p, v8sf v, size_t n) { memcpy(p, &v, sizeof(float) * n); }

static inline v8sf gelu8(v8sf x) { return 0.5f * x * (1.0f + sx_erf8(x * (float)M_SQRT1_2)); }

void gelu_forward(float *out, float *inp, const float *b, int N, int C) {
    // inp (N,C) += b (the pre-activation backward needs), then out = 0.5 x (1 + erf(x / sqrt 2))
    int c8 = C / 8 * 8;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *x = inp + (size_t)n * C, *o = out + (size_t)n * C;
        for (int c = 0; c < c8; c += 8) {
            v8sf v = sx_load8(x + c);
            if (b) { v += sx_load8(b + c); sx_store8(x + c, v); }
            sx_store8(o + c, gelu8(v));
        }
        if (c8 < C) {
            v8sf v = load_tail(x + c8, (size_t)(C - c8));
            if (b) { v += load_tail(b + c8, (size_t)(C - c8)); store_tail(x + c8, v, (size_t)(C - c8)); }
            store_tail(o + c8, gelu8(v), (size_t)(C - c8));
        }
    }
}

static inline v8sf gelu_grad8(v8sf x) {
    // gelu'(x) = Phi(x) + x phi(x); erf's own exp(-x^2/2) gives phi
    const float inv_sqrt_2pi = 0.3989422804014327f;
    v8sf e, cdf = 0.5f * (1.0f + sx_erf8_exp(x * (float)M_SQRT1_2, &e));
    return cdf + x * (inv_sqrt_2pi * e);
}

void gelu_backward(float *d, const float *inp, float *db, int N, int C, float *scratch) {
    // d (N,C) *= gelu'(inp); db (C) += its column sums (the bias gradient of
    // the preceding linear), each thread summing its rows first in scratch
    // (nt, C)
    int c8 = C / 8 * 8, nt = omp_get_max_threads();
    float *part = NULL, *own = NULL;
    if (db) {
        part = scratch ? scratch : (own = sx_malloc(sizeof(float) * (size_t)nt * (size_t)C));
        memset(part, 0, sizeof(float) * (size_t)nt * (size_t)C);
    }
#pragma omp parallel
    {
        float *acc = part ? part + (size_t)omp_get_thread_num() * C : NULL;
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            float *g = d + (size_t)n * C;
            const float *x = inp + (size_t)n * C;
            for (int c = 0; c < c8; c += 8) {
                v8sf v = sx_load8(g + c) * gelu_grad8(sx_load8(x + c));
                sx_store8(g + c, v);
                if (acc) sx_store8(acc + c, sx_load8(acc + c) + v);
            }
            if (c8 < C) {
                size_t t = (size_t)(C - c8);
                v8sf v = load_tail(g + c8, t) * gelu_grad8(load_tail(x + c8, t));
                store_tail(g + c8, v, t);
                if (acc) store_tail(acc + c8, load_tail(acc + c8, t) + v, t);
            }
        }
    }
    if (!part) return;
    for (int t = 0; t < nt; t++)
        for (int c = 0; c < C; c++) db[c] += part[(size_t)t * C + c];
    free(own);
}

size_t gelu_scratch_floats(int C) { return (size_t)omp_get_max_threads() * (size_t)C; }

/* ------------------------------------------------------------- attention */

/* SKELEX_PROFILE: time spent in attention, counted in the bound product
 * context (its products run inside a parallel region, so the gemm profile
 * does not see them); a team's share (inside a parallel region) is not. */
void attention_profile_reset(void) { gemm_profile_reset(); }
static int att_prof(void) { return !omp_in_parallel() && sx_prof_enabled(); }

/* Per-head contiguous copy: rows[0..T) of x (row stride ld; rows NULL:
 * 0..T-1) -> dst (T,hs). Strided q/k/v rows (3C floats apart) alias in the
 * L1 cache. */
static void pack_head(float *dst, const float *x, size_t ld, const int *rows, int T, int hs) {
    for (int t = 0; t < T; t++)
        memcpy(dst + (size_t)t * hs, x + (size_t)(rows ? rows[t] : t) * ld, sizeof(float) * (size_t)hs);
}

static size_t att_fwd_per(int T, int C, int NH) { return 3 * (size_t)T * (C / NH); }
static size_t att_bwd_per(int T, int C, int NH, int Tq) { return 5 * (size_t)T * (C / NH) + (size_t)Tq * T; }

size_t attention_scratch_floats(int T, int C, int NH, int Tq) {
    size_t f = att_fwd_per(T, C, NH), b = att_bwd_per(T, C, NH, Tq);
    return (f > b ? f : b) * (size_t)omp_get_max_threads();
}

void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH, const int *qrows, int Tq,
                       float *scratch) {
    double t0 = att_prof() ? sx_now() : 0;
    // qkv (B,T,3C), att (B,NH,Tq,T), out (B,Tq,C). One (batch, head) per task;
    // the products inside run single-threaded (oneDNN sees the parallel region).
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    size_t per = att_fwd_per(T, C, NH);
    float *own = scratch ? NULL : sx_malloc(sizeof(float) * per * (size_t)omp_get_max_threads());
    float *pack = scratch ? scratch : own;
#pragma omp parallel
    {
        float *qp = pack + per * (size_t)omp_get_thread_num(), *kp = qp + (size_t)T * hs, *vp = kp + (size_t)T * hs;
#pragma omp for schedule(dynamic)
        for (int bh = 0; bh < B * NH; bh++) {
            int b = bh / NH, h = bh % NH;
            const float *q = qkv + (size_t)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
            float *a = att + (size_t)bh * Tq * T;
            pack_head(qp, q, C3, qrows ? qrows + (size_t)b * Tq : NULL, Tq, hs);
            pack_head(kp, k, C3, NULL, T, hs);
            pack_head(vp, v, C3, NULL, T, hs);
            gemm(0, 1, Tq, T, hs, scale, qp, hs, kp, hs, 0.0f, a, T);  // scores = q k^T / sqrt(hs)
            for (int t = 0; t < Tq; t++) {                             // softmax over keys
                float *row = a + (size_t)t * T, mx = row[0], sum = 0.0f;
#pragma omp simd reduction(max : mx)
                for (int j = 1; j < T; j++) mx = row[j] > mx ? row[j] : mx;
                int j = 0;
                v8sf acc = {0};
                for (; j + 8 <= T; j += 8) {
                    v8sf e = sx_exp8(sx_load8(row + j) - mx);
                    sx_store8(row + j, e);
                    acc += e;
                }
                for (int k = 0; k < 8; k++) sum += acc[k];
                for (; j < T; j++) { row[j] = sx_expf(row[j] - mx); sum += row[j]; }
                float inv = 1.0f / sum;
                for (int j = 0; j < T; j++) row[j] *= inv;
            }
            gemm(0, 0, Tq, hs, T, 1.0f, a, T, vp, hs, 0.0f, out + (size_t)b * Tq * C + h * hs, C);  // out = att v
        }
    }
    free(own);
    if (t0 > 0) gemm_ctx_add_attention(gemm_current(), 0, sx_now() - t0);
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T, int C,
                        int NH, const int *qrows, int Tq, float *scratch) {
    // dout (B,Tq,C) -> dqkv (B,T,3C), overwritten (zero q rows outside qrows).
    // d(scores) (Tq,T) lives in a per-thread buffer that stays in cache.
    double t0 = att_prof() ? sx_now() : 0;
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    size_t per = att_bwd_per(T, C, NH, Tq);
    float *own = scratch ? NULL : sx_malloc(sizeof(float) * per * (size_t)omp_get_max_threads());
    float *pack = scratch ? scratch : own;
#pragma omp parallel
    {
        float *qp = pack + per * (size_t)omp_get_thread_num(), *kp = qp + (size_t)T * hs, *vp = kp + (size_t)T * hs;
        float *dyp = vp + (size_t)T * hs, *dqp = dyp + (size_t)T * hs, *da = dqp + (size_t)T * hs;
#pragma omp for schedule(dynamic)
        for (int bh = 0; bh < B * NH; bh++) {
            int b = bh / NH, h = bh % NH;
            const float *q = qkv + (size_t)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
            float *dq = dqkv + (size_t)b * T * C3 + h * hs, *dk = dq + C, *dv = dq + 2 * C;
            const float *a = att + (size_t)bh * Tq * T, *dy = dout + (size_t)b * Tq * C + h * hs;
            const int *rows = qrows ? qrows + (size_t)b * Tq : NULL;
            pack_head(qp, q, C3, rows, Tq, hs);
            pack_head(kp, k, C3, NULL, T, hs);
            pack_head(vp, v, C3, NULL, T, hs);
            pack_head(dyp, dy, C, NULL, Tq, hs);
            gemm(0, 1, Tq, T, hs, 1.0f, dyp, hs, vp, hs, 0.0f, da, T);   // d(att) = dout v^T
            gemm(1, 0, T, hs, Tq, 1.0f, a, T, dyp, hs, 0.0f, dv, C3);    // dv = att^T dout
            for (int t = 0; t < Tq; t++) {                               // softmax backward
                const float *p = a + (size_t)t * T;
                float *g = da + (size_t)t * T, dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                for (int j = 0; j < T; j++) dot += p[j] * g[j];
                for (int j = 0; j < T; j++) g[j] = p[j] * (g[j] - dot);
            }
            gemm(1, 0, T, hs, Tq, scale, da, T, qp, hs, 0.0f, dk, C3);   // dk = dS^T q / sqrt(hs)
            if (!rows) {
                gemm(0, 0, T, hs, T, scale, da, T, kp, hs, 0.0f, dq, C3);  // dq = dS k / sqrt(hs)
                continue;
            }
            gemm(0, 0, Tq, hs, T, scale, da, T, kp, hs, 0.0f, dqp, hs);   // the same, for the query rows only
            for (int t = 0; t < T; t++) memset(dq + (size_t)t * C3, 0, sizeof(float) * (size_t)hs);
            for (int t = 0; t < Tq; t++) memcpy(dq + (size_t)rows[t] * C3, dqp + (size_t)t * hs, sizeof(float) * (size_t)hs);
        }
    }
    free(own);
    if (t0 > 0) gemm_ctx_add_attention(gemm_current(), 1, sx_now() - t0);
}

/* -------------------------------------------------------------- residual */

void residual_forward(float *out, const float *x, const float *bias, int N, int C) {
    // out (N,C) += x (N,C) + bias (C): the residual, with the bias the linear before it left out
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * C;
        const float *xr = x + (size_t)n * C;
        if (bias) for (int c = 0; c < C; c++) o[c] += xr[c] + bias[c];
        else for (int c = 0; c < C; c++) o[c] += xr[c];
    }
}

void rows_gather(float *dst, const float *src, const int *idx, int n, int C) {
    // dst (n,C) = src rows idx (n)
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) memcpy(dst + (size_t)i * C, src + (size_t)idx[i] * C, sizeof(float) * (size_t)C);
}

void rows_gather_backward(float *dsrc, const float *ddst, const int *idx, int n, int C) {
    // dsrc rows idx += ddst (n,C); an index may repeat, so threads own columns
    enum { CB = 64 };
    int nblocks = (C + CB - 1) / CB;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * CB, c1 = c0 + CB < C ? c0 + CB : C;
        for (int i = 0; i < n; i++) {
            float *d = dsrc + (size_t)idx[i] * C;
            const float *g = ddst + (size_t)i * C;
            for (int c = c0; c < c1; c++) d[c] += g[c];
        }
    }
}

void residual_rows_forward(float *out, const float *x, const float *bias, const int *rows, int B, int Tq, int T, int C) {
    // out (B,Tq,C) += x (B,T,C) at rows (B,Tq) + bias (C)
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * Tq; bt++) {
        const float *xr = x + ((size_t)(bt / Tq) * T + rows[bt]) * C;
        float *o = out + (size_t)bt * C;
        if (bias) for (int c = 0; c < C; c++) o[c] += xr[c] + bias[c];
        else for (int c = 0; c < C; c++) o[c] += xr[c];
    }
}

void residual_rows_backward(float *dx, const float *dout, const int *rows, int B, int Tq, int T, int C) {
    // dx (B,T,C) at rows (B,Tq) += dout (B,Tq,C); the rows of one image are distinct
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * Tq; bt++) {
        float *d = dx + ((size_t)(bt / Tq) * T + rows[bt]) * C;
        const float *g = dout + (size_t)bt * C;
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}
