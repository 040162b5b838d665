/* cmd_eval.c: `skelex eval`: arguments -> eval_task_run / eval_images_run
 * (adapt/evaluate.h). */
#include "cli/cli.h"
#include "cli/precision_args.h"
#include "adapt/evaluate.h"
#include "cli/task_args.h"
#include "cli/heads_args.h"
#include <stdio.h>
#include <string.h>

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
    "  --model DIR          the classifier (default: the shipped models/skelex-heads)\n"
    "  --task FILE          a task: its classes must be the model's\n"
    "  --data-root DIR      root for the task's relative paths (default .)\n"
    "  --skip-missing       drop samples whose image file is missing (counted)\n"
    "  --split test|all     with a task: its fixed test split (as finetune and probe make it\n"
    "                       with the same --seed and --test-frac) or every image (default test)\n"
    "  --test-frac F --seed S   the split's parameters (defaults 0.1, 0)\n"
    "  --test-task FILE     an external test set: every one of its images is scored into\n"
    "                       OUT/external/ (alone, or beside --task, whose classes it must have)\n"
    "  --test-data-root DIR root for the external task's paths (default: --data-root)\n"
    "  --images PATH        instead of a task: a folder (scanned recursively) or a list file\n"
    "  --out OUT            output directory (created)\n"
    "  --batch B            images per forward, 1..4096 (default 32)\n"
    "  --precision P        auto (default), fp32 or bf16: see skelex bench --help\n"
    "\n"
    "A multi-head model on a multi-head task is scored per group (AUROC per sigmoid\n"
    "output, macro AUROC and balanced accuracy per softmax group, ECE; masked entries\n"
    "skipped), whole-image and region-guided side by side (max over regions + whole):\n"
    "  --regions boxes:DIR  regions from YOLO boxes DIR/<stem>.txt\n"
    "  --mae DIR            regions from this MAE's error map (top --region-k areas above\n"
    "                       --region-percentile, padded by --region-pad; defaults 3, 97, 0.1;\n"
    "                       --passes masks, default 10)\n"
    "  --bootstrap N        CI resamples (default 1000)\n"
    "\n"
    "Exit status: 0 success, 1 failure (unreadable model or images, classes that do\n"
    "not match the model's, a failed write), 2 usage error (also: a --test-task whose\n"
    "label space is not --task's).\n";

static void eval_print(const cJSON *mj, size_t n, const char *out, const char *sub) {
    const cJSON *au = cJSON_GetObjectItem(mj, "auroc"), *mae = cJSON_GetObjectItem(mj, "mae");
    if (cJSON_IsNumber(au)) printf("auroc=%.4f\n", au->valuedouble);
    if (cJSON_IsNumber(mae)) printf("mae=%.4f\n", mae->valuedouble);
    printf("n=%zu\nwrote %s/%spredictions.csv and %s/%smetrics.json\n", n, out, sub, out, sub);
}

int cmd_eval(int argc, char **argv) {
    int rc;
    const char *images = NULL, *which = "test", *precision = "auto";
    eval_opts o = {.batch = 32};
    task_args ta;
    task_args_default(&ta);
    evh_opts ho;
    evh_opts_default(&ho);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) { fputs(HELP, stdout); return 0; }
        else if (!strcmp(a, "--model")) o.model = cli_value(argc, argv, &i);
        else if (task_args_parse(&ta, argc, argv, &i)) continue;
        else if ((rc = heads_eval_arg(&ho, argc, argv, &i))) { if (rc < 0) return 2; }
        else if (!strcmp(a, "--split")) which = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--images")) images = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--out")) o.out = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--precision")) precision = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--batch")) o.batch = (int)cli_long(a, cli_value(argc, argv, &i), 1, 4096);
        else return cli_usage_error("eval", "unknown option '%s'", a);
    }
    if (!o.out || (!ta.task && !ta.test_task) == !images)
        return cli_usage_error("eval", "--out and one of --task (and/or --test-task) or --images are required");
    char shipped[4200];
    if (!(o.model = cli_model_or_shipped("eval", o.model, CLI_HEADS_MODEL, shipped, sizeof shipped))) return 2;
    if (task_args_check(&ta, "eval")) return 2;
    if (strcmp(which, "test") && strcmp(which, "all")) return cli_usage_error("eval", "--split must be test or all");
    gemm_set_precision(cli_precision("eval", precision));   /* the models follow the process default */
    o.all = !strcmp(which, "all");
    o.seed = (uint64_t)ta.seed;
    o.progress = stderr;
    if (heads_is_task(&ta)) {
        ho.model = o.model; ho.out = o.out; ho.batch = o.batch; ho.all = o.all; ho.seed = o.seed; ho.progress = stderr;
        return heads_eval_main(&ta, &ho);
    }
    sx_err err;
    size_t n = 0;
    if (ta.test_task && !ta.task) {
        task ext;
        if ((rc = task_args_open_external(&ta, "eval", NULL, &ext))) return rc;
        cJSON *mj = NULL;
        rc = eval_external_run(&ext, &o, &mj, &n, &err);
        if (!rc) eval_print(mj, n, o.out, "external/");
        cJSON_Delete(mj);
        task_free(&ext);
    } else if (ta.task) {
        task t, ext;
        split sp;
        int erc = task_args_open_all(&ta, "eval", &t, &sp, &ext);
        if (erc) return erc;
        cJSON *mj = NULL;
        rc = eval_task_run(&t, &sp, &o, &mj, &n, &err);
        if (!rc) eval_print(mj, n, o.out, "");
        cJSON_Delete(mj);
        mj = NULL;
        if (!rc && ta.test_task && !(rc = eval_external_run(&ext, &o, &mj, &n, &err))) {
            printf("external:\n");
            eval_print(mj, n, o.out, "external/");
        }
        cJSON_Delete(mj);
        if (ta.test_task) task_free(&ext);
        split_free(&sp);
        task_free(&t);
    } else {
        rc = eval_images_run(images, &o, &n, &err);
        if (!rc) printf("n=%zu\nwrote %s/predictions.csv\n", n, o.out);
    }
    if (rc) fprintf(stderr, "skelex eval: %s\n", err.msg);
    return rc ? 1 : 0;
}
