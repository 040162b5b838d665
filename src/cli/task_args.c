/* task_args.c: the options every task command shares (probe, finetune,
 * eval) and opening a task with its SKELEX split. */
#include "cli/cli.h"
#include "cli/task_args.h"
#include <stdio.h>
#include <string.h>

void task_args_default(task_args *a) {
    *a = (task_args){.task = NULL, .root = ".", .test_task = NULL, .test_root = NULL, .skip_missing = 0, .folds = 5,
                     .test_frac = 0.1, .seed = 0};
}

int task_args_parse(task_args *a, int argc, char **argv, int *i) {
    const char *o = argv[*i];
    if (!strcmp(o, "--task")) a->task = cli_value(argc, argv, i);
    else if (!strcmp(o, "--data-root")) a->root = cli_value(argc, argv, i);
    else if (!strcmp(o, "--test-task")) a->test_task = cli_value(argc, argv, i);
    else if (!strcmp(o, "--test-data-root")) a->test_root = cli_value(argc, argv, i);
    else if (!strcmp(o, "--skip-missing")) a->skip_missing = 1;
    else if (!strcmp(o, "--folds")) a->folds = (int)cli_long(o, cli_value(argc, argv, i), 2, 100);
    else if (!strcmp(o, "--test-frac")) a->test_frac = cli_double(o, cli_value(argc, argv, i), 0.01, 0.9);
    else if (!strcmp(o, "--seed")) a->seed = cli_long(o, cli_value(argc, argv, i), 0, 0x7fffffffL);
    else return 0;
    return 1;
}

int task_args_check(const task_args *a, const char *cmd) {
    if (a->test_root && !a->test_task) return cli_usage_error(cmd, "--test-data-root needs --test-task");
    return 0;
}

int task_args_open(const task_args *a, const char *cmd, task *t, split *sp) {
    sx_err err;
    memset(sp, 0, sizeof *sp);
    if (task_load_flags(a->task, a->root, a->skip_missing ? TASK_SKIP_MISSING : 0, t, &err)) {
        fprintf(stderr, "skelex %s: %s\n", cmd, err.msg);
        return -1;
    }
    if (t->n_missing) fprintf(stderr, "skelex %s: %zu sample(s) without an image file were dropped\n", cmd, t->n_missing);
    if (split_make(t, a->test_frac, a->folds, (uint64_t)a->seed, sp, &err)) {
        fprintf(stderr, "skelex %s: %s\n", cmd, err.msg);
        task_free(t);
        return -1;
    }
    return 0;
}

int task_args_open_external(const task_args *a, const char *cmd, const task *t, task *ext) {
    sx_err err;
    const char *root = a->test_root ? a->test_root : a->root;
    if (task_load_flags(a->test_task, root, a->skip_missing ? TASK_SKIP_MISSING : 0, ext, &err)) {
        fprintf(stderr, "skelex %s: --test-task: %s\n", cmd, err.msg);
        return 1;
    }
    if (ext->n_missing)
        fprintf(stderr, "skelex %s: --test-task: %zu sample(s) without an image file were dropped\n", cmd,
                ext->n_missing);
    if (t && task_same_labels(t, ext, &err)) {
        fprintf(stderr, "skelex %s: --test-task %s does not fit --task %s: %s\n", cmd, a->test_task, a->task, err.msg);
        task_free(ext);
        return 2;
    }
    return 0;
}

int task_args_open_all(const task_args *a, const char *cmd, task *t, split *sp, task *ext) {
    if (task_args_open(a, cmd, t, sp)) return 1;
    int erc = a->test_task ? task_args_open_external(a, cmd, t, ext) : 0;
    if (erc) { split_free(sp); task_free(t); }
    return erc;
}
