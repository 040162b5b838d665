/* shard_loader.c: batches from tar shards, decoded from memory; see shard_loader.h. */
#include "data/shard_loader.h"
#include "io/image.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct shard_loader {
    shard_index ix;
    shard_stream *st;
    aug_config aug;
    int batch, rank, min_side, memfd;
    uint64_t seed;
    long long consumed;
    char fd_path[64];
    shard_warn_fn warn;
    void *ctx;
};

static uint64_t mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void shard_loader_destroy(shard_loader *L) {
    if (!L) return;
    shard_stream_close(L->st);
    shard_index_free(&L->ix);
    if (L->memfd >= 0) close(L->memfd);
    free(L);
}

/* The next sample of the stream, across epochs; 0 or -1. */
static int next_sample(shard_loader *L, shard_sample *s, sx_err *err) {
    for (int tries = 0; tries < 2; tries++) {
        int rc = shard_stream_next(L->st, s, err);
        if (rc < 0) return -1;
        if (rc == 1) return 0;
    }
    return sx_fail(err, "%s: rank %d's shards hold no readable sample", L->ix.dir, L->rank);
}

shard_loader *shard_loader_create(const char *dir, int rank, int size, int batch, const aug_config *aug, uint64_t seed,
                                  int buffer, long long skip, shard_warn_fn warn, void *ctx, sx_err *err) {
    if (batch < 1 || skip < 0) { sx_fail(err, "shard loader: batch %d, skip %lld", batch, skip); return NULL; }
    if (aug_check(aug, err)) return NULL;
    shard_loader *L = sx_calloc(1, sizeof *L);
    L->memfd = -1;
    L->aug = *aug;
    L->batch = batch; L->rank = rank; L->seed = seed; L->warn = warn; L->ctx = ctx;
    L->min_side = aug_decode_min_side(aug);
    if (shard_index_load(dir, &L->ix, err)) { free(L); return NULL; }
    if (!(L->st = shard_stream_open(&L->ix, rank, size, seed, buffer, warn, ctx, err))) { shard_loader_destroy(L); return NULL; }
    L->memfd = memfd_create("skelex-sample", MFD_CLOEXEC);
    if (L->memfd < 0) { sx_fail(err, "memfd_create: %s", strerror(errno)); shard_loader_destroy(L); return NULL; }
    snprintf(L->fd_path, sizeof L->fd_path, "/proc/self/fd/%d", L->memfd);
    for (; L->consumed < skip; L->consumed++) {  /* replay the stream to where a resumed run stopped */
        shard_sample s;
        if (next_sample(L, &s, err)) { shard_loader_destroy(L); return NULL; }
        shard_sample_free(&s);
    }
    return L;
}

static int decode(shard_loader *L, const shard_sample *s, gray_image *img, sx_err *err) {
    if (ftruncate(L->memfd, 0) || pwrite(L->memfd, s->data, s->len, 0) != (ssize_t)s->len)
        return sx_fail(err, "memfd: %s", strerror(errno));
    image_load_opts o = {.min_side = L->min_side};
    if (image_load_gray_opts(L->fd_path, &o, img, err)) {
        char why[SX_ERRLEN];
        snprintf(why, sizeof why, "%s", err->msg);
        return sx_fail(err, "%s: sample %s: %s", L->ix.dir, s->key, why);
    }
    return 0;
}

int shard_loader_next(shard_loader *L, float *pixels, long long *epoch, sx_err *err) {
    size_t per = 3 * (size_t)L->aug.image_size * L->aug.image_size;
    if (epoch) *epoch = shard_stream_epoch(L->st);
    int failures = 0;
    for (int i = 0; i < L->batch;) {
        shard_sample s;
        if (next_sample(L, &s, err)) return -1;
        long long idx = L->consumed++;  /* counts stream samples, decodable or not: a replay skips as many */
        gray_image img;
        sx_err why;
        int rc = decode(L, &s, &img, &why);
        shard_sample_free(&s);
        if (rc) {
            if (L->warn) L->warn(L->ctx, why.msg);
            if (++failures > 1000 + 10 * L->batch)
                return sx_fail(err, "%s: %d samples in a row could not be decoded (last: %s)", L->ix.dir, failures, why.msg);
            continue;
        }
        sx_rng r;
        rng_seed(&r, mix(mix(L->seed ^ 0x73686172ull) ^ mix((uint64_t)L->rank) ^ (uint64_t)idx));
        augment_image(&img, &L->aug, &r, pixels + (size_t)i * per);
        gray_image_free(&img);
        i++;
    }
    return 0;
}

int shard_loader_next_image(shard_loader *L, gray_image *img, long long *epoch, sx_err *err) {
    shard_sample s;
    if (next_sample(L, &s, err)) return -1;
    if (epoch) *epoch = shard_stream_epoch(L->st);  /* after the read: an epoch's end moves it on first */
    L->consumed++;
    int rc = decode(L, &s, img, err);
    shard_sample_free(&s);
    return rc ? 1 : 0;
}

long long shard_loader_total(const shard_loader *L) { return L->ix.total; }
long long shard_loader_consumed(const shard_loader *L) { return L->consumed; }
