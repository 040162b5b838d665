/* cmd_errormap.c: `skelex errormap`: zero-shot abnormality maps for many
 * images, with optional localisation scoring against YOLO boxes. */
#include "io/checkpoint.h"
#include "cli/cli.h"
#include "cli/precision_args.h"
#include "data/data.h"
#include "zeroshot/batch.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *HELP =
    "usage: skelex errormap --model DIR --out OUTDIR [options] INPUT [INPUT ...]\n"
    "\n"
    "Zero-shot abnormality maps (SKELEX): reconstruct each image under many\n"
    "random masks and average, per pixel, the squared error of the passes in\n"
    "which that pixel was hidden. INPUT is an image, a directory (recursive) or\n"
    "a text file listing images.\n"
    "\n"
    "  --model DIR        pretrained MAE (config.json + model.safetensors); default:\n"
    "                     the shipped models/skelex-tiny-mae\n"
    "  --out OUTDIR       per image: <name>_errormap.png (overlay at the original\n"
    "                     resolution, with a colour bar), <name>_panel.png,\n"
    "                     <name>_error.npy (float32 map at model resolution, NaN where\n"
    "                     never masked); and summary.csv (RFC 4180: one row per image\n"
    "                     written, its output <name> in column 'output'). <name> is the\n"
    "                     file name without extension; inputs sharing a name (study1/\n"
    "                     IM-1.dcm, study2/IM-1.dcm) get '-' and 8 hex digits of their\n"
    "                     path's hash appended, so no output is overwritten\n"
    "  --passes N         masks per image, run as one batch (default 10)\n"
    "  --mask-ratio R     share of patches hidden per pass (default: the model's)\n"
    "  --masking M        balanced (default): every patch is hidden equally often, so\n"
    "                     coverage is complete with few passes and variance is lower;\n"
    "                     random: independent masks per pass, as in the SKELEX paper\n"
    "  --seed S           mask seed (default 0); each image's masks start from it, so\n"
    "                     an image's map does not depend on the other inputs\n"
    "  --alpha A          overlay opacity at the top of the scale (default 0.6)\n"
    CLI_PRECISION_HELP
    "  --boxes DIR        YOLO box files <stem>.txt ('class cx cy w h', normalised):\n"
    "                     score the maps (pointing game, error mass in boxes and its\n"
    "                     lift over their area, pixel AUROC) into OUTDIR/localization.json;\n"
    "                     the folder must exist\n"
    "\n"
    "An image that cannot be read, computed or written is skipped with a message\n"
    "and the batch goes on. Exit status: 0 every image done, 1 none done (or a\n"
    "setup error: model, inputs, OUTDIR), 2 usage error (including a missing\n"
    "--boxes folder), 3 some images done and some skipped.\n"
    "\n"
    "Errors are in de-normalised [0,1] pixel space; for a model trained with\n"
    "norm_pix_loss, in the per-patch normalised space of its loss (said in the output).\n";

static void print_localization(const zs_loc *t) {
    double hit, ms, as, lift, au;
    zs_loc_means(t, &hit, &ms, &as, &lift, &au);
    printf("localization (%d images with boxes, %d without, ignored)\n", t->n_scored, t->n_unboxed);
    printf("  %-34s %10s %10s\n", "metric", "errormap", "random map");
    printf("  %-34s %10.3f %10.3f\n", "pointing game hit rate", hit, as);
    printf("  %-34s %10.3f %10.3f\n", "error mass inside boxes", ms, as);
    printf("  %-34s %10.3f %10.3f\n", "lift (mass share / area share)", lift, 1.0);
    printf("  %-34s %10.3f %10.3f\n", "pixel AUROC", au, 0.5);
}

int cmd_errormap(int argc, char **argv) {
    const char *model = NULL, *outdir = NULL, *boxes = NULL, *inputs[256];
    int n_inputs = 0, passes = 10;
    long seed = 0;
    double mask_ratio = -1, alpha = 0.6;
    masking_kind kind = MASKING_BALANCED;
    const char *precision = "auto";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) { fputs(HELP, stdout); return 0; }
        else if (!strcmp(a, "--model")) model = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--out")) outdir = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--boxes")) boxes = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--passes")) passes = (int)cli_long(a, cli_value(argc, argv, &i), 1, 1024);
        else if (!strcmp(a, "--seed")) seed = cli_long(a, cli_value(argc, argv, &i), 0, 0x7fffffffL);
        else if (!strcmp(a, "--mask-ratio")) mask_ratio = cli_double(a, cli_value(argc, argv, &i), 0.01, 0.99);
        else if (!strcmp(a, "--precision")) precision = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--alpha")) alpha = cli_double(a, cli_value(argc, argv, &i), 0, 1);
        else if (!strcmp(a, "--masking")) {
            const char *m = cli_value(argc, argv, &i);
            if (!strcmp(m, "random")) kind = MASKING_RANDOM;
            else if (!strcmp(m, "balanced")) kind = MASKING_BALANCED;
            else return cli_usage_error("errormap", "--masking is balanced or random");
        }
        else if (a[0] == '-') return cli_usage_error("errormap", "unknown option '%s'", a);
        else if (n_inputs < 256) inputs[n_inputs++] = a;
        else return cli_usage_error("errormap", "at most 256 inputs (use a list file)");
    }
    if (!outdir || !n_inputs) return cli_usage_error("errormap", "--out and at least one INPUT are required");
    char shipped[4200];
    if (!(model = cli_model_or_shipped("errormap", model, CLI_MAE_MODEL, shipped, sizeof shipped))) return 2;
    struct stat st;
    if (boxes && (stat(boxes, &st) || !S_ISDIR(st.st_mode)))
        return cli_usage_error("errormap", "--boxes %s: %s", boxes, errno == ENOENT || !errno ? "no such folder" : strerror(errno));
    sx_precision prec = cli_precision("errormap", precision);
    sx_err err;
    mae_model m;
    if (checkpoint_load_inference(model, &m, &err)) { fprintf(stderr, "skelex errormap: %s\n", err.msg); return 1; }
    mae_set_precision(&m, prec);
    if (mask_ratio >= 0) {
        m.cfg.mask_ratio = mask_ratio;
        if (config_validate(&m.cfg, &err)) { fprintf(stderr, "skelex errormap: %s\n", err.msg); mae_free(&m); return 2; }
    }
    dataset ds;
    dataset_init(&ds);
    for (int i = 0; i < n_inputs; i++)
        if (dataset_add(&ds, inputs[i], &err)) { fprintf(stderr, "skelex errormap: %s\n", err.msg); dataset_free(&ds); mae_free(&m); return 1; }
    size_t n = dataset_count(&ds);
    if (mkdir(outdir, 0755) && errno != EEXIST) {
        fprintf(stderr, "skelex errormap: %s: cannot create (%s)\n", outdir, strerror(errno));
        dataset_free(&ds); mae_free(&m);
        return 1;
    }
    char path[4400];
    snprintf(path, sizeof path, "%s/summary.csv", outdir);
    FILE *summary = fopen(path, "w");
    if (!summary) {
        fprintf(stderr, "skelex errormap: %s: cannot write (%s)\n", path, strerror(errno));
        dataset_free(&ds); mae_free(&m);
        return 1;
    }
    zs_summary_header(summary);
    const char **files = sx_malloc(sizeof *files * (n ? n : 1));
    for (size_t i = 0; i < n; i++) files[i] = dataset_path(&ds, i);
    char **stems = zs_output_stems(files, n);
    cli_print_cpu("errormap", prec);
    fprintf(stderr, "errormap: %zu image(s), %d passes, %s masking, ratio %g, error in %s space\n", n, passes,
            kind == MASKING_BALANCED ? "balanced" : "random", m.cfg.mask_ratio, zs_space_name(m.cfg.norm_pix_loss));
    zs_opts zo = {.passes = passes, .masking = kind, .seed = (uint64_t)seed};
    zs_loc loc;
    zs_loc_init(&loc);
    size_t done = 0;
    double t0 = sx_now();
    for (size_t idx = 0; idx < n; idx++) {
        gray_image img;
        zs_map z;
        int ok = image_load_gray(files[idx], &img, &err) == 0;
        if (ok) {
            ok = zs_errormap_image(&m, &img, &zo, &z, &err) == 0 &&
                 (zs_write_outputs(outdir, stems[idx], &m, &img, &z, (float)alpha, &err) == 0 || (zs_map_free(&z), 0));
            gray_image_free(&img);
        }
        if (!ok) { fprintf(stderr, "\nskelex errormap: skipped: %s\n", err.msg); continue; }
        zs_summary_row(summary, files[idx], stems[idx], &z);
        if (boxes && zs_loc_add(&loc, boxes, files[idx], &z, &err)) fprintf(stderr, "\nskelex errormap: %s\n", err.msg);
        zs_map_free(&z);
        done++;
        double per = (sx_now() - t0) / (double)(idx + 1);
        fprintf(stderr, "\r[%zu/%zu] %.2f s/image, ETA %.0f s   ", idx + 1, n, per, per * (double)(n - idx - 1));
    }
    fprintf(stderr, "\n");
    int summary_bad = fclose(summary) != 0;
    if (summary_bad) fprintf(stderr, "skelex errormap: %s: write failed\n", path);
    if (boxes) {
        cJSON *j = zs_loc_json(&loc, passes, kind, m.cfg.norm_pix_loss);
        snprintf(path, sizeof path, "%s/localization.json", outdir);
        if (json_write_file(path, j, &err)) fprintf(stderr, "skelex errormap: %s\n", err.msg);
        cJSON_Delete(j);
        print_localization(&loc);
    }
    zs_loc_free(&loc);
    printf("wrote %s/summary.csv (%zu images, %zu skipped)\n", outdir, done, n - done);
    zs_stems_free(stems, n);
    free(files);
    dataset_free(&ds);
    mae_free(&m);
    if (done == 0 || summary_bad) return 1;
    return done == n ? 0 : 3;
}
