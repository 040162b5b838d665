/* test_image_limits.c: headers that ask for more than the limits or the
 * data allow: refused before any pixel buffer, from files and memory. */
#include "io/image.h"
#include "testlib.h"
#include <stdlib.h>
#include <string.h>

static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & -(c & 1));
    }
    return ~c;
}

static void put32be(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* A PNG of signature, IHDR (w x h, 8-bit grey), an empty IDAT when idat,
 * and IEND, and no pixel data: 45 or 57 bytes into f. */
static void png_headers_only(uint8_t *f, uint32_t w, uint32_t h, int idat) {
    memcpy(f, "\x89PNG\r\n\x1a\n", 8);
    put32be(f + 8, 13);
    memcpy(f + 12, "IHDR", 4);
    put32be(f + 16, w);
    put32be(f + 20, h);
    f[24] = 8; f[25] = 0; f[26] = 0; f[27] = 0; f[28] = 0;
    put32be(f + 29, crc32_png(f + 12, 17));
    uint8_t *at = f + 33;
    for (int k = 0; k < 1 + (idat != 0); k++, at += 12) {
        const char *type = idat && k == 0 ? "IDAT" : "IEND";
        put32be(at, 0);
        memcpy(at + 4, type, 4);
        put32be(at + 8, crc32_png(at + 4, 4));
    }
}

TEST(image_png_huge_header_rejected) {
    /* signature + IHDR (100000 x 100000, 8-bit grey) + an empty IEND: were
     * the decoder to trust it, it would ask for 10 GB. */
    uint8_t f[8 + 25 + 12];
    png_headers_only(f, 100000, 100000, 0);
    const char *p = tl_path("huge.png");
    CHECK(tl_write_file(p, f, sizeof f) == 0);
    gray_image im;
    sx_err e;
    CHECK(image_load_gray(p, &im, &e) == -1);
    CHECKF(strstr(e.msg, p) && strstr(e.msg, "too large"), "%s", e.msg);
}

/* ------------------------------------------------------------------------ */
/* Declared size against the data (issue 21, item 19)                       */

TEST(image_png_declared_size_over_data_refused) {
    /* 16000 x 16000 8-bit grey (within the pixel limits) in 57 bytes: inflating
     * can give at most 1032 bytes a byte, never the 256 MB the header asks for */
    uint8_t f[8 + 25 + 12 + 12];
    png_headers_only(f, 16000, 16000, 1);
    const char *p = tl_path("bomb.png");
    CHECK(tl_write_file(p, f, sizeof f) == 0);
    gray_image im;
    sx_err e;
    CHECK(image_load_gray(p, &im, &e) == -1 && im.data == NULL);
    CHECKF(strstr(e.msg, p) && strstr(e.msg, "refused before decoding"), "%s", e.msg);
    CHECK(image_load_gray_mem(f, sizeof f, "upload", NULL, &im, &e) == -1);
    CHECKF(strstr(e.msg, "upload") && strstr(e.msg, "refused before decoding"), "%s", e.msg);
    /* a real flat image compresses within the bound and still loads */
    uint8_t *flat = calloc(2000 * 2000, 1);
    CHECK(png_write_u8(tl_path("flat.png"), flat, 2000, 2000, 1, &e) == 0);
    free(flat);
    CHECKF(image_load_gray(tl_path("flat.png"), &im, &e) == 0, "%s", e.msg);
    CHECK(im.width == 2000 && im.height == 2000);
    gray_image_free(&im);
}

TEST(image_jpeg_declared_size_over_data_refused) {
    uint8_t px[64 * 64];
    for (int i = 0; i < 64 * 64; i++) px[i] = (uint8_t)(i * 13);
    const char *p = tl_path("small.jpg");
    CHECK(tl_write_jpeg(p, &(tl_jpeg){64, 64, 1, 80, 0, 0, px, NULL, 0}) == 0);
    size_t n;
    uint8_t *b = tl_read_file(p, &n);
    /* the frame header (SOF0: FF C0, length, precision, height, width) now says 16000 x 16000 */
    size_t at = 2;
    while (b && at + 9 < n && !(b[at] == 0xFF && b[at + 1] == 0xC0)) at++;
    CHECK(b && at + 9 < n);
    if (!b || at + 9 >= n) { free(b); return; }
    b[at + 5] = 16000 >> 8; b[at + 6] = 16000 & 0xFF;
    b[at + 7] = 16000 >> 8; b[at + 8] = 16000 & 0xFF;
    const char *q = tl_path("bomb.jpg");
    CHECK(tl_write_file(q, b, n) == 0);
    gray_image im;
    sx_err e;
    CHECK(image_load_gray(q, &im, &e) == -1 && im.data == NULL);
    CHECKF(strstr(e.msg, q) && strstr(e.msg, "refused before decoding"), "%s", e.msg);
    CHECK(image_load_gray_mem(b, n, "upload.jpg", NULL, &im, &e) == -1 && strstr(e.msg, "refused before decoding"));
    /* the untouched file from memory equals the file */
    gray_image a, c;
    CHECK(image_load_gray(p, &a, &e) == 0);
    CHECK(tl_write_file(q, b, n) == 0);
    free(b);
    b = tl_read_file(p, &n);
    CHECK(image_load_gray_mem(b, n, "upload.jpg", NULL, &c, &e) == 0);
    CHECK(a.width == c.width && a.height == c.height && !memcmp(a.data, c.data, sizeof(float) * 64 * 64));
    gray_image_free(&a);
    gray_image_free(&c);
    free(b);
}
