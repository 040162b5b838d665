/* cmd_eval.c: `skelex eval`: apply a fine-tuned classifier to a task's
 * images (scored: predictions.csv, metrics.json, plots) or to a folder or
 * list of images (unlabelled: predictions.csv only). */
#include "cli/cli.h"
#include "data/data.h"
#include "adapt/finetune.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "data/split.h"
#include "cli/task_args.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *HELP =
    "usage: skelex eval --model DIR (--task TASK.json | --images PATH) --out OUT [options]\n"
    "\n"
    "Applies a fine-tuned classifier (a `skelex finetune` fold's best/ directory, or a\n"
    "transformers ViTForImageClassification checkpoint) and writes OUT/predictions.csv\n"
    "(image, label, per-class probability or predicted value). With a task the images\n"
    "are scored too: OUT/metrics.json (AUROC + 95% bootstrap CI, balanced accuracy, F1,\n"
    "QWK for ordinal tasks, ECE; MAE/RMSE for regression) and ROC, confusion and\n"
    "reliability plots.\n"
    "\n"
    "  --model DIR          the classifier\n"
    "  --task FILE          a task: its classes must be the model's\n"
    "  --data-root DIR      root for the task's relative paths (default .)\n"
    "  --skip-missing       drop samples whose image file is missing (counted)\n"
    "  --split test|all     with a task: its fixed test split (as finetune and probe make it\n"
    "                       with the same --seed and --test-frac) or every image (default test)\n"
    "  --test-frac F --seed S   the split's parameters (defaults 0.1, 0)\n"
    "  --images PATH        instead of a task: a folder (scanned recursively) or a list file\n"
    "  --out OUT            output directory (created)\n"
    "  --batch B            images per forward (default 32)\n";

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *images = NULL, *out = NULL, *which = "test";
    int batch = 32;
    task_args ta;
    task_args_default(&ta);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) { fputs(HELP, stdout); return 0; }
        else if (!strcmp(a, "--model")) model = cli_value(argc, argv, &i);
        else if (task_args_parse(&ta, argc, argv, &i)) continue;
        else if (!strcmp(a, "--split")) which = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--images")) images = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--out")) out = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--batch")) batch = (int)cli_long(a, cli_value(argc, argv, &i), 1, 4096);
        else return cli_usage_error("eval", "unknown option '%s'", a);
    }
    if (!model || !out || !ta.task == !images)
        return cli_usage_error("eval", "--model, --out and one of --task or --images are required");
    if (strcmp(which, "test") && strcmp(which, "all")) return cli_usage_error("eval", "--split must be test or all");
    sx_err err;
    classifier c;
    if (classifier_load(&c, model, &err)) { fprintf(stderr, "skelex eval: %s\n", err.msg); return 1; }
    int rc = 1;
    task t = {0};
    split sp = {0};
    dataset ds;
    dataset_init(&ds);
    image_cache ic = {0};
    size_t n = 0, *idx = NULL;
    const char **paths = NULL;
    if (ta.task) {
        if (task_args_open(&ta, "eval", &t, &sp)) goto done;
        int same = t.type == c.type && t.n_classes == c.n_classes;
        for (int k = 0; same && k < t.n_classes && c.type != TASK_REGRESSION; k++)
            same = !strcmp(t.class_names[k], c.class_names[k]);
        if (!same) {
            fprintf(stderr, "skelex eval: %s: task '%s' is %s with %d class(es); the model was trained for %s with %d "
                            "(class names must match in order)\n", model, t.name, task_type_name(t.type), t.n_classes,
                    task_type_name(c.type), c.n_classes);
            goto done;
        }
        if (!strcmp(which, "test")) {
            idx = split_indices(&sp, SPLIT_TEST, 0, &n);
        } else {
            n = t.n;
            idx = sx_malloc(sizeof(size_t) * (n ? n : 1));
            for (size_t i = 0; i < n; i++) idx[i] = i;
        }
        paths = sx_malloc(sizeof(char *) * (t.n ? t.n : 1));
        for (size_t i = 0; i < t.n; i++) paths[i] = t.samples[i].path;
        if (image_cache_build(&ic, paths, t.n, c.enc.cfg.image_size, stderr, &err)) { fprintf(stderr, "skelex eval: %s\n", err.msg); goto done; }
        char title[256];
        snprintf(title, sizeof title, "%s, %s (%s)", t.name, which, model);
        cJSON *mj = finetune_evaluate(&c, &t, &ic, idx, n, batch, out, title, (uint64_t)ta.seed, &err);
        if (!mj) { fprintf(stderr, "skelex eval: %s\n", err.msg); goto done; }
        const cJSON *au = cJSON_GetObjectItem(mj, "auroc"), *mae = cJSON_GetObjectItem(mj, "mae");
        if (cJSON_IsNumber(au)) printf("auroc=%.4f\n", au->valuedouble);
        if (cJSON_IsNumber(mae)) printf("mae=%.4f\n", mae->valuedouble);
        cJSON_Delete(mj);
        printf("n=%zu\nwrote %s/predictions.csv and %s/metrics.json\n", n, out, out);
    } else {
        if (dataset_add(&ds, images, &err)) { fprintf(stderr, "skelex eval: %s\n", err.msg); goto done; }
        n = dataset_count(&ds);
        paths = sx_malloc(sizeof(char *) * n);
        idx = sx_malloc(sizeof(size_t) * n);
        for (size_t i = 0; i < n; i++) { paths[i] = dataset_path(&ds, i); idx[i] = i; }
        if (image_cache_build(&ic, paths, n, c.enc.cfg.image_size, stderr, &err)) { fprintf(stderr, "skelex eval: %s\n", err.msg); goto done; }
        int KK = c.type == TASK_BINARY ? 2 : c.n_classes, reg = c.type == TASK_REGRESSION;
        double *prob = sx_malloc(sizeof(double) * n * KK), *pred = sx_malloc(sizeof(double) * n);
        int prc = finetune_predict(&c, NULL, &ic, idx, n, batch, prob, pred, NULL, &err);
        if (!prc) {
            eval_set es = {c.type, reg ? 1 : KK, (const char *const *)c.class_names, n, reg ? NULL : prob, NULL,
                           reg ? pred : NULL, NULL};
            char path[4400];
            if (mkdir(out, 0755) && errno != EEXIST) prc = sx_fail(&err, "%s: cannot create (%s)", out, strerror(errno));
            snprintf(path, sizeof path, "%s/predictions.csv", out);
            if (!prc) prc = report_predictions_csv(path, paths, &es, -1, &err);
        }
        free(prob);
        free(pred);
        if (prc) { fprintf(stderr, "skelex eval: %s\n", err.msg); goto done; }
        printf("n=%zu\nwrote %s/predictions.csv\n", n, out);
    }
    rc = 0;
done:
    free(idx);
    free(paths);
    image_cache_free(&ic);
    dataset_free(&ds);
    split_free(&sp);
    task_free(&t);
    classifier_free(&c);
    return rc;
}
