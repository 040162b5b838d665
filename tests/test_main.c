/* test_main.c: runs every registered test, optionally filtered by a
 * substring given as argv[1], and prints "N passed, N failed, N skipped". */
#include "testlib.h"
#include "io/image.h"
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int tl_failures, tl_skipped;

typedef struct { const char *name; void (*fn)(void); } tl_test;
static tl_test tl_tests[512];
static int tl_ntests;
static char tl_dir[256];

void tl_register(const char *name, void (*fn)(void)) {
    if (tl_ntests < (int)(sizeof tl_tests / sizeof tl_tests[0]))
        tl_tests[tl_ntests++] = (tl_test){name, fn};
}

const char *tl_tmpdir(void) { return tl_dir; }

int tl_run(const char *cmd, char *out, size_t cap) {
    size_t len = strlen(cmd) + 8;
    char *full = malloc(len);
    snprintf(full, len, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    free(full);
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    while (fgetc(p) != EOF) {}  /* drain, so the command never blocks on a full pipe */
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int tl_synthetic_task(const char *dir, int per_class) {
    char p[700];
    for (int c = 0; c < 2; c++) {
        snprintf(p, sizeof p, "mkdir -p '%s/data/%s'", dir, c ? "bright" : "dark");
        if (system(p) != 0) return -1;
        for (int k = 0; k < per_class; k++) {
            uint8_t px[40 * 40];
            for (int i = 0; i < 40 * 40; i++) {
                int x = i % 40, y = i / 40, dx = x - 20 - k % 5, dy = y - 20 + k % 3;
                int disk = dx * dx + dy * dy < (c ? 150 : 30);   /* class 1: a large disk */
                px[i] = (uint8_t)(30 + (disk ? 180 : 0) + (i * 7 + k) % 13);
            }
            snprintf(p, sizeof p, "%s/data/%s/img%02d.png", dir, c ? "bright" : "dark", k);
            sx_err err;
            if (png_write_u8(p, px, 40, 40, 1, &err)) return -1;
        }
    }
    snprintf(p, sizeof p, "%s/task.json", dir);
    if (tl_write_text(p, "{\"name\": \"synthetic\", \"type\": \"binary\", \"image_root\": \"data\", "
                         "\"class_folders\": [\"dark\", \"bright\"]}")) return -1;
    snprintf(p, sizeof p, "%s/cfg.json", dir);
    return tl_write_text(p, "{\"image_size\": 32, \"patch_size\": 8, \"hidden_size\": 32, \"num_hidden_layers\": 2, "
                            "\"num_attention_heads\": 2, \"intermediate_size\": 64, \"decoder_hidden_size\": 16, "
                            "\"decoder_num_hidden_layers\": 1, \"decoder_num_attention_heads\": 2, \"decoder_intermediate_size\": 32}");
}

static int cmp_test(const void *a, const void *b) {
    return strcmp(((const tl_test *)a)->name, ((const tl_test *)b)->name);
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    qsort(tl_tests, (size_t)tl_ntests, sizeof tl_tests[0], cmp_test);
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < tl_ntests; i++) {
        if (filter && !strstr(tl_tests[i].name, filter)) continue;
        snprintf(tl_dir, sizeof tl_dir, "/tmp/skelex-test-XXXXXX");
        if (!mkdtemp(tl_dir)) { perror("mkdtemp"); return 2; }
        tl_failures = 0; tl_skipped = 0;
        fprintf(stderr, "[ RUN  ] %s\n", tl_tests[i].name);
        tl_tests[i].fn();
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tl_dir);
        if (system(cmd) != 0) fprintf(stderr, "    warning: could not remove %s\n", tl_dir);
        if (tl_failures) { failed++; fprintf(stderr, "[ FAIL ] %s (%d checks)\n", tl_tests[i].name, tl_failures); }
        else if (tl_skipped) { skipped++; fprintf(stderr, "[ SKIP ] %s\n", tl_tests[i].name); }
        else { passed++; fprintf(stderr, "[  OK  ] %s\n", tl_tests[i].name); }
    }
    fflush(stderr);
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
