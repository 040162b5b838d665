/* test_probe_cli.c: `skelex probe` end to end on a synthetic two-class task
 * (class folders), with a small randomly initialised encoder. */
#include "image.h"
#include "testlib.h"
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cjson/cJSON.h>

TEST(test_probe_cli_separates_classes) {
    const char *d = tl_tmpdir();
    char cmd[4096], out[16384], p[700];
    for (int c = 0; c < 2; c++) {
        snprintf(p, sizeof p, "mkdir -p %s/data/%s", d, c ? "bright" : "dark");
        CHECK(system(p) == 0);
        for (int k = 0; k < 30; k++) {
            uint8_t px[40 * 40];
            for (int i = 0; i < 40 * 40; i++) {
                int x = i % 40, y = i / 40, dx = x - 20 - k % 5, dy = y - 20 + k % 3;
                int disk = dx * dx + dy * dy < (c ? 150 : 30);   /* class 1: a large disk */
                px[i] = (uint8_t)(30 + (disk ? 180 : 0) + (i * 7 + k) % 13);
            }
            snprintf(p, sizeof p, "%s/data/%s/img%02d.png", d, c ? "bright" : "dark", k);
            sx_err err;
            CHECK(png_write_u8(p, px, 40, 40, 1, &err) == 0);
        }
    }
    snprintf(p, sizeof p, "%s/task.json", d);
    FILE *f = fopen(p, "w");
    fputs("{\"name\": \"synthetic\", \"type\": \"binary\", \"image_root\": \"data\", \"class_folders\": [\"dark\", \"bright\"]}", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/cfg.json", d);
    f = fopen(p, "w");
    fputs("{\"image_size\": 32, \"patch_size\": 8, \"hidden_size\": 32, \"num_hidden_layers\": 2, \"num_attention_heads\": 2,"
          " \"intermediate_size\": 64, \"decoder_hidden_size\": 16, \"decoder_num_hidden_layers\": 1,"
          " \"decoder_num_attention_heads\": 2, \"decoder_intermediate_size\": 32}", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "./skelex init --config %s/cfg.json --out %s/m && OMP_NUM_THREADS=1 ./skelex probe --task %s/task.json "
             "--data-root %s --model %s/m --out %s/probe --label-fraction 0.5,1 --folds 3 --test-frac 0.2", d, d, d, d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    snprintf(p, sizeof p, "%s/probe/results.json", d);
    f = fopen(p, "r");
    CHECK(f != NULL);
    if (!f) return;
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    CHECK(j != NULL);
    const cJSON *au = cJSON_GetObjectItem(j, "frac_1_auroc_mean");
    CHECKF(cJSON_IsNumber(au) && au->valuedouble > 0.9, "AUROC %g", cJSON_IsNumber(au) ? au->valuedouble : -1);
    CHECK(cJSON_GetObjectItem(j, "frac_0.5_auroc_mean") != NULL);
    cJSON_Delete(j);
    snprintf(p, sizeof p, "%s/probe/frac_1/fold0/roc.svg", d);
    CHECK(access(p, R_OK) == 0);
    snprintf(p, sizeof p, "%s/probe/split.json", d);
    CHECK(access(p, R_OK) == 0);
}
