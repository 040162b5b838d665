/* pipeline.c: one image's error map (contract: pipeline.h). */
#include "zeroshot/pipeline.h"
#include "eval/metrics.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void zs_map_free(zs_map *z) {
    if (!z) return;
    free(z->map);
    free(z->count);
    free(z->pixels);
    memset(z, 0, sizeof *z);
}

/* Statistics over the valid pixels: mean, max and where, never-masked
 * count, the 99th percentile (numpy's linear interpolation). */
static int map_stats(zs_map *z, sx_err *err) {
    size_t n = (size_t)z->size * z->size, k = 0;
    double *v = malloc(sizeof(double) * (n ? n : 1)), sum = 0;
    if (!v) return sx_fail(err, "out of memory for the map's statistics");
    float mx = -INFINITY;
    z->never_masked = 0;
    for (size_t i = 0; i < n; i++) {
        float x = z->map[i];
        if (isnan(x)) { z->never_masked++; continue; }
        v[k++] = x;
        sum += x;
        if (x > mx) { mx = x; z->peak_mx = (int)(i % z->size); z->peak_my = (int)(i / z->size); }
    }
    z->mean = k ? sum / (double)k : NAN;
    z->max = k ? (double)mx : NAN;
    z->scale_max = k ? (float)metric_percentile(v, k, 0.99) : 0.0f;
    z->peak_x = z->peak_mx + 0.5;
    z->peak_y = z->peak_my + 0.5;
    free(v);
    return 0;
}

int zs_errormap_pixels(mae_model *m, const float *chw, const zs_opts *o, zs_map *out, sx_err *err) {
    memset(out, 0, sizeof *out);
    const mae_config *c = &m->cfg;
    if (o->passes < 1 || o->passes > 1024) return sx_fail(err, "passes %d must be in 1..1024", o->passes);
    if (o->masking != MASKING_RANDOM && o->masking != MASKING_BALANCED) return sx_fail(err, "unknown masking");
    if (c->num_channels != 3) return sx_fail(err, "the model has %d channels; images are fed as 3", c->num_channels);
    int S = c->image_size, N = config_num_patches(c), B = o->passes;
    size_t npx = (size_t)3 * S * S, npix = (size_t)S * S;
    float *pixels = malloc(sizeof(float) * npx * B), *noise = malloc(sizeof(float) * (size_t)B * N);
    out->map = malloc(sizeof(float) * npix);
    out->count = malloc(sizeof(int) * npix);
    out->pixels = malloc(sizeof(float) * npx);
    int rc = 0;
    if (!pixels || !noise || !out->map || !out->count || !out->pixels)
        rc = sx_fail(err, "out of memory for an error map of %d passes", B);
    if (!rc) {
        for (int k = 0; k < B; k++) memcpy(pixels + (size_t)k * npx, chw, sizeof(float) * npx);
        memcpy(out->pixels, chw, sizeof(float) * npx);
        sx_rng r;
        rng_seed(&r, o->seed);
        errormap_noise(o->masking, B, N, config_len_keep(c), &r, noise);
        rc = mae_forward(m, pixels, noise, B, err);
    }
    if (!rc) {
        errormap_accumulate(m, pixels, B, out->map, out->count);
        out->size = S;
        out->passes = B;
        out->masking = o->masking;
        out->mask_ratio = c->mask_ratio;
        out->norm_pix = c->norm_pix_loss;
        rc = map_stats(out, err);
    }
    free(pixels);
    free(noise);
    if (rc) zs_map_free(out);
    return rc;
}

int zs_errormap_image(mae_model *m, const gray_image *img, const zs_opts *o, zs_map *out, sx_err *err) {
    int S = m->cfg.image_size;
    float *chw = malloc(sizeof(float) * 3 * (size_t)S * S);
    if (!chw) return sx_fail(err, "out of memory for the model input");
    image_preprocess(img, S, chw);
    int rc = zs_errormap_pixels(m, chw, o, out, err);
    free(chw);
    if (rc) return -1;
    /* peak in original pixel coordinates (the model input is a plain resize) */
    out->peak_x = ((double)out->peak_mx + 0.5) * img->width / S;
    out->peak_y = ((double)out->peak_my + 0.5) * img->height / S;
    return 0;
}
