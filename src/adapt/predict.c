/* predict.c: see predict.h. */
#include "adapt/predict.h"
#include "adapt/predict_draw.h"
#include "data/csv.h"
#include "core/json.h"
#include "io/image.h"
#include "zeroshot/batch.h"
#include "zeroshot/errormap.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PREDICT_MAX_BOXES 256

void predict_default_opts(predict_opts *o) {
    memset(o, 0, sizeof *o);
    o->mode = PREDICT_ERRORMAP;
    skx_region_opts_default(&o->region);
    skx_errormap_opts_default(&o->map);
}

int predict_parse_mode(const char *s, predict_opts *o, sx_err *err) {
    if (!strcmp(s, "errormap")) o->mode = PREDICT_ERRORMAP;
    else if (!strcmp(s, "whole")) o->mode = PREDICT_WHOLE;
    else if (!strncmp(s, "boxes:", 6) && s[6]) { o->mode = PREDICT_BOXES; o->boxes_dir = s + 6; }
    else return sx_fail(err, "--regions is errormap, whole or boxes:DIR (got '%s')", s);
    return 0;
}

static const char *mode_name(predict_mode m) {
    return m == PREDICT_ERRORMAP ? "errormap" : m == PREDICT_BOXES ? "boxes" : "whole";
}

void predict_close(predictor *p) {
    skx_ctx_free(p->ccls);
    skx_ctx_free(p->cmae);
    skx_model_free(p->cls);
    skx_model_free(p->mae);
    cJSON_Delete(p->doc);
    if (p->csv) fclose(p->csv);
    free(p->csv_buf);
    memset(p, 0, sizeof *p);
}

static int fail_api(predictor *p, sx_err *err, const char *what, const skx_error *e) {
    predict_close(p);
    return sx_fail(err, "%s: %s", what, e->msg);
}

int predict_open(predictor *p, const char *cls_dir, const char *mae_dir, const char *outdir, const predict_opts *o,
                 sx_err *err) {
    memset(p, 0, sizeof *p);
    p->o = *o;
    p->outdir = outdir;
    skx_error e;
    if (o->mode == PREDICT_ERRORMAP && !mae_dir) return sx_fail(err, "--regions errormap needs --mae MAE_DIR");
    if (skx_model_load(cls_dir, &p->cls, &e)) return fail_api(p, err, cls_dir, &e);
    skx_model_info ci;
    skx_model_get_info(p->cls, &ci);
    if (ci.kind != SKX_MODEL_CLASSIFIER || skx_model_group_count(p->cls) == 0) {
        predict_close(p);
        return sx_fail(err, "%s: not a classification model (an MAE, or a regression head)", cls_dir);
    }
    p->n_out = ci.n_outputs;
    if (skx_ctx_new(p->cls, 1, o->threads, &p->ccls, &e)) return fail_api(p, err, cls_dir, &e);
    const char *mae_name = NULL;
    if (o->mode == PREDICT_ERRORMAP) {
        if (skx_model_load(mae_dir, &p->mae, &e)) return fail_api(p, err, mae_dir, &e);
        skx_model_info mi;
        skx_model_get_info(p->mae, &mi);
        if (mi.kind != SKX_MODEL_MAE) {
            predict_close(p);
            return sx_fail(err, "%s: --mae must be an MAE (ViTMAEForPreTraining), this is a classifier", mae_dir);
        }
        mae_name = mi.name;
        if (skx_ctx_new(p->mae, o->map.passes, o->threads, &p->cmae, &e)) return fail_api(p, err, mae_dir, &e);
    }
    if (mkdir(outdir, 0755) && errno != EEXIST) {
        predict_close(p);
        return sx_fail(err, "%s: cannot create (%s)", outdir, strerror(errno));
    }
    static const char header[] = "file,output,probability,region,source,x0,y0,x1,y1\r\n";
    if (!(p->csv = open_memstream(&p->csv_buf, &p->csv_len)) || fputs(header, p->csv) < 0) {
        predict_close(p);
        return sx_fail(err, "out of memory for predictions.csv");
    }
    p->doc = cJSON_CreateObject();
    cJSON_AddStringToObject(p->doc, "model", ci.name);
    if (mae_name) cJSON_AddStringToObject(p->doc, "mae", mae_name);
    else cJSON_AddNullToObject(p->doc, "mae");
    cJSON_AddStringToObject(p->doc, "regions", mode_name(o->mode));
    cJSON *op = cJSON_AddObjectToObject(p->doc, "options");
    if (o->mode == PREDICT_ERRORMAP) {
        cJSON_AddNumberToObject(op, "top_k", o->region.k);
        cJSON_AddNumberToObject(op, "percentile", o->region.percentile);
        cJSON_AddNumberToObject(op, "pad", o->region.pad);
        cJSON_AddNumberToObject(op, "min_area", o->region.min_area);
        cJSON_AddNumberToObject(op, "passes", o->map.passes);
        cJSON_AddNumberToObject(op, "seed", (double)o->map.seed);
    } else if (o->mode == PREDICT_BOXES)
        cJSON_AddStringToObject(op, "boxes", o->boxes_dir);
    cJSON *outs = cJSON_AddArrayToObject(p->doc, "outputs");
    for (int j = 0; j < p->n_out; j++) cJSON_AddItemToArray(outs, cJSON_CreateString(skx_model_output_name(p->cls, j)));
    cJSON *gs = cJSON_AddArrayToObject(p->doc, "groups");
    for (int g = 0; g < skx_model_group_count(p->cls); g++) {
        skx_group_info gi;
        skx_model_group(p->cls, g, &gi, NULL);
        cJSON *go = cJSON_CreateObject();
        cJSON_AddStringToObject(go, "name", gi.name);
        cJSON_AddStringToObject(go, "kind", gi.kind == SKX_GROUP_SOFTMAX ? "softmax" : "sigmoid");
        cJSON *gm = cJSON_AddArrayToObject(go, "outputs");
        for (int k = 0; k < gi.n_outputs; k++)
            cJSON_AddItemToArray(gm, cJSON_CreateString(skx_model_output_name(p->cls, gi.outputs[k])));
        cJSON_AddItemToArray(gs, go);
    }
    p->images = cJSON_AddArrayToObject(p->doc, "images");
    p->failed = cJSON_AddArrayToObject(p->doc, "failed");
    return 0;
}

int predict_top_output(const skx_model *cls, const skx_prediction *pr, int r) {
    int best = -1, ng = skx_model_group_count(cls);
    const double *p = pr->probs + (size_t)r * pr->n_outputs;
    for (int g = 0; g < ng; g++) {
        skx_group_info gi;
        skx_model_group(cls, g, &gi, NULL);
        for (int k = 0; k < gi.n_outputs; k++)
            if (best < 0 || p[gi.outputs[k]] > p[best]) best = gi.outputs[k];
    }
    for (int j = 0; ng == 0 && j < pr->n_outputs; j++)
        if (best < 0 || p[j] > p[best]) best = j;
    return best;
}

int predict_overlay_png(const skx_model *cls, const skx_image *img, const skx_region *r, const skx_prediction *pr,
                        void **png, size_t *len, sx_err *err) {
    static const uint8_t colors[3][3] = {{80, 200, 255}, {255, 140, 0}, {0, 230, 120}};   /* whole, errormap, box */
    static const uint8_t black[3] = {0, 0, 0};
    int W = skx_image_width(img), H = skx_image_height(img), m = W < H ? W : H;
    draw_canvas c;
    if (draw_canvas_from_gray(&c, skx_image_gray8(img), W, H)) return sx_fail(err, "out of memory for the overlay");
    int thick = m / 300 + 1, scale = m / 250 + 1;
    for (int i = 0; i < pr->n_regions; i++) {
        const float *b = r[i].box;
        const uint8_t *col = colors[r[i].source >= 0 && r[i].source <= 2 ? r[i].source : 0];
        int x0 = (int)floorf(b[0]), y0 = (int)floorf(b[1]), x1 = (int)ceilf(b[2]), y1 = (int)ceilf(b[3]);
        draw_rect(&c, x0, y0, x1, y1, thick, col);
        int top = predict_top_output(cls, pr, i);
        char label[160];
        snprintf(label, sizeof label, "%d: %.60s %.2f", i, top >= 0 ? skx_model_output_name(cls, top) : "?",
                 top >= 0 ? pr->probs[(size_t)i * pr->n_outputs + top] : 0.0);
        int tw = draw_text_width(label, scale), th = draw_text_height(scale);
        /* above the box when there is room, else just inside its top edge;
         * the whole image's label goes to its top-left corner */
        int ty = r[i].source == SKX_REGION_WHOLE ? thick + 2 * scale : (y0 - th - 2 * scale >= 0 ? y0 - th - 2 * scale : y0 + thick);
        int tx = x0 + thick + scale;
        draw_fill(&c, tx - scale, ty - scale, tx + tw + scale, ty + th + scale, black);
        draw_text(&c, tx, ty, label, scale, col);
    }
    int rc = png_encode_u8(c.rgb, W, H, 3, png, len, err);
    draw_canvas_free(&c);
    return rc;
}

/* The regions of one image under the mode. */
static int image_regions(predictor *p, const skx_image *img, const char *path, skx_region **out, int *n, sx_err *err) {
    skx_error e;
    *out = NULL;
    *n = 0;
    if (p->o.mode == PREDICT_ERRORMAP) {
        skx_errormap em;
        if (skx_errormap_compute(p->cmae, img, &p->o.map, &em, &e)) return sx_fail(err, "%s: error map: %s", path, e.msg);
        *out = sx_malloc(sizeof(skx_region) * (size_t)(p->o.region.k + 1));
        int rc = skx_regions_from_errormap(&em, img, &p->o.region, *out, p->o.region.k + 1, n, &e);
        skx_errormap_free(&em);
        if (rc) return sx_fail(err, "%s: %s", path, e.msg);
        return 0;
    }
    int nb = 0;
    float *px = NULL;
    if (p->o.mode == PREDICT_BOXES) {
        char stem[1024], bpath[4400];
        zs_stem_of(path, stem, sizeof stem);
        snprintf(bpath, sizeof bpath, "%s/%s.txt", p->o.boxes_dir, stem);
        struct stat st;
        if (stat(bpath, &st) == 0) {
            norm_box *nbx = sx_malloc(sizeof(norm_box) * PREDICT_MAX_BOXES);
            nb = boxes_read_yolo(bpath, nbx, PREDICT_MAX_BOXES, err);
            if (nb < 0) { free(nbx); return -1; }
            int W = skx_image_width(img), H = skx_image_height(img);
            px = sx_malloc(sizeof(float) * 4 * (size_t)(nb ? nb : 1));
            for (int i = 0; i < nb; i++) {
                px[4 * i] = (nbx[i].cx - nbx[i].w / 2) * (float)W;
                px[4 * i + 1] = (nbx[i].cy - nbx[i].h / 2) * (float)H;
                px[4 * i + 2] = (nbx[i].cx + nbx[i].w / 2) * (float)W;
                px[4 * i + 3] = (nbx[i].cy + nbx[i].h / 2) * (float)H;
            }
            free(nbx);
        }
    }
    *out = sx_malloc(sizeof(skx_region) * (size_t)(nb + 1));
    int rc = skx_regions_from_boxes(px, nb, img, *out, nb + 1, n, &e);
    free(px);
    if (rc) return sx_fail(err, "%s: %s", path, e.msg);
    return 0;
}

void predict_decision_json(cJSON *o, const skx_prediction *pr) {
    if (!pr->has_decision) return;
    cJSON *d = cJSON_AddObjectToObject(o, "decision");
    cJSON_AddStringToObject(d, "rule", "skelex_tumour");
    cJSON_AddBoolToObject(d, "tumour", pr->tumour);
    cJSON_AddBoolToObject(d, "malignant", pr->malignant);
    const json_number f[] = {{"p_tumour", pr->p_tumour}, {"p_malignant", pr->p_malignant},
                             {"region_tumour", pr->region_tumour}, {"region_malignant", pr->region_malignant}};
    json_add_numbers(d, f, sizeof f / sizeof *f);
}

static void record_failure(predictor *p, const char *path, const char *msg) {
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "file", path);
    cJSON_AddStringToObject(f, "error", msg);
    cJSON_AddItemToArray(p->failed, f);
}

static cJSON *box_json(const float *b) {
    cJSON *a = cJSON_CreateArray();
    for (int k = 0; k < 4; k++) cJSON_AddItemToArray(a, cJSON_CreateNumber(b[k]));
    return a;
}

/* The image's entry in predictions.json and its CSV rows. */
static void record_image(predictor *p, const char *path, const char *overlay, const skx_image *img,
                         const skx_region *r, const skx_prediction *pr) {
    cJSON *im = cJSON_CreateObject();
    cJSON_AddStringToObject(im, "file", path);
    cJSON_AddNumberToObject(im, "width", skx_image_width(img));
    cJSON_AddNumberToObject(im, "height", skx_image_height(img));
    cJSON_AddStringToObject(im, "overlay", overlay);
    cJSON *rs = cJSON_AddArrayToObject(im, "regions");
    for (int i = 0; i < pr->n_regions; i++) {
        cJSON *ro = cJSON_CreateObject();
        cJSON_AddItemToObject(ro, "box", box_json(r[i].box));
        cJSON_AddStringToObject(ro, "source", skx_region_source_name(r[i].source));
        cJSON *pp = cJSON_AddObjectToObject(ro, "probs");
        for (int j = 0; j < pr->n_outputs; j++)
            cJSON_AddNumberToObject(pp, skx_model_output_name(p->cls, j), pr->probs[(size_t)i * pr->n_outputs + j]);
        cJSON_AddItemToArray(rs, ro);
    }
    cJSON *ag = cJSON_AddObjectToObject(im, "aggregate");
    for (int j = 0; j < pr->n_outputs; j++) {
        cJSON *a = cJSON_AddObjectToObject(ag, skx_model_output_name(p->cls, j));
        cJSON_AddNumberToObject(a, "probability", pr->max[j]);
        cJSON_AddNumberToObject(a, "region", pr->argmax[j]);
        const float *b = r[pr->argmax[j]].box;
        csv_write_field(p->csv, path);
        fputc(',', p->csv);
        csv_write_field(p->csv, skx_model_output_name(p->cls, j));
        fprintf(p->csv, ",%.9g,%d,%s,%.6g,%.6g,%.6g,%.6g\r\n", pr->max[j], pr->argmax[j],
                skx_region_source_name(r[pr->argmax[j]].source), b[0], b[1], b[2], b[3]);
    }
    predict_decision_json(im, pr);
    cJSON_AddItemToArray(p->images, im);
}

int predict_image(predictor *p, const char *path, const char *stem, sx_err *err) {
    skx_error e;
    skx_image *img = NULL;
    skx_region *r = NULL;
    skx_prediction pr;
    memset(&pr, 0, sizeof pr);
    void *png = NULL;
    size_t len = 0;
    int n = 0, rc = -1;
    char name[1200], opath[4400];
    snprintf(name, sizeof name, "%s_predict.png", stem);
    snprintf(opath, sizeof opath, "%s/%s", p->outdir, name);
    if (skx_image_load_file(path, &img, &e)) sx_fail(err, "%s", e.msg);
    else if (image_regions(p, img, path, &r, &n, err)) {
    } else if (skx_predict_regions(p->ccls, img, r, n, &pr, &e)) sx_fail(err, "%s: %s", path, e.msg);
    else if (predict_overlay_png(p->cls, img, r, &pr, &png, &len, err) || io_write_file(opath, png, len, err)) {
    } else {
        record_image(p, path, name, img, r, &pr);
        rc = 0;
    }
    if (rc) record_failure(p, path, err->msg);
    free(png);
    skx_prediction_free(&pr);
    free(r);
    skx_image_free(img);
    return rc;
}

int predict_finish(predictor *p, sx_err *err) {
    char path[4400];
    snprintf(path, sizeof path, "%s/predictions.json", p->outdir);
    if (json_write_file(path, p->doc, err)) return -1;   /* atomic */
    if (fflush(p->csv)) return sx_fail(err, "out of memory for predictions.csv");
    snprintf(path, sizeof path, "%s/predictions.csv", p->outdir);
    return io_write_file(path, p->csv_buf, p->csv_len, err);
}
