/* test_bf16.c: the bf16 path's structure. CPU detection against
 * /proc/cpuinfo; --precision resolution; the bf16 weight copies (refreshed
 * exactly when the weights change, correctly rounded, shared by replicas);
 * and, where oneDNN can run bf16 products, the products reading the copies,
 * the batch split at bf16 and a bf16 training step against fp32 on the twin.
 * Where it cannot (AVX2: oneDNN 2.6 has no bf16 matmul), those parts skip
 * with a line saying so and the fp32 fallback is checked instead. */
#include "core/cpu.h"
#include "core/rng.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "nn/optim.h"
#include "nn/precision.h"
#include "nn/team.h"
#include "testlib.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define TWIN "tests/fixtures/twin_pix"

static const char *BF16_SKIP = "oneDNN runs no bf16 products on this CPU (it needs AVX-512 or AMX); bf16 numerics not run";

/* 1 if /proc/cpuinfo's first flags line lists flag; -1 if there is none. */
static int cpuinfo_flag(const char *flag) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return -1;
    static char line[16384];
    int found = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5)) {
            found = 0;
            for (char *t = strtok(strchr(line, ':') ? strchr(line, ':') + 1 : line, " \t\n"); t && !found; t = strtok(NULL, " \t\n"))
                found = !strcmp(t, flag);
            break;
        }
    fclose(f);
    return found;
}

TEST(test_bf16_cpu_detection_matches_cpuinfo) {
    const sx_cpu *c = sx_cpu_info();
    CHECK(c == sx_cpu_info());   // detected once
    CHECK(c->dnnl_isa && strcmp(c->dnnl_isa, "unknown"));
    const char *flags[] = {"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"};
    int ours[] = {c->avx2, c->avx512f, c->avx512_bf16, c->amx_tile, c->amx_bf16};
    for (int i = 0; i < 5; i++) {
        int f = cpuinfo_flag(flags[i]);
        if (f < 0) TEST_SKIP("/proc/cpuinfo has no flags line");
        CHECKF(!!ours[i] == f, "%s: cpuid says %d, /proc/cpuinfo %d", flags[i], ours[i], f);
    }
    if (c->bf16 == SX_BF16_NATIVE) CHECK(c->avx512_bf16 || c->amx_bf16);
    if (c->bf16 != SX_BF16_UNAVAILABLE) CHECK(c->avx512f);
    char line[256];
    sx_cpu_describe(line, sizeof line);
    CHECKF(!strncmp(line, "cpu: ", 5) && strstr(line, c->dnnl_isa) && strstr(line, "bf16 products: "), "%s", line);
    CHECK(strstr(line, c->bf16 == SX_BF16_NATIVE ? "yes (native)" : "no (") != NULL);
    fprintf(stderr, "    %s\n", line);
}

TEST(test_bf16_precision_resolution) {
    sx_prec_request r;
    sx_err err;
    CHECK(sx_precision_parse("fp32", &r, &err) == 0 && r == PREC_REQ_FP32);
    CHECK(sx_precision_parse("bf16", &r, &err) == 0 && r == PREC_REQ_BF16);
    CHECK(sx_precision_parse("auto", &r, &err) == 0 && r == PREC_REQ_AUTO);
    CHECK(sx_precision_parse(NULL, &r, &err) == 0 && r == PREC_REQ_AUTO);
    CHECK(sx_precision_parse("fp16", &r, &err) == -1 && strstr(err.msg, "fp16"));
    CHECK(sx_precision_parse("BF16", &r, &err) == -1);
    char note[256];
    CHECK(sx_precision_resolve(PREC_REQ_FP32, note, sizeof note) == PREC_FP32 && note[0] == '\0');
    int avail = gemm_bf16_available(), native = sx_cpu_info()->bf16 == SX_BF16_NATIVE;
    sx_precision a = sx_precision_resolve(PREC_REQ_AUTO, note, sizeof note);
    CHECK(a == (native && avail ? PREC_BF16 : PREC_FP32) && note[0] == '\0');
    sx_precision b = sx_precision_resolve(PREC_REQ_BF16, note, sizeof note);
    CHECK(b == (avail ? PREC_BF16 : PREC_FP32));
    if (!avail) CHECKF(strstr(note, "running fp32") != NULL, "%s", note);
    else CHECK((note[0] != '\0') == !native);   // emulated says so
    setenv("SKELEX_PRECISION", "bf16", 1);
    CHECK(sx_precision_from_env(&r, &err) == 0 && r == PREC_REQ_BF16);
    setenv("SKELEX_PRECISION", "half", 1);
    CHECK(sx_precision_from_env(&r, &err) == -1 && strstr(err.msg, "SKELEX_PRECISION"));
    unsetenv("SKELEX_PRECISION");
    CHECK(sx_precision_from_env(&r, &err) == 0 && r == PREC_REQ_AUTO);
    fprintf(stderr, "    auto -> %s, bf16 -> %s%s%s\n", sx_precision_name(a), sx_precision_name(b), note[0] ? ": " : "", note);
}

static void random_batch(const mae_config *c, int B, uint64_t seed, float **px, float **noise) {
    int N = config_num_patches(c), S = c->image_size;
    size_t npx = (size_t)B * c->num_channels * S * S;
    *px = malloc(sizeof(float) * npx);
    *noise = malloc(sizeof(float) * (size_t)B * N);
    sx_rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < npx; i++) (*px)[i] = rng_normal(&r);
    for (int i = 0; i < B * N; i++) (*noise)[i] = rng_uniform(&r);
}

/* The twin checkpoint into *m (a failed load is a failed CHECK: -1); with
 * px, a random batch of B images (seed) in *px and *noise. 0 or -1. */
static int load_twin(mae_model *m, int B, uint64_t seed, float **px, float **noise) {
    sx_err err;
    if (checkpoint_load(TWIN, m, &err)) { CHECKF(0, "%s", err.msg); return -1; }
    if (px) random_batch(&m->cfg, B, seed, px, noise);
    return 0;
}

/* every parameter's copy is its round-to-nearest-even bf16 (checked against
 * safetensors' independent conversion) */
static int copies_match(const mae_model *m) {
    if (!m->w16 || !m->w16->w) return 0;
    for (size_t i = 0; i < m->n_floats; i++)
        if (m->w16->w[i] != sx_f32_to_bf16(m->params[i])) return 0;
    return m->n_floats > 1000;
}

TEST(test_bf16_copies_refresh_exactly_when_weights_change) {
    mae_model m;
    enum { B = 2 };
    float *px, *noise;
    if (load_twin(&m, B, 11, &px, &noise)) return;
    // fp32: no copies, ever
    sx_err err;
    mae_set_precision(&m, PREC_FP32);
    CHECK(mae_forward(&m, px, noise, B, &err) == 0);
    CHECK(mae_bf16_refreshes(&m) == 0 && m.w16 && m.w16->w == NULL);

    mae_set_precision(&m, PREC_BF16);
    CHECK(mae_forward(&m, px, noise, B, &err) == 0);           // first bf16 forward after the load
    CHECK(mae_bf16_refreshes(&m) == 1 && copies_match(&m));
    CHECK(mae_forward(&m, px, noise, B, &err) == 0);           // same weights: no refresh
    mae_zero_grad(&m);
    mae_backward(&m);
    CHECK(mae_bf16_refreshes(&m) == 1);
    adamw opt;
    adamw_init(&opt, &m, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.05f);
    for (int s = 0; s < 3; s++) {                              // one refresh per optimizer step
        adamw_step(&opt, &m);
        CHECK(!copies_match(&m));                               // stale until the next product reads them
        CHECK(mae_forward(&m, px, noise, B, &err) == 0);
        mae_zero_grad(&m);
        mae_backward(&m);
        CHECKF(mae_bf16_refreshes(&m) == 2 + s, "step %d: %ld refreshes", s, mae_bf16_refreshes(&m));
        CHECK(copies_match(&m));
    }
    // a replica shares the owner's copies and never rewrites them
    mae_model r;
    CHECK(mae_build_replica(&r, &m, &err) == 0);
    CHECK(r.w16 == m.w16 && mae_precision(&r) == PREC_BF16);
    CHECK(mae_forward(&r, px, noise, B, &err) == 0);
    CHECK(mae_bf16_refreshes(&m) == 4);
    mae_weights_changed(&m);
    CHECK(mae_forward(&r, px, noise, B, &err) == 0);           // stale: the replica converts per product instead
    CHECK(mae_bf16_refreshes(&m) == 4);
    mae_free(&r);
    // re-initialising the weights marks them changed too
    mae_init_weights(&m, 3);
    CHECK(mae_forward(&m, px, noise, B, &err) == 0 && mae_bf16_refreshes(&m) == 5 && copies_match(&m));
    adamw_free(&opt);
    free(px); free(noise);
    mae_free(&m);
}

/* One forward + backward on the twin at precision p (every product in bf16:
 * threshold 0); loss and gradients into *loss, g. */
static int twin_step(sx_precision p, const float *px, const float *noise, int B, float *loss, float *g, long *wreads) {
    sx_err err;
    mae_model m;
    if (load_twin(&m, 0, 0, NULL, NULL)) return -1;
    mae_set_precision(&m, p);
    gemm_ctx_set_bf16_min(m.gemm, 0);
    m.loss_only = 1;
    int rc = mae_forward(&m, px, noise, B, &err);
    CHECKF(rc == 0, "%s", rc ? err.msg : "");
    mae_zero_grad(&m);
    mae_backward(&m);
    *loss = m.loss;
    memcpy(g, m.grads, sizeof(float) * m.n_floats);
    gemm_ctx_stats(m.gemm, NULL, wreads);
    mae_free(&m);
    return rc;
}

/* sqrt(sum (a-b)^2 / sum b^2) */
static double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 1e-30;
    for (size_t i = 0; i < n; i++) { num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]); den += (double)b[i] * b[i]; }
    return sqrt(num / den);
}

/* Stated tolerances of a bf16 step against fp32 (8 mantissa bits on each
 * product input, fp32 accumulation): loss within 1 % relative; each weight
 * matrix's gradient within 5 % relative L2, all gradients together within 3 %. */
TEST(test_bf16_step_agrees_with_fp32_on_twin) {
    mae_model m;
    enum { B = 4 };
    float *px, *noise;
    if (load_twin(&m, B, 5, &px, &noise)) return;
    size_t n = m.n_floats;
    float *g32 = malloc(sizeof(float) * n), *g16 = malloc(sizeof(float) * n), l32, l16;
    long r32 = 0, r16 = 0;
    CHECK(twin_step(PREC_FP32, px, noise, B, &l32, g32, &r32) == 0);
    CHECK(twin_step(PREC_BF16, px, noise, B, &l16, g16, &r16) == 0);
    CHECK(r32 == 0);
    if (!gemm_bf16_available()) {
        // the fallback: bf16 asked, fp32 run, exactly the fp32 step
        CHECK(l16 == l32 && memcmp(g16, g32, sizeof(float) * n) == 0 && r16 == 0);
        free(px); free(noise); free(g32); free(g16);
        mae_free(&m);
        TEST_SKIP(BF16_SKIP);
    }
    CHECKF(r16 > 0, "bf16 products read no weight copies");
    double le = fabs((double)l16 - l32) / fabs((double)l32), worst = 0;
    CHECKF(le < 1e-2, "loss bf16 %.6g vs fp32 %.6g (rel %.2e)", (double)l16, (double)l32, le);
    for (int t = 0; t < m.n_info; t++) {
        const param_info *pi = &m.info[t];
        if (!(pi->flags & PARAM_DECAY)) continue;
        double e = rel_l2(g16 + pi->offset, g32 + pi->offset, pi->numel);
        if (e > worst) worst = e;
        CHECKF(e < 5e-2, "gradient of %s: rel L2 err %.2e", pi->name, e);
    }
    double all = rel_l2(g16, g32, n);
    CHECKF(all < 3e-2, "all gradients: rel L2 err %.2e", all);
    CHECK(le > 0 || all > 0);   // bf16 really rounded something
    fprintf(stderr, "    bf16 vs fp32: loss rel err %.2e, worst weight-gradient rel L2 %.2e, all %.2e (%ld copy reads)\n",
            le, worst, all, r16);
    free(px); free(noise); free(g32); free(g16);
    mae_free(&m);
}

/* The batch split runs at bf16 (per-replica contexts): the same loss and
 * gradients as the whole batch at once, within bf16 tolerance where bf16
 * runs (the shares' products differ in shape, so in rounding), within fp32
 * round-off where it falls back. */
TEST(test_bf16_team_split_matches_whole_batch) {
    sx_err err;
    mae_model m;
    if (load_twin(&m, 0, 0, NULL, NULL)) return;
    mae_set_precision(&m, PREC_BF16);
    gemm_ctx_set_bf16_min(m.gemm, 0);
    m.loss_only = 1;
    enum { B = 4 };
    float *px, *noise;
    random_batch(&m.cfg, B, 9, &px, &noise);
    size_t n = m.n_floats;
    float *ref = malloc(sizeof(float) * n);
    mae_zero_grad(&m);
    CHECK(mae_forward(&m, px, noise, B, &err) == 0);
    mae_backward(&m);
    float loss = m.loss;
    memcpy(ref, m.grads, sizeof(float) * n);

    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    mae_team t;
    CHECK(mae_team_init(&t, &m, B, &err) == 0);
    CHECKF(t.n == 2, "bf16 team of %d shares (the split must run at bf16 too)", t.n);
    for (int k = 0; k < t.n - 1; k++) {
        CHECK(mae_precision(&t.rep[k]) == PREC_BF16 && t.rep[k].w16 == m.w16 && t.rep[k].gemm != m.gemm);
        gemm_ctx_set_bf16_min(t.rep[k].gemm, 0);
    }
    mae_weights_changed(&m);   // the team refreshes the copies before its shares start
    long before = mae_bf16_refreshes(&m);
    mae_zero_grad(&m);
    CHECK(mae_team_step(&t, px, noise, B, &err) == 0);
    omp_set_num_threads(saved);
    CHECK(mae_bf16_refreshes(&m) == before + 1);
    int bf = gemm_bf16_available();
    double tl = bf ? 1e-2 : 1e-6, tg = bf ? 5e-2 : 1e-5;
    double le = fabs((double)m.loss - loss) / fabs((double)loss), ge = rel_l2(m.grads, ref, n);
    CHECKF(le <= tl, "loss split %.9g vs whole %.9g (rel %.2e)", (double)m.loss, (double)loss, le);
    CHECKF(ge <= tg, "gradients: rel L2 err %.2e", ge);
    if (bf) {
        long w0 = 0, w1 = 0;
        gemm_ctx_stats(m.gemm, NULL, &w0);
        gemm_ctx_stats(t.rep[0].gemm, NULL, &w1);
        CHECKF(w0 > 0 && w1 > 0, "each share's products read the copies (%ld, %ld)", w0, w1);
    }
    fprintf(stderr, "    split vs whole at %s: loss rel %.2e, gradients rel L2 %.2e\n", bf ? "bf16" : "fp32 (fallback)", le, ge);
    mae_team_free(&t);
    free(px); free(noise); free(ref);
    mae_free(&m);
    if (!bf) TEST_SKIP(BF16_SKIP);
}

/* A product whose B lies inside the registered weights reads their copy:
 * the same result as converting B, and counted. */
TEST(test_bf16_products_read_registered_copies) {
    enum { M = 64, N = 96, K = 128 };
    float *a = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * N * K), c1[M * N], c2[M * N];
    uint16_t *w16 = malloc(sizeof(uint16_t) * N * K);
    sx_rng r;
    rng_seed(&r, 2);
    for (int i = 0; i < M * K; i++) a[i] = rng_normal(&r);
    for (int i = 0; i < N * K; i++) w[i] = rng_normal(&r);
    gemm_to_bf16(w16, w, (size_t)N * K);
    for (int i = 0; i < N * K; i++) CHECK(w16[i] == sx_f32_to_bf16(w[i]));
    sx_gemm_ctx *x = gemm_ctx_new();
    gemm_ctx_set_precision(x, PREC_BF16);
    gemm_ctx_set_bf16_min(x, 0);
    sx_gemm_ctx *prev = gemm_bind(x);
    gemm(0, 1, M, N, K, 1.0f, a, K, w, K, 0.0f, c1, N);       // converts w
    gemm_ctx_set_weights(x, w, (size_t)N * K, w16);
    gemm(0, 1, M, N, K, 1.0f, a, K, w, K, 0.0f, c2, N);       // reads w16 (transposed, in place)
    gemm_bind(prev);
    long prods = 0, reads = 0;
    gemm_ctx_stats(x, &prods, &reads);
    gemm_ctx_free(x);
    double ref = 0, d = 0;
    for (int i = 0; i < M * N; i++) { d = fmax(d, fabs((double)c1[i] - c2[i])); ref = fmax(ref, fabs((double)c1[i])); }
    CHECKF(d <= 1e-5 * ref, "copy vs converted: max diff %.3g of %.3g", d, ref);
    free(a); free(w); free(w16);
    if (!gemm_bf16_available()) { CHECK(prods == 0 && reads == 0); TEST_SKIP(BF16_SKIP); }
    CHECK(prods == 2 && reads == 1);
}
