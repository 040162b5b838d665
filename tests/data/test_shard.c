/* test_shard.c: tar shards: every file comes back byte-identical with its
 * JSON metadata, shards are split by size and are valid ustar (GNU tar
 * lists them), a corrupt member is skipped with a warning and the rest read,
 * a truncated shard yields what precedes the cut, the shuffle buffer gives a
 * permutation that depends only on the seed, ranks get disjoint shards, and
 * the index is checked. */
#include "core/json.h"
#include "data/data.h"
#include "data/shard.h"
#include "testlib.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int n; char last[1024]; } warn_log;
static void on_warn(void *ctx, const char *msg) {
    warn_log *w = ctx;
    w->n++;
    snprintf(w->last, sizeof w->last, "%s", msg);
}

/* n files of varying sizes (some over one tar block) in dir/src, named f%02d.png. */
static void make_files(const char *dir, int n) {
    char p[700];
    snprintf(p, sizeof p, "mkdir -p %s/src", dir);
    CHECK(system(p) == 0);
    for (int k = 0; k < n; k++) {
        size_t len = 100 + (size_t)k * 397;
        uint8_t *b = malloc(len);
        for (size_t i = 0; i < len; i++) b[i] = (uint8_t)(i * 31 + k * 7);
        snprintf(p, sizeof p, "%s/src/f%02d.png", dir, k);
        CHECK(tl_write_file(p, b, len) == 0);
        free(b);
    }
}

/* Pack dir/src into dir/NAME with shards of at most max bytes. */
static int pack(const char *dir, const char *name, uint64_t max, int *shards) {
    char src[700], out[700];
    snprintf(src, sizeof src, "%s/src", dir);
    snprintf(out, sizeof out, "%s/%s", dir, name);
    dataset ds;
    dataset_init(&ds);
    sx_err err;
    CHECK(dataset_add(&ds, src, &err) == 0);
    long long written = 0, skipped = 0;
    int rc = shard_pack(&ds, out, max, 1, NULL, NULL, &written, &skipped, shards, &err);
    CHECKF(rc == 0, "%s", err.msg);
    dataset_free(&ds);
    return (int)written;
}

/* Read every sample of one epoch; returns the count, keys into keys[] (as numbers). */
static int read_epoch(shard_stream *s, int *keys, int cap, const char *dir, int check_bytes) {
    shard_sample smp;
    sx_err err;
    int n = 0, rc;
    while ((rc = shard_stream_next(s, &smp, &err)) == 1) {
        int k = atoi(smp.key);
        if (n < cap) keys[n] = k;
        n++;
        if (check_bytes) {
            // the key is the packing position; the JSON names the size and extension
            cJSON *j = smp.json ? sx_json_parse(smp.json, strlen(smp.json), "sample json", &err) : NULL;
            CHECKF(j != NULL, "sample %s: JSON missing or invalid", smp.key);
            const cJSON *sz = cJSON_GetObjectItemCaseSensitive(j, "size"), *ext = cJSON_GetObjectItemCaseSensitive(j, "ext"),
                        *h = cJSON_GetObjectItemCaseSensitive(j, "source_hash");
            CHECK(cJSON_IsNumber(sz) && (size_t)sz->valuedouble == smp.len);
            CHECK(cJSON_IsString(ext) && !strcmp(ext->valuestring, "png") && !strcmp(smp.ext, "png"));
            CHECK(cJSON_IsString(h) && strlen(h->valuestring) == 16);
            cJSON_Delete(j);
            // the bytes are one of the sources, by length (all lengths differ)
            int src = (int)((smp.len - 100) / 397);
            char p[700];
            snprintf(p, sizeof p, "%s/src/f%02d.png", dir, src);
            size_t len = 0;
            uint8_t *want = tl_read_file(p, &len);
            CHECKF(want && len == smp.len && !memcmp(want, smp.data, len), "sample %s differs from %s", smp.key, p);
            free(want);
        }
        shard_sample_free(&smp);
    }
    CHECKF(rc == 0, "%s", err.msg);
    return n;
}

TEST(test_shard_round_trip_byte_identical) {
    const char *d = tl_tmpdir();
    make_files(d, 12);
    int shards = 0;
    CHECK(pack(d, "sh", 8 * 1024, &shards) == 12);
    CHECKF(shards >= 3, "%d shards for ~30 KB at 8 KB each", shards);
    sx_err err;
    shard_index ix;
    char p[700];
    snprintf(p, sizeof p, "%s/sh", d);
    CHECK(shard_is_dir(p) && !shard_is_dir(d));
    if (shard_index_load(p, &ix, &err)) { CHECKF(0, "%s", err.msg); return; }
    CHECK(ix.n == shards && ix.total == 12);
    shard_stream *s = shard_stream_open(&ix, 0, 1, 3, 1, NULL, NULL, &err);
    int keys[64], seen[12] = {0};
    int n = read_epoch(s, keys, 64, d, 1);
    CHECK(n == 12);
    for (int i = 0; i < n && i < 64; i++) if (keys[i] >= 0 && keys[i] < 12) seen[keys[i]]++;
    for (int i = 0; i < 12; i++) CHECKF(seen[i] == 1, "key %d seen %d times", i, seen[i]);
    CHECK(shard_stream_epoch(s) == 1 && shard_stream_skipped(s) == 0);
    CHECK(read_epoch(s, keys, 64, d, 0) == 12);  // the next epoch, again everything
    shard_stream_close(s);
    // GNU tar reads the shards
    char cmd[900], out[4096];
    snprintf(cmd, sizeof cmd, "tar tf %s/sh/%s", d, ix.names[0]);
    CHECKF(tl_run(cmd, out, sizeof out) == 0 && strstr(out, ".png") && strstr(out, ".json"), "%s", out);
    // a second pack into the same folder is refused
    shard_writer *w = shard_writer_open(p, 1 << 20, &err);
    CHECK(w == NULL && strstr(err.msg, "already holds shards"));
    shard_index_free(&ix);
}

TEST(test_shard_shuffle_buffer_deterministic_permutation) {
    const char *d = tl_tmpdir();
    make_files(d, 20);
    int shards;
    pack(d, "sh", 6 * 1024, &shards);
    sx_err err;
    shard_index ix;
    char p[700];
    snprintf(p, sizeof p, "%s/sh", d);
    if (shard_index_load(p, &ix, &err)) { CHECKF(0, "%s", err.msg); return; }
    int a[20], b[20], c[20], plain[20];
    shard_stream *s1 = shard_stream_open(&ix, 0, 1, 42, 8, NULL, NULL, &err), *s2 = shard_stream_open(&ix, 0, 1, 42, 8, NULL, NULL, &err),
                 *s3 = shard_stream_open(&ix, 0, 1, 43, 8, NULL, NULL, &err), *s4 = shard_stream_open(&ix, 0, 1, 42, 1, NULL, NULL, &err);
    CHECK(read_epoch(s1, a, 20, d, 0) == 20 && read_epoch(s2, b, 20, d, 0) == 20);
    CHECK(read_epoch(s3, c, 20, d, 0) == 20 && read_epoch(s4, plain, 20, d, 0) == 20);
    CHECK(memcmp(a, b, sizeof a) == 0);   // same seed, same order
    CHECK(memcmp(a, c, sizeof a) != 0);   // another seed, another order
    CHECK(memcmp(a, plain, sizeof a) != 0);  // the buffer mixes across members
    int seen[20] = {0};
    for (int i = 0; i < 20; i++) if (a[i] >= 0 && a[i] < 20) seen[a[i]]++;
    for (int i = 0; i < 20; i++) CHECK(seen[i] == 1);
    shard_stream_close(s1); shard_stream_close(s2); shard_stream_close(s3); shard_stream_close(s4);
    // two ranks: disjoint shards that cover the set
    int r0[20], r1[20], all[20] = {0};
    shard_stream *q0 = shard_stream_open(&ix, 0, 2, 42, 4, NULL, NULL, &err), *q1 = shard_stream_open(&ix, 1, 2, 42, 4, NULL, NULL, &err);
    int n0 = read_epoch(q0, r0, 20, d, 0), n1 = read_epoch(q1, r1, 20, d, 0);
    CHECK(n0 > 0 && n1 > 0 && n0 + n1 == 20);
    for (int i = 0; i < n0; i++) all[r0[i]]++;
    for (int i = 0; i < n1; i++) all[r1[i]]++;
    for (int i = 0; i < 20; i++) CHECK(all[i] == 1);
    shard_stream_close(q0); shard_stream_close(q1);
    CHECK(shard_stream_open(&ix, 0, ix.n + 1, 1, 1, NULL, NULL, &err) == NULL);  // more ranks than shards
    shard_index_free(&ix);
}

TEST(test_shard_corrupt_member_skipped_and_truncation) {
    const char *d = tl_tmpdir();
    make_files(d, 6);
    int shards;
    pack(d, "sh", 1 << 20, &shards);  // one shard
    CHECK(shards == 1);
    sx_err err;
    shard_index ix;
    char p[700];
    snprintf(p, sizeof p, "%s/sh", d);
    if (shard_index_load(p, &ix, &err)) { CHECKF(0, "%s", err.msg); return; }
    snprintf(p, sizeof p, "%s/sh/%s", d, ix.names[0]);
    size_t len;
    uint8_t *tar = tl_read_file(p, &len);
    // the second sample's image header: the third member header
    size_t h2 = 0;
    int headers = 0;
    for (size_t o = 0; o + 512 <= len; o += 512)
        if (!memcmp(tar + o + 257, "ustar", 5) && ++headers == 3) { h2 = o; break; }
    CHECK(h2 > 0);
    tar[h2 + 10] ^= 0x55;  // breaks the checksum
    CHECK(tl_write_file(p, tar, len) == 0);
    warn_log w = {0};
    shard_stream *s = shard_stream_open(&ix, 0, 1, 0, 1, on_warn, &w, &err);
    int keys[16];
    int n = read_epoch(s, keys, 16, d, 1);
    CHECKF(n == 5, "%d samples after one corrupt member", n);
    CHECK(w.n >= 1 && shard_stream_skipped(s) >= 1);
    CHECKF(strstr(w.last, "corrupt") || strstr(w.last, "no image"), "%s", w.last);
    shard_stream_close(s);
    // cut in the middle of the last samples: what precedes comes back, with a line
    CHECK(tl_write_file(p, tar, len / 2) == 0);
    w.n = 0;
    s = shard_stream_open(&ix, 0, 1, 0, 1, on_warn, &w, &err);
    n = read_epoch(s, keys, 16, d, 1);
    CHECKF(n >= 1 && n < 5, "%d samples from half a shard", n);
    CHECKF(w.n >= 1 && strstr(w.last, "truncated"), "%d warnings, last: %s", w.n, w.last);
    shard_stream_close(s);
    free(tar);
    shard_index_free(&ix);
    // a hostile index is an error, not a crash
    snprintf(p, sizeof p, "%s/sh/index.json", d);
    tl_write_text(p, "{\"format\": \"skelex-shards\", \"version\": 1, \"shards\": [{\"name\": \"../x\", \"samples\": 1}]}");
    snprintf(p, sizeof p, "%s/sh", d);
    CHECK(shard_index_load(p, &ix, &err) == -1 && strstr(err.msg, "plain file"));
}
