/* external.h: an external test set beside a task (probe, finetune, eval
 * --test-task): a second task with the same label space whose every sample
 * is scored by each fold's model, next to the internal test split.
 *  - external_check: same type and class names in order (task_same_labels)
 *    and no image file of the external task is one of the task's (same
 *    device and inode: a copy under another root is not detected);
 *  - the headline metrics of both, mean ± SD over folds, as one table.
 * Not here: the training and scoring themselves (probe_run.c,
 * finetune_run.c, evaluate.c). */
#ifndef SKELEX_EXTERNAL_H
#define SKELEX_EXTERNAL_H
#include "data/task.h"
#include <cjson/cJSON.h>
#include <stdio.h>

/* 0, or -1 with the reason (label spaces differ; shared image files). */
int external_check(const task *t, const task *ext, sx_err *err);

/* 0, 1, ..., ext->n - 1 (every external sample); the caller frees. */
size_t *external_indices(const task *ext);

/* Patient ids of ext that are also patient ids of t (0 unless both tasks
 * have patients): same id text, so only meaningful for one id scheme. */
size_t external_shared_patients(const task *t, const task *ext);

/* A line on f (may be NULL) naming the external set and its size, with a
 * warning when it shares patient ids with t. */
void external_note(FILE *f, const char *cmd, const task *t, const task *ext);

/* {"task", "data_root", "images", "class_counts", "patients",
 *  "shared_patients" (external_shared_patients; only when both tasks have
 *  patients)} for results.json. */
cJSON *external_info(const task *t, const task *ext);

/* The fold metrics' "external" objects (NULL entries where absent). */
void external_of(cJSON *const *per_fold, int n, cJSON **ext);

/* "metric  test  external" rows, each mean ± SD over folds, for the metrics
 * in test (a metrics_summary); ext may be NULL (no external column). */
void external_table(FILE *f, const char *title, const cJSON *test, const cJSON *ext);

#endif
