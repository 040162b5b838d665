/* fastmath.h: exp and erf written so that GCC vectorises loops calling them
 * (glibc's expf/erff are scalar calls). Accuracy: expf about 2 ulp (Cephes
 * polynomial with Cody-Waite reduction); erff within 1e-6 absolute in float arithmetic
 * (Abramowitz & Stegun 7.1.26). Checked against libm in tests/test_layers.c. */
#ifndef SKELEX_FASTMATH_H
#define SKELEX_FASTMATH_H
#include <stdint.h>
#include <string.h>

static inline float sx_expf(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;   // x - n ln2, in two parts
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;               // 2^n
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

static inline float sx_erff(float x) {
    float a = x < 0.0f ? -x : x;
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float y = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    float e = 1.0f - y * sx_expf(-a * a);
    return x < 0.0f ? -e : e;
}

#endif
