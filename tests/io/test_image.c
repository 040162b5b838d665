/* test_image.c: tests for image.c. Synthetic images are written here with
 * libpng and libjpeg directly (not with image.c), loaded back and checked:
 * exactly for PNG, within a tolerance for JPEG. Resize is compared with
 * Pillow's output stored in tests/fixtures/resize (tools/make_resize_fixture.py). */
#include "io/image.h"
#include "testlib.h"

#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

/* Gradient with a bright disk: the stand-in radiograph. */
static uint8_t disk8(int x, int y, int w, int h) {
    int dx = x - w / 3, dy = y - h / 2, r = h / 4;
    if (dx * dx + dy * dy < r * r) return 240;
    return (uint8_t)(20 + x * 150 / w + y * 40 / h);
}

static uint16_t disk16(int x, int y, int w, int h) {
    int dx = x - w / 3, dy = y - h / 2, r = h / 4;
    if (dx * dx + dy * dy < r * r) return 65535;
    return (uint16_t)(257 + x * 40000 / w + y * 20000 / h);
}

static float luma_ref(double r, double g, double b) { return (float)(0.299 * r + 0.587 * g + 0.114 * b); }

/* ------------------------------------------------------------------------ */
/* PNG writer (libpng)                                                      */

typedef struct {
    int w, h, color_type, depth, interlace;
    const uint16_t *s;           /* interleaved samples, w*h*channels */
    const png_color *plte;
    int nplte;
} png_spec;

static int png_channels(int ct) {
    return ct == PNG_COLOR_TYPE_RGB ? 3 : ct == PNG_COLOR_TYPE_RGBA ? 4 : ct == PNG_COLOR_TYPE_GA ? 2 : 1;
}

/* The libpng calls, kept apart so that setjmp has no locals to clobber. */
static int png_emit(FILE *f, const png_spec *sp, png_bytep *rows) {
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(p);
    if (setjmp(png_jmpbuf(p))) {
        png_destroy_write_struct(&p, &info);
        return -1;
    }
    png_init_io(p, f);
    png_set_IHDR(p, info, (png_uint_32)sp->w, (png_uint_32)sp->h, sp->depth, sp->color_type,
                 sp->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (sp->plte) png_set_PLTE(p, info, sp->plte, sp->nplte);
    png_write_info(p, info);
    if (sp->depth < 8) png_set_packing(p);
    png_write_image(p, rows);
    png_write_end(p, NULL);
    png_destroy_write_struct(&p, &info);
    return 0;
}

static int write_png(const char *path, const png_spec *sp) {
    int ch = png_channels(sp->color_type), bps = sp->depth == 16 ? 2 : 1;
    size_t rowbytes = (size_t)sp->w * ch * bps, ns = (size_t)sp->w * sp->h * ch;
    uint8_t *buf = malloc(rowbytes * sp->h);
    png_bytep *rows = malloc(sizeof *rows * sp->h);
    for (size_t i = 0; i < ns; i++) {
        if (bps == 2) { buf[2 * i] = (uint8_t)(sp->s[i] >> 8); buf[2 * i + 1] = (uint8_t)sp->s[i]; }
        else buf[i] = (uint8_t)sp->s[i];
    }
    for (int y = 0; y < sp->h; y++) rows[y] = buf + rowbytes * y;
    FILE *f = fopen(path, "wb");
    int rc = f ? png_emit(f, sp, rows) : -1;
    if (f && fclose(f) != 0) rc = -1;
    free(rows);
    free(buf);
    return rc;
}

static uint8_t *disk_gray8(int w, int h) {
    uint8_t *p = malloc((size_t)w * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) p[y * w + x] = disk8(x, y, w, h);
    return p;
}

/* A colour image: channels differ so luma is a real mix. */
static void colour_px(int x, int y, int w, int h, uint8_t rgb[3]) {
    uint8_t v = disk8(x, y, w, h);
    rgb[0] = v;
    rgb[1] = (uint8_t)(255 - v / 2);
    rgb[2] = (uint8_t)(40 + (x * 100) / w);
}

/* Mean and max |loaded - expected| over the image. */
static void diff_stats(const gray_image *im, const float *want, double *mean, double *max) {
    size_t n = (size_t)im->width * im->height;
    double s = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)im->data[i] - want[i]);
        s += d;
        if (d > m) m = d;
    }
    *mean = s / (double)n;
    *max = m;
}

/* ------------------------------------------------------------------------ */
/* PNG loading                                                              */

TEST(image_png_gray8_exact) {
    int w = 61, h = 47;
    uint16_t *s = malloc(sizeof *s * w * h);
    for (int i = 0; i < w * h; i++) s[i] = disk8(i % w, i / w, w, h);
    const char *p = tl_path("g8.png");
    CHECK(write_png(p, &(png_spec){w, h, PNG_COLOR_TYPE_GRAY, 8, 0, s, NULL, 0}) == 0);
    gray_image im;
    sx_err e;
    CHECK(image_load_gray(p, &im, &e) == 0);
    CHECK(im.width == w && im.height == h);
    int bad = 0;
    for (int i = 0; i < w * h && im.data; i++) bad += im.data[i] != s[i];
    CHECK(bad == 0);
    gray_image_free(&im);
    free(s);
}

TEST(image_png_gray16_exact) {
    int w = 50, h = 40;
    uint16_t *s = malloc(sizeof *s * w * h);
    for (int i = 0; i < w * h; i++) s[i] = disk16(i % w, i / w, w, h);
    s[0] = 0;
    s[1] = 0x0102; /* asymmetric bytes catch an endianness slip */
    for (int interlace = 0; interlace <= 1; interlace++) {
        const char *p = tl_path(interlace ? "g16i.png" : "g16.png");
        CHECK(write_png(p, &(png_spec){w, h, PNG_COLOR_TYPE_GRAY, 16, interlace, s, NULL, 0}) == 0);
        gray_image im;
        sx_err e;
        CHECK(image_load_gray(p, &im, &e) == 0);
        CHECK(im.width == w && im.height == h);
        int bad = 0;
        for (int i = 0; i < w * h && im.data; i++) bad += im.data[i] != s[i];
        CHECKF(bad == 0, "interlace=%d: %d pixels differ", interlace, bad);
        CHECK(im.data && im.data[1] == 258.0f);
        gray_image_free(&im);
    }
    free(s);
}

TEST(image_png_gray_low_bit_depths) {
    int w = 19, h = 7;
    for (int depth = 1; depth <= 4; depth *= 2) {
        int maxv = (1 << depth) - 1, scale = 255 / maxv;
        uint16_t *s = malloc(sizeof *s * w * h);
        for (int i = 0; i < w * h; i++) s[i] = (uint16_t)((i * 7 + i / w) % (maxv + 1));
        const char *p = tl_path("low.png");
        CHECK(write_png(p, &(png_spec){w, h, PNG_COLOR_TYPE_GRAY, depth, depth == 2, s, NULL, 0}) == 0);
        gray_image im;
        sx_err e;
        CHECK(image_load_gray(p, &im, &e) == 0);
        int bad = 0;
        for (int i = 0; i < w * h && im.data; i++) bad += im.data[i] != (float)(s[i] * scale);
        CHECKF(bad == 0, "depth %d: %d pixels differ", depth, bad);
        gray_image_free(&im);
        free(s);
    }
}

/* RGB / RGBA / grey+alpha, 8 and 16 bit, plain and interlaced: luma exact
 * up to float rounding, alpha ignored. */
static void check_colour_png(int color_type, int depth, int interlace) {
    int w = 33, h = 29, ch = png_channels(color_type), maxv = depth == 16 ? 65535 : 255;
    uint16_t *s = malloc(sizeof *s * w * h * ch);
    float *want = malloc(sizeof *want * w * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint16_t *px = s + (y * w + x) * ch;
            uint8_t rgb[3];
            colour_px(x, y, w, h, rgb);
            for (int c = 0; c < ch; c++)
                px[c] = (uint16_t)((rgb[c < 3 ? c : 0] * maxv / 255 + (c == 3 ? x * 7 : 0)) % (maxv + 1));
            if (ch == 2) px[1] = (uint16_t)(x * 9 % (maxv + 1)); /* alpha */
            want[y * w + x] = ch < 3 ? px[0] : luma_ref(px[0], px[1], px[2]);
        }
    const char *p = tl_path("colour.png");
    CHECK(write_png(p, &(png_spec){w, h, color_type, depth, interlace, s, NULL, 0}) == 0);
    gray_image im;
    sx_err e;
    CHECK(image_load_gray(p, &im, &e) == 0);
    CHECK(im.width == w && im.height == h);
    double mean = 0, max = 1e9;
    if (im.data) diff_stats(&im, want, &mean, &max);
    CHECKF(max <= maxv * 1e-6, "type %d depth %d interlace %d: max diff %g", color_type, depth, interlace, max);
    gray_image_free(&im);
    free(want);
    free(s);
}

TEST(image_png_colour_types) {
    int types[] = {PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGBA, PNG_COLOR_TYPE_GA};
    for (int t = 0; t < 3; t++)
        for (int depth = 8; depth <= 16; depth += 8)
            for (int il = 0; il <= 1; il++) check_colour_png(types[t], depth, il);
}

TEST(image_png_palette) {
    png_color plte[4] = {{0, 0, 0}, {255, 255, 255}, {200, 10, 30}, {5, 250, 60}};
    int w = 13, h = 11;
    uint16_t s[13 * 11];
    for (int i = 0; i < w * h; i++) s[i] = (uint16_t)(i % 4);
    const char *p = tl_path("pal.png");
    CHECK(write_png(p, &(png_spec){w, h, PNG_COLOR_TYPE_PALETTE, 8, 0, s, plte, 4}) == 0);
    gray_image im;
    sx_err e;
    CHECK(image_load_gray(p, &im, &e) == 0);
    for (int i = 0; i < w * h && im.data; i++) {
        png_color c = plte[s[i]];
        CHECK_NEAR(im.data[i], luma_ref(c.red, c.green, c.blue), 1e-3);
    }
    gray_image_free(&im);
}

/* ------------------------------------------------------------------------ */
/* JPEG loading                                                             */

/* Write j to NAME in the scratch dir and load it back (both CHECKed, and
 * the size); CHECKed too: mean |loaded - want| < mean_lt and max <= max_le
 * (1e9 each when nothing loaded; `variant` names the case in the message).
 * The image, for the caller to inspect and free. */
static gray_image jpeg_round_trip(const char *name, const tl_jpeg *j, const float *want, double mean_lt, double max_le,
                                  int variant) {
    double mean, max;
    const char *p = tl_path(name);
    CHECK(tl_write_jpeg(p, j) == 0);
    gray_image im;
    sx_err e;
    CHECKF(image_load_gray(p, &im, &e) == 0, "%s", e.msg);
    CHECK(im.width == j->w && im.height == j->h);
    mean = max = 1e9;
    if (im.data) diff_stats(&im, want, &mean, &max);
    CHECKF(mean < mean_lt && max <= max_le, "%s variant %d: mean %g max %g", name, variant, mean, max);
    return im;
}

TEST(image_jpeg_gray_and_progressive) {
    int w = 96, h = 80;
    uint8_t *px = disk_gray8(w, h);
    float *want = malloc(sizeof *want * w * h);
    for (int i = 0; i < w * h; i++) want[i] = px[i];
    for (int prog = 0; prog <= 1; prog++) {
        gray_image im = jpeg_round_trip("g.jpg", &(tl_jpeg){w, h, 1, 98, prog, 0, px, NULL, 0}, want, 0.5, 12, prog);
        /* away from the disk edge the error is tiny */
        if (im.data) CHECK_NEAR(im.data[5 * w + 90], want[5 * w + 90], 2);
        gray_image_free(&im);
    }
    free(want);
    free(px);
}

TEST(image_jpeg_rgb_and_progressive) {
    int w = 96, h = 80;
    uint8_t *px = malloc((size_t)w * h * 3);
    float *want = malloc(sizeof *want * w * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = px + (y * w + x) * 3;
            colour_px(x, y, w, h, q);
            want[y * w + x] = luma_ref(q[0], q[1], q[2]);
        }
    for (int prog = 0; prog <= 1; prog++) {
        gray_image im = jpeg_round_trip("rgb.jpg", &(tl_jpeg){w, h, 3, 98, prog, 0, px, NULL, 0}, want, 1.0, 16, prog);
        /* luma is not rounded: some pixel must be off an integer */
        int frac = 0;
        for (int i = 0; i < w * h && im.data; i++) frac += im.data[i] != floorf(im.data[i]);
        CHECK(frac > 0);
        gray_image_free(&im);
    }
    free(want);
    free(px);
}

/* CMYK as Photoshop stores it (Adobe marker, inverted: stored = 255 - ink),
 * both as YCCK (libjpeg's default) and plain CMYK; and plain CMYK without an
 * Adobe marker (stored = ink). */
TEST(image_jpeg_cmyk) {
    int w = 64, h = 48;
    uint8_t *px = malloc((size_t)w * h * 4);
    for (int mode = 0; mode < 3; mode++) {
        float *want = malloc(sizeof *want * w * h);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                uint8_t rgb[3], *q = px + (y * w + x) * 4;
                colour_px(x, y, w, h, rgb);
                int k = 40; /* 40 of ink on every pixel */
                /* ink C = 255 - R', with R = R' (255 - k) / 255 */
                for (int c = 0; c < 3; c++) q[c] = (uint8_t)(255 - rgb[c]);
                q[3] = (uint8_t)k;
                want[y * w + x] = luma_ref(rgb[0] * (255.0 - k) / 255, rgb[1] * (255.0 - k) / 255,
                                           rgb[2] * (255.0 - k) / 255);
                if (mode < 2) for (int c = 0; c < 4; c++) q[c] = (uint8_t)(255 - q[c]);
            }
        gray_image im = jpeg_round_trip("cmyk.jpg", &(tl_jpeg){w, h, 4, 98, 0, mode, px, NULL, 0}, want, 1.0, 12, mode);
        gray_image_free(&im);
        free(want);
    }
    free(px);
}

TEST(image_jpeg_truncated_warns_and_decodes) {
    int w = 128, h = 128;
    uint8_t *px = malloc((size_t)w * h * 3);
    uint32_t r = 12345;
    for (int i = 0; i < w * h * 3; i++) { r = r * 1103515245u + 12345u; px[i] = (uint8_t)(r >> 24); }
    for (int prog = 0; prog <= 1; prog++) {
        const char *full = tl_path("full.jpg"), *cut = tl_path("cut.jpg"), *log = tl_path("stderr.txt");
        CHECK(tl_write_jpeg(full, &(tl_jpeg){w, h, 3, 90, prog, 0, px, NULL, 0}) == 0);
        size_t n;
        uint8_t *bytes = tl_read_file(full, &n);
        CHECK(bytes && tl_write_file(cut, bytes, n / 2) == 0);
        gray_image im;
        sx_err e;
        int saved = tl_stderr_begin(log);
        int rc = image_load_gray(cut, &im, &e);
        tl_stderr_end(saved);
        CHECKF(rc == 0, "%s", e.msg);
        CHECK(im.width == w && im.height == h);
        size_t ln;
        char *msg = tl_read_file(log, &ln);
        CHECKF(msg && strstr(msg, "skelex: warning: ") && strstr(msg, cut) &&
                   strstr(msg, "truncated JPEG, decoded what was present"),
               "stderr was: %s", msg ? msg : "(none)");
        CHECKF(msg && !strchr(msg, '\n')[1], "more than one line: %s", msg);
        if (!prog && im.data) { /* baseline: the first rows are there and right */
            double err = 0;
            for (int x = 0; x < w; x++) {
                const uint8_t *q = px + x * 3;
                err += fabs(im.data[x] - luma_ref(q[0], q[1], q[2]));
            }
            CHECKF(err / w < 20, "first row mean error %g", err / w);
        }
        free(msg);
        free(bytes);
        gray_image_free(&im);
    }
    free(px);
}

TEST(image_jpeg_too_large_rejected) {
    int w = 20000, h = 8;
    uint8_t *px = calloc((size_t)w * h, 1);
    const char *p = tl_path("wide.jpg");
    CHECK(tl_write_jpeg(p, &(tl_jpeg){w, h, 1, 50, 0, 0, px, NULL, 0}) == 0);
    gray_image im;
    sx_err e;
    CHECK(image_load_gray(p, &im, &e) == -1);
    CHECKF(strstr(e.msg, p) && strstr(e.msg, "too large"), "%s", e.msg);
    CHECK(im.data == NULL);
    free(px);
}

/* ------------------------------------------------------------------------ */
/* EXIF orientation                                                         */

/* APP1 "Exif" payload with one IFD0 entry: orientation o (SHORT). */
static unsigned make_exif(uint8_t *b, int o, int big_endian, uint32_t ifd_off, uint16_t count) {
    unsigned n = 0;
    memcpy(b, "Exif\0\0", 6);
    n = 6;
#define PUT16(v) do { uint16_t v_ = (uint16_t)(v); if (big_endian) { b[n++] = (uint8_t)(v_ >> 8); b[n++] = (uint8_t)v_; } \
                      else { b[n++] = (uint8_t)v_; b[n++] = (uint8_t)(v_ >> 8); } } while (0)
#define PUT32(v) do { uint32_t w_ = (uint32_t)(v); if (big_endian) { PUT16(w_ >> 16); PUT16(w_); } \
                      else { PUT16(w_); PUT16(w_ >> 16); } } while (0)
    b[n++] = big_endian ? 'M' : 'I';
    b[n++] = big_endian ? 'M' : 'I';
    PUT16(42);
    PUT32(ifd_off);
    PUT16(count);
    PUT16(0x0112); PUT16(3); PUT32(1); PUT16(o); PUT16(0);
    PUT32(0);
#undef PUT16
#undef PUT32
    return n;
}

/* 48x32 dark image with a bright 8x8 block in its top-left corner. */
static gray_image load_oriented(const uint8_t *app1, unsigned len, int *rc) {
    int w = 48, h = 32;
    uint8_t px[48 * 32];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) px[y * w + x] = (x < 8 && y < 8) ? 230 : 30;
    const char *p = tl_path("exif.jpg");
    tl_write_jpeg(p, &(tl_jpeg){w, h, 1, 95, 0, 0, px, app1, len});
    gray_image im;
    sx_err e;
    *rc = image_load_gray(p, &im, &e);
    return im;
}

static float at(const gray_image *im, int x, int y) { return im->data[y * im->width + x]; }

TEST(image_exif_orientation) {
    /* orientation o (TIFF header big-endian or not): the size after it and
     * where the top-left block lands (bx, by) */
    static const struct { int o, big_endian, w, h, bx, by; } cases[] = {
        {6, 0, 32, 48, 28, 3},  /* 6 = rotate 90 CW: 48x32 -> 32x48, top-left block -> top-right */
        {6, 1, 32, 48, 28, 3},  /* the same with a big-endian TIFF header */
        {8, 0, 32, 48, 3, 44},  /* 8 = rotate 90 CCW: block -> bottom-left */
        {3, 0, 48, 32, 44, 28}, /* 3 = rotate 180: block -> bottom-right, size kept */
        {2, 0, 48, 32, 44, 3},  /* 2 = mirror: block -> top-right */
    };
    uint8_t b[64];
    int rc;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        unsigned n = make_exif(b, cases[k].o, cases[k].big_endian, 8, 1);
        gray_image im = load_oriented(b, n, &rc);
        CHECKF(rc == 0 && im.width == cases[k].w && im.height == cases[k].h, "case %zu", k);
        if (im.data)
            CHECKF(at(&im, cases[k].bx, cases[k].by) > 200 && at(&im, 3, 3) < 60 && (k != 0 || at(&im, 3, 44) < 60),
                   "case %zu", k);
        gray_image_free(&im);
    }
}

TEST(image_exif_malformed_ignored) {
    uint8_t b[64];
    int rc;
    struct { uint32_t off; uint16_t count; } cases[] = {{0xFFFFFFF0u, 1}, {8, 0xFFFF}, {30, 1}};
    for (int i = 0; i < 3; i++) {
        unsigned n = make_exif(b, 6, 0, cases[i].off, cases[i].count);
        gray_image im = load_oriented(b, n, &rc);
        /* count 0xFFFF runs off the end before the real entry is judged; the
         * first entry is still orientation 6 there, which is fine either way */
        CHECK(rc == 0);
        if (i != 1) CHECKF(im.width == 48 && im.height == 32, "case %d: %dx%d", i, im.width, im.height);
        gray_image_free(&im);
    }
    /* truncated segment: only the Exif id and half a TIFF header */
    gray_image im = load_oriented((const uint8_t *)"Exif\0\0II*", 9, &rc);
    CHECK(rc == 0 && im.width == 48);
    gray_image_free(&im);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */

static void expect_load_error(const char *p, const char *what) {
    gray_image im;
    sx_err e;
    e.msg[0] = 0;
    int saved = tl_stderr_begin(tl_path("err.txt"));
    int rc = image_load_gray(p, &im, &e);
    tl_stderr_end(saved);
    CHECKF(rc == -1, "%s: loaded", what);
    CHECKF(strstr(e.msg, p) != NULL, "%s: message lacks the path: %s", what, e.msg);
    CHECKF(!strchr(e.msg, '\n'), "%s: multi-line message", what);
    CHECK(im.data == NULL);
}

TEST(image_load_errors) {
    uint8_t junk[2000];
    uint32_t r = 99;
    for (size_t i = 0; i < sizeof junk; i++) { r = r * 1664525u + 1013904223u; junk[i] = (uint8_t)(r >> 24); }
    junk[0] = 'x';
    const char *p = tl_path("junk.bin");
    CHECK(tl_write_file(p, junk, sizeof junk) == 0);
    expect_load_error(p, "garbage");

    junk[0] = 0xFF; junk[1] = 0xD8; junk[2] = 0xFF; junk[3] = 0xE0;
    p = tl_path("junk.jpg");
    CHECK(tl_write_file(p, junk, sizeof junk) == 0);
    expect_load_error(p, "JPEG magic then garbage");

    memcpy(junk, "\x89PNG\r\n\x1a\n", 8);
    p = tl_path("junk.png");
    CHECK(tl_write_file(p, junk, sizeof junk) == 0);
    expect_load_error(p, "PNG signature then garbage");

    p = tl_path("empty.png");
    CHECK(tl_write_file(p, "", 0) == 0);
    expect_load_error(p, "empty file");

    expect_load_error(tl_path("does-not-exist.png"), "missing file");
    expect_load_error(tl_tmpdir(), "directory");

    /* a valid PNG cut short */
    uint16_t s[64 * 64];
    for (int i = 0; i < 64 * 64; i++) s[i] = (uint16_t)(i * 37 % 251);
    p = tl_path("whole.png");
    CHECK(write_png(p, &(png_spec){64, 64, PNG_COLOR_TYPE_GRAY, 8, 0, s, NULL, 0}) == 0);
    size_t n;
    uint8_t *bytes = tl_read_file(p, &n);
    p = tl_path("cut.png");
    CHECK(bytes && tl_write_file(p, bytes, n / 2) == 0);
    free(bytes);
    expect_load_error(p, "truncated PNG");
}

/* ------------------------------------------------------------------------ */
/* Min-max, preprocessing, PNG writing                                      */

TEST(image_minmax_u8_values) {
    float v[5] = {10, 20, 30, 1010, 510};
    gray_image im = {5, 1, v};
    uint8_t out[5];
    image_minmax_u8(&im, out);
    /* (v - 10) / 1000 * 255 = 0, 2.55, 5.1, 255, 127.5 (ties to even) */
    CHECK(out[0] == 0 && out[1] == 3 && out[2] == 5 && out[3] == 255 && out[4] == 128);
    float c[4] = {7, 7, 7, 7};
    gray_image ci = {2, 2, c};
    uint8_t co[4] = {1, 1, 1, 1};
    image_minmax_u8(&ci, co);
    CHECK(co[0] == 0 && co[1] == 0 && co[2] == 0 && co[3] == 0);
}

TEST(image_preprocess_no_resize) {
    float v[4] = {100, 200, 300, 150};
    gray_image im = {2, 2, v};
    float chw[3 * 4];
    image_preprocess(&im, 2, chw);
    uint8_t u[4] = {0, 128, 255, 64}; /* 127.5 -> 128, 63.75 -> 64 */
    const double mean[3] = {0.485, 0.456, 0.406}, sd[3] = {0.229, 0.224, 0.225};
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 4; i++) CHECK_NEAR(chw[c * 4 + i], (u[i] / 255.0 - mean[c]) / sd[c], 1e-5);
    uint8_t rgb[12];
    image_chw_to_rgb8(chw, 2, rgb);
    for (int i = 0; i < 4; i++)
        CHECK(rgb[i * 3] == u[i] && rgb[i * 3 + 1] == u[i] && rgb[i * 3 + 2] == u[i]);
    float wild[3] = {-100.f, 100.f, NAN};
    uint8_t w3[3];
    image_chw_to_rgb8(wild, 1, w3);
    CHECK(w3[0] == 0 && w3[1] == 255 && w3[2] == 0);
}

TEST(image_png_write_roundtrip) {
    int w = 23, h = 17;
    uint8_t g[23 * 17], rgb[23 * 17 * 3];
    for (int i = 0; i < w * h; i++) {
        g[i] = (uint8_t)(i * 13);
        rgb[i * 3] = (uint8_t)i; rgb[i * 3 + 1] = (uint8_t)(i * 3); rgb[i * 3 + 2] = (uint8_t)(255 - i);
    }
    sx_err e;
    gray_image im;
    const char *p = tl_path("out_g.png");
    CHECKF(png_write_u8(p, g, w, h, 1, &e) == 0, "%s", e.msg);
    CHECK(image_load_gray(p, &im, &e) == 0 && im.width == w && im.height == h);
    for (int i = 0; i < w * h && im.data; i++) CHECK(im.data[i] == g[i]);
    gray_image_free(&im);
    p = tl_path("out_rgb.png");
    CHECKF(png_write_u8(p, rgb, w, h, 3, &e) == 0, "%s", e.msg);
    CHECK(image_load_gray(p, &im, &e) == 0 && im.width == w && im.height == h);
    for (int i = 0; i < w * h && im.data; i++)
        CHECK_NEAR(im.data[i], luma_ref(rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2]), 1e-3);
    gray_image_free(&im);

    p = tl_path("no/such/dir/x.png");
    CHECK(png_write_u8(p, g, w, h, 1, &e) == -1);
    CHECKF(strstr(e.msg, p) != NULL, "%s", e.msg);
    CHECK(png_write_u8(tl_path("two.png"), g, w, h, 2, &e) == -1);
}

/* ------------------------------------------------------------------------ */
/* Resize against Pillow                                                    */

/* The formulas of tools/make_resize_fixture.py. */
static uint8_t pattern_a(int x, int y, int w, int h) {
    (void)w; (void)h;
    return (uint8_t)((x * 31 + y * 17 + ((x * y) % 23) * 9) % 256);
}

static uint8_t pattern_b(int x, int y, int w, int h) {
    int v = (x * 160) / w + (y * 60) / h, dx = x - w * 2 / 3, dy = y - h / 3;
    if (dx * dx + dy * dy < (h / 5) * (h / 5)) v = 250;
    if (y >= 20 && y < 40 && ((x / 2 + y / 2) % 2) == 0) v = 30;
    return (uint8_t)v;
}

#define FIX "tests/fixtures/resize/"

static uint8_t *load_u8(const char *path, int *w, int *h) {
    gray_image im;
    sx_err e;
    if (image_load_gray(path, &im, &e)) {
        fprintf(stderr, "    %s\n", e.msg);
        return NULL;
    }
    uint8_t *u = malloc((size_t)im.width * im.height);
    for (int i = 0; i < im.width * im.height; i++) u[i] = (uint8_t)im.data[i];
    *w = im.width;
    *h = im.height;
    gray_image_free(&im);
    return u;
}

/* Resize the formula image and compare with Pillow's; returns exact count. */
static void compare_with_pil(const char *name, uint8_t (*fn)(int, int, int, int), int sw, int sh, int dw,
                             int dh, long *exact_total, long *n_total, int *max_total) {
    uint8_t *src = malloc((size_t)sw * sh);
    for (int y = 0; y < sh; y++)
        for (int x = 0; x < sw; x++) src[y * sw + x] = fn(x, y, sw, sh);
    char path[256];
    int fw, fh;
    snprintf(path, sizeof path, FIX "%s.png", name);
    uint8_t *fin = load_u8(path, &fw, &fh);
    CHECKF(fin && fw == sw && fh == sh && !memcmp(fin, src, (size_t)sw * sh), "%s: formula drifted", path);
    snprintf(path, sizeof path, FIX "%s_to_%dx%d.png", name, dw, dh);
    uint8_t *pil = load_u8(path, &fw, &fh);
    CHECKF(pil && fw == dw && fh == dh, "%s missing or wrong size", path);
    uint8_t *out = malloc((size_t)dw * dh);
    image_resize_bilinear_u8(src, sw, sh, out, dw, dh);
    long exact = 0;
    int maxd = 0;
    for (int i = 0; i < dw * dh && pil; i++) {
        int d = abs(out[i] - pil[i]);
        exact += d == 0;
        if (d > maxd) maxd = d;
    }
    fprintf(stderr, "    %s %dx%d -> %dx%d: %ld/%d exact, max diff %d\n", name, sw, sh, dw, dh, exact, dw * dh,
            maxd);
    CHECK(maxd <= 1);
    CHECK(exact >= 0.99 * dw * dh);
    *exact_total += exact;
    *n_total += dw * dh;
    if (maxd > *max_total) *max_total = maxd;
    free(src);
    free(fin);
    free(pil);
    free(out);
}

TEST(image_resize_matches_pil) {
    long exact = 0, n = 0;
    int maxd = 0;
    int a_sizes[][2] = {{16, 16}, {64, 48}, {37, 20}, {80, 53}, {111, 159}};
    for (int i = 0; i < 5; i++)
        compare_with_pil("a37x53", pattern_a, 37, 53, a_sizes[i][0], a_sizes[i][1], &exact, &n, &maxd);
    compare_with_pil("b300x200", pattern_b, 300, 200, 224, 224, &exact, &n, &maxd);
    compare_with_pil("b300x200", pattern_b, 300, 200, 61, 45, &exact, &n, &maxd);
    fprintf(stderr, "    total: %ld/%ld pixels equal to Pillow, max diff %d\n", exact, n, maxd);
}

TEST(image_resize_identity_and_constant) {
    uint8_t src[7 * 5], out[19 * 3];
    for (int i = 0; i < 35; i++) src[i] = (uint8_t)(i * 7);
    uint8_t same[35];
    image_resize_bilinear_u8(src, 7, 5, same, 7, 5);
    CHECK(memcmp(src, same, 35) == 0);
    memset(src, 77, sizeof src);
    image_resize_bilinear_u8(src, 7, 5, out, 19, 3);
    int bad = 0;
    for (int i = 0; i < 19 * 3; i++) bad += out[i] != 77;
    CHECK(bad == 0);
}

/* End to end: a file through image_preprocess_file equals Pillow's resize
 * of the same pixels, normalised. pattern_a spans 0..255, so min-max is the
 * identity on it. */
TEST(image_preprocess_file_matches_pil) {
    int w, h;
    uint8_t *pil = load_u8(FIX "a37x53_to_16x16.png", &w, &h);
    CHECK(pil && w == 16 && h == 16);
    float chw[3 * 16 * 16];
    sx_err e;
    CHECKF(image_preprocess_file(FIX "a37x53.png", 16, chw, &e) == 0, "%s", e.msg);
    const double mean[3] = {0.485, 0.456, 0.406}, sd[3] = {0.229, 0.224, 0.225};
    int bad = 0;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 256 && pil; i++) bad += fabs(chw[c * 256 + i] - (pil[i] / 255.0 - mean[c]) / sd[c]) > 1e-5;
    CHECKF(bad == 0, "%d values differ", bad);
    CHECK(image_preprocess_file(tl_path("missing.png"), 16, chw, &e) == -1 && strstr(e.msg, "missing.png"));
    free(pil);
}

/* ------------------------------------------------------------------------ */
/* Hostile input: bounded, deterministic mutation of valid files. Each must
 * load or fail cleanly (the sanitizers watch for the rest).                */

static void mutate_and_load(const uint8_t *orig, size_t n, const char *name, int rounds, uint32_t seed) {
    uint8_t *b = malloc(n);
    const char *p = tl_path(name);
    int saved = tl_stderr_begin(tl_path("fuzz-stderr.txt")); /* corrupt JPEGs warn */
    int loaded = 0, bad_ok = 0, bad_msg = 0;
    for (int i = 0; i < rounds; i++) {
        memcpy(b, orig, n);
        size_t len = n;
        int flips = 1 + i % 8;
        for (int k = 0; k < flips; k++) {
            seed = seed * 1664525u + 1013904223u;
            size_t at = (seed >> 8) % n;
            seed = seed * 1664525u + 1013904223u;
            b[at] = (i % 3 == 0) ? (uint8_t)(seed >> 24) : (uint8_t)(b[at] ^ (1u << (seed >> 29)));
        }
        if (i % 5 == 4) { seed = seed * 1664525u + 1013904223u; len = (seed >> 8) % n; }
        if (tl_write_file(p, b, len)) break;
        gray_image im;
        sx_err e;
        if (image_load_gray(p, &im, &e) == 0) {
            loaded++;
            bad_ok += im.width <= 0 || im.height <= 0 || !im.data;
            gray_image_free(&im);
        } else {
            bad_msg += !strstr(e.msg, p) || im.data != NULL;
        }
    }
    tl_stderr_end(saved);
    CHECKF(bad_ok == 0, "%s: %d loads returned no pixels", name, bad_ok);
    CHECKF(bad_msg == 0, "%s: %d failures without the path or with pixels", name, bad_msg);
    fprintf(stderr, "    %s: %d of %d mutants loaded, the rest failed cleanly\n", name, loaded, rounds);
    free(b);
}

TEST(image_mutated_files_never_crash) {
    int w = 40, h = 30;
    uint8_t *px = disk_gray8(w, h);
    uint16_t s[40 * 30];
    for (int i = 0; i < w * h; i++) s[i] = px[i];
    size_t n;
    const char *p = tl_path("seed.png");
    CHECK(write_png(p, &(png_spec){w, h, PNG_COLOR_TYPE_GRAY, 8, 1, s, NULL, 0}) == 0);
    uint8_t *png = tl_read_file(p, &n);
    if (png) mutate_and_load(png, n, "m.png", 300, 1);
    free(png);
    uint8_t b[64];
    unsigned len = make_exif(b, 6, 0, 8, 1);
    for (int prog = 0; prog <= 1; prog++) {
        p = tl_path("seed.jpg");
        CHECK(tl_write_jpeg(p, &(tl_jpeg){w, h, 1, 90, prog, 0, px, b, len}) == 0);
        uint8_t *jpg = tl_read_file(p, &n);
        if (jpg) mutate_and_load(jpg, n, "m.jpg", 300, 7 + (uint32_t)prog);
        free(jpg);
    }
    free(px);
}
