/* test_probe_cli.c: `skelex probe` end to end on a synthetic two-class task
 * (class folders), with a small randomly initialised encoder. */
#include "io/image.h"
#include "testlib.h"
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cjson/cJSON.h>

TEST(test_probe_cli_separates_classes) {
    const char *d = tl_tmpdir();
    char cmd[4096], out[16384], p[700];
    FILE *f;
    CHECK(tl_synthetic_task(d, 30) == 0);
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
