/* test_dicom.c: DICOM ingestion (dicom_shim.cpp through image_load_gray)
 * and `skelex preprocess`, end to end.
 *
 * Fixtures are made here, at test time, by DCMTK's command-line tools
 * (dump2dcm from a text dump and a raw pixel file, then dcmcjpeg, dcmcjpls,
 * dcmcrle, dcmconv, img2dcm), never by skelex; the expected pixels are
 * computed by hand from the DICOM standard (dcmfx_expected_u8). Covered:
 * 16-bit MONOCHROME2 with windows (the first is used), MONOCHROME1, rescale
 * slope/intercept, signed pixels, a VOI LUT sequence, 8-bit secondary
 * capture, every compressed syntax DCMTK writes (JPEG lossless, JPEG-LS,
 * RLE, JPEG baseline, img2dcm's JPEG), multi-frame, a dataset without
 * preamble, each error the loader promises, and privacy (no patient value
 * in any output). Skips when the DCMTK tools are missing. */
#include "data/data.h"
#include "dicom_fixtures.h"
#include "io/image.h"
#include "testlib.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>


/* ------------------------------------------------------------------------ */
/* Fixtures (declared in dicom_fixtures.h)                                  */

int dcmfx_run(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    strcpy(cmd, "{ ");
    vsnprintf(cmd + 2, sizeof cmd - 40, fmt, ap);
    va_end(ap);
    strcat(cmd, "; } >/dev/null 2>&1");
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int dcmfx_have_tools(void) {
    static int have = -1;
    if (have < 0)
        have = dcmfx_run("command -v dump2dcm && command -v dcmcjpeg && command -v dcmcjpls && "
                         "command -v dcmcrle && command -v dcmconv && command -v img2dcm") == 0;
    return have;
}

void dcmfx_phantom(int w, int h, int frame, int lo, int hi, int32_t *px) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double t = 0.5 * x / (w - 1) + 0.2 * y / (h - 1);          /* soft tissue */
            if (abs(2 * x - w) < w / 4) t = 0.95;                       /* bone */
            int dx = x - w / 4, dy = y - h / 4;
            if (dx * dx + dy * dy < (h / 6) * (h / 6)) t = 0.02;        /* hole */
            if (frame > 0) t = 1.0 - t / (frame + 1);                   /* other frames differ */
            px[(size_t)y * w + x] = lo + (int32_t)(t * (hi - lo) + 0.5);
        }
}

/* The raw pixel file dump2dcm reads with "=file": little-endian words or bytes. */
static int write_raw(const char *path, const dcm_spec *s) {
    size_t n = (size_t)s->w * s->h * (s->frames > 0 ? s->frames : 1);
    int bytes = s->bits_alloc == 8 ? 1 : 2;
    uint8_t *buf = malloc(n * bytes + 1);
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)s->px[i];
        if (bytes == 1) buf[i] = (uint8_t)v;
        else { buf[2 * i] = (uint8_t)v; buf[2 * i + 1] = (uint8_t)(v >> 8); }
    }
    int rc = tl_write_file(path, buf, n * bytes);
    free(buf);
    return rc;
}

int dcmfx_write(const char *path, const dcm_spec *s) {
    char raw[600], dump[600];
    snprintf(raw, sizeof raw, "%s.raw", path);
    snprintf(dump, sizeof dump, "%s.dump", path);
    if (write_raw(raw, s)) return -1;
    FILE *f = fopen(dump, "w");
    if (!f) return -1;
    int bs = s->bits_stored ? s->bits_stored : s->bits_alloc;
    const char *sop = s->sop ? s->sop : "DigitalXRayImageStorageForPresentation";
    fprintf(f, "(0008,0016) UI =%s\n(0008,0018) UI [1.2.826.0.1.3680043.9.7777.%d]\n", sop, s->w * 1000 + s->h);
    fprintf(f, "(0008,0060) CS [%s]\n", strstr(sop, "Computed") ? "CR" : strstr(sop, "XRay") ? "DX" : "OT");
    if (s->extra) fputs(s->extra, f);
    fprintf(f, "(0028,0002) US 1\n(0028,0004) CS [%s]\n", s->photometric ? s->photometric : "MONOCHROME2");
    if (s->frames > 0) fprintf(f, "(0028,0008) IS [%d]\n", s->frames);
    fprintf(f, "(0028,0010) US %d\n(0028,0011) US %d\n", s->h, s->w);
    fprintf(f, "(0028,0100) US %d\n(0028,0101) US %d\n(0028,0102) US %d\n(0028,0103) US %d\n", s->bits_alloc, bs,
            bs - 1, s->is_signed);
    if (s->window_center) fprintf(f, "(0028,1050) DS [%s]\n(0028,1051) DS [%s]\n", s->window_center, s->window_width);
    if (s->has_rescale) fprintf(f, "(0028,1052) DS [%g]\n(0028,1053) DS [%g]\n", s->intercept, s->slope);
    if (s->lut_entries > 0) {
        fprintf(f, "(0028,3010) SQ (Sequence with undefined length)\n(fffe,e000) na (Item with undefined length)\n");
        fprintf(f, "(0028,3002) US %d\\%d\\16\n(0028,3006) US ", s->lut_entries, s->lut_first);
        for (int i = 0; i < s->lut_entries; i++) fprintf(f, i ? "\\%u" : "%u", s->lut[i]);
        fprintf(f, "\n(fffe,e00d) na (ItemDelimitationItem)\n(fffe,e0dd) na (SequenceDelimitationItem)\n");
    }
    fprintf(f, "(7fe0,0010) %s =%s\n", s->bits_alloc == 8 ? "OB" : "OW", raw);
    if (fclose(f) != 0) return -1;
    return dcmfx_run("dump2dcm '%s' '%s'", dump, path) == 0 ? 0 : -1;
}

void dcmfx_expected_u8(const dcm_spec *s, uint8_t *out) {
    size_t n = (size_t)s->w * s->h;
    double *d = malloc(n * sizeof *d), mn = 1e300, mx = -1e300;
    for (size_t i = 0; i < n; i++) {
        double v = s->px[i];
        if (s->has_rescale) v = v * s->slope + s->intercept;                 /* modality LUT */
        if (s->window_center) {                                              /* PS3.3 C.11.2.1.2.1 */
            double c = strtod(s->window_center, NULL), w = strtod(s->window_width, NULL);
            if (v <= c - 0.5 - (w - 1) / 2) v = 0;
            else if (v > c - 0.5 + (w - 1) / 2) v = 1;
            else v = (v - (c - 0.5)) / (w - 1) + 0.5;
        } else if (s->lut_entries > 0) {                                     /* VOI LUT */
            long k = (long)v - s->lut_first;
            v = s->lut[k < 0 ? 0 : k >= s->lut_entries ? s->lut_entries - 1 : k];
        }
        if (s->photometric && !strcmp(s->photometric, "MONOCHROME1")) v = -v; /* bone bright */
        d[i] = v;
        if (v < mn) mn = v;
        if (v > mx) mx = v;
    }
    for (size_t i = 0; i < n; i++) out[i] = mx > mn ? (uint8_t)rint((d[i] - mn) / (mx - mn) * 255.0) : 0;
    free(d);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

#define W 64
#define H 48

/* Run `skelex preprocess ARGS`; stdout and stderr into NAME.out / NAME.err
 * (returned malloc'ed when out/err are non-NULL). Exit status. */
static int preprocess(const char *args, const char *name, char **out, char **err) {
    char cmd[3200], o[600], e[600];
    snprintf(o, sizeof o, "%s.out", tl_path(name));
    snprintf(e, sizeof e, "%s.err", tl_path(name));
    snprintf(cmd, sizeof cmd, "./skelex preprocess %s >'%s' 2>'%s'", args, o, e);
    int st = system(cmd);
    if (out && !(*out = tl_read_file(o, NULL))) *out = calloc(1, 1);
    if (err && !(*err = tl_read_file(e, NULL))) *err = calloc(1, 1);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* `skelex preprocess IN --out PNG` and compare with want (w x h): largest
 * difference; -1 when the command or the PNG failed. */
static int preprocess_diff(const char *in, const uint8_t *want, int w, int h) {
    char args[1400], png[600];
    snprintf(png, sizeof png, "%s.pre.png", in);
    snprintf(args, sizeof args, "'%s' --out '%s'", in, png);
    char *err = NULL;
    int rc = preprocess(args, "pp", NULL, &err);
    if (rc != 0) { fprintf(stderr, "    preprocess failed (%d): %s", rc, err); free(err); return -1; }
    free(err);
    gray_image im;
    sx_err e;
    if (image_load_gray(png, &im, &e)) { fprintf(stderr, "    %s\n", e.msg); return -1; }
    int worst = -1;
    if (im.width == w && im.height == h) {
        worst = 0;
        for (int i = 0; i < w * h; i++) {
            int d = abs((int)im.data[i] - (int)want[i]);
            if (d > worst) worst = d;
        }
    } else {
        fprintf(stderr, "    size %dx%d, want %dx%d\n", im.width, im.height, w, h);
    }
    gray_image_free(&im);
    return worst;
}

/* Load with image_load_gray and min-max to 8 bits. */
static int load_u8(const char *path, uint8_t *u8, int w, int h, sx_err *e) {
    gray_image im;
    if (image_load_gray(path, &im, e)) return -1;
    int ok = im.width == w && im.height == h;
    if (ok) image_minmax_u8(&im, u8);
    else snprintf(e->msg, sizeof e->msg, "size %dx%d, want %dx%d", im.width, im.height, w, h);
    gray_image_free(&im);
    return ok ? 0 : -1;
}

static int max_diff(const uint8_t *a, const uint8_t *b, size_t n) {
    int worst = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > worst) worst = d;
    }
    return worst;
}

/* The test folder's NAME: s written, then edited in place by `dcmodify -nb EDITS` (both CHECKed). */
static void write_modified(const char *name, const dcm_spec *s, const char *edits) {
    CHECK(dcmfx_write(tl_path(name), s) == 0);
    CHECK(dcmfx_run("dcmodify -nb %s '%s'", edits, tl_path(name)) == 0);
}

/* Preprocessing IN is within 1 of the hand computation of S at every pixel. */
#define CHECK_HAND(IN, S, WHAT)                                                                                   \
    do {                                                                                                          \
        int d_ = spec_diff(IN, S);                                                                                \
        CHECKF(d_ >= 0 && d_ <= 1, "%s: preprocess differs from the hand computation by %d", WHAT, d_);          \
    } while (0)

/* The largest pixel difference between the hand computations of x and y (W x H). */
static int hand_diff(const dcm_spec *x, const dcm_spec *y) {
    uint8_t a[W * H], b[W * H];
    dcmfx_expected_u8(x, a);
    dcmfx_expected_u8(y, b);
    return max_diff(a, b, W * H);
}

/* How far preprocessing `in` is from the hand computation of s (a W x H
 * image): the largest pixel difference, or -1 when it fails. */
static int spec_diff(const char *in, const dcm_spec *s) {
    uint8_t want[W * H];
    dcmfx_expected_u8(s, want);
    return preprocess_diff(in, want, s->w, s->h);
}

/* path := the test folder's NAME; s written there as a DICOM file. 0 on success. */
static int write_fixture(char path[600], const char *name, const dcm_spec *s) {
    snprintf(path, 600, "%s", tl_path(name));
    return dcmfx_write(path, s);
}

/* The standard 16-bit, 12-bits-stored DX fixture with two windows. */
static dcm_spec dx16_spec(int32_t *px) {
    dcmfx_phantom(W, H, 0, 100, 4000, px);
    return (dcm_spec){.w = W, .h = H, .bits_alloc = 16, .bits_stored = 12, .px = px,
                      .window_center = "1800\\900", .window_width = "2000\\500"};
}

#define NEED_TOOLS() do { if (!dcmfx_have_tools()) TEST_SKIP("DCMTK tools missing (bash scripts/deps.sh)"); } while (0)
/* A test's start on the standard DX fixture (NEED_TOOLS): pixels px, spec s, written to
 * NAME, whose path is char P[600]. */
#define DX16_FILE(P, NAME)                                                                                        \
    NEED_TOOLS();                                                                                                \
    int32_t px[W * H];                                                                                           \
    dcm_spec s = dx16_spec(px);                                                                                  \
    char P[600];                                                                                                 \
    CHECK(write_fixture(P, NAME, &s) == 0)

/* ------------------------------------------------------------------------ */
/* Display pipeline against the hand computation                           */

static void check_spec(const char *name, const dcm_spec *s) {
    char p[600];
    CHECKF(write_fixture(p, name, s) == 0, "dump2dcm failed for %s", name);
    CHECK_HAND(p, s, name);
}

TEST(dicom_window_mono2_16bit) {
    NEED_TOOLS();
    int32_t px[W * H];
    dcm_spec s = dx16_spec(px);
    check_spec("dx16.dcm", &s);
    /* the window clips both ends: the hand result has both 0 and 255 */
    uint8_t want[W * H];
    dcmfx_expected_u8(&s, want);
    int has0 = 0, has255 = 0;
    for (int i = 0; i < W * H; i++) { has0 |= want[i] == 0; has255 |= want[i] == 255; }
    CHECK(has0 && has255);
    /* the first window, not the second, and not min-max */
    dcm_spec second = s;
    second.window_center = "900";
    second.window_width = "500";
    uint8_t other[W * H], got[W * H];
    dcmfx_expected_u8(&second, other);
    sx_err e;
    CHECKF(load_u8(tl_path("dx16.dcm"), got, W, H, &e) == 0, "%s", e.msg);
    CHECK(max_diff(got, want, W * H) <= 1 && max_diff(got, other, W * H) > 50);

    /* --size: the model's resize of exactly that image */
    char args[1400];
    snprintf(args, sizeof args, "'%s' --out '%s' --size 24", tl_path("dx16.dcm"), tl_path("small.png"));
    CHECK(preprocess(args, "size", NULL, NULL) == 0);
    uint8_t sq[24 * 24];
    image_resize_bilinear_u8(got, W, H, sq, 24, 24);
    gray_image im;
    CHECK(image_load_gray(tl_path("small.png"), &im, &e) == 0);
    CHECK(im.width == 24 && im.height == 24);
    double worst = 0;
    for (int i = 0; im.data && i < 24 * 24; i++) worst = fmax(worst, fabs(im.data[i] - sq[i]));
    CHECKF(worst <= 1, "resized output differs by %g", worst);
    gray_image_free(&im);

    /* the model's input from a DICOM: the same pipeline as any image */
    float chw[3 * 24 * 24], ref[3 * 24 * 24];
    CHECK(image_preprocess_file(tl_path("dx16.dcm"), 24, chw, &e) == 0);
    image_u8_to_chw(sq, 24, ref);
    worst = 0;
    for (int i = 0; i < 3 * 24 * 24; i++) worst = fmax(worst, fabs(chw[i] - ref[i]));
    CHECKF(worst <= 1e-6, "model input differs by %g", worst);
}

TEST(dicom_monochrome1_inverted) {
    NEED_TOOLS();
    int32_t px[W * H];
    dcm_spec s = dx16_spec(px);
    s.photometric = "MONOCHROME1";
    check_spec("mono1.dcm", &s);
    /* the same stored values as MONOCHROME2 give the complement */
    dcm_spec s2 = dx16_spec(px);
    CHECK(dcmfx_write(tl_path("mono2.dcm"), &s2) == 0);
    uint8_t a[W * H], b[W * H];
    sx_err e;
    CHECK(load_u8(tl_path("mono1.dcm"), a, W, H, &e) == 0);
    CHECK(load_u8(tl_path("mono2.dcm"), b, W, H, &e) == 0);
    int worst = 0;
    for (int i = 0; i < W * H; i++) worst = abs(a[i] + b[i] - 255) > worst ? abs(a[i] + b[i] - 255) : worst;
    CHECKF(worst <= 1, "MONOCHROME1 is not the inverse of MONOCHROME2 (off by %d)", worst);
    /* without a window too (min-max) */
    s.window_center = s.window_width = NULL;
    check_spec("mono1_minmax.dcm", &s);
}

TEST(dicom_rescale_slope_intercept) {
    NEED_TOOLS();
    int32_t px[W * H];
    dcmfx_phantom(W, H, 0, 0, 4095, px);
    dcm_spec s = {.sop = "ComputedRadiographyImageStorage", .w = W, .h = H, .bits_alloc = 16, .bits_stored = 12,
                  .px = px, .has_rescale = 1, .slope = 2, .intercept = -1024,
                  .window_center = "2000", .window_width = "3000"};
    check_spec("cr_rescale.dcm", &s);
    /* the window is in modality units: ignoring the rescale would differ */
    dcm_spec raw = s;
    raw.has_rescale = 0;
    CHECK(hand_diff(&s, &raw) > 50);
    /* a fractional slope with a negative intercept, no window */
    dcm_spec f = s;
    f.slope = 0.25;
    f.intercept = -300.5;
    f.window_center = f.window_width = NULL;
    check_spec("cr_fraction.dcm", &f);
}

TEST(dicom_signed_pixels) {
    NEED_TOOLS();
    int32_t px[W * H];
    dcmfx_phantom(W, H, 0, -2000, 3000, px);
    dcm_spec s = {.w = W, .h = H, .bits_alloc = 16, .bits_stored = 16, .is_signed = 1, .px = px};
    check_spec("signed_minmax.dcm", &s);
    s.window_center = "-200";
    s.window_width = "2400";
    check_spec("signed_window.dcm", &s);
    dcm_spec r = s;
    r.sop = "ComputedRadiographyImageStorage";
    r.has_rescale = 1;
    r.slope = 1;
    r.intercept = -1000;
    r.window_center = "-1200";
    check_spec("signed_rescale.dcm", &r);
    /* 12 bits stored, signed: the sign bit is bit 11 */
    int32_t px12[W * H];
    dcmfx_phantom(W, H, 0, -2000, 2000, px12);
    dcm_spec t = {.w = W, .h = H, .bits_alloc = 16, .bits_stored = 12, .is_signed = 1, .px = px12};
    for (int i = 0; i < W * H; i++) px12[i] &= 0xFFF; /* two's complement in 12 bits, high bits clear */
    int32_t val[W * H];
    for (int i = 0; i < W * H; i++) val[i] = px12[i] >= 2048 ? px12[i] - 4096 : px12[i];
    CHECK(dcmfx_write(tl_path("signed12.dcm"), &t) == 0);
    dcm_spec tv = t;
    tv.px = val;
    CHECK_HAND(tl_path("signed12.dcm"), &tv, "12-bit signed");
}

TEST(dicom_voi_lut_sequence) {
    NEED_TOOLS();
    int32_t px[W * H];
    dcmfx_phantom(W, H, 0, 10, 250, px);
    uint16_t lut[256];
    for (int i = 0; i < 256; i++) lut[i] = (uint16_t)(i * i); /* not linear: min-max could not fake it */
    dcm_spec s = {.w = W, .h = H, .bits_alloc = 8, .px = px, .lut_entries = 256, .lut_first = 0, .lut = lut};
    check_spec("voilut.dcm", &s);
    dcm_spec lin = s;
    lin.lut_entries = 0;
    CHECK(hand_diff(&s, &lin) > 20);
}

TEST(dicom_secondary_capture_8bit) {
    NEED_TOOLS();
    int32_t px[W * H];
    dcmfx_phantom(W, H, 0, 30, 220, px);
    dcm_spec s = {.sop = "SecondaryCaptureImageStorage", .w = W, .h = H, .bits_alloc = 8, .px = px};
    check_spec("sc8.dcm", &s);
    /* a DX with an 8-bit window */
    dcm_spec d = s;
    d.sop = NULL;
    d.window_center = "128";
    d.window_width = "100";
    check_spec("dx8_window.dcm", &d);
}

/* ------------------------------------------------------------------------ */
/* Compressed transfer syntaxes                                             */

/* The file at path is in transfer syntax uid (it appears in the meta header). */
static int has_uid(const char *path, const char *uid) {
    size_t n;
    char *p = tl_read_file(path, &n);
    int found = 0;
    for (size_t i = 0; !found && n >= strlen(uid) && i + strlen(uid) <= n && i < 400; i++)
        found = !memcmp(p + i, uid, strlen(uid)) && p[i + strlen(uid)] != '.' &&
                !(p[i + strlen(uid)] >= '0' && p[i + strlen(uid)] <= '9');
    free(p);
    return found;
}

static int same_floats(const char *a, const char *b) {
    gray_image x, y;
    sx_err e;
    if (image_load_gray(a, &x, &e)) { fprintf(stderr, "    %s\n", e.msg); return 0; }
    if (image_load_gray(b, &y, &e)) { fprintf(stderr, "    %s\n", e.msg); gray_image_free(&x); return 0; }
    int same = x.width == y.width && x.height == y.height &&
               !memcmp(x.data, y.data, sizeof(float) * (size_t)x.width * x.height);
    gray_image_free(&x);
    gray_image_free(&y);
    return same;
}

TEST(dicom_compressed_lossless) {
    DX16_FILE(src, "plain.dcm");
    static const struct { const char *tool, *name, *uid; } codecs[] = {
        {"dcmcjpeg", "jpeg_sv1.dcm", "1.2.840.10008.1.2.4.70"},      /* JPEG lossless, first-order prediction */
        {"dcmcjpeg +el", "jpeg_ll.dcm", "1.2.840.10008.1.2.4.57"},   /* JPEG lossless, process 14 */
        {"dcmcjpls", "jpegls.dcm", "1.2.840.10008.1.2.4.80"},        /* JPEG-LS lossless */
        {"dcmcrle", "rle.dcm", "1.2.840.10008.1.2.5"},               /* RLE */
    };
    uint8_t want[W * H];
    dcmfx_expected_u8(&s, want);
    for (size_t k = 0; k < sizeof codecs / sizeof codecs[0]; k++) {
        char out[600];
        snprintf(out, sizeof out, "%s", tl_path(codecs[k].name));
        CHECKF(dcmfx_run("%s '%s' '%s'", codecs[k].tool, src, out) == 0, "%s failed", codecs[k].tool);
        CHECKF(has_uid(out, codecs[k].uid), "%s did not write %s", codecs[k].tool, codecs[k].uid);
        CHECKF(same_floats(src, out), "%s: decoded image differs from the uncompressed one", codecs[k].name);
        uint8_t got[W * H];
        sx_err e;
        int d = load_u8(out, got, W, H, &e) ? -1 : max_diff(got, want, W * H);
        CHECKF(d >= 0 && d <= 1, "%s: differs from the hand computation by %d", codecs[k].name, d);
    }
    /* MONOCHROME1 through JPEG-LS: still inverted after decoding */
    s.photometric = "MONOCHROME1";
    CHECK(dcmfx_write(src, &s) == 0);
    CHECK(dcmfx_run("dcmcjpls '%s' '%s'", src, tl_path("m1ls.dcm")) == 0);
    CHECK_HAND(tl_path("m1ls.dcm"), &s, "MONOCHROME1 JPEG-LS");
}

TEST(dicom_compressed_lossy) {
    NEED_TOOLS();
    int32_t px[W * H];
    dcmfx_phantom(W, H, 0, 20, 230, px);
    dcm_spec s = {.w = W, .h = H, .bits_alloc = 8, .px = px};
    char src[600];
    snprintf(src, sizeof src, "%s", tl_path("dx8.dcm"));
    char jb[600];
    snprintf(jb, sizeof jb, "%s", tl_path("baseline.dcm"));
    CHECK(dcmfx_write(src, &s) == 0);
    CHECK(dcmfx_run("dcmcjpeg +eb '%s' '%s'", src, jb) == 0);
    CHECK(has_uid(jb, "1.2.840.10008.1.2.4.50"));
    uint8_t a[W * H], b[W * H];
    sx_err e;
    CHECKF(load_u8(src, a, W, H, &e) == 0, "%s", e.msg);
    CHECKF(load_u8(jb, b, W, H, &e) == 0, "%s", e.msg);
    double mad = 0;
    for (int i = 0; i < W * H; i++) mad += abs(a[i] - b[i]);
    mad /= W * H;
    CHECKF(mad < 3.0 && max_diff(a, b, W * H) < 60, "JPEG baseline: mean difference %.2f", mad);

    /* img2dcm: a JPEG wrapped as Secondary Capture, pixels untouched; it
     * must decode like the JPEG itself (DCMTK's IJG vs libjpeg-turbo) */
    uint8_t g[W * H];
    for (int i = 0; i < W * H; i++) g[i] = (uint8_t)px[i];
    char jpg[600];
    snprintf(jpg, sizeof jpg, "%s", tl_path("scan.jpg"));
    char sc[600];
    snprintf(sc, sizeof sc, "%s", tl_path("scan_sc.dcm"));
    CHECK(tl_write_jpeg(jpg, &(tl_jpeg){W, H, 1, 95, 0, 0, g, NULL, 0}) == 0); /* as a camera or scanner would */
    CHECKF(dcmfx_run("img2dcm '%s' '%s'", jpg, sc) == 0, "img2dcm failed");
    CHECK(load_u8(jpg, a, W, H, &e) == 0);
    CHECKF(load_u8(sc, b, W, H, &e) == 0, "%s", e.msg);
    CHECKF(max_diff(a, b, W * H) <= 2, "img2dcm SC differs from its JPEG by %d", max_diff(a, b, W * H));
}

TEST(dicom_colour_secondary_capture) {
    NEED_TOOLS();
    /* a colour JPEG (libjpeg, YCbCr) wrapped by img2dcm: luma as for the JPEG */
    uint8_t rgb[W * H * 3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = rgb + 3 * (y * W + x);
            p[0] = (uint8_t)(40 + 3 * x);
            p[1] = (uint8_t)(30 + 4 * y);
            p[2] = (uint8_t)(200 - 2 * x);
        }
    char jpg[600], sc[600];
    snprintf(jpg, sizeof jpg, "%s", tl_path("colour.jpg"));
    snprintf(sc, sizeof sc, "%s", tl_path("colour.dcm"));
    CHECK(tl_write_jpeg(jpg, &(tl_jpeg){W, H, 3, 95, 0, 0, rgb, NULL, 0}) == 0);
    CHECKF(dcmfx_run("img2dcm '%s' '%s'", jpg, sc) == 0, "img2dcm failed");
    uint8_t a[W * H], b[W * H];
    sx_err e;
    CHECK(load_u8(jpg, a, W, H, &e) == 0);
    CHECKF(load_u8(sc, b, W, H, &e) == 0, "%s", e.msg);
    CHECKF(max_diff(a, b, W * H) <= 3, "colour SC differs from its JPEG by %d", max_diff(a, b, W * H));
}

/* ------------------------------------------------------------------------ */
/* The other commands' path: datasets and the threaded loader               */

TEST(dicom_in_datasets_and_loader) {
    NEED_TOOLS();
    /* .dcm files are found in a directory scan; a list file may name
     * DICOM files without an extension */
    char dir[600], list[600];
    snprintf(dir, sizeof dir, "%s", tl_path("xr"));
    snprintf(list, sizeof list, "%s", tl_path("list.txt"));
    CHECK(dcmfx_run("mkdir -p '%s'", dir) == 0);
    int32_t px[W * H];
    FILE *lf = fopen(list, "w");
    for (int k = 0; k < 4; k++) {
        dcmfx_phantom(W, H, k, 0, 1000 + 500 * k, px);
        dcm_spec s = {.w = W, .h = H, .bits_alloc = 16, .px = px, .photometric = k & 1 ? "MONOCHROME1" : NULL};
        char p[700];
        snprintf(p, sizeof p, "%s/img%d.dcm", dir, k);
        CHECK(dcmfx_write(p, &s) == 0);
        snprintf(p, sizeof p, "%s/IM%06d", dir, k); /* as PACS exports name them */
        CHECK(dcmfx_write(p, &s) == 0);
        fprintf(lf, "xr/IM%06d\n", k);
    }
    fclose(lf);
    dataset ds;
    dataset_init(&ds);
    sx_err e;
    CHECKF(dataset_add(&ds, dir, &e) == 0, "%s", e.msg);
    CHECK(dataset_count(&ds) == 4); /* the extension-less ones are not scanned */
    CHECKF(dataset_add(&ds, list, &e) == 0, "%s", e.msg);
    CHECK(dataset_count(&ds) == 8);
    /* the threaded loader decodes DICOM concurrently and gives what the
     * inline loader gives (positions, not timing, decide each sample) */
    aug_config a = aug_default(32);
    int B = 4;
    float *x = malloc(sizeof(float) * 3 * 32 * 32 * B * 3), *y = malloc(sizeof(float) * 3 * 32 * 32 * B * 3);
    loader *L0 = loader_create(&ds, B, &a, 7, 0, 0, NULL, &e), *L2 = loader_create(&ds, B, &a, 7, 2, 0, NULL, &e);
    CHECK(L0 && L2);
    loader_info info;
    for (int k = 0; L0 && L2 && k < 3; k++) {
        CHECK(loader_next(L0, x + (size_t)k * 3 * 32 * 32 * B, &info, &e) == 0);
        CHECK(info.replaced == 0);
        CHECK(loader_next(L2, y + (size_t)k * 3 * 32 * 32 * B, &info, &e) == 0);
    }
    CHECK(!memcmp(x, y, sizeof(float) * 3 * 32 * 32 * B * 3));
    loader_destroy(L0);
    loader_destroy(L2);
    free(x);
    free(y);
    dataset_free(&ds);
}

/* ------------------------------------------------------------------------ */
/* Multi-frame, no preamble                                                 */

TEST(dicom_multiframe_first_frame) {
    NEED_TOOLS();
    int32_t px[3 * W * H];
    for (int f = 0; f < 3; f++) dcmfx_phantom(W, H, f, 0, 4000, px + (size_t)f * W * H);
    dcm_spec s = {.sop = "MultiframeGrayscaleWordSecondaryCaptureImageStorage", .w = W, .h = H, .frames = 3,
                  .bits_alloc = 16, .bits_stored = 12, .px = px};
    char p[600];
    CHECK(write_fixture(p, "multi.dcm", &s) == 0);
    uint8_t want[W * H], got[W * H];
    dcmfx_expected_u8(&s, want); /* first frame */
    gray_image im;
    sx_err e, warn;
    CHECK(image_load_gray_opts(p, &(image_load_opts){.warning = &warn}, &im, &e) == 0);
    CHECKF(strstr(warn.msg, p) && strstr(warn.msg, "multi-frame") && strstr(warn.msg, "3 frames"), "%s", warn.msg);
    CHECK(im.width == W && im.height == H);
    if (im.data) image_minmax_u8(&im, got);
    gray_image_free(&im);
    CHECK(max_diff(got, want, W * H) <= 1);
    /* the CLI warns once on stderr and succeeds */
    char args[1400], *err = NULL;
    snprintf(args, sizeof args, "'%s' --out '%s'", p, tl_path("multi.png"));
    CHECK(preprocess(args, "multi", NULL, &err) == 0);
    CHECKF(strstr(err, "warning") && strstr(err, "multi-frame"), "%s", err);
    free(err);
    /* compressed multi-frame: RLE and JPEG-LS, still the first frame */
    CHECK(dcmfx_run("dcmcrle '%s' '%s'", p, tl_path("multi_rle.dcm")) == 0);
    CHECK(dcmfx_run("dcmcjpls '%s' '%s'", p, tl_path("multi_ls.dcm")) == 0);
    CHECK(load_u8(tl_path("multi_rle.dcm"), got, W, H, &e) == 0 && max_diff(got, want, W * H) <= 1);
    CHECK(load_u8(tl_path("multi_ls.dcm"), got, W, H, &e) == 0 && max_diff(got, want, W * H) <= 1);
}

TEST(dicom_without_preamble) {
    DX16_FILE(p, "full.dcm");
    /* a bare dataset, explicit and implicit VR: no preamble, no "DICM" */
    static const char *const syn[] = {"+te", "+ti"};
    for (int k = 0; k < 2; k++) {
        char q[600];
        snprintf(q, sizeof q, "%s", tl_path(k ? "bare_implicit.dcm" : "bare_explicit.dcm"));
        CHECK(dcmfx_run("dcmconv -F %s '%s' '%s'", syn[k], p, q) == 0);
        size_t n;
        char *b = tl_read_file(q, &n);
        CHECK(n > 132 && memcmp(b + 128, "DICM", 4) != 0);
        free(b);
        CHECKF(same_floats(p, q), "bare dataset %s decodes differently", syn[k]);
    }
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */

/* The load fails with a message naming path and containing want; with
 * cli, `skelex preprocess` also exits 1 with that one line. */
static void expect_error_cli(const char *path, const char *want, int cli) {
    gray_image im;
    sx_err e;
    int rc = image_load_gray(path, &im, &e);
    CHECKF(rc == -1, "%s loaded but should fail with '%s'", path, want);
    if (rc == 0) { gray_image_free(&im); return; }
    CHECKF(!strncmp(e.msg, path, strlen(path)) && strstr(e.msg, want) && !strchr(e.msg, '\n'), "'%s' (want '%s')",
           e.msg, want);
    CHECK(im.data == NULL);
    if (!cli) return;
    /* the CLI: exit 1, one line naming the file and the reason */
    char args[1400], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "'%s' --out '%s'", path, tl_path("never.png"));
    CHECK(preprocess(args, "e", &out, &err) == 1);
    CHECKF(strstr(err, path) && strstr(err, want) && strchr(err, '\n') == err + strlen(err) - 1, "stderr: %s", err);
    CHECK(out[0] == 0);
    FILE *f = fopen(tl_path("never.png"), "rb");
    CHECK(f == NULL);
    if (f) fclose(f);
    free(out);
    free(err);
}

static void expect_error(const char *path, const char *want) { expect_error_cli(path, want, 0); }

/* Replace every occurrence of one equally long string by another. */
static int patch_file(const char *in, const char *out, const char *from, const char *to) {
    size_t n, k = strlen(from), hits = 0;
    char *p = tl_read_file(in, &n);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(p + i, from, k)) { memcpy(p + i, to, k); hits++; }
    int rc = hits ? tl_write_file(out, p, n) : -1;
    free(p);
    return rc;
}

TEST(dicom_errors) {
    DX16_FILE(p, "ok.dcm");

    expect_error_cli(tl_path("absent.dcm"), "not found", 1);
    char txt[600];
    snprintf(txt, sizeof txt, "%s", tl_path("notes.txt"));
    CHECK(tl_write_file(txt, "Patient positioned supine; see attached.\n", 41) == 0);
    expect_error_cli(txt, "not an image", 1);
    CHECK(tl_write_file(tl_path("empty.dcm"), "", 0) == 0);
    expect_error(tl_path("empty.dcm"), "empty file");

    /* truncated: in the pixel data, and in the header */
    size_t n;
    char *b = tl_read_file(p, &n);
    CHECK(tl_write_file(tl_path("cut_pixels.dcm"), b, n - 1000) == 0);
    expect_error_cli(tl_path("cut_pixels.dcm"), "truncated", 1);
    CHECK(tl_write_file(tl_path("cut_header.dcm"), b, 200) == 0);
    expect_error(tl_path("cut_header.dcm"), "truncated");
    free(b);

    /* JPEG 2000: same-length UID swapped into a DCMTK-made JPEG lossless file */
    CHECK(dcmfx_run("dcmcjpeg '%s' '%s'", p, tl_path("jl.dcm")) == 0);
    CHECK(patch_file(tl_path("jl.dcm"), tl_path("j2k.dcm"), "1.2.840.10008.1.2.4.70",
                     "1.2.840.10008.1.2.4.90") == 0);
    expect_error(tl_path("j2k.dcm"), "unsupported transfer syntax");
    expect_error_cli(tl_path("j2k.dcm"), "JPEG 2000", 1);
    /* an unknown syntax UID */
    CHECK(patch_file(tl_path("jl.dcm"), tl_path("unknown_ts.dcm"), "1.2.840.10008.1.2.4.70",
                     "1.2.840.10008.1.2.4.77") == 0);
    expect_error(tl_path("unknown_ts.dcm"), "unsupported transfer syntax");

    /* no pixel data: a structured report-like object */
    char nop[600];
    snprintf(nop, sizeof nop, "%s", tl_path("nopixels.dcm"));
    tl_write_text(tl_path("nopixels.dump"), "(0008,0016) UI =BasicTextSRStorage\n"
                                            "(0008,0018) UI [1.2.826.0.1.3680043.9.7777.2]\n(0008,0060) CS [SR]\n");
    CHECK(dcmfx_run("dump2dcm '%s' '%s'", tl_path("nopixels.dump"), nop) == 0);
    expect_error(nop, "no pixel data");

    /* too large: 20000 x 20000 claimed over a tiny pixel data element */
    int32_t tiny[4] = {1, 2, 3, 4};
    dcm_spec big = {.w = 2, .h = 2, .bits_alloc = 16, .px = tiny};
    write_modified("big.dcm", &big, "-m '(0028,0010)=20000' -m '(0028,0011)=20000'");
    expect_error_cli(tl_path("big.dcm"), "too large", 1);
    /* pixel data shorter than one frame (64 x 64 claimed, 2 x 2 stored) */
    write_modified("short.dcm", &big, "-m '(0028,0010)=64' -m '(0028,0011)=64'");
    expect_error(tl_path("short.dcm"), "truncated");
    /* empty pixel data */
    write_modified("emptypx.dcm", &big, "-m '(7fe0,0010)='");
    expect_error_cli(tl_path("emptypx.dcm"), "empty pixel data", 1);
    /* zero rows */
    write_modified("zero.dcm", &big, "-m '(0028,0010)=0'");
    expect_error(tl_path("zero.dcm"), "zero size");
}

/* ------------------------------------------------------------------------ */
/* Privacy                                                                  */

static const char *const SECRETS[] = {"Zyxwvut", "Qwertyuiop", "PID-8675309-XQ", "19230405", "ACC-55501234",
                                      "Nowhere Infirmary Qz", "Dr^Obscurus"};
#define PATIENT_LINES                                                                                        \
    "(0008,0050) SH [ACC-55501234]\n(0008,0080) LO [Nowhere Infirmary Qz]\n(0008,0090) PN [Dr^Obscurus]\n" \
    "(0010,0010) PN [Zyxwvut^Qwertyuiop]\n(0010,0020) LO [PID-8675309-XQ]\n(0010,0030) DA [19230405]\n"

static int leaks(const char *text, size_t n) {
    for (size_t k = 0; k < sizeof SECRETS / sizeof SECRETS[0]; k++) {
        size_t l = strlen(SECRETS[k]);
        for (size_t i = 0; i + l <= n; i++)
            if (!memcmp(text + i, SECRETS[k], l)) return (int)k + 1;
    }
    return 0;
}

/* Run preprocess on in; nothing it prints or writes may hold a secret. */
static void no_leak(const char *in, int want_rc) {
    char out[600];
    snprintf(out, sizeof out, "%s", tl_path("anon.png"));
    remove(out);
    char args[1400], *o = NULL, *e = NULL;
    snprintf(args, sizeof args, "'%s' --out '%s' --size 32", in, out);
    int rc = preprocess(args, "priv", &o, &e);
    CHECKF(rc == want_rc, "%s: exit %d, want %d: %s", in, rc, want_rc, e);
    CHECKF(!leaks(o, strlen(o)) && !leaks(e, strlen(e)), "%s: patient data printed: %s%s", in, o, e);
    size_t n;
    char *png = tl_read_file(out, &n);
    CHECK(want_rc != 0 || n > 0);
    CHECKF(!leaks(png, n), "%s: patient data in the output file", in);
    free(png);
    free(o);
    free(e);
    /* in-process: neither the error nor the warning */
    gray_image im;
    sx_err err, warn;
    err.msg[0] = warn.msg[0] = 0;
    if (image_load_gray_opts(in, &(image_load_opts){.warning = &warn}, &im, &err) == 0) gray_image_free(&im);
    CHECK(!leaks(err.msg, strlen(err.msg)) && !leaks(warn.msg, strlen(warn.msg)));
}

TEST(dicom_privacy_no_patient_data_in_outputs) {
    NEED_TOOLS();
    int32_t px[3 * W * H];
    for (int f = 0; f < 3; f++) dcmfx_phantom(W, H, f, 0, 4000, px + (size_t)f * W * H);
    dcm_spec s = {.w = W, .h = H, .bits_alloc = 16, .bits_stored = 12, .px = px, .extra = PATIENT_LINES,
                  .window_center = "1800", .window_width = "2000"};
    char p[600];
    CHECK(write_fixture(p, "patient.dcm", &s) == 0);
    size_t n;
    char *b = tl_read_file(p, &n);
    CHECKF(leaks(b, n) != 0, "the fixture should carry the patient attributes");
    free(b);
    no_leak(p, 0);
    /* warning path: multi-frame */
    dcm_spec m = s;
    m.frames = 3;
    m.sop = "MultiframeGrayscaleWordSecondaryCaptureImageStorage";
    char mp[600];
    CHECK(write_fixture(mp, "patient_multi.dcm", &m) == 0);
    no_leak(mp, 0);
    /* compressed */
    CHECK(dcmfx_run("dcmcjpls '%s' '%s'", p, tl_path("patient_ls.dcm")) == 0);
    no_leak(tl_path("patient_ls.dcm"), 0);
    /* failure paths: truncated, unsupported syntax, too large, corrupt */
    b = tl_read_file(p, &n);
    CHECK(tl_write_file(tl_path("patient_cut.dcm"), b, n - 500) == 0);
    CHECK(tl_write_file(tl_path("patient_head.dcm"), b, n / 3) == 0);
    for (size_t i = 300; i < n; i += 97) b[i] ^= 0x5A; /* corrupt everything after the first tags */
    CHECK(tl_write_file(tl_path("patient_noise.dcm"), b, n) == 0);
    free(b);
    no_leak(tl_path("patient_cut.dcm"), 1);
    no_leak(tl_path("patient_head.dcm"), 1);
    gray_image im;
    sx_err e;
    int noise_ok = image_load_gray(tl_path("patient_noise.dcm"), &im, &e) == 0;
    if (noise_ok) gray_image_free(&im);
    no_leak(tl_path("patient_noise.dcm"), noise_ok ? 0 : 1);
    CHECK(dcmfx_run("dcmcjpeg '%s' '%s'", p, tl_path("patient_jl.dcm")) == 0);
    CHECK(patch_file(tl_path("patient_jl.dcm"), tl_path("patient_j2k.dcm"), "1.2.840.10008.1.2.4.70",
                     "1.2.840.10008.1.2.4.91") == 0);
    no_leak(tl_path("patient_j2k.dcm"), 1);
    CHECK(dcmfx_run("cp '%s' '%s' && dcmodify -nb -m '(0028,0010)=30000' '%s'", p, tl_path("patient_big.dcm"),
                    tl_path("patient_big.dcm")) == 0);
    no_leak(tl_path("patient_big.dcm"), 1);
}
