/* test_hostile.c: hostile input for every parser that reads a file's bytes:
 * the image loader (PNG, JPEG, DICOM), safetensors, npy, config.json and
 * list files.
 *
 * The contract checked everywhere: the call returns a usable result, or -1
 * with one line naming the file and the reason; no crash, hang, sanitizer
 * report or allocation sized by unchecked file bytes. Truncated and
 * bit-flipped variants of valid fixtures (DICOM made by DCMTK's tools, PNG
 * by libpng, JPEG by libjpeg) go through the loader in-process, under ASan
 * and UBSan. The regression tests at the end replay what the libFuzzer
 * harnesses in fuzz/ found, each reduced to the smallest input that showed
 * it, with the fix named. Fixtures: DICOM uncompressed (16-bit with window
 * and rescale, signed, 8-bit MONOCHROME1 with a VOI LUT, multi-frame, bare
 * dataset), JPEG lossless, JPEG-LS, RLE, JPEG baseline, img2dcm's JPEG
 * secondary capture; PNG 8 and 16-bit; JPEG. */
#include "nn/config.h"
#include "data/data.h"
#include "dicom_fixtures.h"
#include "io/image.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "testlib.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

/* An error message keeps the contract: one line, starting with prefix. */
static int good_error(const sx_err *e, const char *prefix) {
    size_t len = strnlen(e->msg, sizeof e->msg);
    return len > 0 && len < sizeof e->msg && !memchr(e->msg, '\n', len) &&
           (!prefix || !strncmp(e->msg, prefix, strlen(prefix)));
}

/* Load path; either a sane image or a good error. Returns 1 when loaded. */
static int load_keeps_contract(const char *path, int *broken) {
    gray_image im;
    sx_err e, w;
    e.msg[0] = 0;
    image_load_opts o = {.warning = &w, .max_pixels = (uint64_t)1 << 22};
    if (image_load_gray_opts(path, &o, &im, &e) == 0) {
        int ok = im.data && im.width > 0 && im.height > 0 && (uint64_t)im.width * im.height <= o.max_pixels;
        for (size_t i = 0; ok && i < (size_t)im.width * im.height; i++) ok = isfinite(im.data[i]);
        if (w.msg[0] && !good_error(&w, path)) ok = 0;
        if (!ok) { (*broken)++; fprintf(stderr, "    %s: loaded but the image is not sane\n", path); }
        gray_image_free(&im);
        return 1;
    }
    if (!good_error(&e, path) || im.data) {
        (*broken)++;
        fprintf(stderr, "    %s: bad error '%s'\n", path, e.msg);
    }
    return 0;
}

/* Truncations and bit flips of one valid file; counts of variants that
 * loaded and that failed cleanly go to *loaded / *failed. */
static void mangle(const char *name, const uint8_t *orig, size_t n, int *loaded, int *failed, int *broken) {
    char p[600];
    snprintf(p, sizeof p, "%s", tl_path("mangled"));
    uint8_t *b = malloc(n);
    uint32_t r = 2463534242u;
    size_t cuts[40];
    int nc = 0;
    for (int k = 0; k < 28; k++) cuts[nc++] = n * (size_t)k / 28;
    size_t fixed[] = {1, 4, 8, 127, 128, 131, 132, 133, 140, n > 1 ? n - 1 : 0, n > 2 ? n - 2 : 0, n > 8 ? n - 8 : 0};
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
        if (fixed[k] < n) cuts[nc++] = fixed[k];
    for (int k = 0; k < nc; k++) {
        if (tl_write_file(p, orig, cuts[k])) continue;
        int before = *broken;
        if (load_keeps_contract(p, broken)) (*loaded)++; else (*failed)++;
        if (*broken != before) fprintf(stderr, "    (%s cut to %zu bytes)\n", name, cuts[k]);
    }
    for (int k = 0; k < 72; k++) {
        memcpy(b, orig, n);
        r ^= r << 13; r ^= r >> 17; r ^= r << 5;
        size_t at = k < 40 ? r % (n < 512 ? n : 512) : r % n; /* headers are where parsers branch */
        if (k % 9 == 8) { /* a run of 0xFF or 0x00: lengths and sizes at their extremes */
            for (size_t i = at; i < at + 8 && i < n; i++) b[i] = (k & 1) ? 0xFF : 0x00;
        } else {
            b[at] ^= (uint8_t)(1u << (r >> 29));
        }
        if (tl_write_file(p, b, n)) continue;
        int before = *broken;
        if (load_keeps_contract(p, broken)) (*loaded)++; else (*failed)++;
        if (*broken != before) fprintf(stderr, "    (%s, variant %d at byte %zu)\n", name, k, at);
    }
    free(b);
}

static void mangle_file(const char *path, int *loaded, int *failed, int *broken) {
    size_t n;
    uint8_t *orig = tl_read_file(path, &n);
    CHECKF(orig && n > 0, "fixture %s missing", path);
    if (!orig || !n) { free(orig); return; }
    int before = *broken;
    CHECKF(load_keeps_contract(path, broken) == 1, "fixture %s does not load", path);
    if (*broken == before) mangle(path, orig, n, loaded, failed, broken);
    free(orig);
}

/* ------------------------------------------------------------------------ */
/* Truncated and bit-flipped images                                         */

#define FW 40
#define FH 32

TEST(hostile_png_jpeg_mangled) {
    uint8_t g[FW * FH];
    uint16_t g16[FW * FH];
    for (int i = 0; i < FW * FH; i++) { g[i] = (uint8_t)(i * 7 % 251); g16[i] = (uint16_t)(i * 977); }
    /* PNG by libpng's simplified API: 8-bit and 16-bit grey */
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = FW;
    pi.height = FH;
    pi.format = PNG_FORMAT_GRAY;
    CHECK(png_image_write_to_file(&pi, tl_path("g8.png"), 0, g, 0, NULL));
    pi.format = PNG_FORMAT_LINEAR_Y;
    CHECK(png_image_write_to_file(&pi, tl_path("g16.png"), 0, g16, 0, NULL));
    /* JPEG by libjpeg */
    CHECK(tl_write_jpeg(tl_path("g.jpg"), &(tl_jpeg){FW, FH, 1, 75, 0, 0, g, NULL, 0}) == 0); /* 75: libjpeg's default */

    int loaded = 0, failed = 0, broken = 0;
    mangle_file(tl_path("g8.png"), &loaded, &failed, &broken);
    mangle_file(tl_path("g16.png"), &loaded, &failed, &broken);
    mangle_file(tl_path("g.jpg"), &loaded, &failed, &broken);
    CHECKF(broken == 0, "%d variants broke the contract", broken);
    CHECK(failed > 0 && loaded > 0);
}

TEST(hostile_dicom_mangled) {
    if (!dcmfx_have_tools()) TEST_SKIP("DCMTK tools missing (bash scripts/deps.sh)");
    int32_t px[2 * FW * FH];
    for (int fr = 0; fr < 2; fr++) dcmfx_phantom(FW, FH, fr, 0, 4000, px + fr * FW * FH);
    uint16_t lut[256];
    for (int i = 0; i < 256; i++) lut[i] = (uint16_t)(i * 200);
    char base[600];
    snprintf(base, sizeof base, "%s", tl_path("dx16.dcm"));
    char b8[600];
    snprintf(b8, sizeof b8, "%s", tl_path("m1_8.dcm"));
    char mf[600];
    snprintf(mf, sizeof mf, "%s", tl_path("multi.dcm"));
    dcm_spec s = {.w = FW, .h = FH, .bits_alloc = 16, .bits_stored = 12, .px = px,
                  .window_center = "1800", .window_width = "2000", .has_rescale = 1, .slope = 1, .intercept = -10};
    CHECK(dcmfx_write(base, &s) == 0);
    int32_t px8[FW * FH];
    dcmfx_phantom(FW, FH, 0, 0, 255, px8);
    dcm_spec s8 = {.w = FW, .h = FH, .bits_alloc = 8, .px = px8, .photometric = "MONOCHROME1",
                   .lut_entries = 256, .lut = lut};
    CHECK(dcmfx_write(b8, &s8) == 0);
    dcm_spec m = s;
    m.frames = 2;
    m.sop = "MultiframeGrayscaleWordSecondaryCaptureImageStorage";
    CHECK(dcmfx_write(mf, &m) == 0);
    CHECK(dcmfx_run("dcmcjpeg '%s' '%s'", base, tl_path("jl.dcm")) == 0);
    CHECK(dcmfx_run("dcmcjpls '%s' '%s'", base, tl_path("ls.dcm")) == 0);
    CHECK(dcmfx_run("dcmcrle '%s' '%s'", mf, tl_path("rle_multi.dcm")) == 0);
    CHECK(dcmfx_run("dcmcjpeg +eb '%s' '%s'", b8, tl_path("baseline.dcm")) == 0);
    CHECK(dcmfx_run("dcmconv -F +ti '%s' '%s'", base, tl_path("bare.dcm")) == 0);
    int32_t pxs[FW * FH];
    dcmfx_phantom(FW, FH, 0, -3000, 3000, pxs);
    dcm_spec ss = {.w = FW, .h = FH, .bits_alloc = 16, .bits_stored = 16, .is_signed = 1, .px = pxs};
    CHECK(dcmfx_write(tl_path("signed.dcm"), &ss) == 0);
    char sc[600];
    snprintf(sc, sizeof sc, "%s", tl_path("sc.dcm"));
    CHECK(dcmfx_run("dcmj2pnm +oj '%s' '%s.jpg' && img2dcm '%s.jpg' '%s'", b8, b8, b8, sc) == 0);
    static const char *const names[] = {"dx16.dcm", "m1_8.dcm", "multi.dcm", "jl.dcm", "ls.dcm",
                                        "rle_multi.dcm", "baseline.dcm", "bare.dcm", "signed.dcm", "sc.dcm"};
    int loaded = 0, failed = 0, broken = 0;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) mangle_file(tl_path(names[k]), &loaded, &failed, &broken);
    CHECKF(broken == 0, "%d variants broke the contract", broken);
    CHECK(failed > 0 && loaded > 0);
}

/* ------------------------------------------------------------------------ */
/* Limits before allocation                                                 */

TEST(hostile_file_size_limit) {
    /* a sparse file just over 1 GiB behind a PNG signature, and one behind a
     * DICOM preamble: refused from its size, nothing read or allocated */
    static const char *const heads[] = {"\x89PNG\r\n\x1a\n", NULL};
    for (int k = 0; k < 2; k++) {
        char p[600];
        snprintf(p, sizeof p, "%s", tl_path(k ? "huge.dcm" : "huge.png"));
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        CHECK(fd >= 0);
        uint8_t head[132] = {0};
        if (heads[k]) memcpy(head, heads[k], 8);
        else memcpy(head + 128, "DICM", 4);
        CHECK(write(fd, head, sizeof head) == (ssize_t)sizeof head);
        CHECK(ftruncate(fd, ((off_t)1 << 30) + 1) == 0);
        close(fd);
        gray_image im;
        sx_err e;
        CHECK(image_load_gray(p, &im, &e) == -1);
        CHECKF(strstr(e.msg, p) && strstr(e.msg, "too large"), "%s", e.msg);
        unlink(p);
    }
}

TEST(hostile_jpeg_huge_dimensions) {
    /* a real 8x8 JPEG whose SOF0 is patched to 60000 x 60000 */
    uint8_t g[64] = {0};
    unsigned char *buf = NULL;
    unsigned long len = 0;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &buf, &len);
    c.image_width = 8;
    c.image_height = 8;
    c.input_components = 1;
    c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_start_compress(&c, TRUE);
    for (int y = 0; y < 8; y++) {
        JSAMPROW row = g + y * 8;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    int patched = 0;
    for (unsigned long i = 0; i + 9 < len; i++)
        if (buf[i] == 0xFF && buf[i + 1] == 0xC0) {
            buf[i + 5] = 0xEA; buf[i + 6] = 0x60; /* height 60000 */
            buf[i + 7] = 0xEA; buf[i + 8] = 0x60; /* width 60000 */
            patched = 1;
            break;
        }
    CHECK(patched);
    char p[600];
    snprintf(p, sizeof p, "%s", tl_path("wide.jpg"));
    CHECK(tl_write_file(p, buf, len) == 0);
    free(buf);
    gray_image im;
    sx_err e;
    CHECK(image_load_gray(p, &im, &e) == -1);
    CHECKF(strstr(e.msg, p) && strstr(e.msg, "too large"), "%s", e.msg);
}

TEST(hostile_lower_pixel_bound_option) {
    /* max_pixels lowers the bound (the fuzzers run with 4 Mpixel) */
    uint8_t g[64 * 64] = {0};
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = 64;
    pi.height = 64;
    pi.format = PNG_FORMAT_GRAY;
    char p[600];
    snprintf(p, sizeof p, "%s", tl_path("64.png"));
    CHECK(png_image_write_to_file(&pi, p, 0, g, 0, NULL));
    gray_image im;
    sx_err e;
    CHECK(image_load_gray_opts(p, &(image_load_opts){.max_pixels = 4095}, &im, &e) == -1 && strstr(e.msg, "too large"));
    CHECK(image_load_gray_opts(p, &(image_load_opts){.max_pixels = 4096}, &im, &e) == 0);
    gray_image_free(&im);
}

/* ------------------------------------------------------------------------ */
/* Regressions: what the fuzzers found (fuzz/, `make fuzz`)                 */

/* fuzz_image: DCMTK 3.6.7's RLE decoder read past the fragment when a
 * segment offset pointed outside it (SEGV in DcmRLEDecoder::decompress).
 * Fixed in dicom_shim.cpp: every RLE fragment header is checked first. */
TEST(hostile_regress_rle_segment_offset_outside_fragment) {
    if (!dcmfx_have_tools()) TEST_SKIP("DCMTK tools missing (bash scripts/deps.sh)");
    int32_t px[FW * FH];
    dcmfx_phantom(FW, FH, 0, 0, 4000, px);
    dcm_spec s = {.w = FW, .h = FH, .bits_alloc = 16, .bits_stored = 12, .px = px};
    char plain[600], rle[600], bad[600];
    snprintf(plain, sizeof plain, "%s", tl_path("plain.dcm"));
    snprintf(rle, sizeof rle, "%s", tl_path("rle.dcm"));
    snprintf(bad, sizeof bad, "%s", tl_path("rle_bad.dcm"));
    CHECK(dcmfx_write(plain, &s) == 0);
    CHECK(dcmfx_run("dcmcrle '%s' '%s'", plain, rle) == 0);
    size_t n;
    uint8_t *b = tl_read_file(rle, &n);
    static const uint8_t head[8] = {2, 0, 0, 0, 64, 0, 0, 0}; /* 2 segments, the first at 64 */
    uint8_t *h = NULL;
    for (size_t i = 0; b && i + 64 <= n && !h; i++)
        if (!memcmp(b + i, head, 8)) h = b + i;
    CHECK(h != NULL);
    sx_err e;
    gray_image im;
    static const uint32_t offs[] = {0x2d00010cu, 0xFFFFFFFFu, 64, 0};
    for (size_t k = 0; h && k < sizeof offs / sizeof offs[0]; k++) {
        for (int j = 0; j < 4; j++) h[8 + j] = (uint8_t)(offs[k] >> (8 * j)); /* segment 2 */
        CHECK(tl_write_file(bad, b, n) == 0);
        CHECK(image_load_gray(bad, &im, &e) == -1);
        CHECKF(good_error(&e, bad) && strstr(e.msg, "RLE"), "%s", e.msg);
    }
    if (h) { h[0] = 3; CHECK(tl_write_file(bad, b, n) == 0); } /* wrong segment count */
    CHECK(image_load_gray(bad, &im, &e) == -1 && strstr(e.msg, "segments"));
    free(b);
    CHECK(image_load_gray(rle, &im, &e) == 0); /* the untouched file still loads */
    gray_image_free(&im);
}

/* fuzz_config: "patch_size": 3.3e101 was converted to int before the range
 * check (UBSan: float-cast-overflow). Fixed in config.c (json_int). */
TEST(hostile_regress_config_huge_integer) {
    static const char *const bad[] = {
        "{\"image_size\": [64, 64], \"patch_size\": 333333333333333333333333333333333333333316}",
        "{\"hidden_size\": -1e300}", "{\"image_size\": [1e20, 1e20]}", "{\"num_channels\": 2147483648}",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        mae_config c;
        sx_err e;
        CHECK(config_parse_json(bad[k], &c, &e) == -1);
        CHECKF(good_error(&e, "config:") && strstr(e.msg, "integer"), "%s", e.msg);
    }
}

/* fuzz_safetensors, fuzz_npy: a dtype (or tensor name) holding newlines
 * was quoted into the error, which then ran over several lines. Fixed in
 * common.c: sx_fail turns control characters into '?'. */
TEST(hostile_regress_errors_stay_one_line) {
    const char *p = tl_path("nl.safetensors");
    static const char hdr[] = "{\"h\": {\"dtype\": \"\n\nF16\", \"shape\": [1], \"data_offsets\": [0, 2]}}";
    uint8_t buf[8 + sizeof hdr + 2] = {0};
    buf[0] = (uint8_t)(sizeof hdr - 1);
    memcpy(buf + 8, hdr, sizeof hdr - 1);
    CHECK(tl_write_file(p, buf, 8 + sizeof hdr - 1 + 2) == 0);
    st_file f;
    sx_err e;
    CHECK(st_open(p, &f, &e) == -1);
    CHECKF(good_error(&e, p) && strstr(e.msg, "unknown dtype '??F16'"), "%s", e.msg);

    const char *q = tl_path("nl.npy");
    char npy[128] = "\x93NUMPY\x01\x00";
    const char *dict = "{'descr': '\nf4', 'fortran_order': False, 'shape': (1,), }";
    size_t dl = strlen(dict);
    npy[8] = (char)dl;
    memcpy(npy + 10, dict, dl);
    memset(npy + 10 + dl, 0, 4);
    CHECK(tl_write_file(q, npy, 10 + dl + 4) == 0);
    float *v;
    int nd;
    int64_t shape[NPY_MAX_DIMS];
    CHECK(npy_read_f32(q, &v, &nd, shape, &e) == -1);
    CHECKF(good_error(&e, q) && strstr(e.msg, "'?f4'"), "%s", e.msg);
}

/* Found in review (then by fuzz_safetensors): a second "__metadata__"
 * replaced the key/value arrays while the count went on, writing past
 * them. Fixed in safetensors.c: a repeated __metadata__ is an error. */
TEST(hostile_regress_safetensors_metadata_twice) {
    const char *p = tl_path("meta2.safetensors");
    static const char hdr[] = "{\"__metadata__\": {\"a\": \"1\", \"b\": \"2\"}, \"__metadata__\": {\"c\": \"3\"}}";
    uint8_t buf[8 + sizeof hdr] = {0};
    buf[0] = (uint8_t)(sizeof hdr - 1);
    memcpy(buf + 8, hdr, sizeof hdr - 1);
    CHECK(tl_write_file(p, buf, 8 + sizeof hdr - 1) == 0);
    st_file f;
    sx_err e;
    CHECK(st_open(p, &f, &e) == -1);
    CHECKF(good_error(&e, p) && strstr(e.msg, "twice"), "%s", e.msg);
}

/* The list-file parser: NUL bytes, a path with control characters, very
 * long lines, no trailing newline; errors name the list, one line. */
TEST(hostile_list_files) {
    const char *p = tl_path("list.txt");
    char *big = malloc(200000);
    memset(big, 'a', 199998);
    big[199998] = '\n';
    big[199999] = 0;
    CHECK(tl_write_file(p, big, 199999) == 0);
    dataset ds;
    dataset_init(&ds);
    sx_err e;
    CHECK(dataset_add(&ds, p, &e) == 0 && dataset_count(&ds) == 1);
    dataset_free(&ds);
    free(big);
    static const char bin[] = "a.png\nb\0c.png\n";
    CHECK(tl_write_file(p, bin, sizeof bin - 1) == 0);
    dataset_init(&ds);
    CHECK(dataset_add(&ds, p, &e) == -1 && good_error(&e, p) && dataset_count(&ds) == 0);
    dataset_free(&ds);
    CHECK(tl_write_file(p, "# only\n\n   \n", 12) == 0);
    dataset_init(&ds);
    CHECK(dataset_add(&ds, p, &e) == -1 && good_error(&e, p));
    dataset_free(&ds);
}
