/* analyze.c: see analyze.h. */
#include "serve/analyze.h"
#include "serve/report.h"
#include "adapt/predict.h"
#include <cjson/cJSON.h>
#include <spng.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int an_worker_new(const an_models *m, an_worker **out, sx_err *err) {
    *out = NULL;
    an_worker *w = calloc(1, sizeof *w);
    if (!w) return sx_fail(err, "out of memory");
    skx_error e;
    if (skx_ctx_new(m->mae, m->max_passes, m->threads, &w->mae, &e) != 0 ||
        (m->cls && skx_ctx_new(m->cls, 1, m->threads, &w->cls, &e) != 0)) {
        an_worker_free(w);
        return sx_fail(err, "worker workspace: %s", e.msg);
    }
    *out = w;
    return 0;
}

void an_worker_free(an_worker *w) {
    if (!w) return;
    skx_ctx_free(w->mae);
    skx_ctx_free(w->cls);
    free(w);
}

void an_task_free(an_task *t) {
    if (!t) return;
    free(t->body);
    free(t->json);
    rs_item_free(t->item);
    free(t);
}

char *an_error_json(const char *msg) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "error", msg);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int an_gray_png(const uint8_t *px, int w, int h, void **png, size_t *len, sx_err *err) {
    *png = NULL;
    spng_ctx *c = spng_ctx_new(SPNG_CTX_ENCODER);
    if (!c) return sx_fail(err, "out of memory");
    struct spng_ihdr ihdr = {.width = (uint32_t)w, .height = (uint32_t)h, .bit_depth = 8, .color_type = SPNG_COLOR_TYPE_GRAYSCALE};
    int rc = spng_set_option(c, SPNG_ENCODE_TO_BUFFER, 1);
    /* fast over small: it is sent once over loopback or a LAN */
    if (!rc) rc = spng_set_option(c, SPNG_IMG_COMPRESSION_LEVEL, 1);
    if (!rc) rc = spng_set_ihdr(c, &ihdr);
    if (!rc) rc = spng_encode_image(c, px, (size_t)w * (size_t)h, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    int e2 = 0;
    void *buf = rc ? NULL : spng_get_png_buffer(c, len, &e2);
    spng_ctx_free(c);
    if (!buf) return sx_fail(err, "PNG encoding failed: %s", spng_strerror(rc ? rc : e2));
    *png = buf;
    return 0;
}

static int status_of(int code) {
    switch (code) {
    case SKX_EFORMAT: return 415;
    case SKX_ETOOBIG: return 413;
    case SKX_EINVAL: return 400;
    case SKX_ENOMEM: return 503;
    default: return 500;
    }
}

static void set_error(an_task *t, int http, const char *msg) {
    t->http = http;
    free(t->json);
    t->json = an_error_json(msg);
}

static void add_path(cJSON *o, const char *key, const char *id, const char *file) {
    char p[96];
    snprintf(p, sizeof p, "/api/result/%s/%s", id, file);
    cJSON_AddStringToObject(o, key, p);
}

/* "heads": [{"name", "probability"}...] (every output) into o */
static void add_flat_heads(cJSON *o, const skx_model *cls, const double *p, int n) {
    cJSON *hs = cJSON_AddArrayToObject(o, "heads");
    for (int i = 0; i < n; i++) {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddStringToObject(h, "name", skx_model_output_name(cls, i));
        cJSON_AddNumberToObject(h, "probability", p[i]);
        cJSON_AddItemToArray(hs, h);
    }
}

/* "heads": the classifier's groups, each {"name", "kind", "outputs": [{"name",
 * "probability" (whole image), "max" (over regions), "region" (where)}]} */
static void add_grouped_heads(cJSON *o, const skx_model *cls, const skx_prediction *pr) {
    cJSON *hs = cJSON_AddArrayToObject(o, "heads");
    const double *whole = pr->probs + (size_t)(pr->n_regions - 1) * pr->n_outputs;
    for (int g = 0; g < skx_model_group_count(cls); g++) {
        skx_group_info gi;
        skx_model_group(cls, g, &gi, NULL);
        cJSON *go = cJSON_CreateObject();
        cJSON_AddStringToObject(go, "name", gi.name);
        cJSON_AddStringToObject(go, "kind", gi.kind == SKX_GROUP_SOFTMAX ? "softmax" : "sigmoid");
        cJSON *outs = cJSON_AddArrayToObject(go, "outputs");
        for (int k = 0; k < gi.n_outputs; k++) {
            int j = gi.outputs[k];
            cJSON *h = cJSON_CreateObject();
            cJSON_AddStringToObject(h, "name", skx_model_output_name(cls, j));
            cJSON_AddNumberToObject(h, "probability", whole[j]);
            cJSON_AddNumberToObject(h, "max", pr->max[j]);
            cJSON_AddNumberToObject(h, "region", pr->argmax[j]);
            cJSON_AddItemToArray(outs, h);
        }
        cJSON_AddItemToArray(hs, go);
    }
}

/* "regions": [{"source", "box", "top": {"name", "probability"}, "heads": [...]}],
 * and "decision" where the tumour rule applies */
static void add_regions(cJSON *o, const skx_model *cls, const skx_region *r, const skx_prediction *pr) {
    cJSON *rs = cJSON_AddArrayToObject(o, "regions");
    for (int i = 0; i < pr->n_regions; i++) {
        cJSON *ro = cJSON_CreateObject();
        cJSON_AddStringToObject(ro, "source", skx_region_source_name(r[i].source));
        cJSON *bx = cJSON_AddArrayToObject(ro, "box");
        for (int k = 0; k < 4; k++) cJSON_AddItemToArray(bx, cJSON_CreateNumber(r[i].box[k]));
        int t = predict_top_output(cls, pr, i);
        cJSON *top = cJSON_AddObjectToObject(ro, "top");
        cJSON_AddStringToObject(top, "name", t >= 0 ? skx_model_output_name(cls, t) : "");
        cJSON_AddNumberToObject(top, "probability", t >= 0 ? pr->probs[(size_t)i * pr->n_outputs + t] : 0);
        add_flat_heads(ro, cls, pr->probs + (size_t)i * pr->n_outputs, pr->n_outputs);
        cJSON_AddItemToArray(rs, ro);
    }
    predict_decision_json(o, pr);
}

void an_run(const an_models *m, an_worker *w, an_task *t) {
    double t0 = sx_now();
    skx_error e = {0};
    skx_image *img = NULL;
    skx_errormap em;
    memset(&em, 0, sizeof em);
    int have_map = 0;
    char *rep = NULL;
    cJSON *o = NULL;
    rs_item *it = NULL;
    skx_region regions[AN_MAX_REGIONS];
    int n_regions = 0, nh = 0;
    skx_prediction pr;
    memset(&pr, 0, sizeof pr);
    const char **names = NULL, **sources = NULL;
    int *tops = NULL;
    float *boxes = NULL;
    if (skx_image_load_memory(t->data, t->len, "upload", &img, &e) != 0) {
        /* 415 names what is readable; the decoder's reason is about the
         * bytes' structure, never their contents */
        char msg[1200];
        snprintf(msg, sizeof msg, "%s%.1100s", e.code == SKX_EFORMAT ? "not a readable image (PNG, JPEG or DICOM): " : "", e.msg);
        set_error(t, status_of(e.code), msg);
        goto done;
    }
    skx_errormap_opts eo;
    skx_errormap_opts_default(&eo);
    eo.passes = t->opts.passes;
    eo.masking = t->opts.masking ? SKX_MASKING_RANDOM : SKX_MASKING_BALANCED;
    eo.seed = t->opts.seed;
    if (skx_errormap_compute(w->mae, img, &eo, &em, &e) != 0) {
        set_error(t, status_of(e.code), e.msg);
        goto done;
    }
    have_map = 1;
    if (m->cls) {
        /* SKELEX region-guided inference with the regions from the error
         * map: its top areas as boxes, then the whole image (always last) */
        if (skx_regions_from_errormap(&em, img, NULL, regions, AN_MAX_REGIONS, &n_regions, &e) != 0 ||
            skx_predict_regions(w->cls, img, regions, n_regions, &pr, &e) != 0) {
            set_error(t, status_of(e.code), e.msg);
            goto done;
        }
        nh = pr.n_outputs;
        names = malloc(sizeof *names * (size_t)nh);
        sources = malloc(sizeof *sources * (size_t)n_regions);
        tops = malloc(sizeof *tops * (size_t)n_regions);
        boxes = malloc(sizeof *boxes * 4 * (size_t)n_regions);
        if (!names || !sources || !tops || !boxes) {
            set_error(t, 503, "out of memory");
            goto done;
        }
        for (int i = 0; i < nh; i++) names[i] = skx_model_output_name(m->cls, i);
        for (int i = 0; i < n_regions; i++) {
            sources[i] = skx_region_source_name(regions[i].source);
            tops[i] = predict_top_output(m->cls, &pr, i);
            memcpy(boxes + 4 * (size_t)i, regions[i].box, sizeof regions[i].box);
        }
    }
    it = rs_item_new();
    if (!it) {
        set_error(t, 503, "out of memory");
        goto done;
    }
    sx_err se;
    int W = skx_image_width(img), H = skx_image_height(img);
    if (skx_errormap_overlay_png(img, &em, 0.6f, 0, &it->blob[RS_OVERLAY], &it->len[RS_OVERLAY], &e) != 0 ||
        skx_errormap_npy(&em, &it->blob[RS_NPY], &it->len[RS_NPY], &e) != 0) {
        set_error(t, status_of(e.code), e.msg);
        goto done;
    }
    if (an_gray_png(skx_image_gray8(img), W, H, &it->blob[RS_IMAGE], &it->len[RS_IMAGE], &se) != 0) {
        set_error(t, 500, se.msg);
        goto done;
    }
    char date[64];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &tmv);
    const char *masking = em.masking == SKX_MASKING_RANDOM ? "random" : "balanced";
    rp_input ri = {.image_png = it->blob[RS_IMAGE], .image_len = it->len[RS_IMAGE], .overlay_png = it->blob[RS_OVERLAY],
                   .overlay_len = it->len[RS_OVERLAY], .width = W, .height = H, .mean = em.mean, .max = em.max,
                   .peak_x = em.peak_x, .peak_y = em.peak_y, .scale_max = em.scale_max, .passes = em.passes,
                   .never_masked = em.never_masked, .masking = masking, .mask_ratio = em.mask_ratio,
                   .model_name = m->mae_info.name, .version = skx_version(),
                   .classifier_name = m->cls ? m->cls_info.name : NULL, .n_heads = nh, .head_names = names,
                   .head_probs = nh ? pr.probs + (size_t)(n_regions - 1) * nh : NULL, .head_max = pr.max,
                   .head_region = pr.argmax, .n_regions = n_regions, .region_boxes = boxes, .region_sources = sources,
                   .region_top = tops, .region_probs = pr.probs, .date = date, .id = it->id};
    size_t replen = 0;
    rep = rp_html(&ri, &replen);
    if (!rep) {
        set_error(t, 503, "out of memory");
        goto done;
    }
    it->blob[RS_REPORT] = rep;
    it->len[RS_REPORT] = replen;
    rep = NULL;

    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", it->id);
    cJSON_AddNumberToObject(o, "width", W);
    cJSON_AddNumberToObject(o, "height", H);
    cJSON *s = cJSON_AddObjectToObject(o, "summary");
    cJSON_AddNumberToObject(s, "mean", em.mean);
    cJSON_AddNumberToObject(s, "max", em.max);
    cJSON_AddNumberToObject(s, "peak_x", em.peak_x);
    cJSON_AddNumberToObject(s, "peak_y", em.peak_y);
    cJSON_AddNumberToObject(s, "passes", em.passes);
    cJSON_AddStringToObject(s, "masking", masking);
    cJSON_AddNumberToObject(s, "mask_ratio", em.mask_ratio);
    cJSON_AddNumberToObject(s, "scale_max", em.scale_max);
    cJSON_AddNumberToObject(s, "never_masked", em.never_masked);
    cJSON_AddNumberToObject(s, "map_size", em.size);
    cJSON_AddBoolToObject(s, "norm_pix", em.norm_pix);
    add_path(o, "overlay", it->id, "overlay.png");
    add_path(o, "map", it->id, "error.npy");
    add_path(o, "image", it->id, "image.png");
    add_path(o, "report", it->id, "report.html");
    cJSON *mo = cJSON_AddObjectToObject(o, "model");
    cJSON_AddStringToObject(mo, "name", m->mae_info.name ? m->mae_info.name : "");
    cJSON_AddStringToObject(mo, "version", skx_version());
    if (m->cls) {
        cJSON_AddStringToObject(mo, "classifier", m->cls_info.name ? m->cls_info.name : "");
        add_grouped_heads(o, m->cls, &pr);
        add_regions(o, m->cls, regions, &pr);
    }
    cJSON_AddNumberToObject(o, "seconds", sx_now() - t0);
    char *js = cJSON_PrintUnformatted(o);
    if (!js) {
        set_error(t, 503, "out of memory");
        goto done;
    }
    it->blob[RS_JSON] = strdup(js);
    it->len[RS_JSON] = it->blob[RS_JSON] ? strlen(js) : 0;
    free(t->json);
    t->json = js;
    t->http = 200;
    t->item = it;
    it = NULL;
done:
    cJSON_Delete(o);
    rs_item_free(it);
    free(rep);
    if (have_map) skx_errormap_free(&em);
    skx_prediction_free(&pr);
    free(names);
    free(sources);
    free(tops);
    free(boxes);
    skx_image_free(img);
}
