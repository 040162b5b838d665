/* image_cache.h: the images of a task decoded once, as the classifier
 * commands (finetune, eval) use them: min-max to 8 bits and Pillow-bilinear
 * resize to S x S, exactly the model's plain preprocessing
 * (image_preprocess); training augments from the cache (augment.h).
 * Not here: what the images are (task.h), the models. */
#ifndef SKELEX_IMAGE_CACHE_H
#define SKELEX_IMAGE_CACHE_H
#include "core/common.h"
#include "data/augment.h"
#include <stdio.h>

typedef struct {
    int S;
    size_t n;
    uint8_t *px;   /* n images of S*S bytes, in task sample order */
} image_cache;

/* Decode n images (OpenMP threads in parallel); image i of the cache is
 * paths[i]. progress (may be NULL) gets "decoding i/n" lines. An image that
 * cannot be read is an error naming it (the cache is then left empty). */
int image_cache_build(image_cache *ic, const char *const *paths, size_t n, int S, FILE *progress, sx_err *err);
void image_cache_free(image_cache *ic);
/* Sample i as the model's input (3,S,S) into chw, augmented when a != NULL
 * (drawing from r; scratch: S*S bytes of the caller's, unused without a).
 * Allocates nothing. */
void image_cache_input(const image_cache *ic, size_t i, const cls_aug *a, sx_rng *r, uint8_t *scratch, float *chw);

#endif
