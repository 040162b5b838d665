/* cmd_errormap.c: `skelex errormap`: zero-shot abnormality maps for many
 * images, with optional localisation scoring against YOLO boxes. */
#include "io/checkpoint.h"
#include "cli/cli.h"
#include "data/data.h"
#include "zeroshot/errormap.h"
#include "io/image.h"
#include "io/npy.h"
#include "eval/viz.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <libgen.h>
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
    "  --model DIR        pretrained MAE (config.json + model.safetensors)\n"
    "  --out OUTDIR       per image: <name>_errormap.png (overlay at the original\n"
    "                     resolution, with a colour bar), <name>_panel.png,\n"
    "                     <name>_error.npy (float32 map at model resolution, NaN where\n"
    "                     never masked); and summary.csv\n"
    "  --passes N         masks per image, run as one batch (default 10)\n"
    "  --mask-ratio R     share of patches hidden per pass (default: the model's)\n"
    "  --masking M        balanced (default): every patch is hidden equally often, so\n"
    "                     coverage is complete with few passes and variance is lower;\n"
    "                     random: independent masks per pass, as in the SKELEX paper\n"
    "  --seed S           mask seed (default 0)\n"
    "  --alpha A          overlay opacity at the top of the scale (default 0.6)\n"
    "  --boxes DIR        YOLO box files <stem>.txt ('class cx cy w h', normalised):\n"
    "                     score the maps (pointing game, error mass in boxes and its\n"
    "                     lift over their area, pixel AUROC) into OUTDIR/localization.json\n"
    "\n"
    "Errors are in de-normalised [0,1] pixel space; for a model trained with\n"
    "norm_pix_loss, in the per-patch normalised space of its loss (said in the output).\n";

typedef struct {
    int n_scored, n_unboxed, hits;
    double mass_share, area_share, auroc, lift;
    int n_auroc;
} loc_totals;

static void stem_of(const char *path, char *stem, size_t n) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(stem, n, "%s", b);
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = 0;
}

static float percentile99(const float *map, size_t n) {
    float *v = sx_malloc(sizeof(float) * n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) if (!isnan(map[i])) v[k++] = map[i];
    float r = 0;
    if (k) {
        /* partial selection is overkill here: maps are small */
        for (size_t i = 1; i < k; i++) {
            float x = v[i];
            size_t j = i;
            while (j > 0 && v[j - 1] > x) { v[j] = v[j - 1]; j--; }
            v[j] = x;
        }
        r = v[(size_t)(0.99 * (double)(k - 1))];
    }
    free(v);
    return r;
}

int cmd_errormap(int argc, char **argv) {
    const char *model = NULL, *outdir = NULL, *boxes = NULL, *inputs[256];
    int n_inputs = 0, passes = 10;
    long seed = 0;
    double mask_ratio = -1, alpha = 0.6;
    masking_kind kind = MASKING_BALANCED;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) { fputs(HELP, stdout); return 0; }
        else if (!strcmp(a, "--model")) model = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--out")) outdir = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--boxes")) boxes = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--passes")) passes = (int)cli_long(a, cli_value(argc, argv, &i), 1, 1024);
        else if (!strcmp(a, "--seed")) seed = cli_long(a, cli_value(argc, argv, &i), 0, 0x7fffffffL);
        else if (!strcmp(a, "--mask-ratio")) mask_ratio = cli_double(a, cli_value(argc, argv, &i), 0.01, 0.99);
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
    if (!model || !outdir || !n_inputs) return cli_usage_error("errormap", "--model, --out and at least one INPUT are required");
    sx_err err;
    mae_model m;
    if (checkpoint_load(model, &m, &err)) { fprintf(stderr, "skelex errormap: %s\n", err.msg); return 1; }
    if (mask_ratio >= 0) {
        m.cfg.mask_ratio = mask_ratio;
        if (config_validate(&m.cfg, &err)) { fprintf(stderr, "skelex errormap: %s\n", err.msg); mae_free(&m); return 2; }
    }
    dataset ds;
    dataset_init(&ds);
    for (int i = 0; i < n_inputs; i++)
        if (dataset_add(&ds, inputs[i], &err)) { fprintf(stderr, "skelex errormap: %s\n", err.msg); dataset_free(&ds); mae_free(&m); return 1; }
    if (mkdir(outdir, 0755) && errno != EEXIST) {
        fprintf(stderr, "skelex errormap: %s: cannot create (%s)\n", outdir, strerror(errno));
        dataset_free(&ds); mae_free(&m);
        return 1;
    }
    const mae_config *c = &m.cfg;
    int S = c->image_size, N = config_num_patches(c);
    size_t npx = (size_t)3 * S * S;
    float *pixels = sx_malloc(sizeof(float) * npx * passes), *noise = sx_malloc(sizeof(float) * (size_t)passes * N);
    float *map = sx_malloc(sizeof(float) * (size_t)S * S);
    int *count = sx_malloc(sizeof(int) * (size_t)S * S);
    uint8_t *inside = sx_malloc((size_t)S * S);
    char path[4400], stem[1024];
    snprintf(path, sizeof path, "%s/summary.csv", outdir);
    FILE *summary = fopen(path, "w");
    if (!summary) { fprintf(stderr, "skelex errormap: %s: cannot write\n", path); return 1; }
    fprintf(summary, "file,mean_error,max_error,peak_x,peak_y,never_masked_pixels,space\n");
    const char *space = c->norm_pix_loss ? "patch-normalised" : "pixel [0,1]";
    fprintf(stderr, "errormap: %zu image(s), %d passes, %s masking, ratio %g, error in %s space\n", dataset_count(&ds),
            passes, kind == MASKING_BALANCED ? "balanced" : "random", c->mask_ratio, space);
    cJSON *per_image = cJSON_CreateArray();
    loc_totals tot = {0};
    int failed = 0;
    sx_rng r;
    rng_seed(&r, (uint64_t)seed);
    double t0 = sx_now();
    for (size_t idx = 0; idx < dataset_count(&ds); idx++) {
        const char *file = dataset_path(&ds, idx);
        gray_image img;
        if (image_load_gray(file, &img, &err)) { fprintf(stderr, "skelex errormap: skipped: %s\n", err.msg); failed++; continue; }
        image_preprocess(&img, S, pixels);
        for (int k = 1; k < passes; k++) memcpy(pixels + (size_t)k * npx, pixels, sizeof(float) * npx);
        errormap_noise(kind, passes, N, config_len_keep(c), &r, noise);
        if (mae_forward(&m, pixels, noise, passes, &err)) { fprintf(stderr, "skelex errormap: %s\n", err.msg); gray_image_free(&img); break; }
        errormap_accumulate(&m, pixels, passes, map, count);
        stem_of(file, stem, sizeof stem);
        double sum = 0;
        float mx = -INFINITY;
        int px = 0, py = 0, never = 0;
        for (int i = 0; i < S * S; i++) {
            if (isnan(map[i])) { never++; continue; }
            sum += map[i];
            if (map[i] > mx) { mx = map[i]; px = i % S; py = i / S; }
        }
        double mean = S * S > never ? sum / (S * S - never) : NAN;
        /* peak in original pixel coordinates (the model input is a plain resize) */
        double ox = ((double)px + 0.5) * img.width / S, oy = ((double)py + 0.5) * img.height / S;
        fprintf(summary, "\"%s\",%.6g,%.6g,%.1f,%.1f,%d,%s\n", file, mean, (double)mx, ox, oy, never, space);
        int64_t shape[2] = {S, S};
        snprintf(path, sizeof path, "%s/%s_error.npy", outdir, stem);
        int rc = npy_write_f32(path, map, 2, shape, &err);
        snprintf(path, sizeof path, "%s/%s_errormap.png", outdir, stem);
        if (!rc) rc = viz_errormap_overlay(path, &img, map, S, percentile99(map, (size_t)S * S), (float)alpha, &err);
        snprintf(path, sizeof path, "%s/%s_panel.png", outdir, stem);
        if (!rc) rc = viz_write_panels(path, &m, pixels, 1, &err);
        if (rc) { fprintf(stderr, "skelex errormap: %s\n", err.msg); gray_image_free(&img); failed++; break; }
        if (boxes) {
            norm_box bx[64];
            snprintf(path, sizeof path, "%s/%s.txt", boxes, stem);
            int nb = access(path, R_OK) == 0 ? boxes_read_yolo(path, bx, 64, &err) : 0;
            if (nb < 0) fprintf(stderr, "skelex errormap: %s\n", err.msg);
            loc_metrics lm;
            if (nb > 0) {
                boxes_rasterize(bx, nb, S, S, inside);
                int ok = localization_metrics(map, inside, S, S, &lm) == 0;
                tot.n_scored++;
                tot.hits += lm.hit;
                tot.mass_share += lm.mass_share;
                tot.area_share += lm.area_share;
                if (ok) { tot.auroc += lm.auroc; tot.n_auroc++; }
                if (lm.area_share > 0) tot.lift += lm.mass_share / lm.area_share;
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "file", file);
                cJSON_AddBoolToObject(o, "hit", lm.hit);
                cJSON_AddNumberToObject(o, "mass_share", lm.mass_share);
                cJSON_AddNumberToObject(o, "area_share", lm.area_share);
                cJSON_AddNumberToObject(o, "auroc", ok ? lm.auroc : -1);
                cJSON_AddItemToArray(per_image, o);
            } else tot.n_unboxed++;
        }
        gray_image_free(&img);
        double el = sx_now() - t0, per = el / (double)(idx + 1);
        fprintf(stderr, "\r[%zu/%zu] %.2f s/image, ETA %.0f s   ", idx + 1, dataset_count(&ds), per,
                per * (double)(dataset_count(&ds) - idx - 1));
    }
    fprintf(stderr, "\n");
    fclose(summary);
    if (boxes) {
        int n = tot.n_scored;
        double hit = n ? (double)tot.hits / n : NAN, ms = n ? tot.mass_share / n : NAN, as = n ? tot.area_share / n : NAN;
        double au = tot.n_auroc ? tot.auroc / tot.n_auroc : NAN, lift = n ? tot.lift / n : NAN;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "images_scored", n);
        cJSON_AddNumberToObject(j, "images_without_boxes", tot.n_unboxed);
        cJSON_AddNumberToObject(j, "pointing_game_hit_rate", hit);
        cJSON_AddNumberToObject(j, "pointing_game_random_baseline", as);
        cJSON_AddNumberToObject(j, "mean_error_mass_in_boxes", ms);
        cJSON_AddNumberToObject(j, "mean_box_area_share", as);
        cJSON_AddNumberToObject(j, "mean_lift", lift);
        cJSON_AddNumberToObject(j, "mass_lift_of_means", as > 0 ? ms / as : NAN);
        cJSON_AddNumberToObject(j, "mean_pixel_auroc", au);
        cJSON_AddNumberToObject(j, "passes", passes);
        cJSON_AddStringToObject(j, "masking", kind == MASKING_BALANCED ? "balanced" : "random");
        cJSON_AddStringToObject(j, "error_space", space);
        cJSON_AddItemToObject(j, "per_image", per_image);
        per_image = NULL;
        snprintf(path, sizeof path, "%s/localization.json", outdir);
        sx_err werr;
        if (json_write_file(path, j, &werr)) fprintf(stderr, "skelex errormap: %s\n", werr.msg);
        cJSON_Delete(j);
        printf("localization (%d images with boxes, %d without, ignored)\n", n, tot.n_unboxed);
        printf("  %-34s %10s %10s\n", "metric", "errormap", "random map");
        printf("  %-34s %10.3f %10.3f\n", "pointing game hit rate", hit, as);
        printf("  %-34s %10.3f %10.3f\n", "error mass inside boxes", ms, as);
        printf("  %-34s %10.3f %10.3f\n", "lift (mass share / area share)", lift, 1.0);
        printf("  %-34s %10.3f %10.3f\n", "pixel AUROC", au, 0.5);
    }
    cJSON_Delete(per_image);
    printf("wrote %s/summary.csv (%zu images, %d skipped)\n", outdir, dataset_count(&ds) - (size_t)failed, failed);
    free(pixels); free(noise); free(map); free(count); free(inside);
    dataset_free(&ds);
    mae_free(&m);
    return failed == (int)dataset_count(&ds) ? 1 : 0;
}
