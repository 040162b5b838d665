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

/* ---- embed.c and loss.c layers against finite differences ---- */

enum { EB = 2, EN = 6, ELK = 3, ED = 4, EC = 2, ES = 4, EP = 2, EK = 3 };  /* grid 2: N = 4 patches of 2x2x2 */
typedef struct {
    float pixels[EB * EC * ES * ES], patches[EB * 4 * EC * EP * EP], w[ED * EC * EP * EP], b[ED];
    float cls[ED], pos[(1 + EN) * ED], emb[EB * ELK * ED], mask_token[ED];
    int ids_keep[EB * ELK], ids_restore[EB * EN], src[EB * (1 + EN)];
    float mask[EB * EN], target[EB * EN * 8];
    int Tp, masked_only;
    float y[EB * (1 + ELK) * ED];   /* unshuffle's / share_rows' inputs, kept for calls */
} ectx;

static void fill_rand(float *x, size_t n, sx_rng *r) { for (size_t i = 0; i < n; i++) x[i] = rng_normal(r); }

static void pe_fwd_w(const float *w, float *out, void *v) {   /* patch_embed as a function of its weight */
    ectx *c = v;
    patch_embed_forward(out, c->patches, c->pixels, c->ids_keep, w, c->b, EB, 2, EC, ES, EP, ED);
}
static void pe_fwd_b(const float *b, float *out, void *v) {
    ectx *c = v;
    patch_embed_forward(out, c->patches, c->pixels, c->ids_keep, c->w, b, EB, 2, EC, ES, EP, ED);
}
static void emb_fwd_e(const float *e, float *out, void *v) { ectx *c = v; embed_forward(out, e, c->cls, c->pos, c->ids_keep, EB, ELK, ED); }
static void emb_fwd_c(const float *cl, float *out, void *v) { ectx *c = v; embed_forward(out, c->emb, cl, c->pos, c->ids_keep, EB, ELK, ED); }
static void un_fwd_y(const float *y, float *out, void *v) {
    ectx *c = v;
    unshuffle_forward(out, y, c->mask_token, c->pos, c->ids_restore, EB, EN, ELK, ED);
}
static void un_fwd_m(const float *mt, float *out, void *v) {
    ectx *c = v;
    unshuffle_forward(out, c->y, mt, c->pos, c->ids_restore, EB, EN, ELK, ED);
}
/* share_rows of unshuffle's output, as a function of the latter's input y and of mask_token */
static void sh_fwd_y(const float *y, float *out, void *v) {
    ectx *c = v;
    float z[EB * (1 + EN) * ED];
    unshuffle_forward(z, y, c->mask_token, c->pos, c->ids_restore, EB, EN, ELK, ED);
    share_rows_forward(out, c->src, z, c->mask_token, c->pos, c->ids_restore, EB, EN, ELK, ED);
}
static void sh_fwd_m(const float *mt, float *out, void *v) {
    ectx *c = v;
    float z[EB * (1 + EN) * ED];
    unshuffle_forward(z, c->y, mt, c->pos, c->ids_restore, EB, EN, ELK, ED);
    share_rows_forward(out, c->src, z, mt, c->pos, c->ids_restore, EB, EN, ELK, ED);
}
static void mse_fwd(const float *pred, float *out, void *v) {
    ectx *c = v;
    float t[sizeof c->target / sizeof(float)];
    memcpy(t, c->target, sizeof t);
    out[0] = masked_mse_forward(t, pred, c->mask, EB, EN, 8, c->Tp, c->masked_only, 1);
}
static void head_fwd_w(const float *w, float *out, void *v) { ectx *c = v; cls_head_forward(out, c->y, w, c->b, EB, 1 + ELK, ED, EK); }
static void head_fwd_l(const float *l, float *out, void *v) { ectx *c = v; cls_head_forward(out, l, c->w, c->b, EB, 1 + ELK, ED, EK); }

static void setup_masking(ectx *c, sx_rng *r) {
    float noise[EB * EN];
    fill_rand(noise, EB * EN, r);
    /* a permutation per image: keep the ELK smallest noise values, as mae_masking */
    for (int b = 0; b < EB; b++) {
        int order[EN];
        for (int n = 0; n < EN; n++) order[n] = n;
        for (int i = 0; i < EN; i++)
            for (int j = i + 1; j < EN; j++)
                if (noise[b * EN + order[j]] < noise[b * EN + order[i]]) { int t = order[i]; order[i] = order[j]; order[j] = t; }
        for (int j = 0; j < EN; j++) c->ids_restore[b * EN + order[j]] = j;
        for (int j = 0; j < ELK; j++) c->ids_keep[b * ELK + j] = order[j];
        for (int n = 0; n < EN; n++) c->mask[b * EN + n] = c->ids_restore[b * EN + n] >= ELK;
    }
}

static void ectx_init(ectx *c, sx_rng *r, uint64_t seed) {
    memset(c, 0, sizeof *c);
    rng_seed(r, seed);
    setup_masking(c, r);
}

TEST(test_embed_layers_match_finite_differences) {
    ectx c;
    sx_rng r;
    ectx_init(&c, &r, 21);
    fill_rand(c.pixels, sizeof c.pixels / 4, &r); fill_rand(c.w, sizeof c.w / 4, &r); fill_rand(c.b, ED, &r);
    fill_rand(c.cls, ED, &r); fill_rand(c.pos, sizeof c.pos / 4, &r); fill_rand(c.emb, sizeof c.emb / 4, &r);
    fill_rand(c.mask_token, ED, &r); fill_rand(c.y, sizeof c.y / 4, &r);
    int ids2[EB * 2] = {3, 0, 1, 2};   /* patch_embed over 2 of the 4 patches of the 4x4 image */
    memcpy(c.ids_keep, ids2, sizeof ids2);
    // patch_embed: out (EB,2,ED); gradients of w and b
    float probe[EB * (1 + EN) * ED * 2], dw[sizeof c.w / 4] = {0}, db[ED] = {0}, out[EB * 2 * ED];
    fill_rand(probe, sizeof probe / 4, &r);
    pe_fwd_w(c.w, out, &c);
    patch_embed_backward(dw, db, probe, c.patches, EB, 2, EC * EP * EP, ED);
    CHECK(fd_check(pe_fwd_w, &c, c.w, sizeof c.w / 4, EB * 2 * ED, probe, dw) < 1e-3);
    CHECK(fd_check(pe_fwd_b, &c, c.b, ED, EB * 2 * ED, probe, db) < 1e-3);
    // the gather is the conv's patch: patch 3 of image 0 starts at pixel (2, 2)
    CHECK(c.patches[0] == c.pixels[2 * ES + 2] && c.patches[1] == c.pixels[2 * ES + 3]);
    setup_masking(&c, &r);
    // embed: gradients of emb (overwritten) and cls (accumulated)
    float demb[sizeof c.emb / 4], dcls[ED] = {0};
    embed_backward(demb, dcls, probe, EB, ELK, ED);
    CHECK(fd_check(emb_fwd_e, &c, c.emb, sizeof c.emb / 4, EB * (1 + ELK) * ED, probe, demb) < 1e-3);
    CHECK(fd_check(emb_fwd_c, &c, c.cls, ED, EB * (1 + ELK) * ED, probe, dcls) < 1e-3);
    // unshuffle: gradients of y and mask_token
    float dy[sizeof c.y / 4], dmt[ED] = {0};
    unshuffle_backward(dy, dmt, probe, c.ids_restore, EB, EN, ELK, ED);
    CHECK(fd_check(un_fwd_y, &c, c.y, sizeof c.y / 4, EB * (1 + EN) * ED, probe, dy) < 1e-3);
    CHECK(fd_check(un_fwd_m, &c, c.mask_token, ED, EB * (1 + EN) * ED, probe, dmt) < 1e-3);
    // share_rows after unshuffle: R = EB*(1+ELK) + EN distinct rows
    int R = EB * (1 + ELK) + EN;
    float z[EB * (1 + EN) * ED], xu[(EB * (1 + ELK) + EN) * ED], dz[EB * (1 + EN) * ED] = {0}, dmt2[ED] = {0};
    unshuffle_forward(z, c.y, c.mask_token, c.pos, c.ids_restore, EB, EN, ELK, ED);
    share_rows_forward(xu, c.src, z, c.mask_token, c.pos, c.ids_restore, EB, EN, ELK, ED);
    for (int i = 0; i < EB * (1 + EN); i++)   // every row of z is its row of xu
        CHECK(!memcmp(z + (size_t)i * ED, xu + (size_t)c.src[i] * ED, sizeof(float) * ED));
    share_rows_backward(dz, dmt2, probe, c.src, EB, EN, ELK, ED);
    unshuffle_backward(dy, dmt2, dz, c.ids_restore, EB, EN, ELK, ED);
    CHECK(fd_check(sh_fwd_y, &c, c.y, sizeof c.y / 4, (size_t)R * ED, probe, dy) < 1e-3);
    CHECK(fd_check(sh_fwd_m, &c, c.mask_token, ED, (size_t)R * ED, probe, dmt2) < 1e-3);
    // masked_rows_index lists each image's hidden patches, ascending
    int im[EB * (EN - ELK)];
    masked_rows_index(im, c.ids_restore, EB, EN, ELK);
    for (int b = 0; b < EB; b++)
        for (int j = 0; j < EN - ELK; j++) {
            CHECK(c.mask[b * EN + im[b * (EN - ELK) + j] - 1] == 1.0f);
            if (j) CHECK(im[b * (EN - ELK) + j] > im[b * (EN - ELK) + j - 1]);
        }
}

TEST(test_loss_layers_match_finite_differences) {
    ectx c;
    sx_rng r;
    ectx_init(&c, &r, 22);
    fill_rand(c.target, sizeof c.target / 4, &r);
    int P = 8, Td = 1 + EN, Lm = EN - ELK;
    float pred[EB * (1 + EN) * 8], dpred[EB * (1 + EN) * 8], one = 1.0f;
    fill_rand(pred, sizeof pred / 4, &r);
    // all rows (Tp = 1+N), with norm_pix
    c.Tp = Td; c.masked_only = 0;
    float t[sizeof c.target / 4];
    memcpy(t, c.target, sizeof t);
    float full = masked_mse_forward(t, pred, c.mask, EB, EN, P, Td, 0, 1);
    masked_mse_backward(dpred, pred, t, c.mask, EB, EN, P, Td, 0, 1.0f);
    CHECK(fd_check(mse_fwd, &c, pred, sizeof pred / 4, 1, &one, dpred) < 1e-3);
    // normalised targets: each patch has mean 0
    double m0 = 0;
    for (int i = 0; i < P; i++) m0 += t[i];
    CHECK(fabs(m0) < 1e-5);
    // hidden rows only (Tp = N - Lk): the same loss
    float rows[EB * (EN - ELK) * 8];
    for (int b = 0; b < EB; b++)
        for (int n = 0, j = 0; n < EN; n++)
            if (c.mask[b * EN + n] != 0.0f) memcpy(rows + ((size_t)b * Lm + j++) * P, pred + ((size_t)b * Td + 1 + n) * P, sizeof(float) * P);
    memcpy(t, c.target, sizeof t);
    CHECK_NEAR(masked_mse_forward(t, rows, c.mask, EB, EN, P, Lm, 1, 1), full, 1e-6);
    c.Tp = Lm; c.masked_only = 1;
    masked_mse_backward(dpred, rows, t, c.mask, EB, EN, P, Lm, 1, 1.0f);
    CHECK(fd_check(mse_fwd, &c, rows, sizeof rows / 4, 1, &one, dpred) < 1e-3);
    // classifier head on the CLS rows of a (EB, 1+ELK, ED) latent
    fill_rand(c.y, sizeof c.y / 4, &r); fill_rand(c.w, EK * ED, &r); fill_rand(c.b, EK, &r);
    float probe[EB * EK], dw[EK * ED] = {0}, db[EK] = {0}, dl[sizeof c.y / 4] = {0};
    fill_rand(probe, EB * EK, &r);
    cls_head_backward(dl, dw, db, probe, c.y, c.w, EB, 1 + ELK, ED, EK);
    CHECK(fd_check(head_fwd_w, &c, c.w, EK * ED, EB * EK, probe, dw) < 1e-3);
    CHECK(fd_check(head_fwd_l, &c, c.y, sizeof c.y / 4, EB * EK, probe, dl) < 1e-3);
    double sb = 0;
    for (int b = 0; b < EB; b++) sb += probe[b * EK];
    CHECK_NEAR(db[0], sb, 1e-5);
}
