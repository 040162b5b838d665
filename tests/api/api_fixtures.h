/* api_fixtures.h: a tiny MAE made by `./skelex init` and a synthetic
 * radiograph, shared by the API and error-map CLI tests. */
#ifndef SKELEX_API_FIXTURES_H
#define SKELEX_API_FIXTURES_H
#include "io/image.h"
#include "testlib.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* dir/m: a 64 px MAE (patch 16) from ./skelex init; 0 or -1. */
static inline int apifx_model(const char *dir) {
    char cfg[700], cmd[2000], out[4096];
    snprintf(cfg, sizeof cfg, "%s/cfg.json", dir);
    tl_write_text(cfg, "{\"image_size\": 64, \"patch_size\": 16, \"hidden_size\": 32, \"num_hidden_layers\": 1,"
                       " \"num_attention_heads\": 2, \"intermediate_size\": 64, \"decoder_hidden_size\": 16,"
                       " \"decoder_num_hidden_layers\": 1, \"decoder_num_attention_heads\": 2,"
                       " \"decoder_intermediate_size\": 32}");
    snprintf(cmd, sizeof cmd, "./skelex init --config %s --out %s/m --seed 5", cfg, dir);
    return tl_run(cmd, out, sizeof out) == 0 ? 0 : -1;
}

/* A w x h grey phantom: background gradient, a bright disk, a dark notch. */
static inline void apifx_phantom_px(uint8_t *px, int w, int h, int variant) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int dx = x - w / 2, dy = y - h / 2;
            int v = 30 + (x * 40) / w + (dx * dx + dy * dy < (w * w) / 16 ? 150 : 0);
            if (variant && x > w / 5 && x < w / 3 && y > h / 5 && y < h / 3) v = 250;
            px[y * w + x] = (uint8_t)v;
        }
}

static inline int apifx_phantom(const char *path, int w, int h, int variant) {
    uint8_t *px = malloc((size_t)w * h);
    apifx_phantom_px(px, w, h, variant);
    sx_err err;
    int rc = png_write_u8(path, px, w, h, 1, &err);
    free(px);
    return rc;
}

#endif
