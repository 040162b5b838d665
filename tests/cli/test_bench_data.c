/* test_bench_data.c: `skelex bench data` on a folder of tar shards: it runs
 * the shard loader (loader=shards), measures a positive rate, and decodes as
 * many images as the folder the shards were packed from (an undecodable file
 * counted apart, in both); a shard folder mixed with other --data is a usage
 * error. */
#include "hx.h"

/* The number after "\nkey=" (or at the start) in out; -1 when absent. */
static double field(const char *out, const char *key) {
    char want[64];
    size_t n = (size_t)snprintf(want, sizeof want, "%s=", key);
    for (const char *p = out; (p = strstr(p, want)); p += n)
        if (p == out || p[-1] == '\n') return atof(p + n);
    return -1;
}

static int run60(char *out, size_t cap, const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "timeout -s KILL 60 env OMP_NUM_THREADS=1 ./skelex %s", args);
    int rc = tl_run(cmd, out, cap);
    return rc < 0 ? HX_TIMED_OUT : rc;
}

TEST(bench_data_shards_vs_folder) {
    const char *d = tl_tmpdir();
    char imgs[700], shards[700], args[2048], out[16384];
    snprintf(imgs, sizeof imgs, "%s/imgs", d);
    snprintf(shards, sizeof shards, "%s/shards", d);
    hx_images(imgs, 12);
    char bad[800];
    snprintf(bad, sizeof bad, "%s/zz_bad.png", imgs);
    CHECK(tl_write_text(bad, "\x89PNG\r\n\x1a\n not really") == 0);

    snprintf(args, sizeof args, "shard --data %s --out %s --shard-mb 0.01", imgs, shards);
    int rc = run60(out, sizeof out, args);
    CHECKF(rc == 0 && strstr(out, "13 images in"), "shard: rc %d: %s", rc, out);

    snprintf(args, sizeof args, "bench data --data %s --size 32 --batch 4 --threads 1 --seconds 1", imgs);
    rc = run60(out, sizeof out, args);
    CHECKF(rc == 0 && strstr(out, "loader=folder\n"), "folder: rc %d: %s", rc, out);
    double f_decoded = field(out, "decoded"), f_bad = field(out, "undecodable");
    CHECKF(f_decoded == 12 && f_bad == 1 && field(out, "pass_complete") == 1, "folder: %s", out);

    snprintf(args, sizeof args, "bench data --data %s --size 32 --batch 4 --threads 1 --seconds 1", shards);
    rc = run60(out, sizeof out, args);
    CHECKF(rc == 0 && strstr(out, "loader=shards\n") && !strstr(out, "loader=folder"), "shards: rc %d: %s", rc, out);
    CHECKF(field(out, "images") == 13, "shards: %s", out);
    CHECKF(field(out, "decode_images_per_s") > 0 && field(out, "augment_images_per_s") > 0 &&
           field(out, "loader_images_per_s") > 0 && field(out, "first_batch_s") >= 0, "shards: %s", out);
    CHECKF(field(out, "decoded") == f_decoded && field(out, "undecodable") == f_bad && field(out, "pass_complete") == 1,
           "shards: decoded %g undecodable %g, the folder %g %g: %s", field(out, "decoded"), field(out, "undecodable"),
           f_decoded, f_bad, out);
    CHECKF(field(out, "decode_failed") > 0 && field(out, "skipped") > 0, "shards: the bad sample is counted apart: %s", out);

    // a shard folder is the only --data, as for pretrain
    snprintf(args, sizeof args, "bench data --data %s --data %s --seconds 1", shards, imgs);
    rc = run60(out, sizeof out, args);
    CHECKF(rc == 2 && strstr(out, "only --data"), "mixed: rc %d: %s", rc, out);
}
