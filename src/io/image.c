/* image.c: image file I/O and the SKELEX preprocessing (contract: image.h).
 *
 * Does:
 *  - load PNG (libspng; 1..16-bit grey, grey+alpha, RGB, RGBA, palette,
 *    interlaced or not), JPEG (libjpeg-turbo; grey, YCbCr/RGB, CMYK/YCCK
 *    including Adobe's inverted CMYK) and DICOM (dicom_shim.cpp on DCMTK:
 *    windowed, MONOCHROME1 inverted, first frame) into a float grey image,
 *    detecting the format by magic bytes, never by extension. Colour becomes
 *    luma 0.299 R + 0.587 G + 0.114 B, computed in float and not rounded;
 *    16-bit PNG keeps 0..65535, DICOM is rendered to 0..65535;
 *  - refuse before reading: directories, files over IMG_MAX_FILE_BYTES;
 *  - apply the JPEG EXIF orientation (APP1 tag 0x0112), so the image is
 *    upright as a viewer shows it;
 *  - decode a truncated JPEG as far as it goes, with one warning line on
 *    stderr (or handed to the caller, image_load_gray_opts); any other
 *    libjpeg warning also gives one line per file;
 *  - decode a JPEG reduced in the DCT domain (1/2, 1/4, 1/8) when the caller
 *    only needs a minimum size (image_load_gray_min), so a large radiograph
 *    is not fully decoded to make a small model input;
 *  - reject images over IMG_MAX_SIDE a side, IMG_MAX_PIXELS (or the
 *    caller's lower max_pixels) or of zero size before allocating pixels;
 *  - min-max to 8 bits, a bit-exact port of Pillow's BILINEAR resize for
 *    8-bit grey (antialiased when shrinking; fixed point as in Pillow's
 *    Resample.c), ImageNet normalisation and its inverse, 8-bit PNG writing.
 * Does not: gamma/ICC colour management, alpha compositing (alpha is
 * ignored), PNG eXIf orientation, 16-bit output.
 */
#include "io/image.h"
#include "io/dicom.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h>
#include <spng.h>

#define IMG_MAX_SIDE 16384
/* 256 Mpixel (2^28): implied by the side limit today, kept separate so that
 * raising the side limit does not silently raise the memory bound. */
#define IMG_MAX_PIXELS ((uint64_t)256 << 20)
/* No radiograph file is near 1 GiB; a larger one is refused unread. */
#define IMG_MAX_FILE_BYTES ((uint64_t)1 << 30)
/* Bound on what libspng may hold for ancillary chunks (text, ICC, EXIF),
 * one chunk and all together. libspng does not apply it to IDAT (checked:
 * a 9 MB IDAT decodes under a 1 MB limit), and needs size <= cache. */
#define PNG_CHUNK_LIMIT ((size_t)64 << 20)

const float IMAGENET_MEAN[3] = {0.485f, 0.456f, 0.406f};
const float IMAGENET_STD[3] = {0.229f, 0.224f, 0.225f};

/* ------------------------------------------------------------------------ */
/* Shared helpers                                                           */

/* The pixel bound in force: IMG_MAX_PIXELS or the caller's lower one. */
static uint64_t max_pixels_of(const image_load_opts *o) {
    return o->max_pixels > 0 && o->max_pixels < IMG_MAX_PIXELS ? o->max_pixels : IMG_MAX_PIXELS;
}

static int check_dims(const char *path, uint64_t w, uint64_t h, uint64_t max_pixels, sx_err *err) {
    if (w == 0 || h == 0)
        return sx_fail(err, "%s: image has zero size (%llux%llu)", path,
                       (unsigned long long)w, (unsigned long long)h);
    if (w > IMG_MAX_SIDE || h > IMG_MAX_SIDE || w * h > max_pixels)
        return sx_fail(err, "%s: image too large (%llux%llu; limit %d px a side, %llu pixels)",
                       path, (unsigned long long)w, (unsigned long long)h, IMG_MAX_SIDE,
                       (unsigned long long)max_pixels);
    return 0;
}

/* Luma with PIL's 'L' weights, in float, unrounded. Grey (r == g == b)
 * returns r exactly (the weights sum to 1) instead of r up to rounding. */
static float luma(float r, float g, float b) {
    if (r == g && g == b) return r;
    return 0.299f * r + 0.587f * g + 0.114f * b;
}

static float *alloc_pixels(int w, int h) {
    return sx_malloc((size_t)w * (size_t)h * sizeof(float));
}

void gray_image_free(gray_image *img) {
    if (!img) return;
    free(img->data);
    img->data = NULL;
    img->width = img->height = 0;
}

/* ------------------------------------------------------------------------ */
/* EXIF orientation                                                         */

static unsigned exif_u16(const uint8_t *p, int le) {
    return le ? (unsigned)(p[0] | p[1] << 8) : (unsigned)(p[0] << 8 | p[1]);
}

static uint32_t exif_u32(const uint8_t *p, int le) {
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Orientation (1..8) from an APP1 payload, or 1 when absent or malformed.
 * Every offset read from the data is checked against n. */
static int exif_orientation(const uint8_t *p, size_t n) {
    if (n < 6 + 8 || memcmp(p, "Exif\0\0", 6) != 0) return 1;
    const uint8_t *t = p + 6; /* TIFF header */
    size_t tn = n - 6;
    int le;
    if (t[0] == 'I' && t[1] == 'I') le = 1;
    else if (t[0] == 'M' && t[1] == 'M') le = 0;
    else return 1;
    if (exif_u16(t + 2, le) != 42) return 1;
    size_t ifd = exif_u32(t + 4, le);
    if (ifd > tn || tn - ifd < 2) return 1;
    unsigned count = exif_u16(t + ifd, le);
    for (unsigned i = 0; i < count; i++) {
        size_t off = ifd + 2 + (size_t)i * 12;
        if (off > tn || tn - off < 12) break;
        if (exif_u16(t + off, le) != 0x0112) continue;
        unsigned type = exif_u16(t + off + 2, le);
        uint32_t cnt = exif_u32(t + off + 4, le);
        if (type != 3 || cnt < 1) return 1; /* must be SHORT */
        unsigned v = exif_u16(t + off + 8, le);
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

/* Where the output pixel (x, y) comes from in a w x h source, for EXIF
 * orientation o (the transform that makes the stored image upright). */
static void orient_source(int o, int x, int y, int w, int h, int *sx, int *sy) {
    switch (o) {
    case 2: *sx = w - 1 - x; *sy = y; break;             /* mirror horizontal */
    case 3: *sx = w - 1 - x; *sy = h - 1 - y; break;     /* rotate 180 */
    case 4: *sx = x; *sy = h - 1 - y; break;             /* mirror vertical */
    case 5: *sx = y; *sy = x; break;                     /* transpose */
    case 6: *sx = y; *sy = h - 1 - x; break;             /* rotate 90 CW */
    case 7: *sx = w - 1 - y; *sy = h - 1 - x; break;     /* transverse */
    case 8: *sx = w - 1 - y; *sy = x; break;             /* rotate 90 CCW */
    default: *sx = x; *sy = y; break;
    }
}

static void apply_orientation(gray_image *img, int o) {
    if (o <= 1 || o > 8) return;
    int w = img->width, h = img->height;
    int ow = o >= 5 ? h : w, oh = o >= 5 ? w : h;
    float *out = alloc_pixels(ow, oh);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int sx, sy;
            orient_source(o, x, y, w, h, &sx, &sy);
            out[(size_t)y * ow + x] = img->data[(size_t)sy * w + sx];
        }
    free(img->data);
    img->data = out;
    img->width = ow;
    img->height = oh;
}

/* ------------------------------------------------------------------------ */
/* JPEG                                                                     */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int truncated;                    /* saw JWRN_JPEG_EOF */
    char warning[JMSG_LENGTH_MAX];    /* first other warning */
    char error[JMSG_LENGTH_MAX];
} jpeg_errors;

/* Everything the decoder allocates lives here, in the caller's frame, so a
 * longjmp out of libjpeg cannot lose it and the caller can always clean up. */
typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_errors jerr;
    int created;
    uint8_t *row;
    float *pix;
} jpeg_job;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_errors *e = (jpeg_errors *)cinfo->err;
    cinfo->err->format_message(cinfo, e->error);
    longjmp(e->jump, 1);
}

/* Warnings (level -1) are collected, not printed; trace messages dropped. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    jpeg_errors *e = (jpeg_errors *)cinfo->err;
    if (level >= 0) return;
    if (cinfo->err->msg_code == JWRN_JPEG_EOF) e->truncated = 1;
    else if (!e->warning[0]) cinfo->err->format_message(cinfo, e->warning);
    cinfo->err->num_warnings++;
}

static int jpeg_orientation(j_decompress_ptr cinfo) {
    for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1) {
            int o = exif_orientation(m->data, m->data_length);
            if (o != 1) return o;
        }
    return 1;
}

/* One decoded scanline (1, 3 or 4 components) to luma. CMYK is converted
 * with R = (255-C)(255-K)/255 etc.; Adobe files store it inverted. */
static void jpeg_row_to_gray(const uint8_t *row, int w, int nc, int inverted, float *out) {
    for (int x = 0; x < w; x++) {
        const uint8_t *p = row + (size_t)x * nc;
        if (nc == 1) {
            out[x] = p[0];
        } else if (nc == 3) {
            out[x] = luma(p[0], p[1], p[2]);
        } else {
            float c = p[0], m = p[1], y = p[2], k = p[3];
            if (!inverted) { c = 255 - c; m = 255 - m; y = 255 - y; k = 255 - k; }
            /* now c, m, y, k hold 255 - ink, so R = c * k / 255 */
            out[x] = luma(c * k / 255.0f, m * k / 255.0f, y * k / 255.0f);
        }
    }
}

/* Pick the largest DCT-domain reduction (1/8, then 1/4, then 1/2) whose
 * output keeps the shorter side >= min_side; full size when none does or
 * min_side <= 0. Needs out_color_space set (output dimensions depend on it). */
static void jpeg_choose_scale(j_decompress_ptr ci, int min_side) {
    static const unsigned denoms[3] = {8, 4, 2};
    if (min_side > 0)
        for (int i = 0; i < 3; i++) {
            ci->scale_num = 1;
            ci->scale_denom = denoms[i];
            jpeg_calc_output_dimensions(ci);
            JDIMENSION shorter = ci->output_width < ci->output_height ? ci->output_width : ci->output_height;
            if (shorter >= (JDIMENSION)min_side) return;
        }
    ci->scale_num = 1;
    ci->scale_denom = 1;
}

/* A decoder warning: printed on stderr, or handed to the caller. */
static void jpeg_report_warning(const image_load_opts *o, const char *path, const char *what) {
    if (o->warning) sx_fail(o->warning, "%s: %s", path, what);
    else fprintf(stderr, "skelex: warning: %s: %s\n", path, what);
}

/* Where encoded bytes come from: a FILE (f) or memory (buf, len); size is
 * the encoded size either way (the budget of decoded pixels is set by it). */
typedef struct { FILE *f; const uint8_t *buf; size_t len; uint64_t size; } img_src;

/* Declared size vs data: no decoder may be asked for more pixels than its
 * input can plausibly hold (a few hundred bytes declaring 16384 x 16384
 * would cost a gigabyte before the data runs out). Bounds, with a 1 Mpixel
 * floor that every small image is under:
 *  - JPEG: JPEG_PIXELS_PER_BYTE pixels per byte of file. A flat 8x8 block
 *    costs at least ~2 bits in baseline Huffman coding (about 256 pixels a
 *    byte); progressive end-of-band runs do better on blank images, which
 *    are not radiographs; 1024 leaves a 4x margin over baseline.
 *  - PNG: deflate expands at most 1032:1 (a 258-byte match in under 2 bits
 *    per symbol), so the filtered rows (height x (1 + row bytes)) can be at
 *    most PNG_INFLATE_RATIO x the file size. */
#define JPEG_PIXELS_PER_BYTE 1024u
#define PNG_INFLATE_RATIO 1032u
#define BUDGET_FLOOR_PIXELS ((uint64_t)1 << 20)

static int check_budget(const char *path, const char *fmt, uint64_t need, uint64_t size, uint64_t per_byte,
                        const char *unit, sx_err *err) {
    uint64_t can = size * per_byte;
    if (need <= BUDGET_FLOOR_PIXELS || need <= can) return 0;
    return sx_fail(err, "%s: %s declares %llu %s but the file has only %llu bytes (at most %llu per byte): "
                        "refused before decoding", path, fmt, (unsigned long long)need, unit,
                   (unsigned long long)size, (unsigned long long)per_byte);
}

static int jpeg_decode(jpeg_job *job, const img_src *src, const char *path, const image_load_opts *o,
                       gray_image *img, sx_err *err) {
    struct jpeg_decompress_struct *ci = &job->cinfo;
    ci->err = jpeg_std_error(&job->jerr.pub);
    job->jerr.pub.error_exit = jpeg_on_error;
    job->jerr.pub.emit_message = jpeg_on_message;
    if (setjmp(job->jerr.jump))
        return sx_fail(err, "%s: corrupt or unsupported JPEG: %s", path, job->jerr.error);
    jpeg_create_decompress(ci);
    job->created = 1;
    if (src->f) jpeg_stdio_src(ci, src->f);
    else jpeg_mem_src(ci, src->buf, (unsigned long)src->len);
    jpeg_save_markers(ci, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(ci, TRUE);
    if (check_dims(path, ci->image_width, ci->image_height, max_pixels_of(o), err)) return -1;
    if (check_budget(path, "JPEG", (uint64_t)ci->image_width * ci->image_height, src->size, JPEG_PIXELS_PER_BYTE,
                     "pixels", err))
        return -1;

    int cmyk = ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK;
    ci->out_color_space = ci->jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE
                          : cmyk                               ? JCS_CMYK
                                                               : JCS_RGB;
    int inverted = cmyk && ci->saw_Adobe_marker;
    int orientation = jpeg_orientation(ci);
    jpeg_choose_scale(ci, o->min_side);
    jpeg_start_decompress(ci);

    int w = (int)ci->output_width, h = (int)ci->output_height, nc = ci->output_components;
    if (nc != 1 && nc != 3 && nc != 4)
        return sx_fail(err, "%s: JPEG with %d components is not supported", path, nc);
    job->row = sx_malloc((size_t)w * (size_t)nc);
    job->pix = alloc_pixels(w, h);
    while (ci->output_scanline < ci->output_height) {
        JSAMPROW rows[1] = {job->row};
        size_t y = ci->output_scanline;
        if (jpeg_read_scanlines(ci, rows, 1) != 1)
            return sx_fail(err, "%s: JPEG decoder returned no data at row %zu", path, y);
        jpeg_row_to_gray(job->row, w, nc, inverted, job->pix + y * (size_t)w);
    }
    jpeg_finish_decompress(ci);

    if (job->jerr.truncated)
        jpeg_report_warning(o, path, "truncated JPEG, decoded what was present");
    else if (job->jerr.warning[0])
        jpeg_report_warning(o, path, job->jerr.warning);
    img->width = w;
    img->height = h;
    img->data = job->pix;
    job->pix = NULL;
    apply_orientation(img, orientation);
    return 0;
}

static int load_jpeg(const img_src *src, const char *path, const image_load_opts *o, gray_image *img, sx_err *err) {
    jpeg_job job;
    memset(&job, 0, sizeof job);
    int rc = jpeg_decode(&job, src, path, o, img, err);
    if (job.created) jpeg_destroy_decompress(&job.cinfo);
    free(job.row);
    free(job.pix);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* PNG                                                                      */

/* The libspng output format for a PNG and how to read it: channels per
 * pixel and bytes per sample (2 = host-endian uint16). */
typedef struct { int fmt, channels, bytes; } png_layout;

static png_layout png_layout_for(const struct spng_ihdr *h) {
    int b16 = h->bit_depth == 16;
    switch (h->color_type) {
    case SPNG_COLOR_TYPE_GRAYSCALE:
        return b16 ? (png_layout){SPNG_FMT_PNG, 1, 2} : (png_layout){SPNG_FMT_G8, 1, 1};
    case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA: return (png_layout){SPNG_FMT_PNG, 2, b16 ? 2 : 1};
    case SPNG_COLOR_TYPE_TRUECOLOR: return (png_layout){SPNG_FMT_PNG, 3, b16 ? 2 : 1};
    case SPNG_COLOR_TYPE_TRUECOLOR_ALPHA: return (png_layout){SPNG_FMT_PNG, 4, b16 ? 2 : 1};
    default: return (png_layout){SPNG_FMT_RGB8, 3, 1}; /* palette */
    }
}

static float png_sample(const uint8_t *p, int bytes) {
    if (bytes == 1) return p[0];
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* Convert the pixels x0, x0+dx, ... of one decoded row (dx > 1 for an
 * Adam7 pass, whose other pixels the decoder did not write). */
static void png_row_to_gray(const uint8_t *row, png_layout L, uint32_t x0, uint32_t dx, uint32_t w,
                            float *out) {
    size_t px = (size_t)L.channels * L.bytes;
    for (uint32_t x = x0; x < w; x += dx) {
        const uint8_t *p = row + x * px;
        if (L.channels < 3)
            out[x] = png_sample(p, L.bytes);
        else
            out[x] = luma(png_sample(p, L.bytes), png_sample(p + L.bytes, L.bytes),
                          png_sample(p + 2 * L.bytes, L.bytes));
    }
}

static int png_decode(spng_ctx *ctx, const char *path, uint64_t max_pixels, uint64_t size, gray_image *img,
                      uint8_t **row, sx_err *err) {
    static const uint32_t adam7_x0[7] = {0, 4, 0, 2, 0, 1, 0}, adam7_dx[7] = {8, 8, 4, 4, 2, 2, 1};
    struct spng_ihdr ih;
    int r = spng_get_ihdr(ctx, &ih);
    if (r == SPNG_EUSER_WIDTH || r == SPNG_EUSER_HEIGHT)
        return sx_fail(err, "%s: image too large (limit %d px a side)", path, IMG_MAX_SIDE);
    if (r) return sx_fail(err, "%s: bad PNG header: %s", path, spng_strerror(r));
    if (check_dims(path, ih.width, ih.height, max_pixels, err)) return -1;
    {
        static const int samples[7] = {1, 0, 3, 1, 2, 0, 4}; /* per colour type */
        uint64_t bits = (uint64_t)ih.width * samples[ih.color_type <= 6 ? ih.color_type : 0] * ih.bit_depth;
        uint64_t filtered = (uint64_t)ih.height * (1 + (bits + 7) / 8);
        if (filtered > BUDGET_FLOOR_PIXELS &&
            check_budget(path, "PNG", filtered, size, PNG_INFLATE_RATIO, "bytes of filtered rows", err))
            return -1;
    }

    png_layout L = png_layout_for(&ih);
    size_t row_bytes = (size_t)ih.width * L.channels * L.bytes;
    r = spng_decode_image(ctx, NULL, 0, L.fmt, SPNG_DECODE_PROGRESSIVE);
    if (r) return sx_fail(err, "%s: cannot decode PNG: %s", path, spng_strerror(r));
    *row = sx_malloc(row_bytes);
    img->data = alloc_pixels((int)ih.width, (int)ih.height);
    img->width = (int)ih.width;
    img->height = (int)ih.height;
    do {
        struct spng_row_info ri;
        r = spng_get_row_info(ctx, &ri);
        if (r) break;
        r = spng_decode_row(ctx, *row, row_bytes);
        if (r && r != SPNG_EOI) break;
        int pass = ih.interlace_method ? ri.pass : 6; /* pass 6 = every pixel */
        png_row_to_gray(*row, L, adam7_x0[pass], adam7_dx[pass], ih.width,
                        img->data + (size_t)ri.row_num * ih.width);
    } while (r != SPNG_EOI);
    if (r != SPNG_EOI) {
        gray_image_free(img);
        return sx_fail(err, "%s: corrupt PNG: %s", path, spng_strerror(r));
    }
    return 0;
}

static int load_png(const img_src *src, const char *path, uint64_t max_pixels, gray_image *img, sx_err *err) {
    spng_ctx *ctx = spng_ctx_new(0);
    if (!ctx) return sx_fail(err, "%s: cannot create PNG decoder", path);
    uint8_t *row = NULL;
    int rc = -1;
    if ((src->f ? spng_set_png_file(ctx, src->f) : spng_set_png_buffer(ctx, src->buf, src->len)) || spng_set_image_limits(ctx, IMG_MAX_SIDE, IMG_MAX_SIDE) ||
        spng_set_chunk_limits(ctx, PNG_CHUNK_LIMIT, PNG_CHUNK_LIMIT))
        sx_fail(err, "%s: cannot set up PNG decoder", path);
    else
        rc = png_decode(ctx, path, max_pixels, src->size, img, &row, err);
    free(row);
    spng_ctx_free(ctx);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */

/* DICOM through the shim (from the file at path, or from memory when
 * src->buf is set); a multi-frame warning goes where JPEG's go. */
static int load_dicom(const img_src *src, const char *path, const image_load_opts *o, gray_image *img,
                      sx_err *err) {
    dicom_limits lim = {.max_side = IMG_MAX_SIDE, .max_pixels = max_pixels_of(o), .file_size = src->size};
    sx_err warn;
    float *data;
    int w, h;
    int rc = src->buf ? dicom_load_gray_mem(src->buf, src->len, path, &lim, &data, &w, &h, &warn, err)
                      : dicom_load_gray(path, &lim, &data, &w, &h, &warn, err);
    if (rc) return -1;
    if (warn.msg[0]) {
        /* the shim's warning starts with the path, as jpeg_report_warning's */
        size_t lp = strlen(path);
        const char *what = !strncmp(warn.msg, path, lp) && !strncmp(warn.msg + lp, ": ", 2) ? warn.msg + lp + 2
                                                                                          : warn.msg;
        jpeg_report_warning(o, path, what);
    }
    img->width = w;
    img->height = h;
    img->data = data;
    return 0;
}

/* What the first bytes say the file is. */
enum { FMT_UNKNOWN, FMT_PNG, FMT_JPEG, FMT_DICOM };

static int sniff(const uint8_t *m, size_t n) {
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (n >= 8 && memcmp(m, png_magic, 8) == 0) return FMT_PNG;
    if (n >= 3 && m[0] == 0xFF && m[1] == 0xD8 && m[2] == 0xFF) return FMT_JPEG;
    if (dicom_sniff(m, n)) return FMT_DICOM;
    return FMT_UNKNOWN;
}

static int too_big_file(const char *path, uint64_t size, sx_err *err) {
    if (size <= IMG_MAX_FILE_BYTES) return 0;
    return sx_fail(err, "%s: file too large (%llu bytes; limit %llu)", path, (unsigned long long)size,
                   (unsigned long long)IMG_MAX_FILE_BYTES);
}

/* Open path and check it is a readable file within the size limit. */
static FILE *open_image(const char *path, uint64_t *size, sx_err *err) {
    FILE *f = sx_fopen_input(path, size, err);
    if (!f) return NULL;
    if (too_big_file(path, *size, err)) {
        fclose(f);
        return NULL;
    }
    return f;
}

/* Decode src (its first n bytes are magic[0..n)) by its format. */
static int decode(const img_src *src, const uint8_t *magic, size_t n, const char *path, const image_load_opts *o,
                  gray_image *img, sx_err *err) {
    int fmt = sniff(magic, n);
    if (n == 0) return sx_fail(err, "%s: empty file", path);
    if (fmt == FMT_DICOM)
        /* DCMTK reads a file by path; a non-regular file (pipe) has no size to bound it */
        return src->size > 0 ? load_dicom(src, path, o, img, err)
                             : sx_fail(err, "%s: DICOM must be read from a regular file", path);
    if (src->f && fseek(src->f, 0, SEEK_SET) != 0) return sx_fail(err, "%s: cannot seek: %s", path, strerror(errno));
    if (fmt == FMT_PNG) return load_png(src, path, max_pixels_of(o), img, err);
    if (fmt == FMT_JPEG) return load_jpeg(src, path, o, img, err);
    return sx_fail(err, "%s: not an image: not a PNG, JPEG or DICOM file (unrecognised signature)", path);
}

int image_load_gray_opts(const char *path, const image_load_opts *opts, gray_image *img, sx_err *err) {
    image_load_opts o = opts ? *opts : (image_load_opts){0};
    if (o.warning) o.warning->msg[0] = 0;
    img->width = img->height = 0;
    img->data = NULL;
    uint64_t size = 0;
    FILE *f = open_image(path, &size, err);
    if (!f) return -1;
    uint8_t magic[132] = {0};
    size_t n = fread(magic, 1, sizeof magic, f);
    int rc;
    if (n == 0 && ferror(f)) rc = sx_fail(err, "%s: cannot read: %s", path, strerror(errno));
    else rc = decode(&(img_src){.f = f, .size = size}, magic, n, path, &o, img, err);
    fclose(f);
    return rc;
}

int image_load_gray_mem(const void *data, size_t len, const char *name, const image_load_opts *opts, gray_image *img,
                        sx_err *err) {
    image_load_opts o = opts ? *opts : (image_load_opts){0};
    if (o.warning) o.warning->msg[0] = 0;
    img->width = img->height = 0;
    img->data = NULL;
    if (!name) name = "(memory)";
    if (!data && len) return sx_fail(err, "%s: no data", name);
    if (too_big_file(name, len, err)) return -1;
    return decode(&(img_src){.buf = data, .len = len, .size = len}, data, len < 132 ? len : 132, name, &o, img, err);
}

int image_load_gray(const char *path, gray_image *img, sx_err *err) {
    return image_load_gray_opts(path, NULL, img, err);
}

int image_load_gray_min(const char *path, int min_side, gray_image *img, sx_err *err) {
    return image_load_gray_opts(path, &(image_load_opts){.min_side = min_side}, img, err);
}

/* ------------------------------------------------------------------------ */
/* Min-max                                                                  */

void image_minmax_u8(const gray_image *in, uint8_t *out) {
    size_t n = (size_t)in->width * (size_t)in->height;
    if (n == 0) return;
    float mn = in->data[0], mx = in->data[0];
    for (size_t i = 1; i < n; i++) {
        if (in->data[i] < mn) mn = in->data[i];
        if (in->data[i] > mx) mx = in->data[i];
    }
    if (!(mx > mn)) {
        memset(out, 0, n);
        return;
    }
    float range = mx - mn;
    /* Round half to even as lrintf did, clamping in float (NaN -> 0) so the
     * conversion is always defined; inlined, the loop vectorises. */
    for (size_t i = 0; i < n; i++) {
        float v = rintf((in->data[i] - mn) / range * 255.0f);
        out[i] = (uint8_t)(v > 0.0f ? (v < 255.0f ? (int)v : 255) : 0);
    }
}

/* ------------------------------------------------------------------------ */
/* Resize: a port of Pillow's Resample.c (BILINEAR, 8 bits per channel).    */

#define PRECISION_BITS (32 - 8 - 2)

/* Per output position: the first input index, the tap count and ksize
 * fixed-point weights (zero past the tap count). */
typedef struct { int ksize; int *bounds; int32_t *k; } resample_coeffs;

static double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static void precompute_coeffs(int in_size, int out_size, resample_coeffs *c) {
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale, ss = 1.0 / filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *w = sx_malloc((size_t)ksize * sizeof *w);
    c->ksize = ksize;
    c->bounds = sx_malloc((size_t)out_size * 2 * sizeof *c->bounds);
    c->k = sx_malloc((size_t)out_size * (size_t)ksize * sizeof *c->k);
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            w[x] = bilinear_filter((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = c->k + (size_t)xx * ksize;
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? w[x] / ww : w[x]) : 0.0;
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                         : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        c->bounds[xx * 2] = xmin;
        c->bounds[xx * 2 + 1] = xmax;
    }
    free(w);
}

static void free_coeffs(resample_coeffs *c) {
    free(c->bounds);
    free(c->k);
}

static uint8_t clip8(int32_t ss) {
    int32_t v = ss >> PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* sw x h -> dw x h */
static void resample_horizontal(const uint8_t *src, int sw, int h, uint8_t *dst, int dw) {
    resample_coeffs c;
    precompute_coeffs(sw, dw, &c);
    for (int y = 0; y < h; y++) {
        const uint8_t *in = src + (size_t)y * sw;
        for (int xx = 0; xx < dw; xx++) {
            int xmin = c.bounds[xx * 2], xmax = c.bounds[xx * 2 + 1];
            const int32_t *k = c.k + (size_t)xx * c.ksize;
            int32_t ss = 1 << (PRECISION_BITS - 1);
            for (int x = 0; x < xmax; x++) ss += in[x + xmin] * k[x];
            dst[(size_t)y * dw + xx] = clip8(ss);
        }
    }
    free_coeffs(&c);
}

/* w x sh -> w x dh */
static void resample_vertical(const uint8_t *src, int w, int sh, uint8_t *dst, int dh) {
    resample_coeffs c;
    precompute_coeffs(sh, dh, &c);
    for (int yy = 0; yy < dh; yy++) {
        int ymin = c.bounds[yy * 2], ymax = c.bounds[yy * 2 + 1];
        const int32_t *k = c.k + (size_t)yy * c.ksize;
        for (int x = 0; x < w; x++) {
            int32_t ss = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++) ss += src[(size_t)(y + ymin) * w + x] * k[y];
            dst[(size_t)yy * w + x] = clip8(ss);
        }
    }
    free_coeffs(&c);
}

/* As Pillow's ImagingResampleInner: horizontal pass first (into 8 bits),
 * then vertical; a pass whose axis keeps its size is skipped. */
void image_resize_bilinear_u8(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh) {
    if (sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0) return;
    int need_h = dw != sw, need_v = dh != sh;
    if (!need_h && !need_v) {
        memcpy(dst, src, (size_t)sw * (size_t)sh);
    } else if (need_h && !need_v) {
        resample_horizontal(src, sw, sh, dst, dw);
    } else if (!need_h) {
        resample_vertical(src, sw, sh, dst, dh);
    } else {
        uint8_t *tmp = sx_malloc((size_t)dw * (size_t)sh);
        resample_horizontal(src, sw, sh, tmp, dw);
        resample_vertical(tmp, dw, sh, dst, dh);
        free(tmp);
    }
}

/* ------------------------------------------------------------------------ */
/* Normalisation                                                            */

void image_u8_to_chw(const uint8_t *sq, int size, float *chw) {
    size_t n = (size_t)size * (size_t)size;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < n; i++)
            chw[c * n + i] = ((float)sq[i] / 255.0f - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
}

void image_preprocess_u8(const gray_image *img, int size, uint8_t *sq) {
    size_t n = (size_t)size * (size_t)size;
    uint8_t *u8 = sx_malloc((size_t)img->width * (size_t)img->height);
    image_minmax_u8(img, u8);
    if (img->width != size || img->height != size) image_resize_bilinear_u8(u8, img->width, img->height, sq, size, size);
    else memcpy(sq, u8, n);
    free(u8);
}

void image_preprocess(const gray_image *img, int size, float *chw) {
    uint8_t *sq = sx_malloc((size_t)size * (size_t)size);
    image_preprocess_u8(img, size, sq);
    image_u8_to_chw(sq, size, chw);
    free(sq);
}

int image_preprocess_file(const char *path, int size, float *chw, sx_err *err) {
    gray_image img;
    if (image_load_gray(path, &img, err)) return -1;
    image_preprocess(&img, size, chw);
    gray_image_free(&img);
    return 0;
}

void image_chw_to_rgb8(const float *chw, int size, uint8_t *rgb) {
    size_t n = (size_t)size * (size_t)size;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) {
            float v = (chw[c * n + i] * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255.0f;
            long r = isnan(v) ? 0 : lrintf(fminf(fmaxf(v, -1.0f), 256.0f));
            rgb[i * 3 + c] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
        }
}

/* ------------------------------------------------------------------------ */
/* PNG writing                                                              */

int png_encode_u8(const uint8_t *px, int w, int h, int channels, void **png, size_t *len, sx_err *err) {
    *png = NULL;
    *len = 0;
    if (w <= 0 || h <= 0 || w > IMG_MAX_SIDE || h > IMG_MAX_SIDE)
        return sx_fail(err, "cannot write PNG of size %dx%d (limit %d px a side)", w, h, IMG_MAX_SIDE);
    if (channels != 1 && channels != 3)
        return sx_fail(err, "cannot write PNG with %d channels (want 1 or 3)", channels);
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    if (!ctx) return sx_fail(err, "out of memory for the PNG encoder");
    struct spng_ihdr ih = {
        .width = (uint32_t)w,
        .height = (uint32_t)h,
        .bit_depth = 8,
        .color_type = channels == 1 ? SPNG_COLOR_TYPE_GRAYSCALE : SPNG_COLOR_TYPE_TRUECOLOR,
    };
    size_t n = (size_t)w * (size_t)h * (size_t)channels;
    int r = spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    if (!r) r = spng_set_ihdr(ctx, &ih);
    /* reports and overlays, not archives: fast zlib level, one filter heuristic */
    if (!r) r = spng_set_option(ctx, SPNG_IMG_COMPRESSION_LEVEL, 3);
    if (!r) r = spng_set_option(ctx, SPNG_FILTER_CHOICE, SPNG_FILTER_CHOICE_PAETH);
    if (!r) r = spng_encode_image(ctx, px, n, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    if (!r) {
        *png = spng_get_png_buffer(ctx, len, &r);
        if (!*png && !r) r = SPNG_EMEM;
    }
    spng_ctx_free(ctx);
    if (r) {
        free(*png);
        *png = NULL;
        *len = 0;
        return sx_fail(err, "cannot encode PNG: %s", spng_strerror(r));
    }
    return 0;
}

int io_write_file(const char *path, const void *data, size_t len, sx_err *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return sx_fail(err, "%s: cannot create: %s", path, strerror(errno));
    int bad = fwrite(data, 1, len, f) != len, e = errno;
    if (fclose(f) != 0 && !bad) { bad = 1; e = errno; }
    if (bad) {
        remove(path);
        return sx_fail(err, "%s: cannot write: %s", path, strerror(e));
    }
    return 0;
}

int png_write_u8(const char *path, const uint8_t *px, int w, int h, int channels, sx_err *err) {
    void *png;
    size_t len;
    sx_err e;
    if (png_encode_u8(px, w, h, channels, &png, &len, &e)) return sx_fail(err, "%s: %s", path, e.msg);
    int rc = io_write_file(path, png, len, err);
    free(png);
    return rc;
}
