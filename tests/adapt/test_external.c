/* test_external.c: external test sets (--test-task) in probe, finetune and
 * eval on synthetic tasks: the files per fold, every external sample scored
 * once, metrics that follow from the written predictions, refused label
 * spaces (exit 2) and a refused overlap with the task's own images. */
#include "adapt/external.h"
#include "eval/metrics.h"
#include "testlib.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cJSON *read_json(const char *path) {
    char *s = tl_read_file(path, NULL);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    free(s);
    return j;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* A task dir/int (train) and dir/ext (external, n_ext per class); a tiny init model dir/m. */
static int make_tasks(const char *d, int n_ext) {
    char p[700], out[4096];
    snprintf(p, sizeof p, "%s/int", d);
    if (tl_synthetic_task(p, 24)) return -1;
    snprintf(p, sizeof p, "%s/ext", d);
    if (tl_synthetic_task(p, n_ext)) return -1;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "./skelex init --config %s/int/cfg.json --out %s/m", d, d);
    return tl_run(cmd, out, sizeof out) == 0 ? 0 : -1;
}

/* make_tasks, then `skelex ARGS` (args: a format with one %s, the scratch dir) on dir/int with
 * dir/ext as the external test set and the model dir/m; the exit status. */
static int run_external(const char *d, int n_ext, const char *args, char *out, size_t cap) {
    char a[1024], cmd[4096];
    if (make_tasks(d, n_ext)) return -1;
    snprintf(a, sizeof a, args, d);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 ./skelex %s --task %s/int/task.json --data-root %s/int --model %s/m "
             "--test-task %s/ext/task.json --test-data-root %s/ext", a, d, d, d, d, d);
    return tl_run(cmd, out, cap);
}

/* predictions.csv of the synthetic binary task (image,label,prob_dark,prob_bright,predicted[,fold]):
 * checks every external image once, then the metrics it implies against metrics.json. */
static void check_predictions(const char *dir, int n_ext, int fold_col) {
    char p[800];
    snprintf(p, sizeof p, "%s/predictions.csv", dir);
    char *csv = tl_read_file(p, NULL);
    CHECKF(csv != NULL, "%s", p);
    if (!csv) return;
    double score[256];
    int pos[256], pred[256], lab[256], n = 0, seen[2][64] = {{0}};
    char *save = NULL, *line = strtok_r(csv, "\n", &save);
    CHECK(line && strcmp(line, fold_col ? "image,label,prob_dark,prob_bright,predicted,fold"
                                        : "image,label,prob_dark,prob_bright,predicted") == 0);
    while ((line = strtok_r(NULL, "\n", &save)) && n < 256) {
        char img[256], label[32], pr[32];
        double p0, p1;
        int fold, k;
        CHECKF(sscanf(line, "%255[^,],%31[^,],%lf,%lf,%31[^,],%d", img, label, &p0, &p1, pr, &fold) == 5 + fold_col,
               "%s", line);
        CHECK_NEAR(p0 + p1, 1.0, 1e-6);
        int c = strcmp(label, "bright") == 0;
        CHECK(c || strcmp(label, "dark") == 0);
        CHECKF(sscanf(img, "data/%*[a-z]/img%d.png", &k) == 1 && k >= 0 && k < n_ext, "%s", img);
        if (k >= 0 && k < 64) seen[c][k]++;
        score[n] = p1;
        pos[n] = lab[n] = c;
        pred[n] = strcmp(pr, "bright") == 0;
        n++;
    }
    CHECKF(n == 2 * n_ext, "%d rows, want %d", n, 2 * n_ext);
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < n_ext; k++) CHECKF(seen[c][k] == 1, "class %d image %d scored %d times", c, k, seen[c][k]);
    snprintf(p, sizeof p, "%s/metrics.json", dir);
    cJSON *m = read_json(p);
    CHECKF(m != NULL, "%s", p);
    CHECK_NEAR(num(m, "n"), n, 0);
    CHECK_NEAR(num(m, "auroc"), metric_auroc(score, pos, (size_t)n), 1e-6);
    CHECK_NEAR(num(m, "balanced_accuracy"), metric_balanced_accuracy(pred, lab, (size_t)n, 2), 1e-9);
    cJSON_Delete(m);
    free(csv);
}

TEST(test_external_probe_scores_every_sample) {
    const char *d = tl_tmpdir();
    char out[16384], p[800];
    CHECKF(run_external(d, 9, "probe --out %s/probe --label-fraction 0.5,1 --folds 3 --test-frac 0.2", out, sizeof out) == 0,
           "%s", out);
    CHECKF(strstr(out, "e_AUROC") && strstr(out, "external synthetic"), "%s", out);
    for (int f = 0; f < 2; f++)
        for (int k = 0; k < 3; k++) {
            snprintf(p, sizeof p, "%s/probe/frac_%s/fold%d/external", d, f ? "1" : "0.5", k);
            check_predictions(p, 9, 1);
            snprintf(p, sizeof p, "%s/probe/frac_%s/fold%d/external/roc.svg", d, f ? "1" : "0.5", k);
            CHECK(access(p, R_OK) == 0);
        }
    snprintf(p, sizeof p, "%s/probe/results.json", d);
    cJSON *j = read_json(p);
    CHECK(j != NULL);
    const cJSON *ext = cJSON_GetObjectItem(j, "external");
    CHECK(num(ext, "images") == 18);
    /* the mean over folds in results.json is the mean of the fold files */
    double s = 0;
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof p, "%s/probe/frac_1/fold%d/external/metrics.json", d, k);
        cJSON *m = read_json(p);
        s += num(m, "auroc");
        cJSON_Delete(m);
    }
    CHECK_NEAR(num(j, "frac_1_external_auroc_mean"), s / 3, 1e-9);
    CHECK(isfinite(num(j, "frac_1_external_auroc_sd")) && isfinite(num(j, "frac_0.5_external_ece_mean")));
    CHECK(isfinite(num(j, "frac_1_auroc_mean")));   /* the internal test split is still there */
    cJSON_Delete(j);
    snprintf(p, sizeof p, "%s/probe/external_features.npy", d);
    CHECK(access(p, R_OK) == 0);
}

TEST(test_external_finetune_and_eval) {
    const char *d = tl_tmpdir();
    char cmd[4096], out[16384], p[800];
    CHECKF(run_external(d, 7, "finetune --out %s/ft --folds 2 --test-frac 0.2 --epochs 1 --warmup-epochs 0 --batch 16 "
                        "--micro-batch 16", out, sizeof out) == 0, "%s", out);
    CHECKF(strstr(out, "external"), "%s", out);
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/ft/fold%d/external", d, k);
        check_predictions(p, 7, 0);
    }
    snprintf(p, sizeof p, "%s/ft/results.json", d);
    cJSON *j = read_json(p);
    const cJSON *es = cJSON_GetObjectItem(j, "external_summary"), *ts = cJSON_GetObjectItem(j, "summary");
    CHECK(cJSON_IsObject(es) && cJSON_IsObject(ts));
    CHECK(num(cJSON_GetObjectItem(es, "auroc"), "n") == 2);
    const cJSON *f0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "folds"), 0);
    CHECK(num(cJSON_GetObjectItem(f0, "external"), "n") == 14);
    cJSON_Delete(j);

    /* eval --test-task alone: every external sample into OUT/external/, and it matches finetune's */
    snprintf(cmd, sizeof cmd, "./skelex eval --model %s/ft/fold0/best --test-task %s/ext/task.json --data-root %s/ext "
             "--out %s/ev", d, d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    CHECKF(strstr(out, "n=14"), "%s", out);
    snprintf(p, sizeof p, "%s/ev/external/predictions.csv", d);
    CHECK(access(p, R_OK) == 0);
    snprintf(p, sizeof p, "%s/ev/external/metrics.json", d);
    cJSON *a = read_json(p);
    snprintf(p, sizeof p, "%s/ft/fold0/external/metrics.json", d);
    cJSON *b = read_json(p);
    CHECK_NEAR(num(a, "auroc"), num(b, "auroc"), 1e-9);
    CHECK_NEAR(num(a, "n"), 14, 0);
    cJSON_Delete(a);
    cJSON_Delete(b);
    /* beside --task: the test split in OUT, the external set in OUT/external */
    snprintf(cmd, sizeof cmd, "./skelex eval --model %s/ft/fold0/best --task %s/int/task.json --data-root %s/int "
             "--test-frac 0.2 --test-task %s/ext/task.json --test-data-root %s/ext --out %s/ev2", d, d, d, d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    CHECKF(strstr(out, "external:") && strstr(out, "n=14"), "%s", out);
    snprintf(p, sizeof p, "%s/ev2/metrics.json", d);
    CHECK(access(p, R_OK) == 0);
    snprintf(p, sizeof p, "%s/ev2/external", d);
    check_predictions(p, 7, 0);
}

TEST(test_external_label_space_refused) {
    const char *d = tl_tmpdir();
    char cmd[4096], out[16384], p[800];
    CHECK(make_tasks(d, 3) == 0);
    struct { const char *name, *json; } bad[] = {
        {"swapped", "{\"name\": \"swapped\", \"type\": \"binary\", \"image_root\": \"data\", \"class_folders\": [\"bright\", \"dark\"]}"},
        {"multi", "{\"name\": \"multi\", \"type\": \"multiclass\", \"image_root\": \"data\", \"class_folders\": [\"dark\", \"bright\"]}"},
    };
    const char *cmds[3] = {"probe --model %s/m --out %s/o", "finetune --model %s/m --out %s/o --epochs 1",
                           "eval --model %s/m --out %s/o"};
    for (int b = 0; b < 2; b++) {
        snprintf(p, sizeof p, "%s/ext/%s.json", d, bad[b].name);
        CHECK(tl_write_text(p, bad[b].json) == 0);
        for (int c = 0; c < 3; c++) {
            char tail[1024];
            snprintf(tail, sizeof tail, cmds[c], d, d);
            snprintf(cmd, sizeof cmd, "./skelex %s --task %s/int/task.json --data-root %s/int --test-task %s "
                     "--test-data-root %s/ext", tail, d, d, p, d);
            CHECKF(tl_run(cmd, out, sizeof out) == 2, "%s: %s", cmd, out);
            CHECKF(strstr(out, "label spaces differ") && strstr(out, "--test-task"), "%s", out);
            snprintf(p + 700, 100, "%s/o", d);
            CHECKF(access(p + 700, F_OK) != 0, "%s: nothing may be written", cmd);
            snprintf(p, sizeof p, "%s/ext/%s.json", d, bad[b].name);
        }
    }
    /* an unreadable external task is a failure (1), a missing value a usage error (2) */
    snprintf(cmd, sizeof cmd, "./skelex probe --task %s/int/task.json --data-root %s/int --model %s/m --out %s/o "
             "--test-task %s/none.json", d, d, d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 1 && strstr(out, "--test-task"), "%s", out);
    snprintf(cmd, sizeof cmd, "./skelex probe --task %s/int/task.json --model %s/m --out %s/o --test-task", d, d, d);
    CHECK(tl_run(cmd, out, sizeof out) == 2);
    snprintf(cmd, sizeof cmd, "./skelex eval --task %s/int/task.json --model %s/m --out %s/o --test-data-root %s", d, d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 2 && strstr(out, "--test-data-root needs --test-task"), "%s", out);
}

TEST(test_external_check_refuses_shared_images) {
    const char *d = tl_tmpdir();
    char p[700], q[700];
    snprintf(p, sizeof p, "%s/a", d);
    CHECK(tl_synthetic_task(p, 4) == 0);
    snprintf(q, sizeof q, "%s/a/task.json", d);
    task t, e;
    sx_err err;
    CHECK(task_load(q, p, &t, &err) == 0);
    CHECK(task_load(q, p, &e, &err) == 0);
    CHECK(external_check(&t, &e, &err) == -1);
    CHECKF(strstr(err.msg, "shares 8 image file(s)"), "%s", err.msg);
    task_free(&e);
    /* the same images through a symlinked root are the same files */
    snprintf(q, sizeof q, "ln -s '%s/a' '%s/link'", d, d);
    CHECK(system(q) == 0);
    snprintf(p, sizeof p, "%s/link", d);
    snprintf(q, sizeof q, "%s/a/task.json", d);
    CHECK(task_load(q, p, &e, &err) == 0);
    CHECK(external_check(&t, &e, &err) == -1);
    task_free(&e);
    /* a disjoint copy passes */
    snprintf(p, sizeof p, "%s/b", d);
    CHECK(tl_synthetic_task(p, 2) == 0);
    snprintf(q, sizeof q, "%s/b/task.json", d);
    CHECK(task_load(q, p, &e, &err) == 0);
    CHECKF(external_check(&t, &e, &err) == 0, "%s", err.msg);
    size_t *idx = external_indices(&e);
    for (size_t i = 0; i < e.n; i++) CHECK(idx[i] == i);
    free(idx);
    cJSON *info = external_info(&t, &e);
    CHECK(num(info, "images") == 4 && num(info, "patients") == 4);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(info, "class_counts")) == 2);
    CHECK(!cJSON_GetObjectItem(info, "shared_patients"));   /* no patient ids in these tasks */
    cJSON_Delete(info);
    task_free(&e);
    task_free(&t);
}

/* Patients on both sides are counted (the knee ids of task and external set). */
TEST(test_external_shared_patients) {
    const char *d = tl_tmpdir();
    char p[800];
    const char *files[] = {"a/0/1000001L.png", "a/0/1000002L.png", "a/1/1000003R.png",
                           "b/0/1000002R.png", "b/1/1000003L.png", "b/1/1000004L.png"};
    for (size_t i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "mkdir -p %s/%.3s", d, files[i]);
        CHECK(system(p) == 0);
        snprintf(p, sizeof p, "%s/%s", d, files[i]);
        CHECK(tl_write_text(p, "") == 0);
    }
    task t, e;
    sx_err err;
    for (int side = 0; side < 2; side++) {
        snprintf(p, sizeof p, "%s/%c.json", d, side ? 'b' : 'a');
        char json[300];
        snprintf(json, sizeof json, "{\"name\": \"%c\", \"type\": \"binary\", \"image_root\": \"%c\", "
                 "\"class_folders\": [\"0\", \"1\"], \"patient_from\": {\"name_chars\": 7}}", side ? 'b' : 'a', side ? 'b' : 'a');
        CHECK(tl_write_text(p, json) == 0);
        CHECKF(task_load(p, d, side ? &e : &t, &err) == 0, "%s", err.msg);
    }
    CHECK(external_shared_patients(&t, &e) == 2);   /* 1000002 and 1000003 */
    CHECK(external_check(&t, &e, &err) == 0);       /* distinct files: allowed, but reported */
    cJSON *info = external_info(&t, &e);
    CHECK(num(info, "shared_patients") == 2 && num(info, "patients") == 3);
    cJSON_Delete(info);
    task_free(&t);
    task_free(&e);
}

/* The shipped knee train/ -> val/ pair is a valid external test set: same
 * label space, disjoint files and no shared patient (skipped without data). */
TEST(test_external_real_knee_train_val) {
    if (access("../shared/data/knee-kl/val", R_OK) != 0) TEST_SKIP("../shared/data/knee-kl is absent");
    task t, e;
    sx_err err;
    int rc = task_load("tasks/knee_kl_train.json", "../shared/data", &t, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    rc = task_load("tasks/knee_kl_val.json", "../shared/data", &e, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECKF(t.n == 5778 && e.n == 826, "%zu train, %zu val", t.n, e.n);
        CHECKF(external_check(&t, &e, &err) == 0, "%s", err.msg);
        CHECK(external_shared_patients(&t, &e) == 0);
        CHECK(task_patient_count(&t) == 2889 && task_patient_count(&e) == 413);
        /* and the pooled task is not: every val image is one of its files */
        task all;
        CHECK(task_load("tasks/knee_kl.json", "../shared/data", &all, &err) == 0);
        CHECK(external_check(&all, &e, &err) == -1 && strstr(err.msg, "shares 826 image file(s)"));
        task_free(&all);
        task_free(&e);
    }
    task_free(&t);
}
