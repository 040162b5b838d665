/* evaluate.h: `skelex eval` as library calls: a fine-tuned classifier
 * applied to a task's images (scored) or to a folder or list of images
 * (unlabelled). Not here: training (finetune.h), metrics (metrics.h). */
#ifndef SKELEX_EVALUATE_H
#define SKELEX_EVALUATE_H
#include "data/split.h"
#include <cjson/cJSON.h>
#include <stdio.h>

typedef struct {
    const char *model;   /* the classifier (finetune's fold<k>/best, or a transformers ViTForImageClassification) */
    const char *out;     /* output folder, created */
    int batch;           /* images per forward, >= 1 */
    int all;             /* with a task: every image instead of the test split */
    uint64_t seed;       /* bootstrap seed */
    FILE *progress;      /* decoding progress lines (NULL: none) */
} eval_opts;

/* The model on t's test split (or every image): out/predictions.csv,
 * metrics.json and the plots. The task's type and class names must be the
 * model's. *metrics (the caller deletes it) and *n (images scored) on success. */
int eval_task_run(const task *t, const split *sp, const eval_opts *o, cJSON **metrics, size_t *n, sx_err *err);
/* An external test set: the model on every sample of ext, written to
 * out/external/ (predictions.csv, metrics.json, plots); otherwise as
 * eval_task_run. */
int eval_external_run(const task *ext, const eval_opts *o, cJSON **metrics, size_t *n, sx_err *err);

/* The model on the images under PATH (dataset_add: a folder, scanned
 * recursively, or a list file): out/predictions.csv only. *n: images. */
int eval_images_run(const char *images, const eval_opts *o, size_t *n, sx_err *err);

#endif
