/* ior_crop.h: SKELEX's training crops around labelled boxes ("IoR crops")
 * and the augmentation that follows them, on an 8-bit grey image.
 *
 *  1. crop window: a scale s uniform in [scale_min, scale_max] of the image's
 *     sides (w = round(s W), h = round(s H): the same aspect), placed
 *     uniformly (x0 uniform in [0, W-w], y0 in [0, H-h]); accepted when some
 *     box has intersection(box, crop) / area(box) > min_overlap. Up to
 *     max_tries windows; when none is accepted, the whole image.
 *     An image without boxes (a negative) takes its first window (nobox =
 *     IOR_NOBOX_RANDOM, the default), so negatives are zoomed like positives
 *     and the scale of a crop does not give its label away; IOR_NOBOX_WHOLE
 *     gives them the whole image instead.
 *  2. rotation by an angle uniform in [-max_rotate_deg, max_rotate_deg]
 *     about the window's centre (bilinear; pixels from beyond the image are 0);
 *  3. resize of the window to out_size x out_size (image.h's PIL-compatible
 *     antialiased bilinear: the model's square input, as preprocessing does);
 *  4. brightness then contrast jitter (torchvision ColorJitter's factors):
 *     v' = min(v b, 255) with b uniform in [1-brightness, 1+brightness], then
 *     (v' - mean) c + mean with c uniform in [1-contrast, 1+contrast] and
 *     mean the mean of v', rounded and clamped to 0..255.
 * Image labels are unchanged by the crop. Boxes are in pixels of the image,
 * [x0, x1) x [y0, y1); a box of zero area never qualifies. Every random draw
 * comes from the caller's sx_rng, in a fixed order, so a seed gives the same
 * crops on every machine. */
#ifndef SKELEX_IOR_CROP_H
#define SKELEX_IOR_CROP_H
#include "core/common.h"
#include "core/rng.h"
#include "zeroshot/regions.h"   /* pix_box, norm_box */

typedef enum { IOR_NOBOX_RANDOM, IOR_NOBOX_WHOLE } ior_nobox;

typedef struct {
    float scale_min, scale_max;   /* 0.2, 1 */
    float min_overlap;            /* 0.6: intersection / box area must exceed it */
    int max_tries;                /* 10 */
    float max_rotate_deg;         /* 10 */
    float brightness, contrast;   /* 0.2, 0.2 */
    int out_size;                 /* the model's image size */
    ior_nobox nobox;              /* IOR_NOBOX_RANDOM */
} ior_params;

/* What one call did. */
typedef struct {
    int x0, y0, w, h;     /* the window, in image pixels */
    int accepted;         /* 1: a window qualified (or a box-less image took one); 0: whole-image fallback */
    int tries;            /* windows drawn */
    int box;              /* index of the first box that qualified the window, or -1 */
    float angle_deg, brightness, contrast;
} ior_info;

/* The SKELEX defaults above for a model of out_size pixels. */
void ior_default_params(ior_params *p, int out_size);

/* intersection(box, window) / area(box); 0 for a box of zero area. */
double ior_overlap(const pix_box *b, int x0, int y0, int w, int h);

/* YOLO boxes (normalised centre and size) to pixels of a W x H image. */
void ior_boxes_from_yolo(const norm_box *in, int n, int W, int H, pix_box *out);

/* Step 1 only: choose the window (and fill info's window fields). -1 with
 * err for bad parameters or an empty image. */
int ior_choose_window(int W, int H, const pix_box *boxes, int nb, const ior_params *p, sx_rng *r, ior_info *info,
                      sx_err *err);

/* All four steps: src (W x H, 8-bit) -> dst (out_size x out_size). info may
 * be NULL. -1 with err for bad parameters. */
int ior_crop(const uint8_t *src, int W, int H, const pix_box *boxes, int nb, const ior_params *p, sx_rng *r,
             uint8_t *dst, ior_info *info, sx_err *err);

#endif
