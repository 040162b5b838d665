/* probe.c: feature extraction and the linear probe. */
#include "adapt/probe.h"
#include "io/image.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int features_extract(mae_model *m, const char *const *paths, size_t n, int batch, float *feats, FILE *progress,
                     sx_err *err) {
    return features_extract_layers(m, paths, n, batch, NULL, 0, feats, progress, err);
}

int features_extract_layers(mae_model *m, const char *const *paths, size_t n, int batch, const int *layers,
                            int n_layers, float *feats, FILE *progress, sx_err *err) {
    const mae_config *c = &m->cfg;
    int S = c->image_size, D = c->hidden_size, N = config_num_patches(c);
    int nl = n_layers > 0 ? n_layers : 1, F = 2 * D * nl;
    for (int q = 0; q < n_layers; q++)
        if (layers[q] < 1 || layers[q] > c->num_hidden_layers)
            return sx_fail(err, "layer %d: the encoder has blocks 1..%d", layers[q], c->num_hidden_layers);
    float *px = sx_malloc(sizeof(float) * (size_t)batch * 3 * S * S);
    double t0 = sx_now();
    int rc = 0, tty = progress && isatty(fileno(progress));
    for (size_t i0 = 0; i0 < n && !rc; i0 += (size_t)batch) {
        int B = (int)(n - i0 < (size_t)batch ? n - i0 : (size_t)batch);
        for (int b = 0; b < B && !rc; b++) rc = image_preprocess_file(paths[i0 + b], S, px + (size_t)b * 3 * S * S, err);
        if (rc || (rc = mae_encode(m, px, B, err))) break;
        for (int b = 0; b < B; b++) {
            float *f0 = feats + (i0 + b) * (size_t)F;
            for (int q = 0; q < nl; q++) {   /* the final LayerNorm's output, or block outputs (residual stream) */
                const float *src = n_layers > 0 ? m->enc_a[layers[q] - 1].res2 : m->latent;
                const float *lat = src + (size_t)b * (N + 1) * D;
                float *f = f0 + (size_t)q * 2 * D;
                memcpy(f, lat, sizeof(float) * D);                     // CLS
                for (int i = 0; i < D; i++) {
                    double s = 0;
                    for (int t = 1; t <= N; t++) s += lat[(size_t)t * D + i];
                    f[D + i] = (float)(s / N);                          // mean of patch tokens
                }
            }
            float *f = f0;
            for (int i = 0; i < F && !rc; i++)
                if (!isfinite(f[i]))
                    rc = sx_fail(err, "%s: the encoder's features are not finite (NaN or inf weights in the model?)",
                                 paths[i0 + b]);
        }
        if (rc) break;
        double el = sx_now() - t0, done = (double)(i0 + B);
        size_t step = n / 10 > (size_t)batch ? n / 10 : (size_t)batch;   /* not a terminal: about 10 lines */
        if (progress && (tty || (i0 + B) / step != i0 / step || i0 + B == n))
            fprintf(progress, "%sfeatures %zu/%zu  %.1f img/s  ETA %.0f s%s", tty ? "\r" : "", i0 + B, n, done / el,
                    (n - done) / (done / el), tty ? "   " : "\n");
    }
    if (tty) fprintf(progress, "\n");
    free(px);
    return rc;
}

void linear_head_logits(const linear_head *h, const float *X, size_t n, float *logits) {
    int F = h->F, K = h->K;
    float *z = sx_malloc(sizeof(float) * F);
    for (size_t i = 0; i < n; i++) {
        for (int f = 0; f < F; f++) z[f] = (X[i * F + f] - h->mean[f]) / h->std[f];
        for (int k = 0; k < K; k++) {
            double s = h->b[k];
            for (int f = 0; f < F; f++) s += (double)h->w[(size_t)k * F + f] * z[f];
            logits[i * K + k] = (float)s;
        }
    }
    free(z);
}

void linear_head_outputs(const linear_head *h, task_type type, int n_classes, const float *X, size_t n, double *prob,
                         double *pred) {
    enum { CHUNK = 4096 };
    float *z = sx_malloc(sizeof(float) * CHUNK * (size_t)h->K);
    int KK = n_classes > 2 ? n_classes : 2;
    for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
        size_t B = n - i0 < CHUNK ? n - i0 : CHUNK;
        linear_head_logits(h, X + i0 * h->F, B, z);
        /* the classifier's own head outputs: a classifier viewed as these logits */
        classifier view;
        memset(&view, 0, sizeof view);
        view.type = type;
        view.n_classes = n_classes;
        view.n_out = h->K;
        view.logits = z;
        view.enc.B = (int)B;
        view.y_mean = h->y_mean;
        view.y_sd = h->y_std;
        classifier_outputs(&view, prob ? prob + i0 * KK : NULL, pred ? pred + i0 : NULL);
    }
    free(z);
}

void linear_head_predict(const linear_head *h, const float *X, size_t n, float *out) {
    int K = h->K;
    linear_head_logits(h, X, n, out);
    for (size_t i = 0; i < n; i++) {
        float *o = out + i * K, mx = -INFINITY;
        for (int k = 0; k < K; k++) mx = o[k] > mx ? o[k] : mx;
        if (h->kind == HEAD_SOFTMAX) {
            double sum = 0;
            for (int k = 0; k < K; k++) { o[k] = expf(o[k] - mx); sum += o[k]; }
            for (int k = 0; k < K; k++) o[k] = (float)(o[k] / sum);
        } else if (h->kind == HEAD_SIGMOID) o[0] = 1.0f / (1.0f + expf(-o[0]));
        else o[0] = o[0] * h->y_std + h->y_mean;
    }
}

void linear_head_free(linear_head *h) {
    free(h->mean); free(h->std); free(h->w); free(h->b);
    memset(h, 0, sizeof *h);
}

int linear_head_train(linear_head *h, head_kind kind, int K, const float *X, const float *y, size_t n, int F,
                      const float *Xv, const float *yv, size_t nv, head_score_fn score, void *ctx,
                      int iters, float lr, float wd) {
    int Ko = kind == HEAD_SOFTMAX ? K : 1;
    *h = (linear_head){kind, F, Ko, sx_calloc((size_t)F, 4), sx_calloc((size_t)F, 4), sx_calloc((size_t)Ko * F, 4),
                       sx_calloc((size_t)Ko, 4), 0.0f, 1.0f};
    for (int f = 0; f < F; f++) {  /* standardise features with the training set's statistics */
        double s = 0, s2 = 0;
        for (size_t i = 0; i < n; i++) { s += X[i * F + f]; s2 += (double)X[i * F + f] * X[i * F + f]; }
        double m = s / n, v = s2 / n - m * m;
        h->mean[f] = (float)m;
        h->std[f] = (float)sqrt(v > 1e-12 ? v : 1e-12);
    }
    if (kind == HEAD_LINEAR) {
        double s = 0, s2 = 0;
        for (size_t i = 0; i < n; i++) { s += y[i]; s2 += (double)y[i] * y[i]; }
        h->y_mean = (float)(s / n);
        double v = s2 / n - (s / n) * (s / n);
        h->y_std = (float)sqrt(v > 1e-12 ? v : 1.0);
    }
    size_t np = (size_t)Ko * F + Ko;
    float *Z = sx_malloc(sizeof(float) * n * F), *gw = sx_malloc(sizeof(float) * np), *m1 = sx_calloc(np, 4),
          *m2 = sx_calloc(np, 4), *best = sx_malloc(sizeof(float) * np), *logit = sx_malloc(sizeof(float) * Ko);
    for (size_t i = 0; i < n; i++)
        for (int f = 0; f < F; f++) Z[i * F + f] = (X[i * F + f] - h->mean[f]) / h->std[f];
    double best_score = -INFINITY;
    memset(best, 0, sizeof(float) * np);
    for (int it = 1; it <= iters; it++) {
        memset(gw, 0, sizeof(float) * np);
        for (size_t i = 0; i < n; i++) {
            const float *z = Z + i * F;
            float mx = -INFINITY;
            for (int k = 0; k < Ko; k++) {
                double s = h->b[k];
                for (int f = 0; f < F; f++) s += (double)h->w[(size_t)k * F + f] * z[f];
                logit[k] = (float)s;
                mx = logit[k] > mx ? logit[k] : mx;
            }
            /* d(loss)/d(logit): softmax - onehot, sigmoid - y, or (pred - y_std) */
            if (kind == HEAD_SOFTMAX) {
                double sum = 0;
                for (int k = 0; k < Ko; k++) { logit[k] = expf(logit[k] - mx); sum += logit[k]; }
                for (int k = 0; k < Ko; k++) logit[k] = (float)(logit[k] / sum) - (k == (int)y[i] ? 1.0f : 0.0f);
            } else if (kind == HEAD_SIGMOID) logit[0] = 1.0f / (1.0f + expf(-logit[0])) - y[i];
            else logit[0] = logit[0] - (y[i] - h->y_mean) / h->y_std;
            for (int k = 0; k < Ko; k++) {
                float d = logit[k] / (float)n;
                float *g = gw + (size_t)k * F;
                for (int f = 0; f < F; f++) g[f] += d * z[f];
                gw[(size_t)Ko * F + k] += d;
            }
        }
        /* AdamW step; decay on weights only */
        float *p = h->w;
        double bc1 = 1 - pow(0.9, it), bc2 = 1 - pow(0.999, it);
        for (size_t j = 0; j < np; j++) {
            float *pj = j < (size_t)Ko * F ? &p[j] : &h->b[j - (size_t)Ko * F];
            if (j < (size_t)Ko * F) *pj *= 1.0f - lr * wd;
            m1[j] = 0.9f * m1[j] + 0.1f * gw[j];
            m2[j] = 0.999f * m2[j] + 0.001f * gw[j] * gw[j];
            *pj -= (float)(lr * (m1[j] / bc1) / (sqrt(m2[j] / bc2) + 1e-8));
        }
        if (it % 10 == 0 || it == iters) {
            double sc = score ? score(h, Xv, yv, nv, ctx) : (double)it;
            if (sc > best_score || isnan(best_score)) {
                best_score = sc;
                memcpy(best, h->w, sizeof(float) * (size_t)Ko * F);
                memcpy(best + (size_t)Ko * F, h->b, sizeof(float) * Ko);
            }
        }
    }
    memcpy(h->w, best, sizeof(float) * (size_t)Ko * F);
    memcpy(h->b, best + (size_t)Ko * F, sizeof(float) * Ko);
    free(Z); free(gw); free(m1); free(m2); free(best); free(logit);
    return 0;
}
