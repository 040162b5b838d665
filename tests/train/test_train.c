/* test_train.c: `skelex pretrain` end to end on synthetic radiographs: the
 * loss falls, a resumed run repeats the uninterrupted trajectory exactly, a
 * kill -9 during saving never breaks the last checkpoint, bad inputs are
 * clear errors, and undecodable files are skipped. */
#include "io/checkpoint.h"
#include "io/image.h"
#include "testlib.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* n synthetic "radiographs": a bright bar (bone) at a varying angle on a dark background */
static void make_images(const char *dir, int n) {
    char p[600];
    snprintf(p, sizeof p, "mkdir -p %s", dir);
    CHECK(system(p) == 0);
    uint8_t px[48 * 40];
    for (int k = 0; k < n; k++) {
        double a = 0.3 * k, c = cos(a), s = sin(a);
        for (int y = 0; y < 40; y++)
            for (int x = 0; x < 48; x++) {
                double u = (x - 24) * c + (y - 20) * s, v = -(x - 24) * s + (y - 20) * c;
                px[y * 48 + x] = (uint8_t)(20 + ((fabs(u) < 18 && fabs(v) < 4) ? 180 : 0) + (x + y) % 7);
            }
        snprintf(p, sizeof p, "%s/img%03d.png", dir, k);
        sx_err err;
        CHECK(png_write_u8(p, px, 48, 40, 1, &err) == 0);
    }
}

static const char *CFG = "{\"image_size\": 32, \"patch_size\": 8, \"hidden_size\": 32, \"num_hidden_layers\": 2,"
                         " \"num_attention_heads\": 2, \"intermediate_size\": 64, \"decoder_hidden_size\": 32,"
                         " \"decoder_num_hidden_layers\": 1, \"decoder_num_attention_heads\": 2,"
                         " \"decoder_intermediate_size\": 64}";

/* The inputs of a pretraining run in the scratch dir: data/ with n images
 * and cfg.json (CFG); their paths go to data and cfg (600 bytes each). */
static void pretrain_inputs(int n, char data[600], char cfg[600]) {
    snprintf(data, 600, "%s/data", tl_tmpdir());
    snprintf(cfg, 600, "%s/cfg.json", tl_tmpdir());
    make_images(data, n);
    tl_write_text(cfg, CFG);
}

/* Read column `col` (0-based) of RUN/log.csv into v; returns the row count. */
static int read_log(const char *run, int col, double *v, int cap) {
    char p[600], line[256];
    snprintf(p, sizeof p, "%s/log.csv", run);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    int n = 0;
    while (fgets(line, sizeof line, f) && n < cap) {
        if (line[0] == 's') continue;
        char *t = line;
        for (int c = 0; c < col && t; c++) { t = strchr(t, ','); if (t) t++; }
        if (t) v[n++] = atof(t);
    }
    fclose(f);
    return n;
}

TEST(test_pretrain_loss_decreases) {
    const char *d = tl_tmpdir();
    char data[600], cfg[600], cmd[2048], out[16384];
    pretrain_inputs(24, data, cfg);
    snprintf(cmd, sizeof cmd, "timeout -s KILL 300 env OMP_NUM_THREADS=1 ./skelex pretrain --data %s --config %s --out %s/run --steps 80 "
             "--batch 8 --lr 2e-3 --warmup-steps 5 --log-every 20 --save-every 40 --panel-every 40 --no-augment", data, cfg, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    char run[600];
    snprintf(run, sizeof run, "%s/run", d);
    double loss[100];
    int n = read_log(run, 2, loss, 100);
    CHECK(n == 80);
    double first = 0, last = 0;
    for (int i = 0; i < 10; i++) { first += loss[i] / 10; last += loss[n - 10 + i] / 10; }
    CHECKF(last < 0.7 * first, "loss did not fall: first 10 steps %.4f, last 10 %.4f", first, last);
    // the run directory holds what a person needs
    char p[700];
    const char *files[] = {"checkpoint/config.json", "checkpoint/model.safetensors", "checkpoint/training_state.bin",
                           "loss.svg", "panels/step_00000080.png", "run.json"};
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s/%s", run, files[i]);
        CHECKF(access(p, R_OK) == 0, "missing %s", p);
    }
    sx_err err;
    mae_model m;
    snprintf(p, sizeof p, "%s/checkpoint", run);
    CHECK(checkpoint_load(p, &m, &err) == 0);
    mae_free(&m);
}

TEST(test_pretrain_resume_is_exact) {
    const char *d = tl_tmpdir();
    char data[600], cfg[600], cmd[2048], out[16384];
    pretrain_inputs(10, data, cfg);
    const char *common = "--steps 8 --batch 4 --lr 1e-3 --warmup-steps 2 --log-every 1 --save-every 3 --panel-every 100 --seed 3";
    snprintf(cmd, sizeof cmd, "timeout -s KILL 300 env OMP_NUM_THREADS=2 ./skelex pretrain --data %s --config %s --out %s/a %s", data, cfg, d, common);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    snprintf(cmd, sizeof cmd, "timeout -s KILL 300 env OMP_NUM_THREADS=2 ./skelex pretrain --data %s --config %s --out %s/b %s --stop-after 5",
             data, cfg, d, common);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    CHECK(strstr(out, "--resume") != NULL);
    snprintf(cmd, sizeof cmd, "timeout -s KILL 300 env OMP_NUM_THREADS=2 ./skelex pretrain --resume --out %s/b", d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    char ra[600], rb[600];
    snprintf(ra, sizeof ra, "%s/a", d);
    snprintf(rb, sizeof rb, "%s/b", d);
    double la[20], lb[20], ea[20], eb[20];
    int na = read_log(ra, 2, la, 20), nb = read_log(rb, 2, lb, 20);
    read_log(ra, 3, ea, 20);
    read_log(rb, 3, eb, 20);
    CHECK(na == 8 && nb == 8);
    for (int i = 0; i < 8 && i < na && i < nb; i++) {
        CHECKF(la[i] == lb[i], "step %d: loss %.6f uninterrupted vs %.6f resumed", i + 1, la[i], lb[i]);
        CHECK(ea[i] == eb[i]);  // learning rate too
    }
    // and the final weights are identical
    sx_err err;
    mae_model a, b;
    char p[700];
    snprintf(p, sizeof p, "%s/checkpoint", ra);
    CHECK(checkpoint_load(p, &a, &err) == 0);
    snprintf(p, sizeof p, "%s/checkpoint", rb);
    CHECK(checkpoint_load(p, &b, &err) == 0);
    CHECK(a.n_floats == b.n_floats && memcmp(a.params, b.params, a.n_floats * 4) == 0);
    mae_free(&a);
    mae_free(&b);
}

TEST(test_pretrain_kill_during_save_keeps_checkpoint) {
    const char *d = tl_tmpdir();
    char data[600], cfg[600], run[600], cmd[2048], out[16384];
    snprintf(run, sizeof run, "%s/run", d);
    pretrain_inputs(8, data, cfg);
    // save at every step, and kill -9 at staggered moments; each time the
    // checkpoint link must point at a complete, loadable checkpoint
    int loaded = 0;
    for (int k = 0; k < 6; k++) {
        pid_t pid = fork();
        if (pid == 0) {
            const char *resume = k ? "--resume" : "";
            snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 exec ./skelex pretrain --data %s --config %s --out %s %s "
                     "--steps 100000 --batch 4 --save-every 1 --log-every 1000 --panel-every 100000 >/dev/null 2>&1",
                     data, cfg, run, resume);
            execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
            _exit(127);
        }
        char link[700];
        snprintf(link, sizeof link, "%s/checkpoint", run);
        // the first run is killed only once it has saved (a loaded machine
        // may take longer than any fixed delay to get there)
        for (int w = 0; k == 0 && w < 400 && access(link, F_OK) != 0; w++) usleep(50000);
        usleep((useconds_t)(300000 + 137000 * k));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        char p[700];
        snprintf(p, sizeof p, "%s/checkpoint", run);
        if (access(p, F_OK) != 0) continue;  // killed before the first save
        sx_err err;
        mae_model m;
        int ok = checkpoint_load(p, &m, &err) == 0;
        CHECKF(ok, "after kill %d: %s", k, err.msg);
        if (ok) { loaded++; mae_free(&m); }
        snprintf(p, sizeof p, "%s/checkpoint/training_state.bin", run);
        CHECK(access(p, R_OK) == 0);
    }
    CHECK(loaded >= 3);
    // and the run resumes from what was left
    snprintf(cmd, sizeof cmd, "timeout -s KILL 300 env OMP_NUM_THREADS=1 ./skelex pretrain --resume --out %s --stop-after 1", run);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
}

TEST(test_pretrain_bad_inputs) {
    const char *d = tl_tmpdir();
    char cmd[2048], out[16384], empty[600];
    snprintf(cmd, sizeof cmd, "timeout -s KILL 300 ./skelex pretrain --data %s/nowhere --out %s/r --steps 1", d, d);
    CHECK(tl_run(cmd, out, sizeof out) == 1 && strstr(out, "nowhere"));
    snprintf(empty, sizeof empty, "%s/empty", d);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && echo hello > %s/readme.txt && timeout -s KILL 300 ./skelex pretrain --data %s --out %s/r2 --steps 1",
             empty, empty, empty, d);
    CHECK(tl_run(cmd, out, sizeof out) == 1 && strstr(out, "empty"));
    CHECK(tl_run("timeout -s KILL 300 ./skelex pretrain --out /tmp/x", out, sizeof out) == 2 && strstr(out, "--data"));
    CHECK(tl_run("timeout -s KILL 300 ./skelex pretrain --help", out, sizeof out) == 0 && strstr(out, "--resume") && strstr(out, "--accum"));
    // an unwritable output is a clear error
    snprintf(cmd, sizeof cmd, "timeout -s KILL 300 ./skelex pretrain --data %s --out /proc/skelex-run --steps 1", empty);
    CHECK(tl_run(cmd, out, sizeof out) == 1 && strstr(out, "/proc/skelex-run"));
}

TEST(test_pretrain_skips_corrupt_files) {
    const char *d = tl_tmpdir();
    char data[600], cfg[600], cmd[2048], out[16384], p[700];
    pretrain_inputs(6, data, cfg);
    snprintf(p, sizeof p, "%s/zz_corrupt.png", data);
    tl_write_text(p, "this is not a png at all");
    snprintf(cmd, sizeof cmd, "timeout -s KILL 300 env OMP_NUM_THREADS=1 ./skelex pretrain --data %s --config %s --out %s/run --steps 3 --batch 7",
             data, cfg, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    CHECK(strstr(out, "zz_corrupt.png") != NULL);
    snprintf(p, sizeof p, "%s/run/skipped.txt", d);
    FILE *f = fopen(p, "r");
    CHECK(f != NULL);
    if (f) {
        char line[1024] = "";
        CHECK(fgets(line, sizeof line, f) && strstr(line, "zz_corrupt.png"));
        fclose(f);
    }
}
