/* batch.h: what `skelex errormap` needs around the one-image pipeline for a
 * batch: unique output names, the summary CSV (RFC 4180), the per-image
 * outputs and the localisation scores against YOLO boxes. */
#ifndef SKELEX_BATCH_H
#define SKELEX_BATCH_H
#include "zeroshot/pipeline.h"
#include <stdio.h>

struct cJSON;

/* Output stems for n input paths: the file name without its extension, and
 * for names that more than one input share (study1/IM-0001.dcm and
 * study2/IM-0001.dcm) that stem plus "-" and 8 hex digits of a hash of the
 * whole path, so no two inputs write the same files. The array and its
 * strings are malloc'd: zs_stems_free. */
char **zs_output_stems(const char *const *paths, size_t n);
void zs_stems_free(char **stems, size_t n);

/* The file name of path without its extension (for box files). */
void zs_stem_of(const char *path, char *stem, size_t cap);

/* The summary's header line and one row per image. */
void zs_summary_header(FILE *f);
void zs_summary_row(FILE *f, const char *file, const char *stem, const zs_map *z);
/* "patch-normalised" or "pixel [0,1]". */
const char *zs_space_name(int norm_pix);

/* OUTDIR/<stem>_error.npy, <stem>_errormap.png (overlay with colour bar),
 * <stem>_panel.png (m must still hold the forward of z). On a failure the
 * files of this image already written are removed. */
int zs_write_outputs(const char *outdir, const char *stem, const mae_model *m, const gray_image *img,
                     const zs_map *z, float alpha, sx_err *err);

/* Localisation totals over the images that have boxes. */
typedef struct {
    int n_scored, n_unboxed, hits, n_auroc;
    double mass_share, area_share, auroc, lift;
    struct cJSON *per_image;
} zs_loc;

void zs_loc_init(zs_loc *t);
/* Score z against boxdir/<stem of file>.txt (no file: counted as without
 * boxes). -1 with err when the box file is malformed (not counted). */
int zs_loc_add(zs_loc *t, const char *boxdir, const char *file, const zs_map *z, sx_err *err);
/* The totals as localization.json's object (per_image moves into it;
 * zs_loc_free after is still right). */
struct cJSON *zs_loc_json(zs_loc *t, int passes, masking_kind kind, int norm_pix);
/* The means the table prints: hit rate, mass share, area share, lift, AUROC. */
void zs_loc_means(const zs_loc *t, double *hit, double *mass, double *area, double *lift, double *auroc);
void zs_loc_free(zs_loc *t);

#endif
