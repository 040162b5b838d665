/* context.cu: the backend's one context (the device, a stream, a cuBLASLt
 * handle and its workspace) and small helpers. One device per process; a
 * multi-GPU run is one process per GPU (issue 19). */
#include "cuda/cuda_common.h"
#include <string.h>

static struct {
    int ready, dev;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *ws;
    size_t ws_bytes;
} ctx;

enum { WORKSPACE_BYTES = 32 << 20 };  /* cuBLASLt's recommendation for Hopper */

cudaStream_t sx_cuda_stream(void) { return ctx.stream; }
cublasLtHandle_t sx_cuda_lt(void) { return ctx.lt; }
void *sx_cuda_workspace(size_t *bytes) { *bytes = ctx.ws_bytes; return ctx.ws; }

extern "C" int sx_cuda_device_count(sx_err *err) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (err) sx_fail(err, "no CUDA device (%s)", cudaGetErrorString(e));
        return 0;
    }
    if (n <= 0 && err) sx_fail(err, "no CUDA device");
    return n > 0 ? n : 0;
}

extern "C" int sx_cuda_init(int dev, sx_err *err) {
    if (ctx.ready && ctx.dev == dev) return 0;
    if (ctx.ready) sx_cuda_shutdown();
    int n = sx_cuda_device_count(err);
    if (n == 0) return -1;
    if (dev < 0 || dev >= n) return sx_fail(err, "cuda: device %d out of range (%d devices)", dev, n);
    CUDA_TRY(err, cudaSetDevice(dev));
    // a blocking stream: it orders itself with the legacy default stream, so
    // a plain cudaMemcpy before a layer call has landed when the layer runs
    CUDA_TRY(err, cudaStreamCreate(&ctx.stream));
    CUBLAS_TRY(err, cublasLtCreate(&ctx.lt));
    CUDA_TRY(err, cudaMalloc(&ctx.ws, WORKSPACE_BYTES));
    ctx.ws_bytes = WORKSPACE_BYTES;
    ctx.dev = dev;
    ctx.ready = 1;
    return 0;
}

extern "C" void sx_cuda_shutdown(void) {
    if (ctx.ws) cudaFree(ctx.ws);
    if (ctx.lt) cublasLtDestroy(ctx.lt);
    if (ctx.stream) cudaStreamDestroy(ctx.stream);
    memset(&ctx, 0, sizeof ctx);
}

extern "C" int sx_cuda_sync(sx_err *err) {
    CUDA_TRY(err, cudaStreamSynchronize(ctx.stream));
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int sx_cuda_device_info(int dev, char *name, size_t cap, int *major, int *minor, size_t *mem_bytes,
                                   sx_err *err) {
    cudaDeviceProp p;
    CUDA_TRY(err, cudaGetDeviceProperties(&p, dev));
    if (cap) snprintf(name, cap, "%s", p.name);
    *major = p.major;
    *minor = p.minor;
    *mem_bytes = p.totalGlobalMem;
    return 0;
}

__global__ void to_bf16_kernel(__nv_bfloat16 *dst, const float *src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __float2bfloat16_rn(src[i]);
}

extern "C" int sx_cuda_to_bf16(uint16_t *dst, const float *src, size_t n, sx_err *err) {
    if (n == 0) return 0;
    to_bf16_kernel<<<sx_cuda_blocks(n, 256), 256, 0, ctx.stream>>>((__nv_bfloat16 *)dst, src, n);
    KERNEL_TRY(err);
    return 0;
}
