/* task_args.h: options shared by the task commands (probe, finetune, eval):
 *   --task FILE --data-root DIR --skip-missing --folds K --test-frac F --seed S
 *   --test-task FILE --test-data-root DIR (an external test set)
 * and opening the task with its split (split.h). */
#ifndef SKELEX_TASK_ARGS_H
#define SKELEX_TASK_ARGS_H
#include "data/split.h"
#include "data/task.h"

typedef struct {
    const char *task, *root;
    const char *test_task, *test_root;   /* external test set; its root defaults to root */
    int skip_missing, folds;
    double test_frac;
    long seed;
} task_args;

void task_args_default(task_args *a);   /* root ".", 5 folds, test 0.1, seed 0 */
/* argv[*i] is one of the shared options: consume it (and its value); 1, else 0. */
int task_args_parse(task_args *a, int argc, char **argv, int *i);
/* Load the task and make its split; errors are printed as "skelex CMD: ...". */
int task_args_open(const task_args *a, const char *cmd, task *t, split *sp);
/* Load the external test task (--test-task) into *ext; when t is not NULL
 * its label space must be t's. 0; 1 when it cannot be loaded; 2 when the
 * label spaces differ (a usage error); errors printed as "skelex CMD: ...". */
int task_args_open_external(const task_args *a, const char *cmd, const task *t, task *ext);
/* task_args_open, then (with --test-task) task_args_open_external into
 * *ext: 0, else the exit status (1 or 2) with nothing left open. */
int task_args_open_all(const task_args *a, const char *cmd, task *t, split *sp, task *ext);
/* Usage checks across the shared options (--test-data-root needs
 * --test-task): 0, or 2 after a usage message. */
int task_args_check(const task_args *a, const char *cmd);
/* The help lines of --test-task (a command adds where its outputs go) and
 * --test-data-root. */
#define TASK_ARGS_TEST_TASK_HELP \
    "  --test-task FILE     an external test set: a task with the same type and class\n" \
    "                       names (same order); every one of its images is scored\n"
#define TASK_ARGS_TEST_ROOT_HELP \
    "  --test-data-root DIR root for the external task's paths (default: --data-root)\n"

#endif
