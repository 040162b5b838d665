/* npy.c: NumPy .npy read and write for float arrays (contract: npy.h).
 *
 * Does: write little-endian float32, C order, format 1.0, header padded with
 * spaces to a multiple of 64 bytes and ending in '\n' (as numpy does); read
 * formats 1.0, 2.0 and 3.0 with dtype '<f4' or '<f8' (f8 is narrowed to
 * float), C order, up to NPY_MAX_DIMS dimensions, scalars included.
 * The header is parsed as the small Python dict literal numpy writes
 * ({'descr': ..., 'fortran_order': ..., 'shape': (...), }); its length, the
 * shape's element count (overflow-checked) and the data size are all checked
 * against the file size before anything is allocated, and the data must fill
 * the rest of the file exactly.
 * Does not: other dtypes, big-endian data, Fortran order, object arrays,
 * memory mapping, .npz archives. Assumes a little-endian host.
 */
#include "io/npy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_MAX_HEADER ((size_t)1 << 20) /* numpy itself refuses > 10 KB by default */

/* ------------------------------------------------------------------------ */
/* Writing                                                                  */

/* The dict literal without padding: "{'descr': '<f4', ..., 'shape': (2, 3), }". */
static int format_header_dict(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (n < cap) n += (size_t)snprintf(buf + n, cap - n, ndim == 1 ? ",), }" : "), }");
    return n < cap ? (int)n : -1;
}

/* Element count of a shape, or -1 on overflow. */
static int shape_count(int ndim, const int64_t *shape, size_t *count) {
    size_t c = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || (uint64_t)shape[i] > SIZE_MAX || sx_mul_size(c, (size_t)shape[i], &c))
            return -1;
    *count = c;
    return 0;
}

/* The padded header of a float32 array into head (512 bytes); its length,
 * or 0 with err. */
static size_t npy_build_header(char *head, int ndim, const int64_t *shape, size_t *bytes, const char *what, sx_err *err) {
    size_t count;
    if (ndim < 0 || ndim > NPY_MAX_DIMS) {
        sx_fail(err, "%s: cannot write npy with %d dimensions (max %d)", what, ndim, NPY_MAX_DIMS);
        return 0;
    }
    if (shape_count(ndim, shape, &count) || sx_mul_size(count, sizeof(float), bytes)) {
        sx_fail(err, "%s: cannot write npy: invalid or overflowing shape", what);
        return 0;
    }
    memcpy(head, NPY_MAGIC "\x01\x00", 8); /* magic, version 1.0 */
    int dl = format_header_dict(head + 10, 512 - 10 - 64, ndim, shape);
    if (dl < 0) {
        sx_fail(err, "%s: cannot write npy: header too long", what);
        return 0;
    }
    size_t total = 10 + (size_t)dl + 1;      /* + '\n' */
    size_t padded = (total + 63) / 64 * 64;
    memset(head + 10 + dl, ' ', padded - total);
    head[padded - 1] = '\n';
    head[8] = (char)((padded - 10) & 0xFF);
    head[9] = (char)((padded - 10) >> 8);
    return padded;
}

int npy_encode_f32(const float *data, int ndim, const int64_t *shape, void **out, size_t *len, sx_err *err) {
    char head[512];
    size_t bytes, padded = npy_build_header(head, ndim, shape, &bytes, "npy", err);
    *out = NULL;
    *len = 0;
    if (!padded) return -1;
    uint8_t *b = malloc(padded + bytes);
    if (!b) return sx_fail(err, "npy: out of memory for %zu bytes", padded + bytes);
    memcpy(b, head, padded);
    if (bytes) memcpy(b + padded, data, bytes);
    *out = b;
    *len = padded + bytes;
    return 0;
}

int npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape, sx_err *err) {
    char head[512];
    size_t bytes, padded = npy_build_header(head, ndim, shape, &bytes, path, err);
    if (!padded) return -1;
    FILE *f = fopen(path, "wb");
    if (!f) return sx_fail(err, "%s: cannot create: %s", path, strerror(errno));
    int ok = fwrite(head, 1, padded, f) == padded && (bytes == 0 || fwrite(data, 1, bytes, f) == bytes);
    int e = errno;
    if (fclose(f) != 0 && ok) { ok = 0; e = errno; }
    if (!ok) {
        remove(path);
        return sx_fail(err, "%s: cannot write: %s", path, strerror(e));
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Header parsing: a cursor over the dict literal                           */

typedef struct { const char *p, *end; } cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

/* Skip whitespace, then consume ch if it is next. */
static int accept(cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) { c->p++; return 1; }
    return 0;
}

/* A quoted string without escapes, at most cap-1 characters. */
static int parse_str(cursor *c, char *out, size_t cap) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return -1;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap) return -1;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return -1;
    c->p++;
    out[n] = '\0';
    return 0;
}

static int parse_word(cursor *c, const char *w) {
    size_t n = strlen(w);
    skip_ws(c);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return 0;
    c->p += n;
    return 1;
}

/* A non-negative decimal integer (Python 2 'L' suffix allowed). */
static int parse_dim(cursor *c, int64_t *v) {
    skip_ws(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') return -1;
    int64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        int d = *c->p++ - '0';
        if (x > (INT64_MAX - d) / 10) return -1;
        x = x * 10 + d;
    }
    if (c->p < c->end && *c->p == 'L') c->p++;
    *v = x;
    return 0;
}

/* '(' [dim {',' dim} [',']] ')': a tuple, so one element needs its comma. */
static int parse_shape(cursor *c, int64_t *shape, int *ndim) {
    int n = 0, comma = 0;
    if (!accept(c, '(')) return -1;
    while (!accept(c, ')')) {
        if (n == NPY_MAX_DIMS || parse_dim(c, &shape[n])) return -1;
        n++;
        comma = accept(c, ',');
        if (!comma) {
            if (!accept(c, ')')) return -1;
            break;
        }
    }
    if (n == 1 && !comma) return -1;
    *ndim = n;
    return 0;
}

typedef struct { char descr[16]; int fortran; int ndim; int64_t shape[NPY_MAX_DIMS]; } npy_header;

/* One "'key': value" entry into h; seen tracks keys already given. */
static int parse_entry(cursor *c, npy_header *h, unsigned *seen, const char **why) {
    char key[32];
    if (parse_str(c, key, sizeof key) || !accept(c, ':')) return *why = "malformed dict", -1;
    unsigned bit = !strcmp(key, "descr") ? 1u : !strcmp(key, "fortran_order") ? 2u
                 : !strcmp(key, "shape") ? 4u : 0u;
    if (!bit) return *why = "unknown key", -1;
    if (*seen & bit) return *why = "duplicate key", -1;
    *seen |= bit;
    if (bit == 1 && parse_str(c, h->descr, sizeof h->descr)) return *why = "bad 'descr'", -1;
    if (bit == 2) {
        if (parse_word(c, "True")) h->fortran = 1;
        else if (parse_word(c, "False")) h->fortran = 0;
        else return *why = "bad 'fortran_order'", -1;
    }
    if (bit == 4 && parse_shape(c, h->shape, &h->ndim))
        return *why = "bad 'shape' (want a tuple of at most 8 non-negative ints)", -1;
    return 0;
}

static int parse_header(const char *text, size_t len, npy_header *h, const char **why) {
    cursor c = {text, text + len};
    unsigned seen = 0;
    memset(h, 0, sizeof *h);
    if (!accept(&c, '{')) return *why = "header is not a dict", -1;
    while (!accept(&c, '}')) {
        if (parse_entry(&c, h, &seen, why)) return -1;
        if (!accept(&c, ',')) {
            if (!accept(&c, '}')) return *why = "malformed dict", -1;
            break;
        }
    }
    skip_ws(&c);
    if (c.p != c.end) return *why = "trailing characters after the dict", -1;
    if (seen != 7) return *why = "missing 'descr', 'fortran_order' or 'shape'", -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */

/* Magic and version; the header length and where the header starts. */
static int read_preamble(FILE *f, const char *path, uint64_t fsize, size_t *hlen, size_t *hstart,
                         sx_err *err) {
    uint8_t pre[12];
    if (fsize < 10 || fread(pre, 1, 10, f) != 10)
        return sx_fail(err, "%s: not an npy file (too short)", path);
    if (memcmp(pre, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
        return sx_fail(err, "%s: not an npy file (bad magic)", path);
    if (pre[6] == 1) {
        *hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
        *hstart = 10;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fsize < 12 || fread(pre + 10, 1, 2, f) != 2)
            return sx_fail(err, "%s: npy file truncated in its preamble", path);
        *hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        *hstart = 12;
    } else {
        return sx_fail(err, "%s: unsupported npy format version %d.%d", path, pre[6], pre[7]);
    }
    if (*hlen > NPY_MAX_HEADER || *hlen > fsize - *hstart)
        return sx_fail(err, "%s: npy header length %zu exceeds the file (%llu bytes)", path, *hlen,
                       (unsigned long long)fsize);
    return 0;
}

static int read_header(FILE *f, const char *path, size_t hlen, npy_header *h, sx_err *err) {
    char *text = sx_malloc(hlen);
    const char *why = NULL;
    int rc = 0;
    if (fread(text, 1, hlen, f) != hlen)
        rc = sx_fail(err, "%s: npy file truncated in its header", path);
    else if (parse_header(text, hlen, h, &why))
        rc = sx_fail(err, "%s: bad npy header: %s", path, why);
    free(text);
    if (rc) return rc;
    if (h->fortran)
        return sx_fail(err, "%s: Fortran-order npy arrays are not supported", path);
    if (strcmp(h->descr, "<f4") != 0 && strcmp(h->descr, "<f8") != 0)
        return sx_fail(err, "%s: unsupported npy dtype '%s' (want '<f4' or '<f8')", path, h->descr);
    return 0;
}

/* count doubles from f into out as floats, a block at a time. */
static int read_f8(FILE *f, float *out, size_t count) {
    double buf[1024];
    for (size_t done = 0; done < count;) {
        size_t n = count - done < 1024 ? count - done : 1024;
        if (fread(buf, sizeof(double), n, f) != n) return -1;
        for (size_t i = 0; i < n; i++) out[done + i] = (float)buf[i];
        done += n;
    }
    return 0;
}

/* Header, checks against the file size, then the data. */
static int read_body(FILE *f, const char *path, uint64_t fsize, size_t hlen, size_t data_off,
                     float **data, int *ndim, int64_t *shape, sx_err *err) {
    npy_header h;
    size_t count, bytes;
    if (read_header(f, path, hlen, &h, err)) return -1;
    size_t item = h.descr[2] == '8' ? sizeof(double) : sizeof(float);
    if (shape_count(h.ndim, h.shape, &count) || sx_mul_size(count, item, &bytes))
        return sx_fail(err, "%s: npy shape overflows", path);
    if (bytes != fsize - data_off)
        return sx_fail(err, "%s: npy data size mismatch: shape needs %zu bytes, file has %llu", path,
                       bytes, (unsigned long long)(fsize - data_off));
    float *out = sx_malloc(count * sizeof(float));
    int bad = item == sizeof(float) ? fread(out, sizeof(float), count, f) != count
                                    : read_f8(f, out, count) != 0;
    if (bad) {
        free(out);
        return sx_fail(err, "%s: cannot read npy data: %s", path, ferror(f) ? strerror(errno) : "short read");
    }
    *data = out;
    *ndim = h.ndim;
    for (int i = 0; i < NPY_MAX_DIMS; i++) shape[i] = i < h.ndim ? h.shape[i] : 0;
    return 0;
}

int npy_read_f32(const char *path, float **data, int *ndim, int64_t shape[NPY_MAX_DIMS], sx_err *err) {
    *data = NULL;
    *ndim = 0;
    FILE *f = sx_fopen_input(path, NULL, err);
    if (!f) return -1;
    struct stat st;
    size_t hlen = 0, hstart = 0;
    int rc;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        rc = sx_fail(err, "%s: not a regular file", path);
    else if (read_preamble(f, path, (uint64_t)st.st_size, &hlen, &hstart, err))
        rc = -1;
    else
        rc = read_body(f, path, (uint64_t)st.st_size, hlen, hstart + hlen, data, ndim, shape, err);
    fclose(f);
    return rc;
}

int npy_read_values_f32(const char *path, size_t n, const char *what, float *out, sx_err *err) {
    float *data;
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    if (npy_read_f32(path, &data, &ndim, shape, err)) return -1;
    size_t got = 1;
    for (int d = 0; d < ndim; d++) got *= (size_t)shape[d];
    int rc = 0;
    if (got != n) rc = sx_fail(err, "%s: holds %zu values, the model has %zu %s", path, got, n, what);
    for (size_t i = 0; !rc && i < n; i++)
        if (!isfinite(data[i])) rc = sx_fail(err, "%s: value %zu is not finite", path, i);
    if (!rc) memcpy(out, data, sizeof(float) * n);
    free(data);
    return rc;
}
