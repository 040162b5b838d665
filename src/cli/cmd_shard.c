/* cmd_shard.c: `skelex shard`: image files -> WebDataset-style tar shards. */
#include "cli/cli.h"
#include "data/data.h"
#include "data/shard.h"
#include <stdio.h>
#include <string.h>

static const char *HELP =
    "usage: skelex shard --data PATH [--data PATH ...] --out DIR [--shard-mb M] [--seed S]\n"
    "\n"
    "Pack radiographs into WebDataset-style POSIX tar shards for pretraining at\n"
    "scale: `skelex pretrain --data DIR` then streams them (each rank its own\n"
    "shards, mixed by a shuffle buffer) instead of opening every file.\n"
    "Each PATH is a directory (scanned recursively), an image or a list file, as\n"
    "for pretrain. DIR receives shard-000000.tar, ... and index.json; each sample\n"
    "is KEY.EXT (the file's bytes as they are) and KEY.json (source path hash,\n"
    "size, extension).\n"
    "\n"
    "  --data PATH    images to pack (repeatable)\n"
    "  --out DIR      output directory (must not hold an index.json)\n"
    "  --shard-mb M   largest shard size in MiB (default 256; fractions allowed)\n"
    "  --seed S       the order the files are packed in is drawn from S (default 0)\n"
    "\n"
    "Files that cannot be read are skipped with a line each.\n"
    "exit status: 0 written, 1 failure (nothing readable, write error), 2 usage\n";

static void print_warning(void *ctx, const char *msg) {
    (void)ctx;
    fprintf(stderr, "skelex shard: warning: %s (skipped)\n", msg);
}

int cmd_shard(int argc, char **argv) {
    const char *data[64], *out = NULL;
    int n_data = 0;
    long seed = 0;
    double mb = 256;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) { fputs(HELP, stdout); return 0; }
        else if (!strcmp(a, "--data")) {
            if (n_data == 64) return cli_usage_error("shard", "at most 64 --data");
            data[n_data++] = cli_value(argc, argv, &i);
        }
        else if (!strcmp(a, "--out")) out = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--shard-mb")) mb = cli_double(a, cli_value(argc, argv, &i), 0.01, 1 << 16);
        else if (!strcmp(a, "--seed")) seed = cli_long(a, cli_value(argc, argv, &i), 0, 0x7fffffffL);
        else return cli_usage_error("shard", "unknown option '%s'", a);
    }
    if (!out) return cli_usage_error("shard", "--out DIR is required");
    if (!n_data) return cli_usage_error("shard", "give at least one --data PATH");
    sx_err err;
    dataset ds;
    dataset_init(&ds);
    for (int i = 0; i < n_data; i++)
        if (dataset_add(&ds, data[i], &err)) { fprintf(stderr, "skelex shard: %s\n", err.msg); dataset_free(&ds); return 1; }
    long long written, skipped;
    int shards;
    double t0 = sx_now();
    int rc = shard_pack(&ds, out, (uint64_t)(mb * 1048576.0), (uint64_t)seed, print_warning, NULL, &written, &skipped, &shards, &err);
    dataset_free(&ds);
    if (rc) { fprintf(stderr, "skelex shard: %s\n", err.msg); return 1; }
    printf("%lld images in %d shard(s) in %s (%lld skipped), %.1f s\n", written, shards, out, skipped, sx_now() - t0);
    return 0;
}
