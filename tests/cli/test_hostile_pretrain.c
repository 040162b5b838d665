/* test_hostile_pretrain.c: pretrain, init and bench data as a hostile or
 * careless user drives them (issue 21, items 7-9, 14-18): every run under
 * `timeout`, asserting the exit status and the message. */
#include "hx.h"
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* dir/cfg.json and n images in dir/data. */
static void inputs(const char *d, int n) {
    char p[700];
    snprintf(p, sizeof p, "%s/cfg.json", d);
    tl_write_text(p, HX_CFG);
    snprintf(p, sizeof p, "%s/data", d);
    hx_images(p, n);
}

/* Start a long pretrain on d/data into d/RUN in the background; its pid. */
static pid_t start_long(const char *d, const char *run, const char *log) {
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "exec env OMP_NUM_THREADS=1 ./skelex pretrain --data %s/data --config %s/cfg.json --out %s/%s "
             "--steps 1000000 --batch 2 --save-every 1000000 --log-every 100000 --loader-threads 1 > %s/%s 2>&1",
             d, d, d, run, d, log);
    pid_t pid = fork();
    if (pid == 0) { execl("/bin/sh", "sh", "-c", cmd, (char *)NULL); _exit(127); }
    return pid;
}

/* Wait until the run announces itself on stderr (d/LOG has "pretrain: "),
 * which it does once its lock is held and its signal handlers are set; at
 * most 20 s. */
static int wait_started(const char *d, const char *log) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s", d, log);
    for (int i = 0; i < 400; i++) {
        char *text = tl_read_file(p, NULL);
        int up = text && strstr(text, "pretrain: ");
        free(text);
        if (up) return 1;
        usleep(50000);
    }
    return 0;
}

static int wait_status(pid_t pid) {
    int st = 0;
    for (int i = 0; i < 400; i++) {  /* 20 s */
        if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return HX_TIMED_OUT;
}

TEST(hostile_pretrain_signals_lock_and_status) {
    const char *d = tl_tmpdir();
    inputs(d, 6);
    char out[16384], p[700];
    int sigs[2] = {SIGINT, SIGTERM}, want[2] = {130, 143};
    for (int k = 0; k < 2; k++) {
        char run[32], log[32];
        snprintf(run, sizeof run, "run%d", k);
        snprintf(log, sizeof log, "log%d.txt", k);
        pid_t pid = start_long(d, run, log);
        CHECK(wait_started(d, log));
        if (k == 0) {  // a second process on the same run directory is refused, fresh or resumed
            int rc = hx_run(out, sizeof out, "pretrain --data %s/data --config %s/cfg.json --out %s/%s --steps 2", d, d, d, run);
            CHECKF(rc == 1 && hx_one_line(out, "in use by another skelex process (pid "), "rc %d: %s", rc, out);
            rc = hx_run(out, sizeof out, "pretrain --resume --out %s/%s", d, run);
            CHECKF(rc == 1 && strstr(out, "in use by another"), "rc %d: %s", rc, out);
        }
        kill(pid, sigs[k]);
        int rc = wait_status(pid);
        snprintf(p, sizeof p, "%s/%s", d, log);
        char *text = tl_read_file(p, NULL);
        CHECKF(rc == want[k], "signal %d: status %d: %s", sigs[k], rc, text ? text : "");
        CHECK(text && strstr(text, k ? "by SIGTERM" : "by SIGINT") && strstr(text, "checkpoint is saved"));
        free(text);
        snprintf(p, sizeof p, "%s/%s/checkpoint/training_state.bin", d, run);
        CHECK(access(p, F_OK) == 0);
    }
    // the interrupted run resumes: the lock was released, every logged row is whole
    int rc = hx_run(out, sizeof out, "pretrain --resume --out %s/run0 --stop-after 3", d);
    CHECKF(rc == 0 && strstr(out, "resuming"), "rc %d: %s", rc, out);
}

TEST(hostile_pretrain_resume_leftovers_and_missing_data) {
    const char *d = tl_tmpdir();
    inputs(d, 8);
    char out[16384], p[700];
    int rc = hx_run(out, sizeof out, "pretrain --data %s/data --config %s/cfg.json --out %s/run --steps 12 --batch 2 "
                    "--save-every 4 --stop-after 8", d, d, d);
    CHECKF(rc == 0, "%s", out);
    // a crash's leftovers, a torn log row, and two images gone
    snprintf(p, sizeof p, "%s/run/checkpoint-00000004", d);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/run/checkpoint-00000012.tmp", d);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/run/log.csv", d);
    FILE *f = fopen(p, "a");
    fputs("9,1.0,0.4", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/data/img000.png", d);
    unlink(p);
    snprintf(p, sizeof p, "%s/data/img001.png", d);
    unlink(p);
    rc = hx_run(out, sizeof out, "pretrain --resume --out %s/run --threads 3", d);
    CHECKF(rc == 0, "%s", out);
    CHECKF(strstr(out, "checkpoint-00000004 (an orphaned checkpoint") && strstr(out, "checkpoint-00000012.tmp (left by"),
           "%s", out);
    CHECKF(strstr(out, "dropped 1 torn"), "%s", out);
    CHECKF(strstr(out, "holds 6 images, the run started with 8 (2 missing)"), "%s", out);
    CHECKF(strstr(out, "resuming with 3 threads, the run used 1") && strstr(out, "no longer bit-exact"), "%s", out);
    snprintf(p, sizeof p, "%s/run/checkpoint-00000004", d);
    CHECK(access(p, F_OK) != 0);
    // the log: steps 1..12 once each, every line whole
    snprintf(p, sizeof p, "%s/run/log.csv", d);
    char *text = tl_read_file(p, NULL);
    int rows = 0, ok = text != NULL;
    for (char *l = text ? strchr(text, '\n') : NULL; l && l[1]; l = strchr(l + 1, '\n')) {
        long step = strtol(l + 1, NULL, 10);
        ok = ok && step == ++rows;
    }
    CHECKF(ok && rows == 12, "%d rows: %s", rows, text ? text : "");
    free(text);
    // a run.json with text after it, then with a key twice, then a cut state
    snprintf(p, sizeof p, "%s/run/run.json", d);
    char *rj = tl_read_file(p, NULL);
    char *hostile = malloc(strlen(rj ? rj : "") + 64);
    sprintf(hostile, "%s\n{}", rj ? rj : "");
    tl_write_text(p, hostile);
    rc = hx_run(out, sizeof out, "pretrain --resume --out %s/run --steps 14", d);
    CHECKF(rc == 1 && hx_one_line(out, "run.json: not valid JSON (text after the value"), "rc %d: %s", rc, out);
    sprintf(hostile, "{\"batch\": 3, %s", rj ? rj + 1 : "");
    tl_write_text(p, hostile);
    rc = hx_run(out, sizeof out, "pretrain --resume --out %s/run --steps 14", d);
    CHECKF(rc == 1 && hx_one_line(out, "\"batch\" appears twice"), "rc %d: %s", rc, out);
    tl_write_text(p, rj ? rj : "");
    free(hostile);
    free(rj);
    snprintf(p, sizeof p, "%s/run/checkpoint/training_state.bin", d);
    CHECK(truncate(p, 100) == 0);
    rc = hx_run(out, sizeof out, "pretrain --resume --out %s/run --steps 14", d);
    CHECKF(rc == 1 && strstr(out, "training_state.bin: 100 bytes") && strstr(out, "truncated or corrupt"), "rc %d: %s", rc, out);
}

TEST(hostile_pretrain_data_gone_mid_run_saves) {
    const char *d = tl_tmpdir();
    inputs(d, 6);
    pid_t pid = start_long(d, "run", "log.txt");
    CHECK(wait_started(d, "log.txt"));
    char cmd[800];
    snprintf(cmd, sizeof cmd, "rm -rf %s/data", d);
    CHECK(system(cmd) == 0);
    int rc = wait_status(pid);
    char p[700];
    snprintf(p, sizeof p, "%s/log.txt", d);
    char *text = tl_read_file(p, NULL);
    CHECKF(rc == 1 && text && strstr(text, "the data could not be read at step") && strstr(text, "is saved: continue with --resume"),
           "status %d: %s", rc, text ? text : "");
    free(text);
    snprintf(p, sizeof p, "%s/run/checkpoint/training_state.bin", d);
    CHECK(access(p, F_OK) == 0);
}

TEST(hostile_pretrain_numbers_and_environment) {
    const char *d = tl_tmpdir();
    inputs(d, 2);
    char out[16384];
    static const char *bad[] = {"--mask-ratio 0", "--mask-ratio -0.5", "--mask-ratio nan", "--epochs nan", "--epochs -1",
                                "--lr -1", "--lr nan", "--lr inf", "--batch 0", "--steps 1e3", "--seed -4",
                                "--warmup-steps -2", "--flip 2", "--crop-scale 0.5,0.2", "--threads 0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = hx_run(out, sizeof out, "pretrain --data %s/data --config %s/cfg.json --out %s/r %s", d, d, d, bad[i]);
        CHECKF(rc == 2 && hx_one_line(out, "expect"), "%s: rc %d: %s", bad[i], rc, out);
    }
    static const char *other[] = {"init --config %s/cfg.json --out %s/r --seed -1",
                                  "init --config %s/cfg.json --out %s/r --seed 1.5",
                                  "bench data --data %s/data --seconds nan%s",
                                  "bench data --data %s/data --size 0%s",
                                  "bench data --data %s/data --batch -3%s",
                                  "bench train --config %s/cfg.json --steps 0%s"};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        int rc = hx_run(out, sizeof out, other[i], d, i < 2 ? d : "");
        CHECKF(rc == 2 && strstr(out, "expects"), "%s: rc %d: %s", other[i], rc, out);
    }
    static const char *env[] = {"OMP_NUM_THREADS=abc", "OMP_NUM_THREADS=0", "SKELEX_SPLIT=2", "SKELEX_PROFILE=0",
                                "SKELEX_NO_PIN=yes"};
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++) {
        char cmd[1400];
        snprintf(cmd, sizeof cmd, "timeout -s KILL 20 env %s ./skelex pretrain --data %s/data --out %s/r", env[i], d, d);
        int rc = tl_run(cmd, out, sizeof out);
        CHECKF(rc == 2 && strstr(out, env[i]), "%s: rc %d: %s", env[i], rc, out);
    }
    char p[700];
    snprintf(p, sizeof p, "%s/r", d);
    CHECK(access(p, F_OK) != 0);  /* nothing was started */
}

TEST(hostile_init_refuses_overwrite) {
    const char *d = tl_tmpdir();
    inputs(d, 0);
    char out[16384], p[700];
    int rc = hx_run(out, sizeof out, "init --config %s/cfg.json --out %s/m --seed 1", d, d);
    CHECKF(rc == 0, "%s", out);
    snprintf(p, sizeof p, "%s/m/model.safetensors", d);
    size_t n1, n2;
    char *before = tl_read_file(p, &n1);
    rc = hx_run(out, sizeof out, "init --config %s/cfg.json --out %s/m --seed 2", d, d);
    CHECKF(rc == 1 && hx_one_line(out, "already holds a model; use --force"), "rc %d: %s", rc, out);
    char *same = tl_read_file(p, &n2);
    CHECK(before && same && n1 == n2 && !memcmp(before, same, n1));
    free(same);
    rc = hx_run(out, sizeof out, "init --config %s/cfg.json --out %s/m --seed 2 --force", d, d);
    CHECKF(rc == 0, "%s", out);
    char *after = tl_read_file(p, &n2);
    CHECK(after && n1 == n2 && memcmp(before, after, n1));
    free(before);
    free(after);
    // a config.json with text after its object is refused, in one line
    snprintf(p, sizeof p, "%s/trail.json", d);
    tl_write_text(p, "{\"image_size\": 32}\n{\"image_size\": 64}\n");
    rc = hx_run(out, sizeof out, "init --config %s --out %s/m3", p, d);
    CHECKF(rc == 1 && hx_one_line(out, "trail.json: config: not valid JSON (text after the value at line 2, column 1)"),
           "rc %d: %s", rc, out);
}

TEST(hostile_long_path_keeps_its_reason) {
    char path[2200] = "";
    size_t n = 0;
    for (int k = 0; k < 8; k++) {  /* 8 components of 200: about 1600 bytes, past the old 512 */
        n += (size_t)snprintf(path + n, sizeof path - n, "/%0200d", k);
    }
    char out[16384];
    int rc = hx_run(out, sizeof out, "info %s", path);
    CHECKF(rc == 1 && strlen(out) > 1600 && hx_one_line(out, "7: not a model directory (expected config.json + model.safetensors)"), "rc %d: %s", rc, out);
}

TEST(hostile_bench_data_counts_only_decoded) {
    const char *d = tl_tmpdir();
    char out[16384], p[700];
    snprintf(p, sizeof p, "%s/bad", d);
    mkdir(p, 0755);
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof p, "%s/bad/x%d.png", d, k);
        tl_write_text(p, "\x89PNG\r\n\x1a\n not really");
    }
    int rc = hx_run(out, sizeof out, "bench data --data %s/bad --size 32 --batch 2 --threads 1 --seconds 0.2", d);
    CHECKF(rc == 1 && strstr(out, "decode_images_per_s=0.0") && strstr(out, "no file of the data could be decoded"),
           "rc %d: %s", rc, out);
    CHECK(!strstr(out, "loader_images_per_s"));
}
