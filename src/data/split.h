/* split.h: the SKELEX evaluation splits of a task.
 *
 *  - one fixed test split (e.g. 10 %), stratified by label and grouped by
 *    patient: all images of a patient are on the same side;
 *  - k-fold cross-validation (e.g. 5) on the rest, stratified and grouped the
 *    same way: a patient's images are all in one fold;
 *  - label-fraction subsets of a fold's training part, stratified, for
 *    label-efficiency curves.
 *
 * Stratification with groups: every image has a stratum (its label or, for
 * regression, the quantile bin of its target, up to 10 bins), and patient
 * groups are placed whole by two greedy passes over the groups in a seeded
 * shuffled order, largest groups first:
 *  - test: a group joins the test side when that lowers
 *      sum over strata c of (test_c - test_frac * N_c)^2 / N_c;
 *  - folds: each remaining group goes to the fold where it adds least to
 *      sum over c of (fold_c - M_c / k)^2 / M_c   (M_c: non-test images)
 *    (ties: the fold with fewest images, then the lower fold).
 * A patient whose images carry different labels (two knees, two grades)
 * counts towards each. With one image per patient this puts every class's
 * test count and fold counts within one image of the ideal. The test side
 * depends only on (task samples, test_frac, seed), never on the number of
 * folds, and not on the order of the task's rows (groups are ordered by
 * patient id before shuffling).
 *
 * Not done here: training, metrics, reading images. */
#ifndef SKELEX_SPLIT_H
#define SKELEX_SPLIT_H
#include "core/common.h"
#include "data/task.h"
#include <cjson/cJSON.h>

typedef struct {
    size_t n;            /* samples of the task */
    int *fold;           /* per sample: -1 = test, else 0 .. folds-1 */
    int folds;
    double test_frac;
    uint64_t seed;
} split;

/* test_frac in [0, 0.9], folds in [2, 100]; fails when the task has fewer
 * patient groups than folds + (test_frac > 0). */
int split_make(const task *t, double test_frac, int folds, uint64_t seed, split *s, sx_err *err);
void split_free(split *s);

typedef enum {
    SPLIT_TRAIN,   /* not test, not in the fold (fold = -1: every non-test sample) */
    SPLIT_VAL,     /* in the fold */
    SPLIT_TEST,    /* the test side (fold ignored) */
    SPLIT_DEV      /* every non-test sample (fold ignored): for the final model */
} split_part;

/* Indices (ascending) of a part; *n gets the count. The caller frees. */
size_t *split_indices(const split *s, split_part part, int fold, size_t *n);

/* A stratified subset of fold's training part (fold = -1: of every non-test
 * sample) holding label_fraction in (0, 1] of it: per stratum
 * round(label_fraction * count), at least one where the stratum has any.
 * Strata are labels or, for regression, up to 10 target quantile bins of the
 * training part. Subsets are nested: with the same seed and fold a smaller
 * fraction's subset is inside a larger one's. *idx (ascending) is allocated;
 * the caller frees. */
int split_train_subset(const task *t, const split *s, int fold, double label_fraction, uint64_t seed, size_t **idx,
                       size_t *n, sx_err *err);

/* FNV-1a 64 of the test side's paths (relative to the data root, sorted,
 * newline-joined): equal fingerprints mean the same test images. */
uint64_t split_test_fingerprint(const task *t, const split *s);

/* {"task", "seed", "test_frac", "folds", "test_fingerprint" (16 hex digits),
 *  "patients_grouped", "counts": {"test": [...per class], "fold0": [...], ...},
 *  "images": [{"path", "fold"}, ...]} for a run directory. */
cJSON *split_to_json(const task *t, const split *s);

#endif
