/* dicom.h: the C face of the DICOM reader (src/io/dicom_shim.cpp, C++ on DCMTK).
 *
 * Does: read one DICOM file (Part 10 with preamble and "DICM", or a bare
 * dataset DCMTK can recognise) into float grey values as a viewer displays
 * them: modality LUT (rescale slope/intercept or LUT sequence), then the VOI
 * transformation (the file's first window centre/width; else its first VOI
 * LUT; else min-max), MONOCHROME1 inverted so that bone is bright, values in
 * 0..65535. Colour images (RGB, YBR, palette) become luma with PIL's weights.
 * Uncompressed, JPEG (baseline, extended, lossless), JPEG-LS and RLE data
 * are decoded; only the first frame of a multi-frame object is read.
 * Does not: JPEG 2000 or other codecs DCMTK lacks (a clear error), deflated
 * datasets (refused: their element lengths are not bounded by the file),
 * presentation states, overlays, pixel spacing or aspect-ratio correction.
 *
 * Privacy: nothing read from the file other than the image geometry, the
 * photometric interpretation and the transfer syntax ever appears in an
 * error or a warning; DCMTK's own logging is switched off.
 */
#ifndef SKELEX_DICOM_H
#define SKELEX_DICOM_H
#ifdef __cplusplus
extern "C" {
#endif

#include "core/common.h" /* C declarations: inside extern "C" for the C++ shim */

typedef struct {
    uint32_t max_side;      /* reject Rows or Columns above this */
    uint64_t max_pixels;    /* reject Rows * Columns above this */
    uint64_t file_size;     /* the file's size in bytes (elements may not claim more) */
} dicom_limits;

/* Load the first frame of the DICOM file at path. On success *data is a
 * malloc'ed width*height array (free() it) and, when the file has more than
 * one frame, warning (if non-NULL) says so; else warning->msg[0] == 0.
 * Every failure is one line starting with path: not DICOM, truncated,
 * unsupported transfer syntax, too large, no or empty pixel data, ... */
int dicom_load_gray(const char *path, const dicom_limits *lim, float **data, int *width, int *height,
                    sx_err *warning, sx_err *err);

/* The same from the whole file's bytes in memory (an upload); name stands
 * for the path in messages. Nothing is written to disk. */
int dicom_load_gray_mem(const void *buf, size_t len, const char *name, const dicom_limits *lim, float **data,
                        int *width, int *height, sx_err *warning, sx_err *err);

/* Whether the first n bytes of a file look like DICOM: "DICM" at offset 128,
 * or (no preamble) a first tag of group 0x0002 or 0x0008, as DCMTK accepts. */
int dicom_sniff(const uint8_t *head, size_t n);

#ifdef __cplusplus
}
#endif
#endif
