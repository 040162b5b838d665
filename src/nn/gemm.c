/* gemm.c: matrix products through oneDNN's C API, in a context per model
 * (gemm.h). fp32 goes to dnnl_sgemm. bf16 runs a oneDNN matmul primitive
 * (bf16 x bf16 -> f32) from the context's cache: a B operand inside the
 * context's registered weights is read from their bf16 copy in place (no
 * conversion), anything else is converted into the context's buffers. */
#include "nn/gemm.h"
#include "nn/profile.h"
#include "core/common.h"
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sx_precision g_prec = PREC_FP32;    /* the process default */
static atomic_int bf16_unavailable;        /* oneDNN has no bf16 matmul for this CPU (a CPU fact) */

void gemm_set_precision(sx_precision p) { g_prec = p == PREC_DEFAULT ? PREC_FP32 : p; }
sx_precision gemm_get_precision(void) { return g_prec; }

static void check(dnnl_status_t s, const char *what) {
    if (s != dnnl_success) { fprintf(stderr, "skelex: oneDNN %s failed (status %d)\n", what, (int)s); abort(); }
}

/* ---- bf16 path: a small cache of matmul primitives keyed by shape ---- */
typedef struct {
    int transa, transb, M, N, K, lda, ldb, ldc;
    int bw;                   /* B read in place from the weights' bf16 copy (strided, maybe transposed) */
    float alpha, beta;
    dnnl_primitive_t prim;
} mm_entry;

#define MM_CACHE 256

struct sx_gemm_ctx {
    sx_precision prec;
    mm_entry *cache;          /* MM_CACHE entries, allocated on first bf16 product */
    int n;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    uint16_t *a, *b;
    size_t a_cap, b_cap;
    const float *w_base;      /* registered weights (gemm_ctx_set_weights) and their bf16 copy */
    size_t w_n;
    const uint16_t *w16;
    long bf16_products, weight_reads;
    double bf16_min;          /* products of fewer M*N*K stay fp32 (converting would cost more) */
    sx_prof prof;
};

static sx_gemm_ctx g_default;
static pthread_once_t g_default_once = PTHREAD_ONCE_INIT;
static void default_open(void) {
    g_default.prec = PREC_DEFAULT;
    g_default.bf16_min = GEMM_BF16_MIN;
    sx_prof_open(&g_default.prof);
}
static _Thread_local sx_gemm_ctx *t_ctx;
static _Thread_local int t_level;          /* omp_get_level() where t_ctx was bound */

sx_gemm_ctx *gemm_ctx_new(void) {
    sx_gemm_ctx *c = sx_calloc(1, sizeof *c);
    c->prec = PREC_DEFAULT;
    c->bf16_min = GEMM_BF16_MIN;
    sx_prof_open(&c->prof);
    return c;
}

void gemm_ctx_free(sx_gemm_ctx *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++)
        if (c->cache[i].prim) dnnl_primitive_destroy(c->cache[i].prim);
    free(c->cache);
    if (c->stream) dnnl_stream_destroy(c->stream);
    if (c->engine) dnnl_engine_destroy(c->engine);
    free(c->a);
    free(c->b);
    sx_prof_close(&c->prof);
    free(c);
}

void gemm_ctx_set_precision(sx_gemm_ctx *c, sx_precision p) { c->prec = p; }
sx_precision gemm_ctx_precision(const sx_gemm_ctx *c) { return c->prec == PREC_DEFAULT ? g_prec : c->prec; }

sx_gemm_ctx *gemm_current(void) {
    if (t_ctx) return t_ctx;
    pthread_once(&g_default_once, default_open);
    return &g_default;
}

sx_gemm_ctx *gemm_bind(sx_gemm_ctx *c) {
    sx_gemm_ctx *prev = t_ctx;
    t_ctx = c;
    t_level = omp_get_level();
    return prev;
}

void gemm_ctx_set_weights(sx_gemm_ctx *c, const float *base, size_t n, const uint16_t *w16) {
    c->w_base = w16 ? base : NULL;
    c->w_n = w16 ? n : 0;
    c->w16 = w16;
}

void gemm_ctx_set_bf16_min(sx_gemm_ctx *c, double mnk) { c->bf16_min = mnk; }

void gemm_ctx_stats(const sx_gemm_ctx *c, long *bf16_products, long *weight_reads) {
    if (bf16_products) *bf16_products = c->bf16_products;
    if (weight_reads) *weight_reads = c->weight_reads;
}

void gemm_ctx_add_attention(sx_gemm_ctx *c, int dir, double s) { c->prof.att_s[dir] += s; }

static void md_2d(dnnl_memory_desc_t *md, int rows, int cols, int ld, int trans, dnnl_data_type_t dt) {
    /* logical rows x cols; stored row-major with stride ld, or transposed */
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides = {trans ? 1 : ld, trans ? ld : 1};
    check(dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides), "memory_desc");
}

static dnnl_primitive_t mm_get(sx_gemm_ctx *x, int ta, int tb, int M, int N, int K, int lda, int ldb, int ldc,
                               int bw, float alpha, float beta) {
    if (!x->cache) x->cache = sx_calloc(MM_CACHE, sizeof *x->cache);
    for (int i = 0; i < x->n; i++) {
        mm_entry *e = &x->cache[i];
        if (e->transa == ta && e->transb == tb && e->M == M && e->N == N && e->K == K && e->lda == lda &&
            e->ldb == ldb && e->ldc == ldc && e->bw == bw && e->alpha == alpha && e->beta == beta)
            return e->prim;
    }
    if (!x->engine) {
        check(dnnl_engine_create(&x->engine, dnnl_cpu, 0), "engine_create");
        check(dnnl_stream_create(&x->stream, x->engine, dnnl_stream_default_flags), "stream_create");
    }
    dnnl_memory_desc_t a, b, c;
    /* converted operands are packed densely: A is M x K (lda K), B is K x N (ldb N);
     * a B from the weights' copy keeps its stored layout */
    md_2d(&a, M, K, K, 0, dnnl_bf16);
    if (bw) md_2d(&b, K, N, ldb, tb, dnnl_bf16);
    else md_2d(&b, K, N, N, 0, dnnl_bf16);
    md_2d(&c, M, N, ldc, 0, dnnl_f32);
    dnnl_matmul_desc_t d;
    check(dnnl_matmul_desc_init(&d, &a, &b, NULL, &c), "matmul_desc");
    dnnl_primitive_attr_t attr;
    check(dnnl_primitive_attr_create(&attr), "attr");
    if (alpha != 1.0f) check(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha), "scales");
    if (beta != 0.0f) {
        dnnl_post_ops_t po;
        check(dnnl_post_ops_create(&po), "post_ops");
        check(dnnl_post_ops_append_sum(po, beta), "sum");
        check(dnnl_primitive_attr_set_post_ops(attr, po), "set_post_ops");
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim = NULL;   /* refused: remembered as NULL; the caller packs densely or gives bf16 up */
    if (dnnl_primitive_desc_create(&pd, &d, attr, x->engine, NULL) == dnnl_success) {
        check(dnnl_primitive_create(&prim, pd), "primitive_create");
        dnnl_primitive_desc_destroy(pd);
    }
    dnnl_primitive_attr_destroy(attr);
    if (x->n == MM_CACHE) { if (x->cache[0].prim) dnnl_primitive_destroy(x->cache[0].prim); memmove(x->cache, x->cache + 1, sizeof x->cache[0] * (MM_CACHE - 1)); x->n--; }
    x->cache[x->n++] = (mm_entry){ta, tb, M, N, K, lda, ldb, ldc, bw, alpha, beta, prim};
    return prim;
}

static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* Pack op(X) (rows x cols) into a dense row-major bf16 buffer. */
static void pack_bf16(uint16_t *dst, const float *X, int ld, int trans, int rows, int cols) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dst[(size_t)r * cols + c] = to_bf16(trans ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c]);
}

void gemm_to_bf16(uint16_t *dst, const float *src, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] = to_bf16(src[i]);
}

static uint16_t *grow(uint16_t **buf, size_t *cap, size_t n) {
    if (n > *cap) { free(*buf); *buf = sx_malloc(n * 2); *cap = n; }
    return *buf;
}

/* The bf16 copy of B when B lies wholly inside the registered weights, else NULL. */
static const uint16_t *weight_copy(const sx_gemm_ctx *x, int tb, int N, int K, const float *B, int ldb) {
    if (!x->w16 || B < x->w_base || B >= x->w_base + x->w_n) return NULL;
    size_t off = (size_t)(B - x->w_base), extent = tb ? (size_t)(N - 1) * ldb + K : (size_t)(K - 1) * ldb + N;
    return off + extent <= x->w_n ? x->w16 + off : NULL;
}

static void gemm_bf16(sx_gemm_ctx *x, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc) {
    const uint16_t *bw = weight_copy(x, tb, N, K, B, ldb);
    dnnl_primitive_t prim = NULL;
    if (!atomic_load(&bf16_unavailable)) {
        if (bw && !(prim = mm_get(x, ta, tb, M, N, K, lda, ldb, ldc, 1, alpha, beta))) bw = NULL;  /* strided B refused */
        if (!prim && !(prim = mm_get(x, ta, tb, M, N, K, lda, ldb, ldc, 0, alpha, beta)))
            atomic_store(&bf16_unavailable, 1);  /* products run fp32 from now on; precision.h says so to the user */
    }
    if (!prim) {
        check(dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc), "sgemm");
        return;
    }
    x->bf16_products++;
    uint16_t *a = grow(&x->a, &x->a_cap, (size_t)M * K), *b = NULL;
    pack_bf16(a, A, lda, ta, M, K);
    dnnl_memory_desc_t ma, mb, mc;
    md_2d(&ma, M, K, K, 0, dnnl_bf16);
    if (bw) {
        x->weight_reads++;
        md_2d(&mb, K, N, ldb, tb, dnnl_bf16);
    } else {
        b = grow(&x->b, &x->b_cap, (size_t)K * N);
        pack_bf16(b, B, ldb, tb, K, N);
        md_2d(&mb, K, N, N, 0, dnnl_bf16);
    }
    md_2d(&mc, M, N, ldc, 0, dnnl_f32);
    dnnl_memory_t xa, xb, xc;
    check(dnnl_memory_create(&xa, &ma, x->engine, a), "mem a");
    check(dnnl_memory_create(&xb, &mb, x->engine, bw ? (void *)(uintptr_t)bw : (void *)b), "mem b");
    check(dnnl_memory_create(&xc, &mc, x->engine, C), "mem c");
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, xa}, {DNNL_ARG_WEIGHTS, xb}, {DNNL_ARG_DST, xc}};
    check(dnnl_primitive_execute(prim, x->stream, 3, args), "execute");
    check(dnnl_stream_wait(x->stream), "wait");
    dnnl_memory_destroy(xa);
    dnnl_memory_destroy(xb);
    dnnl_memory_destroy(xc);
}

/* Probe once, in a context of its own (callers may be on several threads). */
static pthread_once_t g_probe_once = PTHREAD_ONCE_INIT;
static void bf16_probe(void) {
    float a[64] = {0}, b[64] = {0}, c[64];
    sx_gemm_ctx *x = gemm_ctx_new();
    gemm_bf16(x, 0, 0, 8, 8, 8, 1.0f, a, 8, b, 8, 0.0f, c, 8);  /* probes primitive creation */
    gemm_ctx_free(x);
}

int gemm_bf16_available(void) {
    pthread_once(&g_probe_once, bf16_probe);
    return !atomic_load(&bf16_unavailable);
}

void gemm_profile_reset(void) { sx_prof_reset_all(); }

static void gemm_dispatch(sx_gemm_ctx *x, int transa, int transb, int M, int N, int K, float alpha, const float *A,
                          int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    /* small or nested products stay in fp32: converting would cost more */
    if (x && gemm_ctx_precision(x) == PREC_BF16 && (double)M * N * K >= x->bf16_min) {
        gemm_bf16(x, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    check(dnnl_sgemm(transa ? 'T' : 'N', transb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc), "sgemm");
}

void gemm(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    /* products inside a layer's own parallel loop (below the level the context was bound at, or with no
     * context bound in a parallel region): fp32, not counted, no context touched from several threads.
     * A batch share (team.c) binds its replica's context inside the team's region: its products use it. */
    if (omp_in_parallel() && (!t_ctx || omp_get_level() > t_level)) {
        gemm_dispatch(NULL, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    sx_gemm_ctx *x = gemm_current();
    if (!sx_prof_enabled()) { gemm_dispatch(x, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); return; }
    double t0 = sx_now();
    gemm_dispatch(x, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    sx_prof_gemm(&x->prof, transa, transb, M, N, K, sx_now() - t0);
}
