/* test_mpirun.c: `mpirun -np 2 ./skelex pretrain` against one process with
 * the same global batch, on synthetic images and a tiny model: the losses of
 * every step and the final weights agree to 1e-5 relative (plain and
 * ZeRO-1), a run stopped and resumed on 2 ranks ends bit-identical to the
 * uninterrupted one, a resume on 1 rank continues, and SIGKILL of one rank
 * ends the job in bounded time with the last checkpoint loadable. Skipped
 * when mpirun is absent or ./skelex was built without MPI. Also pretraining
 * on tar shards (one process, and 2 ranks when available). */
#include "io/checkpoint.h"
#include "io/image.h"
#include "testlib.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MPIRUN "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 " \
               "OMP_NUM_THREADS=1 mpirun --oversubscribe -np 2 "

/* The inputs of every run here: dir/data (synthetic radiographs, 2 x
 * per_class) and dir/cfg.json (a 32 px MAE), from the shared test helper. */
static void inputs(const char *dir, int per_class) { CHECK(tl_synthetic_task(dir, per_class) == 0); }

/* The loss column (the third) of RUN/log.csv, after its header line. */
static int read_losses(const char *run, double *v, int cap) {
    char path[700];
    snprintf(path, sizeof path, "%s/log.csv", run);
    char *text = tl_read_file(path, NULL), *save = NULL;
    int n = 0;
    for (char *row = text ? strtok_r(text, "\n", &save) : NULL; row && n < cap; row = strtok_r(NULL, "\n", &save)) {
        long step;
        double epoch, loss;
        if (sscanf(row, "%ld,%lf,%lf", &step, &epoch, &loss) == 3) v[n++] = loss;
    }
    free(text);
    return n;
}

/* Relative L2 distance of two runs' final weights, or -1 when one does not load. */
static double weight_dist(const char *run_a, const char *run_b) {
    char pa[700], pb[700];
    snprintf(pa, sizeof pa, "%s/checkpoint", run_a);
    snprintf(pb, sizeof pb, "%s/checkpoint", run_b);
    mae_model a, b;
    sx_err err;
    memset(&a, 0, sizeof a); memset(&b, 0, sizeof b);
    if (checkpoint_load(pa, &a, &err)) { fprintf(stderr, "    %s\n", err.msg); return -1; }
    if (checkpoint_load(pb, &b, &err)) { fprintf(stderr, "    %s\n", err.msg); mae_free(&a); return -1; }
    double num = 0, den = 0;
    if (a.n_floats != b.n_floats) num = den = -1;
    else
        for (size_t i = 0; i < a.n_floats; i++) {
            double d = (double)a.params[i] - b.params[i];
            num += d * d; den += (double)b.params[i] * b.params[i];
        }
    mae_free(&a); mae_free(&b);
    return den > 0 ? sqrt(num / den) : -1;
}

static int have_mpi(void) {
    char out[4096];
    if (tl_run("command -v mpirun", out, sizeof out) != 0) return 0;
    if (access("./skelex", X_OK)) return 0;
    /* a binary built without MPI refuses to run as one of several ranks */
    int rc = tl_run(MPIRUN "./skelex pretrain --out /nonexistent/x --data /nonexistent", out, sizeof out);
    return !(rc != 0 && strstr(out, "built without MPI"));
}

#define ARGS "--config %s/cfg.json --data %s/data --steps 6 --batch 6 --lr 2e-3 --warmup-steps 2 --log-every 1 " \
             "--save-every 3 --panel-every 100 --no-augment --threads 1 --loader-threads 1"

static void compare(const char *d, const char *a, const char *b, double tol, const char *what) {
    char ra[700], rb[700];
    snprintf(ra, sizeof ra, "%s/%s", d, a);
    snprintf(rb, sizeof rb, "%s/%s", d, b);
    double la[16], lb[16];
    int na = read_losses(ra, la, 16), nb = read_losses(rb, lb, 16);
    CHECKF(na == 6 && nb == 6, "%s: %d and %d log rows", what, na, nb);
    for (int i = 0; i < na && i < nb; i++)
        CHECKF(fabs(la[i] - lb[i]) <= tol * fabs(lb[i]) + 1e-6, "%s: step %d loss %.6f vs %.6f", what, i + 1, la[i], lb[i]);
    double w = weight_dist(ra, rb);
    CHECKF(w >= 0 && w <= tol, "%s: final weights differ by %.3g relative", what, w);
}

TEST(test_mpirun_two_ranks_match_one_process) {
    if (!have_mpi()) TEST_SKIP("mpirun absent or skelex built without MPI");
    const char *d = tl_tmpdir();
    char cmd[4096], out[32768];
    inputs(d, 10);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 ./skelex pretrain " ARGS " --out %s/one", d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    snprintf(cmd, sizeof cmd, MPIRUN "./skelex pretrain " ARGS " --out %s/two", d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    CHECKF(strstr(out, "2 ranks (MPI)") != NULL, "%s", out);
    compare(d, "two", "one", 1e-5, "2 ranks vs 1");
    snprintf(cmd, sizeof cmd, MPIRUN "./skelex pretrain " ARGS " --zero1 --out %s/zero", d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    compare(d, "zero", "one", 1e-5, "2 ranks ZeRO-1 vs 1");

    // stopped after 3 steps and resumed on 2 ranks: exactly the uninterrupted run
    snprintf(cmd, sizeof cmd, MPIRUN "./skelex pretrain " ARGS " --stop-after 3 --out %s/res", d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    snprintf(cmd, sizeof cmd, MPIRUN "./skelex pretrain --resume --out %s/res", d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    compare(d, "res", "two", 0, "resumed on 2 ranks vs uninterrupted");
    // and on one rank: allowed, said, close
    snprintf(cmd, sizeof cmd, MPIRUN "./skelex pretrain " ARGS " --stop-after 3 --out %s/res1", d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 ./skelex pretrain --resume --out %s/res1", d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    CHECKF(strstr(out, "run of 2 rank(s) on 1") != NULL, "%s", out);
    compare(d, "res1", "one", 1e-5, "2 ranks resumed on 1 vs 1");
}

TEST(test_mpirun_killed_rank_stops_the_job) {
    if (!have_mpi()) TEST_SKIP("mpirun absent or skelex built without MPI");
    const char *d = tl_tmpdir();
    char cmd[4096], out[32768];
    inputs(d, 6);
    /* Start, wait for a first checkpoint, SIGKILL the last rank (a child of
     * our mpirun, by its pid), and time how long the job takes to end. */
    char cwd[600];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    snprintf(cmd, sizeof cmd,
             "(" MPIRUN "%s/skelex pretrain --config %s/cfg.json --data %s/data --steps 3000 --batch 4 "
             "--save-every 5 --log-every 1000 --panel-every 100000 --no-augment --threads 1 --out %s/run "
             "> %s/job.log 2>&1; echo $? > %s/job.rc) & "
             "for i in $(seq 300); do [ -e %s/run/checkpoint ] && break; sleep 0.1; done; sleep 0.5; "
             "R=$(pgrep -f '^%s/skelex pretrain .*--out %s/run' | sort -n | tail -1); echo \"rank pid $R\"; "
             "[ -n \"$R\" ] && kill -9 $R; "
             "T0=$(date +%%s); for i in $(seq 300); do [ -e %s/job.rc ] && break; sleep 0.1; done; T1=$(date +%%s); "
             "wait; echo \"rc=$(cat %s/job.rc) secs=$((T1-T0))\"; tail -5 %s/job.log",
             cwd, d, d, d, d, d, d, cwd, d, d, d, d);
    tl_run(cmd, out, sizeof out);
    int jrc = -1, secs = -1;
    const char *r = strstr(out, "rc=");
    if (r) sscanf(r, "rc=%d secs=%d", &jrc, &secs);
    CHECKF(jrc > 0 && secs >= 0 && secs <= 30, "job status %d after %d s: %s", jrc, secs, out);
    // the last checkpoint loads, and the run continues from it
    char run[700];
    snprintf(run, sizeof run, "%s/run", d);
    CHECKF(weight_dist(run, run) == 0, "the checkpoint does not load");
    const char *k = strstr(out, "rank pid ");
    CHECKF(k && atoi(k + 9) > 0, "no rank was killed: %s", out);
    snprintf(cmd, sizeof cmd, MPIRUN "./skelex pretrain --resume --out %s/run --stop-after 2", d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    CHECKF(strstr(out, "resuming") != NULL && strstr(out, "stopped at step") != NULL, "%s", out);
}

/* pretrain --data DIR_OF_SHARDS: one process, stopped and resumed, ends
 * bit-identical to the uninterrupted run; an undecodable sample is skipped
 * with a line; on 2 ranks (when mpirun is there) the same holds. */
TEST(test_pretrain_on_shards_resumes_exactly) {
    const char *d = tl_tmpdir();
    char cmd[4096], out[32768];
    inputs(d, 8);
    tl_write_text(tl_path("data/broken.png"), "not an image at all");
    snprintf(cmd, sizeof cmd, "./skelex shard --data %s/data --out %s/sh --shard-mb 0.01", d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0 && strstr(out, "17 images in"), "%s", out);
#define SARGS "--config %s/cfg.json --data %s/sh --steps 6 --batch 4 --lr 2e-3 --warmup-steps 2 --log-every 1 " \
              "--save-every 3 --no-augment --threads 1 --shuffle-buffer 5"
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 ./skelex pretrain " SARGS " --out %s/a", d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    CHECKF(strstr(out, "sample") && strstr(out, "skipped"), "no line for the undecodable sample: %s", out);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 ./skelex pretrain " SARGS " --stop-after 3 --out %s/b", d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 ./skelex pretrain --resume --out %s/b", d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    compare(d, "b", "a", 0, "shards: resumed vs uninterrupted");
    if (!have_mpi()) TEST_SKIP("the 2-rank part: mpirun absent or skelex built without MPI");
    snprintf(cmd, sizeof cmd, MPIRUN "./skelex pretrain " SARGS " --out %s/c", d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    snprintf(cmd, sizeof cmd, MPIRUN "./skelex pretrain " SARGS " --stop-after 3 --out %s/e", d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    snprintf(cmd, sizeof cmd, MPIRUN "./skelex pretrain --resume --out %s/e", d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    compare(d, "e", "c", 0, "shards on 2 ranks: resumed vs uninterrupted");
}
