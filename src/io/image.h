/* image.h: image file I/O and the SKELEX preprocessing.
 * Reads PNG (8/16-bit, grey/RGB/RGBA, palette), JPEG (grey/RGB/CMYK) and
 * DICOM (windowed and, for MONOCHROME1, inverted; see dicom.h) into a float
 * grey image; writes 8-bit PNG. The one loader every command uses: it
 * returns an image or a one-line error naming the file, never more. */
#ifndef SKELEX_IMAGE_H
#define SKELEX_IMAGE_H
#include "core/common.h"

/* Raw intensities, row-major, width*height values (0..255 or 0..65535). */
typedef struct { int width, height; float *data; } gray_image;

/* Load PNG, JPEG or DICOM (detected by magic bytes, not extension: DICOM by
 * "DICM" at offset 128, or a bare dataset DCMTK recognises). Colour is
 * converted to luma with PIL's 'L' weights (0.299, 0.587, 0.114); alpha is
 * ignored. DICOM is rendered as a viewer shows it (modality LUT, first
 * window or VOI LUT else min-max, MONOCHROME1 inverted) to 0..65535; of a
 * multi-frame object the first frame, with a warning. Rejects, before
 * allocating: files over 1 GiB, images over 16384 px a side or 256 Mpixel.
 * Errors ("PATH: reason") say: not found, not an image, truncated, corrupt,
 * unsupported transfer syntax, too large, no/empty pixel data. */
int image_load_gray(const char *path, gray_image *img, sx_err *err);
void gray_image_free(gray_image *img);

/* image_load_gray, but a JPEG is decoded reduced in the DCT domain by the
 * largest of 1/8, 1/4, 1/2 that keeps the shorter decoded side >= min_side
 * (full size when none does, or min_side <= 0). PNG and DICOM are always
 * full size.
 * Everything else (EXIF orientation, warnings, CMYK, limits) is unchanged;
 * the size limits apply to the stored, not the decoded, dimensions. */
int image_load_gray_min(const char *path, int min_side, gray_image *img, sx_err *err);

/* Both of the above, with options. warning: when non-NULL, a decoder
 * warning (e.g. "PATH: truncated JPEG, decoded what was present", or a
 * multi-frame DICOM) is written there instead of to stderr; msg[0] == 0
 * when there was none. max_pixels: 0 for the default bound (256 Mpixel), or
 * a lower one (the fuzz harnesses use it to stay within their memory). */
typedef struct { int min_side; sx_err *warning; uint64_t max_pixels; } image_load_opts;
int image_load_gray_opts(const char *path, const image_load_opts *opts, gray_image *img, sx_err *err);

/* image_load_gray_opts from an encoded image in memory (an upload): the
 * same formats, limits and messages, name standing for the path in them
 * (NULL: "(memory)"). Nothing is written to disk. */
int image_load_gray_mem(const void *data, size_t len, const char *name, const image_load_opts *opts,
                        gray_image *img, sx_err *err);

/* Per-image min-max to 8 bits: lrintf((v-min)/(max-min)*255); constant -> 0. */
void image_minmax_u8(const gray_image *in, uint8_t *out);

/* PIL-compatible (Image.resize(..., BILINEAR), antialiased when shrinking)
 * resize of an 8-bit grey image; output rounded and clamped to 8 bits. */
void image_resize_bilinear_u8(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh);

/* ImageNet normalisation constants (RGB). */
extern const float IMAGENET_MEAN[3], IMAGENET_STD[3];

/* An 8-bit size x size grey image -> /255 -> 3 channels -> (x-mean)/std:
 * the last step of the preprocessing. chw holds 3*size*size floats. */
void image_u8_to_chw(const uint8_t *sq, int size, float *chw);

/* The model's input: load -> min-max u8 -> resize to size x size ->
 * /255 -> grey replicated to 3 channels -> (x-mean)/std per channel.
 * chw must hold 3*size*size floats. */
int image_preprocess_file(const char *path, int size, float *chw, sx_err *err);
/* The same from an already loaded image. */
void image_preprocess(const gray_image *img, int size, float *chw);
/* Its 8-bit part: min-max to 8 bits, resize to size x size (sq: size*size). */
void image_preprocess_u8(const gray_image *img, int size, uint8_t *sq);

/* Undo the normalisation of one CHW (3 channels) image into interleaved RGB8,
 * clamping to [0,255]. */
void image_chw_to_rgb8(const float *chw, int size, uint8_t *rgb);

/* Write 8-bit PNG: channels 1 (grey) or 3 (RGB), at most 16384 px a side
 * (a larger image is an error, nothing is written). */
int png_write_u8(const char *path, const uint8_t *px, int w, int h, int channels, sx_err *err);
/* The same into memory: *png is malloc'd (free it), *len its size. */
int png_encode_u8(const uint8_t *px, int w, int h, int channels, void **png, size_t *len, sx_err *err);
/* Write len bytes to path (created or truncated); on failure the partial
 * file is removed and err says why. */
int io_write_file(const char *path, const void *data, size_t len, sx_err *err);

#endif
