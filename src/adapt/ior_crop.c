/* ior_crop.c: IoR crops, rotation, resize and brightness/contrast jitter. */
#include "adapt/ior_crop.h"
#include "io/image.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void ior_default_params(ior_params *p, int out_size) {
    *p = (ior_params){.scale_min = 0.2f, .scale_max = 1.0f, .min_overlap = 0.6f, .max_tries = 10,
                      .max_rotate_deg = 10.0f, .brightness = 0.2f, .contrast = 0.2f, .out_size = out_size,
                      .nobox = IOR_NOBOX_RANDOM};
}

double ior_overlap(const pix_box *b, int x0, int y0, int w, int h) {
    double bw = (double)b->x1 - b->x0, bh = (double)b->y1 - b->y0;
    if (!(bw > 0) || !(bh > 0)) return 0;
    double iw = fmin(b->x1, (double)x0 + w) - fmax(b->x0, (double)x0);
    double ih = fmin(b->y1, (double)y0 + h) - fmax(b->y0, (double)y0);
    if (iw <= 0 || ih <= 0) return 0;
    return iw * ih / (bw * bh);
}

void ior_boxes_from_yolo(const norm_box *in, int n, int W, int H, pix_box *out) {
    for (int i = 0; i < n; i++)
        out[i] = (pix_box){(in[i].cx - in[i].w / 2) * W, (in[i].cy - in[i].h / 2) * H, (in[i].cx + in[i].w / 2) * W,
                           (in[i].cy + in[i].h / 2) * H};
}

static int check_params(int W, int H, const ior_params *p, sx_err *err) {
    if (W < 1 || H < 1) return sx_fail(err, "ior_crop: empty image (%d x %d)", W, H);
    if (!(p->scale_min > 0) || !(p->scale_max <= 1) || !(p->scale_min <= p->scale_max))
        return sx_fail(err, "ior_crop: scales must satisfy 0 < min <= max <= 1 (got %g, %g)", p->scale_min, p->scale_max);
    if (!(p->min_overlap >= 0 && p->min_overlap < 1))
        return sx_fail(err, "ior_crop: min_overlap must be in [0, 1) (got %g)", p->min_overlap);
    if (p->max_tries < 1 || p->max_tries > 1000) return sx_fail(err, "ior_crop: max_tries must be 1..1000 (got %d)", p->max_tries);
    if (!(p->max_rotate_deg >= 0 && p->max_rotate_deg <= 180))
        return sx_fail(err, "ior_crop: max_rotate_deg must be in [0, 180] (got %g)", p->max_rotate_deg);
    if (!(p->brightness >= 0 && p->brightness < 1) || !(p->contrast >= 0 && p->contrast < 1))
        return sx_fail(err, "ior_crop: brightness and contrast jitter must be in [0, 1)");
    if (p->out_size < 1 || p->out_size > 16384) return sx_fail(err, "ior_crop: out_size must be 1..16384 (got %d)", p->out_size);
    return 0;
}

static int side(float s, int n) {
    int v = (int)lrintf(s * n);
    return v < 1 ? 1 : v > n ? n : v;
}

int ior_choose_window(int W, int H, const pix_box *boxes, int nb, const ior_params *p, sx_rng *r, ior_info *info,
                      sx_err *err) {
    if (check_params(W, H, p, err)) return -1;
    *info = (ior_info){.x0 = 0, .y0 = 0, .w = W, .h = H, .accepted = 0, .tries = 0, .box = -1,
                       .brightness = 1, .contrast = 1};
    if (nb <= 0 && p->nobox == IOR_NOBOX_WHOLE) return 0;
    for (int t = 0; t < p->max_tries; t++) {
        float s = p->scale_min + (p->scale_max - p->scale_min) * rng_uniform(r);
        int w = side(s, W), h = side(s, H);
        int x0 = (int)rng_below(r, (uint32_t)(W - w + 1)), y0 = (int)rng_below(r, (uint32_t)(H - h + 1));
        info->tries = t + 1;
        int hit = -1;
        for (int b = 0; b < nb && hit < 0; b++)
            if (ior_overlap(&boxes[b], x0, y0, w, h) > p->min_overlap) hit = b;
        if (hit >= 0 || nb <= 0) {
            info->x0 = x0; info->y0 = y0; info->w = w; info->h = h;
            info->accepted = 1;
            info->box = hit;
            return 0;
        }
    }
    return 0;
}

/* Bilinear sample of src at (x, y) (pixel centres at integers); 0 beyond the image. */
static float sample(const uint8_t *src, int W, int H, float x, float y) {
    int xi = (int)floorf(x), yi = (int)floorf(y);
    float fx = x - xi, fy = y - yi, v = 0;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            float wgt = (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy);
            int sx = xi + dx, sy = yi + dy;
            if (wgt == 0 || sx < 0 || sy < 0 || sx >= W || sy >= H) continue;
            v += wgt * src[(size_t)sy * W + sx];
        }
    return v;
}

int ior_crop(const uint8_t *src, int W, int H, const pix_box *boxes, int nb, const ior_params *p, sx_rng *r,
             uint8_t *dst, ior_info *info, sx_err *err) {
    ior_info local;
    if (!info) info = &local;
    if (ior_choose_window(W, H, boxes, nb, p, r, info, err)) return -1;
    info->angle_deg = p->max_rotate_deg * (2 * rng_uniform(r) - 1);
    info->brightness = 1 + p->brightness * (2 * rng_uniform(r) - 1);
    info->contrast = 1 + p->contrast * (2 * rng_uniform(r) - 1);
    int w = info->w, h = info->h, S = p->out_size;
    /* the window, rotated about its centre: output pixel (i, j) reads the
     * image at centre + R(angle) ((i, j) - centre) */
    uint8_t *win = sx_malloc((size_t)w * h);
    double a = info->angle_deg * M_PI / 180, ca = cos(a), sa = sin(a);
    double cx = info->x0 + w / 2.0, cy = info->y0 + h / 2.0;
    for (int j = 0; j < h; j++)
        for (int i = 0; i < w; i++) {
            double dx = i + 0.5 - w / 2.0, dy = j + 0.5 - h / 2.0;
            float v = info->angle_deg == 0 ? (float)src[(size_t)(info->y0 + j) * W + info->x0 + i]
                                           : sample(src, W, H, (float)(cx + ca * dx - sa * dy - 0.5),
                                                    (float)(cy + sa * dx + ca * dy - 0.5));
            win[(size_t)j * w + i] = (uint8_t)lrintf(fminf(fmaxf(v, 0), 255));
        }
    image_resize_bilinear_u8(win, w, h, dst, S, S);
    free(win);
    size_t n = (size_t)S * S;
    /* as torchvision: each step clamped to the range, contrast about the mean of the brightened image */
    float *v = sx_malloc(sizeof(float) * n);
    double mean = 0;
    for (size_t k = 0; k < n; k++) { v[k] = fminf(dst[k] * info->brightness, 255); mean += v[k]; }
    mean /= (double)n;
    for (size_t k = 0; k < n; k++) dst[k] = (uint8_t)lrint(fmin(fmax((v[k] - mean) * info->contrast + mean, 0), 255));
    free(v);
    return 0;
}
