/* fastmath.h: exp and erf that vectorise (glibc's expf/erff are scalar
 * calls). Eight lanes at a time with GCC vector extensions (AVX2 when built
 * with -march=native), plus scalar versions for loop tails. Accuracy: expf
 * about 2 ulp (Cephes polynomial, Cody-Waite reduction); erff within 1e-6
 * absolute (Abramowitz & Stegun 7.1.26 in float). Checked against libm in
 * tests/nn/test_layers.c. */
#ifndef SKELEX_FASTMATH_H
#define SKELEX_FASTMATH_H
#include <stdint.h>
#include <string.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

typedef float v8sf __attribute__((vector_size(32)));
typedef int32_t v8si __attribute__((vector_size(32)));

/* Lane-wise m ? a : b, with m from a vector comparison (all ones or zero). */
static inline v8sf sx_select8(v8si m, v8sf a, v8sf b) { return (v8sf)(((v8si)a & m) | ((v8si)b & ~m)); }

#ifdef __AVX__
/* max and min return b when either is NaN. One instruction each with AVX;
 * 1/x from the 12-bit estimate and one Newton step (relative error below
 * 3e-7), instead of a slow division. */
static inline v8sf sx_max8(v8sf a, v8sf b) { return (v8sf)_mm256_max_ps((__m256)a, (__m256)b); }
static inline v8sf sx_min8(v8sf a, v8sf b) { return (v8sf)_mm256_min_ps((__m256)a, (__m256)b); }
static inline v8sf sx_rcp8(v8sf x) {
    v8sf r = (v8sf)_mm256_rcp_ps((__m256)x);
    return r * (2.0f - x * r);
}
#else
static inline v8sf sx_max8(v8sf a, v8sf b) { return sx_select8(a > b, a, b); }
static inline v8sf sx_min8(v8sf a, v8sf b) { return sx_select8(a < b, a, b); }
static inline v8sf sx_rcp8(v8sf x) { return 1.0f / x; }
#endif

static inline v8sf sx_exp8(v8sf x) {
    const v8sf magic = (v8sf){0} + 12582912.0f;             // 1.5 * 2^23: adding it rounds to an integer
    x = sx_min8((v8sf){0} + 88.0f, sx_max8((v8sf){0} - 87.0f, x));  // a NaN x stays NaN
    v8sf t = x * 1.44269504088896341f + magic;              // magic + n, n = round(x / ln 2)
    v8sf n = t - magic;
    v8sf r = x - n * 0.693359375f + n * 2.12194440e-4f;    // x - n ln2, in two parts
    v8sf p = (v8sf){0} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    v8si e = ((v8si)t - (v8si)magic + 127) << 23;          // 2^n as bits (n sits in t's low mantissa bits)
    return p * (v8sf)e;
}

/* erf(x), and exp(-x^2) (which it needs anyway) in *expmx2. */
static inline v8sf sx_erf8_exp(v8sf x, v8sf *expmx2) {
    v8si sign = (v8si)x & (int32_t)0x80000000;
    v8sf a = (v8sf)((v8si)x & 0x7fffffff);
    v8sf t = sx_rcp8(1.0f + 0.3275911f * a);
    v8sf y = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    *expmx2 = sx_exp8(-a * a);
    v8sf e = 1.0f - y * *expmx2;
    return (v8sf)((v8si)e | sign);
}

static inline v8sf sx_erf8(v8sf x) {
    v8sf unused;
    return sx_erf8_exp(x, &unused);
}

static inline float sx_expf(float x) {
    v8sf v = (v8sf){0} + x;
    return sx_exp8(v)[0];
}

static inline float sx_erff(float x) {
    v8sf v = (v8sf){0} + x;
    return sx_erf8(v)[0];
}

/* Load/store 8 floats at any alignment. */
static inline v8sf sx_load8(const float *p) { v8sf v; memcpy(&v, p, sizeof v); return v; }
static inline void sx_store8(float *p, v8sf v) { memcpy(p, &v, sizeof v); }

#endif
