/* fuzz_config.c: libFuzzer harness for config_parse_json (an HF
 * config.json through cJSON into mae_config, then config_validate). A
 * config it accepts must validate again and give sane derived sizes. */
#include "nn/config.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    char *text = malloc(n + 1);
    memcpy(text, data, n);
    text[n] = 0;
    mae_config c;
    sx_err err;
    if (config_parse_json(text, &c, &err) != 0) {
        fuzz_check_error(&err, "config");
    } else {
        if (config_validate(&c, &err) != 0) abort();
        if (config_num_patches(&c) < 1 || config_len_keep(&c) < 1 || config_patch_dim(&c) < 1) abort();
    }
    free(text);
    return 0;
}
