/* test_npy.c: tests for npy.c: round trips, byte-for-byte agreement with
 * files numpy wrote (tests/fixtures/npy, tools/make_npy_fixture.py), and
 * hostile headers that must give an error, never a crash or a huge malloc. */
#include "io/npy.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/npy/"

/* A v1.0 file from a dict literal (padded as numpy does) and raw data. */
static int craft(const char *path, const char *dict, const void *data, size_t n) {
    size_t dl = strlen(dict), total = (10 + dl + 1 + 63) / 64 * 64;
    uint8_t *b = malloc(total + n);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (uint8_t)((total - 10) & 0xFF);
    b[9] = (uint8_t)((total - 10) >> 8);
    memcpy(b + 10, dict, dl);
    memset(b + 10 + dl, ' ', total - 10 - dl);
    b[total - 1] = '\n';
    if (n) memcpy(b + total, data, n);
    int rc = tl_write_file(path, b, total + n);
    free(b);
    return rc;
}

static float kval(int k) { return k * 0.25f - 1.0f; }

/* ------------------------------------------------------------------------ */

TEST(npy_roundtrip_shapes) {
    int64_t shapes[][NPY_MAX_DIMS] = {{2, 3}, {5}, {0}, {2, 0, 3}, {1, 2, 1, 2, 1, 1, 1, 3}, {4, 1}};
    int ndims[] = {2, 1, 0, 3, 8, 2};
    for (int t = 0; t < 6; t++) {
        size_t count = 1;
        for (int i = 0; i < ndims[t]; i++) count *= (size_t)shapes[t][i];
        float *v = malloc(sizeof *v * (count ? count : 1));
        for (size_t i = 0; i < count; i++) v[i] = (float)i * 1.5f - 7.25f;
        const char *p = tl_path("rt.npy");
        sx_err e;
        CHECKF(npy_write_f32(p, v, ndims[t], shapes[t], &e) == 0, "%s", e.msg);
        float *r = NULL;
        int nd = -1;
        int64_t sh[NPY_MAX_DIMS];
        CHECKF(npy_read_f32(p, &r, &nd, sh, &e) == 0, "case %d: %s", t, e.msg);
        CHECK(nd == ndims[t]);
        for (int i = 0; i < nd && i < ndims[t]; i++) CHECK(sh[i] == shapes[t][i]);
        CHECK(r != NULL);
        if (r && count) CHECK(memcmp(r, v, count * sizeof *v) == 0);
        /* header: a multiple of 64 bytes ending in '\n' */
        size_t n;
        uint8_t *b = tl_read_file(p, &n);
        size_t hl = b ? (size_t)b[8] | (size_t)b[9] << 8 : 0;
        CHECK(b && (10 + hl) % 64 == 0 && b[9 + hl] == '\n' && n == 10 + hl + count * 4);
        free(b);
        free(r);
        free(v);
    }
}

/* Our writer's bytes equal numpy's np.save for the same float32 array. */
TEST(npy_write_matches_numpy_bytes) {
    struct { const char *fix; int ndim; int64_t shape[2]; int count; } cases[] = {
        {FIX "f4_2x3.npy", 2, {2, 3}, 6}, {FIX "f4_5.npy", 1, {5, 0}, 5}, {FIX "f4_scalar.npy", 0, {0, 0}, 1}};
    for (int t = 0; t < 3; t++) {
        float v[6];
        for (int k = 0; k < cases[t].count; k++) v[k] = kval(k);
        const char *p = tl_path("ours.npy");
        sx_err e;
        CHECK(npy_write_f32(p, v, cases[t].ndim, cases[t].shape, &e) == 0);
        size_t n1 = 0, n2 = 0;
        uint8_t *a = tl_read_file(p, &n1), *b = tl_read_file(cases[t].fix, &n2);
        CHECKF(a && b && n1 == n2 && !memcmp(a, b, n1), "%s differs from ours", cases[t].fix);
        free(a);
        free(b);
    }
}

TEST(npy_read_numpy_files) {
    struct { const char *fix; int ndim; int64_t shape[3]; int count; } cases[] = {
        {FIX "f8_2x3.npy", 2, {2, 3}, 6},
        {FIX "f8_scalar.npy", 0, {0}, 1},
        {FIX "f4_5.npy", 1, {5}, 5},
        {FIX "f4_2x2x2_v2.npy", 3, {2, 2, 2}, 8}};
    for (int t = 0; t < 4; t++) {
        float *r = NULL;
        int nd = -1;
        int64_t sh[NPY_MAX_DIMS];
        sx_err e;
        CHECKF(npy_read_f32(cases[t].fix, &r, &nd, sh, &e) == 0, "%s", e.msg);
        CHECK(nd == cases[t].ndim);
        for (int i = 0; i < nd && i < cases[t].ndim; i++) CHECK(sh[i] == cases[t].shape[i]);
        for (int k = 0; k < cases[t].count && r; k++) CHECK(r[k] == kval(k));
        free(r);
    }
}

static void expect_read_error(const char *p, const char *what, const char *needle) {
    float *r = (float *)1;
    int nd;
    int64_t sh[NPY_MAX_DIMS];
    sx_err e;
    e.msg[0] = 0;
    CHECKF(npy_read_f32(p, &r, &nd, sh, &e) == -1, "%s: accepted", what);
    CHECK(r == NULL);
    CHECKF(strstr(e.msg, p) != NULL, "%s: message lacks the path: %s", what, e.msg);
    CHECKF(!needle || strstr(e.msg, needle), "%s: message lacks '%s': %s", what, needle, e.msg);
}

TEST(npy_rejects_numpy_files_we_do_not_support) {
    expect_read_error(FIX "f4_2x3_fortran.npy", "fortran_order True", "Fortran");
    expect_read_error(FIX "i4_3.npy", "int32", "'<i4'");
}

TEST(npy_rejects_malformed) {
    float d[8] = {0};
    const char *p = tl_path("bad.npy");

    CHECK(tl_write_file(p, "\x93NUMPX\x01\x00\x10\x00{}", 12) == 0);
    expect_read_error(p, "bad magic", "magic");
    CHECK(tl_write_file(p, "", 0) == 0);
    expect_read_error(p, "empty", NULL);
    CHECK(tl_write_file(p, "\x93NUMPY\x01", 7) == 0);
    expect_read_error(p, "truncated preamble", NULL);
    CHECK(tl_write_file(p, "\x93NUMPY\x01\x00\xff\xff{'descr'", 17) == 0);
    expect_read_error(p, "header longer than the file", "exceeds");
    CHECK(tl_write_file(p, "\x93NUMPY\x02\x00\xff\xff\xff\x7f{", 13) == 0);
    expect_read_error(p, "v2 header length 2 GB", "exceeds");
    CHECK(tl_write_file(p, "\x93NUMPY\x09\x00\x00\x00", 10) == 0);
    expect_read_error(p, "version 9", "version");

    CHECK(craft(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", d, 23) == 0);
    expect_read_error(p, "data one byte short", "mismatch");
    CHECK(craft(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", d, 24) == 0);
    float *r = NULL;
    int nd;
    int64_t sh[NPY_MAX_DIMS];
    sx_err e;
    CHECK(npy_read_f32(p, &r, &nd, sh, &e) == 0 && nd == 2); /* the crafter itself is sound */
    free(r);
    CHECK(craft(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", d, 25) == 0);
    expect_read_error(p, "trailing byte", "mismatch");

    const struct { const char *dict; const char *needle; } bad[] = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (999999999999, 999999999999), }", "overflows"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", "overflows"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", "shape"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }", "mismatch"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", "shape"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }", "shape"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", "shape"},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (6,), }", "Fortran"},
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }", "'>f4'"},
        {"{'descr': '<f4', 'shape': (6,), }", "missing"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'shape': (6,), }", "duplicate"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1}", "unknown key"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,) ", "malformed"},
        {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (6,), }", "fortran_order"},
        {"['descr', '<f4']", "not a dict"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,), } x", "trailing"},
        {"{'descr': '<f4\\'', 'fortran_order': False, 'shape': (6,), }", "descr"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(craft(p, bad[i].dict, d, 24) == 0);
        expect_read_error(p, bad[i].dict, bad[i].needle);
    }
    expect_read_error(tl_path("missing.npy"), "missing file", "No such file");
    expect_read_error(tl_tmpdir(), "directory", NULL);

    /* a numpy file cut short */
    size_t n;
    uint8_t *b = tl_read_file(FIX "f8_2x3.npy", &n);
    CHECK(b && tl_write_file(p, b, n - 1) == 0);
    expect_read_error(p, "truncated data", "mismatch");
    CHECK(b && tl_write_file(p, b, 40) == 0);
    expect_read_error(p, "truncated header", "exceeds");
    free(b);
}

TEST(npy_accepts_numpy_variants) {
    /* double quotes, no trailing comma, Python 2 'L' dims, f8 data */
    double d[4] = {1.5, -2.0, 3.25, 1e300};
    const char *p = tl_path("v.npy");
    CHECK(craft(p, "{\"descr\": \"<f8\", \"shape\": (2L, 2L), \"fortran_order\": False}", d, sizeof d) == 0);
    float *r = NULL;
    int nd;
    int64_t sh[NPY_MAX_DIMS];
    sx_err e;
    CHECKF(npy_read_f32(p, &r, &nd, sh, &e) == 0, "%s", e.msg);
    CHECK(nd == 2 && sh[0] == 2 && sh[1] == 2);
    CHECK(r && r[0] == 1.5f && r[1] == -2.0f && r[2] == 3.25f && isinf(r[3]));
    free(r);
}

TEST(npy_write_errors) {
    float v[1] = {0};
    int64_t sh9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, neg[1] = {-1};
    sx_err e;
    CHECK(npy_write_f32(tl_path("a.npy"), v, 9, sh9, &e) == -1 && strstr(e.msg, "a.npy"));
    CHECK(npy_write_f32(tl_path("b.npy"), v, 1, neg, &e) == -1 && strstr(e.msg, "b.npy"));
    const char *p = tl_path("no/dir/c.npy");
    CHECK(npy_write_f32(p, v, 1, (int64_t[]){1}, &e) == -1);
    CHECKF(strstr(e.msg, p) != NULL, "%s", e.msg);
}

/* Hostile input: bounded, deterministic mutation of numpy's own files. */
TEST(npy_mutated_files_never_crash) {
    const char *fixtures[] = {FIX "f8_2x3.npy", FIX "f4_2x2x2_v2.npy"};
    uint32_t seed = 3;
    int ok = 0, total = 0;
    for (int f = 0; f < 2; f++) {
        size_t n;
        uint8_t *orig = tl_read_file(fixtures[f], &n), *b = malloc(n);
        for (int i = 0; orig && i < 400; i++) {
            memcpy(b, orig, n);
            seed = seed * 1664525u + 1013904223u;
            size_t at = (seed >> 8) % (n < 140 ? n : 140); /* mostly the header */
            seed = seed * 1664525u + 1013904223u;
            b[at] = (uint8_t)(seed >> 24);
            size_t len = i % 4 == 3 ? (seed >> 4) % n : n;
            const char *p = tl_path("m.npy");
            CHECK(tl_write_file(p, b, len) == 0);
            float *r = NULL;
            int nd;
            int64_t sh[NPY_MAX_DIMS];
            sx_err e;
            if (npy_read_f32(p, &r, &nd, sh, &e) == 0) ok++;
            else CHECK(r == NULL && strstr(e.msg, p));
            free(r);
            total++;
        }
        free(b);
        free(orig);
    }
    fprintf(stderr, "    %d of %d mutants read, the rest failed cleanly\n", ok, total);
}
