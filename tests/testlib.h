/* testlib.h: a minimal test harness. Each test is `void test_x(void)`;
 * CHECK records a failure with file:line and carries on; the runner in
 * test_main.c prints one line per test and a closing "N passed, N failed".
 * A test may call TEST_SKIP("why") to skip (e.g. when ../shared/data is absent). */
#ifndef SKELEX_TESTLIB_H
#define SKELEX_TESTLIB_H
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>

#include "nn/config.h"

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

/* Helpers shared by the test files (tests/testlib.c). */

/* tl_tmpdir()/name in one of 16 rotating static buffers. */
const char *tl_path(const char *name);

/* Write n bytes from p to path (created or truncated); 0, or -1 on any failure (an open failure is printed). */
int tl_write_file(const char *path, const void *p, size_t n);

/* Write the string s (without its NUL) to path; 0 or -1. */
int tl_write_text(const char *path, const char *s);

/* The whole file, malloc'ed with a NUL after it, its size in *n (n may be NULL); NULL (and 0) if it cannot be read. */
void *tl_read_file(const char *path, size_t *n);

/* Redirect stderr into file until tl_stderr_end(saved); returns saved. */
int tl_stderr_begin(const char *file);

/* Restore the stderr saved by tl_stderr_begin. */
void tl_stderr_end(int saved);

/* A JPEG for tl_write_jpeg: w x h, comps 1 (grey), 3 (RGB) or 4 (CMYK) interleaved 8-bit samples. */
typedef struct {
    int w, h, comps;
    int quality;                /* 1..100 (libjpeg's default is 75) */
    int progressive;
    int cmyk_mode;              /* 0: libjpeg default (YCCK + Adobe), 1: CMYK + Adobe, 2: CMYK, no Adobe */
    const uint8_t *px;          /* w*h*comps samples, row after row */
    const uint8_t *app1;        /* APP1 payload (e.g. Exif), or NULL */
    unsigned app1_len;
} tl_jpeg;

/* Write j to path with libjpeg (not with image.c); 0 or -1. */
int tl_write_jpeg(const char *path, const tl_jpeg *j);

/* A toy ViT MAE of width w on w x w images (patch 8, 2 layers, 2 heads; decoder w/2 wide, 1 layer). */
mae_config tl_toy_config(int w);

#endif
