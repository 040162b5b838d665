/* cmd_bench_masking.c: `skelex bench masking`: balanced against random
 * masking at equal passes: coverage (share of pixels that get a value) and
 * the per-pixel variance of the map over seeds. */
#include "io/checkpoint.h"
#include "cli/cli.h"
#include "zeroshot/pipeline.h"
#include "io/image.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: skelex bench masking --model DIR --image FILE [--passes N] [--seeds K]\n"
    "\n"
    "For each masking (random, balanced), compute K error maps of FILE with N\n"
    "passes and different seeds; report the mean coverage (pixels masked at least\n"
    "once) and the mean over pixels of the variance across seeds (pixels without a\n"
    "value in some seed are left out of the variance). Defaults: N 4, K 8.\n";

int cmd_bench_masking(int argc, char **argv) {
    const char *model = NULL, *image = NULL;
    int passes = 4, seeds = 8;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (!strcmp(argv[i], "--model")) model = cli_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--image")) image = cli_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--passes")) passes = (int)cli_long("--passes", cli_value(argc, argv, &i), 1, 256);
        else if (!strcmp(argv[i], "--seeds")) seeds = (int)cli_long("--seeds", cli_value(argc, argv, &i), 2, 256);
        else return cli_usage_error("bench masking", "unknown option '%s'", argv[i]);
    }
    if (!image) return cli_usage_error("bench masking", "--image is required");
    char shipped[4200];
    if (!(model = cli_model_or_shipped("bench masking", model, CLI_MAE_MODEL, shipped, sizeof shipped))) return 2;
    sx_err err;
    mae_model m;
    if (checkpoint_load_inference(model, &m, &err)) { fprintf(stderr, "skelex bench masking: %s\n", err.msg); return 1; }
    int S = m.cfg.image_size;
    size_t npix = (size_t)S * S;
    float *maps = sx_malloc(sizeof(float) * npix * seeds), *px = sx_malloc(sizeof(float) * 3 * npix);
    if (image_preprocess_file(image, S, px, &err)) { fprintf(stderr, "skelex bench masking: %s\n", err.msg); return 1; }
    printf("masking,passes,seeds,mean_coverage,mean_pixel_variance,pixels_in_variance\n");
    for (int kind = 0; kind < 2; kind++) {
        double cover = 0;
        for (int s = 0; s < seeds; s++) {
            zs_map z;
            zs_opts o = {.passes = passes, .masking = kind ? MASKING_BALANCED : MASKING_RANDOM, .seed = (uint64_t)s + 1000};
            if (zs_errormap_pixels(&m, px, &o, &z, &err)) { fprintf(stderr, "skelex bench masking: %s\n", err.msg); return 1; }
            memcpy(maps + (size_t)s * npix, z.map, sizeof(float) * npix);
            cover += (double)(npix - (size_t)z.never_masked) / npix / seeds;
            zs_map_free(&z);
        }
        double var = 0;
        size_t nv = 0;
        for (size_t i = 0; i < npix; i++) {
            double mean = 0, sq = 0;
            int ok = 1;
            for (int s = 0; s < seeds && ok; s++) ok = !isnan(maps[(size_t)s * npix + i]);
            if (!ok) continue;
            for (int s = 0; s < seeds; s++) mean += maps[(size_t)s * npix + i] / seeds;
            for (int s = 0; s < seeds; s++) { double d = maps[(size_t)s * npix + i] - mean; sq += d * d; }
            var += sq / (seeds - 1);
            nv++;
        }
        printf("%s,%d,%d,%.4f,%.6g,%zu\n", kind ? "balanced" : "random", passes, seeds, cover, nv ? var / nv : NAN, nv);
    }
    free(px); free(maps);
    mae_free(&m);
    return 0;
}
