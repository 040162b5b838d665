/* test_regions.c: regions from a synthetic error map with two planted blobs
 * (boxes in pixels of a non-square original, ranked by error mass, whole
 * image last, NaN ignored, small areas dropped), regions from boxes, the
 * per-output max over regions picking the region with a planted lesion,
 * and the SKELEX tumour rule. */
#include "zeroshot/regions.h"
#include "core/rng.h"
#include "testlib.h"
#include <stdlib.h>
#include <string.h>

enum { S = 64, W = 300, H = 200 };

typedef struct { int x0, y0, x1, y1; float v; } planted;   /* inclusive map pixels */

/* Noise in [0, 0.1) with a quiet ring around each blob (so no noise pixel
 * joins it), the blobs at value v, a NaN band (never masked) on the left. */
static float *synthetic_map(const planted *b, int nb, uint64_t seed) {
    float *m = malloc(sizeof(float) * S * S);
    sx_rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < S * S; i++) m[i] = 0.1f * rng_uniform(&r);
    for (int k = 0; k < nb; k++)
        for (int y = b[k].y0 - 2; y <= b[k].y1 + 2; y++)
            for (int x = b[k].x0 - 2; x <= b[k].x1 + 2; x++) {
                if (x < 0 || y < 0 || x >= S || y >= S) continue;
                int in = x >= b[k].x0 && x <= b[k].x1 && y >= b[k].y0 && y <= b[k].y1;
                m[y * S + x] = in ? b[k].v : 0;
            }
    for (int y = 0; y < S; y++)
        for (int x = 0; x < 3; x++) m[y * S + x] = NAN;
    return m;
}

/* The blob's extent in original pixels must lie inside the box, and the box
 * must not exceed it by more than the padding plus a pixel on any side. */
static int box_fits(const pix_box *bx, const planted *b, double pad) {
    double x0 = b->x0 * (double)W / S, x1 = (b->x1 + 1) * (double)W / S;
    double y0 = b->y0 * (double)H / S, y1 = (b->y1 + 1) * (double)H / S;
    double px = pad * (x1 - x0) + 1, py = pad * (y1 - y0) + 1;
    int ok = bx->x0 <= x0 && bx->x1 >= x1 && bx->y0 <= y0 && bx->y1 >= y1 && bx->x0 >= x0 - px && bx->x1 <= x1 + px &&
             bx->y0 >= y0 - py && bx->y1 <= y1 + py;
    if (!ok)
        fprintf(stderr, "    box [%g %g %g %g] vs blob [%g %g %g %g] pad %g\n", bx->x0, bx->y0, bx->x1, bx->y1, x0, y0, x1, y1, pad);
    return ok;
}

TEST(test_regions_from_errormap_blobs) {
    /* A: 6 x 5 at 1.0 (mass 30); B: 8 x 6 at 0.8 (mass 38.4): B ranks first */
    planted b[2] = {{10, 20, 15, 24, 1.0f}, {40, 44, 47, 49, 0.8f}};
    float *m = synthetic_map(b, 2, 5);
    region_params p;
    regions_default_params(&p);
    CHECK(p.k == 3 && p.percentile == 97 && p.pad_frac == 0.10);
    region out[4];
    int n;
    sx_err err;
    CHECK(regions_from_errormap(m, S, W, H, &p, out, &n, &err) == 0);
    /* the scattered noise above the 97th percentile is under the minimum area: two regions + whole */
    CHECKF(n == 3, "%d regions", n);
    if (n == 3) {
        CHECK(out[0].source == REGION_ERRORMAP && out[1].source == REGION_ERRORMAP && out[2].source == REGION_WHOLE);
        CHECK(out[0].area == 48 && out[1].area == 30);
        CHECK_NEAR(out[0].mass, 38.4, 1e-4);
        CHECK_NEAR(out[1].mass, 30, 1e-4);
        CHECK(box_fits(&out[0].box, &b[1], 0.10) && box_fits(&out[1].box, &b[0], 0.10));
        CHECK(out[2].box.x0 == 0 && out[2].box.y0 == 0 && out[2].box.x1 == W && out[2].box.y1 == H);
        /* boxes are whole pixels */
        CHECK(out[0].box.x0 == floorf(out[0].box.x0) && out[0].box.y1 == floorf(out[0].box.y1));
    }
    /* k = 1 keeps the heavier; no padding gives exactly the blob's extent, rounded outwards */
    p.k = 1;
    p.pad_frac = 0;
    CHECK(regions_from_errormap(m, S, W, H, &p, out, &n, &err) == 0 && n == 2);
    CHECK(out[0].box.x0 == 187 && out[0].box.x1 == 225);   /* 40*300/64 = 187.5 -> 187; 48*300/64 = 225 */
    CHECK(out[0].box.y0 == 137 && out[0].box.y1 == 157);   /* 44*200/64 = 137.5 -> 137; 50*200/64 = 156.25 -> 157 */
    /* padding grows the box, clipped to the image: a blob in the corner */
    planted corner = {58, 58, 63, 63, 1.0f};
    free(m);
    m = synthetic_map(&corner, 1, 6);
    regions_default_params(&p);
    p.pad_frac = 0.5;
    CHECK(regions_from_errormap(m, S, W, H, &p, out, &n, &err) == 0 && n == 2);
    CHECK(out[0].box.x1 == W && out[0].box.y1 == H && box_fits(&out[0].box, &corner, 0.5));
    /* a large minimum area drops everything; bad parameters are refused */
    p.min_area_frac = 0.5;
    CHECK(regions_from_errormap(m, S, W, H, &p, out, &n, &err) == 0 && n == 1 && out[0].source == REGION_WHOLE);
    regions_default_params(&p);
    p.percentile = 101;
    CHECK(regions_from_errormap(m, S, W, H, &p, out, &n, &err) == -1 && strstr(err.msg, "percentile"));
    regions_default_params(&p);
    CHECK(regions_from_errormap(m, S, 0, H, &p, out, &n, &err) == -1);
    /* all NaN, or constant: the whole image alone */
    for (int i = 0; i < S * S; i++) m[i] = NAN;
    CHECK(regions_from_errormap(m, S, W, H, &p, out, &n, &err) == 0 && n == 1);
    for (int i = 0; i < S * S; i++) m[i] = 0.25f;
    CHECK(regions_from_errormap(m, S, W, H, &p, out, &n, &err) == 0 && n == 1);
    free(m);
}

TEST(test_regions_from_boxes) {
    norm_box b[3] = {{0.5f, 0.5f, 0.2f, 0.4f}, {0.05f, 0.5f, 0.2f, 0.2f}, {0.3f, 0.3f, 0, 0.1f}};
    region out[4];
    int n = regions_from_boxes(b, 3, W, H, out);
    CHECK(n == 3);   /* the zero-width box is dropped */
    CHECK(out[0].source == REGION_BOX && out[2].source == REGION_WHOLE);
    CHECK_NEAR(out[0].box.x0, 120, 1e-3);
    CHECK_NEAR(out[0].box.x1, 180, 1e-3);
    CHECK_NEAR(out[0].box.y0, 60, 1e-3);
    CHECK_NEAR(out[0].box.y1, 140, 1e-3);
    CHECK(out[1].box.x0 == 0);   /* clipped */
    /* a region's model input is its pixels, resized */
    uint8_t img[W * H], dst[16 * 16];
    for (int i = 0; i < W * H; i++) img[i] = (uint8_t)(i % W < 150 ? 10 : 200);
    pix_box left = {0, 0, 150.5f, (float)H}, right = {150, 10, (float)W + 20, 50}, off = {W + 1, 0, W + 5, 5};
    sx_err err;
    CHECK(regions_crop_u8(img, W, H, &right, 16, dst, &err) == 0);
    for (int i = 0; i < 16 * 16; i++) CHECK(dst[i] == 200);
    CHECK(regions_crop_u8(img, W, H, &left, 16, dst, &err) == 0);
    CHECK(dst[0] == 10 && dst[15] > 10);   /* rounded outwards: 150.5 takes in the bright column 150 */
    CHECK(regions_crop_u8(img, W, H, &off, 16, dst, &err) == -1 && strstr(err.msg, "outside"));
    CHECK(!strcmp(region_source_name(out[0].source), "box") && !strcmp(region_source_name(REGION_WHOLE), "whole") &&
          !strcmp(region_source_name(REGION_ERRORMAP), "errormap"));
}

/* A stand-in classifier: p(abnormal) of a region = the share of its pixels
 * that are lesion, scaled; p(other) a constant. */
static void classify_regions(const region *rg, int R, const uint8_t *lesion, float *probs) {
    for (int r = 0; r < R; r++) {
        long in = 0, all = 0;
        for (int y = (int)rg[r].box.y0; y < (int)rg[r].box.y1; y++)
            for (int x = (int)rg[r].box.x0; x < (int)rg[r].box.x1; x++) { all++; in += lesion[y * W + x]; }
        probs[r * 2 + 0] = all ? fminf(1, 2.0f * in / all) : 0;
        probs[r * 2 + 1] = 0.3f;
    }
}

TEST(test_regions_max_picks_the_lesion) {
    /* the lesion sits under blob A (the lighter one, ranked second) */
    planted b[2] = {{10, 20, 15, 24, 1.0f}, {40, 44, 47, 49, 0.8f}};
    float *m = synthetic_map(b, 2, 9);
    uint8_t *lesion = calloc(W * H, 1);
    int lx0 = 10 * W / S + 2, lx1 = 16 * W / S - 2, ly0 = 20 * H / S + 2, ly1 = 25 * H / S - 2;
    for (int y = ly0; y < ly1; y++)
        for (int x = lx0; x < lx1; x++) lesion[y * W + x] = 1;
    region_params p;
    regions_default_params(&p);
    region rg[4];
    int R;
    sx_err err;
    CHECK(regions_from_errormap(m, S, W, H, &p, rg, &R, &err) == 0 && R == 3);
    float probs[4 * 2], pmax[2];
    int arg[2];
    classify_regions(rg, R, lesion, probs);
    regions_max(probs, R, 2, pmax, arg);
    int lesion_region = -1;
    for (int r = 0; r < R; r++)
        if (rg[r].box.x0 <= lx0 && rg[r].box.x1 >= lx1 && rg[r].box.y0 <= ly0 && rg[r].box.y1 >= ly1 && rg[r].source != REGION_WHOLE)
            lesion_region = r;
    CHECK(lesion_region == 1);
    CHECK(arg[0] == lesion_region && pmax[0] == probs[lesion_region * 2]);
    CHECK(pmax[0] > probs[(R - 1) * 2] * 5);   /* the whole image dilutes the lesion */
    CHECK(arg[1] == 0 && pmax[1] == 0.3f);     /* ties go to the first region */
    free(m);
    free(lesion);
}

TEST(test_regions_tumour_rule) {
    const char *names[5] = {"abnormal", "malignant", "intermediate", "benign", "no_tumour"};
    tumour_decision d;
    /* sums 0.3 and 0.3 per region: no tumour, though the per-output maxima add up to 0.6 */
    float a[2 * 5] = {0.9f, 0.3f, 0, 0, 0.7f, 0.1f, 0, 0, 0.3f, 0.7f};
    regions_tumour_rule(a, 2, 5, names, &d);
    CHECK(d.applies && !d.tumour && !d.malignant);
    CHECK_NEAR(d.p_tumour, 0.3, 1e-6);
    /* region 1: 0.2 + 0.2 + 0.2 -> tumour, max p1 0.25 < 0.5 -> not malignant */
    float b[2 * 5] = {0.5f, 0.25f, 0, 0, 0.75f, 0.5f, 0.2f, 0.2f, 0.2f, 0.4f};
    regions_tumour_rule(b, 2, 5, names, &d);
    CHECK(d.tumour && !d.malignant && d.region_tumour == 1 && d.region_malignant == 0);
    /* p1 = 0.5 exactly is malignant (>=); a sum of exactly 0.5 is not a tumour (>) */
    float c[1 * 5] = {0.5f, 0.5f, 0.25f, 0, 0.25f};
    regions_tumour_rule(c, 1, 5, names, &d);
    CHECK(d.tumour && d.malignant);
    float e[1 * 5] = {0.5f, 0.25f, 0.125f, 0.125f, 0.5f};
    regions_tumour_rule(e, 1, 5, names, &d);
    CHECK(!d.tumour && !d.malignant);
    /* without the tumour outputs the rule does not apply */
    const char *other[2] = {"fracture", "implant"};
    regions_tumour_rule(a, 2, 2, other, &d);
    CHECK(!d.applies);
}
