/* viz.c: reconstruction panels and SVG line plots. */
#include "eval/viz.h"
#include "io/image.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void viz_reconstruction(const mae_model *m, const float *pixels, int b, float *out) {
    const mae_config *c = &m->cfg;
    int N = config_num_patches(c), P = config_patch_dim(c), S = c->image_size;
    float *patches = sx_malloc(sizeof(float) * (size_t)N * P);
    memcpy(patches, mae_logits(m, b), sizeof(float) * (size_t)N * P);
    if (c->norm_pix_loss) {
        float *target = sx_malloc(sizeof(float) * (size_t)N * P);
        mae_patchify(c, pixels + (size_t)b * 3 * S * S, 1, target);
        for (int n = 0; n < N; n++) {
            double mean, std;
            mae_patch_stats(target + (size_t)n * P, P, &mean, &std);
            float *o = patches + (size_t)n * P;
            for (int i = 0; i < P; i++) o[i] = (float)(o[i] * std + mean);
        }
        free(target);
    }
    mae_unpatchify(c, patches, 1, out);
    free(patches);
}

int viz_write_panels(const char *path, const mae_model *m, const float *pixels, int B, sx_err *err) {
    const mae_config *c = &m->cfg;
    int S = c->image_size, N = config_num_patches(c), P = config_patch_dim(c), gap = 4;
    size_t npx = (size_t)3 * S * S;
    int pw = 4 * S + 5 * gap, ph = B * (S + gap) + gap;
    uint8_t *panel = sx_calloc((size_t)pw * ph * 3, 1), *tile = sx_malloc(npx);
    float *recon = sx_malloc(sizeof(float) * npx), *masked = sx_malloc(sizeof(float) * npx),
          *pasted = sx_malloc(sizeof(float) * npx), *mask_px = sx_malloc(sizeof(float) * npx),
          *ones = sx_malloc(sizeof(float) * (size_t)N * P);
    for (int b = 0; b < B; b++) {
        const float *px = pixels + (size_t)b * npx;
        viz_reconstruction(m, pixels, b, recon);
        for (int n = 0; n < N; n++)
            for (int i = 0; i < P; i++) ones[(size_t)n * P + i] = m->mask[(size_t)b * N + n];
        mae_unpatchify(c, ones, 1, mask_px);  // 1 where the pixel's patch was hidden
        for (size_t i = 0; i < npx; i++) {
            int ch = (int)(i / ((size_t)S * S));
            float grey = (0.5f - IMAGENET_MEAN[ch]) / IMAGENET_STD[ch];  // hidden patches: mid grey
            masked[i] = mask_px[i] > 0.5f ? grey : px[i];
            pasted[i] = mask_px[i] > 0.5f ? recon[i] : px[i];
        }
        const float *tiles[4] = {px, masked, recon, pasted};
        for (int k = 0; k < 4; k++) {
            image_chw_to_rgb8(tiles[k], S, tile);
            int x0 = gap + k * (S + gap), y0 = gap + b * (S + gap);
            for (int y = 0; y < S; y++)
                memcpy(panel + ((size_t)(y0 + y) * pw + x0) * 3, tile + (size_t)y * S * 3, (size_t)S * 3);
        }
    }
    int rc = png_write_u8(path, panel, pw, ph, 3, err);
    free(panel); free(tile); free(recon); free(masked); free(pasted); free(mask_px); free(ones);
    return rc;
}

static double tx(double v, int log_y) { return log_y ? log10(v > 1e-30 ? v : 1e-30) : v; }

int viz_plot_svg(const char *path, const char *title, const char *xlabel, const char *ylabel, const double *x,
                 const viz_series *series, int nseries, int n, int log_y, sx_err *err) {
    static const char *colors[4] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
    const double W = 720, H = 420, L = 70, R = 20, T = 40, Bm = 50;
    double x0 = n ? x[0] : 0, x1 = n ? x[n - 1] : 1, y0 = INFINITY, y1 = -INFINITY;
    for (int s = 0; s < nseries; s++)
        for (int i = 0; i < n; i++)
            if (isfinite(series[s].y[i])) { double v = tx(series[s].y[i], log_y); y0 = fmin(y0, v); y1 = fmax(y1, v); }
    if (!(y1 > y0)) { y0 = isfinite(y0) ? y0 - 1 : 0; y1 = y0 + 2; }
    if (!(x1 > x0)) x1 = x0 + 1;
    double pad = 0.05 * (y1 - y0);
    y0 -= pad; y1 += pad;
    FILE *f = fopen(path, "w");
    if (!f) return sx_fail(err, "%s: cannot write", path);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n", W / 2, title);
    fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#444\"/>\n", L, T, W - L - R, H - T - Bm);
    for (int k = 0; k <= 5; k++) {  // grid and tick labels
        double fy = (double)k / 5, yv = y0 + fy * (y1 - y0), py = H - Bm - fy * (H - T - Bm);
        double fx = (double)k / 5, xv = x0 + fx * (x1 - x0), px = L + fx * (W - L - R);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, py, W - R, py);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>\n", L - 6, py + 4, log_y ? pow(10, yv) : yv);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.6g</text>\n", px, H - Bm + 16, xv);
    }
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n", L + (W - L - R) / 2, H - 12, xlabel);
    fprintf(f, "<text x=\"16\" y=\"%.0f\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.0f)\">%s%s</text>\n",
            T + (H - T - Bm) / 2, T + (H - T - Bm) / 2, ylabel, log_y ? " (log scale)" : "");
    for (int s = 0; s < nseries; s++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", colors[s % 4]);
        for (int i = 0; i < n; i++) {
            if (!isfinite(series[s].y[i])) continue;
            double px = L + (x[i] - x0) / (x1 - x0) * (W - L - R);
            double py = H - Bm - (tx(series[s].y[i], log_y) - y0) / (y1 - y0) * (H - T - Bm);
            fprintf(f, "%.1f,%.1f ", px, py);
        }
        fprintf(f, "\"/>\n<text x=\"%.0f\" y=\"%d\" fill=\"%s\" text-anchor=\"end\">%s</text>\n", W - R - 8,
                (int)T + 18 + 16 * s, colors[s % 4], series[s].label);
    }
    fprintf(f, "</svg>\n");
    return fclose(f) == 0 ? 0 : sx_fail(err, "%s: write failed", path);
}

/* ---------------------------------------------------------- error overlay */

/* A 3x5 pixel font for the colour bar's numbers. Each glyph is 5 rows of 3 bits. */
static const struct { char c; uint8_t rows[5]; } FONT[] = {
    {'0', {7, 5, 5, 5, 7}}, {'1', {2, 6, 2, 2, 7}}, {'2', {7, 1, 7, 4, 7}}, {'3', {7, 1, 7, 1, 7}},
    {'4', {5, 5, 7, 1, 1}}, {'5', {7, 4, 7, 1, 7}}, {'6', {7, 4, 7, 5, 7}}, {'7', {7, 1, 1, 1, 1}},
    {'8', {7, 5, 7, 5, 7}}, {'9', {7, 5, 7, 1, 7}}, {'.', {0, 0, 0, 0, 2}}, {'-', {0, 0, 7, 0, 0}},
    {'e', {0, 7, 7, 4, 7}}, {'+', {0, 2, 7, 2, 0}},
};

static void draw_text(uint8_t *rgb, int W, int H, int x, int y, const char *s, int scale) {
    for (; *s; s++, x += 4 * scale) {
        const uint8_t *rows = NULL;
        for (size_t k = 0; k < sizeof FONT / sizeof FONT[0]; k++) if (FONT[k].c == *s) rows = FONT[k].rows;
        if (!rows) continue;
        for (int r = 0; r < 5; r++)
            for (int c = 0; c < 3; c++) {
                if (!(rows[r] >> (2 - c) & 1)) continue;
                for (int dy = 0; dy < scale; dy++)
                    for (int dx = 0; dx < scale; dx++) {
                        int px = x + c * scale + dx, py = y + r * scale + dy;
                        if (px >= 0 && px < W && py >= 0 && py < H) memset(rgb + ((size_t)py * W + px) * 3, 255, 3);
                    }
            }
    }
}

/* 'inferno'-like colormap through 6 control points. */
static void colormap(float t, uint8_t *rgb) {
    static const float cp[6][3] = {{0, 0, 4}, {66, 10, 104}, {147, 38, 103}, {221, 81, 58}, {252, 165, 10}, {252, 255, 164}};
    t = t < 0 ? 0 : (t > 1 ? 1 : t);
    float f = t * 5;
    int i = f >= 5 ? 4 : (int)f;
    float u = f - (float)i;
    for (int k = 0; k < 3; k++) rgb[k] = (uint8_t)lrintf(cp[i][k] + u * (cp[i + 1][k] - cp[i][k]));
}

/* Bilinear sample of an S x S map (NaN-aware) at original pixel (x, y). */
static float sample_map(const float *map, int S, int W, int H, int x, int y) {
    float fx = ((float)x + 0.5f) * S / W - 0.5f, fy = ((float)y + 0.5f) * S / H - 0.5f;
    int x0 = (int)floorf(fx), y0 = (int)floorf(fy);
    float ax = fx - x0, ay = fy - y0, acc = 0, wsum = 0;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            int xx = x0 + dx < 0 ? 0 : (x0 + dx >= S ? S - 1 : x0 + dx);
            int yy = y0 + dy < 0 ? 0 : (y0 + dy >= S ? S - 1 : y0 + dy);
            float v = map[(size_t)yy * S + xx], w = (dx ? ax : 1 - ax) * (dy ? ay : 1 - ay);
            if (isnan(v)) continue;
            acc += w * v;
            wsum += w;
        }
    return wsum > 0 ? acc / wsum : NAN;
}

int viz_errormap_overlay_png(const gray_image *img, const float *map, int S, float vmax, float alpha, int colorbar,
                             void **png, size_t *len, sx_err *err) {
    *png = NULL;
    *len = 0;
    int W = img->width, H = img->height;
    int scale = H >= 600 ? 3 : (H >= 300 ? 2 : 1);
    int bar_w = 14 * scale, label_w = 4 * scale * 8, OW = colorbar ? W + bar_w + label_w + 12 * scale : W;
    /* the PNG writer's limit, checked before the pixels are made */
    if (W <= 0 || H <= 0 || OW > 16384 || H > 16384)
        return sx_fail(err, "overlay of %dx%d%s is over the PNG limit of 16384 px a side", OW, H,
                       colorbar ? " (with its colour bar)" : "");
    uint8_t *grey = malloc((size_t)W * H), *rgb = calloc((size_t)OW * H * 3, 1);
    if (!grey || !rgb) {
        free(grey);
        free(rgb);
        return sx_fail(err, "out of memory for a %dx%d overlay", OW, H);
    }
    image_minmax_u8(img, grey);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *o = rgb + ((size_t)y * OW + x) * 3, c[3];
            float g = grey[(size_t)y * W + x], v = sample_map(map, S, W, H, x, y);
            if (isnan(v) || vmax <= 0) { o[0] = o[1] = o[2] = (uint8_t)g; continue; }
            float t = v / vmax;
            colormap(t, c);
            float a = alpha * (t < 0 ? 0 : (t > 1 ? 1 : t));  /* low error stays transparent */
            for (int k = 0; k < 3; k++) o[k] = (uint8_t)lrintf((1 - a) * g + a * c[k]);
        }
    /* colour bar with its values */
    int bx = W + 6 * scale, top = 8 * scale, bot = H - 8 * scale;
    for (int y = top; colorbar && y < bot; y++) {
        uint8_t c[3];
        colormap((float)(bot - 1 - y) / (float)(bot - top - 1), c);
        for (int x = bx; x < bx + bar_w; x++) memcpy(rgb + ((size_t)y * OW + x) * 3, c, 3);
    }
    for (int k = 0; colorbar && k <= 4; k++) {
        char label[32];
        snprintf(label, sizeof label, "%.3g", (double)vmax * k / 4);
        int y = bot - 1 - (int)((float)k / 4 * (float)(bot - top - 1)) - 2 * scale;
        draw_text(rgb, OW, H, bx + bar_w + 3 * scale, y, label, scale);
    }
    int rc = png_encode_u8(rgb, OW, H, 3, png, len, err);
    free(grey);
    free(rgb);
    return rc;
}

int viz_errormap_overlay(const char *path, const gray_image *img, const float *map, int S, float vmax, float alpha,
                         sx_err *err) {
    void *png;
    size_t len;
    sx_err e;
    if (viz_errormap_overlay_png(img, map, S, vmax, alpha, 1, &png, &len, &e)) return sx_fail(err, "%s: %s", path, e.msg);
    int rc = io_write_file(path, png, len, err);
    free(png);
    return rc;
}
