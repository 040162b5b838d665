/* api_image.c: images of include/skelex.h, from files or memory. */
#include "api/api_internal.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The handle, with its 8-bit view made now (so that reading it later is
 * a plain read, safe from any number of threads). */
static int finish(gray_image *g, skx_image **out, skx_error *err) {
    skx_image *im = calloc(1, sizeof *im);
    uint8_t *g8 = malloc((size_t)g->width * g->height);
    if (!im || !g8) {
        free(im);
        free(g8);
        gray_image_free(g);
        return api_fail(err, SKX_ENOMEM, "out of memory");
    }
    image_minmax_u8(g, g8);
    im->g = *g;
    im->gray8 = g8;
    *out = im;
    api_ok(err);
    return 0;
}

/* Decoder warnings (truncated JPEG, multi-frame DICOM) are taken, not printed. */
int skx_image_load_file(const char *path, skx_image **out, skx_error *err) {
    *out = NULL;
    if (!path) return api_fail(err, SKX_EINVAL, "path is NULL");
    sx_err e, warn;
    /* opened once first so that a missing or unreadable file is an I/O error */
    int fd = sx_open_input(path, NULL, &e);
    if (fd < 0) return api_fail(err, SKX_EIO, e.msg);
    close(fd);
    gray_image g;
    if (image_load_gray_opts(path, &(image_load_opts){.warning = &warn}, &g, &e)) return api_fail_sx(err, &e, SKX_EFORMAT);
    return finish(&g, out, err);
}

int skx_image_load_memory(const void *data, size_t len, const char *name, skx_image **out, skx_error *err) {
    *out = NULL;
    if (!data || !len) return api_fail(err, SKX_EFORMAT, "empty image data");
    sx_err e, warn;
    gray_image g;
    if (image_load_gray_mem(data, len, name ? name : "(upload)", &(image_load_opts){.warning = &warn}, &g, &e))
        return api_fail_sx(err, &e, SKX_EFORMAT);
    return finish(&g, out, err);
}

int skx_image_width(const skx_image *img) { return img->g.width; }
int skx_image_height(const skx_image *img) { return img->g.height; }

const uint8_t *skx_image_gray8(const skx_image *img) { return img->gray8; }

void skx_image_free(skx_image *img) {
    if (!img) return;
    gray_image_free(&img->g);
    free(img->gray8);
    free(img);
}
