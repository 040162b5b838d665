/* test_predict_cli.c: `skelex predict` end to end with a tiny MAE
 * (./skelex init) and a tiny grouped classifier: PNG, JPEG and DICOM
 * inputs, the JSON structure, aggregates equal to the maximum over the
 * regions' probabilities, boxes inside the image, the CSV, the overlays,
 * exit statuses; and the overlay's drawing and font. */
#include "adapt/predict.h"
#include "adapt/predict_draw.h"
#include "api/api_fixtures.h"
#include "data/csv.h"
#include "dicom_fixtures.h"
#include "api/predict_fixtures.h"
#include <cjson/cJSON.h>
#include <sys/stat.h>

static cJSON *read_json(const char *path) {
    char *t = tl_read_file(path, NULL);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    CHECKF(j != NULL, "%s: unreadable JSON", path);
    return j;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    CHECKF(cJSON_IsNumber(v), "no number %s", k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Check one image entry: regions, boxes inside the image, aggregate = max
 * over regions, the decision; returns the number of regions. */
static int check_image(const cJSON *im, const char *mode, int W, int H) {
    CHECK(num(im, "width") == W && num(im, "height") == H);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(im, "regions");
    int n = cJSON_GetArraySize(rs);
    CHECK(cJSON_IsArray(rs) && n >= 1);
    for (int i = 0; i < n; i++) {
        const cJSON *r = cJSON_GetArrayItem(rs, i), *b = cJSON_GetObjectItemCaseSensitive(r, "box");
        const char *src = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "source"));
        CHECK(cJSON_GetArraySize(b) == 4);
        double x0 = cJSON_GetArrayItem(b, 0)->valuedouble, y0 = cJSON_GetArrayItem(b, 1)->valuedouble;
        double x1 = cJSON_GetArrayItem(b, 2)->valuedouble, y1 = cJSON_GetArrayItem(b, 3)->valuedouble;
        CHECKF(x0 >= 0 && y0 >= 0 && x1 <= W && y1 <= H && x1 > x0 && y1 > y0, "box %g %g %g %g in %d x %d", x0, y0, x1, y1, W, H);
        CHECK(src != NULL);
        if (!src) continue;
        if (i == n - 1) CHECK(!strcmp(src, "whole") && x0 == 0 && y0 == 0 && x1 == W && y1 == H);
        else CHECKF(!strcmp(src, !strcmp(mode, "errormap") ? "errormap" : "box"), "%s", src);
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "probs");
        CHECK(cJSON_GetArraySize(p) == PFX_N_OUT);
        double s = 0;
        for (int k = 1; k <= 4; k++) s += num(p, PFX_NAMES[k]);
        CHECK_NEAR(s, 1, 1e-6);   // the tumour group is a softmax
    }
    const cJSON *ag = cJSON_GetObjectItemCaseSensitive(im, "aggregate");
    CHECK(cJSON_GetArraySize(ag) == PFX_N_OUT);
    double pt = -1;
    for (int i = 0; i < n; i++) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rs, i), "probs");
        double t = num(p, "malignant") + num(p, "intermediate") + num(p, "benign");
        if (t > pt) pt = t;
    }
    for (int k = 0; k < PFX_N_OUT; k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(ag, PFX_NAMES[k]);
        double best = -1;
        int at = -1;
        for (int i = 0; i < n; i++) {
            double v = num(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rs, i), "probs"), PFX_NAMES[k]);
            if (v > best) best = v, at = i;
        }
        CHECK(num(a, "probability") == best && num(a, "region") == at);
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(im, "decision");
    CHECK(cJSON_IsObject(d));
    if (d) {
        CHECK_NEAR(num(d, "p_tumour"), pt, 1e-6);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "tumour")) == (pt > 0.5));
        CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "rule")), "skelex_tumour"));
    }
    return n;
}

/* The CSV: valid RFC 4180, header, one row per image and output, equal to the JSON aggregate. */
static void check_csv(const char *path, const cJSON *doc) {
    size_t len = 0;
    char *t = tl_read_file(path, &len);
    CHECK(t != NULL);
    if (!t) return;
    csv_reader r;
    sx_err e;
    csv_init(&r, path, t, len);
    int rows = 0, rc;
    while ((rc = csv_next(&r, &e)) == 1) {
        CHECK(csv_nfields(&r) == 9);
        if (rows++ == 0) {
            CHECK(!strcmp(csv_field(&r, 0), "file") && !strcmp(csv_field(&r, 2), "probability") && !strcmp(csv_field(&r, 4), "source"));
            continue;
        }
        const cJSON *ims = cJSON_GetObjectItemCaseSensitive(doc, "images"), *im;
        int found = 0;
        cJSON_ArrayForEach(im, ims) {
            if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(im, "file")), csv_field(&r, 0))) continue;
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(im, "aggregate"), csv_field(&r, 1));
            found = a != NULL;
            if (a) CHECK_NEAR(strtod(csv_field(&r, 2), NULL), num(a, "probability"), 1e-8);
            if (a) CHECK(atoi(csv_field(&r, 3)) == (int)num(a, "region"));
        }
        CHECKF(found, "row %d: %s / %s not in the JSON", rows, csv_field(&r, 0), csv_field(&r, 1));
    }
    CHECK(rc == 0);
    CHECK(rows == 1 + PFX_N_OUT * cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "images")));
    CHECK(strstr(t, "\r\n") != NULL);
    csv_free(&r);
    free(t);
}

/* The entry of the image whose path ends in name. */
static const cJSON *entry(const cJSON *doc, const char *name) {
    const cJSON *im;
    cJSON_ArrayForEach(im, cJSON_GetObjectItemCaseSensitive(doc, "images")) {
        const char *f = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(im, "file"));
        if (f && strlen(f) >= strlen(name) && !strcmp(f + strlen(f) - strlen(name), name)) return im;
    }
    CHECKF(0, "no entry for %s", name);
    return NULL;
}

static void check_overlay(const char *path, int W, int H) {
    gray_image g;
    sx_err e;
    CHECKF(image_load_gray(path, &g, &e) == 0, "%s", e.msg);
    if (!g.data) return;
    CHECK(g.width == W && g.height == H);
    gray_image_free(&g);
}

/* The test folder's models: the MAE of apifx_model and the grouped
 * classifier (seed) in its cls, whose path goes to cls. 0 or -1. */
static int fixture_models(char cls[600], uint64_t seed) {
    const char *d = tl_tmpdir();
    snprintf(cls, 600, "%s/cls", d);
    return apifx_model(d) == 0 && pfx_grouped_classifier(cls, seed) == 0 ? 0 : -1;
}

TEST(test_predict_cli_png_jpeg_dicom) {
    const char *d = tl_tmpdir();
    char cls[600], cmd[4000], out[8192];
    CHECK(fixture_models(cls, 11) == 0);
    CHECK(apifx_phantom(tl_path("knee.png"), 90, 70, 1) == 0);
    uint8_t *px = malloc(80 * 64);
    apifx_phantom_px(px, 80, 64, 1);
    tl_jpeg jp = {.w = 80, .h = 64, .comps = 1, .quality = 92, .px = px};
    CHECK(tl_write_jpeg(tl_path("hand.jpg"), &jp) == 0);
    free(px);
    int have_dcm = dcmfx_have_tools();
    if (have_dcm) {
        int32_t dpx[60 * 44];
        dcmfx_phantom(60, 44, 0, 100, 3000, dpx);
        dcm_spec s = {.w = 60, .h = 44, .bits_alloc = 16, .bits_stored = 12, .px = dpx};
        CHECK(dcmfx_write(tl_path("foot.dcm"), &s) == 0);
    }
    snprintf(cmd, sizeof cmd, "./skelex predict --model %s --mae %s/m --regions errormap --passes 4 --top-k 2 --out %s/o %s/knee.png %s/hand.jpg %s",
             cls, d, d, d, d, have_dcm ? tl_path("foot.dcm") : "");
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    cJSON *doc = read_json(tl_path("o/predictions.json"));
    if (doc) {
        const cJSON *ims = cJSON_GetObjectItemCaseSensitive(doc, "images");
        CHECK(cJSON_GetArraySize(ims) == 2 + have_dcm);
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "failed")) == 0);
        CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "regions")), "errormap"));
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "groups")) == 3);
        const char *files[3] = {"knee.png", "hand.jpg", "foot.dcm"}, *ovl[3] = {"o/knee_predict.png", "o/hand_predict.png", "o/foot_predict.png"};
        int dims[3][2] = {{90, 70}, {80, 64}, {60, 44}};
        for (int i = 0; i < 2 + have_dcm; i++) {
            const cJSON *im = entry(doc, files[i]);
            if (!im) continue;
            int n = check_image(im, "errormap", dims[i][0], dims[i][1]);
            CHECK(n >= 1 && n <= 3);
            CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(im, "overlay")), ovl[i] + 2));
            check_overlay(tl_path(ovl[i]), dims[i][0], dims[i][1]);
        }
        check_csv(tl_path("o/predictions.csv"), doc);
    }
    cJSON_Delete(doc);

    /* boxes:DIR: a YOLO file for the knee, none for the hand (whole image only) */
    CHECK(mkdir(tl_path("boxes"), 0755) == 0);
    tl_write_text(tl_path("boxes/knee.txt"), "0 0.5 0.5 0.4 0.3\n1 0.2 0.25 0.2 0.2\n");
    snprintf(cmd, sizeof cmd, "./skelex predict --model %s --regions boxes:%s/boxes --out %s/b %s/knee.png %s/hand.jpg",
             cls, d, d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    doc = read_json(tl_path("b/predictions.json"));
    if (doc) {
        const cJSON *knee = entry(doc, "knee.png"), *hand = entry(doc, "hand.jpg");
        if (knee) CHECK(check_image(knee, "boxes", 90, 70) == 3);
        const cJSON *b = knee ? cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(knee, "regions"), 0), "box") : NULL;
        CHECK(b != NULL);
        if (b) CHECK_NEAR(cJSON_GetArrayItem(b, 0)->valuedouble, 27, 1e-3);   // 0.3 and 0.7 of 90
        if (b) CHECK_NEAR(cJSON_GetArrayItem(b, 2)->valuedouble, 63, 1e-3);
        if (hand) CHECK(check_image(hand, "boxes", 80, 64) == 1);
        check_csv(tl_path("b/predictions.csv"), doc);
    }
    cJSON_Delete(doc);

    /* whole; a partial batch: exit 3 with the bad file under "failed" */
    tl_write_text(tl_path("bad.png"), "not an image");
    snprintf(cmd, sizeof cmd, "./skelex predict --model %s --regions whole --out %s/w %s/knee.png %s/bad.png", cls, d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 3, "%s", out);
    doc = read_json(tl_path("w/predictions.json"));
    if (doc) {
        CHECK(check_image(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "images"), 0), "whole", 90, 70) == 1);
        const cJSON *f = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "failed"), 0);
        CHECK(f && strstr(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "file")), "bad.png"));
    }
    cJSON_Delete(doc);
    snprintf(cmd, sizeof cmd, "./skelex predict --model %s --regions whole --out %s/x %s/bad.png", cls, d, d);
    CHECK(tl_run(cmd, out, sizeof out) == 1);
}

TEST(test_predict_cli_usage) {
    const char *d = tl_tmpdir();
    char cls[600], cmd[4000], out[8192];
    CHECK(fixture_models(cls, 2) == 0);
    CHECK(apifx_phantom(tl_path("a.png"), 40, 40, 0) == 0);
    const char *bad[] = {
        "--regions errormap --out %s/o %s/a.png",                    /* no --mae */
        "--regions nope --out %s/o %s/a.png",                        /* bad mode */
        "--regions boxes:%s/none --out %s/o",                        /* no input */
        "--regions whole --top-k -1 --out %s/o %s/a.png",            /* out of range */
        "--regions whole --percentile nan --out %s/o %s/a.png",
        "--regions whole --pad 11 --out %s/o %s/a.png",
        "--regions whole --bogus --out %s/o %s/a.png",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char args[2000];
        snprintf(args, sizeof args, bad[i], d, d);
        /* no shipped MAE either: SKELEX_MODELS names an empty folder */
        snprintf(cmd, sizeof cmd, "env SKELEX_MODELS=%s ./skelex predict --model %s %s", d, cls, args);
        CHECKF(tl_run(cmd, out, sizeof out) == 2, "%s: %s", args, out);
    }
    snprintf(cmd, sizeof cmd, "./skelex predict --model %s --regions boxes:%s/none --out %s/o %s/a.png", cls, d, d, d);
    CHECK(tl_run(cmd, out, sizeof out) == 2 && strstr(out, "no such folder"));
    /* setup errors: exit 1 (an MAE as the classifier, a classifier as the MAE) */
    snprintf(cmd, sizeof cmd, "./skelex predict --model %s/m --regions whole --out %s/o %s/a.png", d, d, d);
    CHECK(tl_run(cmd, out, sizeof out) == 1 && strstr(out, "not a classification model"));
    snprintf(cmd, sizeof cmd, "./skelex predict --model %s --mae %s --regions errormap --out %s/o %s/a.png", cls, cls, d, d);
    CHECK(tl_run(cmd, out, sizeof out) == 1 && strstr(out, "--mae must be an MAE"));
    snprintf(cmd, sizeof cmd, "./skelex predict --help");
    CHECK(tl_run(cmd, out, sizeof out) == 0 && strstr(out, "boxes:DIR"));
}

TEST(test_predict_overlay_draws_boxes_and_text) {
    uint8_t gray[60 * 40];
    memset(gray, 100, sizeof gray);
    draw_canvas c;
    CHECK(draw_canvas_from_gray(&c, gray, 60, 40) == 0);
    const uint8_t red[3] = {255, 0, 0}, green[3] = {0, 255, 0};
    draw_rect(&c, 10, 5, 30, 25, 2, red);
    /* the outline's pixels, and the inside untouched */
    CHECK(c.rgb[3 * (5 * 60 + 10)] == 255 && c.rgb[3 * (6 * 60 + 20) + 1] == 0 && c.rgb[3 * (24 * 60 + 29)] == 255);
    CHECK(c.rgb[3 * (15 * 60 + 20)] == 100 && c.rgb[3 * (7 * 60 + 12)] == 100);
    draw_rect(&c, -5, -5, 100, 100, 1, red);   // clipped, no write outside
    draw_text(&c, 40, 30, "A1", 1, green);
    /* 'A' row 0 is .###.: columns 1..3 set, 0 and 4 not */
    CHECK(draw_glyph_pixel('A', 0, 0) == 0 && draw_glyph_pixel('A', 1, 0) == 1 && draw_glyph_pixel('A', 4, 3) == 1);
    CHECK(c.rgb[3 * (30 * 60 + 41) + 1] == 255 && c.rgb[3 * (30 * 60 + 40) + 1] == 100);
    CHECK(draw_glyph_pixel('a', 1, 0) == draw_glyph_pixel('A', 1, 0));   // lower case drawn as upper case
    CHECK(draw_glyph_pixel('\x01', 1, 0) == draw_glyph_pixel('?', 1, 0));
    CHECK(draw_text_width("A1", 2) == 22 && draw_text_height(3) == 21);
    int lit = 0;
    for (int i = 0; i < 60 * 40; i++) lit += c.rgb[3 * i + 1] == 255;
    int want = 0;
    for (int r = 0; r < 7; r++)
        for (int k = 0; k < 5; k++) want += draw_glyph_pixel('A', k, r) + draw_glyph_pixel('1', k, r);
    CHECK(lit == want);
    draw_text(&c, 58, 38, "WWW", 3, green);   // clipped at the edges
    draw_canvas_free(&c);
}

/* The library behind the command in-process (so the sanitizers see every
 * path): errormap regions, a failed image recorded, boxes from YOLO files
 * (a malformed one fails that image), the files written. */
TEST(test_predict_library_in_process) {
    const char *d = tl_tmpdir();
    char cls[600], mae[600], outdir[600];
    snprintf(mae, sizeof mae, "%s/m", d);
    snprintf(outdir, sizeof outdir, "%s/o", d);
    CHECK(fixture_models(cls, 5) == 0);
    CHECK(apifx_phantom(tl_path("a.png"), 70, 50, 1) == 0);
    tl_write_text(tl_path("bad.png"), "nope");
    predict_opts o;
    predict_default_opts(&o);
    CHECK(o.mode == PREDICT_ERRORMAP && o.region.k == 3 && o.map.passes == 10);
    sx_err e;
    CHECK(predict_parse_mode("boxes:", &o, &e) == -1 && predict_parse_mode("box", &o, &e) == -1);
    CHECK(predict_parse_mode("errormap", &o, &e) == 0);
    o.map.passes = 3;
    o.threads = 1;
    predictor p;
    CHECK(predict_open(&p, cls, NULL, outdir, &o, &e) == -1 && strstr(e.msg, "--mae"));
    CHECK(predict_open(&p, tl_path("nothing"), mae, outdir, &o, &e) == -1);
    CHECKF(predict_open(&p, cls, mae, outdir, &o, &e) == 0, "%s", e.msg);
    CHECK(predict_image(&p, tl_path("a.png"), "a", &e) == 0);
    CHECK(predict_image(&p, tl_path("bad.png"), "bad", &e) == -1);
    CHECK(predict_finish(&p, &e) == 0);
    predict_close(&p);
    cJSON *doc = read_json(tl_path("o/predictions.json"));
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "images")) == 1);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "failed")) == 1);
    cJSON_Delete(doc);
    check_overlay(tl_path("o/a_predict.png"), 70, 50);

    CHECK(mkdir(tl_path("bx"), 0755) == 0);
    tl_write_text(tl_path("bx/a.txt"), "0 0.5 0.5 0.2 0.2\n");
    tl_write_text(tl_path("bx/c.txt"), "0 0.5 oops\n");
    CHECK(apifx_phantom(tl_path("c.png"), 40, 40, 0) == 0);
    char mode[700];
    snprintf(mode, sizeof mode, "boxes:%s", tl_path("bx"));
    CHECK(predict_parse_mode(mode, &o, &e) == 0 && o.mode == PREDICT_BOXES);
    snprintf(outdir, sizeof outdir, "%s/ob", d);
    CHECKF(predict_open(&p, cls, NULL, outdir, &o, &e) == 0, "%s", e.msg);
    CHECK(predict_image(&p, tl_path("a.png"), "a", &e) == 0);
    CHECK(predict_image(&p, tl_path("c.png"), "c", &e) == -1 && strstr(e.msg, "c.txt"));
    CHECK(predict_finish(&p, &e) == 0);
    predict_close(&p);
    doc = read_json(tl_path("ob/predictions.json"));
    const cJSON *im = entry(doc, "a.png");
    if (im) CHECK(check_image(im, "boxes", 70, 50) == 2);
    check_csv(tl_path("ob/predictions.csv"), doc);
    cJSON_Delete(doc);
}
