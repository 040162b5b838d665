/* fuzz_util.h: shared helpers for the libFuzzer harnesses in fuzz/.
 * The parsers under test read files by path, so each input is written to an
 * in-memory file (memfd) and handed over as /proc/self/fd/N: no disk I/O,
 * and a fresh open() sees exactly the input's bytes.
 * Also: the contract every error must keep (one line, starting with the
 * path when the parser names the file) is checked here and aborts, so a
 * broken message is reported by the fuzzer like a crash. */
#ifndef SKELEX_FUZZ_UTIL_H
#define SKELEX_FUZZ_UTIL_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/common.h"

/* The path of a file holding exactly data[0..n). */
static inline const char *fuzz_file(const uint8_t *data, size_t n) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz-input", 0);
        if (fd < 0) { perror("memfd_create"); abort(); }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0) abort();
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(fd, data + done, n - done, (off_t)done);
        if (w <= 0) abort();
        done += (size_t)w;
    }
    return path;
}

/* An error message must be non-empty, one line, and (prefix non-NULL)
 * start with prefix: "PATH: reason". */
static inline void fuzz_check_error(const sx_err *e, const char *prefix) {
    size_t len = strnlen(e->msg, sizeof e->msg);
    if (len == 0 || len == sizeof e->msg || memchr(e->msg, '\n', len)) {
        fprintf(stderr, "fuzz: malformed error message: '%.*s'\n", (int)len, e->msg);
        abort();
    }
    if (prefix && strncmp(e->msg, prefix, strlen(prefix)) != 0) {
        fprintf(stderr, "fuzz: error does not name the file: '%s'\n", e->msg);
        abort();
    }
}

#endif
