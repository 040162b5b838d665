/* embed.cu: the GPU twins of embed.c's patch embedding (a gather of the
 * visible patches, then linear_forward_cuda) and CLS + position embeddings. */
#include "cuda/cuda_common.h"

__global__ void patch_gather_kernel(float *patches, const float *pixels, const int *ids_keep, int B, int Lk, int C,
                                    int S, int p) {
    size_t cpp = (size_t)C * p * p, i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)B * Lk * cpp) return;
    size_t bj = i / cpp;
    int r = (int)(i % cpp), ch = r / (p * p), ky = r / p % p, kx = r % p;  // the conv's (c, ky, kx) order
    int g = S / p, n = ids_keep[bj], gy = n / g, gx = n % g, bb = (int)(bj / Lk);
    patches[i] = pixels[(((size_t)bb * C + ch) * S + gy * p + ky) * S + gx * p + kx];
}

extern "C" int patch_embed_forward_cuda(float *out, float *patches, const float *pixels, const int *ids_keep,
                                        const float *w, const float *b, int B, int Lk, int C, int S, int p, int D,
                                        sx_err *err) {
    // pixels (B,C,S,S), ids_keep (B,Lk) -> patches (B,Lk,C*p*p) -> out (B,Lk,D) = patches @ w (D,C*p*p)^T + b
    size_t n = (size_t)B * Lk * C * p * p;
    patch_gather_kernel<<<sx_cuda_blocks(n, 256), 256, 0, sx_cuda_stream()>>>(patches, pixels, ids_keep, B, Lk, C, S,
                                                                              p);
    KERNEL_TRY(err);
    return linear_forward_cuda(out, patches, w, b, B * Lk, C * p * p, D, err);
}

extern "C" int patch_embed_backward_cuda(float *dw, float *db, const float *dout, const float *patches, int B, int Lk,
                                         int cpp, int D, sx_err *err) {
    // dout (B,Lk,D): dw (D,cpp) += dout^T patches; db (D) += colsum(dout); no pixel gradient
    return linear_backward_cuda(NULL, dw, db, dout, patches, NULL, B * Lk, cpp, D, err);
}

__global__ void embed_forward_kernel(float *h, const float *emb, const float *cls, const float *pos,
                                     const int *ids_keep, int B, int Lk, int D) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, Te = 1 + (size_t)Lk;
    if (i >= (size_t)B * Te * D) return;
    size_t bt = i / D, b = bt / Te, t = bt % Te;
    int c = (int)(i % D);
    h[i] = t == 0 ? cls[c] + pos[c]
                  : emb[(b * Lk + t - 1) * D + c] + pos[(size_t)(1 + ids_keep[b * Lk + t - 1]) * D + c];
}

extern "C" int embed_forward_cuda(float *h, const float *emb, const float *cls, const float *pos, const int *ids_keep,
                                  int B, int Lk, int D, sx_err *err) {
    // emb (B,Lk,D), cls (D), pos (1+N,D) -> h (B,1+Lk,D)
    size_t n = (size_t)B * (1 + Lk) * D;
    embed_forward_kernel<<<sx_cuda_blocks(n, 256), 256, 0, sx_cuda_stream()>>>(h, emb, cls, pos, ids_keep, B, Lk, D);
    KERNEL_TRY(err);
    return 0;
}

__global__ void embed_dcls_kernel(float *dcls, const float *dh, int B, int Lk, int D) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= D) return;
    float acc = 0.0f;
    for (int b = 0; b < B; b++) acc += dh[(size_t)b * (1 + Lk) * D + c];
    dcls[c] += acc;
}

extern "C" int embed_backward_cuda(float *demb, float *dcls, const float *dh, int B, int Lk, int D, sx_err *err) {
    // dh (B,1+Lk,D) -> dcls (D) += row 0 summed over images; demb (B,Lk,D) = rows 1..
    cudaStream_t st = sx_cuda_stream();
    embed_dcls_kernel<<<sx_cuda_blocks((size_t)D, 128), 128, 0, st>>>(dcls, dh, B, Lk, D);
    KERNEL_TRY(err);
    size_t row = sizeof(float) * (size_t)Lk * D;
    CUDA_TRY(err, cudaMemcpy2DAsync(demb, row, dh + D, row + sizeof(float) * D, row, (size_t)B,
                                    cudaMemcpyDeviceToDevice, st));
    return 0;
}

/* ------------------------------------------------------------ unshuffle */

__global__ void unshuffle_forward_kernel(float *z, const float *y, const float *mask_token, const float *pos,
                                         const int *ids_restore, int B, int N, int Lk, int D) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, Td = 1 + (size_t)N, Te = 1 + (size_t)Lk;
    if (i >= (size_t)B * Td * D) return;
    size_t bt = i / D, b = bt / Td, t = bt % Td;
    int c = (int)(i % D);
    float v;
    if (t == 0) v = y[b * Te * D + c];
    else {
        int r = ids_restore[b * N + t - 1];
        v = r < Lk ? y[(b * Te + 1 + r) * D + c] : mask_token[c];
    }
    z[i] = v + pos[t * D + c];
}

extern "C" int unshuffle_forward_cuda(float *z, const float *y, const float *mask_token, const float *pos,
                                      const int *ids_restore, int B, int N, int Lk, int D, sx_err *err) {
    // y (B,1+Lk,D) shuffled -> z (B,1+N,D) in patch order, mask_token where hidden, + pos (1+N,D)
    size_t n = (size_t)B * (1 + N) * D;
    unshuffle_forward_kernel<<<sx_cuda_blocks(n, 256), 256, 0, sx_cuda_stream()>>>(z, y, mask_token, pos, ids_restore,
                                                                                   B, N, Lk, D);
    KERNEL_TRY(err);
    return 0;
}

/* dy's visible rows: each is the image of exactly one patch (ids_restore is
 * a permutation), so one thread per float of dz writes it. */
__global__ void unshuffle_dy_kernel(float *dy, const float *dz, const int *ids_restore, int B, int N, int Lk, int D) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, Td = 1 + (size_t)N, Te = 1 + (size_t)Lk;
    if (i >= (size_t)B * Td * D) return;
    size_t bt = i / D, b = bt / Td, t = bt % Td;
    int c = (int)(i % D);
    if (t == 0) { dy[b * Te * D + c] = dz[i]; return; }
    int r = ids_restore[b * N + t - 1];
    if (r < Lk) dy[(b * Te + 1 + r) * D + c] = dz[i];
}

__global__ void unshuffle_dmask_kernel(float *dmask_token, const float *dz, const int *ids_restore, int B, int N,
                                       int Lk, int D) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= D) return;
    float acc = 0.0f;
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++)
            if (ids_restore[b * N + n] >= Lk) acc += dz[((size_t)b * (1 + N) + 1 + n) * D + c];
    dmask_token[c] += acc;
}

extern "C" int unshuffle_backward_cuda(float *dy, float *dmask_token, const float *dz, const int *ids_restore, int B,
                                       int N, int Lk, int D, sx_err *err) {
    // dz (B,1+N,D) -> dy (B,1+Lk,D) (overwritten), dmask_token (D) += the hidden rows
    cudaStream_t st = sx_cuda_stream();
    size_t n = (size_t)B * (1 + N) * D;
    CUDA_TRY(err, cudaMemsetAsync(dy, 0, sizeof(float) * (size_t)B * (1 + Lk) * D, st));
    unshuffle_dy_kernel<<<sx_cuda_blocks(n, 256), 256, 0, st>>>(dy, dz, ids_restore, B, N, Lk, D);
    KERNEL_TRY(err);
    unshuffle_dmask_kernel<<<sx_cuda_blocks((size_t)D, 128), 128, 0, st>>>(dmask_token, dz, ids_restore, B, N, Lk, D);
    KERNEL_TRY(err);
    return 0;
}
