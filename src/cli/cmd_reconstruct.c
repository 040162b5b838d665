/* cmd_reconstruct.c: `skelex reconstruct`: one image through the MAE with a
 * given or seeded mask; writes the decoder logits and a 4-tile panel. */
#include "io/checkpoint.h"
#include "cli/cli.h"
#include "io/image.h"
#include "io/npy.h"
#include "core/rng.h"
#include "eval/viz.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: skelex reconstruct --model DIR --image FILE [--noise NOISE.npy | --seed S] --out PREFIX\n"
    "\n"
    "Preprocess FILE as SKELEX does (per-image min-max to 8 bits, grey to 3 channels,\n"
    "resize to the model's image_size, ImageNet normalisation), mask it, reconstruct.\n"
    "\n"
    "  --model DIR        model directory (config.json + model.safetensors); default:\n"
    "                     the shipped models/skelex-tiny-mae\n"
    "  --image FILE       PNG or JPEG radiograph\n"
    "  --noise FILE.npy   num_patches float32/float64 values; patches with the smallest\n"
    "                     noise stay visible (HF's argsort masking)\n"
    "  --seed S           draw the noise from seed S instead (default 0)\n"
    "  --out PREFIX       writes PREFIX.npy (logits, float32 [num_patches, p*p*C]) and\n"
    "                     PREFIX.png (original | masked | reconstruction | reconstruction\n"
    "                     pasted into the visible patches)\n"
    "\n"
    "  --save-input       also write PREFIX_input.npy: the normalised model input\n"
    "                     [1, 3, S, S] float32, e.g. to feed the same input to PyTorch\n"
    "\n"
    "Prints loss=<value>: the model's loss on the masked patches.\n";

int cmd_reconstruct(int argc, char **argv) {
    const char *model = NULL, *image = NULL, *noise_path = NULL, *out = NULL;
    long seed = 0;
    int save_input = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (!strcmp(argv[i], "--model")) model = cli_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--image")) image = cli_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--noise")) noise_path = cli_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--seed")) seed = cli_long("--seed", cli_value(argc, argv, &i), 0, 0x7fffffffL);
        else if (!strcmp(argv[i], "--out")) out = cli_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--save-input")) save_input = 1;
        else return cli_usage_error("reconstruct", "unknown option '%s'", argv[i]);
    }
    if (!image || !out) return cli_usage_error("reconstruct", "--image and --out are required");
    char shipped[4200];
    if (!(model = cli_model_or_shipped("reconstruct", model, CLI_MAE_MODEL, shipped, sizeof shipped))) return 2;
    sx_err err;
    mae_model m;
    if (checkpoint_load_inference(model, &m, &err)) { fprintf(stderr, "skelex reconstruct: %s\n", err.msg); return 1; }
    const mae_config *c = &m.cfg;
    int S = c->image_size, N = config_num_patches(c), P = config_patch_dim(c), rc = 1;
    float *pixels = sx_malloc(sizeof(float) * 3 * S * S), *noise = sx_malloc(sizeof(float) * (size_t)N);
    char path[4200];
    if (c->num_channels != 3) { fprintf(stderr, "skelex reconstruct: the model has %d channels; images are fed as 3\n", c->num_channels); goto done; }
    if (image_preprocess_file(image, S, pixels, &err)) goto fail;
    if (noise_path) {
        if (npy_read_values_f32(noise_path, (size_t)N, "patches", noise, &err)) goto fail;
    } else {
        sx_rng r;
        rng_seed(&r, (uint64_t)seed);
        for (int n = 0; n < N; n++) noise[n] = rng_uniform(&r);
    }
    if (mae_forward(&m, pixels, noise, 1, &err)) goto fail;
    snprintf(path, sizeof path, "%s.npy", out);
    int64_t shape[2] = {N, P};
    if (npy_write_f32(path, mae_logits(&m, 0), 2, shape, &err)) goto fail;
    if (save_input) {
        int64_t ishape[4] = {1, 3, S, S};
        snprintf(path, sizeof path, "%s_input.npy", out);
        if (npy_write_f32(path, pixels, 4, ishape, &err)) goto fail;
    }
    snprintf(path, sizeof path, "%s.png", out);
    if (viz_write_panels(path, &m, pixels, 1, &err)) goto fail;
    printf("loss=%.8g\n", (double)m.loss);
    printf("wrote %s.npy and %s.png (%d of %d patches masked)\n", out, out, N - config_len_keep(c), N);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "skelex reconstruct: %s\n", err.msg);
done:
    free(pixels);
    free(noise);
    mae_free(&m);
    return rc;
}
