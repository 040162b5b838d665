/* regions.h: regions of a radiograph to classify one by one, taken from the
 * MAE's error map instead of a detector, and the per-output maximum over
 * regions (SKELEX's region-guided inference), with its tumour rule.
 *
 * Regions from an error map (S x S, over the model input, which is the
 * image resized to S x S; NaN = never masked, ignored):
 *   threshold = the `percentile` (linear interpolation between order
 *   statistics, numpy's default) of the valid values; the pixels at or above
 *   it (strictly above when the threshold is the smallest value) form
 *   8-connected areas; areas under min_area_frac of the map are dropped; the
 *   rest are ranked by error mass (the sum of their map values; ties: larger
 *   area, then the earlier first pixel in raster order) and the first k are
 *   kept. Each becomes its bounding box in original pixels (map pixel x
 *   covers [x W/S, (x+1) W/S)), padded on every side by pad_frac of the box's
 *   own width / height, rounded outwards to whole pixels and clipped to the
 *   image. The whole image [0, 0, W, H] is always the last region. */
#ifndef SKELEX_REGIONS_H
#define SKELEX_REGIONS_H
#include "core/common.h"
#include "zeroshot/errormap.h"

/* A box in pixels of an image: [x0, x1) x [y0, y1). */
typedef struct { float x0, y0, x1, y1; } pix_box;

typedef enum { REGION_WHOLE, REGION_ERRORMAP, REGION_BOX } region_source;

typedef struct {
    pix_box box;
    region_source source;
    double mass;      /* errormap: the area's error mass; otherwise 0 */
    int area;         /* errormap: the area's pixels, at map resolution; otherwise 0 */
} region;

typedef struct {
    int k;               /* areas kept: 3 */
    double percentile;   /* 97 */
    double pad_frac;     /* 0.10 */
    double min_area_frac;/* 0.001 of the map's pixels (at least 1 pixel) */
} region_params;

void regions_default_params(region_params *p);
const char *region_source_name(region_source s);   /* "whole", "errormap", "box" */

/* Up to p->k error-map regions then the whole image into out (which holds
 * p->k + 1); *n = how many. -1 with err for bad parameters or sizes. A map
 * with no valid value, or a constant one, gives the whole image alone. */
int regions_from_errormap(const float *map, int S, int W, int H, const region_params *p, region *out, int *n,
                          sx_err *err);

/* Given boxes (YOLO, normalised) as regions (source box, clipped; empty
 * ones dropped), then the whole image; out holds nb + 1; returns the count. */
int regions_from_boxes(const norm_box *b, int nb, int W, int H, region *out);

/* The model input for one region: the box's pixels of an 8-bit W x H image
 * (rounded outwards to whole pixels, clipped; at least one pixel) resized
 * to size x size (image.h's antialiased bilinear). -1 with err when the box
 * does not overlap the image. */
int regions_crop_u8(const uint8_t *img, int W, int H, const pix_box *box, int size, uint8_t *dst, sx_err *err);

/* Per output, the maximum over R regions of probs (R, n_out) and the first
 * region that gives it. */
void regions_max(const float *probs, int R, int n_out, float *pmax, int *argmax);

/* SKELEX's tumour rule, where the outputs include "malignant",
 * "intermediate" and "benign" (p1, p2, p3): tumour when the maximum over
 * regions of p1 + p2 + p3 exceeds 0.5; then malignant when the maximum of
 * p1 is at least 0.5. */
typedef struct {
    int applies;           /* 0: the layout has no such outputs (the rest is unset) */
    int tumour, malignant;
    double p_tumour;       /* max over regions of p1 + p2 + p3 */
    double p_malignant;    /* max over regions of p1 */
    int region_tumour, region_malignant;   /* where those maxima come from */
} tumour_decision;

void regions_tumour_rule(const float *probs, int R, int n_out, const char *const *names, tumour_decision *d);

#endif
