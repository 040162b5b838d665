/* test_adapt_cli.c: hostile and careless use of `skelex probe`, `finetune`
 * and `eval` (issue 21): every run bounded by `timeout 60`, every error a
 * message and a status (1 failure, 2 usage), never a hang or a silent 0. */
#include "testlib.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The synthetic task and a tiny model in the test's scratch dir. */
static const char *fixture(void) {
    static char dir[600];
    snprintf(dir, sizeof dir, "%s/adapt_cli", tl_tmpdir());
    mkdir(dir, 0755);
    char cmd[2000], out[4096];
    if (tl_synthetic_task(dir, 12) != 0) return NULL;
    snprintf(cmd, sizeof cmd, "timeout 60 ./skelex init --config %s/cfg.json --out %s/m", dir, dir);
    if (tl_run(cmd, out, sizeof out) != 0) { fprintf(stderr, "%s", out); return NULL; }
    return dir;
}

#define FIXTURE(d) const char *d = fixture(); CHECK(d != NULL); if (!d) return

/* Run "timeout 60 OMP_NUM_THREADS=1 ./skelex ARGS" (%s expands to the fixture dir, up to 6 times). */
static int run(char *out, size_t cap, const char *fmt, const char *d) {
    char args[4000], cmd[4200];
    snprintf(args, sizeof args, fmt, d, d, d, d, d, d);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 timeout 60 ./skelex %s", args);
    return tl_run(cmd, out, cap);
}

#define FT "finetune --task %s/task.json --data-root %s --config %s/cfg.json --folds 2 --test-frac 0.2 --epochs 1 " \
           "--warmup-epochs 0 --batch 8 --micro-batch 8 "

TEST(test_adapt_cli_finetune_diverging_lr_fails) {
    FIXTURE(d);
    char out[16384];
    int st = run(out, sizeof out, FT "--epochs 3 --lr 9 --out %s/ft_lr9", d);
    CHECKF(st == 1, "status %d: %s", st, out);
    CHECKF(strstr(out, "diverged") != NULL, "%s", out);
}

TEST(test_adapt_cli_finetune_only_folds_validated) {
    FIXTURE(d);
    char out[16384];
    static const char *bad[] = {"abc", "7", "-1", ",,", "0,0", "1x", "2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char fmt[1000], tail[200];
        snprintf(tail, sizeof tail, "--only-folds '%s' --out %%s/ft_only%zu", bad[i], i);
        snprintf(fmt, sizeof fmt, "%s%s", FT, tail);
        int st = run(out, sizeof out, fmt, d);
        CHECKF(st == 2, "--only-folds %s: status %d: %s", bad[i], st, out);
        CHECKF(strstr(out, "--only-folds") != NULL, "--only-folds %s: %s", bad[i], out);
    }
    /* a valid list runs just that fold */
    int st = run(out, sizeof out, FT "--only-folds 1 --out %s/ft_only_ok", d);
    CHECKF(st == 0, "status %d: %s", st, out);
    char p[700];
    snprintf(p, sizeof p, "%s/ft_only_ok/fold1/test/metrics.json", d);
    CHECK(access(p, R_OK) == 0);
    snprintf(p, sizeof p, "%s/ft_only_ok/fold0", d);
    CHECK(access(p, F_OK) != 0);
}

TEST(test_adapt_cli_finetune_refuses_existing_out) {
    FIXTURE(d);
    char out[16384], p[700];
    int st = run(out, sizeof out, FT "--out %s/ft_twice", d);
    CHECKF(st == 0, "status %d: %s", st, out);
    st = run(out, sizeof out, FT "--out %s/ft_twice", d);
    CHECKF(st == 1 && strstr(out, "already holds results") && strstr(out, "--force"), "status %d: %s", st, out);
    snprintf(p, sizeof p, "%s/ft_twice/results.json", d);
    CHECK(access(p, R_OK) == 0);   /* untouched */
    st = run(out, sizeof out, FT "--force --out %s/ft_twice", d);
    CHECKF(st == 0, "status %d: %s", st, out);
}

TEST(test_adapt_cli_numbers_range_checked) {
    FIXTURE(d);
    char out[16384];
    static const char *cases[] = {
        FT "--lr nan --out %s/r", FT "--lr -1 --out %s/r", FT "--lr 1e10 --out %s/r", FT "--epochs -3 --out %s/r",
        FT "--epochs nan --out %s/r", FT "--wd inf --out %s/r", FT "--label-fraction 0 --out %s/r",
        FT "--layer-decay 0 --out %s/r",
        FT "--min-lr 1 --lr 0.1 --out %s/r",
        "probe --task %s/task.json --data-root %s --model %s/m --out %s/r --lr 0",
        "probe --task %s/task.json --data-root %s --model %s/m --out %s/r --iters 5",
        "probe --task %s/task.json --data-root %s --model %s/m --out %s/r --folds 1",
        "probe --task %s/task.json --data-root %s --model %s/m --out %s/r --test-frac nan",
        "eval --task %s/task.json --data-root %s --model %s/m --out %s/r --batch 0",
        "eval --task %s/task.json --data-root %s --model %s/m --out %s/r --seed -1",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = run(out, sizeof out, cases[i], d);
        CHECKF(st == 2 && strstr(out, "skelex"), "case %zu (%s): status %d: %s", i, cases[i], st, out);
    }
    char p[700];
    snprintf(p, sizeof p, "%s/r", d);
    CHECK(access(p, F_OK) != 0);   /* nothing was started */
}

#define PROBE "probe --task %s/task.json --data-root %s --model %s/m --folds 2 --test-frac 0.2 --iters 20 "

TEST(test_adapt_cli_probe_bad_fraction_is_usage_error) {
    FIXTURE(d);
    char out[16384], p[700];
    static const char *bad[] = {"0", "1.5", "abc", "0.5,", ",", "0.5,0.5", "nan"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char fmt[1000], tail[200];
        snprintf(tail, sizeof tail, "--label-fraction '%s' --out %%s/pr_bad", bad[i]);
        snprintf(fmt, sizeof fmt, "%s%s", PROBE, tail);
        int st = run(out, sizeof out, fmt, d);
        CHECKF(st == 2 && strstr(out, "--label-fraction"), "'%s': status %d: %s", bad[i], st, out);
    }
    snprintf(p, sizeof p, "%s/pr_bad", d);
    CHECK(access(p, F_OK) != 0);   /* refused before any work */
}

/* No file named *.tmp.* and no empty file under dir. */
static int no_partial_files(const char *dir) {
    char cmd[800], out[4096];
    snprintf(cmd, sizeof cmd, "find '%s' \\( -name '*.tmp.*' -o -type f -empty \\) -print", dir);
    return tl_run(cmd, out, sizeof out) == 0 && out[0] == 0;
}

TEST(test_adapt_cli_probe_write_failure_fails) {
    FIXTURE(d);
    char out[16384], p[700];
    snprintf(p, sizeof p, "%s/pr_wf/results.json", d);   /* a folder where the results file goes */
    char mk[800];
    snprintf(mk, sizeof mk, "mkdir -p '%s'", p);
    CHECK(system(mk) == 0);
    int st = run(out, sizeof out, PROBE "--out %s/pr_wf", d);
    CHECKF(st == 1, "status %d: %s", st, out);
    CHECKF(strstr(out, "results.json: write failed") != NULL, "%s", out);
    snprintf(p, sizeof p, "%s/pr_wf", d);
    CHECK(no_partial_files(p));
}

TEST(test_adapt_cli_probe_writes_fold_outputs) {
    FIXTURE(d);
    char out[16384], p[700];
    int st = run(out, sizeof out, PROBE "--label-fraction 0.5,1 --out %s/pr_ok", d);
    CHECKF(st == 0, "status %d: %s", st, out);
    for (int f = 0; f < 2; f++)
        for (int k = 0; k < 2; k++) {
            snprintf(p, sizeof p, "%s/pr_ok/frac_%s/fold%d/predictions.csv", d, f ? "1" : "0.5", k);
            size_t n = 0;
            char *csv = tl_read_file(p, &n);
            CHECKF(csv != NULL, "%s", p);
            if (!csv) continue;
            CHECKF(strncmp(csv, "image,label,prob_dark,prob_bright,predicted,fold\n", 49) == 0, "%.80s", csv);
            /* every row names its fold; 20% of 24 images are the test split */
            int rows = 0, fold_ok = 1;
            char want[16];
            snprintf(want, sizeof want, ",%d\n", k);
            for (char *l = strchr(csv, '\n'); l && l[1]; l = strchr(l + 1, '\n')) {
                rows++;
                char *e = strchr(l + 1, '\n');
                fold_ok &= e && e - 2 >= l && strncmp(e - 2, want, 3) == 0;
            }
            CHECKF(rows >= 4 && rows <= 6 && fold_ok, "%d rows, fold column ok %d", rows, fold_ok);
            free(csv);
            snprintf(p, sizeof p, "%s/pr_ok/frac_%s/fold%d/metrics.json", d, f ? "1" : "0.5", k);
            char *mj = tl_read_file(p, NULL);
            CHECKF(mj && strstr(mj, "\"auroc\"") && strstr(mj, "\"fold\":"), "%s", p);
            free(mj);
        }
    snprintf(p, sizeof p, "%s/pr_ok", d);
    CHECK(no_partial_files(p));
}

/* All weights NaN: overwrite the safetensors data section with 0xFF bytes. */
static int poison_weights(const char *file) {
    size_t n = 0;
    unsigned char *b = tl_read_file(file, &n);
    if (!b || n < 8) { free(b); return -1; }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    if (8 + hl > n) { free(b); return -1; }
    memset(b + 8 + hl, 0xFF, n - 8 - hl);
    int rc = tl_write_file(file, b, n);
    free(b);
    return rc;
}

TEST(test_adapt_cli_probe_nan_model_fails) {
    FIXTURE(d);
    char out[16384], p[700], cmd[2000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/mnan' && cp -r '%s/m' '%s/mnan'", d, d, d);
    CHECK(system(cmd) == 0);
    snprintf(p, sizeof p, "%s/mnan/model.safetensors", d);
    CHECK(poison_weights(p) == 0);
    int st = run(out, sizeof out, "probe --task %s/task.json --data-root %s --model %s/mnan --folds 2 --iters 20 "
                 "--out %s/pr_nan", d);
    CHECKF(st == 1, "status %d: %s", st, out);
    CHECKF(strstr(out, "finite") || strstr(out, "NaN"), "%s", out);
}

TEST(test_adapt_cli_eval_images_and_class_mismatch) {
    FIXTURE(d);
    char out[16384], p[700];
    int st = run(out, sizeof out, FT "--only-folds 0 --out %s/ft_ev", d);
    CHECKF(st == 0, "status %d: %s", st, out);
    /* unlabelled: a folder of images -> predictions.csv, one row per image, empty label column */
    st = run(out, sizeof out, "eval --model %s/ft_ev/fold0/best --images %s/data --out %s/ev_img", d);
    CHECKF(st == 0 && strstr(out, "n=24"), "status %d: %s", st, out);
    snprintf(p, sizeof p, "%s/ev_img/predictions.csv", d);
    char *csv = tl_read_file(p, NULL);
    CHECKF(csv && strncmp(csv, "image,label,prob_dark,prob_bright,predicted\n", 44) == 0, "%.80s", csv ? csv : "");
    int rows = 0;
    for (char *l = csv ? strchr(csv, '\n') : NULL; l && l[1]; l = strchr(l + 1, '\n')) rows++;
    CHECK(rows == 24);
    free(csv);
    /* a task whose classes are not the model's is refused with both descriptions */
    snprintf(p, sizeof p, "%s/other.json", d);
    tl_write_text(p, "{\"name\": \"other\", \"type\": \"binary\", \"image_root\": \"data\", "
                     "\"class_folders\": [\"bright\", \"dark\"]}");
    st = run(out, sizeof out, "eval --model %s/ft_ev/fold0/best --task %s/other.json --data-root %s --out %s/ev_bad", d);
    CHECKF(st == 1 && strstr(out, "class names must match"), "status %d: %s", st, out);
}
