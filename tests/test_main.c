/* test_main.c: runs every registered test, optionally filtered by a
 * substring given as argv[1], and prints "N passed, N failed, N skipped". */
#include "testlib.h"
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
