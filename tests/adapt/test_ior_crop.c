/* test_ior_crop.c: IoR crops on a synthetic image set with known boxes:
 * every accepted window keeps a box above the threshold, windows have the
 * image's aspect and a scale in range, the whole image is the fallback when
 * no box can qualify, the output is the window resized (no rotation or
 * jitter) and the same seed gives the same crops. */
#include "adapt/ior_crop.h"
#include "io/image.h"
#include "zeroshot/errormap.h"
#include "testlib.h"
#include <stdlib.h>
#include <string.h>

/* A W x H grey image: a soft gradient, with each box filled bright. */
static uint8_t *synthetic(int W, int H, const pix_box *b, int nb) {
    uint8_t *px = malloc((size_t)W * H);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int v = 30 + (x * 50) / W + (y * 40) / H;
            for (int i = 0; i < nb; i++)
                if (x >= b[i].x0 && x < b[i].x1 && y >= b[i].y0 && y < b[i].y1) v = 220;
            px[(size_t)y * W + x] = (uint8_t)v;
        }
    return px;
}

/* Independent of ior_overlap: count the box's pixels inside the window. */
static double overlap_by_pixels(const pix_box *b, const ior_info *w) {
    long in = 0, all = 0;
    for (int y = (int)b->y0; y < (int)b->y1; y++)
        for (int x = (int)b->x0; x < (int)b->x1; x++) {
            all++;
            in += x >= w->x0 && x < w->x0 + w->w && y >= w->y0 && y < w->y0 + w->h;
        }
    return all ? (double)in / all : 0;
}

TEST(test_ior_crops_keep_a_box) {
    struct { int W, H, nb; pix_box b[3]; } set[] = {
        {200, 150, 1, {{20, 30, 50, 60}}},
        {150, 200, 2, {{100, 10, 140, 40}, {10, 150, 30, 190}}},
        {300, 300, 3, {{0, 0, 10, 10}, {140, 140, 160, 160}, {250, 280, 300, 300}}},
        {373, 454, 1, {{180, 200, 260, 300}}},
    };
    ior_params p;
    ior_default_params(&p, 64);
    sx_rng r;
    rng_seed(&r, 42);
    sx_err err;
    uint8_t out[64 * 64];
    for (size_t s = 0; s < sizeof set / sizeof set[0]; s++) {
        int W = set[s].W, H = set[s].H, accepted = 0, crops = 300, smallest = W;
        uint8_t *img = synthetic(W, H, set[s].b, set[s].nb);
        for (int c = 0; c < crops; c++) {
            ior_info info;
            CHECK(ior_crop(img, W, H, set[s].b, set[s].nb, &p, &r, out, &info, &err) == 0);
            CHECK(info.x0 >= 0 && info.y0 >= 0 && info.x0 + info.w <= W && info.y0 + info.h <= H);
            CHECK(info.tries >= 1 && info.tries <= 10);
            CHECK(fabsf(info.angle_deg) <= 10 && fabsf(info.brightness - 1) <= 0.2f && fabsf(info.contrast - 1) <= 0.2f);
            if (info.accepted) {
                accepted++;
                /* same aspect, scale in [0.2, 1] (within rounding) */
                CHECK(info.w >= lrintf(0.2f * W) && info.h >= lrintf(0.2f * H));
                CHECK(fabs((double)info.w / W - (double)info.h / H) <= 1.0 / W + 1.0 / H);
                CHECK(info.box >= 0 && info.box < set[s].nb);
                double best = 0;
                for (int i = 0; i < set[s].nb; i++) best = fmax(best, overlap_by_pixels(&set[s].b[i], &info));
                CHECKF(best > 0.6, "image %zu crop %d: best overlap %.3f", s, c, best);
                CHECK_NEAR(overlap_by_pixels(&set[s].b[info.box], &info), ior_overlap(&set[s].b[info.box], info.x0, info.y0, info.w, info.h), 1e-9);
                if (info.w < smallest) smallest = info.w;
            } else
                CHECK(info.x0 == 0 && info.y0 == 0 && info.w == W && info.h == H && info.tries == 10 && info.box == -1);
        }
        /* most crops qualify within 10 tries, and real zoom happens */
        CHECKF(accepted > crops / 2, "image %zu: %d of %d accepted", s, accepted, crops);
        CHECKF(smallest < W / 2, "image %zu: smallest accepted window %d of %d", s, smallest, W);
        free(img);
    }
}

TEST(test_ior_crop_falls_back_to_whole_image) {
    /* a box over the whole image cannot keep > 0.6 of itself in a window of at most half the sides */
    pix_box b[2] = {{0, 0, 120, 80}, {50, 50, 50, 70}};   /* the second has zero area */
    uint8_t *img = synthetic(120, 80, b, 1), out[32 * 32];
    ior_params p;
    ior_default_params(&p, 32);
    p.scale_max = 0.5f;
    sx_rng r;
    rng_seed(&r, 7);
    sx_err err;
    for (int c = 0; c < 50; c++) {
        ior_info info;
        CHECK(ior_crop(img, 120, 80, b, 2, &p, &r, out, &info, &err) == 0);
        CHECK(!info.accepted && info.tries == 10 && info.w == 120 && info.h == 80 && info.x0 == 0 && info.y0 == 0);
    }
    /* no boxes: a random window by default, the whole image with IOR_NOBOX_WHOLE */
    ior_info info;
    ior_default_params(&p, 32);
    int zoomed = 0;
    for (int c = 0; c < 20; c++) {
        CHECK(ior_crop(img, 120, 80, NULL, 0, &p, &r, out, &info, &err) == 0);
        CHECK(info.accepted && info.tries == 1 && info.box == -1);
        zoomed += info.w < 120;
    }
    CHECK(zoomed >= 15);
    p.nobox = IOR_NOBOX_WHOLE;
    CHECK(ior_crop(img, 120, 80, NULL, 0, &p, &r, out, &info, &err) == 0 && !info.accepted && info.w == 120);
    /* bad parameters are refused */
    p.scale_min = 0;
    CHECK(ior_crop(img, 120, 80, b, 1, &p, &r, out, &info, &err) == -1 && strstr(err.msg, "scale"));
    ior_default_params(&p, 0);
    CHECK(ior_crop(img, 120, 80, b, 1, &p, &r, out, &info, &err) == -1 && strstr(err.msg, "out_size"));
    free(img);
}

TEST(test_ior_crop_output_is_the_window) {
    pix_box b[1] = {{60, 40, 100, 90}};
    int W = 160, H = 120, S = 48;
    uint8_t *img = synthetic(W, H, b, 1), out[48 * 48], want[48 * 48];
    for (int i = 0; i < W * H; i++) img[i] = (uint8_t)(img[i] ^ (i * 37 % 23));   /* texture, so misplacement shows */
    ior_params p;
    ior_default_params(&p, S);
    p.max_rotate_deg = 0;
    p.brightness = p.contrast = 0;
    sx_rng r;
    rng_seed(&r, 3);
    sx_err err;
    int checked = 0;
    for (int c = 0; c < 20; c++) {
        ior_info info;
        CHECK(ior_crop(img, W, H, b, 1, &p, &r, out, &info, &err) == 0);
        CHECK(info.angle_deg == 0 && info.brightness == 1 && info.contrast == 1);
        uint8_t *win = malloc((size_t)info.w * info.h);
        for (int y = 0; y < info.h; y++) memcpy(win + (size_t)y * info.w, img + (size_t)(info.y0 + y) * W + info.x0, (size_t)info.w);
        image_resize_bilinear_u8(win, info.w, info.h, want, S, S);
        free(win);
        CHECK(!memcmp(out, want, sizeof out));
        checked += info.accepted;
    }
    CHECK(checked > 10);
    /* rotation turns about the window's centre: a bright dot there stays there */
    uint8_t dot[101 * 101];
    memset(dot, 0, sizeof dot);
    for (int y = 48; y <= 52; y++)
        for (int x = 48; x <= 52; x++) dot[y * 101 + x] = 255;
    ior_default_params(&p, 101);
    p.scale_min = 1;
    p.brightness = p.contrast = 0;
    pix_box all = {0, 0, 101, 101};
    uint8_t rot[101 * 101];
    ior_info info;
    CHECK(ior_crop(dot, 101, 101, &all, 1, &p, &r, rot, &info, &err) == 0);
    CHECK(info.w == 101 && info.angle_deg != 0);
    CHECK(rot[50 * 101 + 50] == 255 && rot[0] == 0 && rot[40 * 101 + 40] == 0);
    free(img);
}

TEST(test_ior_crop_deterministic_per_seed) {
    pix_box b[2] = {{30, 20, 70, 60}, {120, 90, 150, 130}};
    int W = 180, H = 140;
    uint8_t *img = synthetic(W, H, b, 2), a[40 * 40], c[40 * 40];
    ior_params p;
    ior_default_params(&p, 40);
    sx_err err;
    sx_rng r1, r2, r3;
    rng_seed(&r1, 99);
    rng_seed(&r2, 99);
    rng_seed(&r3, 100);
    int differs = 0;
    for (int k = 0; k < 10; k++) {
        ior_info i1, i2, i3;
        CHECK(ior_crop(img, W, H, b, 2, &p, &r1, a, &i1, &err) == 0);
        CHECK(ior_crop(img, W, H, b, 2, &p, &r2, c, &i2, &err) == 0);
        CHECK(!memcmp(a, c, sizeof a) && !memcmp(&i1, &i2, sizeof i1));
        CHECK(ior_crop(img, W, H, b, 2, &p, &r3, c, &i3, &err) == 0);
        differs += memcmp(a, c, sizeof a) != 0;
    }
    CHECK(differs >= 9);
    /* YOLO boxes to pixels */
    norm_box nb = {0.5f, 0.25f, 0.2f, 0.1f};
    pix_box pb;
    ior_boxes_from_yolo(&nb, 1, 200, 100, &pb);
    CHECK_NEAR(pb.x0, 80, 1e-4);
    CHECK_NEAR(pb.x1, 120, 1e-4);
    CHECK_NEAR(pb.y0, 20, 1e-4);
    CHECK_NEAR(pb.y1, 30, 1e-4);
    free(img);
}

/* On real FracAtlas radiographs with their fracture boxes (skipped without
 * ../shared/data): every accepted window keeps a box above the threshold,
 * and most crops are accepted. */
TEST(test_ior_crop_fracatlas) {
    const char *root = "../shared/data/fracatlas";
    char path[512];
    snprintf(path, sizeof path, "%s/Annotations/YOLO/IMG0000019.txt", root);
    FILE *probe = fopen(path, "r");
    if (!probe) TEST_SKIP("../shared/data/fracatlas absent");
    fclose(probe);
    static const char *stems[] = {"IMG0000019", "IMG0000025", "IMG0000057", "IMG0000058", "IMG0000059",
                                  "IMG0000092", "IMG0000100", "IMG0000143", "IMG0000144", "IMG0000151"};
    ior_params p;
    ior_default_params(&p, 224);
    sx_rng r;
    rng_seed(&r, 1);
    sx_err err;
    uint8_t *out = malloc(224 * 224);
    int images = 0, crops = 0, accepted = 0;
    for (size_t s = 0; s < sizeof stems / sizeof stems[0]; s++) {
        norm_box nb[16];
        pix_box pb[16];
        snprintf(path, sizeof path, "%s/Annotations/YOLO/%s.txt", root, stems[s]);
        int n = boxes_read_yolo(path, nb, 16, &err);
        if (n <= 0) continue;
        gray_image g;
        snprintf(path, sizeof path, "%s/images/Fractured/%s.jpg", root, stems[s]);
        if (image_load_gray(path, &g, &err)) continue;
        uint8_t *u8 = malloc((size_t)g.width * g.height);
        image_minmax_u8(&g, u8);
        ior_boxes_from_yolo(nb, n, g.width, g.height, pb);
        images++;
        for (int c = 0; c < 50; c++, crops++) {
            ior_info info;
            CHECK(ior_crop(u8, g.width, g.height, pb, n, &p, &r, out, &info, &err) == 0);
            if (!info.accepted) continue;
            accepted++;
            double best = 0;
            for (int i = 0; i < n; i++) best = fmax(best, overlap_by_pixels(&pb[i], &info));
            /* pixel counting vs the exact fractional overlap: within a pixel row/column of the box */
            CHECKF(ior_overlap(&pb[info.box], info.x0, info.y0, info.w, info.h) > 0.6 && best > 0.5, "%s: %.3f", stems[s], best);
        }
        free(u8);
        gray_image_free(&g);
    }
    free(out);
    CHECKF(images >= 5, "%d FracAtlas images with boxes found", images);
    CHECKF(accepted > crops / 2, "%d of %d accepted", accepted, crops);
    fprintf(stderr, "    fracatlas: %d images, %d of %d crops accepted within 10 tries\n", images, accepted, crops);
}
