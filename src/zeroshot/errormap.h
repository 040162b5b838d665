/* errormap.h: SKELEX zero-shot abnormality maps. The reconstruction error of
 * a pretrained MAE, averaged over many masks, is high where an image departs
 * from what the model learned is normal. Also the localisation metrics that
 * score a map against boxes. */
#ifndef SKELEX_ERRORMAP_H
#define SKELEX_ERRORMAP_H
#include "nn/model.h"
#include "core/rng.h"

typedef enum { MASKING_RANDOM, MASKING_BALANCED } masking_kind;

/* Noise for `passes` masks of one image, (passes, N), for mae_forward.
 * RANDOM: uniform noise per pass (SKELEX). BALANCED: the visible sets are
 * consecutive windows of len_keep patches of a stream of fresh random
 * permutations, so every patch is masked the same number of times (exactly
 * when passes * len_keep is a multiple of N, else within one). */
void errormap_noise(masking_kind kind, int passes, int N, int len_keep, sx_rng *r, float *noise);

/* After mae_forward(m, pixels repeated `passes` times, noise, passes):
 * per pixel of the S x S model input, the squared reconstruction error
 * averaged over channels, summed over the passes in which the pixel's patch
 * was masked, divided by that count. Pixels never masked get NaN.
 * Error is measured in de-normalised [0,1] pixel space, or, for a model with
 * norm_pix_loss, in the per-patch normalised space of its loss.
 * pixels is one image (3,S,S); map and count hold S*S. */
void errormap_accumulate(const mae_model *m, const float *pixels, int passes, float *map, int *count);

/* ---- localisation metrics against boxes, at map resolution ---- */

typedef struct { float cx, cy, w, h; } norm_box;   /* YOLO: centre and size in [0,1] */

/* 1 where pixel (x,y) of a W x H map lies inside any box. */
void boxes_rasterize(const norm_box *b, int nb, int W, int H, uint8_t *inside);

typedef struct {
    int hit;              /* pointing game: the map's peak is inside a box */
    double mass_share;    /* share of error mass inside boxes */
    double area_share;    /* share of (valid) pixels inside boxes */
    double auroc;         /* pixel-level AUROC of the map for box membership */
    int peak_x, peak_y;
} loc_metrics;

/* Pixels whose map value is NaN are ignored. Returns -1 when no valid pixel
 * is inside or none outside (AUROC undefined). */
int localization_metrics(const float *map, const uint8_t *inside, int W, int H, loc_metrics *out);

/* Read a YOLO label file: lines "class cx cy w h". Returns the number of
 * boxes (0 for an empty file), or -1 with err when unreadable or malformed. */
int boxes_read_yolo(const char *path, norm_box *boxes, int cap, sx_err *err);

#endif
