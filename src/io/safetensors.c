/* safetensors.c: bounds-checked safetensors reader and atomic writer. */
#include "io/safetensors.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (100u << 20)   /* the format's own limit: 100 MB */

float sx_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else { /* subnormal: normalise */
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) bits = sign | 0x7f800000u | (man << 13);
    else bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float sx_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t sx_f32_to_f16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    uint32_t abs = bits & 0x7fffffffu;
    if (abs > 0x7f800000u) return sign | 0x7e00;            /* NaN */
    if (abs >= 0x477ff000u) return sign | 0x7c00;           /* rounds past 65504: inf */
    if (abs < 0x38800000u) {                                /* subnormal or zero in f16 */
        if (abs < 0x33000000u) return sign;                 /* below half the smallest subnormal */
        uint32_t man = (abs & 0x7fffff) | 0x800000;
        int shift = 126 - (int)(abs >> 23);                 /* 14..24 */
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return sign | (uint16_t)h;
    }
    uint32_t h = ((abs >> 13) - ((127 - 15) << 10));
    uint32_t rem = abs & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;   /* may carry into the exponent: still right */
    return sign | (uint16_t)h;
}

uint16_t sx_f32_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40); /* quiet NaN */
    bits += 0x7fffu + ((bits >> 16) & 1);
    return (uint16_t)(bits >> 16);
}

static st_dtype dtype_parse(const char *s, size_t *elem) {
    static const struct { const char *s; st_dtype d; size_t e; } tab[] = {
        {"F32", ST_F32, 4}, {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"F64", ST_F64, 8},
        {"I64", ST_OTHER, 8}, {"I32", ST_OTHER, 4}, {"I16", ST_OTHER, 2}, {"I8", ST_OTHER, 1},
        {"U8", ST_OTHER, 1}, {"BOOL", ST_OTHER, 1}, {"U16", ST_OTHER, 2}, {"U32", ST_OTHER, 4},
        {"U64", ST_OTHER, 8},
    };
    for (size_t k = 0; k < sizeof tab / sizeof tab[0]; k++)
        if (!strcmp(s, tab[k].s)) { *elem = tab[k].e; return tab[k].d; }
    *elem = 0;
    return ST_OTHER;
}

/* Parse one header entry into t; every number is checked against data_size. */
static int parse_entry(const cJSON *e, st_tensor *t, size_t data_size, const char *path, sx_err *err) {
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) ||
        cJSON_GetArraySize(off) != 2)
        return sx_fail(err, "%s: tensor '%s': header entry needs dtype, shape and data_offsets", path, t->name);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt->valuestring);
    size_t elem;
    t->dtype = dtype_parse(dt->valuestring, &elem);
    if (!elem) return sx_fail(err, "%s: tensor '%s': unknown dtype '%s'", path, t->name, t->dtype_name);
    t->ndim = cJSON_GetArraySize(sh);
    if (t->ndim > ST_MAX_DIMS)
        return sx_fail(err, "%s: tensor '%s': %d dimensions (at most %d)", path, t->name, t->ndim, ST_MAX_DIMS);
    size_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        const cJSON *v = cJSON_GetArrayItem(sh, d);
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9.0e15 ||
            v->valuedouble != (double)(int64_t)v->valuedouble)
            return sx_fail(err, "%s: tensor '%s': bad shape entry", path, t->name);
        t->shape[d] = (int64_t)v->valuedouble;
        if (sx_mul_size(numel, (size_t)t->shape[d], &numel))
            return sx_fail(err, "%s: tensor '%s': shape overflows", path, t->name);
    }
    t->numel = numel;
    double b = cJSON_GetArrayItem(off, 0)->valuedouble, en = cJSON_GetArrayItem(off, 1)->valuedouble;
    if (!cJSON_IsNumber(cJSON_GetArrayItem(off, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(off, 1)) ||
        b < 0 || en < b || en > (double)data_size || b != (double)(size_t)b || en != (double)(size_t)en)
        return sx_fail(err, "%s: tensor '%s': data_offsets outside the file (truncated or corrupt)", path, t->name);
    t->begin = (size_t)b;
    t->end = (size_t)en;
    size_t nbytes;
    if (sx_mul_size(numel, elem, &nbytes) || nbytes != t->end - t->begin)
        return sx_fail(err, "%s: tensor '%s': %zu bytes of data for shape needing %zu x %zu", path, t->name,
                       t->end - t->begin, numel, elem);
    return 0;
}

static int parse_metadata(const cJSON *m, st_file *f, sx_err *err) {
    if (!cJSON_IsObject(m)) return sx_fail(err, "%s: __metadata__ must be an object", f->path);
    /* a second __metadata__ would overwrite the arrays while n_meta kept counting */
    if (f->meta_keys) return sx_fail(err, "%s: __metadata__ given twice", f->path);
    int n = cJSON_GetArraySize(m);
    f->meta_keys = sx_calloc((size_t)n, sizeof(char *));
    f->meta_vals = sx_calloc((size_t)n, sizeof(char *));
    const cJSON *it;
    cJSON_ArrayForEach(it, m) {
        if (!cJSON_IsString(it)) return sx_fail(err, "%s: __metadata__ values must be strings", f->path);
        f->meta_keys[f->n_meta] = strdup(it->string);
        f->meta_vals[f->n_meta] = strdup(it->valuestring);
        f->n_meta++;
    }
    return 0;
}

static int cmp_begin(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* The format requires the tensors' byte ranges to tile the data section:
 * in order of offset, each begins where the one before ends, from 0 to the
 * end of the file, with no gap, overlap or trailing byte. A header length
 * that is a few bytes off shows up here, as a gap or trailing bytes. */
static int check_tiling(const st_file *f, size_t data_size, sx_err *err) {
    if (!f->n) {
        if (data_size) return sx_fail(err, "%s: %zu data bytes but no tensors (header length wrong?)", f->path, data_size);
        return 0;
    }
    const st_tensor **order = sx_malloc(sizeof *order * (size_t)f->n);
    for (int i = 0; i < f->n; i++) order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n, sizeof *order, cmp_begin);
    size_t at = 0;
    int rc = 0;
    for (int i = 0; i < f->n && !rc; i++) {
        const st_tensor *t = order[i];
        if (t->begin > at)
            rc = sx_fail(err, "%s: tensor '%s': %zu-byte gap before its data at offset %zu (header length wrong or file "
                         "corrupt)", f->path, t->name, t->begin - at, t->begin);
        else if (t->begin < at)
            rc = sx_fail(err, "%s: tensor '%s': its data at offset %zu overlaps the tensor before (ending at %zu)",
                         f->path, t->name, t->begin, at);
        at = t->end;
    }
    if (!rc && at != data_size)
        rc = sx_fail(err, "%s: %zu trailing bytes after the last tensor (the data section is %zu bytes; header length "
                     "wrong or file corrupt)", f->path, data_size - at, data_size);
    free(order);
    return rc;
}

static int parse_header(st_file *f, const char *json, sx_err *err) {
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sx_fail(err, "%s: header is not a JSON object (not a safetensors file?)", f->path);
    }
    size_t data_size = f->size - f->data_start;
    int count = cJSON_GetArraySize(root), rc = 0;
    f->tensors = sx_calloc((size_t)count, sizeof(st_tensor));
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (!strcmp(e->string, "__metadata__")) { rc = parse_metadata(e, f, err); if (rc) break; continue; }
        st_tensor *t = &f->tensors[f->n++];
        t->name = strdup(e->string);
        if ((rc = parse_entry(e, t, data_size, f->path, err))) break;
    }
    cJSON_Delete(root);
    if (!rc) rc = check_tiling(f, data_size, err);
    return rc;
}

int st_open(const char *path, st_file *f, sx_err *err) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    int fd = sx_open_input(path, NULL, err);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) { close(fd); return sx_fail(err, "%s: not a regular file", path); }
    f->size = (size_t)st.st_size;
    if (f->size < 8) { close(fd); return sx_fail(err, "%s: %zu bytes, too short for safetensors", path, f->size); }
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return sx_fail(err, "%s: cannot map (%s)", path, strerror(errno));
    f->map = m;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->map[i];
    if (hlen > ST_MAX_HEADER || hlen > f->size - 8) {
        size_t size = f->size;   /* st_close clears f: say the real size */
        st_close(f);
        return sx_fail(err, "%s: header length %llu exceeds the file (%zu bytes): not safetensors or truncated",
                       path, (unsigned long long)hlen, size);
    }
    f->data_start = 8 + (size_t)hlen;
    char *json = sx_malloc((size_t)hlen + 1);
    memcpy(json, f->map + 8, (size_t)hlen);
    json[hlen] = 0;
    int rc = parse_header(f, json, err);
    free(json);
    if (rc) { st_close(f); return -1; }
    return 0;
}

void st_close(st_file *f) {
    if (f->map) munmap((void *)f->map, f->size);
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) { free(f->meta_keys[i]); free(f->meta_vals[i]); }
    free(f->meta_keys);
    free(f->meta_vals);
    memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

const char *st_metadata(const st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_vals[i];
    return NULL;
}

static int convert_f32(const st_file *f, const st_tensor *t, float *out, sx_err *err) {
    const uint8_t *p = f->map + f->data_start + t->begin;
    switch (t->dtype) {
    case ST_F32: memcpy(out, p, t->numel * 4); return 0;
    case ST_F64:
        for (size_t i = 0; i < t->numel; i++) { double d; memcpy(&d, p + 8 * i, 8); out[i] = (float)d; }
        return 0;
    case ST_F16:
        for (size_t i = 0; i < t->numel; i++) out[i] = sx_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    case ST_BF16:
        for (size_t i = 0; i < t->numel; i++) out[i] = sx_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    default:
        return sx_fail(err, "%s: tensor '%s' has dtype %s; expected F32, F16 or BF16", f->path, t->name, t->dtype_name);
    }
}

int st_read_f32(const st_file *f, const st_tensor *t, float *out, sx_err *err) {
    if (convert_f32(f, t, out, err)) return -1;
    size_t bad = 0;   /* a NaN or inf weight would only surface as NaN outputs */
    for (size_t i = 0; i < t->numel; i++) bad += !isfinite(out[i]);
    if (bad) return sx_fail(err, "%s: tensor %s holds %zu non-finite value%s", f->path, t->name, bad, bad > 1 ? "s" : "");
    return 0;
}

int sx_atomic_write(const char *path, sx_write_fn fn, void *ctx, sx_err *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return sx_fail(err, "%s: cannot write (%s)", tmp, strerror(errno));
    int ok = fn(f, ctx) == 0;
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved = errno;
    ok = (fclose(f) == 0) && ok;
    if (!ok) { unlink(tmp); return sx_fail(err, "%s: write failed (%s)", path, strerror(saved ? saved : EIO)); }
    if (rename(tmp, path)) { saved = errno; unlink(tmp); return sx_fail(err, "%s: rename failed (%s)", path, strerror(saved)); }
    char dirbuf[4200];
    snprintf(dirbuf, sizeof dirbuf, "%s", path);
    int dfd = open(dirname(dirbuf), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) { fsync(dfd); close(dfd); }
    return 0;
}

typedef struct {
    const st_entry *e; int n;
    const char *header; size_t hlen;
    st_dtype dtype;
} st_write_ctx;

static int write_body(FILE *f, void *vctx) {
    st_write_ctx *c = vctx;
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)c->hlen >> (8 * i));
    if (fwrite(len, 1, 8, f) != 8 || fwrite(c->header, 1, c->hlen, f) != c->hlen) return -1;
    for (int i = 0; i < c->n; i++) {
        size_t numel = 1;
        for (int d = 0; d < c->e[i].ndim; d++) numel *= (size_t)c->e[i].shape[d];
        if (c->dtype == ST_F32) {
            if (fwrite(c->e[i].data, 4, numel, f) != numel) return -1;
            continue;
        }
        for (size_t j = 0; j < numel; j++) {   /* little-endian 16-bit values */
            uint16_t h = c->dtype == ST_F16 ? sx_f32_to_f16(c->e[i].data[j]) : sx_f32_to_bf16(c->e[i].data[j]);
            if (putc(h & 0xff, f) == EOF || putc(h >> 8, f) == EOF) return -1;
        }
    }
    return 0;
}

int st_write_f32(const char *path, const st_entry *entries, int n,
                 const char *const *meta_keys, const char *const *meta_vals, int n_meta, sx_err *err) {
    return st_write(path, entries, n, ST_F32, meta_keys, meta_vals, n_meta, err);
}

const char *st_dtype_name(st_dtype d) {
    return d == ST_F32 ? "F32" : d == ST_F16 ? "F16" : d == ST_BF16 ? "BF16" : d == ST_F64 ? "F64" : "?";
}

int st_write(const char *path, const st_entry *entries, int n, st_dtype dtype,
             const char *const *meta_keys, const char *const *meta_vals, int n_meta, sx_err *err) {
    if (dtype != ST_F32 && dtype != ST_F16 && dtype != ST_BF16)
        return sx_fail(err, "%s: only F32, F16 and BF16 are written", path);
    size_t esize = dtype == ST_F32 ? 4 : 2;
    cJSON *root = cJSON_CreateObject();
    if (n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; i < n_meta; i++) cJSON_AddStringToObject(m, meta_keys[i], meta_vals[i]);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, entries[i].name);
        cJSON_AddStringToObject(e, "dtype", st_dtype_name(dtype));
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        size_t numel = 1;
        for (int d = 0; d < entries[i].ndim; d++) {
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)entries[i].shape[d]));
            numel *= (size_t)entries[i].shape[d];
        }
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        off += numel * esize;
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    size_t hlen = strlen(json), padded = (hlen + 7) & ~(size_t)7;  /* data 8-byte aligned */
    char *header = sx_malloc(padded);
    memcpy(header, json, hlen);
    memset(header + hlen, ' ', padded - hlen);
    free(json);
    st_write_ctx ctx = {entries, n, header, padded, dtype};
    int rc = sx_atomic_write(path, write_body, &ctx, err);
    free(header);
    return rc;
}
