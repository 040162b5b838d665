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
/* SKELEX_PROFILE=1: forget the attention time counted so far. */
void attention_profile_reset(void);

#endif
