/* predict.h: `skelex predict`, region-guided inference (SKELEX) with the
 * regions from the MAE's error map (or given boxes, or the whole image):
 * classify every region, take per output the maximum over regions with the
 * region it came from, apply the tumour rule where the outputs allow it.
 * Writes OUT/predictions.json, OUT/predictions.csv and one overlay PNG per
 * image. Goes through the public API (include/skelex.h) only.
 *
 * predictions.json:
 *   {"model", "mae" (or null), "regions" (the mode), "options", "outputs": [names],
 *    "groups": [{"name", "kind", "outputs": [names]}],
 *    "images": [{"file", "width", "height", "overlay",
 *                "regions": [{"box": [x0,y0,x1,y1], "source": "errormap"|"box"|"whole",
 *                             "probs": {output: p}}],
 *                "aggregate": {output: {"probability": p, "region": index}},
 *                "decision": {"rule": "skelex_tumour", "tumour", "malignant", "p_tumour",
 *                             "p_malignant", "region_tumour", "region_malignant"}   (when it applies)}],
 *    "failed": [{"file", "error"}]}
 * predictions.csv (RFC 4180, CRLF): file,output,probability,region,source,x0,y0,x1,y1
 * (one row per image and output: the aggregate). */
#ifndef SKELEX_PREDICT_H
#define SKELEX_PREDICT_H
#include "core/common.h"
#include <stdio.h>
#include "skelex.h"
#include <cjson/cJSON.h>

typedef enum { PREDICT_WHOLE, PREDICT_ERRORMAP, PREDICT_BOXES } predict_mode;

typedef struct {
    predict_mode mode;
    const char *boxes_dir;     /* PREDICT_BOXES: DIR/<image stem>.txt, YOLO lines; missing file = no box */
    skx_region_opts region;    /* PREDICT_ERRORMAP */
    skx_errormap_opts map;     /* PREDICT_ERRORMAP: passes, masking, seed */
    int threads;               /* OpenMP threads (0: all) */
} predict_opts;

typedef struct {
    predict_opts o;
    skx_model *cls, *mae;
    skx_ctx *ccls, *cmae;
    int n_out;
    const char *outdir;
    cJSON *doc, *images, *failed;
    FILE *csv;                 /* predictions.csv so far (header + rows), in memory (open_memstream) */
    char *csv_buf;             /* its buffer */
    size_t csv_len;
} predictor;

void predict_default_opts(predict_opts *o);
/* Parse "errormap", "whole" or "boxes:DIR" into o->mode / o->boxes_dir (a
 * pointer into s). -1 with err otherwise. */
int predict_parse_mode(const char *s, predict_opts *o, sx_err *err);

/* Load the classifier (and the MAE for PREDICT_ERRORMAP: required), make the
 * workspaces and the output folder. 0 or -1 with err (p is then closed). */
int predict_open(predictor *p, const char *cls_dir, const char *mae_dir, const char *outdir, const predict_opts *o,
                 sx_err *err);
/* One image: its regions, predictions and overlay (OUT/<stem>_predict.png),
 * recorded for the outputs. -1 with err: the image is recorded as failed. */
int predict_image(predictor *p, const char *path, const char *stem, sx_err *err);
/* Write predictions.json and predictions.csv (each atomically). 0 or -1. */
int predict_finish(predictor *p, sx_err *err);
void predict_close(predictor *p);

/* The overlay of one image: grey image with each region's box and the
 * label "<index>: <top output> <p>" (top among the grouped outputs). PNG
 * bytes, malloc'd. */
int predict_overlay_png(const skx_model *cls, const skx_image *img, const skx_region *r, const skx_prediction *pr,
                        void **png, size_t *len, sx_err *err);
/* The output of region r with the highest probability among the outputs
 * that are in some group (all outputs when the model has no groups). */
int predict_top_output(const skx_model *cls, const skx_prediction *pr, int r);
/* "decision" (the tumour rule's result, keys as in predictions.json) into o
 * when it applies; nothing otherwise. */
void predict_decision_json(cJSON *o, const skx_prediction *pr);

#endif
