/* fuzz_npy.c: libFuzzer harness for npy_read_f32 (preamble, the header's
 * dict literal, shape overflow and size checks against the file, f4/f8
 * data). An accepted array's shape must account for every value read. */
#include "fuzz_util.h"
#include "io/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_file(data, n);
    float *v = NULL;
    int ndim = -1;
    int64_t shape[NPY_MAX_DIMS];
    sx_err err;
    if (npy_read_f32(path, &v, &ndim, shape, &err) != 0) {
        fuzz_check_error(&err, path);
        if (v) abort();
        return 0;
    }
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)shape[i];
    if (ndim < 0 || ndim > NPY_MAX_DIMS || count * 4 > n) abort();
    volatile float sink = 0;
    for (size_t i = 0; i < count; i++) sink += v[i];
    (void)sink;
    free(v);
    return 0;
}
