/* cmd_data.c: `skelex bench data`: how fast the training data pipeline
 * (data.c) feeds images. Three timed phases on the given data: decode only
 * and decode + augment in one thread, then the threaded loader as training
 * uses it. Measures; changes nothing on disk. */
#include "cli/cli.h"
#include "data/data.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *HELP =
    "usage: skelex bench data --data PATH [--data PATH ...] [--size S] [--batch B]\n"
    "                         [--threads N] [--seconds T] [--seed S] [--no-augment]\n"
    "\n"
    "Times the pretraining data pipeline on real files, in three phases of about\n"
    "T seconds each:\n"
    "  decode   one thread: load each image (JPEG reduced in the DCT domain as\n"
    "           the loader does), in sorted order\n"
    "  augment  one thread: load + min-max + RandomResizedCrop + flip + normalise\n"
    "  loader   the background loader with N threads, batches of B\n"
    "\n"
    "  --data PATH     image directory (recursive) or list file; repeatable\n"
    "  --size S        model input side (default 224)\n"
    "  --batch B       loader batch size (default 32)\n"
    "  --threads N     loader threads (default: all cores)\n"
    "  --seconds T     seconds per phase (default 10)\n"
    "  --seed S        loader seed (default 0)\n"
    "  --no-augment    plain SKELEX resize instead of crop + flip\n"
    "\n"
    "Prints images=, scan_s=, decode_images_per_s=, decode_failed=, augment_images_per_s=,\n"
    "loader_images_per_s=, first_batch_s= and skipped= (undecodable files met).\n"
    "Rates count decoded images only; files that fail to decode are counted apart.\n"
    "\n"
    "exit status: 0 measured, 1 failure (no file decodes, unreadable data), 2 usage\n";

typedef struct {
    long size, batch, threads, seed;
    double seconds;
    int augment;
} bench_opts;

/* Phase 1 and 2: one thread over the dataset in order (wrapping) for the
 * given time; with augment, also crop/flip/normalise. Returns images/s. */
static double time_single(const dataset *ds, const aug_config *aug, double seconds, int augment,
                          long *failed, long *warned) {
    float *chw = sx_malloc(3 * sizeof(float) * (size_t)aug->image_size * (size_t)aug->image_size);
    image_load_opts o = {.min_side = aug_decode_min_side(aug)};
    sx_err warn, err;
    o.warning = &warn;
    sx_rng r;
    rng_seed(&r, 1);
    long done = 0;
    *failed = *warned = 0;
    double t0 = sx_now(), dt = 0;
    for (size_t i = 0; dt < seconds; i = (i + 1) % dataset_count(ds)) {
        gray_image img;
        if (image_load_gray_opts(dataset_path(ds, i), &o, &img, &err)) {
            (*failed)++;
        } else {
            if (warn.msg[0]) (*warned)++;
            if (augment) augment_image(&img, aug, &r, chw);
            gray_image_free(&img);
            done++;  /* a failed decode is no throughput */
        }
        dt = sx_now() - t0;
    }
    free(chw);
    return done / dt;
}

/* Phase 3: the threaded loader. Returns images/s after the first batch. */
static int time_loader(const dataset *ds, const aug_config *aug, const bench_opts *o, sx_err *err) {
    double t0 = sx_now();
    loader *L = loader_create(ds, (int)o->batch, aug, (uint64_t)o->seed, (int)o->threads, 0, NULL, err);
    if (!L) return -1;
    float *px = sx_malloc(sizeof(float) * (size_t)o->batch * 3 * (size_t)o->size * (size_t)o->size);
    loader_info info = {0};
    int rc = loader_next(L, px, &info, err);
    double t1 = sx_now(), dt = 0;
    long batches = 0;
    while (!rc && dt < o->seconds) {
        rc = loader_next(L, px, &info, err);
        batches += !rc;
        dt = sx_now() - t1;
    }
    if (!rc) {
        printf("first_batch_s=%.3f\n", t1 - t0);
        printf("loader_images_per_s=%.1f\n", dt > 0 ? (double)batches * o->batch / dt : 0.0);
        printf("skipped=%lld\n", info.skipped);
    }
    free(px);
    loader_destroy(L);
    return rc;
}

static int parse_args(int argc, char **argv, bench_opts *o, dataset *ds, int *help) {
    int ndata = 0;
    sx_err err;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { *help = 1; return 0; }
        else if (!strcmp(argv[i], "--data")) {
            const char *p = cli_value(argc, argv, &i);
            if (dataset_add(ds, p, &err)) {
                fprintf(stderr, "skelex bench data: %s\n", err.msg);
                return 1;
            }
            ndata++;
        }
        else if (!strcmp(argv[i], "--size")) o->size = cli_long("--size", cli_value(argc, argv, &i), 8, 4096);
        else if (!strcmp(argv[i], "--batch")) o->batch = cli_long("--batch", cli_value(argc, argv, &i), 1, 4096);
        else if (!strcmp(argv[i], "--threads")) o->threads = cli_long("--threads", cli_value(argc, argv, &i), 1, 256);
        else if (!strcmp(argv[i], "--seed")) o->seed = cli_long("--seed", cli_value(argc, argv, &i), 0, 0x7fffffffL);
        else if (!strcmp(argv[i], "--seconds")) o->seconds = cli_double("--seconds", cli_value(argc, argv, &i), 0.01, 86400);
        else if (!strcmp(argv[i], "--no-augment")) o->augment = 0;
        else return cli_usage_error("bench data", "unknown argument '%s'", argv[i]);
    }
    if (!ndata) return cli_usage_error("bench data", "give at least one --data PATH");
    if (!(o->seconds > 0 && o->seconds <= 3600)) return cli_usage_error("bench data", "--seconds must be in (0, 3600]");
    return 0;
}

int cmd_bench_data(int argc, char **argv) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    bench_opts o = {.size = 224, .batch = 32, .threads = ncpu > 0 ? ncpu : 1, .seed = 0, .seconds = 10, .augment = 1};
    dataset ds;
    dataset_init(&ds);
    int help = 0;
    double t0 = sx_now();
    int rc = parse_args(argc, argv, &o, &ds, &help);
    double scan_s = sx_now() - t0;
    if (rc || help) {
        if (help) fputs(HELP, stdout);
        dataset_free(&ds);
        return rc;
    }
    aug_config aug = aug_default((int)o.size);
    aug.augment = o.augment;
    fprintf(stderr, "bench data: %zu images, size %ld, batch %ld, %ld loader threads, %s, decode min side %d\n",
            dataset_count(&ds), o.size, o.batch, o.threads, o.augment ? "RandomResizedCrop + flip" : "plain resize",
            aug_decode_min_side(&aug));
    printf("images=%zu\nscan_s=%.3f\n", dataset_count(&ds), scan_s);
    fflush(stdout);

    long failed, warned;
    double dec = time_single(&ds, &aug, o.seconds, 0, &failed, &warned);
    printf("decode_images_per_s=%.1f\ndecode_failed=%ld\ndecode_warnings=%ld\n", dec, failed, warned);
    fflush(stdout);
    if (dec <= 0) {
        fprintf(stderr, "skelex bench data: no file of the data could be decoded (%ld attempts failed)\n", failed);
        dataset_free(&ds);
        return 1;
    }
    double augm = time_single(&ds, &aug, o.seconds, 1, &failed, &warned);
    printf("augment_images_per_s=%.1f\n", augm);
    fflush(stdout);

    sx_err err;
    rc = time_loader(&ds, &aug, &o, &err);
    if (rc) fprintf(stderr, "skelex bench data: %s\n", err.msg);
    dataset_free(&ds);
    return rc ? 1 : 0;
}
