/* pipeline.h: the SKELEX error map of one image, start to end: preprocess,
 * replicate over the passes, draw the masks, one forward, accumulate, the
 * statistics, the peak in original pixels and the overlay's scale. The one
 * implementation behind skx_errormap_compute, `skelex errormap` and
 * `skelex bench errormap|masking`. */
#ifndef SKELEX_PIPELINE_H
#define SKELEX_PIPELINE_H
#include "zeroshot/errormap.h"
#include "io/image.h"

typedef struct {
    int passes;           /* masks, one forward of `passes` copies (1..1024) */
    masking_kind masking;
    uint64_t seed;        /* the masks come from rng_seed(seed), per image */
} zs_opts;

typedef struct {
    int size;             /* S: the map is S x S */
    float *map;           /* S*S, NaN where never masked (owned) */
    int *count;           /* S*S: passes in which each pixel was masked (owned) */
    float *pixels;        /* (3,S,S): the model input (owned) */
    double mean, max;     /* over pixels with a value (NaN when none) */
    int peak_mx, peak_my; /* the maximum, in map pixels */
    double peak_x, peak_y;/* its centre in original image pixels (map pixels for zs_errormap_pixels) */
    int never_masked;
    float scale_max;      /* the 99th percentile of the valid values (0 when none) */
    int passes;
    masking_kind masking;
    double mask_ratio;    /* m->cfg.mask_ratio at the time */
    int norm_pix;
} zs_map;

/* The map of one preprocessed image chw (3,S,S) with m as it is (its
 * cfg.mask_ratio is the ratio used). After it, m holds the forward of the
 * passes (pass 0 first, e.g. for viz_write_panels with out->pixels).
 * -1 with err on bad options, out of memory or a failed forward; out is
 * then empty. Free with zs_map_free. */
int zs_errormap_pixels(mae_model *m, const float *chw, const zs_opts *o, zs_map *out, sx_err *err);
/* The same from a loaded image (preprocessed as the model's input); the
 * peak is given in the image's own pixels. */
int zs_errormap_image(mae_model *m, const gray_image *img, const zs_opts *o, zs_map *out, sx_err *err);
void zs_map_free(zs_map *z);

#endif
