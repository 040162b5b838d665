/* task_args.h: options shared by the task commands (probe, finetune, eval):
 *   --task FILE --data-root DIR --skip-missing --folds K --test-frac F --seed S
 * and opening the task with its split (split.h). */
#ifndef SKELEX_TASK_ARGS_H
#define SKELEX_TASK_ARGS_H
#include "data/split.h"
#include "data/task.h"

typedef struct {
    const char *task, *root;
    int skip_missing, folds;
    double test_frac;
    long seed;
} task_args;

void task_args_default(task_args *a);   /* root ".", 5 folds, test 0.1, seed 0 */
/* argv[*i] is one of the shared options: consume it (and its value); 1, else 0. */
int task_args_parse(task_args *a, int argc, char **argv, int *i);
/* Load the task and make its split; errors are printed as "skelex CMD: ...". */
int task_args_open(const task_args *a, const char *cmd, task *t, split *sp);

#endif
