/* errormap.c: multi-mask reconstruction error and localisation metrics. */
#include "zeroshot/errormap.h"
#include "io/image.h"
#include "eval/metrics.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void errormap_noise(masking_kind kind, int passes, int N, int len_keep, sx_rng *r, float *noise) {
    if (kind == MASKING_RANDOM) {
        for (size_t i = 0; i < (size_t)passes * N; i++) noise[i] = rng_uniform(r);
        return;
    }
    /* Visible sets are consecutive windows of a stream of independent random
     * permutations of the patches: within one permutation every patch is
     * visible exactly once, and each new permutation brings new groupings
     * (a repeated permutation would repeat the same masks). */
    int *perm = sx_malloc(sizeof(int) * (size_t)N), pos = N;
    uint8_t *vis = sx_malloc((size_t)N);
    for (int k = 0; k < passes; k++) {
        float *nz = noise + (size_t)k * N;
        memset(vis, 0, (size_t)N);
        /* hidden patches get noise in [0.5, 1), visible ones in [0, 0.5):
         * argsort then keeps exactly the window as the visible set */
        for (int i = 0; i < N; i++) nz[i] = 0.5f + 0.5f * rng_uniform(r);
        for (int got = 0; got < len_keep;) {
            if (pos == N) {  /* next permutation (Fisher-Yates) */
                for (int i = 0; i < N; i++) perm[i] = i;
                for (int i = N - 1; i > 0; i--) {
                    int j = (int)rng_below(r, (uint32_t)i + 1), t = perm[i];
                    perm[i] = perm[j]; perm[j] = t;
                }
                pos = 0;
            }
            int p = perm[pos++];
            if (vis[p]) continue;  /* a window straddling two permutations */
            vis[p] = 1;
            nz[p] = 0.5f * rng_uniform(r);
            got++;
        }
    }
    free(vis);
    free(perm);
}

void errormap_accumulate(const mae_model *m, const float *pixels, int passes, float *map, int *count) {
    const mae_config *c = &m->cfg;
    int S = c->image_size, N = config_num_patches(c), P = config_patch_dim(c), C = c->num_channels;
    int p = c->patch_size, g = config_grid(c);
    float *target = sx_malloc(sizeof(float) * (size_t)N * P);
    mae_patchify(c, pixels, 1, target);
    if (c->norm_pix_loss)  /* compare where the loss compares: per-patch normalised targets */
        mae_normalize_patches(target, (size_t)N, P);
    double *sum = sx_calloc((size_t)S * S, sizeof(double));
    memset(count, 0, sizeof(int) * (size_t)S * S);
    for (int k = 0; k < passes; k++) {
        const float *logits = mae_logits(m, k), *mask = m->mask + (size_t)k * N;
        for (int n = 0; n < N; n++) {
            if (mask[n] == 0.0f) continue;
            int gy = n / g, gx = n % g;
            const float *pr = logits + (size_t)n * P, *t = target + (size_t)n * P;
            for (int py = 0; py < p; py++)
                for (int px = 0; px < p; px++) {
                    double e = 0;
                    for (int ch = 0; ch < C; ch++) {
                        int i = (py * p + px) * C + ch;
                        double d = (double)pr[i] - t[i];
                        /* de-normalise: a normalised difference times std is the [0,1] difference */
                        if (!c->norm_pix_loss) d *= IMAGENET_STD[ch % 3];
                        e += d * d;
                    }
                    size_t at = (size_t)(gy * p + py) * S + gx * p + px;
                    sum[at] += e / C;
                    count[at]++;
                }
        }
    }
    for (size_t i = 0; i < (size_t)S * S; i++) map[i] = count[i] ? (float)(sum[i] / count[i]) : NAN;
    free(sum);
    free(target);
}

void boxes_rasterize(const norm_box *b, int nb, int W, int H, uint8_t *inside) {
    memset(inside, 0, (size_t)W * H);
    for (int k = 0; k < nb; k++) {
        double x0 = (b[k].cx - b[k].w / 2) * W, x1 = (b[k].cx + b[k].w / 2) * W;
        double y0 = (b[k].cy - b[k].h / 2) * H, y1 = (b[k].cy + b[k].h / 2) * H;
        for (int y = 0; y < H; y++) {
            double yc = y + 0.5;  /* a pixel is inside when its centre is */
            if (yc < y0 || yc > y1) continue;
            for (int x = 0; x < W; x++) {
                double xc = x + 0.5;
                if (xc >= x0 && xc <= x1) inside[(size_t)y * W + x] = 1;
            }
        }
    }
}

int localization_metrics(const float *map, const uint8_t *inside, int W, int H, loc_metrics *out) {
    size_t n = (size_t)W * H, nv = 0, nin = 0;
    double mass = 0, mass_in = 0;
    float best = -INFINITY;
    double *sc = sx_malloc(sizeof(double) * (n ? n : 1));
    int *lb = sx_malloc(sizeof(int) * (n ? n : 1));
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        if (isnan(map[i])) continue;
        sc[nv] = map[i];
        lb[nv] = inside[i];
        nv++;
        nin += inside[i] != 0;
        mass += map[i];
        if (inside[i]) mass_in += map[i];
        if (map[i] > best) { best = map[i]; out->peak_x = (int)(i % W); out->peak_y = (int)(i / W); }
    }
    int rc = (nin == 0 || nin == nv) ? -1 : 0;
    out->hit = nv && inside[(size_t)out->peak_y * W + out->peak_x];
    out->mass_share = mass > 0 ? mass_in / mass : 0;
    out->area_share = nv ? (double)nin / nv : 0;
    out->auroc = rc ? NAN : metric_auroc(sc, lb, nv);
    free(sc);
    free(lb);
    return rc;
}

int boxes_read_yolo(const char *path, norm_box *boxes, int cap, sx_err *err) {
    FILE *f = sx_fopen_input(path, NULL, err);
    if (!f) return -1;
    char line[512];
    int n = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        if (*s == '\n' || *s == '\r' || *s == 0) continue;
        int cls;
        float cx, cy, w, h;
        if (sscanf(s, "%d %f %f %f %f", &cls, &cx, &cy, &w, &h) != 5 || !(w >= 0 && h >= 0 && w <= 1 && h <= 1) ||
            !(cx >= 0 && cx <= 1 && cy >= 0 && cy <= 1)) {
            fclose(f);
            return sx_fail(err, "%s:%d: expected 'class cx cy w h' normalised to [0,1]", path, lineno);
        }
        if (n < cap) boxes[n++] = (norm_box){cx, cy, w, h};
    }
    fclose(f);
    return n;
}
