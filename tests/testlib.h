/* testlib.h: a minimal test harness. Each test is `void test_x(void)`;
 * CHECK records a failure with file:line and carries on; the runner in
 * test_main.c prints one line per test and a closing "N passed, N failed".
 * A test may call TEST_SKIP("why") to skip (e.g. when ../shared/data is absent). */
#ifndef SKELEX_TESTLIB_H
#define SKELEX_TESTLIB_H
#include <stdio.h>
#include <math.h>

extern int tl_failures;   /* failures in the running test */
extern int tl_skipped;    /* set by TEST_SKIP */

#define CHECK(cond) do { if (!(cond)) { tl_failures++; \
    fprintf(stderr, "    CHECK failed %s:%d: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECKF(cond, ...) do { if (!(cond)) { tl_failures++; \
    fprintf(stderr, "    CHECK failed %s:%d: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
#define CHECK_NEAR(a, b, tol) CHECKF(fabs((double)(a) - (double)(b)) <= (tol), \
    "%.9g vs %.9g (tol %.3g)", (double)(a), (double)(b), (double)(tol))
#define TEST_SKIP(why) do { tl_skipped = 1; fprintf(stderr, "    skip: %s\n", why); return; } while (0)

/* TEST(name) { ... } defines and registers a test (registration runs before
 * main through a constructor, so test files need no central list). */
void tl_register(const char *name, void (*fn)(void));
#define TEST(name) static void name(void); \
    __attribute__((constructor)) static void name##_reg(void) { tl_register(#name, name); } \
    static void name(void)

/* Run a shell command, capturing stdout and stderr (truncated to cap-1
 * bytes, NUL-terminated) into out; returns its exit status (-1 if killed). */
int tl_run(const char *cmd, char *out, size_t cap);

/* Scratch directory for the running test (created fresh, removed after). */
const char *tl_tmpdir(void);

/* A synthetic two-class task in dir: dir/data/{dark,bright}/imgNN.png
 * (40 x 40; class "bright" has a large disk, "dark" a small one), per_class
 * images each, dir/task.json (binary, class folders) and dir/cfg.json (a
 * tiny 32 px ViT: patch 8, width 32, 2 layers). 0 or -1. */
int tl_synthetic_task(const char *dir, int per_class);

#endif
