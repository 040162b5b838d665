/* task.h: labelled evaluation tasks (the SKELEX downstream protocol).
 *
 * A task is a small JSON file that says which images belong to a task, what
 * their labels are and, where the dataset records it, which patient each
 * image comes from. Loading a task resolves every image path against a data
 * root given at run time and checks that every file exists, so a run never
 * starts on a half-present dataset.
 *
 * Two ways to list images:
 *  - class folders: "class_folders": ["0","1",...] are sub-folders of the
 *    image root (or of each of "image_dirs" under it), in label order; every
 *    image inside (recursively) gets that label;
 *  - a CSV: "csv" (one path or several, relative to the data root) with an
 *    image column and either one label column or one-hot label columns.
 *
 * The keys (unknown keys are an error, so a typo never passes silently):
 *   name            string, required
 *   description     string: what the task is and the dataset layout it expects
 *   type            "binary" | "multiclass" | "ordinal" | "regression"
 *   image_root      folder, relative to the data root unless absolute
 *   image_dirs      sub-folders of image_root to look in, in order
 *                   (default: image_root itself). With a CSV an image must be
 *                   found in exactly one of them; each must exist.
 *   class_folders   array of class names = folder names, in label order
 *   csv             string or array of strings (rows are concatenated)
 *   csv_header      true (default): columns are named by the header row;
 *                   false: columns are 0-based numbers and every row is data
 *   image_column    column holding the image path (relative to the image dir)
 *   image_suffix    appended to every image cell (e.g. ".png" for bare ids)
 *   study_dirs      true: the image cell names a folder (a study) and every
 *                   image inside it, recursively, is a sample with the row's
 *                   label (MURA's *_labeled_studies.csv)
 *   label_column    column holding the label: the class name (text, or a number
 *                   equal to a numeric class name: "1.0" matches "1"), or for
 *                   regression the target value
 *   label_columns   alternative to label_column: one column per class, in
 *                   class order, exactly one of which is non-zero in each row;
 *                   one entry may be null: the class of rows where none is set
 *   label_map       object: raw cell text -> class name, applied first
 *                   (e.g. {"": "0"} where an empty cell means negative;
 *                   a numeric key also matches an equal number: "1" ~ "1.0")
 *   invalid_labels  "error" (default) or "skip": what a row whose label is
 *                   not one of the classes (or sets no / several of
 *                   label_columns) does; skipped rows are counted in n_invalid
 *   classes         class names in label order (binary default ["0","1"])
 *   where           object: column -> value or array of values; only rows
 *                   whose cells match (text or numeric equality) are kept
 *   patient_column  column with the patient id
 *   patient_from    {"path_component_prefix": "patient"}: the first component
 *                   of the image's path (below the image dir) that starts with
 *                   the prefix; or {"name_chars": 7}: the first 7 characters
 *                   of the file name; or {"name_before": "_JPG"}: the file
 *                   name up to the first occurrence of the marker after its
 *                   first character (a name without it is an error), with
 *                   "ignore_case": true matching the marker in any ASCII
 *                   case (Roboflow exports: 103L_JPG.rf.<hash>.jpg and
 *                   89R_jpg.rf.<hash>.jpg are copies of the feet 103L, 89R)
 * Without a patient source every image is its own patient.
 *
 * The file must be strict JSON: one value, nothing after it, no NUL byte,
 * no key given twice in an object.
 *
 * Implemented by task.c (the JSON and its keys), samples.c (finding the
 * images, labels and patients) and csv.c (RFC 4180).
 * Not done here: decoding images (image.c), splits (split.c), metrics. */
#ifndef SKELEX_TASK_H
#define SKELEX_TASK_H
#include "core/common.h"

typedef enum { TASK_BINARY, TASK_MULTICLASS, TASK_ORDINAL, TASK_REGRESSION } task_type;

typedef struct {
    char *path;      /* image file: data root + image root + ... as joined */
    char *patient;   /* patient id; the image path when the task has none */
    int label;       /* class index in [0, n_classes); -1 for regression */
    double target;   /* regression target; (double)label for classification */
} task_sample;

typedef struct {
    char *name, *description;
    char *data_root;      /* as given to task_load ("" for none) */
    task_type type;
    int n_classes;        /* 1 for regression */
    char **class_names;   /* n_classes names; regression: the label column */
    int has_patients;     /* 1 when patient ids come from the data */
    task_sample *samples; /* in CSV row order, or class by class in path order */
    size_t n;
    size_t n_missing;     /* CSV rows dropped because the image is missing (TASK_SKIP_MISSING) */
    size_t n_invalid;     /* CSV rows dropped for their label ("invalid_labels": "skip") */
} task;

/* Flags for task_load_flags. */
enum {
    TASK_SKIP_MISSING = 1   /* drop CSV rows whose image is missing (counted in n_missing) instead of failing */
};

/* Load task_json, resolving relative paths against data_root (NULL or "":
 * the current directory). On failure *t is left empty (task_free-safe) and
 * err names the file and the reason; missing files are listed (the first 5
 * and the count). */
int task_load(const char *task_json, const char *data_root, task *t, sx_err *err);
int task_load_flags(const char *task_json, const char *data_root, unsigned flags, task *t, sx_err *err);
void task_free(task *t);

const char *task_type_name(task_type type);
int task_type_parse(const char *s, task_type *out);   /* 0 or -1 */
static inline int task_is_classification(const task *t) { return t->type != TASK_REGRESSION; }

/* 0 when b has a's label space (same type, same class names in the same
 * order; regression: both regression), else -1 with a message naming both
 * tasks and what differs (an external test set must match its task). */
int task_same_labels(const task *a, const task *b, sx_err *err);

/* counts[k] = samples with label k (n_classes entries). */
void task_class_counts(const task *t, size_t *counts);
/* Number of distinct patients. */
size_t task_patient_count(const task *t);
/* Sample i's path relative to the data root (the whole path when the image
 * root was absolute): the same on every machine, for records and hashes. */
const char *task_rel_path(const task *t, size_t i);

#endif
