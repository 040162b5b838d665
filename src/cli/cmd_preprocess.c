/* cmd_preprocess.c: `skelex preprocess`: writes exactly the 8-bit grey image
 * the model is fed from one input file, as a PNG.
 *
 * Does: load through the one loader (image_load_gray: PNG, JPEG, DICOM with
 * windowing and MONOCHROME1 inversion, first frame), per-image min-max to
 * 8 bits (image_minmax_u8), and with --size the model's resize
 * (image_resize_bilinear_u8, Pillow-compatible bilinear) to N x N.
 * Does not: the later, fixed steps (grey to 3 channels, /255, ImageNet
 * mean/std), augmentation, or anything with DICOM attributes: the output
 * is named by the caller and nothing read from the file is printed.
 */
#include "cli/cli.h"
#include "io/image.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: skelex preprocess IMAGE --out OUT.png [--size N]\n"
    "\n"
    "Write what the model sees of IMAGE as an 8-bit grey PNG: the image as loaded\n"
    "(DICOM: modality LUT, the file's first window or VOI LUT else min-max,\n"
    "MONOCHROME1 inverted so bone is bright, first frame of a multi-frame file),\n"
    "then per-image min-max to 8 bits. The model's remaining steps (grey to 3\n"
    "channels, /255, ImageNet mean/std) are fixed and not shown.\n"
    "\n"
    "  IMAGE          PNG, JPEG or DICOM file (format from its bytes, not its name)\n"
    "  --out OUT.png  output file\n"
    "  --size N       resize to N x N as for the model (Pillow-compatible bilinear);\n"
    "                 default: the original resolution\n"
    "\n"
    "Exit status 0 on success, 1 when IMAGE cannot be read (one line on stderr\n"
    "naming the file and the reason), 2 on a usage error.\n";

int cmd_preprocess(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    long size = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (!strcmp(argv[i], "--out")) out = cli_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--size")) size = cli_long("--size", cli_value(argc, argv, &i), 1, 4096);
        else if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error("preprocess", "unknown option '%s'", argv[i]);
        else if (!in) in = argv[i];
        else return cli_usage_error("preprocess", "one IMAGE only");
    }
    if (!in || !out) return cli_usage_error("preprocess", "IMAGE and --out are required");

    sx_err err;
    gray_image img;
    if (image_load_gray(in, &img, &err)) {
        fprintf(stderr, "skelex preprocess: %s\n", err.msg);
        return 1;
    }
    int w = img.width, h = img.height;
    uint8_t *u8 = sx_malloc((size_t)w * (size_t)h);
    image_minmax_u8(&img, u8);
    gray_image_free(&img);
    if (size > 0) {
        uint8_t *sq = sx_malloc((size_t)size * (size_t)size);
        image_resize_bilinear_u8(u8, w, h, sq, (int)size, (int)size);
        free(u8);
        u8 = sq;
        w = h = (int)size;
    }
    int rc = png_write_u8(out, u8, w, h, 1, &err);
    free(u8);
    if (rc) {
        fprintf(stderr, "skelex preprocess: %s\n", err.msg);
        return 1;
    }
    printf("wrote %s (%dx%d)\n", out, w, h);
    return 0;
}
