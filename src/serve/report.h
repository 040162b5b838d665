/* report.h: the printable one-page HTML report of one analysis: the grey
 * radiograph, its overlay and a colour bar with values (images embedded as data: URIs, so
 * the page stands alone), the figures, the model's name and version and the
 * date. It is built from pixels and figures only: no patient identifier
 * can reach it. */
#ifndef SKELEX_SERVE_REPORT_H
#define SKELEX_SERVE_REPORT_H
#include <stddef.h>

typedef struct {
    const void *image_png; size_t image_len;       /* grey radiograph */
    const void *overlay_png; size_t overlay_len;   /* the overlay (the report draws the colour bar) */
    int width, height;
    double mean, max, peak_x, peak_y, scale_max;
    int passes, never_masked;
    const char *masking;
    double mask_ratio;
    const char *model_name, *version;
    const char *classifier_name;                   /* NULL: none */
    int n_heads;
    const char *const *head_names;
    const double *head_probs;                      /* n_heads, on the whole image */
    const double *head_max;                        /* n_heads: the maximum over regions, or NULL */
    const int *head_region;                        /* n_heads: the region giving it */
    int n_regions;                                 /* regions from the error map (the whole image last) */
    const float *region_boxes;                     /* n_regions x (x0 y0 x1 y1) */
    const char *const *region_sources;             /* n_regions: "errormap", "whole", ... */
    const int *region_top;                         /* n_regions: the output with the highest probability */
    const double *region_probs;                    /* n_regions x n_heads */
    const char *date;                              /* "YYYY-MM-DD HH:MM UTC" */
    const char *id;
} rp_input;

/* The report (malloc'd, NUL-terminated, length in *len), or NULL on exhaustion. */
char *rp_html(const rp_input *in, size_t *len);

/* Standard base64 of p[0..n) (malloc'd, NUL-terminated), or NULL. */
char *rp_base64(const void *p, size_t n);

/* s with & < > " ' escaped for HTML, into out (cap bytes, cut if longer). */
void rp_escape(const char *s, char *out, size_t cap);

#endif
