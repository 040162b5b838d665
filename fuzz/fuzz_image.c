/* fuzz_image.c: libFuzzer harness for the one image loader
 * (image_load_gray_opts: PNG via libspng, JPEG via libjpeg-turbo, DICOM via
 * the DCMTK shim), then min-max and a resize, as `skelex preprocess` does.
 * The pixel bound is lowered to 4 Mpixel so a hostile header cannot push a
 * legitimate-looking allocation past the fuzzer's memory limit; the real
 * bound (256 Mpixel) is the same code with a larger constant. Odd-sized
 * inputs take the reduced-JPEG-decode path (min_side 32). */
#include "fuzz_util.h"
#include "io/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_file(data, n);
    gray_image img;
    sx_err err, warn;
    image_load_opts o = {.min_side = (n & 1) ? 32 : 0, .warning = &warn, .max_pixels = (uint64_t)1 << 22};
    if (image_load_gray_opts(path, &o, &img, &err) != 0) {
        fuzz_check_error(&err, path);
        if (img.data) abort(); /* nothing is handed out on failure */
        return 0;
    }
    if (warn.msg[0]) fuzz_check_error(&warn, path);
    if (img.width <= 0 || img.height <= 0 || (uint64_t)img.width * (uint64_t)img.height > o.max_pixels) abort();
    size_t np = (size_t)img.width * (size_t)img.height;
    uint8_t *u8 = malloc(np), sq[16 * 16];
    image_minmax_u8(&img, u8);
    image_resize_bilinear_u8(u8, img.width, img.height, sq, 16, 16);
    free(u8);
    gray_image_free(&img);
    return 0;
}
