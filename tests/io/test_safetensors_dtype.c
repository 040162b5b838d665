/* test_safetensors_dtype.c: writing F16 and BF16 (what models/ ships):
 * the f32 -> f16 rounding against the f16 -> f32 decoder, and files that
 * read back to the rounded values. */
#include "io/safetensors.h"
#include "testlib.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static float bits_f32(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }

TEST(f16_round_trip_every_value) {
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;   /* NaNs: checked below */
        uint16_t back = sx_f32_to_f16(sx_f16_to_f32((uint16_t)h));
        if (back != h && bad++ < 5) fprintf(stderr, "    f16 %04x -> %g -> %04x\n", h, (double)sx_f16_to_f32((uint16_t)h), back);
    }
    CHECKF(bad == 0, "%d of 63488 f16 values did not survive f16 -> f32 -> f16", bad);
    CHECK(isnan(sx_f16_to_f32(sx_f32_to_f16(NAN))));
}

TEST(f16_rounds_to_nearest_even) {
    CHECK(sx_f32_to_f16(1.0f) == 0x3c00);
    CHECK(sx_f32_to_f16(-2.0f) == 0xc000);
    CHECK(sx_f32_to_f16(0.1f) == 0x2e66);
    CHECK(sx_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(sx_f32_to_f16(65519.0f) == 0x7bff);        /* below the midpoint to 65536 */
    CHECK(sx_f32_to_f16(65520.0f) == 0x7c00);        /* the midpoint, odd mantissa: up, to inf */
    CHECK(sx_f32_to_f16(1e9f) == 0x7c00);
    CHECK(sx_f32_to_f16(-INFINITY) == 0xfc00);
    CHECK(sx_f32_to_f16(ldexpf(1, -24)) == 0x0001);  /* smallest subnormal */
    CHECK(sx_f32_to_f16(ldexpf(1, -25)) == 0x0000);  /* exactly half of it: ties to even (0) */
    CHECK(sx_f32_to_f16(ldexpf(1.5f, -25)) == 0x0001);
    CHECK(sx_f32_to_f16(ldexpf(3, -25)) == 0x0002);  /* 1.5 subnormal steps: ties to even (2) */
    CHECK(sx_f32_to_f16(-ldexpf(1, -14)) == 0x8400); /* smallest normal */
    CHECK(sx_f32_to_f16(bits_f32(0x3f801000u)) == 0x3c00);  /* 1 + 2^-11: tie, even stays */
    CHECK(sx_f32_to_f16(bits_f32(0x3f803000u)) == 0x3c02);  /* 1 + 3*2^-11: tie, odd rounds up */
    CHECK(sx_f32_to_f16(bits_f32(0x3f801001u)) == 0x3c01);  /* just above the tie */
    // every f32 in a sweep lands on one of the two neighbouring f16 values, the nearer one
    for (int i = 0; i < 20000; i++) {
        float v = ldexpf((float)(i * 2654435761u % 1000003) / 1000003.0f * 2 - 1, i % 30 - 20);
        float r = sx_f16_to_f32(sx_f32_to_f16(v));
        float ulp = fabsf(v) < ldexpf(1, -14) ? ldexpf(1, -24) : ldexpf(1, (int)floorf(log2f(fabsf(v))) - 10);
        if (!(fabsf(r - v) <= ulp / 2 * 1.0001f)) { CHECKF(0, "%g -> %g (ulp %g)", (double)v, (double)r, (double)ulp); break; }
    }
}

TEST(safetensors_write_f16_bf16_read_back) {
    float w[6] = {1.0f, -0.333333f, 1e-3f, 123.456f, -7e-6f, 0};
    st_entry e[2] = {{"a.weight", w, 2, {2, 3}}, {"b.bias", w + 3, 1, {3}}};
    const char *mk[1] = {"format"}, *mv[1] = {"pt"};
    static const struct { st_dtype dt; const char *name; } kinds[] = {{ST_F16, "F16"}, {ST_BF16, "BF16"}, {ST_F32, "F32"}};
    for (int k = 0; k < 3; k++) {
        const char *path = tl_path("h.safetensors");
        sx_err err;
        CHECKF(st_write(path, e, 2, kinds[k].dt, mk, mv, 1, &err) == 0, "%s", err.msg);
        st_file f;
        CHECKF(st_open(path, &f, &err) == 0, "%s", err.msg);
        if (f.map == NULL) continue;
        CHECK(f.n == 2);
        CHECKF(f.size == f.data_start + 9 * (kinds[k].dt == ST_F32 ? 4 : 2), "%zu vs %zu", f.size, f.data_start);
        const char *fmt = st_metadata(&f, "format");
        CHECK(fmt && !strcmp(fmt, "pt"));
        const st_tensor *t = st_find(&f, "a.weight");
        CHECK(t && !strcmp(t->dtype_name, kinds[k].name) && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
        float got[3];
        for (int q = 0; q < 2; q++) {
            const st_tensor *u = st_find(&f, q ? "b.bias" : "a.weight");
            float all[6];
            CHECK(u && st_read_f32(&f, u, all, &err) == 0);
            for (size_t i = 0; u && i < u->numel; i++) {
                float v = w[q * 3 + i];
                float want = kinds[k].dt == ST_F16 ? sx_f16_to_f32(sx_f32_to_f16(v))
                           : kinds[k].dt == ST_BF16 ? sx_bf16_to_f32(sx_f32_to_bf16(v)) : v;
                CHECKF(all[i] == want, "%s %d/%zu: %g != %g", kinds[k].name, q, i, (double)all[i], (double)want);
                if (!q && i < 3) got[i] = all[i];
            }
        }
        CHECK(kinds[k].dt == ST_F32 || got[1] != w[1]);  /* -1/3 is not representable in 16 bits */
        st_close(&f);
    }
    sx_err err;
    CHECK(st_write(tl_path("x.safetensors"), e, 2, ST_F64, NULL, NULL, 0, &err) != 0);
}
