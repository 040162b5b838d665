/* cmd_predict.c: `skelex predict`: region-guided classification (SKELEX),
 * regions from the MAE's error map, given boxes or the whole image. */
#include "adapt/predict.h"
#include "cli/cli.h"
#include "data/data.h"
#include "zeroshot/batch.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *HELP =
    "usage: skelex predict [--model CLS_DIR] [--mae MAE_DIR] [--regions errormap|boxes:DIR|whole]\n"
    "                      [options] --out OUT INPUT [INPUT ...]\n"
    "\n"
    "Region-guided inference (SKELEX): classify several regions of each image and\n"
    "take, per output, the maximum over regions (remembering which region gave it);\n"
    "where the outputs include malignant, intermediate and benign, the tumour rule:\n"
    "tumour when max(p1+p2+p3) > 0.5, then malignant when max(p1) >= 0.5.\n"
    "INPUT is an image (PNG, JPEG or DICOM), a directory (recursive) or a list file.\n"
    "\n"
    "  --model CLS_DIR     classifier (ViTForImageClassification; groups from config.json);\n"
    "                      default: the shipped models/skelex-heads\n"
    "  --mae MAE_DIR       the MAE whose error map gives the regions (--regions errormap);\n"
    "                      default: the shipped models/skelex-tiny-mae\n"
    "  --regions MODE      errormap: the top-K areas of the error map above a percentile,\n"
    "                      as boxes, plus the whole image; boxes:DIR: YOLO files\n"
    "                      DIR/<image stem>.txt ('class cx cy w h', normalised; a missing\n"
    "                      file = no box), plus the whole image; whole: the whole image\n"
    "                      (default errormap)\n"
    "  --top-k K           error-map areas kept (default 3)\n"
    "  --percentile P      threshold percentile of the map (default 97)\n"
    "  --pad F             padding on each side, share of the box size (default 0.1)\n"
    "  --min-area F        areas under this share of the map are dropped (default 0.001)\n"
    "  --passes N          error-map masks (default 10); --seed S mask seed (default 0)\n"
    "  --out OUT           OUT/predictions.json (per image: regions with box, source and\n"
    "                      probs; aggregate per output; decision where the rule applies),\n"
    "                      OUT/predictions.csv (RFC 4180: the aggregate, one row per image\n"
    "                      and output), OUT/<name>_predict.png (boxes and their top label)\n"
    "\n"
    "An image that cannot be read or computed is skipped with a message (listed under\n"
    "\"failed\" in predictions.json). Exit status: 0 every image done, 1 none done (or a\n"
    "setup error: models, inputs, OUT), 2 usage error, 3 some done and some skipped.\n";

int cmd_predict(int argc, char **argv) {
    const char *model = NULL, *mae = NULL, *outdir = NULL, *mode = NULL, *inputs[256];
    int n_inputs = 0;
    predict_opts o;
    predict_default_opts(&o);
    sx_err err;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) { fputs(HELP, stdout); return 0; }
        else if (!strcmp(a, "--model")) model = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--mae")) mae = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--out")) outdir = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--regions")) mode = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--top-k")) o.region.k = (int)cli_long(a, cli_value(argc, argv, &i), 0, 1000);
        else if (!strcmp(a, "--percentile")) o.region.percentile = cli_double(a, cli_value(argc, argv, &i), 0, 100);
        else if (!strcmp(a, "--pad")) o.region.pad = cli_double(a, cli_value(argc, argv, &i), 0, 10);
        else if (!strcmp(a, "--min-area")) o.region.min_area = cli_double(a, cli_value(argc, argv, &i), 0, 1);
        else if (!strcmp(a, "--passes")) o.map.passes = (int)cli_long(a, cli_value(argc, argv, &i), 1, 1024);
        else if (!strcmp(a, "--seed")) o.map.seed = (uint64_t)cli_long(a, cli_value(argc, argv, &i), 0, 0x7fffffffL);
        else if (a[0] == '-') return cli_usage_error("predict", "unknown option '%s'", a);
        else if (n_inputs < 256) inputs[n_inputs++] = a;
        else return cli_usage_error("predict", "at most 256 inputs (use a list file)");
    }
    if (!outdir || !n_inputs) return cli_usage_error("predict", "--out and at least one INPUT are required");
    if (!mode) mode = "errormap";
    char shipped[4200], shipped_mae[4200];
    if (!(model = cli_model_or_shipped("predict", model, CLI_HEADS_MODEL, shipped, sizeof shipped))) return 2;
    if (!strcmp(mode, "errormap") && !mae && !(mae = cli_model_or_shipped("predict", NULL, CLI_MAE_MODEL, shipped_mae, sizeof shipped_mae)))
        return 2;
    if (predict_parse_mode(mode, &o, &err)) return cli_usage_error("predict", "%s", err.msg);
    if (o.mode == PREDICT_ERRORMAP && !mae) return cli_usage_error("predict", "--regions errormap needs --mae MAE_DIR");
    struct stat st;
    if (o.mode == PREDICT_BOXES && (stat(o.boxes_dir, &st) || !S_ISDIR(st.st_mode)))
        return cli_usage_error("predict", "--regions boxes:%s: no such folder", o.boxes_dir);
    dataset ds;
    dataset_init(&ds);
    for (int i = 0; i < n_inputs; i++)
        if (dataset_add(&ds, inputs[i], &err)) {
            fprintf(stderr, "skelex predict: %s\n", err.msg);
            dataset_free(&ds);
            return 1;
        }
    predictor p;
    if (predict_open(&p, model, mae, outdir, &o, &err)) {
        fprintf(stderr, "skelex predict: %s\n", err.msg);
        dataset_free(&ds);
        return 1;
    }
    size_t n = dataset_count(&ds), done = 0;
    const char **files = malloc(sizeof *files * (n ? n : 1));
    for (size_t i = 0; i < n; i++) files[i] = dataset_path(&ds, i);
    char **stems = zs_output_stems(files, n);
    for (size_t i = 0; i < n; i++) {
        if (predict_image(&p, files[i], stems[i], &err)) fprintf(stderr, "\nskelex predict: skipped: %s\n", err.msg);
        else done++;
        fprintf(stderr, "\r[%zu/%zu]   ", i + 1, n);
    }
    fprintf(stderr, "\n");
    int bad = predict_finish(&p, &err) != 0;
    if (bad) fprintf(stderr, "skelex predict: %s\n", err.msg);
    else printf("wrote %s/predictions.json and predictions.csv (%zu images, %zu skipped)\n", outdir, done, n - done);
    zs_stems_free(stems, n);
    free(files);
    predict_close(&p);
    dataset_free(&ds);
    if (done == 0 || bad) return 1;
    return done == n ? 0 : 3;
}
