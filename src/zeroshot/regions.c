/* regions.c: regions from an error map or boxes, max over regions, the tumour rule. */
#include "zeroshot/regions.h"
#include "io/image.h"
#include "eval/metrics.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void regions_default_params(region_params *p) {
    *p = (region_params){.k = 3, .percentile = 97, .pad_frac = 0.10, .min_area_frac = 0.001};
}

const char *region_source_name(region_source s) {
    return s == REGION_ERRORMAP ? "errormap" : s == REGION_BOX ? "box" : "whole";
}

typedef struct { double mass; int area, first, x0, y0, x1, y1; } blob;

static int cmp_blob(const void *a, const void *b) {
    const blob *p = a, *q = b;
    if (p->mass != q->mass) return p->mass > q->mass ? -1 : 1;
    if (p->area != q->area) return p->area > q->area ? -1 : 1;
    return (p->first > q->first) - (p->first < q->first);
}

static region whole(int W, int H) {
    return (region){.box = {0, 0, (float)W, (float)H}, .source = REGION_WHOLE};
}

/* Map box [x0, x1] x [y0, y1] (inclusive map pixels) -> padded original pixels. */
static pix_box to_original(const blob *b, int S, int W, int H, double pad) {
    double sx = (double)W / S, sy = (double)H / S;
    double x0 = b->x0 * sx, x1 = (b->x1 + 1) * sx, y0 = b->y0 * sy, y1 = (b->y1 + 1) * sy;
    double px = pad * (x1 - x0), py = pad * (y1 - y0);
    x0 = fmax(0, floor(x0 - px + 1e-9)); y0 = fmax(0, floor(y0 - py + 1e-9));
    x1 = fmin(W, ceil(x1 + px - 1e-9)); y1 = fmin(H, ceil(y1 + py - 1e-9));
    return (pix_box){(float)x0, (float)y0, (float)x1, (float)y1};
}

int regions_from_errormap(const float *map, int S, int W, int H, const region_params *p, region *out, int *n,
                          sx_err *err) {
    *n = 0;
    if (S < 1 || S > 16384 || W < 1 || H < 1) return sx_fail(err, "regions: bad sizes (map %d, image %d x %d)", S, W, H);
    if (p->k < 0 || p->k > 1000) return sx_fail(err, "regions: k must be 0..1000 (got %d)", p->k);
    if (!(p->percentile >= 0 && p->percentile <= 100))
        return sx_fail(err, "regions: percentile must be in [0, 100] (got %g)", p->percentile);
    if (!(p->pad_frac >= 0 && p->pad_frac <= 10)) return sx_fail(err, "regions: padding must be in [0, 10] (got %g)", p->pad_frac);
    if (!(p->min_area_frac >= 0 && p->min_area_frac <= 1))
        return sx_fail(err, "regions: minimum area must be in [0, 1] of the map (got %g)", p->min_area_frac);
    size_t N = (size_t)S * S, nv = 0;
    double *v = sx_malloc(sizeof(double) * N);
    for (size_t i = 0; i < N; i++)
        if (!isnan(map[i])) v[nv++] = map[i];
    int nb = 0;
    blob *blobs = NULL;
    if (nv > 0 && p->k > 0) {
        double thr = metric_percentile(v, nv, p->percentile / 100);   /* sorts v */
        int strict = thr <= v[0];
        uint8_t *on = sx_calloc(N, 1);
        for (size_t i = 0; i < N; i++) on[i] = !isnan(map[i]) && (strict ? map[i] > thr : map[i] >= thr);
        int *stack = sx_malloc(sizeof(int) * N), cap = 16;
        blobs = sx_malloc(sizeof(blob) * (size_t)cap);
        int min_area = (int)ceil(p->min_area_frac * (double)N);
        if (min_area < 1) min_area = 1;
        for (size_t i = 0; i < N; i++) {
            if (on[i] != 1) continue;
            blob b = {0, 0, (int)i, S, S, -1, -1};
            int top = 0;
            stack[top++] = (int)i;
            on[i] = 2;
            while (top) {
                int q = stack[--top], x = q % S, y = q / S;
                b.mass += map[q];
                b.area++;
                if (x < b.x0) b.x0 = x;
                if (x > b.x1) b.x1 = x;
                if (y < b.y0) b.y0 = y;
                if (y > b.y1) b.y1 = y;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int xx = x + dx, yy = y + dy;
                        if (xx < 0 || yy < 0 || xx >= S || yy >= S || on[yy * S + xx] != 1) continue;
                        on[yy * S + xx] = 2;
                        stack[top++] = yy * S + xx;
                    }
            }
            if (b.area < min_area) continue;
            if (nb == cap) { cap *= 2; blobs = realloc(blobs, sizeof(blob) * (size_t)cap); if (!blobs) abort(); }
            blobs[nb++] = b;
        }
        free(stack);
        free(on);
        qsort(blobs, (size_t)nb, sizeof(blob), cmp_blob);
    }
    free(v);
    for (int i = 0; i < nb && i < p->k; i++)
        out[(*n)++] = (region){.box = to_original(&blobs[i], S, W, H, p->pad_frac), .source = REGION_ERRORMAP,
                               .mass = blobs[i].mass, .area = blobs[i].area};
    free(blobs);
    out[(*n)++] = whole(W, H);
    return 0;
}

int regions_from_boxes(const norm_box *b, int nb, int W, int H, region *out) {
    int n = 0;
    for (int i = 0; i < nb; i++) {
        float x0 = fmaxf(0, (b[i].cx - b[i].w / 2) * W), x1 = fminf((float)W, (b[i].cx + b[i].w / 2) * W);
        float y0 = fmaxf(0, (b[i].cy - b[i].h / 2) * H), y1 = fminf((float)H, (b[i].cy + b[i].h / 2) * H);
        if (!(x1 > x0) || !(y1 > y0)) continue;
        out[n++] = (region){.box = {x0, y0, x1, y1}, .source = REGION_BOX};
    }
    out[n++] = whole(W, H);
    return n;
}

int regions_crop_u8(const uint8_t *img, int W, int H, const pix_box *box, int size, uint8_t *dst, sx_err *err) {
    double x0 = fmax(0, floor(box->x0)), y0 = fmax(0, floor(box->y0));
    double x1 = fmin(W, ceil(box->x1)), y1 = fmin(H, ceil(box->y1));
    if (!(x1 > x0) || !(y1 > y0) || size < 1)
        return sx_fail(err, "region [%g %g %g %g] is outside the %d x %d image", box->x0, box->y0, box->x1, box->y1, W, H);
    int w = (int)(x1 - x0), h = (int)(y1 - y0);
    uint8_t *win = sx_malloc((size_t)w * h);
    for (int y = 0; y < h; y++) memcpy(win + (size_t)y * w, img + (size_t)(y0 + y) * W + (size_t)x0, (size_t)w);
    image_resize_bilinear_u8(win, w, h, dst, size, size);
    free(win);
    return 0;
}

void regions_max(const float *probs, int R, int n_out, float *pmax, int *argmax) {
    for (int j = 0; j < n_out; j++) {
        int best = 0;
        for (int r = 1; r < R; r++)
            if (probs[(size_t)r * n_out + j] > probs[(size_t)best * n_out + j]) best = r;
        pmax[j] = R > 0 ? probs[(size_t)best * n_out + j] : NAN;
        argmax[j] = R > 0 ? best : -1;
    }
}

static int find(const char *const *names, int n, const char *s) {
    for (int j = 0; j < n; j++)
        if (!strcmp(names[j], s)) return j;
    return -1;
}

void regions_tumour_rule(const float *probs, int R, int n_out, const char *const *names, tumour_decision *d) {
    memset(d, 0, sizeof *d);
    int m = find(names, n_out, "malignant"), i = find(names, n_out, "intermediate"), b = find(names, n_out, "benign");
    if (m < 0 || i < 0 || b < 0 || R < 1) return;
    d->applies = 1;
    d->p_tumour = d->p_malignant = -1;
    for (int r = 0; r < R; r++) {
        const float *p = probs + (size_t)r * n_out;
        double t = (double)p[m] + p[i] + p[b];
        if (t > d->p_tumour) { d->p_tumour = t; d->region_tumour = r; }
        if (p[m] > d->p_malignant) { d->p_malignant = p[m]; d->region_malignant = r; }
    }
    d->tumour = d->p_tumour > 0.5;
    d->malignant = d->tumour && d->p_malignant >= 0.5;
}
