/* common.h: the error convention shared by every module.
 * Functions that can fail return 0 on success and -1 on failure, writing a
 * one-line human-readable reason into an sx_err supplied by the caller. */
#ifndef SKELEX_COMMON_H
#define SKELEX_COMMON_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Room for a long path and its reason. A message that would not fit is cut
 * in the middle ("...") so that its start (the path) and its end (the
 * reason) both survive. */
#define SX_ERRLEN 2048
typedef struct { char msg[SX_ERRLEN]; } sx_err;

/* Format a message into e (if non-NULL) and return -1. Control characters
 * (from quoted file contents) are replaced by '?', so a message is one line. */
int sx_fail(sx_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* malloc/calloc that abort with a message on exhaustion (for sizes we computed
 * ourselves, never for sizes read from a file: check those first). */
void *sx_malloc(size_t n);
void *sx_calloc(size_t n, size_t size);
char *sx_strdup(const char *s);

/* Large, long-lived buffers (parameters, activations): 2 MiB aligned, zeroed
 * or not, and backed by transparent huge pages where the kernel allows it,
 * which cuts TLB misses in the big matrix products. Returns NULL on
 * exhaustion; sx_free_large(p, n) with the same n releases it (NULL is a no-op). */
void *sx_alloc_large(size_t n);
void sx_free_large(void *p, size_t n);

/* Advise transparent huge pages for n bytes of the calling thread's malloc
 * heap: malloc n, madvise, free. The block returns to the heap (it is not
 * trimmed, see sx_threads_init), so later allocations there, oneDNN's packing
 * buffers among them, are served from huge pages as they are first touched. */
void sx_heap_hugepages(size_t n);

/* Open a file to read as input. Never blocks (a FIFO, socket or device
 * given as a path, or behind a link, cannot hang the program: the open is
 * non-blocking and anything that is not a regular file is refused) and
 * tells the size before anything is read. Every input file of the program
 * is opened through these. Return an fd / a FILE* (blocking again for
 * reads), or -1 / NULL with "PATH: reason". size may be NULL. */
int sx_open_input(const char *path, uint64_t *size, sx_err *err);
FILE *sx_fopen_input(const char *path, uint64_t *size, sx_err *err);

/* Atomic writes: sx_atomic_open writes to PATH.tmp.PID (its name into tmp);
 * sx_atomic_commit flushes, fsyncs and renames it over PATH, or removes it
 * and fails, so a failed or interrupted write never leaves a partial (or
 * 0-byte) file. 0 or -1 with "PATH: reason". */
FILE *sx_atomic_open(const char *path, char *tmp, size_t cap, sx_err *err);
int sx_atomic_commit(FILE *f, const char *tmp, const char *path, sx_err *err);

/* Read a whole small text file, NUL-terminated; a file over max_bytes is an
 * error (never silently cut). The caller frees. NULL with err on failure. */
char *sx_read_text(const char *path, size_t max_bytes, sx_err *err);

/* Overflow-checked size arithmetic: return 0 and set *out, or -1 on overflow. */
int sx_mul_size(size_t a, size_t b, size_t *out);

/* Wall-clock seconds (monotonic). */
double sx_now(void);

/* A string and where it stood: qsort with sx_cmp_keyed orders by the
 * string (strcmp), ties by the position, so equal strings keep their order. */
typedef struct { const char *key; size_t i; } sx_keyed;
int sx_cmp_keyed(const void *a, const void *b);

#endif
