/* analyze.c: see analyze.h. */
#include "serve/analyze.h"
#include "serve/report.h"
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

/* "heads": [{"name", "probability"}...] into o */
static void add_heads(cJSON *o, const char *const *names, const double *p, int n) {
    cJSON *hs = cJSON_AddArrayToObject(o, "heads");
    for (int i = 0; i < n; i++) {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddStringToObject(h, "name", names[i] ? names[i] : "");
        cJSON_AddNumberToObject(h, "probability", p[i]);
        cJSON_AddItemToArray(hs, h);
    }
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
    double probs[AN_MAX_HEADS], rprobs[AN_MAX_HEADS];
    float box[4] = {0};
    int nh = 0;
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
        nh = m->cls_info.n_outputs < AN_MAX_HEADS ? m->cls_info.n_outputs : AN_MAX_HEADS;
        if (skx_classify(w->cls, img, NULL, probs, AN_MAX_HEADS, &e) != 0) {
            set_error(t, status_of(e.code), e.msg);
            goto done;
        }
        /* the region the error map points at: a square a third of the
         * shorter side, centred on the map's peak, inside the image */
        int W0 = skx_image_width(img), H0 = skx_image_height(img);
        float side = (float)(W0 < H0 ? W0 : H0) / 3.0f;
        if (side < 1) side = 1;
        float x0 = (float)em.peak_x - side / 2, y0 = (float)em.peak_y - side / 2;
        if (x0 > (float)W0 - side) x0 = (float)W0 - side;
        if (y0 > (float)H0 - side) y0 = (float)H0 - side;
        if (x0 < 0) x0 = 0;
        if (y0 < 0) y0 = 0;
        box[0] = x0;
        box[1] = y0;
        box[2] = x0 + side;
        box[3] = y0 + side;
        if (skx_classify(w->cls, img, box, rprobs, AN_MAX_HEADS, &e) != 0) {
            set_error(t, status_of(e.code), e.msg);
            goto done;
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
    const char *names[AN_MAX_HEADS];
    for (int i = 0; i < nh; i++) names[i] = skx_model_output_name(m->cls, i);
    const char *masking = em.masking == SKX_MASKING_RANDOM ? "random" : "balanced";
    rp_input ri = {.image_png = it->blob[RS_IMAGE], .image_len = it->len[RS_IMAGE], .overlay_png = it->blob[RS_OVERLAY],
                   .overlay_len = it->len[RS_OVERLAY], .width = W, .height = H, .mean = em.mean, .max = em.max,
                   .peak_x = em.peak_x, .peak_y = em.peak_y, .scale_max = em.scale_max, .passes = em.passes,
                   .never_masked = em.never_masked, .masking = masking, .mask_ratio = em.mask_ratio,
                   .model_name = m->mae_info.name, .version = skx_version(),
                   .classifier_name = m->cls ? m->cls_info.name : NULL, .n_heads = nh, .head_names = names,
                   .head_probs = probs, .region_box = m->cls ? box : NULL,
                   .region_probs = rprobs, .date = date, .id = it->id};
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
        add_heads(o, names, probs, nh);
        cJSON *rs = cJSON_AddArrayToObject(o, "regions");
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "source", "error map peak");
        cJSON *bx = cJSON_AddArrayToObject(r, "box");
        for (int k = 0; k < 4; k++) cJSON_AddItemToArray(bx, cJSON_CreateNumber(box[k]));
        add_heads(r, names, rprobs, nh);
        cJSON_AddItemToArray(rs, r);
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
    skx_image_free(img);
}
