/* test_probe.c: the linear head learns separable classes and a linear
 * target, and keeps its best validation iteration. */
#include "adapt/probe.h"
#include "core/rng.h"
#include "testlib.h"
#include <stdlib.h>
#include <string.h>

static double neg_error_rate(const linear_head *h, const float *X, const float *y, size_t n, void *ctx) {
    (void)ctx;
    float *p = malloc(sizeof(float) * n * h->K);
    linear_head_predict(h, X, n, p);
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        int best = 0;
        for (int k = 1; k < h->K; k++) if (p[i * h->K + k] > p[i * h->K + best]) best = k;
        if (h->kind == HEAD_SIGMOID) best = p[i] > 0.5f;
        wrong += best != (int)y[i];
    }
    free(p);
    return -(double)wrong / (double)n;
}

TEST(test_linear_head_learns) {
    enum { N = 300, F = 6 };
    sx_rng r;
    rng_seed(&r, 4);
    float X[N * F], y[N], yb[N], yr[N];
    for (int i = 0; i < N; i++) {
        int c = i % 3;
        for (int f = 0; f < F; f++) X[i * F + f] = 10.0f + rng_normal(&r) + (f == c ? 4.0f : 0.0f);  // offset: standardisation matters
        y[i] = (float)c;
        yb[i] = (float)(c == 0);
        yr[i] = 3.0f * X[i * F] - 2.0f * X[i * F + 1] + 0.1f * rng_normal(&r);
    }
    linear_head h;
    CHECK(linear_head_train(&h, HEAD_SOFTMAX, 3, X, y, N, F, X, y, N, neg_error_rate, NULL, 200, 0.05f, 1e-4f) == 0);
    CHECKF(neg_error_rate(&h, X, y, N, NULL) > -0.05, "multiclass error %.3f", -neg_error_rate(&h, X, y, N, NULL));
    float p[N * 3];
    linear_head_predict(&h, X, 1, p);
    CHECK_NEAR(p[0] + p[1] + p[2], 1.0, 1e-5);
    linear_head_free(&h);
    CHECK(linear_head_train(&h, HEAD_SIGMOID, 2, X, yb, N, F, X, yb, N, neg_error_rate, NULL, 200, 0.05f, 1e-4f) == 0);
    CHECKF(neg_error_rate(&h, X, yb, N, NULL) > -0.05, "binary error %.3f", -neg_error_rate(&h, X, yb, N, NULL));
    linear_head_free(&h);
    CHECK(linear_head_train(&h, HEAD_LINEAR, 1, X, yr, N, F, NULL, NULL, 0, NULL, NULL, 400, 0.05f, 0.0f) == 0);
    float v[N];
    linear_head_predict(&h, X, N, v);
    double mae = 0;
    for (int i = 0; i < N; i++) mae += fabs(v[i] - yr[i]) / N;
    CHECKF(mae < 0.3, "regression MAE %.3f", mae);
    linear_head_free(&h);
}
