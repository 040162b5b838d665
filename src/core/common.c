/* common.c: error formatting, checked allocation, time. */
#include "core/common.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

int sx_fail(sx_err *e, const char *fmt, ...) {
    if (e) {
        char full[4 * SX_ERRLEN];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(full, sizeof full, fmt, ap);
        va_end(ap);
        size_t len = n < 0 ? 0 : (size_t)n < sizeof full ? (size_t)n : sizeof full - 1;
        full[len] = 0;
        if (len < sizeof e->msg) {
            memcpy(e->msg, full, len + 1);
        } else {  /* keep the head (the path) and the tail (the reason) */
            size_t keep = (sizeof e->msg - 4) / 2;
            memcpy(e->msg, full, keep);
            memcpy(e->msg + keep, "...", 3);
            memcpy(e->msg + keep + 3, full + len - keep, keep);
            e->msg[2 * keep + 3] = 0;
        }
        /* One line, always: text quoted from a file (a tensor name, a dtype,
         * a listed path) may hold control characters; they become '?'. */
        for (char *c = e->msg; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    }
    return -1;
}

void *sx_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "skelex: out of memory allocating %zu bytes\n", n); exit(4); }
    return p;
}

void *sx_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) { fprintf(stderr, "skelex: out of memory allocating %zu x %zu bytes\n", n, size); exit(4); }
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

#define SX_HUGE ((size_t)2 << 20)

#ifdef __SANITIZE_ADDRESS__
/* Sanitizer builds keep these buffers on the malloc heap so that AddressSanitizer
 * checks their bounds like any other allocation. */
void *sx_alloc_large(size_t n) {
    void *p = NULL;
    return posix_memalign(&p, SX_HUGE, n ? n : 1) ? NULL : p;
}

void sx_free_large(void *p, size_t n) { (void)n; free(p); }
#else
/* n rounded up to whole huge pages, at least one: the length of a mapping. */
static size_t huge_len(size_t n) { return n ? (n + SX_HUGE - 1) / SX_HUGE * SX_HUGE : SX_HUGE; }

/* A mapping of its own, 2 MiB aligned: it never takes the malloc heap's free
 * top, which sx_heap_hugepages keeps for the small buffers. */
void *sx_alloc_large(size_t n) {
    size_t len = huge_len(n);
    char *raw = mmap(NULL, len + SX_HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    char *p = (char *)(((uintptr_t)raw + SX_HUGE - 1) & ~(uintptr_t)(SX_HUGE - 1));
    if (p > raw) munmap(raw, (size_t)(p - raw));
    if (raw + SX_HUGE > p) munmap(p + len, (size_t)(raw + SX_HUGE - p));
    madvise(p, len, MADV_HUGEPAGE);  /* advisory: failure is harmless */
    return p;
}

void sx_free_large(void *p, size_t n) {
    if (p) munmap(p, huge_len(n));
}
#endif

void sx_heap_hugepages(size_t n) {
    const uintptr_t huge = SX_HUGE;
    char *p = malloc(n);
    if (!p) return;
    uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1), e = ((uintptr_t)p + n) & ~(huge - 1);
    if (e > a) madvise((void *)a, e - a, MADV_HUGEPAGE);  /* advisory: failure is harmless */
    free(p);
}

int sx_open_input(const char *path, uint64_t *size, sx_err *err) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT) return sx_fail(err, "%s: not found (No such file or directory)", path);
        return sx_fail(err, "%s: cannot open (%s)", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st)) { int e = errno; close(fd); return sx_fail(err, "%s: cannot stat (%s)", path, strerror(e)); }
    if (S_ISDIR(st.st_mode)) { close(fd); return sx_fail(err, "%s: is a directory, not a file", path); }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sx_fail(err, "%s: not a regular file (a FIFO, socket or device is never read)", path);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (size) *size = (uint64_t)st.st_size;
    return fd;
}

FILE *sx_fopen_input(const char *path, uint64_t *size, sx_err *err) {
    int fd = sx_open_input(path, size, err);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) { sx_fail(err, "%s: cannot open (%s)", path, strerror(errno)); close(fd); }
    return f;
}

char *sx_read_text(const char *path, size_t max_bytes, sx_err *err) {
    FILE *f = sx_fopen_input(path, NULL, err);
    if (!f) return NULL;
    char *buf = sx_malloc(max_bytes + 1);
    size_t n = fread(buf, 1, max_bytes, f);
    int too_big = n == max_bytes && fgetc(f) != EOF;
    fclose(f);
    if (too_big) { free(buf); sx_fail(err, "%s: larger than %zu bytes, not a small text file", path, max_bytes); return NULL; }
    buf[n] = 0;
    return buf;
}

int sx_cmp_keyed(const void *a, const void *b) {
    const sx_keyed *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* Writes go to PATH.tmp.PID and are renamed over PATH once complete, so a
 * failed or interrupted write never leaves a partial (or 0-byte) file. */
FILE *sx_atomic_open(const char *path, char *tmp, size_t cap, sx_err *err) {
    if ((size_t)snprintf(tmp, cap, "%s.tmp.%ld", path, (long)getpid()) >= cap) {
        sx_fail(err, "%s: path too long", path);
        return NULL;
    }
    FILE *f = fopen(tmp, "w");
    if (!f) sx_fail(err, "%s: cannot write (%s)", path, strerror(errno));
    return f;
}

int sx_atomic_commit(FILE *f, const char *tmp, const char *path, sx_err *err) {
    int ok = !ferror(f) && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved = errno;
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, path) == 0) return 0;
    if (ok) saved = errno;
    unlink(tmp);
    return sx_fail(err, "%s: write failed (%s)", path, strerror(saved ? saved : EIO));
}
