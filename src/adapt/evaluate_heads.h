/* evaluate_heads.h: scoring a multi-head classifier per group (issue 16),
 * for whole-image and region-guided inference side by side.
 *
 * Metrics over the entries a sample knows (masked entries skipped):
 *  - sigmoid output j: AUROC of p_j against target >= 0.5 (with a 95 %
 *    percentile bootstrap CI), ECE of (1-p, p), counts;
 *  - softmax group g (rows where all of g is known; the answer is the
 *    argmax of the targets): macro AUROC (mean of the one-vs-rest AUROCs of
 *    the classes present; sklearn's ovr macro when all are present) with its
 *    CI, balanced accuracy of the argmax prediction, ECE of the group's
 *    probabilities (renormalised within the group);
 *  - the headline: the mean over sigmoid outputs and softmax groups of
 *    those AUROCs (undefined ones skipped) — the best-epoch score of
 *    finetune_heads too.
 * Region-guided inference (zeroshot/regions.h): the regions of an image
 * (given YOLO boxes, or the top-K areas of the MAE's error map through the
 * public API's skx_errormap_compute), plus the whole image, each cropped
 * from the full-resolution min-max 8-bit image and resized to the model
 * size; per output the maximum over regions. */
#ifndef SKELEX_EVALUATE_HEADS_H
#define SKELEX_EVALUATE_HEADS_H
#include "adapt/heads.h"
#include "data/multitask.h"
#include "zeroshot/regions.h"
#include <cjson/cJSON.h>
#include <stdio.h>

/* The headline score of n rows (prob, targets, known: n x L->n_out); NaN
 * when nothing can be scored. */
double evh_mean_auroc(const head_layout *L, const double *prob, const float *tg, const uint8_t *kn, size_t n);

/* {"mean_auroc", "groups": {name: {"kind", per output / group metrics}}}
 * with n_boot bootstrap resamples (0: no CI). */
cJSON *evh_metrics(const head_layout *L, const double *prob, const float *tg, const uint8_t *kn, size_t n, int n_boot,
                   uint64_t seed);

/* predictions CSV: image, then one probability column per output; region
 * (may be NULL): n x n_out indices of the region each maximum came from,
 * written as "<output>_region" columns; nregions (may be NULL): the regions
 * of each image (the whole image is the last, index regions - 1), column
 * "regions". Atomic. */
int evh_write_predictions(const char *path, const head_layout *L, const char *const *names, const double *prob,
                          const int *region, const int *nregions, size_t n, sx_err *err);

/* Rows idx of mt: targets and known (n x n_out) and, when names is not
 * NULL, the images' paths relative to the data root. */
void evh_gather(const multitask *mt, const size_t *idx, size_t n, float *tg, uint8_t *kn, const char **names);

typedef struct {
    const char *model;      /* multi-head classifier directory */
    const char *out;        /* created */
    int batch;
    int all;                /* every sample instead of the test split */
    uint64_t seed;          /* bootstrap seed */
    FILE *progress;         /* NULL: quiet */
    const char *boxes_dir;  /* NULL, or YOLO boxes: DIR/<stem>.txt (region-guided "boxes") */
    const char *mae;        /* NULL, or an MAE directory (region-guided "errormap") */
    region_params rp;       /* error-map regions */
    int passes;             /* error-map masks (default 10) */
    int n_boot;             /* bootstrap resamples (1000) */
} evh_opts;

void evh_opts_default(evh_opts *o);

/* Score the model on mt's test split (or every sample): for "whole" and
 * each region mode asked for, out/<mode>/predictions.csv and
 * out/<mode>/metrics.json (region modes also "regions_mean" and
 * "max_not_whole_share": per output, the share of images whose maximum
 * came from a region other than the whole image); out/metrics.json holds them all side by side
 * ({"task", "n", "modes": {mode: metrics}}), out/metrics.txt the table.
 * The model's outputs must be mt's (names and groups). *metrics: the
 * combined object (the caller deletes it). */
int eval_heads_run(const multitask *mt, const split *sp, const evh_opts *o, cJSON **metrics, sx_err *err);

/* The readable table of a combined metrics object: one row per sigmoid
 * output / softmax group, one AUROC column per mode, and n. */
void evh_print_table(FILE *f, const cJSON *combined);

#endif
