/* layers.h: the transformer's layers as flat forward/backward pairs
 * (llm.c style). Shapes are in the comments: B batch, T tokens, C channels,
 * OC output channels, NH heads. Conventions:
 *  - backward functions ACCUMULATE (+=) into parameter gradients;
 *  - for input gradients, each function says whether it overwrites or adds;
 *  - a NULL input-gradient pointer skips that work. */
#ifndef SKELEX_LAYERS_H
#define SKELEX_LAYERS_H
#include <stddef.h>

/* out (N,OC) = inp (N,C) @ w (OC,C)^T + b (OC). b may be NULL. */
void linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int C, int OC);
/* dinp (N,C) = dout @ w (overwrites); dw (OC,C) += dout^T @ inp; db (OC) += colsum(dout). */
void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC);

/* out (N,C) = (inp - mean) * rstd * w + b; mean, rstd (N) are saved for backward. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int N, int C, float eps);
/* dinp (N,C) += ...; dw, db (C) += ... */
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int N, int C);

/* Exact GELU of inp (N,C) plus the bias b (C) of the linear before it
 * (which then runs without): inp += b in place (kept for backward), out =
 * 0.5 x (1 + erf(x / sqrt 2)). b may be NULL. */
void gelu_forward(float *out, float *inp, const float *b, int N, int C);
/* d (N,C) = d * gelu'(inp), in place; db (C) += the column sums of that
 * result (the bias gradient of the linear before), unless db is NULL.
 * scratch: gelu_scratch_floats(C) floats (per-thread partial sums), or NULL
 * to allocate them for this call (tests; a training step passes its own). */
void gelu_backward(float *d, const float *inp, float *db, int N, int C, float *scratch);
size_t gelu_scratch_floats(int C);

/* Multi-head self-attention, no mask. qkv (B,T,3C) holds q|k|v per token.
 * Only the Tq query rows listed in qrows (B,Tq; row indices within each
 * image, distinct) are computed; qrows NULL with Tq = T computes all, in
 * order. att (B,NH,Tq,T) saves the softmax probabilities; out (B,Tq,C). */
/* scratch: attention_scratch_floats(T, C, NH, Tq) floats (each thread's
 * packed heads), or NULL to allocate them for this call. */
void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH, const int *qrows, int Tq,
                       float *scratch);
/* dout (B,Tq,C). dqkv (B,T,3C) is overwritten; query rows outside qrows get
 * zero. scratch as for the forward (the same buffer serves both). */
void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T, int C,
                        int NH, const int *qrows, int Tq, float *scratch);
/* Scratch for attention_forward/backward, for the OpenMP thread count now. */
size_t attention_scratch_floats(int T, int C, int NH, int Tq);

/* The residual: out (N,C) += x (N,C) + bias (C), where out is the output
 * of a linear run without its bias (NULL: none). */
void residual_forward(float *out, const float *x, const float *bias, int N, int C);
/* The residual of a row subset: out (B,Tq,C) += x (B,T,C) at rows (B,Tq) +
 * bias; backward: dx (B,T,C) at rows += dout (B,Tq,C). */
void residual_rows_forward(float *out, const float *x, const float *bias, const int *rows, int B, int Tq, int T, int C);
void residual_rows_backward(float *dx, const float *dout, const int *rows, int B, int Tq, int T, int C);

/* A row gather: dst (n,C) = src rows idx (n). Backward: dsrc rows idx +=
 * ddst (n,C), summing over repeated indices. */
void rows_gather(float *dst, const float *src, const int *idx, int n, int C);
void rows_gather_backward(float *dsrc, const float *ddst, const int *idx, int n, int C);

/* Column sums: out (C) += sum over N rows of x (N,C). */
void colsum_accumulate(float *out, const float *x, int N, int C);
/* ---- embed.c: the MAE's token layers ---- */

/* The strided-conv patch embedding over the visible patches: pixels
 * (B,C,S,S), ids_keep (B,Lk) -> patches (B,Lk,C*p*p) (kept for backward)
 * -> out (B,Lk,D) = patches @ w (D,C*p*p)^T + b. Backward: dw, db += (no
 * pixel gradient). */
void patch_embed_forward(float *out, float *patches, const float *pixels, const int *ids_keep, const float *w,
                         const float *b, int B, int Lk, int C, int S, int p, int D);
void patch_embed_backward(float *dw, float *db, const float *dout, const float *patches, int B, int Lk, int cpp, int D);
/* emb (B,Lk,D) -> h (B,1+Lk,D): CLS + pos[0], then emb[j] + pos[1 + ids_keep[j]].
 * Backward: dcls (D) += row 0 summed over images; demb = rows 1.. (overwritten). */
void embed_forward(float *h, const float *emb, const float *cls, const float *pos, const int *ids_keep, int B, int Lk,
                   int D);
void embed_backward(float *demb, float *dcls, const float *dh, int B, int Lk, int D);
/* y (B,1+Lk,D) in shuffled order -> z (B,1+N,D) in patch order, mask_token
 * where hidden, plus pos (1+N,D). Backward: dy overwritten, dmask_token +=. */
void unshuffle_forward(float *z, const float *y, const float *mask_token, const float *pos, const int *ids_restore,
                       int B, int N, int Lk, int D);
void unshuffle_backward(float *dy, float *dmask_token, const float *dz, const int *ids_restore, int B, int N, int Lk,
                        int D);
/* ids_restore (B,N) -> ids_mask (B,N-Lk): rows 1+n of the hidden patches, ascending. */
void masked_rows_index(int *ids_mask, const int *ids_restore, int B, int N, int Lk);
/* The first decoder block's distinct input rows: x (B,1+N,D) -> xu
 * (B*(1+Lk)+N, D) (each image's CLS and visible rows, then mask_token +
 * pos[1+n] per position) and src (B*(1+N)), the row of xu of each row of x.
 * Backward: dx (B,1+N,D) += dxu at each image's own rows; dmask_token +=
 * the shared rows. */
void share_rows_forward(float *xu, int *src, const float *x, const float *mask_token, const float *pos,
                        const int *ids_restore, int B, int N, int Lk, int D);
void share_rows_backward(float *dx, float *dmask_token, const float *dxu, const int *src, int B, int N, int Lk, int D);

/* ---- loss.c: losses and heads ---- */

/* norm_pix_loss's per-patch statistics: mean and sqrt(unbiased var + 1e-6)
 * of t (P); patch_norm_forward normalises x (n,P) in place with them. */
void patch_norm_stats(const float *t, int P, double *mean, double *std);
void patch_norm_forward(float *x, size_t n, int P);
/* The MAE loss: mean over hidden patches (mask (B,N) = 1) of the per-patch
 * mean squared error between pred and target (B,N,P), normalised first in
 * place when norm_pix. pred (B,Tp,P): with masked_only its rows are each
 * image's hidden patches in order (Tp = N - Lk), else row 1+n is patch n
 * (Tp = 1+N). Backward: dpred (B,Tp,P) overwritten with grad_scale x d(loss). */
float masked_mse_forward(float *target, const float *pred, const float *mask, int B, int N, int P, int Tp,
                         int masked_only, int norm_pix);
void masked_mse_backward(float *dpred, const float *pred, const float *target, const float *mask, int B, int N, int P,
                         int Tp, int masked_only, float grad_scale);
/* A linear head on the CLS token: latent (B,T,D) row 0 -> logits (B,K) =
 * cls @ w (K,D)^T + b (K). Backward: dw, db +=; dlatent (B,T,D) row 0 +=. */
void cls_head_forward(float *logits, const float *latent, const float *w, const float *b, int B, int T, int D, int K);
void cls_head_backward(float *dlatent, float *dw, float *db, const float *dlogits, const float *latent, const float *w,
                       int B, int T, int D, int K);

/* SKELEX_PROFILE=1: forget the counts so far (as gemm_profile_reset). */
void attention_profile_reset(void);

#endif
