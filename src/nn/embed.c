/* embed.c: the MAE's token layers (patch embedding, CLS and position
 * embeddings, the decoder's unshuffle with mask tokens, the first decoder
 * block's shared rows), forward and backward side by side. Declared in
 * layers.h. */
#include "nn/layers.h"
#include <string.h>

/* --------------------------------------------------------- patch embedding */

void patch_embed_forward(float *out, float *patches, const float *pixels, const int *ids_keep, const float *w,
                         const float *b, int B, int Lk, int C, int S, int p, int D) {
    // pixels (B,C,S,S), ids_keep (B,Lk) -> patches (B,Lk,C*p*p) in the conv's
    // (c, ky, kx) order -> out (B,Lk,D) = patches @ w (D, C*p*p)^T + b (D):
    // the strided conv as a Linear over the visible patches only
    int g = S / p;
    size_t cpp = (size_t)C * p * p;
#pragma omp parallel for schedule(static)
    for (int bj = 0; bj < B * Lk; bj++) {
        int bb = bj / Lk, n = ids_keep[bj], gy = n / g, gx = n % g;
        float *o = patches + (size_t)bj * cpp;
        for (int ch = 0; ch < C; ch++)
            for (int ky = 0; ky < p; ky++)
                memcpy(o + ((size_t)ch * p + ky) * p,
                       pixels + (((size_t)bb * C + ch) * S + gy * p + ky) * S + gx * p, sizeof(float) * (size_t)p);
    }
    linear_forward(out, patches, w, b, B * Lk, (int)cpp, D);
}

void patch_embed_backward(float *dw, float *db, const float *dout, const float *patches, int B, int Lk, int cpp, int D) {
    // dout (B,Lk,D): dw (D,cpp) += dout^T patches; db (D) += colsum(dout); no pixel gradient
    linear_backward(NULL, dw, db, dout, patches, NULL, B * Lk, cpp, D);
}

/* ----------------------------------------------- CLS + position embeddings */

void embed_forward(float *h, const float *emb, const float *cls, const float *pos, const int *ids_keep, int B, int Lk,
                   int D) {
    // emb (B,Lk,D), ids_keep (B,Lk), cls (D), pos (1+N,D) -> h (B,1+Lk,D):
    // row 0 = cls + pos[0]; row 1+j = emb[j] + pos[1 + ids_keep[j]]
    int Te = 1 + Lk;
    for (int b = 0; b < B; b++) {
        float *hb = h + (size_t)b * Te * D;
        for (int i = 0; i < D; i++) hb[i] = cls[i] + pos[i];
        for (int j = 0; j < Lk; j++) {
            const float *e = emb + ((size_t)b * Lk + j) * D, *pe = pos + (size_t)(1 + ids_keep[b * Lk + j]) * D;
            float *o = hb + (size_t)(1 + j) * D;
            for (int i = 0; i < D; i++) o[i] = e[i] + pe[i];
        }
    }
}

void embed_backward(float *demb, float *dcls, const float *dh, int B, int Lk, int D) {
    // dh (B,1+Lk,D) -> dcls (D) += sum over images of row 0; demb (B,Lk,D) =
    // rows 1.. (overwritten); the position embeddings are frozen
    int Te = 1 + Lk;
    for (int b = 0; b < B; b++) {
        const float *d = dh + (size_t)b * Te * D;
        for (int i = 0; i < D; i++) dcls[i] += d[i];
        memcpy(demb + (size_t)b * Lk * D, d + D, sizeof(float) * (size_t)Lk * D);
    }
}

/* ------------------------------------------------------------ unshuffle */

void unshuffle_forward(float *z, const float *y, const float *mask_token, const float *pos, const int *ids_restore,
                       int B, int N, int Lk, int D) {
    // y (B,1+Lk,D) (CLS, then the visible tokens in shuffled order),
    // ids_restore (B,N), mask_token (D), pos (1+N,D) -> z (B,1+N,D) in patch
    // order: z[n] = (ids_restore[n] < Lk ? y[1 + ids_restore[n]] : mask_token) + pos[1+n]
    int Te = 1 + Lk, Td = 1 + N;
    for (int b = 0; b < B; b++) {
        const float *yb = y + (size_t)b * Te * D;
        float *zb = z + (size_t)b * Td * D;
        for (int i = 0; i < D; i++) zb[i] = yb[i] + pos[i];
        for (int n = 0; n < N; n++) {
            int r = ids_restore[b * N + n];
            const float *src = r < Lk ? yb + (size_t)(1 + r) * D : mask_token;
            const float *pe = pos + (size_t)(1 + n) * D;
            float *o = zb + (size_t)(1 + n) * D;
            for (int i = 0; i < D; i++) o[i] = src[i] + pe[i];
        }
    }
}

void unshuffle_backward(float *dy, float *dmask_token, const float *dz, const int *ids_restore, int B, int N, int Lk,
                        int D) {
    // dz (B,1+N,D) -> dy (B,1+Lk,D) (overwritten): visible rows back to the
    // encoder's order; dmask_token (D) += the hidden rows
    int Te = 1 + Lk, Td = 1 + N;
    memset(dy, 0, sizeof(float) * (size_t)B * Te * D);
    for (int b = 0; b < B; b++) {
        const float *dzb = dz + (size_t)b * Td * D;
        float *dyb = dy + (size_t)b * Te * D;
        for (int i = 0; i < D; i++) dyb[i] += dzb[i];
        for (int n = 0; n < N; n++) {
            int r = ids_restore[b * N + n];
            float *dst = r < Lk ? dyb + (size_t)(1 + r) * D : dmask_token;
            const float *src = dzb + (size_t)(1 + n) * D;
            for (int i = 0; i < D; i++) dst[i] += src[i];
        }
    }
}

void masked_rows_index(int *ids_mask, const int *ids_restore, int B, int N, int Lk) {
    // ids_restore (B,N) -> ids_mask (B,N-Lk): decoder rows 1+n of the hidden patches n, ascending
    int Lm = N - Lk;
    for (int b = 0; b < B; b++)
        for (int n = 0, j = 0; n < N; n++)
            if (ids_restore[b * N + n] >= Lk) ids_mask[b * Lm + j++] = 1 + n;
}

/* ------------------------------------------------------------ shared rows */

void share_rows_forward(float *xu, int *src, const float *x, const float *mask_token, const float *pos,
                        const int *ids_restore, int B, int N, int Lk, int D) {
    // x (B,1+N,D) (unshuffle_forward's output) -> xu (B*(1+Lk) + N, D): each
    // image's CLS and visible rows, then mask_token + pos[1+n] once per
    // position n; src (B*(1+N)) maps every row of x to its row of xu
    int Te = 1 + Lk, Td = 1 + N, k = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Td; t++) {
            int n = t - 1;
            if (t && ids_restore[b * N + n] >= Lk) { src[b * Td + t] = B * Te + n; continue; }
            src[b * Td + t] = k;
            memcpy(xu + (size_t)k++ * D, x + ((size_t)b * Td + t) * D, sizeof(float) * (size_t)D);
        }
    for (int n = 0; n < N; n++) {
        float *o = xu + ((size_t)B * Te + n) * D;
        const float *pe = pos + (size_t)(1 + n) * D;
        for (int i = 0; i < D; i++) o[i] = mask_token[i] + pe[i];  // as x's mask rows
    }
}

void share_rows_backward(float *dx, float *dmask_token, const float *dxu, const int *src, int B, int N, int Lk, int D) {
    // dxu (B*(1+Lk) + N, D) -> dx (B,1+N,D) += each image's own rows;
    // dmask_token (D) += the N shared rows (their position part is frozen)
    int Te = 1 + Lk, Td = 1 + N;
    for (int i = 0; i < B * Td; i++) {
        int k = src[i];
        if (k >= B * Te) continue;
        float *d = dx + (size_t)i * D;
        const float *gu = dxu + (size_t)k * D;
        for (int j = 0; j < D; j++) d[j] += gu[j];
    }
    for (int n = 0; n < N; n++)
        for (int j = 0; j < D; j++) dmask_token[j] += dxu[((size_t)B * Te + n) * D + j];
}
