/* cuda_common.h: what every the .cu files in src/cuda shares (C++, nvcc only): the
 * error-checking macros, which turn a CUDA or cuBLASLt failure into an
 * sx_err message and a -1 return (never exit(), never a print), and the
 * backend's context (stream, cuBLASLt handle, workspace; see context.cu). */
#ifndef SKELEX_CUDA_COMMON_H
#define SKELEX_CUDA_COMMON_H
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include "cuda/cuda_layers.h"

/* call is a cudaError_t expression; on failure: message into e, return -1. */
#define CUDA_TRY(e, call)                                                                                   \
    do {                                                                                                    \
        cudaError_t cu_err_ = (call);                                                                       \
        if (cu_err_ != cudaSuccess)                                                                         \
            return sx_fail((e), "cuda: %s (%s:%d: %s)", cudaGetErrorString(cu_err_), __FILE__, __LINE__, #call); \
    } while (0)

/* call is a cublasStatus_t expression. */
#define CUBLAS_TRY(e, call)                                                                                 \
    do {                                                                                                    \
        cublasStatus_t cb_err_ = (call);                                                                    \
        if (cb_err_ != CUBLAS_STATUS_SUCCESS)                                                               \
            return sx_fail((e), "cublasLt: status %d (%s:%d: %s)", (int)cb_err_, __FILE__, __LINE__, #call); \
    } while (0)

/* After a kernel launch: a bad configuration (grid, shared memory) shows
 * here; faults inside the kernel show at the next synchronising call. */
#define KERNEL_TRY(e) CUDA_TRY(e, cudaGetLastError())

/* The context's parts, for the .cu files (context.cu owns them; valid after
 * a successful sx_cuda_init). */
cudaStream_t sx_cuda_stream(void);
cublasLtHandle_t sx_cuda_lt(void);
void *sx_cuda_workspace(size_t *bytes);

/* Blocks of n threads each covering `total` items. */
static inline unsigned sx_cuda_blocks(size_t total, unsigned n) { return (unsigned)((total + n - 1) / n); }

/* Sum of v over the 32 lanes of a warp, in every lane. */
static __device__ __forceinline__ float sx_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ float sx_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* A row-major (rows, cols) view as cuBLASLt's column-major operands: see
 * linear.cu. D (m,n) = alpha op(A) op(B) + beta D, column-major, fp32 out;
 * ab_type CUDA_R_32F or CUDA_R_16BF; bias (m, fp32) fused when non-NULL. */
int sx_cuda_matmul(float *d, const void *a, const void *b, const float *bias, int transa, int transb, int m, int n,
                   int k, int lda, int ldb, int ldd, float beta, cudaDataType_t ab_type, sx_err *e);

#endif
