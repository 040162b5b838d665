/* test_data.c: tests for data.c (dataset, augmentation, loader) and for the
 * scaled JPEG loader in image.c. Every image is synthetic, written here
 * (png_write_u8 or libjpeg through tl_write_jpeg); one test reads real FracAtlas files and skips
 * when ../shared/data is absent. */
#include "data/data.h"
#include "io/image.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static int count_substr(const char *s, const char *sub) {
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, sub)); p += strlen(sub)) n++;
    return n;
}

/* A grey test image, different for each seed k: gradient, a bright block
 * left of centre (so it is not mirror-symmetric), and a little texture. */
static uint8_t *pattern(int w, int h, int k) {
    uint8_t *p = malloc((size_t)w * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int v = 20 + (x * 120) / w + (y * 50) / h + ((x * 7 + y * 3 + k * 11) % 13);
            if (x > w / 8 && x < w / 3 && y > h / 4 && y < h / 2 + k % 5) v = 235;
            p[(size_t)y * w + x] = (uint8_t)v;
        }
    return p;
}

static void write_pattern_png(const char *path, int w, int h, int k) {
    uint8_t *p = pattern(w, h, k);
    sx_err e;
    int rc = png_write_u8(path, p, w, h, 1, &e);
    CHECKF(rc == 0, "%s", e.msg);
    free(p);
}

/* Write grey px as a JPEG: comps 1 (grey) or 3 (RGB, the grey with a
 * colour tint); app1 optional. */
static int write_grey_jpeg(const char *path, const uint8_t *grey, int w, int h, int comps, int quality,
                           const uint8_t *app1, unsigned app1_len) {
    uint8_t *rgb = NULL;
    if (comps == 3) {
        rgb = malloc((size_t)w * h * 3);
        for (size_t i = 0; i < (size_t)w * h; i++) {
            rgb[3 * i] = grey[i];
            rgb[3 * i + 1] = (uint8_t)(grey[i] * 3 / 4);
            rgb[3 * i + 2] = (uint8_t)(255 - grey[i] / 2);
        }
    }
    int rc = tl_write_jpeg(path, &(tl_jpeg){w, h, comps, quality, 0, 0, rgb ? rgb : grey, app1, app1_len});
    free(rgb);
    return rc;
}

/* Copy the first frac of src's bytes to dst (a truncated file). */
static void truncate_copy(const char *src, const char *dst, double frac) {
    size_t n;
    char *all = tl_read_file(src, &n);
    CHECK(all != NULL);
    CHECK(tl_write_file(dst, all, (size_t)(n * frac)) == 0);
    free(all);
}

static void write_random_bytes(const char *path, size_t n, uint32_t seed) {
    uint8_t *b = malloc(n);
    for (size_t i = 0; i < n; i++) { seed = seed * 1664525u + 1013904223u; b[i] = (uint8_t)(seed >> 24); }
    CHECK(tl_write_file(path, b, n) == 0);
    free(b);
}

static void mkdir_t(const char *name) { CHECK(mkdir(tl_path(name), 0700) == 0); }

/* ------------------------------------------------------------------------ */
/* Dataset                                                                  */

TEST(data_scan_dir_recursive_sorted) {
    mkdir_t("d"); mkdir_t("d/sub"); mkdir_t("d/sub/deep"); mkdir_t("d/.hidden"); mkdir_t("d/empty");
    const char *files[] = {"d/b.png", "d/A.JPG", "d/sub/c.jpeg", "d/sub/deep/e.Png", "d/notes.txt",
                           "d/x.gif", "d/.hidden/h.png", "d/.dot.png", "d/sub/noext", "d/sub/png"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) CHECK(tl_write_text(tl_path(files[i]), "x") == 0);
    CHECK(symlink(tl_path("d/sub"), tl_path("d/link")) == 0); /* a link to a directory: not followed */

    dataset ds;
    dataset_init(&ds);
    sx_err e;
    char root[512];
    snprintf(root, sizeof root, "%s", tl_path("d"));
    CHECKF(dataset_add(&ds, root, &e) == 0, "%s", e.msg);
    const char *want[] = {"d/A.JPG", "d/b.png", "d/sub/c.jpeg", "d/sub/deep/e.Png"};
    CHECKF(dataset_count(&ds) == 4, "count %zu", dataset_count(&ds));
    for (size_t i = 0; i < 4 && i < dataset_count(&ds); i++)
        CHECKF(!strcmp(dataset_path(&ds, i), tl_path(want[i])), "%zu: %s", i, dataset_path(&ds, i));
    /* adding it again, or spelled with a trailing slash, adds nothing */
    CHECK(dataset_add(&ds, root, &e) == 0);
    strcat(root, "/");
    CHECK(dataset_add(&ds, root, &e) == 0);
    CHECK(dataset_count(&ds) == 4);
    CHECK(dataset_find(&ds, tl_path("d/sub/c.jpeg")) == 2);
    CHECK(dataset_find(&ds, tl_path("d/x.gif")) == -1);
    /* a single image file is accepted as itself */
    CHECK(dataset_add(&ds, tl_path("d/.hidden/h.png"), &e) == 0);
    CHECK(dataset_count(&ds) == 5 && !strcmp(dataset_path(&ds, 0), tl_path("d/.hidden/h.png"))); /* '.' < 'A' */
    dataset_free(&ds);
}

TEST(data_list_file_relative_comments_blank) {
    mkdir_t("lists");
    CHECK(tl_write_text(tl_path("lists/train.txt"),
                     "# training images\n"
                     "\n"
                     "  img1.png  \n"
                     "sub/img2.jpg\r\n"
                     "   # indented comment\n"
                     "/abs/path/x.PNG\n"
                     "img1.png\n"
                     "\t\n"
                     "last-no-newline.jpeg") == 0);
    dataset ds;
    dataset_init(&ds);
    sx_err e;
    CHECKF(dataset_add(&ds, tl_path("lists/train.txt"), &e) == 0, "%s", e.msg);
    const char *want[] = {"/abs/path/x.PNG", tl_path("lists/img1.png"), tl_path("lists/last-no-newline.jpeg"),
                          tl_path("lists/sub/img2.jpg")};
    CHECKF(dataset_count(&ds) == 4, "count %zu", dataset_count(&ds));
    for (size_t i = 0; i < 4 && i < dataset_count(&ds); i++)
        CHECKF(!strcmp(dataset_path(&ds, i), want[i]), "%zu: %s vs %s", i, dataset_path(&ds, i), want[i]);

    /* a list and a directory together, sorted as one */
    mkdir_t("lists/sub");
    CHECK(tl_write_text(tl_path("lists/sub/img2.jpg"), "x") == 0);
    CHECK(tl_write_text(tl_path("lists/sub/img3.png"), "x") == 0);
    CHECK(dataset_add(&ds, tl_path("lists/sub"), &e) == 0);
    CHECKF(dataset_count(&ds) == 5, "count %zu", dataset_count(&ds)); /* img2 already listed */
    CHECK(dataset_find(&ds, tl_path("lists/sub/img3.png")) == 4);

    /* a bare file name in the current directory stays relative */
    char cwd[1024];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir(tl_path("lists")) == 0);
    dataset d2;
    dataset_init(&d2);
    CHECK(dataset_add(&d2, "train.txt", &e) == 0);
    CHECK(dataset_find(&d2, "img1.png") >= 0 && dataset_find(&d2, "sub/img2.jpg") >= 0);
    CHECK(chdir(cwd) == 0);
    dataset_free(&d2);
    dataset_free(&ds);
}

TEST(data_errors_name_the_path) {
    dataset ds;
    dataset_init(&ds);
    sx_err e;
    CHECK(tl_write_text(tl_path("one.png"), "x") == 0);
    CHECK(dataset_add(&ds, tl_path("one.png"), &e) == 0);

    const char *missing = tl_path("no/such/dir");
    CHECK(dataset_add(&ds, missing, &e) == -1);
    CHECKF(strstr(e.msg, missing) && strstr(e.msg, "No such file"), "%s", e.msg);

    mkdir_t("empty");
    CHECK(dataset_add(&ds, tl_path("empty"), &e) == -1);
    CHECKF(strstr(e.msg, tl_path("empty")) && strstr(e.msg, "no PNG or JPEG"), "%s", e.msg);

    mkdir_t("textonly");
    mkdir_t("textonly/inner");
    CHECK(tl_write_text(tl_path("textonly/inner/readme.txt"), "x") == 0);
    CHECK(dataset_add(&ds, tl_path("textonly"), &e) == -1);
    CHECKF(strstr(e.msg, tl_path("textonly")) && strstr(e.msg, "no PNG or JPEG"), "%s", e.msg);

    CHECK(tl_write_text(tl_path("comments.txt"), "# nothing here\n\n   \n") == 0);
    CHECK(dataset_add(&ds, tl_path("comments.txt"), &e) == -1);
    CHECKF(strstr(e.msg, tl_path("comments.txt")) && strstr(e.msg, "names no image"), "%s", e.msg);

    CHECK(tl_write_file(tl_path("binary.dat"), "a.png\n\0\1\2\n", 10) == 0);
    CHECK(dataset_add(&ds, tl_path("binary.dat"), &e) == -1);
    CHECKF(strstr(e.msg, tl_path("binary.dat")) && strstr(e.msg, "binary"), "%s", e.msg);

    CHECK(dataset_count(&ds) == 1); /* failed adds left the dataset as it was */
    CHECK(!strcmp(dataset_path(&ds, 0), tl_path("one.png")));
    dataset_free(&ds);
}

TEST(data_large_list_is_fast) {
    const int n = 200000;
    FILE *f = fopen(tl_path("big.txt"), "w");
    for (int i = 0; i < n; i++) fprintf(f, "/data/study%06d/image_%d.jpg\n", (i * 7919) % n, i % 3);
    fprintf(f, "/data/study000000/image_0.jpg\n"); /* a repeat */
    fclose(f);
    dataset ds;
    dataset_init(&ds);
    sx_err e;
    double t0 = sx_now();
    CHECKF(dataset_add(&ds, tl_path("big.txt"), &e) == 0, "%s", e.msg);
    double dt = sx_now() - t0;
    CHECKF(dataset_count(&ds) == (size_t)n, "count %zu", dataset_count(&ds));
    CHECKF(dt < 3.0, "took %.2f s", dt);
    for (size_t i = 1; i < dataset_count(&ds); i++)
        if (strcmp(dataset_path(&ds, i - 1), dataset_path(&ds, i)) >= 0) { CHECKF(0, "unsorted at %zu", i); break; }
    dataset_free(&ds);
}

/* ------------------------------------------------------------------------ */
/* RandomResizedCrop and flip                                               */

TEST(data_rrc_respects_scale_and_ratio) {
    aug_config a = aug_default(224);
    const int sizes[][2] = {{500, 400}, {373, 454}, {64, 64}, {1024, 700}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int W = sizes[s][0], H = sizes[s][1];
        sx_rng r, r2;
        rng_seed(&r, 42 + s);
        rng_seed(&r2, 42 + s);
        double fmin = 1, fmax = 0, fsum = 0;
        const int draws = 3000;
        for (int i = 0; i < draws; i++) {
            crop_box c = rrc_params(W, H, &a, &r), c2 = rrc_params(W, H, &a, &r2);
            CHECK(!memcmp(&c, &c2, sizeof c)); /* same seed, same draws */
            CHECKF(c.width >= 1 && c.height >= 1 && c.left >= 0 && c.top >= 0 && c.left + c.width <= W &&
                       c.top + c.height <= H, "%dx%d: box %d,%d %dx%d", W, H, c.left, c.top, c.width, c.height);
            /* rounding w and h moves area and ratio by up to half a pixel each */
            double frac = (double)c.width * c.height / ((double)W * H);
            double slack = 0.5 / c.width + 0.5 / c.height;
            CHECKF(frac >= a.scale_min * (1 - 2 * slack) && frac <= a.scale_max, "%dx%d: area %.4f", W, H, frac);
            double ratio = (double)c.width / c.height;
            CHECKF(ratio >= a.ratio_min * (1 - 2 * slack) && ratio <= a.ratio_max * (1 + 2 * slack),
                   "%dx%d: ratio %.4f (%dx%d)", W, H, ratio, c.width, c.height);
            fmin = fmin < frac ? fmin : frac;
            fmax = fmax > frac ? fmax : frac;
            fsum += frac;
        }
        CHECKF(fmin < 0.22 && fmax > 0.85, "%dx%d: area range %.3f..%.3f", W, H, fmin, fmax);
        CHECKF(fsum / draws > 0.45 && fsum / draws < 0.65, "%dx%d: mean area %.3f", W, H, fsum / draws);
    }
    /* too wide / too tall for any draw: torchvision's centre-crop fallback */
    sx_rng r;
    rng_seed(&r, 1);
    crop_box c = rrc_params(1000, 100, &a, &r);
    CHECKF(c.top == 0 && c.height == 100 && c.width == 133 && c.left == (1000 - 133) / 2, "%d,%d %dx%d", c.left,
           c.top, c.width, c.height);
    c = rrc_params(100, 1000, &a, &r);
    CHECKF(c.left == 0 && c.width == 100 && c.height == 133 && c.top == (1000 - 133) / 2, "%d,%d %dx%d", c.left,
           c.top, c.width, c.height);
}

static gray_image pattern_image(int w, int h, int k) {
    uint8_t *p = pattern(w, h, k);
    gray_image g = {w, h, malloc(sizeof(float) * (size_t)w * h)};
    for (int i = 0; i < w * h; i++) g.data[i] = 1000.0f + 40.0f * p[i]; /* not 8-bit: min-max matters */
    free(p);
    return g;
}

static int is_mirror(const uint8_t *a, const uint8_t *b, int S) {
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            if (a[y * S + x] != b[y * S + S - 1 - x]) return 0;
    return 1;
}

TEST(data_augment_matches_manual_crop_and_flips) {
    gray_image g = pattern_image(90, 70, 3);
    const int S = 32;
    uint8_t *full = malloc(90 * 70), *manual = malloc(S * S), *out0 = malloc(S * S), *out1 = malloc(S * S);
    image_minmax_u8(&g, full);
    for (int seed = 0; seed < 20; seed++) {
        aug_config a = aug_default(S);
        sx_rng r;
        /* the manual chain: min-max, torchvision crop box, crop, Pillow resize */
        rng_seed(&r, (uint64_t)seed);
        crop_box c = rrc_params(g.width, g.height, &a, &r);
        uint8_t *crop = malloc((size_t)c.width * c.height);
        for (int y = 0; y < c.height; y++) memcpy(crop + y * c.width, full + (c.top + y) * 90 + c.left, (size_t)c.width);
        image_resize_bilinear_u8(crop, c.width, c.height, manual, S, S);
        free(crop);

        a.flip_p = 0;
        rng_seed(&r, (uint64_t)seed);
        augment_u8(&g, &a, &r, out0);
        CHECKF(!memcmp(out0, manual, S * S), "seed %d: differs from the manual crop", seed);
        a.flip_p = 1;
        rng_seed(&r, (uint64_t)seed);
        augment_u8(&g, &a, &r, out1);
        CHECKF(is_mirror(out0, out1, S), "seed %d: flip_p=1 is not the mirror image", seed);
        CHECK(memcmp(out0, out1, S * S) != 0); /* the image is not symmetric */
    }
    /* p = 0.5 flips about half the time */
    int flips = 0;
    for (int seed = 0; seed < 200; seed++) {
        aug_config a = aug_default(S);
        sx_rng r;
        a.flip_p = 0;
        rng_seed(&r, (uint64_t)seed);
        augment_u8(&g, &a, &r, out0);
        a.flip_p = 0.5;
        rng_seed(&r, (uint64_t)seed);
        augment_u8(&g, &a, &r, out1);
        if (memcmp(out0, out1, S * S)) {
            CHECK(is_mirror(out0, out1, S));
            flips++;
        }
    }
    CHECKF(flips > 70 && flips < 130, "%d flips of 200", flips);
    free(full); free(manual); free(out0); free(out1);
    gray_image_free(&g);
}

TEST(data_augment_off_is_image_preprocess) {
    gray_image g = pattern_image(77, 51, 1);
    aug_config a = aug_default(40);
    a.augment = 0;
    CHECK(aug_decode_min_side(&a) == 0); /* full decode: exactly image_preprocess */
    float *x = malloc(sizeof(float) * 3 * 40 * 40), *y = malloc(sizeof(float) * 3 * 40 * 40);
    sx_rng r;
    rng_seed(&r, 5);
    augment_image(&g, &a, &r, x);
    image_preprocess(&g, 40, y);
    CHECK(!memcmp(x, y, sizeof(float) * 3 * 40 * 40));
    /* augment_image = augment_u8 + normalisation */
    a.augment = 1;
    uint8_t u8[40 * 40];
    rng_seed(&r, 9);
    augment_image(&g, &a, &r, x);
    rng_seed(&r, 9);
    augment_u8(&g, &a, &r, u8);
    image_u8_to_chw(u8, 40, y);
    CHECK(!memcmp(x, y, sizeof(float) * 3 * 40 * 40));
    CHECK(aug_decode_min_side(&a) == 90); /* ceil(40 / sqrt(0.2)) */
    a.decode_min_side = -1;
    CHECK(aug_decode_min_side(&a) == 0);
    a.decode_min_side = 300;
    CHECK(aug_decode_min_side(&a) == 300);
    sx_err e;
    a.scale_min = 0;
    CHECK(aug_check(&a, &e) == -1 && strstr(e.msg, "scale"));
    free(x); free(y);
    gray_image_free(&g);
}

/* ------------------------------------------------------------------------ */
/* Scaled JPEG decoding (image.c)                                           */

/* APP1 "Exif" payload, little-endian, one IFD0 entry: orientation o. */
static unsigned exif_orientation_app1(uint8_t *b, int o) {
    static const uint8_t head[] = {'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0,
                                   0x12, 0x01, 3, 0, 1, 0, 0, 0};
    memcpy(b, head, sizeof head);
    unsigned n = sizeof head;
    b[n++] = (uint8_t)o; b[n++] = 0; b[n++] = 0; b[n++] = 0; /* value, padding */
    b[n++] = 0; b[n++] = 0; b[n++] = 0; b[n++] = 0;          /* next IFD */
    return n;
}

TEST(data_jpeg_scaled_decode_sizes_and_content) {
    const int W = 960, H = 720;
    uint8_t *px = malloc((size_t)W * H);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int dx = x - W / 3, dy = y - H / 2;
            px[y * W + x] = dx * dx + dy * dy < 150 * 150 ? 220 : (uint8_t)(20 + x * 150 / W + y * 40 / H);
        }
    for (int comps = 1; comps <= 3; comps += 2) {
        const char *p = tl_path(comps == 1 ? "big_grey.jpg" : "big_rgb.jpg");
        CHECK(write_grey_jpeg(p, px, W, H, comps, 92, NULL, 0) == 0);
        const struct { int min_side, w, h; } cases[] = {
            {224, 480, 360}, {90, 120, 90}, {100, 240, 180}, {361, 960, 720}, {0, 960, 720}, {5000, 960, 720}};
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            gray_image im;
            sx_err e;
            CHECKF(image_load_gray_min(p, cases[i].min_side, &im, &e) == 0, "%s", e.msg);
            CHECKF(im.width == cases[i].w && im.height == cases[i].h, "%d comps, min %d: %dx%d", comps,
                   cases[i].min_side, im.width, im.height);
            gray_image_free(&im);
        }
        /* content: 1/2 and 1/4 decodes vs the full decode averaged over d x d
         * blocks (what DCT scaling approximates), in raw intensities: min-max
         * would differ a little, as JPEG ringing peaks average away */
        gray_image full;
        sx_err e;
        CHECK(image_load_gray(p, &full, &e) == 0);
        for (int d = 2; d <= 4; d *= 2) {
            gray_image small;
            CHECK(image_load_gray_min(p, H / d, &small, &e) == 0);
            CHECK(small.width == W / d && small.height == H / d);
            double mad = 0;
            for (int y = 0; y < H / d; y++)
                for (int x = 0; x < W / d; x++) {
                    double m = 0;
                    for (int j = 0; j < d; j++)
                        for (int i = 0; i < d; i++) m += full.data[(y * d + j) * W + x * d + i];
                    mad += fabs(m / (d * d) - small.data[y * (W / d) + x]);
                }
            mad /= (double)(W / d) * (H / d);
            CHECKF(mad < 1.0, "%d comps, 1/%d: mean |diff| %.3f", comps, d, mad);
            gray_image_free(&small);
        }
        gray_image_free(&full);
    }
    /* EXIF orientation still applies (6: rotate 90, sides swap) */
    uint8_t app1[64];
    unsigned len = exif_orientation_app1(app1, 6);
    const char *p = tl_path("rot.jpg");
    CHECK(write_grey_jpeg(p, px, W, H, 1, 90, app1, len) == 0);
    gray_image im;
    sx_err e;
    CHECK(image_load_gray_min(p, 100, &im, &e) == 0);
    CHECKF(im.width == 180 && im.height == 240, "%dx%d", im.width, im.height);
    gray_image_free(&im);
    /* truncated: decoded reduced, with the warning handed back */
    truncate_copy(tl_path("big_grey.jpg"), tl_path("cut.jpg"), 0.5);
    sx_err warn;
    CHECK(image_load_gray_opts(tl_path("cut.jpg"), &(image_load_opts){.min_side = 224, .warning = &warn}, &im, &e) == 0);
    CHECK(im.width == 480 && im.height == 360);
    CHECKF(strstr(warn.msg, "truncated JPEG") && strstr(warn.msg, tl_path("cut.jpg")), "%s", warn.msg);
    gray_image_free(&im);
    /* PNG: always full size */
    write_pattern_png(tl_path("p.png"), 300, 200, 0);
    CHECK(image_load_gray_min(tl_path("p.png"), 50, &im, &e) == 0);
    CHECK(im.width == 300 && im.height == 200);
    gray_image_free(&im);
    free(px);
}

/* ------------------------------------------------------------------------ */
/* Loader                                                                   */

/* n PNGs of varied sizes and content in tmp/imgs; the dataset over them. */
static void make_png_dataset(dataset *ds, int n) {
    mkdir_t("imgs");
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "imgs/img%02d.png", i);
        write_pattern_png(tl_path(name), 40 + (i * 7) % 31, 36 + (i * 5) % 23, i);
    }
    dataset_init(ds);
    sx_err e;
    CHECKF(dataset_add(ds, tl_path("imgs"), &e) == 0, "%s", e.msg);
}

/* nb batches from a new loader into out (nb*B*3*S*S floats). */
static int run_loader(const dataset *ds, int B, const aug_config *a, uint64_t seed, int threads, long long start,
                      const char *skip_log, int nb, float *out, loader_info *infos) {
    sx_err e;
    loader *L = loader_create(ds, B, a, seed, threads, start, skip_log, &e);
    CHECKF(L != NULL, "%s", e.msg);
    if (!L) return -1;
    size_t per = (size_t)B * 3 * a->image_size * a->image_size;
    int rc = 0;
    for (int b = 0; b < nb && !rc; b++) {
        rc = loader_next(L, out + b * per, infos ? &infos[b] : NULL, &e);
        CHECKF(rc == 0, "%s", e.msg);
        CHECK(loader_position(L) == start + (long long)(b + 1) * B);
    }
    loader_destroy(L);
    return rc;
}

TEST(data_loader_reproducible_across_threads) {
    dataset ds;
    make_png_dataset(&ds, 13);
    aug_config a = aug_default(16);
    const int B = 4, NB = 8; /* 32 samples: crosses two epoch boundaries */
    size_t per = (size_t)B * 3 * 16 * 16, total = per * NB;
    float *x0 = malloc(total * sizeof(float)), *x1 = malloc(total * sizeof(float)),
          *x3 = malloc(total * sizeof(float)), *y = malloc(total * sizeof(float));
    loader_info info[NB];
    run_loader(&ds, B, &a, 7, 0, 0, NULL, NB, x0, NULL);
    run_loader(&ds, B, &a, 7, 1, 0, NULL, NB, x1, info);
    run_loader(&ds, B, &a, 7, 3, 0, NULL, NB, x3, NULL);
    CHECK(!memcmp(x0, x1, total * sizeof(float)));
    CHECK(!memcmp(x1, x3, total * sizeof(float)));
    for (int b = 0; b < NB; b++)
        CHECKF(info[b].position == b * B && info[b].epoch == b * B / 13 && info[b].replaced == 0 && info[b].skipped == 0,
               "batch %d: position %lld epoch %lld", b, info[b].position, info[b].epoch);
    run_loader(&ds, B, &a, 8, 3, 0, NULL, NB, y, NULL);
    CHECK(memcmp(x1, y, total * sizeof(float)) != 0); /* another seed, other batches */
    free(x0); free(x1); free(x3); free(y);
    dataset_free(&ds);
}

TEST(data_loader_epoch_is_a_permutation) {
    const int n = 7, S = 12;
    dataset ds;
    make_png_dataset(&ds, n);
    aug_config a = aug_default(S);
    a.augment = 0; /* each file then gives one fixed tensor */
    size_t one = 3 * S * S;
    float *ref = malloc(sizeof(float) * one * n), *got = malloc(sizeof(float) * one * 3 * n);
    for (int i = 0; i < n; i++) CHECK(image_preprocess_file(dataset_path(&ds, i), S, ref + i * one, &(sx_err){0}) == 0);
    run_loader(&ds, 3, &a, 11, 2, 0, NULL, n, got, NULL); /* 21 samples = 3 epochs */
    int order[3][7];
    for (int p = 0; p < 3 * n; p++) {
        int which = -1;
        for (int i = 0; i < n; i++)
            if (!memcmp(got + p * one, ref + i * one, sizeof(float) * one)) which = i;
        CHECKF(which >= 0, "position %d is no dataset image", p);
        order[p / n][p % n] = which;
    }
    for (int e = 0; e < 3; e++) {
        int seen[7] = {0};
        for (int k = 0; k < n; k++) if (order[e][k] >= 0) seen[order[e][k]]++;
        for (int i = 0; i < n; i++) CHECKF(seen[i] == 1, "epoch %d: image %d seen %d times", e, i, seen[i]);
    }
    CHECK(memcmp(order[0], order[1], sizeof order[0]) || memcmp(order[1], order[2], sizeof order[0]));
    free(ref); free(got);
    dataset_free(&ds);
}

TEST(data_loader_resume_gives_the_same_batches) {
    dataset ds;
    make_png_dataset(&ds, 10);
    aug_config a = aug_default(16);
    const int B = 3, K = 2, NB = 6;
    size_t per = (size_t)B * 3 * 16 * 16;
    float *fresh = malloc(per * NB * sizeof(float)), *resumed = malloc(per * (NB - K) * sizeof(float));
    loader_info fi[NB], ri[NB];
    run_loader(&ds, B, &a, 123, 2, 0, NULL, NB, fresh, fi);
    run_loader(&ds, B, &a, 123, 3, (long long)K * B, NULL, NB - K, resumed, ri);
    CHECK(!memcmp(fresh + per * K, resumed, per * (NB - K) * sizeof(float)));
    for (int b = 0; b < NB - K; b++) CHECK(ri[b].position == fi[b + K].position && ri[b].epoch == fi[b + K].epoch);
    free(fresh); free(resumed);
    dataset_free(&ds);
}

TEST(data_loader_skips_corrupt_and_decodes_truncated) {
    dataset ds;
    make_png_dataset(&ds, 6);
    uint8_t *px = pattern(64, 64, 9);
    CHECK(write_grey_jpeg(tl_path("full.jpg"), px, 64, 64, 1, 90, NULL, 0) == 0);
    free(px);
    truncate_copy(tl_path("full.jpg"), tl_path("imgs/truncated.jpg"), 0.6);
    write_random_bytes(tl_path("imgs/corrupt.png"), 700, 99);
    dataset_free(&ds);
    dataset_init(&ds);
    sx_err e;
    CHECK(dataset_add(&ds, tl_path("imgs"), &e) == 0);
    CHECK(dataset_count(&ds) == 8);

    aug_config a = aug_default(16);
    const int B = 4, NB = 6; /* 24 samples = 3 epochs of 8 */
    size_t per = (size_t)B * 3 * 16 * 16;
    float *x = malloc(per * NB * sizeof(float)), *y = malloc(per * NB * sizeof(float));
    loader_info info[NB];
    const char *skiplog = tl_path("skipped.txt"), *errlog = tl_path("stderr.txt");
    int saved = tl_stderr_begin(errlog);
    run_loader(&ds, B, &a, 3, 2, 0, skiplog, NB, x, info);
    tl_stderr_end(saved);

    char *log = tl_read_file(skiplog, NULL), *err = tl_read_file(errlog, NULL);
    char want[600];
    snprintf(want, sizeof want, "%s\t", tl_path("imgs/corrupt.png"));
    CHECKF(log && !strncmp(log, want, strlen(want)) && count_substr(log, "\n") == 1, "skip log: %s", log);
    CHECKF(err && count_substr(err, "(file skipped)") == 1 && count_substr(err, "corrupt.png") == 1, "stderr: %s", err);
    CHECKF(err && count_substr(err, "truncated JPEG") == 1 && strstr(err, "truncated.jpg"), "stderr: %s", err);
    int replaced = 0;
    for (int b = 0; b < NB; b++) replaced += info[b].replaced;
    CHECKF(replaced == 3, "replaced %d (one per epoch)", replaced);
    CHECK(info[NB - 1].skipped == 1);
    free(log); free(err);

    /* the same batches with other threads, and the log is not repeated */
    saved = tl_stderr_begin(errlog);
    run_loader(&ds, B, &a, 3, 3, 0, skiplog, NB, y, NULL);
    tl_stderr_end(saved);
    CHECK(!memcmp(x, y, per * NB * sizeof(float)));
    log = tl_read_file(skiplog, NULL);
    CHECKF(log && count_substr(log, "\n") == 1, "skip log: %s", log);
    free(log);
    free(x); free(y);
    dataset_free(&ds);
}

TEST(data_loader_all_corrupt_is_an_error) {
    mkdir_t("bad");
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "bad/b%d.png", i);
        write_random_bytes(tl_path(name), 200 + i, (uint32_t)i);
    }
    CHECK(tl_write_text(tl_path("bad/empty.jpg"), "") == 0);
    dataset ds;
    dataset_init(&ds);
    sx_err e;
    CHECK(dataset_add(&ds, tl_path("bad"), &e) == 0);
    aug_config a = aug_default(16);
    float *x = malloc(sizeof(float) * 2 * 3 * 16 * 16);
    for (int threads = 0; threads <= 2; threads += 2) {
        int saved = tl_stderr_begin(tl_path("stderr.txt"));
        loader *L = loader_create(&ds, 2, &a, 1, threads, 0, tl_path("skip.txt"), &e);
        CHECK(L != NULL);
        int rc1 = L ? loader_next(L, x, NULL, &e) : 0;
        sx_err e2;
        int rc2 = L ? loader_next(L, x, NULL, &e2) : 0;
        loader_destroy(L);
        tl_stderr_end(saved);
        CHECKF(rc1 == -1 && strstr(e.msg, "could be decoded") && strstr(e.msg, "skip.txt"), "%s", e.msg);
        CHECK(rc2 == -1);
        char *log = tl_read_file(tl_path("skip.txt"), NULL);
        CHECKF(log && count_substr(log, "\n") == 4, "%s", log); /* each file once, over both runs */
        free(log);
    }
    free(x);
    dataset_free(&ds);
}

TEST(data_loader_argument_errors) {
    dataset ds;
    dataset_init(&ds);
    aug_config a = aug_default(16);
    sx_err e;
    CHECK(loader_create(&ds, 4, &a, 0, 1, 0, NULL, &e) == NULL && strstr(e.msg, "empty"));
    CHECK(tl_write_text(tl_path("x.png"), "x") == 0);
    CHECK(dataset_add(&ds, tl_path("x.png"), &e) == 0);
    CHECK(loader_create(&ds, 0, &a, 0, 1, 0, NULL, &e) == NULL && strstr(e.msg, "batch"));
    CHECK(loader_create(&ds, 4, &a, 0, -1, 0, NULL, &e) == NULL && strstr(e.msg, "threads"));
    CHECK(loader_create(&ds, 4, &a, 0, 1, -5, NULL, &e) == NULL && strstr(e.msg, "start"));
    a.ratio_min = 2;
    CHECK(loader_create(&ds, 4, &a, 0, 1, 0, NULL, &e) == NULL && strstr(e.msg, "ratio"));
    loader_destroy(NULL);
    dataset_free(&ds);
}

/* ------------------------------------------------------------------------ */
/* Real data                                                                */

TEST(data_fracatlas_batches) {
    const char *root = "../shared/data/fracatlas/images";
    struct stat st;
    if (stat(root, &st) || !S_ISDIR(st.st_mode)) TEST_SKIP("../shared/data/fracatlas absent");
    dataset ds;
    dataset_init(&ds);
    sx_err e;
    CHECKF(dataset_add(&ds, root, &e) == 0, "%s", e.msg);
    CHECKF(dataset_count(&ds) > 3000, "%zu images", dataset_count(&ds));
    aug_config a = aug_default(64);
    const int B = 8, S = 64;
    size_t per = (size_t)B * 3 * S * S;
    float *x = malloc(per * 2 * sizeof(float));
    int saved = tl_stderr_begin(tl_path("stderr.txt")); /* truncated-file warnings */
    int rc = run_loader(&ds, B, &a, 2024, 2, 0, tl_path("skipped.txt"), 2, x, NULL);
    tl_stderr_end(saved);
    CHECK(rc == 0);
    float lo = (0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0] - 1e-4f, hi = (1 - IMAGENET_MEAN[2]) / IMAGENET_STD[2] + 1e-4f;
    double sum = 0, sq = 0;
    int finite = 1, inrange = 1;
    for (size_t i = 0; i < per * 2; i++) {
        finite &= isfinite(x[i]) != 0;
        inrange &= x[i] >= lo && x[i] <= hi;
        sum += x[i];
        sq += (double)x[i] * x[i];
    }
    double mean = sum / (per * 2), var = sq / (per * 2) - mean * mean;
    CHECK(finite && inrange);
    CHECKF(var > 0.05, "variance %g: images look blank", var);
    free(x);
    dataset_free(&ds);
}
