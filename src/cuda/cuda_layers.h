/* cuda_layers.h: the CUDA backend's contract, callable from C. Each
 * function is the GPU twin of the layers.h function with the same name
 * minus `_cuda`: same arguments in the same order, same shapes (see
 * layers.h for the B, T, C, OC, NH conventions and which gradients
 * accumulate or overwrite), except that
 *  - every pointer is DEVICE memory (cudaMalloc), except where noted;
 *  - the CPU layers' scratch arguments are gone (the kernels need none);
 *  - each returns 0, or -1 with a message in err (sx_err, core/common.h);
 *  - work is queued on the backend's stream and runs asynchronously: a fault
 *    inside a kernel is reported by the next sx_cuda_sync.
 * Only builds made by `make cuda` have these symbols (the .cu files in src/cuda). */
#ifndef SKELEX_CUDA_LAYERS_H
#define SKELEX_CUDA_LAYERS_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
#include "core/common.h"

/* ---- context.cu: device, stream, cuBLASLt handle, helpers ---- */

/* Number of CUDA devices; 0 when there are none or the driver is absent
 * (with the reason in err when err is non-NULL). */
int sx_cuda_device_count(sx_err *err);
/* Select device dev and create the stream, cuBLASLt handle and workspace.
 * Idempotent for the same device. */
int sx_cuda_init(int dev, sx_err *err);
void sx_cuda_shutdown(void);
/* Wait for all queued work; reports any kernel fault. */
int sx_cuda_sync(sx_err *err);
/* The device's name and compute capability (for `skelex cuda`). */
int sx_cuda_device_info(int dev, char *name, size_t cap, int *major, int *minor, size_t *mem_bytes, sx_err *err);
/* dst (n bf16, as raw 16-bit patterns) = round-to-nearest-even(src (n)). */
int sx_cuda_to_bf16(uint16_t *dst, const float *src, size_t n, sx_err *err);

/* ---- linear.cu ---- */

/* out (N,OC) = inp (N,C) @ w (OC,C)^T + b (OC). b may be NULL. fp32
 * throughout (cuBLASLt, CUBLAS_COMPUTE_32F: no TF32); the bias is the
 * matmul's fused epilogue. */
int linear_forward_cuda(float *out, const float *inp, const float *w, const float *b, int N, int C, int OC,
                        sx_err *err);
/* The same with bf16 inp and w (raw bf16 bits, see sx_cuda_to_bf16), fp32
 * accumulation, fp32 bias and out. */
int linear_forward_bf16_cuda(float *out, const uint16_t *inp, const uint16_t *w, const float *b, int N, int C,
                             int OC, sx_err *err);
/* dinp (N,C) = dout @ w (overwrites); dw (OC,C) += dout^T @ inp; db (OC) +=
 * colsum(dout). Any of dinp, dw, db may be NULL. */
int linear_backward_cuda(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                         int N, int C, int OC, sx_err *err);
/* Column sums: out (C) += sum over N rows of x (N,C). */
int colsum_accumulate_cuda(float *out, const float *x, int N, int C, sx_err *err);

/* ---- layernorm.cu ---- */

/* out (N,C) = (inp - mean) * rstd * w + b; mean, rstd (N) saved. */
int layernorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                           int N, int C, float eps, sx_err *err);
/* dinp (N,C) += ... (NULL: skipped); dw, db (C) += ... */
int layernorm_backward_cuda(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                            const float *mean, const float *rstd, int N, int C, sx_err *err);

/* ---- gelu.cu ---- */

/* inp (N,C) += b (C) in place (NULL: none), out = exact GELU(inp). */
int gelu_forward_cuda(float *out, float *inp, const float *b, int N, int C, sx_err *err);
/* d (N,C) *= gelu'(inp) in place; db (C) += its column sums (NULL: none). */
int gelu_backward_cuda(float *d, const float *inp, float *db, int N, int C, sx_err *err);

/* ---- residual.cu: residuals and row gathers ---- */

/* out (N,C) += x (N,C) + bias (C) (NULL: none). */
int residual_forward_cuda(float *out, const float *x, const float *bias, int N, int C, sx_err *err);
/* out (B,Tq,C) += x (B,T,C) at rows (B,Tq) + bias; backward: dx at rows += dout. */
int residual_rows_forward_cuda(float *out, const float *x, const float *bias, const int *rows, int B, int Tq, int T,
                               int C, sx_err *err);
int residual_rows_backward_cuda(float *dx, const float *dout, const int *rows, int B, int Tq, int T, int C,
                                sx_err *err);
/* dst (n,C) = src rows idx (n); backward: dsrc rows idx += ddst (repeats sum). */
int rows_gather_cuda(float *dst, const float *src, const int *idx, int n, int C, sx_err *err);
int rows_gather_backward_cuda(float *dsrc, const float *ddst, const int *idx, int n, int C, sx_err *err);

/* ---- attention.cu ---- */

/* qkv (B,T,3C) -> out (B,Tq,C), att (B,NH,Tq,T) the softmax probabilities;
 * qrows (B,Tq) or NULL with Tq = T. Materialises att (the CPU layout; a
 * fused kernel that does not is future work). */
int attention_forward_cuda(float *out, float *att, const float *qkv, int B, int T, int C, int NH, const int *qrows,
                           int Tq, sx_err *err);
/* dout (B,Tq,C) -> dqkv (B,T,3C), overwritten; q rows outside qrows zero. */
int attention_backward_cuda(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T, int C,
                            int NH, const int *qrows, int Tq, sx_err *err);

/* The same out without att, for inference: keys stream through an online
 * softmax (flash-style; no T x T scores). Head size C/NH a multiple of 32,
 * at most 128. */
int attention_forward_flash_cuda(float *out, const float *qkv, int B, int T, int C, int NH, const int *qrows, int Tq,
                                 sx_err *err);

/* ---- embed.cu ---- */

/* pixels (B,C,S,S), ids_keep (B,Lk) -> patches (B,Lk,C*p*p) -> out (B,Lk,D). */
int patch_embed_forward_cuda(float *out, float *patches, const float *pixels, const int *ids_keep, const float *w,
                             const float *b, int B, int Lk, int C, int S, int p, int D, sx_err *err);
/* dw (D,cpp), db (D) += (no pixel gradient). */
int patch_embed_backward_cuda(float *dw, float *db, const float *dout, const float *patches, int B, int Lk, int cpp,
                              int D, sx_err *err);
/* emb (B,Lk,D) -> h (B,1+Lk,D): CLS + pos[0], emb[j] + pos[1 + ids_keep[j]]. */
int embed_forward_cuda(float *h, const float *emb, const float *cls, const float *pos, const int *ids_keep, int B,
                       int Lk, int D, sx_err *err);
/* dcls (D) += row 0 summed over images; demb = rows 1.. (overwritten). */
int embed_backward_cuda(float *demb, float *dcls, const float *dh, int B, int Lk, int D, sx_err *err);

/* y (B,1+Lk,D) shuffled -> z (B,1+N,D) in patch order, mask_token where
 * hidden, + pos (1+N,D). Backward: dy overwritten, dmask_token +=
 * (ids_restore (B,N) must be a permutation of 0..N-1 per image, as MAE's). */
int unshuffle_forward_cuda(float *z, const float *y, const float *mask_token, const float *pos,
                           const int *ids_restore, int B, int N, int Lk, int D, sx_err *err);
int unshuffle_backward_cuda(float *dy, float *dmask_token, const float *dz, const int *ids_restore, int B, int N,
                            int Lk, int D, sx_err *err);

/* ---- loss.cu ---- */

/* x (n,P) in place: (x - mean) / sqrt(unbiased var + 1e-6), per row. */
int patch_norm_forward_cuda(float *x, size_t n, int P, sx_err *err);
/* The MAE loss (see layers.h); the loss goes to *loss (HOST memory) after
 * the device finishes (this call synchronises). */
int masked_mse_forward_cuda(float *loss, float *target, const float *pred, const float *mask, int B, int N, int P,
                            int Tp, int masked_only, int norm_pix, sx_err *err);
/* dpred (B,Tp,P) overwritten with grad_scale x d(loss). */
int masked_mse_backward_cuda(float *dpred, const float *pred, const float *target, const float *mask, int B, int N,
                             int P, int Tp, int masked_only, float grad_scale, sx_err *err);

/* latent (B,T,D) row 0 -> logits (B,K) = cls @ w (K,D)^T + b (K) (in
 * double). Backward: dw, db +=; dlatent (B,T,D) row 0 +=. */
int cls_head_forward_cuda(float *logits, const float *latent, const float *w, const float *b, int B, int T, int D,
                          int K, sx_err *err);
int cls_head_backward_cuda(float *dlatent, float *dw, float *db, const float *dlogits, const float *latent,
                           const float *w, int B, int T, int D, int K, sx_err *err);

/* ---- adamw.cu ---- */

/* One AdamW update of n floats (nn/optim.h's adamw_update; step 1-based). */
int adamw_update_cuda(float *p, const float *g, float *m, float *v, size_t n, float lr, float wd, float beta1,
                      float beta2, float eps, long step, sx_err *err);

#ifdef __cplusplus
}
#endif
#endif
