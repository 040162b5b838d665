/* data.h: the training data pipeline of `skelex pretrain`.
 *
 *  - dataset: the list of image files, gathered from directories (scanned
 *    recursively) and list files, sorted and de-duplicated so its order is
 *    reproducible;
 *  - augmentation: SKELEX/MAE preprocessing with torchvision's
 *    RandomResizedCrop and a horizontal flip, driven by our own RNG;
 *  - loader: background threads that decode and augment the next batches
 *    into a bounded queue. Batches depend only on (dataset, seed, position),
 *    never on thread timing, so a resumed run continues exactly where an
 *    uninterrupted one would have gone.
 * Labels and validation splits are not handled here; images (DICOM too)
 * are decoded by image.c. */
#ifndef SKELEX_DATA_H
#define SKELEX_DATA_H
#include "core/common.h"
#include "io/image.h"
#include "core/rng.h"

/* ------------------------------------------------------------------------ */
/* Dataset                                                                  */

/* Image paths in one growing character arena (no per-path allocation).
 * Treat the fields as private; zero-initialise or call dataset_init. */
typedef struct {
    char *arena;                  /* NUL-terminated paths, back to back */
    size_t arena_len, arena_cap;
    size_t *off;                  /* offset of path i in arena, sorted by strcmp */
    size_t count, cap;
    size_t unreadable_dirs;       /* sub-folders a scan could not read (skipped) */
} dataset;

void dataset_init(dataset *ds);
void dataset_free(dataset *ds);

/* Add the images under PATH:
 *  - a directory: scanned recursively for *.png, *.jpg, *.jpeg, *.dcm,
 *    *.dicom (extension case-insensitive; DICOM files without an extension
 *    must be named in a list file); entries whose name starts with '.' are skipped and
 *    symbolic links to directories are not followed (links to files are);
 *  - a file with an image extension: that one image;
 *  - any other file: a list of image paths, one a line; relative paths are
 *    taken relative to the list file's directory; blank lines and lines
 *    starting with '#' are skipped; surrounding blanks are trimmed. Listed
 *    files are not opened or stat'ed here (a bad one is skipped later by
 *    the loader).
 * Afterwards the whole list is sorted (strcmp) and de-duplicated (by exact
 * path string). Fails, leaving the dataset as it was, when PATH does not
 * exist or is unreadable, or when it yields no image. */
int dataset_add(dataset *ds, const char *path, sx_err *err);

/* The images under the folder dir, recursively, by the folder rules above;
 * an empty folder is not an error (dataset_add's is). */
int dataset_add_dir(dataset *ds, const char *dir, sx_err *err);

/* A list file of PATH lines added for a very large dataset (millions of
 * lines): the same rules and result as dataset_add on a list, read in 1 MiB
 * blocks; nothing is stat'ed or opened but the list, and a list already in
 * strcmp order without repeats (e.g. from `LC_ALL=C sort -u`) is taken as it
 * is instead of being sorted again. Any other PATH (a directory, an image,
 * a missing path): exactly dataset_add. */
int dataset_add_list_stream(dataset *ds, const char *path, sx_err *err);

static inline size_t dataset_count(const dataset *ds) { return ds->count; }
static inline const char *dataset_path(const dataset *ds, size_t i) { return ds->arena + ds->off[i]; }
/* Index of path in the dataset, or -1. */
long long dataset_find(const dataset *ds, const char *path);

/* ------------------------------------------------------------------------ */
/* Preprocessing and augmentation                                           */

typedef struct {
    int image_size;                /* output side S */
    int augment;                   /* 1: RandomResizedCrop + flip; 0: plain SKELEX resize */
    double scale_min, scale_max;   /* crop area as a fraction of the image */
    double ratio_min, ratio_max;   /* crop aspect ratio w/h */
    double flip_p;                 /* probability of a horizontal flip */
    /* JPEG decoding size (image_load_gray_min): > 0: this minimum shorter
     * side; < 0: always full size; 0: automatic, i.e. full size without
     * augmentation (exactly image_preprocess) and ceil(S / sqrt(scale_min))
     * with it (a crop of the smallest area still has about S*S pixels). */
    int decode_min_side;
} aug_config;

/* MAE's pretraining augmentation: scale (0.2, 1), ratio (3/4, 4/3), flip 0.5. */
aug_config aug_default(int image_size);
int aug_check(const aug_config *a, sx_err *err);
/* The min_side to decode with (see decode_min_side); 0 = full size. */
int aug_decode_min_side(const aug_config *a);

/* A crop: rows top..top+height-1, columns left..left+width-1. */
typedef struct { int top, left, height, width; } crop_box;

/* torchvision's RandomResizedCrop.get_params for a width x height image:
 * up to 10 draws of area fraction U(scale) and log aspect ratio U(log ratio),
 * w = round(sqrt(area*ratio)), h = round(sqrt(area/ratio)) (half to even),
 * accepted when it fits, at a uniform position; else the centre crop
 * clamped to the ratio bounds. */
crop_box rrc_params(int width, int height, const aug_config *a, sx_rng *r);

/* The 8-bit S x S image: min-max of the whole image to 8 bits, then either
 * (augment) crop with rrc_params, Pillow-bilinear resize to S x S and flip
 * with probability flip_p (one rng_uniform draw after the crop's), or (no
 * augment) a plain Pillow-bilinear resize to S x S. out holds S*S bytes. */
void augment_u8(const gray_image *img, const aug_config *a, sx_rng *r, uint8_t *out);
/* augment_u8 then /255, 3 channels, ImageNet mean/std: chw holds 3*S*S. */
void augment_image(const gray_image *img, const aug_config *a, sx_rng *r, float *chw);


/* ------------------------------------------------------------------------ */
/* Loader                                                                   */

/* Reproducibility contract. Positions count samples from the start of
 * training (0, 1, 2, ...); position p is sample p % N of epoch p / N, whose
 * order is a permutation drawn from (seed, epoch). The sample at p is
 * augmented with an RNG seeded from (seed, p). A file that cannot be decoded
 * is replaced by the next decodable entry of the same permutation (wrapping
 * around), so what lands at p depends only on p, never on thread timing or
 * on thread count. Batch k holds positions start + k*B ... start + k*B + B-1
 * and may cross an epoch boundary (nothing is dropped). */
typedef struct loader loader;

typedef struct {
    long long position;   /* position of the batch's first sample */
    long long epoch;      /* epoch of the batch's first sample */
    int replaced;         /* samples of this batch that replaced an undecodable file */
    long long skipped;    /* undecodable files found so far (distinct; grows as workers meet them) */
} loader_info;

/* Start a loader over ds (which must outlive it and stay unchanged).
 * threads: background decoding threads (0: decode inside loader_next).
 * start_position: samples already consumed (from a resume state).
 * skip_log_path: file to which each undecodable file's "PATH\tREASON" line
 * is appended once (paths already in the file are not repeated); NULL: none.
 * Returns NULL (with err) on invalid arguments or an empty dataset. */
loader *loader_create(const dataset *ds, int batch, const aug_config *aug, uint64_t seed, int threads,
                      long long start_position, const char *skip_log_path, sx_err *err);

/* One rank's share of every global batch (data-parallel training): batch k
 * holds positions start + k*stride + offset ... + batch - 1, where stride is
 * the global batch and offset this rank's first image in it (offset + batch
 * <= stride). The samples are those a single loader of batch `stride` gives
 * at the same positions. loader_create is a share of the whole batch
 * (stride = batch, offset 0). loader_position counts global samples. */
loader *loader_create_share(const dataset *ds, int batch, long long stride, long long offset, const aug_config *aug,
                            uint64_t seed, int threads, long long start_position, const char *skip_log_path,
                            sx_err *err);

/* The next batch into pixels, (B, 3, S, S) floats; info may be NULL.
 * Fails only when no file of the dataset can be decoded. */
int loader_next(loader *L, float *pixels, loader_info *info, sx_err *err);

/* Samples consumed so far: start_position + stride * batches returned. */
long long loader_position(const loader *L);

/* Stops the threads and frees everything (NULL is fine). */
void loader_destroy(loader *L);

#endif
