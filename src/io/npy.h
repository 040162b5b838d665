/* npy.h: NumPy .npy (format 1.0/2.0) read and write for float arrays. */
#ifndef SKELEX_NPY_H
#define SKELEX_NPY_H
#include "core/common.h"

#define NPY_MAX_DIMS 8

/* Write little-endian float32, C order. */
int npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape, sx_err *err);
/* The same file's bytes into memory: *out is malloc'd (free it), *len its size. */
int npy_encode_f32(const float *data, int ndim, const int64_t *shape, void **out, size_t *len, sx_err *err);

/* Read a C-order '<f4' or '<f8' array (f8 converted to float). *data is
 * malloc'd; the caller frees it. Hostile input gives an error, never a crash:
 * header and sizes are checked against the file size before any allocation. */
int npy_read_f32(const char *path, float **data, int *ndim, int64_t shape[NPY_MAX_DIMS], sx_err *err);

/* Read exactly n finite values (any shape holding n) into out; what names
 * them in the error ("... the model has n <what>", e.g. "patches"). */
int npy_read_values_f32(const char *path, size_t n, const char *what, float *out, sx_err *err);

#endif
