/* test_rundir.c: the run directory's parsers and housekeeping in process
 * (issue 21, items 7, 8, 9, 15, 18): run.json and training_state.bin from
 * hostile bytes, log.csv reloaded past 1 MiB with torn lines dropped, the
 * lock, and the cleanup of crash leftovers. */
#include "train/rundir.h"
#include "train/runstate.h"
#include "testlib.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int parse_run(const char *text, sx_err *err) {
    train_opts o;
    train_opts_default(&o);
    long total = 0;
    run_plan plan;
    cJSON *keep = NULL;
    int rc = runstate_parse_json(text, strlen(text), "run.json", &o, &total, &plan, &keep, err);
    cJSON_Delete(keep);
    return rc;
}

TEST(rundir_run_json_roundtrip_and_hostile) {
    train_opts o;
    train_opts_default(&o);
    o.data[0] = "a/b";
    o.n_data = 1;
    o.batch = 7;
    o.seed = 11;
    o.warmup_steps = 3;
    run_plan plan = {3, 2, 1234}, back;
    cJSON *j = runstate_to_json(&o, 99, &plan);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    train_opts r;
    train_opts_default(&r);
    long total = 0;
    cJSON *keep = NULL;
    sx_err err;
    CHECKF(runstate_parse_json(text, strlen(text), "run.json", &r, &total, &back, &keep, &err) == 0, "%s", err.msg);
    CHECK(r.n_data == 1 && !strcmp(r.data[0], "a/b") && r.batch == 7 && r.seed == 11 && total == 99);
    CHECK(back.threads == 3 && back.shares == 2 && back.images == 1234);
    cJSON_Delete(keep);
    free(text);
    static const struct { const char *json, *want; } bad[] = {
        {"{\"data\": [\"x\"], \"total_steps\": 5} trailing", "text after the value"},
        {"{\"data\": [\"x\"], \"total_steps\": 5, \"batch\": 4, \"batch\": 8}", "appears twice"},
        {"{\"data\": [\"x\"], \"total_steps\": 5, \"batch\": 1e18}", "\"batch\""},
        {"{\"data\": [\"x\"], \"total_steps\": 5, \"batch\": 2.5}", "\"batch\""},
        {"{\"data\": [\"x\"], \"total_steps\": -5}", "\"total_steps\""},
        {"{\"data\": [\"x\"], \"total_steps\": 1e999}", "out of range"},
        {"{\"data\": [\"x\"]}", "total_steps"},
        {"{\"data\": \"x\", \"total_steps\": 5}", "\"data\""},
        {"{\"data\": [], \"total_steps\": 5}", "lists no data"},
        {"{\"data\": [3], \"total_steps\": 5}", "\"data\""},
        {"{\"data\": [\"x\"], \"total_steps\": 5, \"seed\": -1}", "\"seed\""},
        {"{\"data\": [\"x\"], \"total_steps\": 5, \"warmup_steps\": 1e300}", "\"warmup_steps\""},
        {"{\"data\": [\"x\"], \"total_steps\": 5, \"crop_min\": 0.9, \"crop_max\": 0.5}", "crop_min"},
        {"{\"data\": [\"x\"], \"total_steps\": 5, \"bf16\": 1}", "\"bf16\""},
        {"[1, 2]", "not a JSON object"},
        {"", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        CHECKF(parse_run(bad[i].json, &err) == -1 && strstr(err.msg, bad[i].want) && !strncmp(err.msg, "run.json", 8),
               "%s -> '%s'", bad[i].json, err.msg);
    }
}

TEST(rundir_state_bytes) {
    enum { N = 5 };
    float m[N] = {1, 2, 3, 4, 5}, v[N] = {.1f, .2f, .3f, .4f, .5f}, m2[N], v2[N];
    state_header h = {"SKXTRAIN", 1, 0, 40, 40, 320, N}, h2;
    uint8_t b[sizeof h + 8 * N + 8];
    uint64_t sum = runstate_checksum(&h, m, v, N);
    memcpy(b, &h, sizeof h);
    memcpy(b + sizeof h, m, sizeof m);
    memcpy(b + sizeof h + sizeof m, v, sizeof v);
    memcpy(b + sizeof h + 2 * sizeof m, &sum, 8);
    sx_err err;
    CHECKF(runstate_parse_state(b, sizeof b, N, "s", &h2, m2, v2, &err) == 0, "%s", err.msg);
    CHECK(h2.step == 40 && h2.position == 320 && !memcmp(m, m2, sizeof m) && !memcmp(v, v2, sizeof v));
    CHECK(runstate_parse_state(b, sizeof b - 1, N, "s", &h2, m2, v2, &err) == -1 && strstr(err.msg, "truncated"));
    CHECK(runstate_parse_state(b, sizeof b, N + 1, "s", &h2, m2, v2, &err) == -1 && strstr(err.msg, "parameters"));
    b[sizeof h + 3] ^= 1;
    CHECK(runstate_parse_state(b, sizeof b, N, "s", &h2, m2, v2, &err) == -1 && strstr(err.msg, "checksum"));
    h.step = -1;
    memcpy(b, &h, sizeof h);
    CHECK(runstate_parse_state(b, sizeof b, N, "s", &h2, m2, v2, &err) == -1 && strstr(err.msg, "negative"));
    CHECK(runstate_parse_state(b, 3, N, "s", &h2, m2, v2, &err) == -1 && strstr(err.msg, "not a skelex"));
}

static void count_row(void *ctx, long step, double loss, double lr) {
    (void)loss; (void)lr;
    long *c = ctx;
    if (step == c[1] + 1) c[0]++;  /* in order, no gaps */
    c[1] = step;
}

TEST(rundir_log_reload_past_1mib_drops_torn) {
    const char *p = tl_path("log.csv");
    FILE *f = fopen(p, "w");
    fputs("step,epoch,loss,lr,img_per_s\n", f);
    const long rows = 40000;  /* about 1.5 MB: the old reload kept 1 MiB */
    for (long s = 1; s <= rows; s++) fprintf(f, "%ld,%.4f,%.6f,%.6g,%.3f\n", s, s / 100.0, 1.0 / s, 1e-4, 123.456);
    fputs("40001,400.0100,0.5", f);  /* torn by a kill */
    fclose(f);
    long c[2] = {0, 0};
    int dropped = -1;
    sx_err err;
    CHECKF(runlog_reload(p, 39000, count_row, c, &dropped, &err) == 0, "%s", err.msg);
    CHECK(c[0] == 39000 && c[1] == 39000 && dropped == 1);
    size_t n;
    char *text = tl_read_file(p, &n);
    CHECK(text && n > (1u << 20));
    const char *last = text ? strrchr(text, '\n') : NULL;
    CHECK(last && last[1] == 0);
    CHECK(text && strstr(text, "\n39000,") && !strstr(text, "\n39001,"));
    free(text);
    // rows appended after the reload are whole and on a line of their own
    run_log l;
    CHECK(runlog_open(&l, p, &err) == 0);
    runlog_row(&l, 39001, 1, 0.25, 1e-4, 10);
    CHECK(runlog_flush(&l, 1, &err) == 0);
    runlog_close(&l);
    c[0] = c[1] = 0;
    CHECK(runlog_reload(p, 1L << 40, count_row, c, &dropped, &err) == 0);
    CHECK(c[0] == 39001 && dropped == 0);
    // a row glued to a torn one is dropped, never read as a wrong step
    tl_write_text(p, "step,epoch,loss,lr,img_per_s\n1,0.1,0.5,1e-4,3\n2,0.2,0.43,0.1,0.4,1e-4,3\n");
    c[0] = c[1] = 0;
    CHECK(runlog_reload(p, 10, count_row, c, &dropped, &err) == 0 && c[0] == 1 && dropped == 1);
    // a missing log is no error
    c[0] = 0;
    CHECK(runlog_reload(tl_path("none.csv"), 10, count_row, c, &dropped, &err) == 0 && c[0] == 0);
}

TEST(rundir_lock_names_the_holder) {
    const char *run = tl_tmpdir();
    sx_err err;
    int fd = rundir_lock(run, &err);
    CHECKF(fd >= 0, "%s", err.msg);
    char want[64];
    snprintf(want, sizeof want, "(pid %ld)", (long)getpid());
    CHECKF(rundir_lock(run, &err) == -1 && strstr(err.msg, "in use") && strstr(err.msg, want), "%s", err.msg);
    rundir_unlock(fd);
    fd = rundir_lock(run, &err);
    CHECKF(fd >= 0, "after unlock: %s", err.msg);
    rundir_unlock(fd);
}

TEST(rundir_clean_removes_crash_leftovers_only) {
    const char *run = tl_tmpdir();
    char p[700], keep[700];
    const char *dirs[] = {"checkpoint-00000010", "checkpoint-00000020", "checkpoint-00000030.tmp", "elsewhere"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", run, dirs[i]);
        mkdir(p, 0755);
        snprintf(p, sizeof p, "%s/%s/f", run, dirs[i]);
        tl_write_text(p, "x");
    }
    snprintf(p, sizeof p, "%s/checkpoint", run);
    CHECK(symlink("checkpoint-00000020", p) == 0);
    // a link left by an interrupted swap: removed, never followed
    snprintf(p, sizeof p, "%s/checkpoint.link.tmp", run);
    CHECK(symlink("elsewhere", p) == 0);
    int saved = tl_stderr_begin(tl_path("clean.txt"));
    int n = rundir_clean(run);
    tl_stderr_end(saved);
    CHECK(n == 3);
    snprintf(keep, sizeof keep, "%s/checkpoint-00000020/f", run);
    CHECK(access(keep, F_OK) == 0);
    snprintf(keep, sizeof keep, "%s/elsewhere/f", run);
    CHECK(access(keep, F_OK) == 0);
    snprintf(p, sizeof p, "%s/checkpoint-00000010", run);
    CHECK(access(p, F_OK) != 0);
    snprintf(p, sizeof p, "%s/checkpoint-00000030.tmp", run);
    CHECK(access(p, F_OK) != 0);
    char *log = tl_read_file(tl_path("clean.txt"), NULL);
    CHECK(log && strstr(log, "orphaned") && strstr(log, "interrupted save"));
    free(log);
}
