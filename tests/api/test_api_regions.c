/* test_api_regions.c: output groups, regions from error maps and boxes and
 * region-guided prediction through include/skelex.h. */
#include "skelex.h"
#include "api_fixtures.h"
#include "predict_fixtures.h"
#include "zeroshot/regions.h"

static skx_model *load(const char *dir) {
    skx_model *m = NULL;
    skx_error err;
    CHECKF(skx_model_load(dir, &m, &err) == 0 && m, "%s: %s", dir, err.msg);
    return m;
}

static skx_image *phantom_image(const char *name, int w, int h, int variant) {
    CHECK(apifx_phantom(tl_path(name), w, h, variant) == 0);
    skx_image *img = NULL;
    skx_error err;
    CHECKF(skx_image_load_file(tl_path(name), &img, &err) == 0, "%s", err.msg);
    return img;
}

/* A toy (32 px) classifier, untrained (seed 1), of type with K outputs
 * (names, or NULL for the defaults), saved to dir as name. 0 or -1. */
static int save_toy_classifier(const char *dir, const char *name, task_type type, int K, const char *const *names) {
    mae_config cfg = tl_toy_config(32);
    classifier c;
    sx_err e;
    if (classifier_create(&c, NULL, &cfg, type, K, names, 1, &e)) return -1;
    int rc = classifier_save(&c, dir, name, &e);
    classifier_free(&c);
    return rc;
}

TEST(test_api_groups) {
    const char *d = tl_tmpdir();
    char gdir[600], bdir[600], mdir[600];
    snprintf(gdir, sizeof gdir, "%s/grouped", d);
    snprintf(bdir, sizeof bdir, "%s/binary", d);
    snprintf(mdir, sizeof mdir, "%s/multi", d);
    CHECK(pfx_grouped_classifier(gdir, 3) == 0);
    const char *bn[2] = {"no", "fracture"}, *mn[3] = {"a", "b", "c"};
    CHECK(save_toy_classifier(bdir, "b", TASK_BINARY, 2, bn) == 0);
    CHECK(save_toy_classifier(mdir, "m", TASK_MULTICLASS, 3, mn) == 0);
    skx_model *g = load(gdir), *b = load(bdir), *m = load(mdir);
    skx_error err;
    skx_group_info gi;
    if (g) {
        CHECK(skx_model_group_count(g) == 3);
        CHECK(skx_model_group(g, 1, &gi, &err) == 0 && !strcmp(gi.name, "tumour") && gi.kind == SKX_GROUP_SOFTMAX &&
              gi.n_outputs == 4 && gi.outputs[0] == 1 && gi.outputs[3] == 4);
        CHECK(skx_model_group(g, 2, &gi, &err) == 0 && gi.kind == SKX_GROUP_SIGMOID && gi.n_outputs == 1 && gi.outputs[0] == 5);
        CHECK(skx_model_group(g, 3, &gi, &err) == SKX_EINVAL && gi.name == NULL);
        CHECK(skx_model_group(g, -1, &gi, &err) == SKX_EINVAL);
    }
    if (b) {
        CHECK(skx_model_group_count(b) == 1);
        CHECK(skx_model_group(b, 0, &gi, &err) == 0 && !strcmp(gi.name, "labels") && gi.kind == SKX_GROUP_SIGMOID &&
              gi.n_outputs == 1 && gi.outputs[0] == 1 && !strcmp(skx_model_output_name(b, 1), "fracture"));
    }
    if (m) {
        CHECK(skx_model_group_count(m) == 1);
        CHECK(skx_model_group(m, 0, &gi, &err) == 0 && !strcmp(gi.name, "label") && gi.kind == SKX_GROUP_SOFTMAX &&
              gi.n_outputs == 3 && gi.outputs[2] == 2);
    }
    CHECK(apifx_model(d) == 0);
    char mae[600];
    snprintf(mae, sizeof mae, "%s/m", d);
    skx_model *a = load(mae);
    if (a) CHECK(skx_model_group_count(a) == 0 && skx_model_group(a, 0, &gi, &err) == SKX_EINVAL);
    /* groups naming an output the head lacks: the model is refused */
    char path[700];
    snprintf(path, sizeof path, "%s/config.json", gdir);
    char *text = tl_read_file(path, NULL);
    char *at = NULL;   // the last "implant": the implant group's member
    for (char *q = text; q && (q = strstr(q, "\"implant\"")); q++) at = q;
    if (at) {
        memcpy(at, "\"implanX\"", 9);
        tl_write_text(path, text);
        skx_model *bad = NULL;
        CHECK(skx_model_load(gdir, &bad, &err) == SKX_EFORMAT && bad == NULL && strstr(err.msg, "implanX"));
    } else CHECK(at != NULL);
    free(text);
    skx_model_free(g);
    skx_model_free(b);
    skx_model_free(m);
    skx_model_free(a);
}

TEST(test_api_grouped_probabilities) {
    const char *d = tl_tmpdir();
    char gdir[600];
    snprintf(gdir, sizeof gdir, "%s/g", d);
    CHECK(pfx_grouped_classifier(gdir, 9) == 0);
    skx_model *m = load(gdir);
    skx_image *img = phantom_image("p.png", 48, 40, 1);
    skx_ctx *ctx = NULL;
    skx_error err;
    if (!m || !img || skx_ctx_new(m, 1, 1, &ctx, &err)) { skx_image_free(img); skx_model_free(m); CHECK(0); return; }
    double p[PFX_N_OUT];
    CHECKF(skx_classify(ctx, img, NULL, p, PFX_N_OUT, &err) == 0, "%s", err.msg);
    /* the reference: the saved classifier's logits through heads_probs */
    classifier c;
    head_layout L;
    sx_err e;
    CHECK(classifier_load(&c, gdir, &e) == 0);
    char cp[700];
    snprintf(cp, sizeof cp, "%s/config.json", gdir);
    CHECK(heads_load(cp, &L, &e) == 0 && L.n_groups == 3);
    gray_image g;
    CHECK(image_load_gray(tl_path("p.png"), &g, &e) == 0);
    float chw[3 * 32 * 32], want[PFX_N_OUT];
    image_preprocess(&g, 32, chw);
    CHECK(classifier_forward(&c, chw, 1, &e) == 0);
    heads_probs(&L, c.logits, 1, want);
    for (int k = 0; k < PFX_N_OUT; k++) CHECK_NEAR(p[k], want[k], 1e-5);
    CHECK_NEAR(p[1] + p[2] + p[3] + p[4], 1.0, 1e-6);   // the softmax group
    CHECK(fabs(p[0] + p[1] + p[2] + p[3] + p[4] + p[5] - 1.0) > 1e-3);   // not one softmax over all
    gray_image_free(&g);
    heads_free(&L);
    classifier_free(&c);
    skx_ctx_free(ctx);
    skx_image_free(img);
    skx_model_free(m);
}

TEST(test_api_regions_from_map_and_boxes) {
    tl_tmpdir();
    skx_image *img = phantom_image("p.png", 200, 100, 0);
    if (!img) return;
    /* a 20 x 20 map, hot in the 3 x 2 patch at x 10..12, y 4..5 and a weaker spot at (2, 15) */
    skx_errormap em;
    memset(&em, 0, sizeof em);
    em.size = 20;
    em.map = malloc(sizeof(float) * 400);
    for (int i = 0; i < 400; i++) em.map[i] = 0;   // a flat background: the threshold is then strict
    for (int y = 4; y <= 5; y++)
        for (int x = 10; x <= 12; x++) em.map[y * 20 + x] = 5;
    em.map[15 * 20 + 2] = 3;
    em.map[0] = NAN;
    skx_region_opts o;
    skx_region_opts_default(&o);
    CHECK(o.k == 3 && o.percentile == 97 && o.pad == 0.10 && o.min_area == 0.001);
    o.pad = 0;
    o.percentile = 98;
    skx_region r[8];
    int n = 0;
    skx_error err;
    CHECKF(skx_regions_from_errormap(&em, img, &o, r, 8, &n, &err) == 0, "%s", err.msg);
    CHECK(n == 3);
    if (n == 3) {
        /* the hot area first (larger mass), in original pixels: x 10..13 of 20 -> 100..130, y 4..6 -> 20..30 */
        CHECK(r[0].source == SKX_REGION_ERRORMAP && r[0].box[0] == 100 && r[0].box[1] == 20 && r[0].box[2] == 130 &&
              r[0].box[3] == 30);
        CHECK(r[1].source == SKX_REGION_ERRORMAP && r[1].box[0] == 20 && r[1].box[1] == 75 && r[1].box[2] == 30 &&
              r[1].box[3] == 80);
        CHECK(r[2].source == SKX_REGION_WHOLE && r[2].box[0] == 0 && r[2].box[2] == 200 && r[2].box[3] == 100);
        CHECK(!strcmp(skx_region_source_name(r[0].source), "errormap") && !strcmp(skx_region_source_name(r[2].source), "whole"));
    }
    o.k = 1;
    CHECK(skx_regions_from_errormap(&em, img, &o, r, 8, &n, &err) == 0 && n == 2 && r[0].box[0] == 100);
    CHECK(skx_regions_from_errormap(&em, img, &o, r, 1, &n, &err) == SKX_EINVAL && n == 0);   // no room
    o.percentile = 101;
    CHECK(skx_regions_from_errormap(&em, img, &o, r, 8, &n, &err) == SKX_EINVAL && strstr(err.msg, "percentile"));
    CHECK(skx_regions_from_errormap(&em, img, NULL, r, 8, &n, &err) == 0 && n >= 2 && r[n - 1].source == SKX_REGION_WHOLE);
    /* the defaults pad by 10% of the box on each side */
    if (n >= 2) CHECK(r[0].box[0] == 97 && r[0].box[2] == 133 && r[0].box[1] == 19 && r[0].box[3] == 31);
    free(em.map);

    float boxes[12] = {-10, 5, 50, 40, 60, 60, 60, 90, 150, 80, 400, 300};
    CHECK(skx_regions_from_boxes(boxes, 3, img, r, 8, &n, &err) == 0 && n == 3);
    if (n == 3) {
        CHECK(r[0].source == SKX_REGION_BOX && r[0].box[0] == 0 && r[0].box[3] == 40);   // clipped
        CHECK(r[1].source == SKX_REGION_BOX && r[1].box[0] == 150 && r[1].box[2] == 200 && r[1].box[3] == 100);  // empty one dropped
        CHECK(r[2].source == SKX_REGION_WHOLE);
    }
    CHECK(skx_regions_from_boxes(boxes, 3, img, r, 2, &n, &err) == SKX_EINVAL);
    CHECK(skx_regions_from_boxes(NULL, 0, img, r, 1, &n, &err) == 0 && n == 1 && r[0].source == SKX_REGION_WHOLE);
    boxes[0] = NAN;
    CHECK(skx_regions_from_boxes(boxes, 1, img, r, 8, &n, &err) == SKX_EINVAL);
    skx_image_free(img);
}

TEST(test_api_predict_regions) {
    const char *d = tl_tmpdir();
    char gdir[600], bdir[600];
    snprintf(gdir, sizeof gdir, "%s/g", d);
    snprintf(bdir, sizeof bdir, "%s/b", d);
    CHECK(pfx_grouped_classifier(gdir, 4) == 0);
    CHECK(save_toy_classifier(bdir, "b", TASK_BINARY, 2, NULL) == 0);
    CHECK(apifx_model(d) == 0);
    char mae[600];
    snprintf(mae, sizeof mae, "%s/m", d);
    skx_model *m = load(gdir), *bm = load(bdir), *am = load(mae);
    skx_image *img = phantom_image("p.png", 90, 70, 1);
    skx_ctx *ctx = NULL, *bctx = NULL, *actx = NULL;
    skx_error err;
    if (!m || !bm || !am || !img || skx_ctx_new(m, 1, 1, &ctx, &err) || skx_ctx_new(bm, 1, 1, &bctx, &err) ||
        skx_ctx_new(am, 4, 1, &actx, &err)) {
        CHECK(0);
        goto out;
    }
    skx_errormap_opts eo;
    skx_errormap_opts_default(&eo);
    eo.passes = 4;
    skx_errormap em;
    CHECKF(skx_errormap_compute(actx, img, &eo, &em, &err) == 0, "%s", err.msg);
    skx_region r[4];
    int n = 0;
    CHECKF(skx_regions_from_errormap(&em, img, NULL, r, 4, &n, &err) == 0, "%s", err.msg);
    skx_errormap_free(&em);
    CHECK(n >= 2 && r[n - 1].source == SKX_REGION_WHOLE);
    skx_prediction pr;
    CHECKF(skx_predict_regions(ctx, img, r, n, &pr, &err) == 0, "%s", err.msg);
    CHECK(pr.n_regions == n && pr.n_outputs == PFX_N_OUT);
    double want_t = -1, want_m = -1;
    int distinct = 0;
    for (int i = 0; i < n && pr.probs; i++) {
        double p[PFX_N_OUT];
        CHECK(skx_classify(ctx, img, r[i].box, p, PFX_N_OUT, &err) == 0);
        for (int j = 0; j < PFX_N_OUT; j++) CHECK(p[j] == pr.probs[i * PFX_N_OUT + j]);
        if (p[1] + p[2] + p[3] > want_t) want_t = p[1] + p[2] + p[3];
        if (p[1] > want_m) want_m = p[1];
        if (i && fabs(p[0] - pr.probs[0]) > 1e-6) distinct = 1;
        CHECK(r[i].box[0] >= 0 && r[i].box[1] >= 0 && r[i].box[2] <= 90 && r[i].box[3] <= 70 && r[i].box[2] > r[i].box[0]);
    }
    CHECK(distinct);   // the regions are classified on their own pixels
    for (int j = 0; j < PFX_N_OUT && pr.probs; j++) {
        double best = -1;
        int at = -1;
        for (int i = 0; i < n; i++)
            if (pr.probs[i * PFX_N_OUT + j] > best) best = pr.probs[i * PFX_N_OUT + j], at = i;
        CHECK(pr.max[j] == best && pr.argmax[j] == at);
    }
    CHECK(pr.has_decision == 1);
    CHECK_NEAR(pr.p_tumour, want_t, 1e-6);
    CHECK_NEAR(pr.p_malignant, want_m, 1e-6);
    CHECK(pr.tumour == (pr.p_tumour > 0.5) && pr.malignant == (pr.tumour && pr.p_malignant >= 0.5));
    CHECK(pr.region_tumour >= 0 && pr.region_tumour < n);
    skx_prediction_free(&pr);
    CHECK(pr.probs == NULL);
    /* a binary head: no tumour rule; errors as values */
    CHECK(skx_predict_regions(bctx, img, r, n, &pr, &err) == 0 && pr.has_decision == 0 && pr.n_outputs == 2);
    skx_prediction_free(&pr);
    CHECK(skx_predict_regions(actx, img, r, n, &pr, &err) == SKX_EMODEL && pr.probs == NULL);
    CHECK(skx_predict_regions(ctx, img, r, 0, &pr, &err) == SKX_EINVAL);
    r[0].box[0] = 1000;
    CHECK(skx_predict_regions(ctx, img, r, n, &pr, &err) == SKX_EINVAL && pr.probs == NULL);
out:
    skx_ctx_free(ctx);
    skx_ctx_free(bctx);
    skx_ctx_free(actx);
    skx_image_free(img);
    skx_model_free(m);
    skx_model_free(bm);
    skx_model_free(am);
}
