/* dicom_shim.cpp: DICOM to float grey, through DCMTK (contract: dicom.h).
 *
 * Does:
 *  - read the transfer syntax from the file meta header by hand (a small,
 *    bounded reader) and refuse, before DCMTK parses the dataset, transfer
 *    syntaxes we cannot decode: JPEG 2000
 *    and HTJ2K (not in the free DCMTK; the error says "JPEG 2000"), deflate
 *    (its element lengths are not bounded by the file size), and any
 *    encapsulated syntax no registered codec decodes;
 *  - parse the dataset with DCMTK, large elements left on disk until used;
 *  - check, before any pixel buffer exists: pixel data present and not
 *    empty, Rows/Columns within the caller's limits, the native pixel data
 *    long enough for one frame, no element (pixel data or fragment)
 *    claiming more bytes than the file has, and every RLE fragment's
 *    segment table inside its fragment (DCMTK 3.6.7 does not check it);
 *  - render the first frame with DicomImage (dcmimgle; dcmimage for
 *    colour): modality LUT (rescale or LUT sequence), then the first window
 *    in the file, else the first VOI LUT, else a min-max window, output
 *    16 bits; MONOCHROME1 comes out inverted (DCMTK renders it for display,
 *    bone bright). Colour is rendered to RGB8 and turned into luma with
 *    PIL's weights, as image.c does for PNG/JPEG;
 *  - switch DCMTK's logger off once, so no DCMTK message (which could quote
 *    a dataset value) reaches stderr; errors are our own fixed sentences
 *    plus, for parse failures, DCMTK's condition text (no dataset values).
 * Does not: presentation states, overlays, pixel aspect ratio, more than
 * the first frame, or any use of patient, study or institution attributes.
 * Every C++ exception is caught here: nothing unwinds into C.
 */
#include "io/dicom.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmdata/dccodec.h>
#include <dcmtk/dcmimage/diregist.h> /* colour support for DicomImage */
#include <dcmtk/dcmimgle/dcmimage.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>

/* Elements up to this size are read at parse time; larger ones stay on
 * disk until used (only the pixel data ever is). */
static const Uint32 READ_NOW = 4096;

static void dicom_init_once() {
    /* Off, not just quiet: a DCMTK warning may quote an element value. */
    OFLog::configure(OFLogger::OFF_LOG_LEVEL);
    OFLog::getLogger("dcmtk").setLogLevel(OFLogger::OFF_LOG_LEVEL);
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
}

static void dicom_init() {
    static std::once_flag once;
    std::call_once(once, dicom_init_once);
}

extern "C" int dicom_sniff(const uint8_t *h, size_t n) {
    if (n >= 132 && std::memcmp(h + 128, "DICM", 4) == 0) return 1;
    if (n < 8) return 0;
    /* No preamble: the dataset starts with a tag of group 0x0002 (meta) or
     * 0x0008 (identifying), little or big endian, followed by either an
     * explicit VR (two upper-case letters) or a 32-bit length. */
    unsigned gle = h[0] | h[1] << 8, gbe = h[0] << 8 | h[1];
    if (gle != 2 && gle != 8 && gbe != 2 && gbe != 8) return 0;
    int explicit_vr = h[4] >= 'A' && h[4] <= 'Z' && h[5] >= 'A' && h[5] <= 'Z';
    if (explicit_vr) return 1;
    /* implicit VR little endian: a plausible (small) first length */
    uint32_t len = (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
    return gle == 2 || gle == 8 ? len < 0x10000 : 0;
}

/* Fail with the reason when nothing here decodes transfer syntax uid; else 0. */
static int refuse_xfer(const char *path, const OFString &uid, sx_err *err) {
    static const char *const j2k[] = {"1.2.840.10008.1.2.4.90",  "1.2.840.10008.1.2.4.91",
                                      "1.2.840.10008.1.2.4.92",  "1.2.840.10008.1.2.4.93",
                                      "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                                      "1.2.840.10008.1.2.4.203"};
    for (const char *u : j2k)
        if (uid == u)
            return sx_fail(err, "%s: unsupported transfer syntax %s (JPEG 2000): the free DCMTK has no JPEG 2000 "
                                "decoder; convert the file first (e.g. gdcmconv --raw IN OUT)",
                           path, u);
    DcmXfer x(uid.c_str());
    if (x.getXfer() == EXS_Unknown)
        return sx_fail(err, "%s: unsupported transfer syntax (unknown UID '%.64s')", path, uid.c_str());
    if (x.getXfer() == EXS_DeflatedLittleEndianExplicit)
        return sx_fail(err, "%s: unsupported transfer syntax %s (deflated dataset)", path, uid.c_str());
    if (x.isEncapsulated() && !DcmCodecList::canChangeCoding(x.getXfer(), EXS_LittleEndianExplicit))
        return sx_fail(err, "%s: unsupported transfer syntax %s (%s): no decoder for it", path, uid.c_str(),
                       x.getXferName());
    return 0;
}

/* The Transfer Syntax UID (0002,0010) of a Part 10 file, read by hand from
 * the meta header (explicit VR little endian after the 128-byte preamble and
 * "DICM"), so that a syntax we cannot decode is refused before DCMTK parses
 * the dataset. 1: found (uid set); 0: no preamble or no such element (DCMTK
 * then detects the encoding); -1: truncated or malformed (err set). Reads
 * at most the first 64 KiB; every length is checked against what was read. */
static const size_t META_CAP = 65536;

/* The same on the first n (<= META_CAP) bytes b of the file. */
static int meta_transfer_syntax_of(const uint8_t *b, size_t n, const char *path, OFString &uid, sx_err *err) {
    const size_t CAP = META_CAP;
    if (n < 132 || std::memcmp(b + 128, "DICM", 4) != 0) return 0;
    size_t at = 132;
    while (at + 8 <= n) {
        unsigned group = b[at] | b[at + 1] << 8, elem = b[at + 2] | b[at + 3] << 8;
        if (group != 0x0002) return 0;
        char vr[3] = {(char)b[at + 4], (char)b[at + 5], 0};
        size_t len, head;
        if (!std::strcmp(vr, "OB") || !std::strcmp(vr, "OW") || !std::strcmp(vr, "UN") || !std::strcmp(vr, "SQ") ||
            !std::strcmp(vr, "UT") || !std::strcmp(vr, "UC") || !std::strcmp(vr, "UR") || !std::strcmp(vr, "OF") ||
            !std::strcmp(vr, "OD") || !std::strcmp(vr, "OL") || !std::strcmp(vr, "OV")) {
            if (at + 12 > n) break;
            len = (size_t)b[at + 8] | (size_t)b[at + 9] << 8 | (size_t)b[at + 10] << 16 | (size_t)b[at + 11] << 24;
            head = 12;
        } else {
            len = (size_t)(b[at + 6] | b[at + 7] << 8);
            head = 8;
        }
        if (len > n - at - head) break; /* past what we read: truncated (or a huge meta element) */
        if (elem == 0x0010) {
            size_t l = len;
            while (l > 0 && (b[at + head + l - 1] == 0 || b[at + head + l - 1] == ' ')) l--;
            if (l == 0 || l > 64) return sx_fail(err, "%s: DICOM meta header has an invalid transfer syntax UID", path);
            uid.assign(reinterpret_cast<const char *>(b + at + head), l);
            return 1;
        }
        at += head + len;
    }
    if (n < CAP) return sx_fail(err, "%s: truncated DICOM file (the meta header ends early)", path);
    return sx_fail(err, "%s: DICOM meta header is malformed or over 64 KiB", path);
}

static int meta_transfer_syntax(const char *path, OFString &uid, sx_err *err) {
    FILE *f = sx_fopen_input(path, NULL, err);
    if (!f) return -1;
    std::unique_ptr<uint8_t[]> buf(new uint8_t[META_CAP]);
    size_t n = std::fread(buf.get(), 1, META_CAP, f);
    std::fclose(f);
    return meta_transfer_syntax_of(buf.get(), n, path, uid, err);
}

/* A parse failure: the end of the file came early, or something else. The
 * condition texts are DCMTK's fixed sentences, never dataset values. */
static int parse_failure(const char *path, const OFCondition &c, sx_err *err) {
    if (c == EC_StreamNotifyClient || c == EC_EndOfStream)
        return sx_fail(err, "%s: truncated DICOM file (the data ends early)", path);
    return sx_fail(err, "%s: corrupt DICOM file (%s)", path, c.text());
}

static uint32_t le32(const Uint8 *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* PS3.5 Annex G: an RLE fragment (one frame) starts with a 64-byte header,
 * the segment count (one segment per byte of each sample) and 15 segment
 * offsets. DCMTK 3.6.7's RLE decoder trusts these offsets and reads past
 * the fragment when they point outside it (found by fuzz/fuzz_image.c), so
 * every fragment's header is checked here before DCMTK decodes anything. */
static int check_rle_fragment(const char *path, DcmPixelItem *it, unsigned segments, sx_err *err) {
    Uint32 len = it->getLength();
    Uint8 *p = NULL;
    if (len < 64 || it->getUint8Array(p).bad() || !p)
        return sx_fail(err, "%s: corrupt RLE pixel data (fragment shorter than its header)", path);
    uint32_t n = le32(p);
    if (n != segments)
        return sx_fail(err, "%s: corrupt RLE pixel data (%u segments, the image needs %u)", path, (unsigned)n,
                       segments);
    uint32_t prev = 0;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t off = le32(p + 4 + 4 * k);
        if ((k == 0 && off != 64) || (k > 0 && off <= prev) || off >= len)
            return sx_fail(err, "%s: corrupt RLE pixel data (segment offset outside the fragment)", path);
        prev = off;
    }
    return 0;
}

/* Check the pixel data element against the geometry and the file size
 * before DicomImage allocates anything for it. */
static int check_pixel_data(const char *path, DcmDataset *ds, E_TransferSyntax xfer, uint64_t frame_bytes,
                            unsigned rle_segments, uint64_t file_size, sx_err *err) {
    DcmElement *el = NULL;
    if (ds->findAndGetElement(DCM_PixelData, el).bad() || !el)
        return sx_fail(err, "%s: DICOM file has no pixel data (not an image object)", path);
    if (el->ident() != EVR_PixelData)
        return sx_fail(err, "%s: DICOM pixel data element is malformed", path);
    DcmPixelData *pd = static_cast<DcmPixelData *>(el);
    if (DcmXfer(xfer).isEncapsulated()) {
        DcmPixelSequence *seq = NULL;
        if (pd->getEncapsulatedRepresentation(xfer, NULL, seq).bad() || !seq)
            return sx_fail(err, "%s: DICOM compressed pixel data is missing or malformed", path);
        unsigned long n = seq->card();
        if (n < 2) return sx_fail(err, "%s: DICOM file has empty pixel data (no compressed fragment)", path);
        uint64_t total = 0, fragments = 0; /* item 0 is the offset table */
        for (unsigned long i = 0; i < n; i++) {
            DcmPixelItem *it = NULL;
            if (seq->getItem(it, i).bad() || !it)
                return sx_fail(err, "%s: DICOM compressed pixel data is malformed", path);
            total += it->getLength();
            if (i > 0) fragments += it->getLength();
            if (total > file_size)
                return sx_fail(err, "%s: DICOM pixel data claims more bytes than the file has (truncated)", path);
        }
        if (fragments == 0) return sx_fail(err, "%s: DICOM file has empty pixel data", path);
        if (xfer == EXS_RLELossless)
            for (unsigned long i = 1; i < n; i++) {
                DcmPixelItem *it = NULL;
                if (seq->getItem(it, i).bad() || !it || check_rle_fragment(path, it, rle_segments, err))
                    return it ? -1 : sx_fail(err, "%s: DICOM compressed pixel data is malformed", path);
            }
        return 0;
    }
    uint64_t len = pd->getLength();
    if (len == 0) return sx_fail(err, "%s: DICOM file has empty pixel data", path);
    if (len == DCM_UndefinedLength)
        return sx_fail(err, "%s: DICOM pixel data is encapsulated but the transfer syntax is not", path);
    if (len > file_size)
        return sx_fail(err, "%s: DICOM pixel data claims %llu bytes, the file has %llu (truncated)", path,
                       (unsigned long long)len, (unsigned long long)file_size);
    if (len < frame_bytes)
        return sx_fail(err, "%s: DICOM pixel data is truncated (%llu bytes, one frame needs %llu)", path,
                       (unsigned long long)len, (unsigned long long)frame_bytes);
    return 0;
}

/* Render the first frame of di into a malloc'ed float image. */
/* di's output at `bits` per sample (at least `bytes` of it), or NULL with
 * "PATH: DICOM <what>image could not be rendered" in err. */
static const void *rendered(const char *path, DicomImage &di, int bits, size_t bytes, const char *what, sx_err *err) {
    if (di.getOutputDataSize(bits) < bytes) {
        sx_fail(err, "%s: DICOM %simage could not be rendered", path, what);
        return NULL;
    }
    const void *px = di.getOutputData(bits, 0, 0);
    if (!px) sx_fail(err, "%s: DICOM %simage could not be rendered (%s)", path, what, DicomImage::getString(di.getStatus()));
    return px;
}

/* n floats for the w x h image, or NULL with "out of memory" in err. */
static float *alloc_out(const char *path, size_t n, unsigned long w, unsigned long h, sx_err *err) {
    float *out = static_cast<float *>(std::malloc(n * sizeof(float)));
    if (!out) sx_fail(err, "%s: out of memory for a %lux%lu image", path, w, h);
    return out;
}

static int render(const char *path, DicomImage &di, float **data, sx_err *err) {
    unsigned long w = di.getWidth(), h = di.getHeight();
    size_t n = (size_t)w * (size_t)h;
    float *out = NULL;
    if (di.isMonochrome()) {
        /* The file's first window, else its first VOI LUT, else min-max. */
        if (!(di.getWindowCount() > 0 && di.setWindow(0)) && !(di.getVoiLutCount() > 0 && di.setVoiLut(0)))
            di.setMinMaxWindow(0);
        const Uint16 *px = static_cast<const Uint16 *>(rendered(path, di, 16, n * sizeof(Uint16), "", err));
        if (!px || !(out = alloc_out(path, n, w, h, err))) return -1;
        for (size_t i = 0; i < n; i++) out[i] = px[i];
    } else {
        const Uint8 *px = static_cast<const Uint8 *>(rendered(path, di, 8, n * 3, "colour ", err));
        if (!px || !(out = alloc_out(path, n, w, h, err))) return -1;
        for (size_t i = 0; i < n; i++) {
            float r = px[3 * i], g = px[3 * i + 1], b = px[3 * i + 2];
            /* luma as image.c: grey stays exact */
            out[i] = (r == g && g == b) ? r : 0.299f * r + 0.587f * g + 0.114f * b;
        }
        /* colour output is 8-bit: scale to the 0..65535 range of grey */
        for (size_t i = 0; i < n; i++) out[i] *= 257.0f;
    }
    *data = out;
    return 0;
}

/* From the file at path, or, when mem is set, from its mem_len bytes (path
 * then only names it in messages). */
static int load(const char *path, const uint8_t *mem, size_t mem_len, const dicom_limits *lim, float **data,
                int *width, int *height, sx_err *warning, sx_err *err) {
    dicom_init();
    if (!dcmDataDict.isDictionaryLoaded())
        return sx_fail(err, "%s: cannot read DICOM: DCMTK's data dictionary is not installed (libdcmtk17)", path);

    /* 1. The transfer syntax, from the meta header: refuse what we cannot
     *    decode before DCMTK parses anything. */
    OFString uid;
    int has_meta = mem ? meta_transfer_syntax_of(mem, mem_len < META_CAP ? mem_len : META_CAP, path, uid, err)
                       : meta_transfer_syntax(path, uid, err);
    if (has_meta < 0) return -1;
    if (has_meta && refuse_xfer(path, uid, err)) return -1;

    /* 2. The dataset. */
    DcmFileFormat ff;
    OFCondition c;
    if (mem) {
        /* the whole object is in the buffer: DcmFileFormat reads it as a
         * file's stream (meta header and preamble auto-detected) */
        DcmInputBufferStream in;
        in.setBuffer(mem, (offile_off_t)mem_len);
        in.setEos();
        ff.transferInit();
        c = ff.read(in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
        ff.transferEnd();
    } else
        c = ff.loadFile(path, EXS_Unknown, EGL_noChange, READ_NOW, ERM_autoDetect);
    if (c.bad()) return parse_failure(path, c, err);
    DcmDataset *ds = ff.getDataset();
    E_TransferSyntax xfer = ds->getOriginalXfer();
    if (xfer == EXS_Unknown) return sx_fail(err, "%s: DICOM file with an unrecognised transfer syntax", path);
    {
        /* a file without meta header: the syntax DCMTK detected */
        DcmXfer x(xfer);
        if (x.isEncapsulated() || xfer == EXS_DeflatedLittleEndianExplicit) {
            if (refuse_xfer(path, x.getXferID(), err)) return -1;
        }
    }

    /* 3. Geometry, checked before any pixel buffer. */
    Uint16 rows = 0, cols = 0, spp = 1, bits = 0;
    DcmElement *probe = NULL;
    if (ds->findAndGetElement(DCM_PixelData, probe).bad())
        return sx_fail(err, "%s: DICOM file has no pixel data (not an image object)", path);
    if (ds->findAndGetUint16(DCM_Rows, rows).bad() || ds->findAndGetUint16(DCM_Columns, cols).bad())
        return sx_fail(err, "%s: DICOM image without Rows/Columns", path);
    if (rows == 0 || cols == 0)
        return sx_fail(err, "%s: image has zero size (%ux%u)", path, (unsigned)cols, (unsigned)rows);
    if (cols > lim->max_side || rows > lim->max_side || (uint64_t)rows * cols > lim->max_pixels)
        return sx_fail(err, "%s: image too large (%ux%u; limit %u px a side, %llu pixels)", path, (unsigned)cols,
                       (unsigned)rows, (unsigned)lim->max_side, (unsigned long long)lim->max_pixels);
    ds->findAndGetUint16(DCM_SamplesPerPixel, spp);
    if (ds->findAndGetUint16(DCM_BitsAllocated, bits).bad() || bits == 0 || bits > 32)
        return sx_fail(err, "%s: DICOM BitsAllocated missing or unsupported (%u)", path, (unsigned)bits);
    if (spp != 1 && spp != 3)
        return sx_fail(err, "%s: DICOM SamplesPerPixel %u is not supported (want 1 or 3)", path, (unsigned)spp);
    uint64_t frame_bytes = ((uint64_t)rows * cols * spp * bits + 7) / 8;
    unsigned rle_segments = (unsigned)spp * ((bits + 7u) / 8u);
    if (check_pixel_data(path, ds, xfer, frame_bytes, rle_segments, lim->file_size, err)) return -1;
    Sint32 frames = 1;
    if (ds->findAndGetSint32(DCM_NumberOfFrames, frames).bad() || frames < 1) frames = 1;

    /* 4. Decode and render the first frame. */
    std::unique_ptr<DicomImage> di(new DicomImage(
        &ff, xfer, CIF_UsePartialAccessToPixelData | CIF_NeverAccessEmbeddedOverlays, 0, 1));
    EI_Status st = di->getStatus();
    if (st != EIS_Normal)
        return sx_fail(err, "%s: cannot decode DICOM pixel data (corrupt or inconsistent; DCMTK: %s)", path,
                       DicomImage::getString(st));
    if (di->getWidth() != cols || di->getHeight() != rows)
        return sx_fail(err, "%s: DICOM image decoded to an unexpected size", path);
    float *out = NULL;
    if (render(path, *di, &out, err)) return -1;
    *data = out;
    *width = cols;
    *height = rows;
    if (frames > 1 && warning)
        sx_fail(warning, "%s: multi-frame DICOM (%d frames), using the first frame only", path, (int)frames);
    return 0;
}

extern "C" int dicom_load_gray(const char *path, const dicom_limits *lim, float **data, int *width, int *height,
                               sx_err *warning, sx_err *err) {
    *data = NULL;
    *width = *height = 0;
    if (warning) warning->msg[0] = 0;
    try {
        return load(path, NULL, 0, lim, data, width, height, warning, err);
    } catch (const std::bad_alloc &) {
        return sx_fail(err, "%s: out of memory while reading DICOM", path);
    } catch (...) {
        return sx_fail(err, "%s: internal error while reading DICOM", path);
    }
}

extern "C" int dicom_load_gray_mem(const void *buf, size_t len, const char *name, const dicom_limits *lim,
                                   float **data, int *width, int *height, sx_err *warning, sx_err *err) {
    *data = NULL;
    *width = *height = 0;
    if (warning) warning->msg[0] = 0;
    if (!buf || !len) return sx_fail(err, "%s: empty DICOM data", name);
    try {
        return load(name, static_cast<const uint8_t *>(buf), len, lim, data, width, height, warning, err);
    } catch (const std::bad_alloc &) {
        return sx_fail(err, "%s: out of memory while reading DICOM", name);
    } catch (...) {
        return sx_fail(err, "%s: internal error while reading DICOM", name);
    }
}
