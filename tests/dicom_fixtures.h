/* dicom_fixtures.h: DICOM test fixtures made at test time by DCMTK's own
 * command-line tools (dump2dcm from a text dump plus a raw pixel file;
 * dcmcjpeg, dcmcjpls, dcmcrle, dcmconv, img2dcm for the other encodings),
 * never by skelex, and the expected display values computed by hand from
 * the DICOM standard (PS3.3 C.11.2.1.2 linear window, C.11.1 modality
 * rescale, VOI LUT lookup, MONOCHROME1 inversion). Shared by test_dicom.c
 * (defined there) and test_hostile.c. Tests skip when the tools are
 * missing; scripts/deps.sh installs them (Debian package dcmtk). */
#ifndef SKELEX_DICOM_FIXTURES_H
#define SKELEX_DICOM_FIXTURES_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *sop;              /* dump2dcm UID keyword; NULL: DX for presentation */
    int w, h, frames;             /* frames 0 counts as 1 (no NumberOfFrames) */
    int bits_alloc, bits_stored;  /* 8 or 16; bits_stored 0 = bits_alloc */
    int is_signed;                /* PixelRepresentation 1 */
    const char *photometric;      /* NULL: MONOCHROME2 */
    int has_rescale;
    double slope, intercept;
    const char *window_center;    /* DS values as in the file ("1800\\900"), or NULL */
    const char *window_width;
    int lut_entries, lut_first;   /* VOI LUT sequence (16-bit entries) when lut_entries > 0 */
    const uint16_t *lut;
    const char *extra;            /* more dump lines (patient attributes...), or NULL */
    const int32_t *px;            /* w*h*frames stored values, frame after frame */
} dcm_spec;

/* 1 when dump2dcm, dcmcjpeg, dcmcjpls, dcmcrle, dcmconv and img2dcm run. */
int dcmfx_have_tools(void);

/* Run a shell command with its output silenced; its exit status. */
int dcmfx_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Write spec as a DICOM file at path (dump2dcm, explicit VR little endian). */
int dcmfx_write(const char *path, const dcm_spec *s);

/* A synthetic radiograph with stored values in [lo, hi]: a soft-tissue
 * gradient, a bright bone band, a darker hole, frame-dependent shift. */
void dcmfx_phantom(int w, int h, int frame, int lo, int hi, int32_t *px);

/* What the model sees, computed by hand from the spec (first frame): the
 * display value of every pixel, then per-image min-max to 8 bits. */
void dcmfx_expected_u8(const dcm_spec *s, uint8_t *out);

#endif
