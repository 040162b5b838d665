/* gemm.h: the one place where matrix products happen. Row-major
 * C = alpha * op(A) * op(B) + beta * C, through oneDNN (tuned for this CPU).
 * fp32 is the exact path; bf16 rounds A and B to bfloat16 and accumulates in
 * fp32 (an option for speed).
 *
 * State: a product context (sx_gemm_ctx) holds the precision, the bf16
 * primitive cache with its buffers, and the profile counters. Each model
 * owns one (mae_model.gemm) and binds it to the calling thread for the
 * length of its forward and backward (gemm_bind), so two models used by two
 * threads share nothing. Products run with no context bound use the process
 * default context (single-threaded use only when bf16 or profiling).
 * Contexts are thread-safe per thread: a batch share (team.h) binds its own
 * replica's context inside the team's parallel region and its products run
 * there; products from inside a layer's own parallel loop run fp32 with no
 * context. */
#ifndef SKELEX_GEMM_H
#define SKELEX_GEMM_H
#include "core/threads.h"   /* sx_threads_init used to live here */
#include <stddef.h>
#include <stdint.h>

typedef enum { PREC_FP32, PREC_BF16, PREC_DEFAULT } sx_precision;

typedef struct sx_gemm_ctx sx_gemm_ctx;

/* A new context (precision PREC_DEFAULT: follow gemm_set_precision), and
 * its release (primitives, buffers; its profile joins the exit report). */
sx_gemm_ctx *gemm_ctx_new(void);
void gemm_ctx_free(sx_gemm_ctx *c);
/* PREC_DEFAULT follows the process default; PREC_FP32/BF16 fix it. */
void gemm_ctx_set_precision(sx_gemm_ctx *c, sx_precision p);
/* The precision products run at in c (never PREC_DEFAULT). */
sx_precision gemm_ctx_precision(const sx_gemm_ctx *c);
/* Bind c (NULL: the default) to this thread; returns the one bound before. */
sx_gemm_ctx *gemm_bind(sx_gemm_ctx *c);
/* The context bound to this thread (or the default). */
sx_gemm_ctx *gemm_current(void);
/* Register weights [base, base + n) and their bf16 copy w16 (same offsets,
 * same layout; NULL: none): a bf16 product whose B operand lies inside them
 * reads the copy in place instead of converting B. The caller keeps the
 * copy current (the model refreshes it once per weight change). */
void gemm_ctx_set_weights(sx_gemm_ctx *c, const float *base, size_t n, const uint16_t *w16);
/* Round n floats to bfloat16 (nearest even), as the bf16 products do. */
void gemm_to_bf16(uint16_t *dst, const float *src, size_t n);
/* bf16 products are those of at least mnk = M*N*K (GEMM_BF16_MIN after
 * gemm_ctx_new; smaller ones convert for more than they save); tests set 0
 * to run a small model's products in bf16. */
#define GEMM_BF16_MIN 1e6
void gemm_ctx_set_bf16_min(sx_gemm_ctx *c, double mnk);
/* Counters: products run in bf16, and those that read B from the copy. */
void gemm_ctx_stats(const sx_gemm_ctx *c, long *bf16_products, long *weight_reads);
/* Attention's time (SKELEX_PROFILE): dir 0 forward, 1 backward. */
void gemm_ctx_add_attention(sx_gemm_ctx *c, int dir, double s);

/* The process default precision: what contexts at PREC_DEFAULT follow. */
void gemm_set_precision(sx_precision p);
sx_precision gemm_get_precision(void);
/* 1 if oneDNN can run bf16 products on this CPU (else bf16 falls back to fp32). */
int gemm_bf16_available(void);

/* op(A) is M x K, op(B) is K x N, C is M x N; lda/ldb/ldc are row strides of the
 * stored matrices. transa/transb: 0 = as stored, 1 = transposed. */
void gemm(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc);

/* SKELEX_PROFILE=1: forget what was counted so far in every context (e.g.
 * a warm-up step). */
void gemm_profile_reset(void);

#endif
