/* metrics.h: evaluation metrics of the SKELEX protocol, matching
 * scikit-learn's definitions (tests/eval/test_metrics.c checks them against
 * values computed by scikit-learn and numpy).
 *
 * Conventions:
 *  - classification inputs are probabilities, n rows of K columns (row-major;
 *    binary: K = 2, column 1 is the positive class) and labels in [0, K);
 *  - the predicted class is the row's argmax (ties: the lowest class), so a
 *    binary prediction is positive when p1 > p0;
 *  - AUROC: binary: of column 1 (sklearn roc_auc_score(y, p1)); K > 2: the
 *    unweighted mean of the K one-vs-rest AUROCs (sklearn multi_class="ovr",
 *    average="macro"); ties in scores count one half; NaN when a class is
 *    absent (sklearn raises), and NaN when any score is NaN or infinite (a
 *    diverged model: sklearn raises; callers report it, see eval_set_check);
 *  - bootstrap CI: n_boot resamples of n items with replacement (rng.c seeded
 *    with seed), resamples missing a class are skipped (counted in `valid`),
 *    numpy-style linear percentiles of the valid values;
 *  - balanced accuracy: mean recall over the classes present in the labels
 *    (sklearn balanced_accuracy_score);
 *  - F1: binary: of class 1 (sklearn f1_score); K > 2: the mean over all K
 *    classes (f1_score(average="macro", labels=range(K))); 0 where undefined;
 *  - quadratic weighted kappa over labels 0..K-1 (cohen_kappa_score(
 *    weights="quadratic", labels=range(K)));
 *  - ECE: 15 equal-width bins (i/15, (i+1)/15] (the first also takes 0) of
 *    the confidence = the largest probability of a row (binary: max(p, 1-p)),
 *    sum over bins of (bin count / n) * |accuracy - mean confidence|
 *    (Guo et al. 2017; as in most calibration papers);
 *  - MAE, RMSE for regression.
 * Not here: plots (report.c), reading predictions from files. */
#ifndef SKELEX_METRICS_H
#define SKELEX_METRICS_H
#include "core/common.h"
#include "data/task.h"
#include <cjson/cJSON.h>

#define CALIB_BINS 15

int metric_argmax(const double *row, int K);

/* AUROC of scores for binary labels (non-zero = positive); NaN if one class. */
double metric_auroc(const double *score, const int *positive, size_t n);
/* AUROC as above for probabilities (n x K); per_class (K entries, may be
 * NULL) gets each class's one-vs-rest AUROC. */
double metric_auroc_prob(const double *prob, int K, const int *label, size_t n, double *per_class);

typedef struct {
    double lo, hi;      /* NaN when fewer than 2 valid resamples */
    int resamples, valid;
} metric_ci;
/* Percentile bootstrap CI (level e.g. 0.95) of metric_auroc_prob. */
metric_ci metric_auroc_ci(const double *prob, int K, const int *label, size_t n, int n_boot, double level,
                          uint64_t seed);
/* Percentile bootstrap CI of the MAE (every resample is valid). */
metric_ci metric_mae_ci(const double *pred, const double *target, size_t n, int n_boot, double level, uint64_t seed);

/* numpy.percentile(v, 100 q) with linear interpolation; sorts v in place. */
double metric_percentile(double *v, size_t n, double q);

double metric_accuracy(const int *pred, const int *label, size_t n);
double metric_balanced_accuracy(const int *pred, const int *label, size_t n, int K);
double metric_f1(const int *pred, const int *label, size_t n, int K);
double metric_qwk(const int *pred, const int *label, size_t n, int K);
/* cm[t * K + p]: samples of true class t predicted as p (rows = true). */
void metric_confusion(const int *pred, const int *label, size_t n, int K, size_t *cm);

double metric_mae(const double *pred, const double *target, size_t n);

/* The model-selection score of outputs on samples idx (n) of t, higher is
 * better: AUROC of prob (n x max(K,2)), or -MAE of pred for regression.
 * NaN when undefined (a class missing, non-finite outputs). */
double metric_task_score(const task *t, const size_t *idx, size_t n, const double *prob, const double *pred);
double metric_rmse(const double *pred, const double *target, size_t n);

typedef struct {
    size_t count[CALIB_BINS];
    double accuracy[CALIB_BINS];     /* NaN for an empty bin */
    double confidence[CALIB_BINS];   /* mean confidence; NaN for an empty bin */
    double ece;
} calibration;
void metric_calibration(const double *prob, int K, const int *label, size_t n, calibration *c);

/* The ROC curve of scores for binary labels: one point per distinct score,
 * from (0,0) to (1,1) (sklearn roc_curve with drop_intermediate=False).
 * *fpr and *tpr (m points) are allocated; -1 when one class is absent or a
 * score is not finite. */
int metric_roc_curve(const double *score, const int *positive, size_t n, double **fpr, double **tpr, size_t *m);

/* What a model produced on a set of samples. Classification: prob (n x K)
 * and label; regression: pred and target. class_names may be NULL. */
typedef struct {
    task_type type;
    int n_classes;                    /* K; 1 for regression */
    const char *const *class_names;
    size_t n;
    const double *prob;
    const int *label;
    const double *pred;
    const double *target;
} eval_set;

/* Check an eval_set (sizes, labels in range, finite values, rows of prob
 * summing to 1 within 1e-3). */
int eval_set_check(const eval_set *e, sx_err *err);

/* Every metric that fits the task type, as a cJSON object for metrics.json
 * (NaN as null). Classification: n, classes, class_counts, auroc,
 * auroc_per_class, auroc_ci95 + auroc_bootstrap, accuracy,
 * balanced_accuracy, f1 (binary) or f1_macro, qwk (ordinal), ece,
 * calibration bins, confusion_matrix. Regression: n, mae, mae_ci95, rmse.
 * NULL (with err) when eval_set_check fails. */
cJSON *metrics_json(const eval_set *e, int n_boot, uint64_t seed, sx_err *err);

/* Mean and sample SD over folds of the headline metrics found in each of
 * the metrics objects (auroc, balanced_accuracy, f1, f1_macro, qwk, ece,
 * mae, rmse; null values skipped): {"auroc": {"mean", "sd", "n"}, ...}. */
cJSON *metrics_summary(cJSON *const *per_fold, int n);

#endif
