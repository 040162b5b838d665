/* common.c: error formatting, checked allocation, time. */
#include "common.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

int sx_fail(sx_err *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        /* One line, always: text quoted from a file (a tensor name, a dtype,
         * a listed path) may hold control characters; they become '?'. */
        for (char *c = e->msg; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    }
    return -1;
}

void *sx_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "skelex: out of memory allocating %zu bytes\n", n); exit(3); }
    return p;
}

void *sx_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) { fprintf(stderr, "skelex: out of memory allocating %zu x %zu bytes\n", n, size); exit(3); }
    return p;
}

char *sx_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(sx_malloc(n), s, n);
}

int sx_mul_size(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

double sx_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void *sx_alloc_large(size_t n) {
    const size_t huge = (size_t)2 << 20;
    void *p = NULL;
    if (posix_memalign(&p, huge, n ? n : 1)) return NULL;
    if (n >= huge) madvise(p, n, MADV_HUGEPAGE);  /* advisory: failure is harmless */
    return p;
}

char *sx_read_text(const char *path, size_t max_bytes, sx_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) { sx_fail(err, "%s: cannot open (%s)", path, strerror(errno)); return NULL; }
    char *buf = sx_malloc(max_bytes + 1);
    size_t n = fread(buf, 1, max_bytes, f);
    int too_big = n == max_bytes && fgetc(f) != EOF;
    fclose(f);
    if (too_big) { free(buf); sx_fail(err, "%s: larger than %zu bytes, not a small text file", path, max_bytes); return NULL; }
    buf[n] = 0;
    return buf;
}
