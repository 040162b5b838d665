/* loss.c: the MAE's masked reconstruction loss (with norm_pix_loss's
 * per-patch normalisation) and the classifier's linear head on CLS, forward
 * and backward side by side. Declared in layers.h. */
#include "nn/layers.h"
#include <math.h>
#include <string.h>

/* -------------------------------------------------- per-patch normalisation */

void patch_norm_stats(const float *t, int P, double *mean, double *std) {
    double m = 0.0, v = 0.0;
    for (int i = 0; i < P; i++) m += t[i];
    m /= P;
    for (int i = 0; i < P; i++) v += (t[i] - m) * (t[i] - m);
    v /= (P - 1);  // torch.var is unbiased
    *mean = m;
    *std = sqrt(v + 1e-6);
}

void patch_norm_forward(float *x, size_t n, int P) {
    // x (n,P) in place: (x - mean) / sqrt(unbiased var + 1e-6), row by row
    for (size_t r = 0; r < n; r++) {
        float *t = x + r * P;
        double mean, std;
        patch_norm_stats(t, P, &mean, &std);
        double s = 1.0 / std;
        for (int i = 0; i < P; i++) t[i] = (float)((t[i] - mean) * s);
    }
}

/* ------------------------------------------------------------ masked MSE */

/* The row of pred holding patch n of image b (its j-th hidden patch). */
static size_t pred_row(int b, int n, int j, int Tp, int masked_only) {
    return masked_only ? (size_t)b * Tp + j : (size_t)b * Tp + 1 + n;
}

float masked_mse_forward(float *target, const float *pred, const float *mask, int B, int N, int P, int Tp,
                         int masked_only, int norm_pix) {
    // target (B,N,P) (normalised in place with norm_pix), pred (B,Tp,P),
    // mask (B,N) -> sum_n mask * mean_i (pred - target)^2 / sum mask
    if (norm_pix) patch_norm_forward(target, (size_t)B * N, P);
    double num = 0.0, den = 0.0;
    for (int b = 0; b < B; b++)
        for (int n = 0, j = 0; n < N; n++) {
            float mk = mask[b * N + n];
            den += mk;
            if (mk == 0.0f) continue;
            const float *pr = pred + pred_row(b, n, j++, Tp, masked_only) * P, *t = target + ((size_t)b * N + n) * P;
            double s = 0.0;
            for (int i = 0; i < P; i++) { double e = (double)pr[i] - t[i]; s += e * e; }
            num += mk * s / P;
        }
    return den > 0 ? (float)(num / den) : 0.0f;
}

void masked_mse_backward(float *dpred, const float *pred, const float *target, const float *mask, int B, int N, int P,
                         int Tp, int masked_only, float grad_scale) {
    // dpred (B,Tp,P) overwritten: grad_scale * 2 (pred - target) mask / (P sum mask); 0 on visible rows
    double den = 0.0;
    for (size_t i = 0; i < (size_t)B * N; i++) den += mask[i];
    float scale = den > 0 ? (float)(2.0 * grad_scale / (P * den)) : 0.0f;
    memset(dpred, 0, sizeof(float) * (size_t)B * Tp * P);
    for (int b = 0; b < B; b++)
        for (int n = 0, j = 0; n < N; n++) {
            float mk = mask[b * N + n];
            if (mk == 0.0f) continue;
            size_t row = pred_row(b, n, j++, Tp, masked_only);
            float *dp = dpred + row * P, s = scale * mk;
            const float *pr = pred + row * P, *t = target + ((size_t)b * N + n) * P;
            for (int i = 0; i < P; i++) dp[i] = s * (pr[i] - t[i]);
        }
}

/* ------------------------------------------------------- classifier head */

void cls_head_forward(float *logits, const float *latent, const float *w, const float *b, int B, int T, int D, int K) {
    // latent (B,T,D), its row 0 the CLS token -> logits (B,K) = cls @ w (K,D)^T + b (K), in double
    for (int bb = 0; bb < B; bb++) {
        const float *cls = latent + (size_t)bb * T * D;
        for (int k = 0; k < K; k++) {
            const float *wk = w + (size_t)k * D;
            double s = b[k];
            for (int i = 0; i < D; i++) s += (double)wk[i] * cls[i];
            logits[(size_t)bb * K + k] = (float)s;
        }
    }
}

void cls_head_backward(float *dlatent, float *dw, float *db, const float *dlogits, const float *latent, const float *w,
                       int B, int T, int D, int K) {
    // dlogits (B,K): dw (K,D) += dlogits^T cls; db (K) += colsum; dlatent (B,T,D) row 0 += dlogits w
    for (int bb = 0; bb < B; bb++) {
        const float *cls = latent + (size_t)bb * T * D;
        float *dcls = dlatent + (size_t)bb * T * D;
        for (int k = 0; k < K; k++) {
            float d = dlogits[(size_t)bb * K + k];
            float *gw = dw + (size_t)k * D;
            const float *wk = w + (size_t)k * D;
            for (int i = 0; i < D; i++) { gw[i] += d * cls[i]; dcls[i] += d * wk[i]; }
            db[k] += d;
        }
    }
}
