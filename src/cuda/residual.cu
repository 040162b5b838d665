/* residual.cu: the GPU twins of layers.c's residuals and row gathers.
 * Elementwise kernels, one thread per output float; the gather's backward
 * gives each thread a column and walks the rows in order, so repeated
 * indices sum without atomics and in the CPU's order. */
#include "cuda/cuda_common.h"

__global__ void residual_kernel(float *out, const float *x, const float *bias, int N, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    out[i] += bias ? x[i] + bias[i % C] : x[i];
}

extern "C" int residual_forward_cuda(float *out, const float *x, const float *bias, int N, int C, sx_err *err) {
    // out (N,C) += x (N,C) + bias (C)
    residual_kernel<<<sx_cuda_blocks((size_t)N * C, 256), 256, 0, sx_cuda_stream()>>>(out, x, bias, N, C);
    KERNEL_TRY(err);
    return 0;
}

__global__ void residual_rows_kernel(float *out, const float *x, const float *bias, const int *rows, int B, int Tq,
                                     int T, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)B * Tq * C) return;
    size_t bt = i / C;
    int c = (int)(i % C);
    float xv = x[((bt / Tq) * T + rows[bt]) * C + c];
    out[i] += bias ? xv + bias[c] : xv;
}

extern "C" int residual_rows_forward_cuda(float *out, const float *x, const float *bias, const int *rows, int B,
                                          int Tq, int T, int C, sx_err *err) {
    // out (B,Tq,C) += x (B,T,C) at rows (B,Tq) + bias (C)
    residual_rows_kernel<<<sx_cuda_blocks((size_t)B * Tq * C, 256), 256, 0, sx_cuda_stream()>>>(out, x, bias, rows,
                                                                                                 B, Tq, T, C);
    KERNEL_TRY(err);
    return 0;
}

__global__ void residual_rows_backward_kernel(float *dx, const float *dout, const int *rows, int B, int Tq, int T,
                                              int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)B * Tq * C) return;
    size_t bt = i / C;
    dx[((bt / Tq) * T + rows[bt]) * C + i % C] += dout[i];  // an image's rows are distinct: no races
}

extern "C" int residual_rows_backward_cuda(float *dx, const float *dout, const int *rows, int B, int Tq, int T, int C,
                                           sx_err *err) {
    // dx (B,T,C) at rows (B,Tq) += dout (B,Tq,C)
    residual_rows_backward_kernel<<<sx_cuda_blocks((size_t)B * Tq * C, 256), 256, 0, sx_cuda_stream()>>>(
        dx, dout, rows, B, Tq, T, C);
    KERNEL_TRY(err);
    return 0;
}

__global__ void rows_gather_kernel(float *dst, const float *src, const int *idx, int n, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)n * C) return;
    dst[i] = src[(size_t)idx[i / C] * C + i % C];
}

extern "C" int rows_gather_cuda(float *dst, const float *src, const int *idx, int n, int C, sx_err *err) {
    // dst (n,C) = src rows idx (n)
    rows_gather_kernel<<<sx_cuda_blocks((size_t)n * C, 256), 256, 0, sx_cuda_stream()>>>(dst, src, idx, n, C);
    KERNEL_TRY(err);
    return 0;
}

__global__ void rows_gather_backward_kernel(float *dsrc, const float *ddst, const int *idx, int n, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    for (int i = 0; i < n; i++) dsrc[(size_t)idx[i] * C + c] += ddst[(size_t)i * C + c];
}

extern "C" int rows_gather_backward_cuda(float *dsrc, const float *ddst, const int *idx, int n, int C, sx_err *err) {
    // dsrc rows idx += ddst (n,C), summing over repeated indices
    rows_gather_backward_kernel<<<sx_cuda_blocks((size_t)C, 128), 128, 0, sx_cuda_stream()>>>(dsrc, ddst, idx, n, C);
    KERNEL_TRY(err);
    return 0;
}
