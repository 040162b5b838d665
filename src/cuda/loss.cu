/* loss.cu: the GPU twin of loss.c's MAE loss (norm_pix_loss's per-patch
 * normalisation and the masked mean squared error), forward and backward.
 * Sums run in double, as on the CPU. Each call first maps every patch to its
 * row of pred (or -1 when visible): one thread per image walks its mask, so
 * the "j-th hidden patch" rows match loss.c exactly. */
#include "cuda/cuda_common.h"

static __device__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* One warp per row of x (n,P): (x - mean) / sqrt(unbiased var + 1e-6). */
__global__ void patch_norm_kernel(float *x, size_t n, int P) {
    size_t r = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= n) return;
    float *t = x + r * P;
    double m = 0.0, v = 0.0;
    for (int i = lane; i < P; i += 32) m += t[i];
    m = warp_sum_d(m) / P;
    for (int i = lane; i < P; i += 32) v += (t[i] - m) * (t[i] - m);
    v = warp_sum_d(v) / (P - 1);  // torch.var is unbiased
    double s = 1.0 / sqrt(v + 1e-6);
    for (int i = lane; i < P; i += 32) t[i] = (float)((t[i] - m) * s);
}

extern "C" int patch_norm_forward_cuda(float *x, size_t n, int P, sx_err *err) {
    // x (n,P) in place, row by row
    if (n == 0) return 0;
    patch_norm_kernel<<<sx_cuda_blocks(n, 8), 256, 0, sx_cuda_stream()>>>(x, n, P);
    KERNEL_TRY(err);
    return 0;
}

/* rowmap (B,N): the row of pred (B,Tp,P) holding patch n, -1 when visible. */
__global__ void row_map_kernel(int *rowmap, const float *mask, int B, int N, int Tp, int masked_only) {
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= B) return;
    for (int n = 0, j = 0; n < N; n++) {
        int hidden = mask[(size_t)b * N + n] != 0.0f;
        rowmap[(size_t)b * N + n] = !hidden ? -1 : masked_only ? b * Tp + j : b * Tp + 1 + n;
        j += hidden;
    }
}

/* One warp per patch: perr (B*N) = mask * mean_i (pred - target)^2. */
__global__ void patch_mse_kernel(double *perr, const float *pred, const float *target, const float *mask,
                                 const int *rowmap, int BN, int P) {
    int bn = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (bn >= BN) return;
    int row = rowmap[bn];
    double s = 0.0;
    if (row >= 0)
        for (int i = lane; i < P; i += 32) {
            double e = (double)pred[(size_t)row * P + i] - target[(size_t)bn * P + i];
            s += e * e;
        }
    s = warp_sum_d(s);
    if (lane == 0) perr[bn] = row >= 0 ? mask[bn] * s / P : 0.0;
}

/* One block: sums[0] = sum of perr, sums[1] = sum of mask (BN each). */
__global__ void sum_kernel(double *sums, const double *perr, const float *mask, int BN) {
    __shared__ double red[2][32];
    double a = 0.0, d = 0.0;
    for (int i = threadIdx.x; i < BN; i += blockDim.x) { a += perr ? perr[i] : 0.0; d += mask[i]; }
    a = warp_sum_d(a);
    d = warp_sum_d(d);
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    if (lane == 0) { red[0][warp] = a; red[1][warp] = d; }
    __syncthreads();
    if (warp) return;
    a = warp_sum_d(lane < nw ? red[0][lane] : 0.0);
    d = warp_sum_d(lane < nw ? red[1][lane] : 0.0);
    if (lane == 0) { sums[0] = a; sums[1] = d; }
}

/* Scratch of the loss calls: rowmap (B*N ints), perr (B*N doubles), sums (2). */
typedef struct { int *rowmap; double *perr, *sums; } mse_scratch;

static int scratch_get(mse_scratch *s, int BN, sx_err *err) {
    size_t bytes = sizeof(double) * ((size_t)BN + 2) + sizeof(int) * (size_t)BN;
    void *p = NULL;
    CUDA_TRY(err, cudaMallocAsync(&p, bytes, sx_cuda_stream()));
    s->perr = (double *)p;
    s->sums = s->perr + BN;
    s->rowmap = (int *)(s->sums + 2);
    return 0;
}

extern "C" int masked_mse_forward_cuda(float *loss, float *target, const float *pred, const float *mask, int B, int N,
                                       int P, int Tp, int masked_only, int norm_pix, sx_err *err) {
    // target (B,N,P) (normalised in place with norm_pix), pred (B,Tp,P),
    // mask (B,N) -> *loss = sum_n mask * mean_i (pred - target)^2 / sum mask
    cudaStream_t st = sx_cuda_stream();
    int BN = B * N, rc = -1;
    mse_scratch s = {};
    double sums[2];
    if (norm_pix && patch_norm_forward_cuda(target, (size_t)BN, P, err)) return -1;
    if (scratch_get(&s, BN, err)) return -1;
    row_map_kernel<<<sx_cuda_blocks((size_t)B, 64), 64, 0, st>>>(s.rowmap, mask, B, N, Tp, masked_only);
    patch_mse_kernel<<<sx_cuda_blocks((size_t)BN, 8), 256, 0, st>>>(s.perr, pred, target, mask, s.rowmap, BN, P);
    sum_kernel<<<1, 256, 0, st>>>(s.sums, s.perr, mask, BN);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpyAsync(sums, s.sums, sizeof sums, cudaMemcpyDeviceToHost, st);
    cudaError_t f = cudaFreeAsync(s.perr, st);
    if (e == cudaSuccess) e = f;
    if (e == cudaSuccess) e = cudaStreamSynchronize(st);
    if (e != cudaSuccess) sx_fail(err, "cuda: %s (masked_mse_forward_cuda)", cudaGetErrorString(e));
    else { *loss = sums[1] > 0 ? (float)(sums[0] / sums[1]) : 0.0f; rc = 0; }
    return rc;
}

/* One thread per element of a hidden patch: dpred = scale mask (pred - target). */
__global__ void mse_backward_kernel(float *dpred, const float *pred, const float *target, const float *mask,
                                    const int *rowmap, const double *sums, int BN, int P, float grad_scale) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)BN * P) return;
    size_t bn = i / P;
    int row = rowmap[bn], k = (int)(i % P);
    if (row < 0) return;
    double den = sums[1];
    float scale = den > 0 ? (float)(2.0 * grad_scale / (P * den)) : 0.0f, s = scale * mask[bn];
    dpred[(size_t)row * P + k] = s * (pred[(size_t)row * P + k] - target[i]);
}

extern "C" int masked_mse_backward_cuda(float *dpred, const float *pred, const float *target, const float *mask,
                                        int B, int N, int P, int Tp, int masked_only, float grad_scale, sx_err *err) {
    // dpred (B,Tp,P) overwritten: grad_scale * 2 (pred - target) mask / (P sum mask); 0 on visible rows
    cudaStream_t st = sx_cuda_stream();
    int BN = B * N;
    mse_scratch s = {};
    CUDA_TRY(err, cudaMemsetAsync(dpred, 0, sizeof(float) * (size_t)B * Tp * P, st));
    if (scratch_get(&s, BN, err)) return -1;
    row_map_kernel<<<sx_cuda_blocks((size_t)B, 64), 64, 0, st>>>(s.rowmap, mask, B, N, Tp, masked_only);
    sum_kernel<<<1, 256, 0, st>>>(s.sums, NULL, mask, BN);
    mse_backward_kernel<<<sx_cuda_blocks((size_t)BN * P, 256), 256, 0, st>>>(dpred, pred, target, mask, s.rowmap,
                                                                             s.sums, BN, P, grad_scale);
    cudaError_t e = cudaGetLastError(), f = cudaFreeAsync(s.perr, st);
    if (e == cudaSuccess) e = f;
    if (e != cudaSuccess) return sx_fail(err, "cuda: %s (masked_mse_backward_cuda)", cudaGetErrorString(e));
    return 0;
}

/* ------------------------------------------------------- classifier head */

/* One warp per logit (b, k): the CLS row's dot product with w row k, in
 * double, as the CPU. */
__global__ void cls_head_forward_kernel(float *logits, const float *latent, const float *w, const float *b, int B,
                                        int T, int D, int K) {
    int bk = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (bk >= B * K) return;
    const float *cls = latent + (size_t)(bk / K) * T * D, *wk = w + (size_t)(bk % K) * D;
    double s = 0.0;
    for (int i = lane; i < D; i += 32) s += (double)wk[i] * cls[i];
    s = warp_sum_d(s);
    if (lane == 0) logits[bk] = (float)(s + b[bk % K]);
}

extern "C" int cls_head_forward_cuda(float *logits, const float *latent, const float *w, const float *b, int B, int T,
                                     int D, int K, sx_err *err) {
    // latent (B,T,D), its row 0 the CLS token -> logits (B,K) = cls @ w (K,D)^T + b (K)
    cls_head_forward_kernel<<<sx_cuda_blocks((size_t)B * K, 8), 256, 0, sx_cuda_stream()>>>(logits, latent, w, b, B,
                                                                                             T, D, K);
    KERNEL_TRY(err);
    return 0;
}

/* dw (K,D) += dlogits^T cls and db (K) += colsum: one thread per (k, i); the
 * loop over images runs in order. dlatent row 0 += dlogits w: one thread per
 * (b, i). */
__global__ void cls_head_dw_kernel(float *dw, float *db, const float *dlogits, const float *latent, int B, int T, int D,
                                   int K) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)K * D) return;
    int k = (int)(e / D), i = (int)(e % D);
    float acc = 0.0f, accb = 0.0f;
    for (int bb = 0; bb < B; bb++) {
        float d = dlogits[(size_t)bb * K + k];
        acc += d * latent[(size_t)bb * T * D + i];
        accb += d;
    }
    dw[e] += acc;
    if (i == 0) db[k] += accb;
}

__global__ void cls_head_dlatent_kernel(float *dlatent, const float *dlogits, const float *w, int B, int T, int D,
                                        int K) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)B * D) return;
    int bb = (int)(e / D), i = (int)(e % D);
    float acc = 0.0f;
    for (int k = 0; k < K; k++) acc += dlogits[(size_t)bb * K + k] * w[(size_t)k * D + i];
    dlatent[(size_t)bb * T * D + i] += acc;
}

extern "C" int cls_head_backward_cuda(float *dlatent, float *dw, float *db, const float *dlogits, const float *latent,
                                      const float *w, int B, int T, int D, int K, sx_err *err) {
    // dlogits (B,K): dw (K,D) += dlogits^T cls; db (K) += colsum; dlatent (B,T,D) row 0 += dlogits w
    cudaStream_t st = sx_cuda_stream();
    cls_head_dw_kernel<<<sx_cuda_blocks((size_t)K * D, 256), 256, 0, st>>>(dw, db, dlogits, latent, B, T, D, K);
    KERNEL_TRY(err);
    cls_head_dlatent_kernel<<<sx_cuda_blocks((size_t)B * D, 256), 256, 0, st>>>(dlatent, dlogits, w, B, T, D, K);
    KERNEL_TRY(err);
    return 0;
}
