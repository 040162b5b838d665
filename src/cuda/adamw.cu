/* adamw.cu: the GPU twin of optim.c's adamw_update (torch.optim.AdamW
 * arithmetic), one thread per parameter; the bias corrections are computed
 * on the host in double, as on the CPU. */
#include "cuda/cuda_common.h"
#include <math.h>

__global__ void adamw_kernel(float *p, const float *g, float *m, float *v, size_t n, float decay, float b1, float b2,
                             float eps, float step_size, float inv_sqrt_bc2) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gi = g[i], pi = p[i] * decay;                  // decoupled weight decay
    float mi = b1 * m[i] + (1.0f - b1) * gi, vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    float denom = sqrtf(vi) * inv_sqrt_bc2 + eps;        // as torch: sqrt(v)/sqrt(bc2) + eps
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step_size * mi / denom;
}

extern "C" int adamw_update_cuda(float *p, const float *g, float *m, float *v, size_t n, float lr, float wd, float b1,
                                 float b2, float eps, long step, sx_err *err) {
    if (n == 0) return 0;
    if (step < 1) return sx_fail(err, "adamw_update_cuda: step %ld (it is 1-based)", step);
    double bc1 = 1.0 - pow(b1, (double)step), bc2 = 1.0 - pow(b2, (double)step);
    float step_size = (float)(lr / bc1), inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2)), decay = 1.0f - lr * wd;
    adamw_kernel<<<sx_cuda_blocks(n, 256), 256, 0, sx_cuda_stream()>>>(p, g, m, v, n, decay, b1, b2, eps, step_size,
                                                                       inv_sqrt_bc2);
    KERNEL_TRY(err);
    return 0;
}
