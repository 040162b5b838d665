/* safetensors.h: read and write the safetensors format
 * (u64 header length, JSON header, raw little-endian tensor data).
 * Reading memory-maps the file and validates every header entry against the
 * file size before any tensor is touched; the tensors' byte ranges must tile
 * the data section exactly (in order, no gap, overlap or trailing byte). Writing is atomic (temp, fsync,
 * rename). F32, F16 and BF16 are read and written. */
#ifndef SKELEX_SAFETENSORS_H
#define SKELEX_SAFETENSORS_H
#include "core/common.h"
#include <stdio.h>

#define ST_MAX_DIMS 8

typedef enum { ST_F32, ST_F16, ST_BF16, ST_F64, ST_OTHER } st_dtype;

typedef struct {
    char *name;
    char dtype_name[16];     /* as written in the header, e.g. "F32", "I64" */
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    size_t begin, end;       /* byte offsets in the data section */
} st_tensor;

typedef struct {
    const uint8_t *map;      /* the whole file, mapped read-only */
    size_t size;
    size_t data_start;       /* 8 + header length */
    int n;
    st_tensor *tensors;
    char **meta_keys, **meta_vals; /* __metadata__ (string -> string) */
    int n_meta;
    char path[1024];
} st_file;

int  st_open(const char *path, st_file *f, sx_err *err);
void st_close(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
const char *st_metadata(const st_file *f, const char *key);

/* Convert tensor t to float32 into out (exactly t->numel floats). A tensor
 * holding NaN or infinity is refused, naming it and the count. */
int st_read_f32(const st_file *f, const st_tensor *t, float *out, sx_err *err);

/* One tensor to write. */
typedef struct {
    const char *name;
    const float *data;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
} st_entry;

/* Write F32 tensors and optional metadata pairs (meta may be NULL). */
int st_write_f32(const char *path, const st_entry *entries, int n,
                 const char *const *meta_keys, const char *const *meta_vals, int n_meta, sx_err *err);

/* The same in F32, F16 (round to nearest even; beyond 65504 becomes inf, so
 * check the range first) or BF16 (round to nearest even). */
int st_write(const char *path, const st_entry *entries, int n, st_dtype dtype,
             const char *const *meta_keys, const char *const *meta_vals, int n_meta, sx_err *err);

/* "F32", "F16", "BF16", "F64" (as written in a header). */
const char *st_dtype_name(st_dtype d);

/* Write a file atomically: data goes to "<path>.tmp", is fsync'ed, then renamed
 * over path, and the directory is fsync'ed. On error path is untouched. */
typedef int (*sx_write_fn)(FILE *f, void *ctx);
int sx_atomic_write(const char *path, sx_write_fn fn, void *ctx, sx_err *err);

/* Half-precision conversions (exposed for tests). */
float sx_f16_to_f32(uint16_t h);
float sx_bf16_to_f32(uint16_t h);
uint16_t sx_f32_to_bf16(float f);   /* round to nearest even */
uint16_t sx_f32_to_f16(float f);    /* round to nearest even, subnormals kept, overflow to inf */

#endif
