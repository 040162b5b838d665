/* image_cache.c: the decoded images of a task (see image_cache.h). */
#include "data/image_cache.h"
#include "io/image.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int image_cache_build(image_cache *ic, const char *const *paths, size_t n, int S, FILE *progress, sx_err *err) {
    size_t bytes;
    if (sx_mul_size(n, (size_t)S * S, &bytes)) return sx_fail(err, "image cache: too many images");
    ic->S = S;
    ic->n = n;
    ic->px = sx_malloc(bytes ? bytes : 1);
    int failed = 0, tty = progress && isatty(fileno(progress));
    size_t done = 0;
    double t0 = sx_now();
#pragma omp parallel for schedule(dynamic, 4)
    for (size_t i = 0; i < n; i++) {
        int stop;
#pragma omp atomic read
        stop = failed;
        if (stop) continue;
        gray_image img;
        sx_err e;
        if (image_load_gray(paths[i], &img, &e)) {
#pragma omp critical(ic_err)
            if (!failed) { failed = 1; *err = e; }
            continue;
        }
        image_preprocess_u8(&img, S, ic->px + i * (size_t)S * S);
        gray_image_free(&img);
#pragma omp critical(ic_progress)
        {
            done++;
            size_t every = tty ? 64 : (n / 10 > 64 ? n / 10 : 64);   /* not a terminal: about 10 lines */
            if (progress && (done % every == 0 || done == n)) {
                double el = sx_now() - t0;
                fprintf(progress, "%sdecoding %zu/%zu  %.0f img/s  ETA %.0f s%s", tty ? "\r" : "", done, n, done / el,
                        (n - done) / (done / el), tty ? "   " : "\n");
            }
        }
    }
    if (tty) fprintf(progress, "\n");
    if (failed) { image_cache_free(ic); return -1; }
    return 0;
}

void image_cache_free(image_cache *ic) {
    free(ic->px);
    memset(ic, 0, sizeof *ic);
}

void image_cache_input(const image_cache *ic, size_t i, const cls_aug *a, sx_rng *r, uint8_t *scratch, float *chw) {
    const uint8_t *src = ic->px + i * (size_t)ic->S * ic->S;
    if (!a) { image_u8_to_chw(src, ic->S, chw); return; }
    cls_augment_u8(src, ic->S, a, r, scratch);
    image_u8_to_chw(scratch, ic->S, chw);
}
