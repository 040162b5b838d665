/* testlib.c: helpers shared by the test files (declared in testlib.h):
 * scratch paths, whole-file writes and reads, stderr capture, and a JPEG
 * writer on libjpeg (so that image.c is tested against another encoder). */
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>

const char *tl_path(const char *name) {
    static char bufs[16][512];
    static int next;
    char *b = bufs[next++ % 16];
    snprintf(b, sizeof bufs[0], "%s/%s", tl_tmpdir(), name);
    return b;
}

int tl_write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { fprintf(stderr, "    %s: %s\n", path, strerror(errno)); return -1; }
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

int tl_write_text(const char *path, const char *s) { return tl_write_file(path, s, strlen(s)); }

void *tl_read_file(const char *path, size_t *n) {
    if (n) *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (sz < 0) { fclose(f); return NULL; }
    char *p = malloc((size_t)sz + 1);
    size_t got = fread(p, 1, (size_t)sz, f);
    p[got] = 0;
    fclose(f);
    if (n) *n = got;
    return p;
}

int tl_stderr_begin(const char *file) {
    fflush(stderr);
    int saved = dup(2), fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
    return saved;
}

void tl_stderr_end(int saved) {
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

mae_config tl_toy_config(int w) {
    sx_err err;
    mae_config c;
    config_preset("tiny", &c, &err);
    c.image_size = w; c.patch_size = 8; c.hidden_size = w; c.num_hidden_layers = 2; c.num_attention_heads = 2;
    c.intermediate_size = 2 * w; c.decoder_hidden_size = w / 2; c.decoder_num_hidden_layers = 1;
    c.decoder_num_attention_heads = 2; c.decoder_intermediate_size = w;
    return c;
}

int tl_write_jpeg(const char *path, const tl_jpeg *j) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)j->w;
    c.image_height = (JDIMENSION)j->h;
    c.input_components = j->comps;
    c.in_color_space = j->comps == 1 ? JCS_GRAYSCALE : j->comps == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, j->quality, TRUE);
    if (j->progressive) jpeg_simple_progression(&c);
    if (j->cmyk_mode) jpeg_set_colorspace(&c, JCS_CMYK);
    if (j->cmyk_mode == 2) c.write_Adobe_marker = FALSE;
    jpeg_start_compress(&c, TRUE);
    if (j->app1) jpeg_write_marker(&c, JPEG_APP0 + 1, j->app1, j->app1_len);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(j->px + (size_t)c.next_scanline * j->w * j->comps);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return fclose(f) == 0 ? 0 : -1;
}
