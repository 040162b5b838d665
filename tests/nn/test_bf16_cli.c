/* test_bf16_cli.c: --precision on the command line (skelex bench): the
 * choices, what each resolves to on this CPU, the CPU line, and the note
 * said once when bf16 is asked where oneDNN cannot run it. */
#include "core/cpu.h"
#include "nn/precision.h"
#include "testlib.h"
#include <string.h>

static const char CFG[] = "{\"image_size\": 32, \"patch_size\": 8, \"hidden_size\": 32, \"num_hidden_layers\": 1,"
                          " \"num_attention_heads\": 2, \"intermediate_size\": 64, \"decoder_hidden_size\": 32,"
                          " \"decoder_num_hidden_layers\": 1, \"decoder_num_attention_heads\": 2,"
                          " \"decoder_intermediate_size\": 64}";

static int count(const char *s, const char *sub) {
    int n = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub)) n++;
    return n;
}

static int bench(const char *prec, char *out, size_t cap) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "timeout -s KILL 300 ./skelex bench train --config %s --batch 2 --steps 1 --precision %s",
             tl_path("cfg.json"), prec);
    return tl_run(cmd, out, cap);
}

TEST(test_bf16_cli_precision_choices) {
    CHECK(tl_write_text(tl_path("cfg.json"), CFG) == 0);
    static char out[16384];
    int avail = gemm_bf16_available(), native = sx_cpu_info()->bf16 == SX_BF16_NATIVE;
    char want[64];

    CHECKF(bench("fp32", out, sizeof out) == 0, "%s", out);
    CHECKF(strstr(out, "precision=fp32\n") && count(out, "note:") == 0, "%s", out);
    CHECKF(strstr(out, "bench: cpu: ") && strstr(out, "bf16 products: "), "%s", out);
    snprintf(want, sizeof want, "cpu_isa=%s\n", sx_cpu_info()->dnnl_isa);
    CHECKF(strstr(out, want) != NULL, "%s", out);
    snprintf(want, sizeof want, "bf16_products=%s\n", sx_bf16_support_name(sx_cpu_info()->bf16));
    CHECKF(strstr(out, want) != NULL, "%s", out);

    CHECKF(bench("auto", out, sizeof out) == 0, "%s", out);
    CHECKF(strstr(out, native && avail ? "precision=bf16\n" : "precision=fp32\n") && count(out, "note:") == 0, "%s", out);

    CHECKF(bench("bf16", out, sizeof out) == 0, "%s", out);
    if (!avail) {
        // said once, then fp32
        CHECKF(strstr(out, "precision=fp32\n") && count(out, "note:") == 1 && strstr(out, "running fp32"), "%s", out);
        CHECKF(strstr(out, "fp32 (requested bf16)") != NULL, "%s", out);
    } else {
        CHECKF(strstr(out, "precision=bf16\n") && count(out, "note:") == !native, "%s", out);
    }

    CHECKF(bench("half", out, sizeof out) == 2, "%s", out);
    CHECKF(strstr(out, "fp32, bf16 or auto") != NULL, "%s", out);
}
