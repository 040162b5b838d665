/* skelex.h: the public C API of skelex, a foundation model for
 * musculoskeletal radiographs (a ViT masked autoencoder and the classifiers
 * adapted from it), in the spirit of whisper.h: opaque handles and a handful
 * of verbs. Link with libskelex.a (make lib) and its system libraries:
 *   cc app.c -Iinclude build/libskelex.a $(make -s print-libs)
 *
 * Conventions
 * - Every function that can fail returns 0 on success or a negative
 *   skx_code, and writes a one-line reason into *err (err may be NULL).
 *   Nothing here calls exit(), aborts on bad input or prints to stdout;
 *   out of memory is reported as SKX_ENOMEM.
 * - Thread-safety is stated per function. In short: a loaded skx_model is
 *   read-only and may be shared by any number of threads; each thread that
 *   computes with it uses its own skx_ctx (a workspace over the shared
 *   weights); skx_image and result objects belong to whoever made them.
 * - No patient identifier read from a DICOM file is ever exposed: images
 *   carry pixels and geometry only.
 * - Coordinates are in pixels of the original image, x to the right and y
 *   down, with (0,0) the top-left corner of the top-left pixel. */
#ifndef SKELEX_H
#define SKELEX_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SKX_VERSION "0.3.0"
/* The library's version string (SKX_VERSION of the library linked). */
const char *skx_version(void);

/* ---- errors ---- */

typedef enum {
    SKX_OK = 0,
    SKX_EINVAL = -1,     /* an argument or option out of range */
    SKX_EIO = -2,        /* a file could not be opened, read or written */
    SKX_EFORMAT = -3,    /* not a readable image / checkpoint / config: bad or unsupported content */
    SKX_ETOOBIG = -4,    /* input over a size limit (file, pixels, tensor) */
    SKX_ENOMEM = -5,     /* out of memory */
    SKX_EMODEL = -6,     /* the model cannot do this (e.g. an error map from a classifier) */
} skx_code;

typedef struct {
    int code;            /* a skx_code; SKX_OK after success */
    char msg[2048];      /* one line, "" after success */
} skx_error;

/* ---- images ---- */

typedef struct skx_image skx_image;

/* Load a PNG (8/16-bit, grey/RGB/palette), JPEG or DICOM (DX/CR/SC,
 * windowed as a viewer shows it, MONOCHROME1 inverted; JPEG, JPEG-LS, RLE
 * compressed), recognised by content, never by name. Refuses non-regular
 * files (FIFOs, devices), files over 1 GiB, images over 16384 px a side or
 * 256 Mpixel, and images whose declared size the data cannot fill: before
 * any pixel buffer, a JPEG may declare at most 1024 pixels per byte of
 * file and a PNG at most 1032 bytes of filtered rows per byte (deflate's
 * limit); under 1 Mpixel is always allowed (SKX_ETOOBIG otherwise).
 * Decoder warnings (a truncated JPEG decoded as far as it goes, the first
 * frame of a multi-frame DICOM) are not reported. Thread-safe. */
int  skx_image_load_file(const char *path, skx_image **out, skx_error *err);
/* The same from bytes in memory (an upload): nothing is written to disk.
 * name is used in messages only (may be NULL). Thread-safe. */
int  skx_image_load_memory(const void *data, size_t len, const char *name, skx_image **out, skx_error *err);
int  skx_image_width(const skx_image *img);
int  skx_image_height(const skx_image *img);
/* The image as 8-bit grey after the model's per-image min-max (what the
 * model sees before resizing): width*height bytes, valid while img lives. */
const uint8_t *skx_image_gray8(const skx_image *img);
void skx_image_free(skx_image *img);

/* ---- models ---- */

typedef struct skx_model skx_model;

typedef enum {
    SKX_MODEL_MAE = 1,          /* ViTMAEForPreTraining: error maps */
    SKX_MODEL_CLASSIFIER = 2,   /* ViTForImageClassification: predictions */
} skx_model_kind;

typedef struct {
    skx_model_kind kind;
    int image_size, patch_size;
    int hidden_size, num_layers, num_heads;
    int64_t parameters;
    float mask_ratio;           /* MAE: the ratio it was trained with */
    int norm_pix_loss;          /* MAE: errors are in per-patch normalised space */
    int n_outputs;              /* classifier: number of outputs: its classes (2 for binary: P(class 0),
                                   P(class 1)), 1 for regression; 0 for an MAE */
    const char *name;           /* the directory's last component, or config "_name_or_path" */
} skx_model_info;

/* Load a Hugging Face model directory (config.json + model.safetensors):
 * an MAE (ViTMAEForPreTraining) or a classifier (ViTForImageClassification
 * written by skelex or transformers). Weights are validated (shapes, finite
 * values, the file's layout) before any large allocation that depends on
 * them; no gradient memory is allocated. Thread-safe. */
int  skx_model_load(const char *dir, skx_model **out, skx_error *err);
void skx_model_get_info(const skx_model *m, skx_model_info *info);
/* Classifier outputs: name of output i (0 <= i < n_outputs), as id2label
 * gives it. NULL when out of range. */
const char *skx_model_output_name(const skx_model *m, int i);
/* Free after every skx_ctx made from it has been freed. */
void skx_model_free(skx_model *m);

/* ---- per-thread workspaces ---- */

typedef struct skx_ctx skx_ctx;

/* A workspace for one thread over m's shared weights (its own activations,
 * sized for up to max_batch images in one forward; error maps use one image
 * per pass, so max_batch >= the passes you will ask for). threads: the
 * OpenMP threads its products may use (0: the calling thread's current
 * setting); set with omp_set_num_threads for the calling thread around
 * each compute call and restored after. Make one per worker thread; a ctx
 * must not be used by two threads at once. Thread-safe. */
int  skx_ctx_new(const skx_model *m, int max_batch, int threads, skx_ctx **out, skx_error *err);
void skx_ctx_free(skx_ctx *ctx);

/* ---- zero-shot error maps (MAE models) ---- */

typedef enum { SKX_MASKING_BALANCED = 0, SKX_MASKING_RANDOM = 1 } skx_masking;

typedef struct {
    int passes;           /* masks averaged, 1..1024 (default 10) */
    skx_masking masking;  /* default SKX_MASKING_BALANCED: every patch hidden equally often */
    float mask_ratio;     /* 0: the model's own (default); else in (0, 1) */
    uint64_t seed;        /* mask seed (default 0): same seed, same map */
} skx_errormap_opts;

void skx_errormap_opts_default(skx_errormap_opts *o);

typedef struct {
    int size;             /* the map is size x size, at model resolution */
    float *map;           /* size*size squared errors; NaN where a pixel was never masked */
    double mean, max;     /* over the pixels that were masked at least once */
    double peak_x, peak_y;/* the map's maximum, in original image pixels */
    int never_masked;     /* pixels with no value */
    float scale_max;      /* the 99th percentile of the map: top of the overlay's colour scale */
    int passes;
    skx_masking masking;
    float mask_ratio;     /* the ratio used */
    int norm_pix;         /* 1: errors in per-patch normalised space, 0: de-normalised [0,1] pixels */
} skx_errormap;

/* The SKELEX zero-shot map of one image: reconstruct it under opts->passes
 * masks and average, per pixel, the squared error of the passes in which
 * its patch was hidden. Deterministic for a given model, image and opts.
 * Needs an MAE model and a ctx with max_batch >= passes. Fills *out (free
 * with skx_errormap_free). Thread-safe with one ctx per thread. */
int  skx_errormap_compute(skx_ctx *ctx, const skx_image *img, const skx_errormap_opts *opts,
                          skx_errormap *out, skx_error *err);
void skx_errormap_free(skx_errormap *em);

/* Renderings, each into a malloc'd buffer the caller frees with free():
 * the overlay PNG at the image's original resolution (grey radiograph with
 * the map in the 'inferno' colours, opacity rising to alpha at scale_max),
 * with a colour bar when colorbar is non-zero; and the raw map as a
 * NumPy .npy (float32, shape (size, size)). Thread-safe. */
int  skx_errormap_overlay_png(const skx_image *img, const skx_errormap *em, float alpha, int colorbar,
                              void **png, size_t *len, skx_error *err);
int  skx_errormap_npy(const skx_errormap *em, void **npy, size_t *len, skx_error *err);

/* ---- classification (classifier models) ---- */

/* Classify one image, or one region of it: box = {x0, y0, x1, y1} in
 * original pixels (NULL: the whole image), cropped, resized to the model
 * size and preprocessed as in training. probs receives n_outputs values:
 * sigmoid or softmax probabilities as the model's head defines them (for a
 * regression model, the prediction in the target's units). cap is the room
 * in probs. Thread-safe with one ctx per thread. */
int  skx_classify(skx_ctx *ctx, const skx_image *img, const float box[4], double *probs, int cap,
                  skx_error *err);

/* ---- output groups (classifier models) ----
 *
 * A classifier's outputs are partitioned into groups, as its config.json's
 * "groups" key (beside id2label) says: a sigmoid group is a set of
 * independent yes/no outputs, a softmax group one categorical answer whose
 * outputs sum to 1. Without "groups" the layout is derived from problem_type:
 * one softmax group "label" over all outputs (multi-class), or one sigmoid
 * group "labels" (a binary head). For a binary head (one logit) output 0 is
 * the complement P(negative) and lies outside every group; output 1 is the
 * group's member. A regression model has no groups. */

typedef enum { SKX_GROUP_SIGMOID = 0, SKX_GROUP_SOFTMAX = 1 } skx_group_kind;

typedef struct {
    const char *name;
    skx_group_kind kind;
    int n_outputs;
    const int *outputs;   /* its output indices (0..n_outputs of the model - 1), in the group's order */
} skx_group_info;

/* The number of groups (0 for an MAE or a regression model). Read-only on a shared model. */
int skx_model_group_count(const skx_model *m);
/* Group g (0 <= g < skx_model_group_count): pointers valid while m lives.
 * SKX_EINVAL when g is out of range. Read-only on a shared model. */
int skx_model_group(const skx_model *m, int g, skx_group_info *out, skx_error *err);

/* ---- regions (SKELEX region-guided inference, regions from the error map) ---- */

typedef enum { SKX_REGION_WHOLE = 0, SKX_REGION_ERRORMAP = 1, SKX_REGION_BOX = 2 } skx_region_source;

typedef struct {
    float box[4];              /* x0, y0, x1, y1 in original pixels: [x0, x1) x [y0, y1) */
    skx_region_source source;
} skx_region;

/* "whole", "errormap", "box" ("?" for anything else). Thread-safe. */
const char *skx_region_source_name(skx_region_source s);

typedef struct {
    int k;                 /* error-map areas kept, 0..1000 (default 3) */
    double percentile;     /* threshold: this percentile of the map's valid values, 0..100 (default 97) */
    double pad;            /* padding on each side, as a fraction of the box's own size, 0..10 (default 0.10) */
    double min_area;       /* areas under this share of the map are dropped, 0..1 (default 0.001) */
} skx_region_opts;

void skx_region_opts_default(skx_region_opts *o);

/* The top-k connected areas of the error map at or above the percentile
 * (8-connected, ranked by error mass), each as its padded bounding box in
 * img's original pixels (source SKX_REGION_ERRORMAP), then the whole image
 * (SKX_REGION_WHOLE), always last. opts NULL: the defaults. out holds cap
 * regions (k + 1 always suffice); *n receives the count. SKX_EINVAL for bad
 * options, a map/image mismatch or too little room. Thread-safe. */
int skx_regions_from_errormap(const skx_errormap *em, const skx_image *img, const skx_region_opts *opts,
                              skx_region *out, int cap, int *n, skx_error *err);

/* Given boxes (x0, y0, x1, y1 in original pixels, 4 floats each) as regions
 * (SKX_REGION_BOX, clipped to the image; empty ones dropped), then the whole
 * image. out holds cap (nb + 1 suffice); *n the count. Thread-safe. */
int skx_regions_from_boxes(const float *boxes, int nb, const skx_image *img, skx_region *out, int cap, int *n,
                           skx_error *err);

/* Region-guided prediction (free with skx_prediction_free). */
typedef struct {
    int n_regions, n_outputs;
    double *probs;         /* n_regions x n_outputs: region r's probabilities in row r */
    double *max;           /* n_outputs: per output, the maximum over regions */
    int *argmax;           /* n_outputs: the first region that gives it */
    /* SKELEX's tumour rule, where the outputs include "malignant",
     * "intermediate" and "benign" (p1, p2, p3): tumour when the maximum over
     * regions of p1 + p2 + p3 exceeds 0.5, then malignant when the maximum of
     * p1 is at least 0.5. has_decision 0: no such outputs (the rest is 0). */
    int has_decision;
    int tumour, malignant;
    double p_tumour, p_malignant;
    int region_tumour, region_malignant;   /* where those maxima come from */
} skx_prediction;

/* Classify each of the n regions of img (skx_classify on its box) and
 * aggregate per output the maximum over regions with the region it came
 * from, and the tumour rule where it applies. Needs a classification model
 * (not regression: SKX_EMODEL); n in 1..4096. Fills *out. Thread-safe with
 * one ctx per thread. */
int  skx_predict_regions(skx_ctx *ctx, const skx_image *img, const skx_region *regions, int n, skx_prediction *out,
                         skx_error *err);
void skx_prediction_free(skx_prediction *p);

#ifdef __cplusplus
}
#endif
#endif
