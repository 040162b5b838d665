/* heads_args.h: the multi-head branch of `skelex finetune` and `skelex eval`
 * (a task of type "multihead": data/multitask.h). cmd_finetune.c and
 * cmd_eval.c hand such a task over here. */
#ifndef SKELEX_HEADS_ARGS_H
#define SKELEX_HEADS_ARGS_H
#include "adapt/evaluate_heads.h"
#include "adapt/finetune_heads.h"
#include "cli/task_args.h"

/* finetune's extra options: --no-ior, --crop-side N. 1 when argv[*i] was one. */
int heads_finetune_arg(fth_opts *h, int argc, char **argv, int *i);
/* eval's extra options: --regions whole|boxes:DIR, --mae DIR, --passes N,
 * --region-k K, --region-percentile P, --region-pad F, --bootstrap N. */
int heads_eval_arg(evh_opts *o, int argc, char **argv, int *i);
/* 1 when the task file is a multi-head task. */
int heads_is_task(const task_args *ta);
/* Load the multi-head task with its split and run; exit status. */
int heads_finetune_main(const task_args *ta, finetune_run_opts *ro, const fth_opts *h);
int heads_eval_main(const task_args *ta, evh_opts *o);

#endif
