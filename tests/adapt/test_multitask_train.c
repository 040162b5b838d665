/* test_multitask_train.c: multi-head fine-tuning and evaluation end to end
 * on synthetic images (tl_synthetic_task): two sources over the same images
 * (a sigmoid output and a softmax group), boxes on the positives; the
 * protocol's files, best-epoch bookkeeping, the region-guided maximum never
 * below the whole image's probability, and the CLI dispatch of `skelex
 * finetune` and `skelex eval` for a "multihead" task. */
#include "adapt/evaluate_heads.h"
#include "adapt/finetune_heads.h"
#include "core/json.h"
#include "testlib.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *TASK =
    "{\"name\": \"mt_synth\", \"type\": \"multihead\","
    " \"outputs\": [\"bright\", \"small\", \"large\"],"
    " \"groups\": [{\"name\": \"bright\", \"kind\": \"sigmoid\", \"outputs\": [\"bright\"]},"
    "   {\"name\": \"size\", \"kind\": \"softmax\", \"outputs\": [\"small\", \"large\"]}],"
    " \"sources\": ["
    "  {\"group\": \"bright\", \"output\": \"bright\", \"boxes\": {\"yolo_dir\": \"boxes\"},"
    "   \"task\": {\"name\": \"s_bright\", \"type\": \"binary\", \"image_root\": \"data\", \"class_folders\": [\"dark\", \"bright\"]}},"
    "  {\"group\": \"size\", \"class_outputs\": {\"dark\": \"small\", \"bright\": \"large\"},"
    "   \"task\": {\"name\": \"s_size\", \"type\": \"binary\", \"image_root\": \"data\", \"class_folders\": [\"dark\", \"bright\"]}}]}";

static int setup(int per_class) {
    const char *d = tl_tmpdir();
    if (tl_synthetic_task(d, per_class)) return -1;
    char p[700];
    snprintf(p, sizeof p, "mkdir -p '%s/boxes'", d);
    if (system(p)) return -1;
    for (int k = 0; k < per_class; k++) {   /* the disk sits near the centre of every bright image */
        snprintf(p, sizeof p, "boxes/img%02d.txt", k);
        if (tl_write_text(tl_path(p), "0 0.5 0.5 0.6 0.6\n")) return -1;
    }
    return tl_write_text(tl_path("mt.json"), TASK);
}

static cJSON *load_json(const char *path) {
    sx_err e;
    return sx_json_load(path, 1 << 24, &e);
}

TEST(test_multitask_train_and_eval) {
    CHECK(setup(10) == 0);
    multitask mt;
    split sp;
    sx_err err;
    CHECKF(multitask_load(tl_path("mt.json"), tl_tmpdir(), 0, &mt, &err) == 0, "%s", err.msg);
    if (tl_failures) return;
    CHECK(mt.n == 20);
    /* both groups known on every image (two sources, same paths), so both label every image */
    for (size_t i = 0; i < mt.n * 3; i++) CHECK(mt.known[i]);
    /* a group every source labels: the strata are its answers */
    CHECK(mt.view.n_classes == 2);
    CHECK(split_make(&mt.view, 0.25, 2, 0, &sp, &err) == 0);
    mae_config cfg;
    CHECK(config_resolve(tl_path("cfg.json"), &cfg, &err) == 0);
    unsigned char only[FT_MAX_FOLDS] = {1};
    finetune_run_opts ro = {.config = &cfg, .init_name = "cfg", .out = tl_path("run"), .only = only,
                            .label_fraction = 1.0};
    ft_opts_default(&ro.ft);
    ro.ft.epochs = 3;
    ro.ft.warmup_epochs = 1;
    ro.ft.batch = 8;
    ro.ft.micro_batch = 4;
    ro.ft.eval_batch = 4;
    ro.ft.lr = 1e-3;
    ro.ft.quiet = 1;
    fth_opts ho;
    fth_opts_default(&ho);
    CHECKF(finetune_heads_run(&mt, &sp, &ro, &ho, &err) == 0, "%s", err.msg);
    /* a second run into the same folder is refused without force */
    CHECK(finetune_heads_run(&mt, &sp, &ro, &ho, &err) != 0 && strstr(err.msg, "--force"));
    CHECK(access(tl_path("run/split.json"), R_OK) == 0);
    CHECK(access(tl_path("run/fold0/log.csv"), R_OK) == 0);
    CHECK(access(tl_path("run/fold0/test/predictions.csv"), R_OK) == 0);
    cJSON *res = load_json(tl_path("run/results.json"));
    CHECK(res != NULL);
    const cJSON *f0 = cJSON_GetArrayItem(cJSON_GetObjectItem(res, "folds"), 0);
    CHECK(f0 != NULL);
    if (f0) {
        int be = (int)cJSON_GetObjectItem(f0, "best_epoch")->valuedouble;
        CHECK(be >= 1 && be <= 3);
        const cJSON *vb = cJSON_GetObjectItem(f0, "val_score_best"), *vl = cJSON_GetObjectItem(f0, "val_score_last");
        if (cJSON_IsNumber(vb) && cJSON_IsNumber(vl)) CHECK(vb->valuedouble >= vl->valuedouble);
        const cJSON *g = cJSON_GetObjectItem(cJSON_GetObjectItem(f0, "groups"), "size");
        /* every test image knows the size group */
        CHECK(g && cJSON_GetObjectItem(g, "n")->valuedouble == cJSON_GetObjectItem(res, "test_images")->valuedouble);
        CHECK(cJSON_GetObjectItem(res, "test_images")->valuedouble >= 4);
        CHECK(cJSON_GetObjectItem(res, "inputs") && !strcmp(cJSON_GetObjectItem(res, "inputs")->valuestring, "ior_crops"));
    }
    cJSON_Delete(res);
    cJSON *bc = load_json(tl_path("run/fold0/best/config.json"));
    CHECK(bc && cJSON_GetObjectItem(bc, "groups") && cJSON_GetArraySize(cJSON_GetObjectItem(bc, "groups")) == 2);
    cJSON_Delete(bc);

    /* evaluation: whole image and given boxes side by side, every image */
    evh_opts eo;
    evh_opts_default(&eo);
    eo.model = tl_path("run/fold0/best");
    eo.out = tl_path("ev");
    eo.all = 1;
    eo.n_boot = 50;
    char boxes[600];
    snprintf(boxes, sizeof boxes, "%s/boxes", tl_tmpdir());
    eo.boxes_dir = boxes;
    cJSON *mj = NULL;
    CHECKF(eval_heads_run(&mt, &sp, &eo, &mj, &err) == 0, "%s", err.msg);
    const cJSON *modes = cJSON_GetObjectItem(mj, "modes");
    CHECK(cJSON_GetObjectItem(modes, "whole") && cJSON_GetObjectItem(modes, "boxes"));
    CHECK(cJSON_GetObjectItem(mj, "n")->valuedouble == 20);
    /* boxes go by file stem: dark/imgNN and bright/imgNN both find boxes/imgNN.txt (box + whole) */
    const cJSON *rm = cJSON_GetObjectItem(cJSON_GetObjectItem(modes, "boxes"), "regions_mean");
    CHECK(cJSON_IsNumber(rm) && fabs(rm->valuedouble - 2.0) < 1e-12);
    const cJSON *nw = cJSON_GetObjectItem(cJSON_GetObjectItem(modes, "boxes"), "max_not_whole_share");
    const cJSON *nwb = cJSON_GetObjectItem(nw, "bright");
    CHECK(cJSON_IsNumber(nwb) && nwb->valuedouble >= 0 && nwb->valuedouble <= 1);
    cJSON_Delete(mj);
    /* per image and output, the region maximum includes the whole image: never (much) below it */
    char *w = tl_read_file(tl_path("ev/whole/predictions.csv"), NULL), *b = tl_read_file(tl_path("ev/boxes/predictions.csv"), NULL);
    CHECK(w && b && strstr(b, "bright_region") && strstr(b, ",regions\n"));
    if (w && b) {
        char *sw = strchr(w, '\n') + 1, *sb = strchr(b, '\n') + 1;
        int rows = 0;
        for (; *sw && *sb; rows++) {
            sw = strchr(sw, ',') + 1;
            sb = strchr(sb, ',') + 1;
            for (int j = 0; j < 3; j++) {
                double pw = strtod(sw, &sw), pb = strtod(sb, &sb);
                CHECKF(pb >= pw - 0.02, "row %d output %d: %g < %g", rows, j, pb, pw);
                sw++;
                sb++;
            }
            sw = strchr(sw - 1, '\n');
            sb = strchr(sb - 1, '\n');
            if (!sw || !sb) break;
            sw++;
            sb++;
        }
        CHECK(rows == 20);
    }
    free(w); free(b);
    CHECK(access(tl_path("ev/metrics.txt"), R_OK) == 0);
    /* a model whose outputs are not the task's is refused */
    split_free(&sp);
    multitask_free(&mt);
}

TEST(test_multitask_cli) {
    CHECK(setup(6) == 0);
    static char out[1 << 16];
    char cmd[3000];
    const char *d = tl_tmpdir();
    snprintf(cmd, sizeof cmd, "./skelex finetune --task %s/mt.json --data-root %s --config %s/cfg.json --out %s/run "
             "--folds 2 --only-folds 0 --test-frac 0.2 --epochs 1 --warmup-epochs 0 --batch 4 --micro-batch 4", d, d, d, d);
    int rc = tl_run(cmd, out, sizeof out);
    CHECKF(rc == 0, "rc %d: %s", rc, out);
    CHECK(strstr(out, "multi-head") && strstr(out, "results.json"));
    snprintf(cmd, sizeof cmd, "./skelex eval --model %s/run/fold0/best --task %s/mt.json --data-root %s --folds 2 "
             "--test-frac 0.2 --regions boxes:%s/boxes --bootstrap 20 --out %s/ev", d, d, d, d, d);
    rc = tl_run(cmd, out, sizeof out);
    CHECKF(rc == 0, "rc %d: %s", rc, out);
    CHECKF(strstr(out, "mean AUROC") && strstr(out, "boxes") && strstr(out, "size (macro)"), "%s", out);
    snprintf(cmd, sizeof cmd, "./skelex eval --model %s/run/fold0/best --task %s/mt.json --data-root %s --regions nope "
             "--out %s/ev2", d, d, d, d);
    CHECK(tl_run(cmd, out, sizeof out) == 2);
    /* an ordinary (single-head) task given to the multi-head model: refused with a message */
    snprintf(cmd, sizeof cmd, "./skelex eval --model %s/run/fold0/best --task %s/task.json --data-root %s --out %s/ev3",
             d, d, d, d);
    rc = tl_run(cmd, out, sizeof out);
    CHECKF(rc == 1, "rc %d: %s", rc, out);
}
