/* task_spec.h: inside the task loader (not a public header). task.c parses
 * and validates the task JSON into a task_spec; samples.c turns a spec into
 * the task's samples (images found on disk, labels, patients).
 * The spec points into the cJSON tree it was parsed from. */
#ifndef SKELEX_TASK_SPEC_H
#define SKELEX_TASK_SPEC_H
#include "data/task.h"
#include <cjson/cJSON.h>

#define TASK_CLASSES_MAX 1000

typedef struct {
    const char *name, *description;
    task_type type;
    const char *image_root;
    const char **image_dirs;
    int n_image_dirs;
    const char **class_folders;
    int n_class_folders;
    const char **csv;
    int n_csv;
    int csv_header, study_dirs, skip_invalid;
    const cJSON *image_column, *label_column, *label_columns, *patient_column;
    const char *image_suffix;
    const cJSON *label_map, *where;
    const char **classes;
    int n_classes;
    const char *patient_prefix;
    int patient_name_chars;
    const char *patient_before;   /* name_before: the file name up to the first occurrence */
    int patient_before_icase;     /* ignore_case: the marker matches in any ASCII case */
} task_spec;

/* The spec derives patients from image paths (patient_from). */
static inline int task_spec_has_patient_from(const task_spec *s) {
    return s->patient_prefix || s->patient_name_chars || s->patient_before;
}

/* root: the parsed task file (file names it in messages). */
int task_spec_parse(const cJSON *root, task_spec *s, const char *file, sx_err *err);
void task_spec_free(task_spec *s);

/* The samples of a parsed spec into *t (left empty on failure). */
int samples_build(const task_spec *sp, const char *file, const char *data_root, unsigned flags, task *t, sx_err *err);

/* A whole file of at most max bytes, NUL-terminated, through
 * sx_fopen_input; *len excludes the NUL. The caller frees *buf. */
int task_read_file(const char *path, size_t max, char **buf, size_t *len, sx_err *err);

#endif
