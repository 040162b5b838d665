/* api_errormap.c: error maps, their renderings, and classification
 * (include/skelex.h), over src/zeroshot/pipeline.h and the classifier. */
#include "api/api_internal.h"
#include "eval/viz.h"
#include "io/npy.h"
#include "zeroshot/pipeline.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void skx_errormap_opts_default(skx_errormap_opts *o) {
    memset(o, 0, sizeof *o);
    o->passes = 10;
    o->masking = SKX_MASKING_BALANCED;
}

/* The replica masks with ratio; activations are sized for a ratio, so a
 * change rebuilds the replica (over the same shared weights). */
static int ctx_set_ratio(skx_ctx *ctx, double ratio, skx_error *err) {
    if (ctx->have_rep && ctx->rep.cfg.mask_ratio == ratio) return 0;
    mae_config c = ctx->m->mae.cfg;
    c.mask_ratio = ratio;
    sx_err e;
    if (config_validate(&c, &e)) return api_fail(err, SKX_EINVAL, e.msg);
    if (ctx->have_rep) mae_free(&ctx->rep);
    ctx->have_rep = 0;
    if (mae_build_replica(&ctx->rep, &ctx->m->mae, &e)) return api_fail_sx(err, &e, SKX_ENOMEM);
    ctx->have_rep = 1;
    ctx->rep.cfg.mask_ratio = ratio;
    return 0;
}

int skx_errormap_compute(skx_ctx *ctx, const skx_image *img, const skx_errormap_opts *opts, skx_errormap *out,
                         skx_error *err) {
    memset(out, 0, sizeof *out);
    skx_errormap_opts o;
    if (opts) o = *opts;
    else skx_errormap_opts_default(&o);
    if (!ctx || !img) return api_fail(err, SKX_EINVAL, "ctx and img are required");
    if (ctx->m->kind != SKX_MODEL_MAE)
        return api_fail(err, SKX_EMODEL, "error maps need an MAE (ViTMAEForPreTraining); this model is a classifier");
    if (o.passes < 1 || o.passes > 1024) return api_fail(err, SKX_EINVAL, "passes must be in 1..1024");
    if (o.passes > ctx->max_batch) return api_fail(err, SKX_EINVAL, "passes exceed the ctx's max_batch");
    if (o.masking != SKX_MASKING_BALANCED && o.masking != SKX_MASKING_RANDOM)
        return api_fail(err, SKX_EINVAL, "masking is SKX_MASKING_BALANCED or SKX_MASKING_RANDOM");
    if (!(o.mask_ratio == 0 || (o.mask_ratio > 0 && o.mask_ratio < 1)))
        return api_fail(err, SKX_EINVAL, "mask_ratio must be 0 (the model's) or in (0, 1)");
    int rc = ctx_set_ratio(ctx, o.mask_ratio > 0 ? (double)o.mask_ratio : ctx->m->mae.cfg.mask_ratio, err);
    if (rc) return rc;
    zs_opts zo = {.passes = o.passes, .masking = o.masking == SKX_MASKING_RANDOM ? MASKING_RANDOM : MASKING_BALANCED,
                  .seed = o.seed};
    zs_map z;
    sx_err e;
    int saved = api_threads_begin(ctx);
    rc = zs_errormap_image(&ctx->rep, &img->g, &zo, &z, &e);
    api_threads_end(saved);
    if (rc) return api_fail_sx(err, &e, SKX_EINVAL);
    *out = (skx_errormap){.size = z.size, .map = z.map, .mean = z.mean, .max = z.max, .peak_x = z.peak_x,
                          .peak_y = z.peak_y, .never_masked = z.never_masked, .scale_max = z.scale_max,
                          .passes = z.passes, .masking = o.masking, .mask_ratio = (float)z.mask_ratio,
                          .norm_pix = z.norm_pix};
    z.map = NULL;   /* out owns it */
    zs_map_free(&z);
    api_ok(err);
    return 0;
}

void skx_errormap_free(skx_errormap *em) {
    if (!em) return;
    free(em->map);
    memset(em, 0, sizeof *em);
}

int skx_errormap_overlay_png(const skx_image *img, const skx_errormap *em, float alpha, int colorbar, void **png,
                             size_t *len, skx_error *err) {
    *png = NULL;
    *len = 0;
    if (!img || !em || !em->map) return api_fail(err, SKX_EINVAL, "image and map are required");
    if (!(alpha >= 0 && alpha <= 1)) return api_fail(err, SKX_EINVAL, "alpha must be in [0, 1]");
    sx_err e;
    if (viz_errormap_overlay_png(&img->g, em->map, em->size, em->scale_max, alpha, colorbar, png, len, &e))
        return api_fail_sx(err, &e, SKX_ETOOBIG);
    api_ok(err);
    return 0;
}

int skx_errormap_npy(const skx_errormap *em, void **npy, size_t *len, skx_error *err) {
    *npy = NULL;
    *len = 0;
    if (!em || !em->map) return api_fail(err, SKX_EINVAL, "map is required");
    int64_t shape[2] = {em->size, em->size};
    sx_err e;
    if (npy_encode_f32(em->map, 2, shape, npy, len, &e)) return api_fail_sx(err, &e, SKX_ENOMEM);
    api_ok(err);
    return 0;
}

/* ------------------------------------------------------------- classify */

/* The region box (NULL: all) of img as its own image: pixel (x, y) belongs
 * when its centre lies inside. */
static int crop(const gray_image *g, const float box[4], gray_image *out, skx_error *err) {
    int x0 = 0, y0 = 0, x1 = g->width, y1 = g->height;
    if (box) {
        for (int i = 0; i < 4; i++)
            if (!isfinite(box[i])) return api_fail(err, SKX_EINVAL, "box values must be finite");
        x0 = (int)lrint(fmax(0, box[0]));
        y0 = (int)lrint(fmax(0, box[1]));
        x1 = (int)lrint(fmin(g->width, box[2]));
        y1 = (int)lrint(fmin(g->height, box[3]));
        if (x1 <= x0 || y1 <= y0) return api_fail(err, SKX_EINVAL, "box is empty or outside the image");
    }
    out->width = x1 - x0;
    out->height = y1 - y0;
    out->data = malloc(sizeof(float) * (size_t)out->width * out->height);
    if (!out->data) return api_fail(err, SKX_ENOMEM, "out of memory for the region");
    for (int y = 0; y < out->height; y++)
        memcpy(out->data + (size_t)y * out->width, g->data + (size_t)(y + y0) * g->width + x0,
               sizeof(float) * (size_t)out->width);
    return 0;
}

int skx_classify(skx_ctx *ctx, const skx_image *img, const float box[4], double *probs, int cap, skx_error *err) {
    if (!ctx || !img || !probs) return api_fail(err, SKX_EINVAL, "ctx, img and probs are required");
    if (ctx->m->kind != SKX_MODEL_CLASSIFIER)
        return api_fail(err, SKX_EMODEL, "classification needs a classifier (ViTForImageClassification); this model is an MAE");
    classifier *c = &ctx->cls;
    int K = c->n_classes, room = K > 2 ? K : 2;
    if (cap < K) return api_fail(err, SKX_EINVAL, "probs has less room than the model's outputs");
    gray_image region;
    int rc = crop(&img->g, box, &region, err);
    if (rc) return rc;
    int S = c->enc.cfg.image_size;
    float *chw = malloc(sizeof(float) * 3 * (size_t)S * S);
    double tmp[2];
    double *prob = room <= 2 ? tmp : malloc(sizeof(double) * (size_t)room);
    if (!chw || !prob) {
        free(chw);
        if (prob != tmp) free(prob);
        gray_image_free(&region);
        return api_fail(err, SKX_ENOMEM, "out of memory for the model input");
    }
    image_preprocess(&region, S, chw);
    gray_image_free(&region);
    sx_err e;
    int saved = api_threads_begin(ctx);
    rc = classifier_forward(c, chw, 1, &e);
    api_threads_end(saved);
    if (!rc) {
        if (c->type == TASK_REGRESSION) classifier_outputs(c, NULL, probs);
        else if (ctx->m->multihead) {
            /* sigmoid per sigmoid output, softmax within each softmax group */
            float *p = malloc(sizeof(float) * (size_t)c->n_out);
            if (!p) rc = -1, snprintf(e.msg, sizeof e.msg, "out of memory");
            else {
                heads_probs(&ctx->m->layout, c->logits, 1, p);
                for (int k = 0; k < K; k++) probs[k] = p[k];
                free(p);
            }
        } else {
            classifier_outputs(c, prob, NULL);
            for (int k = 0; k < K; k++) probs[k] = prob[k];
        }
    }
    free(chw);
    if (prob != tmp) free(prob);
    if (rc) return api_fail_sx(err, &e, SKX_EINVAL);
    api_ok(err);
    return 0;
}
