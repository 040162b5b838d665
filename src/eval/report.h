/* report.h: evaluation plots as standalone SVG files, written by hand (no
 * plotting library, no fonts: the browser renders the text).
 *
 *  - ROC curve(s): binary: the positive class; more classes: one
 *    one-vs-rest curve per class; the chance diagonal; AUC in the legend;
 *  - confusion matrix: rows = true class, columns = predicted; cells shaded
 *    by the row's share and labelled with the count (and the row %);
 *  - reliability diagram: per confidence bin (15 equal-width bins) a bar of
 *    the accuracy against the diagonal, the mean confidence as a dot and the
 *    bin's count above it; ECE in the title;
 *  - regression: predicted against true with the identity line.
 * Text taken from task files (class names, titles) is XML-escaped.
 * Not here: computing metrics beyond what a plot shows (metrics.c). */
#ifndef SKELEX_REPORT_H
#define SKELEX_REPORT_H
#include "core/common.h"
#include "eval/metrics.h"

/* prob: n x K, label in [0, K); class_names may be NULL ("class k"). */
int report_roc_svg(const char *path, const char *title, const double *prob, int K, const int *label, size_t n,
                   const char *const *class_names, sx_err *err);

/* cm[t * K + p] as metric_confusion makes it. */
int report_confusion_svg(const char *path, const char *title, const size_t *cm, int K,
                         const char *const *class_names, sx_err *err);

/* The title gets " (ECE 0.123)" appended. */
int report_reliability_svg(const char *path, const char *title, const calibration *c, sx_err *err);

/* Predicted (y) against true (x) values; the title gets " (MAE ...)". */
int report_scatter_svg(const char *path, const char *title, const double *pred, const double *target, size_t n,
                       const char *value_name, sx_err *err);

/* Every plot that fits the eval set into dir (which must exist):
 * classification: roc.svg, confusion.svg, reliability.svg; regression:
 * scatter.svg. Titles start with title (e.g. "knee_kl test"). */
int report_write_all(const char *dir, const char *title, const eval_set *e, sx_err *err);

/* predictions.csv: image,label,<one prob_<class> column per class> for
 * classification (binary: prob of both classes), or image,target,prediction
 * for regression. images[i] names row i; e->label / e->target may be NULL
 * (an unlabelled folder): the label column is then empty. Names are quoted
 * as CSV requires. fold >= 0 adds a last column "fold" with that value.
 * Written atomically (a temporary file renamed over path when complete). */
int report_predictions_csv(const char *path, const char *const *images, const eval_set *e, int fold, sx_err *err);


#endif
