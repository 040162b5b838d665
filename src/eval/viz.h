/* viz.h: pictures people look at: reconstruction panels (PNG) and line
 * plots (SVG). No fonts are needed: SVG text is rendered by the viewer. */
#ifndef SKELEX_VIZ_H
#define SKELEX_VIZ_H
#include "io/image.h"
#include "nn/model.h"

/* One row per image b < B of the model's last forward: original | masked |
 * reconstruction | reconstruction pasted into the visible patches.
 * pixels (B,3,S,S) are the normalised inputs of that forward. */
int viz_write_panels(const char *path, const mae_model *m, const float *pixels, int B, sx_err *err);

/* The reconstruction of image b in normalised pixel space (3,S,S); with
 * norm_pix_loss each patch is de-normalised with the input patch's statistics. */
void viz_reconstruction(const mae_model *m, const float *pixels, int b, float *out);

/* The radiograph at its original resolution with the S x S error map
 * upsampled (bilinear) and overlaid with an inferno colormap; opacity grows
 * with the error up to alpha; values are clipped at vmax. A colour bar with
 * its values is drawn on the right. NaN (never masked) is left uncoloured. */
int viz_errormap_overlay(const char *path, const gray_image *img, const float *map, int S, float vmax, float alpha,
                         sx_err *err);

/* The same overlay as PNG bytes in memory (*png malloc'd, *len its size),
 * the colour bar only when colorbar is non-zero. An overlay over the PNG
 * limit (16384 px a side, colour bar included) is an error. */
int viz_errormap_overlay_png(const gray_image *img, const float *map, int S, float vmax, float alpha, int colorbar,
                             void **png, size_t *len, sx_err *err);

/* A line plot of up to 4 series sharing x; log_y plots log10(y). */
typedef struct { const char *label; const double *y; } viz_series;
int viz_plot_svg(const char *path, const char *title, const char *xlabel, const char *ylabel, const double *x,
                 const viz_series *series, int nseries, int n, int log_y, sx_err *err);

#endif
