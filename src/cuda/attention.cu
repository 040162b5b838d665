/* attention.cu: the GPU twin of layers.c's multi-head self-attention, the
 * straightforward version: one thread block per (image, head, query row)
 * computes that row's scores, its softmax (saved in att, the CPU layout)
 * and its output. The backward mirrors it per query row; the key and value
 * gradients, which every query row touches, are summed with atomicAdd (so
 * their rounding order varies from run to run). A fused flash-style kernel
 * that never materialises att is the next step (issue 19). */
#include "cuda/cuda_common.h"

enum { ATT_THREADS = 128 };

/* The sum (or max) of v over the block, in every thread; red holds 32 floats
 * of shared memory. */
static __device__ float block_reduce(float v, int is_max, float *red) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = is_max ? sx_warp_max(v) : sx_warp_sum(v);
    __syncthreads();  // red may still be read from a previous call
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : (is_max ? -INFINITY : 0.0f);
    return is_max ? sx_warp_max(v) : sx_warp_sum(v);
}

/* grid (Tq, B*NH); shared: q row (hs) + scores (T) + 32. */
__global__ void attention_forward_kernel(float *out, float *att, const float *qkv, int T, int C, int NH,
                                         const int *qrows, int Tq) {
    extern __shared__ float sh[];
    int t = blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH, hs = C / NH, C3 = 3 * C;
    float *q = sh, *p = sh + hs, *red = p + T;
    const float *base = qkv + (size_t)b * T * C3 + h * hs;  // q of token j at base + j C3; k at + C; v at + 2C
    int row = qrows ? qrows[(size_t)b * Tq + t] : t;
    float scale = 1.0f / sqrtf((float)hs);
    for (int i = threadIdx.x; i < hs; i += blockDim.x) q[i] = base[(size_t)row * C3 + i];
    __syncthreads();
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < T; j += blockDim.x) {  // scores = q k^T / sqrt(hs)
        const float *k = base + (size_t)j * C3 + C;
        float s = 0.0f;
        for (int i = 0; i < hs; i++) s += q[i] * k[i];
        p[j] = scale * s;
        mx = fmaxf(mx, p[j]);
    }
    mx = block_reduce(mx, 1, red);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < T; j += blockDim.x) { p[j] = expf(p[j] - mx); sum += p[j]; }
    float inv = 1.0f / block_reduce(sum, 0, red);
    float *a = att + ((size_t)bh * Tq + t) * T;
    for (int j = threadIdx.x; j < T; j += blockDim.x) { p[j] *= inv; a[j] = p[j]; }
    __syncthreads();
    float *o = out + ((size_t)b * Tq + t) * C + h * hs;
    for (int i = threadIdx.x; i < hs; i += blockDim.x) {  // out = att v
        float acc = 0.0f;
        for (int j = 0; j < T; j++) acc += p[j] * base[(size_t)j * C3 + 2 * C + i];
        o[i] = acc;
    }
}

static int att_check(int T, int C, int NH, int Tq, sx_err *err) {
    if (NH <= 0 || C % NH) return sx_fail(err, "attention_cuda: C=%d is not a multiple of NH=%d", C, NH);
    if ((size_t)(C / NH + T + 32) * sizeof(float) > 48 * 1024)
        return sx_fail(err, "attention_cuda: T=%d needs more shared memory than the simple kernel has", T);
    if (Tq <= 0 || Tq > T) return sx_fail(err, "attention_cuda: Tq=%d outside 1..T=%d", Tq, T);
    return 0;
}

extern "C" int attention_forward_cuda(float *out, float *att, const float *qkv, int B, int T, int C, int NH,
                                      const int *qrows, int Tq, sx_err *err) {
    // qkv (B,T,3C), att (B,NH,Tq,T), out (B,Tq,C)
    if (att_check(T, C, NH, Tq, err)) return -1;
    size_t shmem = sizeof(float) * (size_t)(C / NH + T + 32);
    dim3 grid((unsigned)Tq, (unsigned)(B * NH));
    attention_forward_kernel<<<grid, ATT_THREADS, shmem, sx_cuda_stream()>>>(out, att, qkv, T, C, NH, qrows, Tq);
    KERNEL_TRY(err);
    return 0;
}

/* grid (Tq, B*NH); shared: q row (hs) + dout row (hs) + dS row (T) + 32. */
__global__ void attention_backward_kernel(float *dqkv, const float *dout, const float *qkv, const float *att, int T,
                                          int C, int NH, const int *qrows, int Tq) {
    extern __shared__ float sh[];
    int t = blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH, hs = C / NH, C3 = 3 * C;
    float *q = sh, *dy = q + hs, *ds = dy + hs, *red = ds + T;
    const float *base = qkv + (size_t)b * T * C3 + h * hs;
    float *dbase = dqkv + (size_t)b * T * C3 + h * hs;
    const float *p = att + ((size_t)bh * Tq + t) * T;
    int row = qrows ? qrows[(size_t)b * Tq + t] : t;
    float scale = 1.0f / sqrtf((float)hs);
    for (int i = threadIdx.x; i < hs; i += blockDim.x) {
        q[i] = base[(size_t)row * C3 + i];
        dy[i] = dout[((size_t)b * Tq + t) * C + h * hs + i];
    }
    __syncthreads();
    float dot = 0.0f;
    for (int j = threadIdx.x; j < T; j += blockDim.x) {  // d(att) = dout v^T
        const float *v = base + (size_t)j * C3 + 2 * C;
        float s = 0.0f;
        for (int i = 0; i < hs; i++) s += dy[i] * v[i];
        ds[j] = s;
        dot += p[j] * s;
    }
    dot = block_reduce(dot, 0, red);
    for (int j = threadIdx.x; j < T; j += blockDim.x) ds[j] = p[j] * (ds[j] - dot);  // softmax backward
    __syncthreads();
    for (int i = threadIdx.x; i < hs; i += blockDim.x) {  // dq = dS k / sqrt(hs), this row only
        float acc = 0.0f;
        for (int j = 0; j < T; j++) acc += ds[j] * base[(size_t)j * C3 + C + i];
        dbase[(size_t)row * C3 + i] = scale * acc;
    }
    for (size_t e = threadIdx.x; e < (size_t)T * hs; e += blockDim.x) {  // dk += dS^T q / sqrt(hs); dv += att^T dout
        int j = (int)(e / hs), i = (int)(e % hs);
        atomicAdd(dbase + (size_t)j * C3 + C + i, scale * ds[j] * q[i]);
        atomicAdd(dbase + (size_t)j * C3 + 2 * C + i, p[j] * dy[i]);
    }
}

extern "C" int attention_backward_cuda(float *dqkv, const float *dout, const float *qkv, const float *att, int B,
                                       int T, int C, int NH, const int *qrows, int Tq, sx_err *err) {
    // dout (B,Tq,C) -> dqkv (B,T,3C), overwritten (zero q rows outside qrows)
    if (att_check(T, C, NH, Tq, err)) return -1;
    if ((size_t)(2 * (C / NH) + T + 32) * sizeof(float) > 48 * 1024)
        return sx_fail(err, "attention_cuda: T=%d needs more shared memory than the simple kernel has", T);
    CUDA_TRY(err, cudaMemsetAsync(dqkv, 0, sizeof(float) * (size_t)B * T * 3 * C, sx_cuda_stream()));
    size_t shmem = sizeof(float) * (size_t)(2 * (C / NH) + T + 32);
    dim3 grid((unsigned)Tq, (unsigned)(B * NH));
    attention_backward_kernel<<<grid, ATT_THREADS, shmem, sx_cuda_stream()>>>(dqkv, dout, qkv, att, T, C, NH, qrows,
                                                                               Tq);
    KERNEL_TRY(err);
    return 0;
}

/* ------------------------------------------- streaming (flash-style) forward */

/* One warp per (image, head, query row); lane l holds dims l, l+32, ... of
 * the query and of the output accumulator. Keys stream through once with an
 * online softmax (running max m and sum l, the accumulator rescaled when the
 * max grows), so no T x T scores exist anywhere: for inference, where the
 * backward's att is not needed. hs a multiple of 32, at most 128. */
enum { FLASH_MAXR = 4 };
__global__ void attention_flash_kernel(float *out, const float *qkv, int B, int T, int C, int NH, const int *qrows,
                                       int Tq) {
    int w = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (w >= B * NH * Tq) return;
    int t = w % Tq, bh = w / Tq, b = bh / NH, h = bh % NH, hs = C / NH, C3 = 3 * C, per = hs / 32;
    const float *base = qkv + (size_t)b * T * C3 + h * hs;
    int row = qrows ? qrows[(size_t)b * Tq + t] : t;
    float scale = 1.0f / sqrtf((float)hs), q[FLASH_MAXR], acc[FLASH_MAXR];
#pragma unroll
    for (int r = 0; r < FLASH_MAXR; r++) {
        q[r] = r < per ? base[(size_t)row * C3 + lane + 32 * r] : 0.0f;
        acc[r] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int j = 0; j < T; j++) {
        const float *k = base + (size_t)j * C3 + C, *v = k + C;
        float s = 0.0f;
#pragma unroll
        for (int r = 0; r < FLASH_MAXR; r++)
            if (r < per) s += q[r] * k[lane + 32 * r];
        s = scale * sx_warp_sum(s);
        float mn = fmaxf(m, s), corr = expf(m - mn), e = expf(s - mn);  // corr = 0 at the first key
        l = l * corr + e;
#pragma unroll
        for (int r = 0; r < FLASH_MAXR; r++)
            if (r < per) acc[r] = acc[r] * corr + e * v[lane + 32 * r];
        m = mn;
    }
    float *o = out + ((size_t)b * Tq + t) * C + h * hs, inv = 1.0f / l;
#pragma unroll
    for (int r = 0; r < FLASH_MAXR; r++)
        if (r < per) o[lane + 32 * r] = acc[r] * inv;
}

extern "C" int attention_forward_flash_cuda(float *out, const float *qkv, int B, int T, int C, int NH,
                                            const int *qrows, int Tq, sx_err *err) {
    // qkv (B,T,3C) -> out (B,Tq,C), without att
    if (NH <= 0 || C % NH || (C / NH) % 32 || C / NH > 32 * FLASH_MAXR)
        return sx_fail(err, "attention_flash_cuda: head size C/NH = %d/%d must be a multiple of 32, at most %d", C,
                       NH, 32 * FLASH_MAXR);
    if (Tq <= 0 || Tq > T) return sx_fail(err, "attention_flash_cuda: Tq=%d outside 1..T=%d", Tq, T);
    size_t warps = (size_t)B * NH * Tq;
    attention_flash_kernel<<<sx_cuda_blocks(warps, 8), 256, 0, sx_cuda_stream()>>>(out, qkv, B, T, C, NH, qrows, Tq);
    KERNEL_TRY(err);
    return 0;
}
