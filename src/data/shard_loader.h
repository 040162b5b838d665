/* shard_loader.h: training batches streamed from tar shards (data/shard.h).
 *
 * `pretrain --data DIR_OF_SHARDS`: each rank streams its own shards
 * (shard i belongs to rank i % size) through a seeded shuffle buffer and
 * decodes each sample from memory (a memfd: no file of the dataset is opened
 * at run time), then augments it with an RNG seeded from (seed, rank, the
 * rank's sample number), as the file loader does per position. Samples that
 * do not decode are skipped with a warning (the next one takes their place).
 * The order depends on (shards, rank, size, seed, buffer): a resumed run at
 * the same world size replays the stream up to where it stopped (reading,
 * not decoding) and continues exactly; at another world size each rank's
 * stream differs, so it continues with the same data but not the same order. */
#ifndef SKELEX_SHARD_LOADER_H
#define SKELEX_SHARD_LOADER_H
#include "data/data.h"
#include "data/shard.h"

typedef struct shard_loader shard_loader;

/* skip: samples this rank consumed before (from a resume state). */
shard_loader *shard_loader_create(const char *dir, int rank, int size, int batch, const aug_config *aug, uint64_t seed,
                                  int buffer, long long skip, shard_warn_fn warn, void *ctx, sx_err *err);
/* The next batch, (batch, 3, S, S) floats; *epoch (may be NULL) of its first sample. */
int  shard_loader_next(shard_loader *L, float *pixels, long long *epoch, sx_err *err);
/* The next sample decoded as shard_loader_next decodes it (from memory, JPEG
 * reduced for the aug's size), not augmented: 0 with *img set (the caller
 * frees it), 1 when the sample does not decode (why in err; warn is not
 * called), -1 on a stream error. *epoch (may be NULL): the sample's epoch.
 * Counts in shard_loader_consumed. For measuring (skelex bench data). */
int  shard_loader_next_image(shard_loader *L, gray_image *img, long long *epoch, sx_err *err);
long long shard_loader_total(const shard_loader *L);     /* samples in all shards (the index) */
long long shard_loader_consumed(const shard_loader *L);  /* this rank's samples so far, skip included */
void shard_loader_destroy(shard_loader *L);

#endif
