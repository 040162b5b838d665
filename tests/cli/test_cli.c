/* test_cli.c: the skelex program end to end (init, info, reconstruct),
 * including its error messages, on a synthetic radiograph. */
#include "io/checkpoint.h"
#include "io/image.h"
#include "io/npy.h"
#include "testlib.h"
#include <stdlib.h>
#include <string.h>

static void write_phantom(const char *path, int w, int h) {
    uint8_t *px = malloc((size_t)w * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int dx = x - w / 2, dy = y - h / 2;
            px[y * w + x] = (uint8_t)(30 + (dx * dx + dy * dy < (w * w) / 16 ? 150 : 0) + (x * 40) / w);
        }
    sx_err err;
    png_write_u8(path, px, w, h, 1, &err);
    free(px);
}

TEST(test_cli_init_info_reconstruct) {
    const char *d = tl_tmpdir();
    char cmd[4096], out[8192], cfgpath[600];
    // a small config.json, as a user would write it
    snprintf(cfgpath, sizeof cfgpath, "%s/cfg.json", d);
    tl_write_text(cfgpath, "{\"image_size\": 64, \"patch_size\": 16, \"hidden_size\": 32, \"num_hidden_layers\": 1,"
                           " \"num_attention_heads\": 2, \"intermediate_size\": 64, \"decoder_hidden_size\": 16,"
                           " \"decoder_num_hidden_layers\": 1, \"decoder_num_attention_heads\": 2, \"decoder_intermediate_size\": 32}");
    snprintf(cmd, sizeof cmd, "timeout -s KILL 300 ./skelex init --config %s --out %s/m --seed 5", cfgpath, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    sx_err err;
    mae_model m;
    char mdir[600];
    snprintf(mdir, sizeof mdir, "%s/m", d);
    CHECK(checkpoint_load(mdir, &m, &err) == 0);

    snprintf(cmd, sizeof cmd, "timeout -s KILL 300 ./skelex info %s", mdir);
    CHECK(tl_run(cmd, out, sizeof out) == 0);
    char want[64];
    snprintf(want, sizeof want, "parameters=%zu\n", mae_count_params(&m));
    CHECKF(strstr(out, want) != NULL, "info said: %s", out);

    // reconstruct with a given noise: the logits file equals the library's forward
    char img[600], noise[600];
    snprintf(img, sizeof img, "%s/phantom.png", d);
    write_phantom(img, 90, 70);
    snprintf(noise, sizeof noise, "%s/noise.npy", d);
    float nz[16];
    for (int i = 0; i < 16; i++) nz[i] = (float)((i * 7) % 16) / 16.0f;
    int64_t nshape[1] = {16};
    CHECK(npy_write_f32(noise, nz, 1, nshape, &err) == 0);
    snprintf(cmd, sizeof cmd, "timeout -s KILL 300 ./skelex reconstruct --model %s --image %s --noise %s --out %s/r", mdir, img, noise, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    float pixels[3 * 64 * 64];
    CHECK(image_preprocess_file(img, 64, pixels, &err) == 0);
    CHECK(mae_forward(&m, pixels, nz, 1, &err) == 0);
    const char *l = strstr(out, "loss=");
    CHECKF(l && fabs(atof(l + 5) - m.loss) <= 1e-6 * fabs(m.loss), "%s vs %g", out, (double)m.loss);
    char path[700];
    snprintf(path, sizeof path, "%s/r.npy", d);
    float *logits;
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    CHECK(npy_read_f32(path, &logits, &ndim, shape, &err) == 0);
    CHECK(ndim == 2 && shape[0] == 16 && shape[1] == 16 * 16 * 3);
    double worst = 0;  // the CLI is built -O3, this test -O1: allow rounding differences
    for (int i = 0; i < 16 * 768; i++) worst = fmax(worst, fabs(logits[i] - mae_logits(&m, 0)[i]));
    CHECKF(worst < 1e-5, "logits differ by %g", worst);
    free(logits);
    gray_image panel;
    snprintf(path, sizeof path, "%s/r.png", d);
    CHECK(image_load_gray(path, &panel, &err) == 0);
    CHECK(panel.width == 4 * 64 + 5 * 4 && panel.height == 64 + 2 * 4);
    gray_image_free(&panel);

    // errors: clear, non-zero, naming the problem
    snprintf(cmd, sizeof cmd, "timeout -s KILL 300 ./skelex reconstruct --model %s --image %s/nope.png --out %s/x", mdir, d, d);
    CHECK(tl_run(cmd, out, sizeof out) == 1 && strstr(out, "nope.png"));
    int64_t bad[1] = {15};
    CHECK(npy_write_f32(noise, nz, 1, bad, &err) == 0);
    snprintf(cmd, sizeof cmd, "timeout -s KILL 300 ./skelex reconstruct --model %s --image %s --noise %s --out %s/x", mdir, img, noise, d);
    CHECK(tl_run(cmd, out, sizeof out) == 1 && strstr(out, "16 patches"));
    snprintf(cmd, sizeof cmd, "timeout -s KILL 300 ./skelex info %s/missing", d);
    CHECK(tl_run(cmd, out, sizeof out) == 1 && strstr(out, "missing"));
    CHECK(tl_run("timeout -s KILL 300 ./skelex init --config gigantic --out /tmp/never", out, sizeof out) == 1 && strstr(out, "gigantic"));
    CHECK(tl_run("timeout -s KILL 300 ./skelex frobnicate", out, sizeof out) == 2 && strstr(out, "unknown command"));
    CHECK(tl_run("timeout -s KILL 300 ./skelex reconstruct --help", out, sizeof out) == 0 && strstr(out, "--noise"));
    mae_free(&m);
}
