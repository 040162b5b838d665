/* test_layers.c: the vectorisable exp/erf against libm, and each layer's
 * backward against central finite differences of its forward. */
#include "core/fastmath.h"
#include "nn/layers.h"
#include "core/rng.h"
#include "testlib.h"
#include <stdlib.h>
#include <string.h>

TEST(test_fastmath_accuracy) {
    double worst_exp = 0, worst_erf = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f + 175.0f * (float)i / 200000.0f;
        double e = fabs(sx_expf(x) - exp((double)x)) / exp((double)x);
        if (e > worst_exp) worst_exp = e;
        float z = -6.0f + 12.0f * (float)i / 200000.0f;
        double d = fabs(sx_erff(z) - erf((double)z));
        if (d > worst_erf) worst_erf = d;
    }
    CHECKF(worst_exp < 3e-7, "expf worst relative error %.3g", worst_exp);
    CHECKF(worst_erf < 1e-6, "erff worst absolute error %.3g", worst_erf);
    CHECK(sx_expf(-1000.0f) < 1e-37f && sx_expf(0.0f) == 1.0f);
}

/* Scalar loss L = sum(out * probe); dL/dx by finite differences. */
typedef void (*fwd_fn)(const float *x, float *out, void *ctx);

static double fd_check(fwd_fn f, void *ctx, float *x, size_t nx, size_t nout, const float *probe, const float *analytic) {
    float *out = malloc(sizeof(float) * nout);
    double worst = 0, scale = 1e-6;
    for (size_t i = 0; i < nx; i++) scale = fmax(scale, fabs(analytic[i]));
    for (size_t i = 0; i < nx; i++) {
        float keep = x[i], h = 1e-2f;
        double lp = 0, lm = 0;
        x[i] = keep + h; f(x, out, ctx);
        for (size_t k = 0; k < nout; k++) lp += (double)out[k] * probe[k];
        x[i] = keep - h; f(x, out, ctx);
        for (size_t k = 0; k < nout; k++) lm += (double)out[k] * probe[k];
        x[i] = keep;
        double num = (lp - lm) / (2.0 * h);
        worst = fmax(worst, fabs(num - analytic[i]) / scale);
    }
    free(out);
    return worst;
}

enum { B = 2, T = 5, C = 8, NH = 2 };
typedef struct { const float *w, *b; float mean[B * T], rstd[B * T]; float att[B * NH * T * T]; } lctx;

static void ln_fwd(const float *x, float *out, void *v) {
    lctx *c = v;
    layernorm_forward(out, c->mean, c->rstd, x, c->w, c->b, B * T, C, 1e-5f);
}
static void attn_fwd(const float *x, float *out, void *v) {
    lctx *c = v;
    attention_forward(out, c->att, x, B, T, C, NH, NULL, T, NULL);
}
/* queries of three rows per image, out of order */
enum { TQ = 3 };
static const int qrows[B * TQ] = {3, 0, 4, 1, 2, 4};
static void attn_rows_fwd(const float *x, float *out, void *v) {
    lctx *c = v;
    attention_forward(out, c->att, x, B, T, C, NH, qrows, TQ, NULL);
}
static void gelu_fwd(const float *x, float *out, void *v) {
    float pre[B * T * C];
    memcpy(pre, x, sizeof pre);
    gelu_forward(out, pre, ((lctx *)v)->b, B * T, C);  // with a bias
}

static void fill(sx_rng *r, float *x, size_t n, float s) { for (size_t i = 0; i < n; i++) x[i] = s * rng_normal(r); }

TEST(test_layer_gradients_finite_differences) {
    sx_rng r;
    rng_seed(&r, 11);
    float x[B * T * 3 * C], probe[B * T * 3 * C], out[B * T * 3 * C], dx[B * T * 3 * C], w[C], b[C], dw[C], db[C];
    lctx c = {w, b, {0}, {0}, {0}};
    fill(&r, w, C, 1.0f); fill(&r, b, C, 1.0f);

    // layernorm
    fill(&r, x, B * T * C, 1.0f); fill(&r, probe, B * T * C, 1.0f);
    ln_fwd(x, out, &c);
    memset(dx, 0, sizeof dx); memset(dw, 0, sizeof dw); memset(db, 0, sizeof db);
    layernorm_backward(dx, dw, db, probe, x, w, c.mean, c.rstd, B * T, C);
    double e = fd_check(ln_fwd, &c, x, B * T * C, B * T * C, probe, dx);
    CHECKF(e < 2e-3, "layernorm input gradient: %.3g", e);

    // gelu
    fill(&r, x, B * T * C, 2.0f);
    memcpy(dx, probe, sizeof(float) * B * T * C);
    float pre[B * T * C];
    memcpy(pre, x, sizeof pre);
    gelu_fwd(x, out, &c);
    for (int i = 0; i < B * T * C; i++) pre[i] += b[i % C];  // the pre-activation gelu_forward keeps
    memset(db, 0, sizeof db);
    gelu_backward(dx, pre, db, B * T, C, NULL);
    e = fd_check(gelu_fwd, &c, x, B * T * C, B * T * C, probe, dx);
    CHECKF(e < 2e-3, "gelu gradient: %.3g", e);
    for (int k = 0; k < C; k++) {  // the bias gradient is the column sum of the input gradient
        double want = 0;
        for (int n = 0; n < B * T; n++) want += dx[n * C + k];
        CHECKF(fabs(db[k] - want) < 1e-5 * (1 + fabs(want)), "gelu bias gradient %d: %g vs %g", k, (double)db[k], want);
    }

    // attention (input is qkv)
    fill(&r, x, B * T * 3 * C, 1.0f); fill(&r, probe, B * T * C, 1.0f);
    attn_fwd(x, out, &c);
    attention_backward(dx, probe, x, c.att, B, T, C, NH, NULL, T, NULL);
    e = fd_check(attn_fwd, &c, x, B * T * 3 * C, B * T * C, probe, dx);
    CHECKF(e < 2e-3, "attention qkv gradient: %.3g", e);

    // attention for a subset of query rows: the full outputs at those rows,
    // and its own finite-difference gradient (zero for the other queries)
    float full[B * T * C];
    attn_fwd(x, full, &c);
    attn_rows_fwd(x, out, &c);
    for (int i = 0; i < B * TQ; i++)
        for (int k = 0; k < C; k++) CHECK(fabsf(out[i * C + k] - full[((i / TQ) * T + qrows[i]) * C + k]) < 1e-6f);
    for (size_t i = 0; i < sizeof dx / sizeof dx[0]; i++) dx[i] = 1e9f;  // must all be overwritten
    attention_backward(dx, probe, x, c.att, B, T, C, NH, qrows, TQ, NULL);
    e = fd_check(attn_rows_fwd, &c, x, B * T * 3 * C, B * TQ * C, probe, dx);
    CHECKF(e < 2e-3, "attention qkv gradient, query rows only: %.3g", e);
}

TEST(test_gelu_rows_with_tails) {
    // 13 columns: one vector and a tail of 5 per row
    enum { R = 3, K = 13 };
    float x[R * K], pre[R * K], out[R * K], bias[K], d[R * K], db[K] = {0};
    for (int i = 0; i < R * K; i++) x[i] = -3.0f + 6.0f * (float)i / (R * K);
    for (int k = 0; k < K; k++) bias[k] = 0.1f * (float)k - 0.6f;
    memcpy(pre, x, sizeof pre);
    gelu_forward(out, pre, bias, R, K);
    for (int i = 0; i < R * K; i++) {
        double z = (double)x[i] + bias[i % K];
        CHECK(fabsf(pre[i] - (float)z) < 1e-6f);
        CHECKF(fabs(out[i] - 0.5 * z * (1.0 + erf(z / sqrt(2.0)))) < 2e-6, "gelu(%g) = %g", z, (double)out[i]);
    }
    for (int i = 0; i < R * K; i++) d[i] = 1.0f;
    gelu_backward(d, pre, db, R, K, NULL);
    for (int k = 0; k < K; k++) {
        double sum = 0;
        for (int r = 0; r < R; r++) {
            double z = pre[r * K + k], want = 0.5 * (1.0 + erf(z / sqrt(2.0))) + z * exp(-0.5 * z * z) / sqrt(2.0 * M_PI);
            CHECKF(fabs(d[r * K + k] - want) < 2e-6, "gelu'(%g) = %g, want %g", z, (double)d[r * K + k], want);
            sum += d[r * K + k];
        }
        CHECK(fabs(db[k] - sum) < 1e-5);
    }
}

/* attention_forward against a plain double-precision softmax(q k^T / sqrt(hs)) v
 * on shapes that do not fill the score kernel's 6 x 16 tiles, with every
 * query row and with a subset. */
static void attention_vs_naive(int Bn, int Tn, int Cn, int NHn, int sub) {
    int hs = Cn / NHn, C3 = 3 * Cn, Tq = sub ? Tn / 2 + 1 : Tn;
    float *qkv = malloc(sizeof(float) * (size_t)Bn * Tn * C3), *out = malloc(sizeof(float) * (size_t)Bn * Tq * Cn);
    float *att = malloc(sizeof(float) * (size_t)Bn * NHn * Tq * Tn);
    int *rows = malloc(sizeof(int) * (size_t)Bn * Tq);
    double *s = malloc(sizeof(double) * (size_t)Tn);
    sx_rng r;
    rng_seed(&r, (uint64_t)Tn * 131 + (uint64_t)hs);
    for (size_t i = 0; i < (size_t)Bn * Tn * C3; i++) qkv[i] = rng_normal(&r);
    for (int b = 0; b < Bn; b++)
        for (int t = 0; t < Tq; t++) rows[b * Tq + t] = sub ? (t * 7 + b) % Tn : t;  // distinct, out of order
    attention_forward(out, att, qkv, Bn, Tn, Cn, NHn, sub ? rows : NULL, Tq, NULL);
    double worst = 0;
    for (int b = 0; b < Bn; b++)
        for (int h = 0; h < NHn; h++)
            for (int t = 0; t < Tq; t++) {
                const float *q = qkv + ((size_t)b * Tn + rows[b * Tq + t]) * C3 + h * hs;
                double mx = -1e300, sum = 0;
                for (int j = 0; j < Tn; j++) {
                    const float *k = qkv + ((size_t)b * Tn + j) * C3 + Cn + h * hs;
                    double d = 0;
                    for (int e = 0; e < hs; e++) d += (double)q[e] * k[e];
                    s[j] = d / sqrt((double)hs);
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j < Tn; j++) { s[j] = exp(s[j] - mx); sum += s[j]; }
                for (int j = 0; j < Tn; j++) {
                    double p = s[j] / sum;
                    worst = fmax(worst, fabs(att[(((size_t)b * NHn + h) * Tq + t) * Tn + j] - p));
                }
                for (int e = 0; e < hs; e++) {
                    double o = 0;
                    for (int j = 0; j < Tn; j++) o += s[j] / sum * qkv[((size_t)b * Tn + j) * C3 + 2 * Cn + h * hs + e];
                    worst = fmax(worst, fabs(out[((size_t)b * Tq + t) * Cn + h * hs + e] - o));
                }
            }
    CHECKF(worst < 2e-5, "T=%d hs=%d%s: worst abs error %.3g", Tn, hs, sub ? " (query subset)" : "", worst);
    free(qkv); free(out); free(att); free(rows); free(s);
}

TEST(test_attention_forward_matches_naive) {
    attention_vs_naive(2, 37, 48, 2, 0);   // hs 24, 37 keys: partial tiles both ways
    attention_vs_naive(2, 37, 48, 2, 1);
    attention_vs_naive(1, 16, 64, 2, 0);   // exactly one column tile
    attention_vs_naive(3, 50, 128, 2, 0);  // hs 64, as ViT
    attention_vs_naive(1, 197, 64, 2, 1);  // the MAE decoder's 197 tokens, hs 32
}
