/* api_errormap.c: the error map of one image through the public API only.
 *   make example
 *   build/api_errormap MODEL_DIR IMAGE OUT.npy [PASSES [SEED]]
 * Writes the S x S float32 map (NaN where never masked) as a NumPy .npy,
 * the same map `skelex errormap --passes PASSES --seed SEED` writes. */
#include "skelex.h"
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 4 || argc > 6) {
        fprintf(stderr, "usage: %s MODEL_DIR IMAGE OUT.npy [PASSES [SEED]]\n", argv[0]);
        return 2;
    }
    skx_errormap_opts opts;
    skx_errormap_opts_default(&opts);
    if (argc > 4) opts.passes = atoi(argv[4]);
    if (argc > 5) opts.seed = strtoull(argv[5], NULL, 10);
    skx_error err;
    skx_model *model = NULL;
    skx_image *img = NULL;
    skx_ctx *ctx = NULL;
    skx_errormap em = {0};
    void *npy = NULL;
    size_t len = 0;
    int rc = 1;
    if (skx_model_load(argv[1], &model, &err) || skx_image_load_file(argv[2], &img, &err) ||
        skx_ctx_new(model, opts.passes, 0, &ctx, &err) || skx_errormap_compute(ctx, img, &opts, &em, &err) ||
        skx_errormap_npy(&em, &npy, &len, &err)) {
        fprintf(stderr, "api_errormap: %s\n", err.msg);
        goto done;
    }
    FILE *f = fopen(argv[3], "wb");
    if (!f || fwrite(npy, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "api_errormap: %s: cannot write\n", argv[3]);
        goto done;
    }
    printf("%s: %dx%d map, mean %.6g, max %.6g at (%.1f, %.1f)\n", argv[3], em.size, em.size, em.mean, em.max,
           em.peak_x, em.peak_y);
    rc = 0;
done:
    free(npy);
    skx_errormap_free(&em);
    skx_ctx_free(ctx);
    skx_image_free(img);
    skx_model_free(model);
    return rc;
}
