/* layernorm.cu: the GPU twin of layers.c's layernorm. One warp per row for
 * the row statistics and the input gradient; one thread per column for the
 * parameter gradients (a fixed summation order: deterministic). */
#include "cuda/cuda_common.h"

__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                         const float *b, int N, int C, float eps) {
    int n = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (n >= N) return;
    const float *x = inp + (size_t)n * C;
    float m = 0.0f, v = 0.0f;
    for (int i = lane; i < C; i += 32) m += x[i];
    m = sx_warp_sum(m) / C;
    for (int i = lane; i < C; i += 32) { float d = x[i] - m; v += d * d; }
    v = sx_warp_sum(v) / C;  // biased variance, as torch
    float s = (float)(1.0 / sqrt((double)v + (double)eps));
    float *o = out + (size_t)n * C;
    for (int i = lane; i < C; i += 32) o[i] = (x[i] - m) * s * w[i] + b[i];
    if (lane == 0) { mean[n] = m; rstd[n] = s; }
}

extern "C" int layernorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                      const float *b, int N, int C, float eps, sx_err *err) {
    // inp, out are (N,C); mean, rstd are (N)
    layernorm_forward_kernel<<<sx_cuda_blocks((size_t)N, 8), 256, 0, sx_cuda_stream()>>>(out, mean, rstd, inp, w, b,
                                                                                          N, C, eps);
    KERNEL_TRY(err);
    return 0;
}

__global__ void layernorm_dinp_kernel(float *dinp, const float *dout, const float *inp, const float *w,
                                      const float *mean, const float *rstd, int N, int C) {
    int n = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (n >= N) return;
    const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
    float m = mean[n], s = rstd[n], dmean = 0.0f, dnorm_mean = 0.0f;
    for (int i = lane; i < C; i += 32) {
        float nrm = (x[i] - m) * s, dn = dy[i] * w[i];
        dmean += dn;
        dnorm_mean += dn * nrm;
    }
    float a = sx_warp_sum(dmean) / C, bb = sx_warp_sum(dnorm_mean) / C;
    float *dx = dinp + (size_t)n * C;
    for (int i = lane; i < C; i += 32) {
        float nrm = (x[i] - m) * s;
        dx[i] += (dy[i] * w[i] - a - nrm * bb) * s;
    }
}

__global__ void layernorm_dparams_kernel(float *dw, float *db, const float *dout, const float *inp, const float *mean,
                                         const float *rstd, int N, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float accw = 0.0f, accb = 0.0f;
    for (int n = 0; n < N; n++) {
        float dy = dout[(size_t)n * C + c];
        accw += dy * (inp[(size_t)n * C + c] - mean[n]) * rstd[n];
        accb += dy;
    }
    dw[c] += accw;
    db[c] += accb;
}

extern "C" int layernorm_backward_cuda(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                       const float *w, const float *mean, const float *rstd, int N, int C,
                                       sx_err *err) {
    // dout, inp, dinp are (N,C): dinp += ...; dw, db (C) += ...
    cudaStream_t st = sx_cuda_stream();
    if (dinp) {
        layernorm_dinp_kernel<<<sx_cuda_blocks((size_t)N, 8), 256, 0, st>>>(dinp, dout, inp, w, mean, rstd, N, C);
        KERNEL_TRY(err);
    }
    layernorm_dparams_kernel<<<sx_cuda_blocks((size_t)C, 128), 128, 0, st>>>(dw, db, dout, inp, mean, rstd, N, C);
    KERNEL_TRY(err);
    return 0;
}
