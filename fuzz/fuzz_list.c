/* fuzz_list.c: libFuzzer harness for list files (dataset_add on a file
 * that is not an image: one path a line, '#' comments, blanks trimmed,
 * relative paths joined to the list's directory), then the sorted,
 * de-duplicated dataset is walked and every entry looked up. */
#include "data/data.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_file(data, n);
    dataset ds;
    dataset_init(&ds);
    sx_err err;
    if (dataset_add(&ds, path, &err) != 0) {
        fuzz_check_error(&err, path);
        if (dataset_count(&ds) != 0) abort(); /* rolled back */
    } else {
        for (size_t i = 0; i < dataset_count(&ds); i++) {
            const char *p = dataset_path(&ds, i);
            if (dataset_find(&ds, p) != (long long)i) abort();
            if (i > 0 && strcmp(dataset_path(&ds, i - 1), p) >= 0) abort(); /* sorted, unique */
        }
    }
    dataset_free(&ds);
    return 0;
}
