/* evaluate.c: a fine-tuned classifier on labelled or unlabelled images
 * (see evaluate.h). */
#include "adapt/evaluate.h"
#include "adapt/finetune.h"
#include "data/data.h"
#include "eval/report.h"
#include <stdlib.h>
#include <string.h>

static int check_opts(const eval_opts *o, sx_err *err) {
    if (!o->model || !o->out || o->batch < 1) return sx_fail(err, "eval: need a model, an output folder and batch >= 1");
    return 0;
}

/* The task's type and classes must be the model's, in order. */
static int same_classes(const classifier *c, const task *t, const char *model, sx_err *err) {
    int same = t->type == c->type && t->n_classes == c->n_classes;
    for (int k = 0; same && k < t->n_classes && c->type != TASK_REGRESSION; k++)
        same = !strcmp(t->class_names[k], c->class_names[k]);
    if (same) return 0;
    return sx_fail(err, "%s: task '%s' is %s with %d class(es); the model was trained for %s with %d (class names "
                   "must match in order)", model, t->name, task_type_name(t->type), t->n_classes,
                   task_type_name(c->type), c->n_classes);
}

int eval_task_run(const task *t, const split *sp, const eval_opts *o, cJSON **metrics, size_t *n, sx_err *err) {
    *metrics = NULL;
    *n = 0;
    if (check_opts(o, err)) return -1;
    classifier c;
    if (classifier_load(&c, o->model, err)) return -1;
    int rc = -1;
    size_t m = 0, *idx = NULL;
    image_cache ic = {0};
    const char **paths = NULL;
    if (same_classes(&c, t, o->model, err)) goto done;
    if (!o->all) {
        idx = split_indices(sp, SPLIT_TEST, 0, &m);
    } else {
        m = t->n;
        idx = sx_malloc(sizeof(size_t) * (m ? m : 1));
        for (size_t i = 0; i < m; i++) idx[i] = i;
    }
    paths = sx_malloc(sizeof(char *) * (t->n ? t->n : 1));
    for (size_t i = 0; i < t->n; i++) paths[i] = t->samples[i].path;
    if (image_cache_build(&ic, paths, t->n, c.enc.cfg.image_size, o->progress, err)) goto done;
    char title[256];
    snprintf(title, sizeof title, "%s, %s (%s)", t->name, o->all ? "all" : "test", o->model);
    *metrics = finetune_evaluate(&c, t, &ic, idx, m, o->batch, o->out, title, o->seed, err);
    if (*metrics) { *n = m; rc = 0; }
done:
    free(idx);
    free(paths);
    image_cache_free(&ic);
    classifier_free(&c);
    return rc;
}

int eval_external_run(const task *ext, const eval_opts *o, cJSON **metrics, size_t *n, sx_err *err) {
    *metrics = NULL;
    *n = 0;
    if (check_opts(o, err)) return -1;
    char dir[4400];
    if (snprintf(dir, sizeof dir, "%s/external", o->out) >= (int)sizeof dir) return sx_fail(err, "%s: path too long", o->out);
    if (adapt_mkdir(o->out, err)) return -1;
    eval_opts eo = *o;
    eo.out = dir;
    eo.all = 1;
    return eval_task_run(ext, NULL, &eo, metrics, n, err);
}

int eval_images_run(const char *images, const eval_opts *o, size_t *n, sx_err *err) {
    *n = 0;
    if (check_opts(o, err)) return -1;
    classifier c;
    if (classifier_load(&c, o->model, err)) return -1;
    dataset ds;
    dataset_init(&ds);
    image_cache ic = {0};
    int rc = dataset_add(&ds, images, err);
    size_t m = rc ? 0 : dataset_count(&ds), *idx = sx_malloc(sizeof(size_t) * (m ? m : 1));
    const char **paths = sx_malloc(sizeof(char *) * (m ? m : 1));
    for (size_t i = 0; i < m; i++) { paths[i] = dataset_path(&ds, i); idx[i] = i; }
    int KK = c.type == TASK_BINARY ? 2 : c.n_classes, reg = c.type == TASK_REGRESSION;
    double *prob = sx_malloc(sizeof(double) * (m ? m : 1) * KK), *pred = sx_malloc(sizeof(double) * (m ? m : 1));
    if (!rc) rc = image_cache_build(&ic, paths, m, c.enc.cfg.image_size, o->progress, err);
    if (!rc) rc = finetune_predict(&c, NULL, &ic, idx, m, o->batch, prob, pred, NULL, err);
    if (!rc) rc = adapt_mkdir(o->out, err);
    if (!rc) {
        eval_set es = {c.type, reg ? 1 : KK, (const char *const *)c.class_names, m, reg ? NULL : prob, NULL,
                       reg ? pred : NULL, NULL};
        char path[4400];
        snprintf(path, sizeof path, "%s/predictions.csv", o->out);
        rc = report_predictions_csv(path, paths, &es, -1, err);
    }
    if (!rc) *n = m;
    free(prob); free(pred); free(idx); free(paths);
    image_cache_free(&ic);
    dataset_free(&ds);
    classifier_free(&c);
    return rc;
}
