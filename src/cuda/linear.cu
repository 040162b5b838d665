/* linear.cu: the GPU twin of layers.c's linear layer, on cuBLASLt.
 * Row-major X (r,c) is column-major X^T (c,r) with the same pointer and
 * leading dimension c, so each row-major product becomes a column-major one
 * with the operands' roles read off the transposes:
 *   out (N,OC) = inp @ w^T      ->  out^T (OC,N) = w^T(opT of w (C,OC)) . inp^T (C,N)
 *   dinp (N,C) = dout @ w       ->  dinp^T (C,N) = w^T (C,OC) . dout^T (OC,N)
 *   dw (OC,C) += dout^T @ inp   ->  dw^T (C,OC) += inp^T (C,N) . (dout^T)^T (N,OC)
 * Compute type CUBLAS_COMPUTE_32F (true fp32, no TF32) for both fp32 and
 * bf16 operands; the bias is the BIAS epilogue when cuBLASLt has an
 * algorithm for it, else a separate kernel. The GELU epilogues are not
 * used: cuBLASLt's GELU is the tanh approximation, the CPU's is exact. */
#include "cuda/cuda_common.h"

__global__ void add_bias_kernel(float *out, const float *b, int N, int OC) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (size_t)N * OC) out[i] += b[i % OC];
}

/* One matmul descriptor per call (cheap next to the product; as llm.c). */
static int matmul_once(float *d, const void *a, const void *b, const float *bias, int transa, int transb, int m,
                       int n, int k, int lda, int ldb, int ldd, float beta, cudaDataType_t t, int *no_algo,
                       sx_err *e) {
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, ld = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    int rc = -1, found = 0;
    size_t ws_bytes;
    void *ws = sx_cuda_workspace(&ws_bytes);
    cublasOperation_t ta = transa ? CUBLAS_OP_T : CUBLAS_OP_N, tb = transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtEpilogue_t epi = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    cudaDataType_t bias_t = CUDA_R_32F;
    cublasLtMatmulHeuristicResult_t heur;
    float alpha = 1.0f;
    cublasStatus_t s;
#define LT(call) do { if ((s = (call)) != CUBLAS_STATUS_SUCCESS) { \
        sx_fail(e, "cublasLt: status %d (%s)", (int)s, #call); goto done; } } while (0)
    LT(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    if (bias) {
        LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
        LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_t, sizeof bias_t));
    }
    // stored shapes: op(A) is (m,k), so A is (k,m) when transposed; likewise B
    LT(cublasLtMatrixLayoutCreate(&la, t, transa ? k : m, transa ? m : k, lda));
    LT(cublasLtMatrixLayoutCreate(&lb, t, transb ? n : k, transb ? k : n, ldb));
    LT(cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, m, n, ldd));
    LT(cublasLtMatmulPreferenceCreate(&pref));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                            sizeof ws_bytes));
    s = cublasLtMatmulAlgoGetHeuristic(sx_cuda_lt(), op, la, lb, ld, ld, pref, 1, &heur, &found);
    if (s != CUBLAS_STATUS_SUCCESS || found == 0) {
        *no_algo = 1;
        sx_fail(e, "cublasLt: no algorithm for a %dx%dx%d product (status %d)", m, n, k, (int)s);
        goto done;
    }
    LT(cublasLtMatmul(sx_cuda_lt(), op, &alpha, a, la, b, lb, &beta, d, ld, d, ld, &heur.algo, ws, ws_bytes,
                      sx_cuda_stream()));
#undef LT
    rc = 0;
done:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (ld) cublasLtMatrixLayoutDestroy(ld);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return rc;
}

int sx_cuda_matmul(float *d, const void *a, const void *b, const float *bias, int transa, int transb, int m, int n,
                   int k, int lda, int ldb, int ldd, float beta, cudaDataType_t t, sx_err *e) {
    int no_algo = 0;
    if (matmul_once(d, a, b, bias, transa, transb, m, n, k, lda, ldb, ldd, beta, t, &no_algo, e) == 0) return 0;
    if (!bias || !no_algo) return -1;
    // no fused-bias algorithm for this shape: the product, then the bias
    // (bias is per row m of column-major D, i.e. per column of row-major out)
    if (matmul_once(d, a, b, NULL, transa, transb, m, n, k, lda, ldb, ldd, beta, t, &no_algo, e)) return -1;
    add_bias_kernel<<<sx_cuda_blocks((size_t)m * n, 256), 256, 0, sx_cuda_stream()>>>(d, bias, n, m);
    KERNEL_TRY(e);
    return 0;
}

extern "C" int linear_forward_cuda(float *out, const float *inp, const float *w, const float *b, int N, int C, int OC,
                                   sx_err *err) {
    // inp is (N,C), w is (OC,C), out is (N,OC)
    return sx_cuda_matmul(out, w, inp, b, 1, 0, OC, N, C, C, C, OC, 0.0f, CUDA_R_32F, err);
}

extern "C" int linear_forward_bf16_cuda(float *out, const uint16_t *inp, const uint16_t *w, const float *b, int N,
                                        int C, int OC, sx_err *err) {
    // the same product on bf16 operands, fp32 accumulation and output
    return sx_cuda_matmul(out, w, inp, b, 1, 0, OC, N, C, C, C, OC, 0.0f, CUDA_R_16BF, err);
}

/* Column sums, one thread per column (deterministic; N is a few thousand
 * rows at most in a step). */
__global__ void colsum_kernel(float *out, const float *x, int N, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float acc = 0.0f;
    for (int n = 0; n < N; n++) acc += x[(size_t)n * C + c];
    out[c] += acc;
}

extern "C" int colsum_accumulate_cuda(float *out, const float *x, int N, int C, sx_err *err) {
    // out (C) += sum over N rows of x (N,C)
    colsum_kernel<<<sx_cuda_blocks((size_t)C, 128), 128, 0, sx_cuda_stream()>>>(out, x, N, C);
    KERNEL_TRY(err);
    return 0;
}

extern "C" int linear_backward_cuda(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                    const float *w, int N, int C, int OC, sx_err *err) {
    // dout is (N,OC): dinp (N,C) = dout @ w; dw (OC,C) += dout^T @ inp; db += colsum(dout)
    if (dinp && sx_cuda_matmul(dinp, w, dout, NULL, 0, 0, C, N, OC, C, OC, C, 0.0f, CUDA_R_32F, err)) return -1;
    if (dw && sx_cuda_matmul(dw, inp, dout, NULL, 0, 1, C, OC, N, C, OC, C, 1.0f, CUDA_R_32F, err)) return -1;
    if (db) return colsum_accumulate_cuda(db, dout, N, OC, err);
    return 0;
}
