/* fuzz_safetensors.c: libFuzzer harness for the safetensors reader: st_open
 * (length prefix, JSON header, every entry checked against the file), then
 * st_find, st_metadata and st_read_f32 of every tensor of at most 1 M
 * elements, as checkpoint loading does. */
#include "fuzz_util.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_file(data, n);
    st_file f;
    sx_err err;
    if (st_open(path, &f, &err) != 0) {
        fuzz_check_error(&err, path);
        return 0;
    }
    (void)st_metadata(&f, "format");
    for (int i = 0; i < f.n; i++) {
        const st_tensor *t = &f.tensors[i];
        if (st_find(&f, t->name) == NULL) abort();
        if (t->end > f.size - f.data_start || t->begin > t->end) abort();
        if (t->numel > (1u << 20)) continue;
        float *out = malloc((t->numel ? t->numel : 1) * sizeof(float));
        if (st_read_f32(&f, t, out, &err) != 0) fuzz_check_error(&err, path);
        free(out);
    }
    st_close(&f);
    return 0;
}
