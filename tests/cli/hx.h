/* hx.h: helpers of the hostile-input CLI tests (test_hostile_*.c): run the
 * program under a time limit, and make the small inputs they need. */
#ifndef SKELEX_TEST_HX_H
#define SKELEX_TEST_HX_H
#include "io/image.h"
#include "testlib.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The exit status `timeout` gives a command it had to kill. */
#define HX_TIMED_OUT 124

/* Run "./skelex ARGS" (printf-style) with one thread under `timeout 20`;
 * stdout+stderr go to out. Returns the exit status (124: it hung). */
__attribute__((format(printf, 3, 4))) static inline int hx_run(char *out, size_t cap, const char *fmt, ...) {
    char args[8192], cmd[8400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "timeout -s KILL 20 env OMP_NUM_THREADS=1 ./skelex %s", args);
    int rc = tl_run(cmd, out, cap);
    return rc < 0 ? HX_TIMED_OUT : rc;  /* killed by the time limit */
}

/* out holds exactly one line (the error) mentioning want. */
static inline int hx_one_line(const char *out, const char *want) {
    const char *nl = strchr(out, '\n');
    return strstr(out, want) && nl && nl[1] == 0;
}

static const char HX_CFG[] = "{\"image_size\": 32, \"patch_size\": 8, \"hidden_size\": 32, \"num_hidden_layers\": 2,"
                             " \"num_attention_heads\": 2, \"intermediate_size\": 64, \"decoder_hidden_size\": 32,"
                             " \"decoder_num_hidden_layers\": 1, \"decoder_num_attention_heads\": 2,"
                             " \"decoder_intermediate_size\": 64}";

/* n small radiograph-like PNGs dir/imgNNN.png (dir created). */
static inline void hx_images(const char *dir, int n) {
    mkdir(dir, 0755);
    uint8_t px[40 * 48];
    for (int k = 0; k < n; k++) {
        for (int i = 0; i < 40 * 48; i++) px[i] = (uint8_t)(20 + ((i % 48 + k * 3) % 16 < 5 ? 170 : 0) + i % 7);
        char p[1100];
        snprintf(p, sizeof p, "%s/img%03d.png", dir, k);
        sx_err err;
        CHECK(png_write_u8(p, px, 48, 40, 1, &err) == 0);
    }
}

/* A FIFO at path (nobody ever writes it: a reader that opens it blocks). */
static inline void hx_fifo(const char *path) {
    unlink(path);
    CHECKF(mkfifo(path, 0644) == 0, "mkfifo %s", path);
}

#endif
