/* gelu.cu: the GPU twin of layers.c's exact (erf) GELU, with the bias of
 * the linear before it folded in. Elementwise; the bias gradient is
 * colsum_accumulate_cuda over the result. */
#include "cuda/cuda_common.h"

__global__ void gelu_forward_kernel(float *out, float *inp, const float *b, int N, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    float x = inp[i];
    if (b) { x += b[i % C]; inp[i] = x; }
    out[i] = 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
}

extern "C" int gelu_forward_cuda(float *out, float *inp, const float *b, int N, int C, sx_err *err) {
    // inp (N,C) += b (kept for backward), then out = 0.5 x (1 + erf(x / sqrt 2))
    gelu_forward_kernel<<<sx_cuda_blocks((size_t)N * C, 256), 256, 0, sx_cuda_stream()>>>(out, inp, b, N, C);
    KERNEL_TRY(err);
    return 0;
}

__global__ void gelu_backward_kernel(float *d, const float *inp, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    // gelu'(x) = Phi(x) + x phi(x)
    const float inv_sqrt_2pi = 0.3989422804014327f;
    float x = inp[i], cdf = 0.5f * (1.0f + erff(x * (float)M_SQRT1_2));
    d[i] *= cdf + x * inv_sqrt_2pi * expf(-0.5f * x * x);
}

extern "C" int gelu_backward_cuda(float *d, const float *inp, float *db, int N, int C, sx_err *err) {
    // d (N,C) *= gelu'(inp); db (C) += its column sums
    size_t n = (size_t)N * C;
    gelu_backward_kernel<<<sx_cuda_blocks(n, 256), 256, 0, sx_cuda_stream()>>>(d, inp, n);
    KERNEL_TRY(err);
    return db ? colsum_accumulate_cuda(db, d, N, C, err) : 0;
}
