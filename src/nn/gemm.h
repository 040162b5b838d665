/* gemm.h: the one place where matrix products happen. Row-major
 * C = alpha * op(A) * op(B) + beta * C, through oneDNN (tuned for this CPU).
 * fp32 is the exact path; bf16 rounds A and B to bfloat16 and accumulates in
 * fp32 (an option for speed). Also pins OpenMP threads to cores. */
#ifndef SKELEX_GEMM_H
#define SKELEX_GEMM_H

typedef enum { PREC_FP32, PREC_BF16 } sx_precision;

void gemm_set_precision(sx_precision p);
sx_precision gemm_get_precision(void);
/* 1 if oneDNN can run bf16 products on this CPU (else bf16 falls back to fp32). */
int gemm_bf16_available(void);

/* op(A) is M x K, op(B) is K x N, C is M x N; lda/ldb/ldc are row strides of the
 * stored matrices. transa/transb: 0 = as stored, 1 = transposed. */
void gemm(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc);

/* 1 while the calling thread runs a product, or any top-level product (one
 * not inside a parallel region) runs: lets the allocation test tell
 * oneDNN's own per-call buffers from ours. */
int gemm_in_flight(void);

/* Bind each OpenMP thread to its own core (idempotent). Set threads <= 0 for
 * the default (OMP_NUM_THREADS or the number of cores). */
void sx_threads_init(int threads);

/* SKELEX_PROFILE=1: forget what was counted so far (e.g. a warm-up step). */
void gemm_profile_reset(void);

#endif
