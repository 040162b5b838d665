/* test_shipped.c: `skelex export` and the shipped models standing in for
 * --model (SKELEX_MODELS, or models/ beside the binary). */
#include "hx.h"
#include "io/npy.h"
#include <math.h>

static int run_env(char *out, size_t cap, const char *env, const char *args) {
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "timeout -s KILL 60 env OMP_NUM_THREADS=1 %s ./skelex %s", env, args);
    int rc = tl_run(cmd, out, cap);
    return rc < 0 ? HX_TIMED_OUT : rc;
}

TEST(export_f16_model_gives_the_same_errormap) {
    const char *d = tl_tmpdir();
    char out[16384], cmd[4096];
    tl_write_text(tl_path("cfg.json"), HX_CFG);
    hx_images(tl_path("data"), 2);
    CHECKF(hx_run(out, sizeof out, "init --config %s/cfg.json --out %s/m --seed 3", d, d) == 0, "%s", out);
    int rc = hx_run(out, sizeof out, "export --model %s/m --out %s/h", d, d);
    CHECKF(rc == 0 && strstr(out, "F16"), "rc %d: %s", rc, out);
    size_t n32 = 0, n16 = 0;
    snprintf(cmd, sizeof cmd, "%s/m/model.safetensors", d);
    free(tl_read_file(cmd, &n32));
    snprintf(cmd, sizeof cmd, "%s/h/model.safetensors", d);
    free(tl_read_file(cmd, &n16));
    CHECKF(n16 < n32 * 0.6 && n16 > n32 * 0.4, "f16 %zu bytes vs f32 %zu", n16, n32);
    snprintf(cmd, sizeof cmd, "%s/h/config.json", d);
    char *cfg = tl_read_file(cmd, NULL);
    CHECKF(cfg && strstr(cfg, "\"torch_dtype\":\t\"float16\"") && strstr(cfg, "\"hidden_size\":\t32"), "%s", cfg ? cfg : "(none)");
    free(cfg);
    // refused over an existing model without --force; accepted with it
    CHECK(hx_run(out, sizeof out, "export --model %s/m --out %s/h", d, d) == 1 && strstr(out, "--force"));
    CHECK(hx_run(out, sizeof out, "export --model %s/m --out %s/h --dtype bf16 --force", d, d) == 0);
    CHECK(hx_run(out, sizeof out, "export --model %s/m --out %s/h --dtype f8 --force", d, d) == 2);
    CHECK(hx_run(out, sizeof out, "export --model %s/m --out %s/h --force", d, d) == 0);
    // the f16 model's map is the f32 model's within f16 rounding
    CHECKF(hx_run(out, sizeof out, "errormap --model %s/m --out %s/e32 --passes 4 --precision fp32 %s/data/img000.png", d, d, d) == 0, "%s", out);
    CHECKF(hx_run(out, sizeof out, "errormap --model %s/h --out %s/e16 --passes 4 --precision fp32 %s/data/img000.png", d, d, d) == 0, "%s", out);
    float *a = NULL, *b = NULL;
    int nda = 0, ndb = 0;
    int64_t sa[NPY_MAX_DIMS] = {0}, sb[NPY_MAX_DIMS] = {0};
    sx_err err;
    snprintf(cmd, sizeof cmd, "%s/e32/img000_error.npy", d);
    CHECKF(npy_read_f32(cmd, &a, &nda, sa, &err) == 0, "%s", err.msg);
    snprintf(cmd, sizeof cmd, "%s/e16/img000_error.npy", d);
    CHECKF(npy_read_f32(cmd, &b, &ndb, sb, &err) == 0, "%s", err.msg);
    if (a && b && nda == 2 && ndb == 2 && sa[0] == sb[0] && sa[1] == sb[1]) {
        double worst = 0, scale = 0;
        for (int64_t i = 0; i < sa[0] * sa[1]; i++) {
            if (isnan(a[i]) != isnan(b[i])) { worst = INFINITY; break; }
            if (isnan(a[i])) continue;
            worst = fmax(worst, fabs((double)a[i] - b[i]));
            scale = fmax(scale, fabs((double)a[i]));
        }
        CHECKF(worst <= 0.01 * scale && worst > 0, "worst %g of %g (0: not rounded at all?)", worst, scale);
    } else CHECKF(0, "maps unreadable or of different shapes");
    free(a);
    free(b);
}

TEST(shipped_model_stands_in_for_missing_model) {
    const char *d = tl_tmpdir();
    char out[16384], args[4096], env[1200];
    tl_write_text(tl_path("cfg.json"), HX_CFG);
    hx_images(tl_path("data"), 1);
    mkdir(tl_path("models"), 0755);
    CHECKF(hx_run(out, sizeof out, "init --config %s/cfg.json --out %s/models/skelex-tiny-mae", d, d) == 0, "%s", out);
    snprintf(env, sizeof env, "SKELEX_MODELS=%s/models", d);
    snprintf(args, sizeof args, "errormap --out %s/e --passes 2 %s/data/img000.png", d, d);
    int rc = run_env(out, sizeof out, env, args);
    CHECKF(rc == 0 && strstr(out, "using the shipped skelex-tiny-mae"), "rc %d: %s", rc, out);
    snprintf(args, sizeof args, "%s/e/img000_error.npy", d);
    CHECK(access(args, F_OK) == 0);
    rc = run_env(out, sizeof out, env, "info");
    CHECKF(rc == 0 && strstr(out, "parameters="), "rc %d: %s", rc, out);
    // no heads model there: predict says where it looked, status 2
    snprintf(args, sizeof args, "predict --out %s/p %s/data/img000.png", d, d);
    rc = run_env(out, sizeof out, env, args);
    CHECKF(rc == 2 && strstr(out, "skelex-heads is not installed") && strstr(out, "/models/skelex-heads"), "rc %d: %s", rc, out);
    // a folder that is not one: the environment check refuses it before any command
    rc = run_env(out, sizeof out, "SKELEX_MODELS=/nonexistent/models", "info");
    CHECKF(rc == 2 && strstr(out, "SKELEX_MODELS"), "rc %d: %s", rc, out);
    // an explicit --model wins over the shipped one
    snprintf(args, sizeof args, "info %s/nope", d);
    rc = run_env(out, sizeof out, env, args);
    CHECKF(rc == 1 && !strstr(out, "shipped"), "rc %d: %s", rc, out);
}
