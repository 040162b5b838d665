/* gemm.c: matrix products through oneDNN's C API, and thread pinning.
 * fp32 goes to dnnl_sgemm. bf16 converts the operands and runs a cached
 * oneDNN matmul primitive (bf16 x bf16 -> f32). */
#include "nn/gemm.h"
#include "core/common.h"
#include <oneapi/dnnl/dnnl.h>
#include <malloc.h>
#include <omp.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sx_precision g_prec = PREC_FP32;
static int bf16_unavailable;  /* oneDNN has no bf16 matmul for this CPU */

void gemm_set_precision(sx_precision p) { g_prec = p; }
sx_precision gemm_get_precision(void) { return g_prec; }


static void check(dnnl_status_t s, const char *what) {
    if (s != dnnl_success) { fprintf(stderr, "skelex: oneDNN %s failed (status %d)\n", what, (int)s); abort(); }
}

/* ---- bf16 path: a small cache of matmul primitives keyed by shape ---- */
typedef struct {
    int transa, transb, M, N, K, lda, ldb, ldc;
    float alpha, beta;
    dnnl_primitive_t prim;
} mm_entry;

#define MM_CACHE 256
static mm_entry mm_cache[MM_CACHE];
static int mm_n;
static dnnl_engine_t mm_engine;
static dnnl_stream_t mm_stream;
static uint16_t *mm_a, *mm_b;
static size_t mm_a_cap, mm_b_cap;

static void md_2d(dnnl_memory_desc_t *md, int rows, int cols, int ld, int trans, dnnl_data_type_t dt) {
    /* logical rows x cols; stored row-major with stride ld, or transposed */
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides = {trans ? 1 : ld, trans ? ld : 1};
    check(dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides), "memory_desc");
}

static dnnl_primitive_t mm_get(int ta, int tb, int M, int N, int K, int lda, int ldb, int ldc, float alpha, float beta) {
    for (int i = 0; i < mm_n; i++) {
        mm_entry *e = &mm_cache[i];
        if (e->transa == ta && e->transb == tb && e->M == M && e->N == N && e->K == K && e->lda == lda &&
            e->ldb == ldb && e->ldc == ldc && e->alpha == alpha && e->beta == beta)
            return e->prim;
    }
    if (!mm_engine) {
        check(dnnl_engine_create(&mm_engine, dnnl_cpu, 0), "engine_create");
        check(dnnl_stream_create(&mm_stream, mm_engine, dnnl_stream_default_flags), "stream_create");
    }
    dnnl_memory_desc_t a, b, c;
    /* the bf16 copies are packed densely: A is M x K (lda K), B is K x N (ldb N) */
    md_2d(&a, M, K, K, 0, dnnl_bf16);
    md_2d(&b, K, N, N, 0, dnnl_bf16);
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
    if (dnnl_primitive_desc_create(&pd, &d, attr, mm_engine, NULL) != dnnl_success) {
        dnnl_primitive_attr_destroy(attr);
        bf16_unavailable = 1;
        fprintf(stderr, "skelex: warning: oneDNN offers no bf16 matmul on this CPU (it needs AVX-512 or AMX); "
                        "using fp32\n");
        return NULL;
    }
    dnnl_primitive_t prim;
    check(dnnl_primitive_create(&prim, pd), "primitive_create");
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    if (mm_n == MM_CACHE) { dnnl_primitive_destroy(mm_cache[0].prim); memmove(mm_cache, mm_cache + 1, sizeof mm_cache[0] * (MM_CACHE - 1)); mm_n--; }
    mm_cache[mm_n++] = (mm_entry){ta, tb, M, N, K, lda, ldb, ldc, alpha, beta, prim};
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

static uint16_t *grow(uint16_t **buf, size_t *cap, size_t n) {
    if (n > *cap) { free(*buf); *buf = sx_malloc(n * 2); *cap = n; }
    return *buf;
}

static void gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc) {
    dnnl_primitive_t prim = bf16_unavailable ? NULL : mm_get(ta, tb, M, N, K, lda, ldb, ldc, alpha, beta);
    if (!prim) {
        check(dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc), "sgemm");
        return;
    }
    uint16_t *a = grow(&mm_a, &mm_a_cap, (size_t)M * K), *b = grow(&mm_b, &mm_b_cap, (size_t)K * N);
    pack_bf16(a, A, lda, ta, M, K);
    pack_bf16(b, B, ldb, tb, K, N);
    dnnl_memory_desc_t ma, mb, mc;
    md_2d(&ma, M, K, K, 0, dnnl_bf16);
    md_2d(&mb, K, N, N, 0, dnnl_bf16);
    md_2d(&mc, M, N, ldc, 0, dnnl_f32);
    dnnl_memory_t xa, xb, xc;
    check(dnnl_memory_create(&xa, &ma, mm_engine, a), "mem a");
    check(dnnl_memory_create(&xb, &mb, mm_engine, b), "mem b");
    check(dnnl_memory_create(&xc, &mc, mm_engine, C), "mem c");
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, xa}, {DNNL_ARG_WEIGHTS, xb}, {DNNL_ARG_DST, xc}};
    check(dnnl_primitive_execute(prim, mm_stream, 3, args), "execute");
    check(dnnl_stream_wait(mm_stream), "wait");
    dnnl_memory_destroy(xa);
    dnnl_memory_destroy(xb);
    dnnl_memory_destroy(xc);
}

int gemm_bf16_available(void) {
    if (!bf16_unavailable) {
        float a[64] = {0}, b[64] = {0}, c[64];
        gemm_bf16(0, 0, 8, 8, 8, 1.0f, a, 8, b, 8, 0.0f, c, 8);  /* probes primitive creation */
    }
    return !bf16_unavailable;
}

/* SKELEX_PROFILE=1: count time and flops of top-level products; print at exit. */
static int g_prof = -1;
static double g_prof_s, g_prof_flops;
static long g_prof_calls;
typedef struct { int ta, tb, M, N, K; long calls; double s; } prof_shape;
static prof_shape g_shapes[64];
static int g_nshapes;

static int cmp_shape(const void *a, const void *b) {
    double x = ((const prof_shape *)a)->s, y = ((const prof_shape *)b)->s;
    return (x < y) - (x > y);
}

static void prof_report(void) {
    fprintf(stderr, "gemm profile: %ld top-level calls, %.2f s, %.1f GFLOP, %.1f GFLOP/s\n", g_prof_calls, g_prof_s,
            g_prof_flops / 1e9, g_prof_flops / 1e9 / (g_prof_s > 0 ? g_prof_s : 1));
    qsort(g_shapes, (size_t)g_nshapes, sizeof g_shapes[0], cmp_shape);
    for (int i = 0; i < g_nshapes && i < 12; i++) {
        prof_shape *p = &g_shapes[i];
        fprintf(stderr, "  %c%c M=%d N=%d K=%d: %ld calls, %.2f s, %.1f GFLOP/s\n", p->ta ? 'T' : 'N', p->tb ? 'T' : 'N',
                p->M, p->N, p->K, p->calls, p->s, 2.0 * p->M * p->N * p->K * p->calls / p->s / 1e9);
    }
}

void gemm_profile_reset(void) {
    g_prof_s = g_prof_flops = 0.0;
    g_prof_calls = 0;
    g_nshapes = 0;
}

static void prof_add(int ta, int tb, int M, int N, int K, double s) {
    for (int i = 0; i < g_nshapes; i++) {
        prof_shape *p = &g_shapes[i];
        if (p->ta == ta && p->tb == tb && p->M == M && p->N == N && p->K == K) { p->calls++; p->s += s; return; }
    }
    if (g_nshapes < 64) g_shapes[g_nshapes++] = (prof_shape){ta, tb, M, N, K, 1, s};
}

static void gemm_dispatch(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
                          const float *B, int ldb, float beta, float *C, int ldc);

/* gemm_in_flight: this thread is inside a product, or a top-level product
 * (run from serial code, so nothing else of ours runs meanwhile) is. */
static _Thread_local int t_in_gemm;
static atomic_int g_top_gemm;
int gemm_in_flight(void) { return t_in_gemm || atomic_load_explicit(&g_top_gemm, memory_order_relaxed); }

static void gemm_top(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc);

void gemm(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    t_in_gemm++;
    if (omp_in_parallel()) {  /* nested products are not counted (nor is g_prof touched from threads) */
        gemm_dispatch(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    } else {
        atomic_fetch_add_explicit(&g_top_gemm, 1, memory_order_relaxed);
        gemm_top(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        atomic_fetch_sub_explicit(&g_top_gemm, 1, memory_order_relaxed);
    }
    t_in_gemm--;
}

static void gemm_top(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc) {
    if (g_prof < 0) { g_prof = getenv("SKELEX_PROFILE") != NULL; if (g_prof) atexit(prof_report); }
    if (!g_prof) { gemm_dispatch(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); return; }
    double t0 = sx_now();
    gemm_dispatch(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    double dt = sx_now() - t0;
    g_prof_s += dt;
    prof_add(transa, transb, M, N, K, dt);
    g_prof_flops += 2.0 * M * N * K;
    g_prof_calls++;
}

static void gemm_dispatch(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
                          const float *B, int ldb, float beta, float *C, int ldc) {
    /* small or nested products stay in fp32: converting would cost more */
    if (g_prec == PREC_BF16 && !omp_in_parallel() && (double)M * N * K >= 1e6) {
        gemm_bf16(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    check(dnnl_sgemm(transa ? 'T' : 'N', transb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc), "sgemm");
}

void sx_threads_init(int threads) {
    static int done;
    if (threads > 0) omp_set_num_threads(threads);
    if (done) return;
    done = 1;
    /* oneDNN allocates packing buffers on every product; keep them on the heap
     * rather than fresh mmap'ed pages that the kernel must zero each time. */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    /* Products stream their packed panels through these heaps; on 4 KiB pages
     * the TLB misses cost about 6% of a ViT-B training step (measured). */
#pragma omp parallel
    sx_heap_hugepages((size_t)32 << 20);
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed)) return;
    int cpus[CPU_SETSIZE], n = 0;
    for (int i = 0; i < CPU_SETSIZE; i++) if (CPU_ISSET(i, &allowed)) cpus[n++] = i;
    if (n < 2 || getenv("SKELEX_NO_PIN")) return;
#pragma omp parallel
    {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpus[omp_get_thread_num() % n], &one);
        sched_setaffinity(0, sizeof one, &one);
    }
}
