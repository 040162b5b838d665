/* cmd_heads.c: the multi-head branch of finetune and eval (heads_args.h):
 * arguments -> multitask_load, split_make, finetune_heads_run /
 * eval_heads_run, and printing. */
#include "cli/heads_args.h"
#include "cli/cli.h"
#include <stdio.h>
#include <string.h>

int heads_finetune_arg(fth_opts *h, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (!strcmp(a, "--no-ior")) h->ior = 0;
    else if (!strcmp(a, "--crop-side")) h->crop_side = (int)cli_long(a, cli_value(argc, argv, i), 16, 65536);
    else return 0;
    return 1;
}

int heads_eval_arg(evh_opts *o, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (!strcmp(a, "--regions")) {
        const char *v = cli_value(argc, argv, i);
        if (!strncmp(v, "boxes:", 6) && v[6]) o->boxes_dir = v + 6;
        else if (!strcmp(v, "whole")) o->boxes_dir = NULL;
        else if (strcmp(v, "errormap")) {
            cli_usage_error("eval", "--regions must be whole, errormap (with --mae) or boxes:DIR");
            return -1;
        }
    } else if (!strcmp(a, "--mae")) o->mae = cli_value(argc, argv, i);
    else if (!strcmp(a, "--passes")) o->passes = (int)cli_long(a, cli_value(argc, argv, i), 1, 1024);
    else if (!strcmp(a, "--region-k")) o->rp.k = (int)cli_long(a, cli_value(argc, argv, i), 1, 64);
    else if (!strcmp(a, "--region-percentile")) o->rp.percentile = cli_double(a, cli_value(argc, argv, i), 0, 100);
    else if (!strcmp(a, "--region-pad")) o->rp.pad_frac = cli_double(a, cli_value(argc, argv, i), 0, 10);
    else if (!strcmp(a, "--bootstrap")) o->n_boot = (int)cli_long(a, cli_value(argc, argv, i), 0, 100000);
    else return 0;
    return 1;
}

int heads_is_task(const task_args *ta) { return ta->task && multitask_is(ta->task); }

static int open_heads(const task_args *ta, const char *cmd, multitask *mt, split *sp) {
    sx_err err;
    memset(sp, 0, sizeof *sp);
    if (multitask_load(ta->task, ta->root, ta->skip_missing ? TASK_SKIP_MISSING : 0, mt, &err) ||
        split_make(&mt->view, ta->test_frac, ta->folds, (uint64_t)ta->seed, sp, &err)) {
        fprintf(stderr, "skelex %s: %s\n", cmd, err.msg);
        multitask_free(mt);
        return -1;
    }
    fprintf(stderr, "%s: %zu images, %d outputs in %d groups, %d strata\n", mt->name, mt->n, mt->L.n_out,
            mt->L.n_groups, mt->view.n_classes);
    return 0;
}

int heads_finetune_main(const task_args *ta, finetune_run_opts *ro, const fth_opts *h) {
    multitask mt;
    split sp;
    if (open_heads(ta, "finetune", &mt, &sp)) return 1;
    sx_err err;
    int rc = finetune_heads_run(&mt, &sp, ro, h, &err);
    if (rc) fprintf(stderr, "skelex finetune: %s\n", err.msg);
    else printf("wrote %s/results.json\n", ro->out);
    split_free(&sp);
    multitask_free(&mt);
    return rc ? 1 : 0;
}

int heads_eval_main(const task_args *ta, evh_opts *o) {
    multitask mt;
    split sp;
    if (open_heads(ta, "eval", &mt, &sp)) return 1;
    sx_err err;
    cJSON *mj = NULL;
    int rc = eval_heads_run(&mt, &sp, o, &mj, &err);
    if (rc) fprintf(stderr, "skelex eval: %s\n", err.msg);
    else {
        evh_print_table(stdout, mj);
        printf("wrote %s/metrics.json and %s/metrics.txt\n", o->out, o->out);
    }
    cJSON_Delete(mj);
    split_free(&sp);
    multitask_free(&mt);
    return rc ? 1 : 0;
}
