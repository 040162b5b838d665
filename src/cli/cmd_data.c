/* cmd_data.c: `skelex bench data`: how fast the training data pipeline
 * feeds images, from files (data.c) or from tar shards (shard_loader.c),
 * whichever pretrain would use for the same --data. Three timed phases on the
 * given data: decode only and decode + augment in one thread, then the
 * loader as training uses it. Measures; changes nothing on disk. */
#include "cli/cli.h"
#include "data/data.h"
#include "data/shard.h"
#include "data/shard_loader.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *HELP =
    "usage: skelex bench data --data PATH [--data PATH ...] [--size S] [--batch B]\n"
    "                         [--threads N] [--seconds T] [--seed S] [--no-augment]\n"
    "                         [--shuffle-buffer K]\n"
    "\n"
    "Times the pretraining data pipeline on real files, in three phases of about\n"
    "T seconds each, with the loader pretrain would use for the same --data:\n"
    "loader=folder for image directories and lists, loader=shards for one\n"
    "directory of tar shards written by `skelex shard` (it holds index.json).\n"
    "  decode   one thread: load each image (JPEG reduced in the DCT domain as\n"
    "           the loader does), in sorted order (shards: in the shards' order,\n"
    "           read from the tar and decoded from memory)\n"
    "  augment  one thread: load + min-max + RandomResizedCrop + flip + normalise\n"
    "  loader   folder: the background loader with N threads, batches of B;\n"
    "           shards: the shard stream (shuffle buffer K) as pretrain drives\n"
    "           it, in the calling thread, batches of B\n"
    "\n"
    "  --data PATH     image directory (recursive) or list file; repeatable; or\n"
    "                  one shard directory (then the only --data)\n"
    "  --size S        model input side (default 224)\n"
    "  --batch B       loader batch size (default 32)\n"
    "  --threads N     loader threads (default: all cores)\n"
    "  --seconds T     seconds per phase (default 10)\n"
    "  --seed S        loader seed (default 0)\n"
    "  --no-augment    plain SKELEX resize instead of crop + flip\n"
    "  --shuffle-buffer K  shards: the loader phase's shuffle buffer (default 1024,\n"
    "                  as pretrain)\n"
    "\n"
    "Prints loader=folder|shards, images=, scan_s= (shards: reading the index),\n"
    "decode_images_per_s=, decode_failed=, decode_warnings= (folder), decoded=,\n"
    "undecodable=, pass_complete=, augment_images_per_s=, loader_images_per_s=,\n"
    "first_batch_s= and skipped= (folder: undecodable files met; shards: samples\n"
    "skipped, each time met). decoded= and undecodable= count the distinct images\n"
    "of the decode phase's first pass over the data (pass_complete=1 when the\n"
    "phase covered it all, else they count the part it saw).\n"
    "Rates count decoded images only; files that fail to decode are counted apart.\n"
    "\n"
    "exit status: 0 measured, 1 failure (no file decodes, unreadable data), 2 usage\n";

typedef struct {
    long size, batch, threads, seed, buffer;
    double seconds;
    int augment;
    const char *shards;   /* the shard directory, or NULL: files */
} bench_opts;

/* Where phases 1 and 2 get images: the dataset in sorted order (wrapping) or
 * one shard stream without shuffling (epoch after epoch). */
typedef struct {
    const dataset *ds;
    size_t i, pass;
    image_load_opts o;
    sx_err warn;
    shard_loader *sl;
} source;

static int source_open(source *s, const dataset *ds, const bench_opts *bo, const aug_config *aug, sx_err *err) {
    memset(s, 0, sizeof *s);
    s->ds = ds;
    s->o.min_side = aug_decode_min_side(aug);
    s->o.warning = &s->warn;
    if (bo->shards) {
        s->sl = shard_loader_create(bo->shards, 0, 1, 1, aug, (uint64_t)bo->seed, 1, 0, NULL, NULL, err);
        if (!s->sl) return -1;
    }
    return 0;
}

/* The next image: 0 decoded (*img set, *warned for a decoder warning), 1 not
 * decodable, -1 error; *first: it belongs to the first pass over the data. */
static int source_next(source *s, gray_image *img, int *first, int *warned, sx_err *err) {
    *warned = 0;
    if (s->sl) {
        long long epoch = 0;
        int rc = shard_loader_next_image(s->sl, img, &epoch, err);
        *first = epoch == 0;
        return rc;
    }
    *first = s->pass == 0;
    s->warn.msg[0] = 0;
    int rc = image_load_gray_opts(dataset_path(s->ds, s->i), &s->o, img, err) ? 1 : 0;
    if (!rc && s->warn.msg[0]) *warned = 1;
    if (++s->i == dataset_count(s->ds)) { s->i = 0; s->pass++; }
    return rc;
}

typedef struct {
    long failed, warned;        /* attempts that failed to decode, decoder warnings */
    long pass_ok, pass_failed;  /* distinct images of the first pass */
    int pass_complete;
} phase_stats;

/* Phase 1 and 2: one thread over the data in order (wrapping) for the
 * given time; with augment, also crop/flip/normalise. Returns images/s, or
 * -1 on a stream error (err). */
static double time_single(const dataset *ds, const bench_opts *bo, const aug_config *aug, int augment,
                          phase_stats *st, sx_err *err) {
    memset(st, 0, sizeof *st);
    source src;
    if (source_open(&src, ds, bo, aug, err)) return -1;
    float *chw = sx_malloc(3 * sizeof(float) * (size_t)aug->image_size * (size_t)aug->image_size);
    sx_rng r;
    rng_seed(&r, 1);
    long done = 0;
    double t0 = sx_now(), dt = 0, rate = 0;
    while (dt < bo->seconds) {
        gray_image img;
        sx_err why;
        int first, warned, rc = source_next(&src, &img, &first, &warned, &why);
        if (rc < 0) { *err = why; rate = -1; break; }
        if (!first) st->pass_complete = 1;
        if (rc) {
            st->failed++;
            st->pass_failed += first;
        } else {
            st->warned += warned;
            st->pass_ok += first;
            if (augment) augment_image(&img, aug, &r, chw);
            gray_image_free(&img);
            done++;  /* a failed decode is no throughput */
        }
        dt = sx_now() - t0;
    }
    if (rate == 0) rate = dt > 0 ? done / dt : 0.0;
    free(chw);
    shard_loader_destroy(src.sl);
    return rate;
}

/* Shards: every sample the loader skips (undecodable, corrupt member,
 * truncation), counted; the first few are printed. */
static void count_skip(void *ctx, const char *msg) {
    long long *n = ctx;
    if (++*n <= 5) fprintf(stderr, "bench data: skipped: %s\n", msg);
}

/* Phase 3, shards: the shard loader as pretrain drives it (rank 0 of 1). */
static int time_shard_loader(const aug_config *aug, const bench_opts *o, sx_err *err) {
    long long skipped = 0;
    double t0 = sx_now();
    shard_loader *L = shard_loader_create(o->shards, 0, 1, (int)o->batch, aug, (uint64_t)o->seed, (int)o->buffer, 0,
                                          count_skip, &skipped, err);
    if (!L) return -1;
    float *px = sx_malloc(sizeof(float) * (size_t)o->batch * 3 * (size_t)o->size * (size_t)o->size);
    int rc = shard_loader_next(L, px, NULL, err);
    double t1 = sx_now(), dt = 0;
    long batches = 0;
    while (!rc && dt < o->seconds) {
        rc = shard_loader_next(L, px, NULL, err);
        batches += !rc;
        dt = sx_now() - t1;
    }
    if (!rc) {
        printf("first_batch_s=%.3f\n", t1 - t0);
        printf("loader_images_per_s=%.1f\n", dt > 0 ? (double)batches * o->batch / dt : 0.0);
        printf("skipped=%lld\n", skipped);
    }
    free(px);
    shard_loader_destroy(L);
    return rc;
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
            ndata++;
            if (shard_is_dir(p)) {  /* as pretrain decides */
                if (o->shards) return cli_usage_error("bench data", "a shard directory must be the only --data");
                o->shards = p;
                continue;
            }
            if (dataset_add(ds, p, &err)) {
                fprintf(stderr, "skelex bench data: %s\n", err.msg);
                return 1;
            }
        }
        else if (!strcmp(argv[i], "--size")) o->size = cli_long("--size", cli_value(argc, argv, &i), 8, 4096);
        else if (!strcmp(argv[i], "--batch")) o->batch = cli_long("--batch", cli_value(argc, argv, &i), 1, 4096);
        else if (!strcmp(argv[i], "--threads")) o->threads = cli_long("--threads", cli_value(argc, argv, &i), 1, 256);
        else if (!strcmp(argv[i], "--seed")) o->seed = cli_long("--seed", cli_value(argc, argv, &i), 0, 0x7fffffffL);
        else if (!strcmp(argv[i], "--seconds")) o->seconds = cli_double("--seconds", cli_value(argc, argv, &i), 0.01, 86400);
        else if (!strcmp(argv[i], "--no-augment")) o->augment = 0;
        else if (!strcmp(argv[i], "--shuffle-buffer")) o->buffer = cli_long("--shuffle-buffer", cli_value(argc, argv, &i), 1, 1 << 20);
        else return cli_usage_error("bench data", "unknown argument '%s'", argv[i]);
    }
    if (!ndata) return cli_usage_error("bench data", "give at least one --data PATH");
    if (o->shards && ndata > 1) return cli_usage_error("bench data", "a shard directory must be the only --data");
    if (!(o->seconds > 0 && o->seconds <= 3600)) return cli_usage_error("bench data", "--seconds must be in (0, 3600]");
    return 0;
}

int cmd_bench_data(int argc, char **argv) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    bench_opts o = {.size = 224, .batch = 32, .threads = ncpu > 0 ? ncpu : 1, .seed = 0, .buffer = 1024, .seconds = 10,
                    .augment = 1, .shards = NULL};
    dataset ds;
    dataset_init(&ds);
    int help = 0;
    sx_err err;
    double t0 = sx_now();
    int rc = parse_args(argc, argv, &o, &ds, &help);
    long long n_images = (long long)dataset_count(&ds);
    if (!rc && !help && o.shards) {
        shard_index ix;
        if (shard_index_load(o.shards, &ix, &err)) {
            fprintf(stderr, "skelex bench data: %s\n", err.msg);
            rc = 1;
        } else {
            n_images = ix.total;
            shard_index_free(&ix);
        }
    }
    double scan_s = sx_now() - t0;
    if (rc || help) {
        if (help) fputs(HELP, stdout);
        dataset_free(&ds);
        return rc;
    }
    aug_config aug = aug_default((int)o.size);
    aug.augment = o.augment;
    if (o.shards)
        fprintf(stderr, "bench data: shards in %s, %lld images, size %ld, batch %ld, shuffle buffer %ld (the shard "
                        "loader runs in the calling thread), %s, decode min side %d\n",
                o.shards, n_images, o.size, o.batch, o.buffer, o.augment ? "RandomResizedCrop + flip" : "plain resize",
                aug_decode_min_side(&aug));
    else
        fprintf(stderr, "bench data: %lld images, size %ld, batch %ld, %ld loader threads, %s, decode min side %d\n",
                n_images, o.size, o.batch, o.threads, o.augment ? "RandomResizedCrop + flip" : "plain resize",
                aug_decode_min_side(&aug));
    printf("loader=%s\nimages=%lld\nscan_s=%.3f\n", o.shards ? "shards" : "folder", n_images, scan_s);
    fflush(stdout);
    if (n_images == 0) {
        fprintf(stderr, "skelex bench data: the data holds no image\n");
        dataset_free(&ds);
        return 1;
    }

    phase_stats st;
    double dec = time_single(&ds, &o, &aug, 0, &st, &err);
    if (dec < 0) {
        fprintf(stderr, "skelex bench data: %s\n", err.msg);
        dataset_free(&ds);
        return 1;
    }
    printf("decode_images_per_s=%.1f\ndecode_failed=%ld\n", dec, st.failed);
    if (!o.shards) printf("decode_warnings=%ld\n", st.warned);
    printf("decoded=%ld\nundecodable=%ld\npass_complete=%d\n", st.pass_ok, st.pass_failed, st.pass_complete);
    fflush(stdout);
    if (dec <= 0) {
        fprintf(stderr, "skelex bench data: no file of the data could be decoded (%ld attempts failed)\n", st.failed);
        dataset_free(&ds);
        return 1;
    }
    double augm = time_single(&ds, &o, &aug, 1, &st, &err);
    if (augm < 0) {
        fprintf(stderr, "skelex bench data: %s\n", err.msg);
        dataset_free(&ds);
        return 1;
    }
    printf("augment_images_per_s=%.1f\n", augm);
    fflush(stdout);

    rc = o.shards ? time_shard_loader(&aug, &o, &err) : time_loader(&ds, &aug, &o, &err);
    if (rc) fprintf(stderr, "skelex bench data: %s\n", err.msg);
    dataset_free(&ds);
    return rc ? 1 : 0;
}
