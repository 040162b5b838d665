/* shard.h: WebDataset-style sharded datasets (POSIX ustar archives).
 *
 * `skelex shard` packs many image files into a few large tar files, so a
 * run over millions of radiographs opens a handful of files and reads them
 * sequentially instead of walking a directory tree and opening every file:
 *   DIR/shard-000000.tar ...    members KEY.EXT (the image bytes as they
 *                               were) and KEY.json ({"key", "source_hash":
 *                               FNV-1a 64 of the source path, "size", "ext"}),
 *                               KEY a 9-digit sample number, pairs adjacent
 *   DIR/index.json              {"format": "skelex-shards", "version": 1,
 *                               "samples": N, "shards": [{"name", "samples",
 *                               "bytes"}, ...]}
 * Shards and the index are written as *.tmp and renamed when complete.
 *
 * Reading: a stream goes over one rank's shards (shard i belongs to rank
 * i % size) in an order drawn from (seed, epoch), member by member, through
 * a shuffle buffer of K samples (each output is a uniformly drawn buffer
 * entry, replaced by the next sample read), so the order depends only on
 * (index, rank, size, seed, K). A member whose header is corrupt is skipped
 * (the reader resynchronises on the next valid header), a truncated shard
 * ends early; each is reported once through the warn callback and counted. */
#ifndef SKELEX_SHARD_H
#define SKELEX_SHARD_H
#include "core/common.h"
#include <stdint.h>

#define SHARD_INDEX "index.json"

/* ------------------------------------------------------------- writing */

typedef struct shard_writer shard_writer;

/* Start shards in dir (created if missing; must not hold an index.json
 * already). max_bytes: a shard is closed before it would exceed this
 * (a single larger sample gets a shard of its own). */
shard_writer *shard_writer_open(const char *dir, uint64_t max_bytes, sx_err *err);
/* Append the file at path (read whole with sx_fopen_input) as the next
 * sample; ext is its extension without the dot ("png"), lower case. */
int shard_writer_add(shard_writer *w, const char *path, sx_err *err);
/* Append a sample from memory (source names it for the hash). */
int shard_writer_add_bytes(shard_writer *w, const char *source, const char *ext, const void *data, size_t n,
                           sx_err *err);
/* Finish the last shard and write index.json; frees w (also on failure). */
int shard_writer_close(shard_writer *w, sx_err *err);
/* Abandon: remove the unfinished shard; frees w. */
void shard_writer_abort(shard_writer *w);
/* Samples and shards written so far. */
long long shard_writer_samples(const shard_writer *w);
int shard_writer_shards(const shard_writer *w);

/* Pack every file of a dataset (data/data.h) into shards in dir, in an
 * order drawn from seed (so each shard holds a mix of the sources); files
 * that cannot be read are skipped, each reported through warn (may be NULL)
 * and counted in *skipped. Fails when nothing could be written. */
typedef void (*shard_warn_fn)(void *ctx, const char *msg);
int shard_pack(const void *dataset, const char *dir, uint64_t max_bytes, uint64_t seed, shard_warn_fn warn, void *ctx,
               long long *written, long long *skipped, int *shards, sx_err *err);

/* ------------------------------------------------------------- reading */

typedef struct {
    char *dir;
    int n;               /* shards */
    char **names;        /* file names inside dir */
    long long *samples;  /* samples per shard, from the index */
    long long total;
} shard_index;

/* Whether path is a directory holding an index.json. */
int  shard_is_dir(const char *path);
int  shard_index_load(const char *dir, shard_index *ix, sx_err *err);
void shard_index_free(shard_index *ix);

typedef struct {
    char key[32], ext[16];
    uint8_t *data;       /* the image bytes (malloc'ed; shard_sample_free) */
    size_t len;
    char *json;          /* the sample's JSON text, NUL-terminated, or NULL */
} shard_sample;
void shard_sample_free(shard_sample *s);

typedef struct shard_stream shard_stream;

/* A stream over rank's shards of ix (which must outlive it). buffer: shuffle
 * buffer samples (1: no shuffling, the shards' order). warn may be NULL. */
shard_stream *shard_stream_open(const shard_index *ix, int rank, int size, uint64_t seed, int buffer,
                                shard_warn_fn warn, void *ctx, sx_err *err);
/* The next sample into *out (the caller frees it): 1; 0 at the end of an
 * epoch (the next call starts the next one, in a new shard order); -1 on an
 * I/O error (a shard cannot be opened). */
int  shard_stream_next(shard_stream *s, shard_sample *out, sx_err *err);
long long shard_stream_epoch(const shard_stream *s);
long long shard_stream_skipped(const shard_stream *s);  /* corrupt members and truncations met */
void shard_stream_close(shard_stream *s);

#endif
