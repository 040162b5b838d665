/* test_api.c: include/skelex.h end to end: models, images from files and
 * memory (PNG, JPEG, DICOM), error maps equal to `skelex errormap` and to
 * examples/api_errormap.c bit for bit, errors as values, two threads over
 * one model, classification. */
#include "skelex.h"
#include "api_fixtures.h"
#include "dicom_fixtures.h"
#include "nn/classifier.h"
#include <pthread.h>

static skx_model *load_model(const char *dir) {
    skx_model *m = NULL;
    skx_error err;
    int rc = skx_model_load(dir, &m, &err);
    CHECKF(rc == 0 && m, "%s", err.msg);
    return m;
}

static int map_npy(const skx_errormap *em, void **npy, size_t *len) {
    skx_error err;
    int rc = skx_errormap_npy(em, npy, len, &err);
    CHECKF(rc == 0, "%s", err.msg);
    return rc;
}

TEST(test_api_errormap_equals_cli_and_example) {
    const char *d = tl_tmpdir();
    CHECK(apifx_model(d) == 0);
    char mdir[600], img[600], cmd[3000], out[8192];
    snprintf(mdir, sizeof mdir, "%s/m", d);
    snprintf(img, sizeof img, "%s/knee.png", d);
    CHECK(apifx_phantom(img, 90, 70, 1) == 0);
    snprintf(cmd, sizeof cmd, "./skelex errormap --model %s --out %s/o --passes 4 --seed 3 %s", mdir, d, img);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    snprintf(cmd, sizeof cmd, "./build/api_errormap %s %s %s/ex.npy 4 3", mdir, img, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    size_t n_cli = 0, n_ex = 0, n_png = 0;
    void *cli = tl_read_file(tl_path("o/knee_error.npy"), &n_cli), *ex = tl_read_file(tl_path("ex.npy"), &n_ex);
    CHECK(cli && ex && n_cli == n_ex && n_cli > 128 && !memcmp(cli, ex, n_cli));

    skx_model *m = load_model(mdir);
    void *png = tl_read_file(img, &n_png);
    skx_image *a = NULL, *b = NULL;
    skx_error err;
    CHECKF(skx_image_load_file(img, &a, &err) == 0, "%s", err.msg);
    CHECKF(skx_image_load_memory(png, n_png, "upload.png", &b, &err) == 0, "%s", err.msg);
    skx_ctx *ctx = NULL;
    CHECK(skx_ctx_new(m, 4, 1, &ctx, &err) == 0);
    skx_errormap_opts o;
    skx_errormap_opts_default(&o);
    CHECK(o.passes == 10 && o.masking == SKX_MASKING_BALANCED && o.seed == 0);
    o.passes = 4;
    o.seed = 3;
    skx_errormap ea, eb;
    if (a && b && ctx) {
        CHECKF(skx_errormap_compute(ctx, a, &o, &ea, &err) == 0, "%s", err.msg);
        CHECKF(skx_errormap_compute(ctx, b, &o, &eb, &err) == 0, "%s", err.msg);
        void *na = NULL, *nb = NULL;
        size_t la = 0, lb = 0;
        map_npy(&ea, &na, &la);
        map_npy(&eb, &nb, &lb);
        // the CLI's map (up to rounding: this binary is built -O1 with sanitizers, the CLI -O3)
        CHECK(la == n_cli && cli && !memcmp(na, cli, 128));
        for (size_t i = 128; cli && la == n_cli && i + 4 <= la; i += 4) {
            float x, y;
            memcpy(&x, (char *)na + i, 4);
            memcpy(&y, (char *)cli + i, 4);
            if (fabsf(x - y) > 1e-5f * (1 + fabsf(y))) { CHECKF(0, "value %zu: %g vs %g", (i - 128) / 4, x, y); break; }
        }
        CHECK(lb == la && !memcmp(na, nb, la));
        CHECK(ea.size == 64 && ea.passes == 4 && ea.never_masked == 0 && ea.mean > 0 && ea.max >= ea.scale_max);
        CHECK(ea.peak_x >= 0 && ea.peak_x <= 90 && ea.peak_y >= 0 && ea.peak_y <= 70);
        CHECK_NEAR(ea.mask_ratio, 0.75, 1e-6);
        // the overlay PNG decodes back to the image's size plus the colour bar
        void *ov = NULL;
        size_t lov = 0;
        CHECKF(skx_errormap_overlay_png(a, &ea, 0.6f, 0, &ov, &lov, &err) == 0, "%s", err.msg);
        skx_image *back = NULL;
        CHECK(skx_image_load_memory(ov, lov, "overlay", &back, &err) == 0);
        CHECK(back && skx_image_width(back) == 90 && skx_image_height(back) == 70);
        skx_image_free(back);
        free(ov);
        CHECK(skx_errormap_overlay_png(a, &ea, 0.6f, 1, &ov, &lov, &err) == 0);
        CHECK(skx_image_load_memory(ov, lov, "overlay", &back, &err) == 0);
        CHECK(back && skx_image_width(back) > 90);
        skx_image_free(back);
        free(ov);
        // another seed, another map; a different ratio goes through
        o.seed = 4;
        skx_errormap ec;
        CHECK(skx_errormap_compute(ctx, a, &o, &ec, &err) == 0);
        CHECK(memcmp(ec.map, ea.map, sizeof(float) * 64 * 64) != 0);
        skx_errormap_free(&ec);
        o.mask_ratio = 0.5f;
        CHECKF(skx_errormap_compute(ctx, a, &o, &ec, &err) == 0, "%s", err.msg);
        CHECK_NEAR(ec.mask_ratio, 0.5, 1e-6);
        skx_errormap_free(&ec);
        o.passes = 5;  // over max_batch
        CHECK(skx_errormap_compute(ctx, a, &o, &ec, &err) == SKX_EINVAL && err.code == SKX_EINVAL);
        o.passes = 4;
        o.mask_ratio = 1.5f;
        CHECK(skx_errormap_compute(ctx, a, &o, &ec, &err) == SKX_EINVAL);
        free(na);
        free(nb);
        skx_errormap_free(&ea);
        skx_errormap_free(&eb);
    }
    skx_model_info info;
    skx_model_get_info(m, &info);
    CHECK(info.kind == SKX_MODEL_MAE && info.image_size == 64 && info.patch_size == 16 && info.n_outputs == 0);
    CHECK(info.parameters > 0 && !strcmp(info.name, "m"));
    CHECK(!strcmp(skx_version(), SKX_VERSION));
    skx_ctx_free(ctx);
    skx_image_free(a);
    skx_image_free(b);
    skx_model_free(m);
    free(png);
    free(cli);
    free(ex);
}

TEST(test_api_images_from_memory) {
    const char *d = tl_tmpdir();
    enum { W = 48, H = 40 };
    uint8_t px[W * H];
    apifx_phantom_px(px, W, H, 0);
    const char *jpg = tl_path("x.jpg");
    CHECK(tl_write_jpeg(jpg, &(tl_jpeg){.w = W, .h = H, .comps = 1, .quality = 90, .px = px}) == 0);
    char paths[3][600];
    snprintf(paths[0], 600, "%s", jpg);
    snprintf(paths[1], 600, "%s/x.dcm", d);
    snprintf(paths[2], 600, "%s/x_jls.dcm", d);
    int have_dcm = dcmfx_have_tools();
    int32_t dpx[W * H];
    if (have_dcm) {
        dcmfx_phantom(W, H, 0, 100, 4000, dpx);
        dcm_spec s = {.w = W, .h = H, .bits_alloc = 16, .bits_stored = 12, .px = dpx};
        CHECK(dcmfx_write(paths[1], &s) == 0);
        CHECK(dcmfx_run("dcmcjpls '%s' '%s'", paths[1], paths[2]) == 0);   // JPEG-LS, encapsulated
    }
    for (int k = 0; k < 1 + 2 * have_dcm; k++) {
        size_t n = 0;
        void *bytes = tl_read_file(paths[k], &n);
        skx_image *a = NULL, *b = NULL;
        skx_error err;
        CHECKF(skx_image_load_file(paths[k], &a, &err) == 0, "%s", err.msg);
        CHECKF(skx_image_load_memory(bytes, n, "upload", &b, &err) == 0, "%s: %s", paths[k], err.msg);
        if (a && b) {
            CHECK(skx_image_width(a) == W && skx_image_height(a) == H && skx_image_width(b) == W);
            CHECK(!memcmp(skx_image_gray8(a), skx_image_gray8(b), W * H));
        }
        // a truncated upload is refused with a reason, not a crash
        skx_image *c = NULL;
        if (k == 1) CHECK(skx_image_load_memory(bytes, n / 2, "half", &c, &err) == SKX_EFORMAT && strstr(err.msg, "half"));
        skx_image_free(c);
        skx_image_free(a);
        skx_image_free(b);
        free(bytes);
    }
    if (!have_dcm) fprintf(stderr, "    (DICOM part skipped: DCMTK tools missing)\n");
}

TEST(test_api_errors_are_values) {
    const char *d = tl_tmpdir();
    skx_error err;
    skx_image *img = (skx_image *)1;
    CHECK(skx_image_load_file(tl_path("missing.png"), &img, &err) == SKX_EIO && img == NULL && err.code == SKX_EIO);
    CHECK(strstr(err.msg, "missing.png") != NULL);
    tl_write_text(tl_path("text.png"), "hello, not an image");
    CHECK(skx_image_load_file(tl_path("text.png"), &img, &err) == SKX_EFORMAT && strstr(err.msg, "not an image"));
    CHECK(skx_image_load_memory("GIF89a....", 10, "x.gif", &img, &err) == SKX_EFORMAT && strstr(err.msg, "x.gif"));
    CHECK(skx_image_load_memory(NULL, 0, NULL, &img, &err) == SKX_EFORMAT);
    skx_model *m = (skx_model *)1;
    CHECK(skx_model_load(tl_path("nomodel"), &m, &err) == SKX_EIO && m == NULL);
    CHECK(skx_model_load(tl_path("nomodel"), &m, NULL) == SKX_EIO);  // err may be NULL
    // a classifier asked for an error map, an MAE asked to classify
    mae_config cfg = tl_toy_config(32);
    classifier c;
    sx_err e;
    char cdir[600];
    snprintf(cdir, sizeof cdir, "%s/cls", d);
    CHECK(classifier_create(&c, NULL, &cfg, TASK_BINARY, 2, NULL, 1, &e) == 0);
    CHECKF(classifier_save(&c, cdir, "t", &e) == 0, "%s", e.msg);
    classifier_free(&c);
    skx_model *cm = load_model(cdir);
    uint8_t px[40 * 40];
    apifx_phantom_px(px, 40, 40, 0);
    png_write_u8(tl_path("p.png"), px, 40, 40, 1, &e);
    CHECK(skx_image_load_file(tl_path("p.png"), &img, &err) == 0);
    skx_ctx *ctx = NULL;
    if (cm && img) {
        CHECK(skx_ctx_new(cm, 10, 1, &ctx, &err) == 0);
        skx_errormap em;
        CHECK(skx_errormap_compute(ctx, img, NULL, &em, &err) == SKX_EMODEL && strstr(err.msg, "classifier"));
        double p[2];
        CHECK(skx_classify(ctx, img, NULL, p, 1, &err) == SKX_EINVAL);  // no room
        float bad[4] = {10, 10, 5, 5};
        CHECK(skx_classify(ctx, img, bad, p, 2, &err) == SKX_EINVAL);
    }
    skx_ctx *none = (skx_ctx *)1;
    if (cm) CHECK(skx_ctx_new(cm, 0, 1, &none, &err) == SKX_EINVAL && none == NULL);  // max_batch 0
    skx_ctx_free(ctx);
    skx_image_free(img);
    skx_model_free(cm);
}

TEST(test_api_classify) {
    const char *d = tl_tmpdir();
    mae_config cfg = tl_toy_config(32);
    classifier c;
    sx_err e;
    const char *names[3] = {"normal", "fracture", "implant"};
    CHECK(classifier_create(&c, NULL, &cfg, TASK_MULTICLASS, 3, names, 7, &e) == 0);
    char cdir[600];
    snprintf(cdir, sizeof cdir, "%s/cls", d);
    CHECKF(classifier_save(&c, cdir, "t", &e) == 0, "%s", e.msg);
    uint8_t px[50 * 40];
    apifx_phantom_px(px, 50, 40, 1);
    png_write_u8(tl_path("p.png"), px, 50, 40, 1, &e);
    // the reference: the classifier itself on the preprocessed crop
    gray_image g;
    CHECK(image_load_gray(tl_path("p.png"), &g, &e) == 0);
    float chw[3 * 32 * 32];
    double want[3], want_box[3];
    image_preprocess(&g, 32, chw);
    CHECK(classifier_forward(&c, chw, 1, &e) == 0);
    classifier_outputs(&c, want, NULL);
    gray_image crop = {20, 10, malloc(sizeof(float) * 200)};
    for (int y = 0; y < 10; y++) memcpy(crop.data + y * 20, g.data + (y + 5) * 50 + 10, sizeof(float) * 20);
    image_preprocess(&crop, 32, chw);
    CHECK(classifier_forward(&c, chw, 1, &e) == 0);
    classifier_outputs(&c, want_box, NULL);
    gray_image_free(&crop);
    gray_image_free(&g);
    classifier_free(&c);

    skx_model *m = load_model(cdir);
    skx_error err;
    skx_image *img = NULL;
    CHECK(skx_image_load_file(tl_path("p.png"), &img, &err) == 0);
    skx_model_info info;
    if (m) {
        skx_model_get_info(m, &info);
        CHECK(info.kind == SKX_MODEL_CLASSIFIER && info.n_outputs == 3 && info.image_size == 32);
        CHECK(!strcmp(skx_model_output_name(m, 1), "fracture") && skx_model_output_name(m, 3) == NULL);
    }
    skx_ctx *ctx = NULL;
    if (m && img && skx_ctx_new(m, 1, 1, &ctx, &err) == 0) {
        double p[3];
        CHECKF(skx_classify(ctx, img, NULL, p, 3, &err) == 0, "%s", err.msg);
        // (1e-6: the ctx runs on 1 thread, the reference on 2; products sum in another order)
        for (int k = 0; k < 3; k++) CHECK_NEAR(p[k], want[k], 1e-6);
        CHECK_NEAR(p[0] + p[1] + p[2], 1.0, 1e-9);
        float box[4] = {10, 5, 30, 15};
        CHECK(skx_classify(ctx, img, box, p, 3, &err) == 0);
        for (int k = 0; k < 3; k++) CHECK_NEAR(p[k], want_box[k], 1e-6);
        CHECK(fabs(p[0] - want[0]) > 1e-4);   // the box is not the whole image
        skx_errormap em;
        CHECK(skx_errormap_compute(ctx, img, NULL, &em, &err) == SKX_EMODEL);
    }
    skx_ctx_free(ctx);
    skx_image_free(img);
    skx_model_free(m);
}

typedef struct { skx_ctx *ctx; const skx_image *img; skx_errormap em; int rc; } job;

static void *run_job(void *p) {
    job *j = p;
    skx_errormap_opts o;
    skx_errormap_opts_default(&o);
    o.passes = 3;
    o.seed = 11;
    j->rc = skx_errormap_compute(j->ctx, j->img, &o, &j->em, NULL);
    return NULL;
}

TEST(test_api_two_threads_one_model) {
    const char *d = tl_tmpdir();
    CHECK(apifx_model(d) == 0);
    char mdir[600];
    snprintf(mdir, sizeof mdir, "%s/m", d);
    CHECK(apifx_phantom(tl_path("a.png"), 80, 64, 0) == 0 && apifx_phantom(tl_path("b.png"), 64, 90, 1) == 0);
    skx_model *m = load_model(mdir);
    skx_image *ia = NULL, *ib = NULL;
    skx_error err;
    CHECK(skx_image_load_file(tl_path("a.png"), &ia, &err) == 0 && skx_image_load_file(tl_path("b.png"), &ib, &err) == 0);
    if (!m || !ia || !ib) { skx_image_free(ia); skx_image_free(ib); skx_model_free(m); return; }
    job one[2] = {{0}}, two[2] = {{0}};
    CHECK(skx_ctx_new(m, 3, 1, &one[0].ctx, &err) == 0);
    one[1].ctx = one[0].ctx;
    one[0].img = two[0].img = ia;
    one[1].img = two[1].img = ib;
    run_job(&one[0]);
    run_job(&one[1]);
    CHECK(skx_ctx_new(m, 3, 1, &two[0].ctx, &err) == 0 && skx_ctx_new(m, 3, 1, &two[1].ctx, &err) == 0);
    pthread_t t[2];
    for (int k = 0; k < 2; k++) pthread_create(&t[k], NULL, run_job, &two[k]);
    for (int k = 0; k < 2; k++) pthread_join(t[k], NULL);
    for (int k = 0; k < 2; k++) {
        CHECK(one[k].rc == 0 && two[k].rc == 0);
        if (!one[k].rc && !two[k].rc)
            CHECK(!memcmp(one[k].em.map, two[k].em.map, sizeof(float) * 64 * 64) && one[k].em.peak_x == two[k].em.peak_x);
    }
    CHECK(one[0].em.map && one[1].em.map && memcmp(one[0].em.map, one[1].em.map, sizeof(float) * 64 * 64));
    for (int k = 0; k < 2; k++) { skx_errormap_free(&one[k].em); skx_errormap_free(&two[k].em); }
    skx_ctx_free(one[0].ctx);
    skx_ctx_free(two[0].ctx);
    skx_ctx_free(two[1].ctx);
    skx_image_free(ia);
    skx_image_free(ib);
    skx_model_free(m);
}
