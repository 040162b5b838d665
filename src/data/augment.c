/* augment.c: the fine-tuning augmentation (see augment.h). Allocation free:
 * the brightness-scaled pixel is computed twice (once for the mean that the
 * contrast blend needs, once for the output) instead of being stored. */
#include "data/augment.h"
#include <math.h>
#include <stddef.h>

cls_aug cls_aug_default(void) { return (cls_aug){10.0, 0.5, 0.2, 0.2}; }

typedef struct { double ang, cs, sn, c0, bright; int flip, S; } aug_draw;

/* Output pixel (x, y) after rotation, flip and brightness, clamped to 255. */
static inline double aug_pixel(const uint8_t *in, const aug_draw *d, int x, int y) {
    int S = d->S;
    int xo = d->flip ? S - 1 - x : x;      /* flip after rotation: read the mirrored output column */
    double dx = xo - d->c0, dy = y - d->c0;
    double sx = d->cs * dx + d->sn * dy + d->c0, sy = -d->sn * dx + d->cs * dy + d->c0;   /* inverse rotation */
    double val = 0;
    if (d->ang == 0.0) val = in[(size_t)y * S + xo];
    else if (sx > -1 && sy > -1 && sx < S && sy < S) {
        int x0 = (int)floor(sx), y0 = (int)floor(sy);
        double fx = sx - x0, fy = sy - y0;
        for (int k = 0; k < 4; k++) {
            int xx = x0 + (k & 1), yy = y0 + (k >> 1);
            double wgt = ((k & 1) ? fx : 1 - fx) * ((k >> 1) ? fy : 1 - fy);
            if (xx >= 0 && yy >= 0 && xx < S && yy < S) val += wgt * in[(size_t)yy * S + xx];
        }
    }
    val *= d->bright;
    return val > 255 ? 255 : val;
}

void cls_augment_u8(const uint8_t *in, int S, const cls_aug *a, sx_rng *r, uint8_t *out) {
    aug_draw d;
    d.ang = (2.0 * rng_uniform(r) - 1.0) * a->rotate_deg * M_PI / 180.0;
    d.flip = rng_uniform(r) < a->flip_p;
    d.bright = 1.0 + (2.0 * rng_uniform(r) - 1.0) * a->brightness;
    double contrast = 1.0 + (2.0 * rng_uniform(r) - 1.0) * a->contrast;
    d.cs = cos(d.ang);
    d.sn = sin(d.ang);
    d.c0 = (S - 1) / 2.0;
    d.S = S;
    double sum = 0;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            sum += aug_pixel(in, &d, x, y);
        }
    double mean = sum / ((double)S * S);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            double val = ((float)aug_pixel(in, &d, x, y) - mean) * contrast + mean;   /* the pixel as a float */
            out[(size_t)y * S + x] = (uint8_t)(val < 0 ? 0 : val > 255 ? 255 : lrint(val));
        }
}
