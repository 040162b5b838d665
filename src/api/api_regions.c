/* api_regions.c: output groups, regions from error maps and boxes, and the
 * region-guided prediction of include/skelex.h, over src/adapt/heads.h and
 * src/zeroshot/regions.h. */
#include "api/api_internal.h"
#include "zeroshot/regions.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREDICT_MAX_REGIONS 4096

int api_load_groups(skx_model *m, const char *dir, sx_err *e) {
    memset(&m->layout, 0, sizeof m->layout);
    m->multihead = 0;
    if (m->cls.type == TASK_REGRESSION) return 0;
    char path[4200];
    cJSON *r = api_config_json(dir, (size_t)1 << 22, path, sizeof path, e);
    if (!r) return -1;
    int explicit_groups = cJSON_GetObjectItemCaseSensitive(r, "groups") != NULL;
    int rc = heads_from_json(r, path, &m->layout, e);
    cJSON_Delete(r);
    if (rc) return -1;
    if (m->layout.n_out != m->cls.n_out) {
        rc = sx_fail(e, "%s: the groups name %d outputs, the head has %d", path, m->layout.n_out, m->cls.n_out);
        heads_free(&m->layout);
        return rc;
    }
    if (m->cls.type == TASK_BINARY) {
        /* one logit = skx output 1, P(positive); output 0 is its complement */
        for (int g = 0; g < m->layout.n_groups; g++)
            for (int k = 0; k < m->layout.groups[g].n; k++) m->layout.groups[g].outputs[k] = 1;
    } else
        m->multihead = explicit_groups;
    return 0;
}

int skx_model_group_count(const skx_model *m) {
    return m && m->kind == SKX_MODEL_CLASSIFIER ? m->layout.n_groups : 0;
}

int skx_model_group(const skx_model *m, int g, skx_group_info *out, skx_error *err) {
    memset(out, 0, sizeof *out);
    if (g < 0 || g >= skx_model_group_count(m)) return api_fail(err, SKX_EINVAL, "group index out of range");
    const head_group *hg = &m->layout.groups[g];
    out->name = hg->name;
    out->kind = hg->kind == HEAD_SOFTMAX ? SKX_GROUP_SOFTMAX : SKX_GROUP_SIGMOID;
    out->n_outputs = hg->n;
    out->outputs = hg->outputs;
    api_ok(err);
    return 0;
}

/* ------------------------------------------------------------- regions */

const char *skx_region_source_name(skx_region_source s) {
    switch (s) {
    case SKX_REGION_WHOLE: return "whole";
    case SKX_REGION_ERRORMAP: return "errormap";
    case SKX_REGION_BOX: return "box";
    default: return "?";
    }
}

void skx_region_opts_default(skx_region_opts *o) {
    region_params p;
    regions_default_params(&p);
    *o = (skx_region_opts){.k = p.k, .percentile = p.percentile, .pad = p.pad_frac, .min_area = p.min_area_frac};
}

static void put_region(skx_region *r, const pix_box *b, skx_region_source s) {
    r->box[0] = b->x0;
    r->box[1] = b->y0;
    r->box[2] = b->x1;
    r->box[3] = b->y1;
    r->source = s;
}

int skx_regions_from_errormap(const skx_errormap *em, const skx_image *img, const skx_region_opts *opts,
                              skx_region *out, int cap, int *n, skx_error *err) {
    *n = 0;
    if (!em || !em->map || !img || !out) return api_fail(err, SKX_EINVAL, "map, image and out are required");
    skx_region_opts o;
    if (opts) o = *opts;
    else skx_region_opts_default(&o);
    region_params p = {.k = o.k, .percentile = o.percentile, .pad_frac = o.pad, .min_area_frac = o.min_area};
    if (o.k < 0 || o.k > 1000) return api_fail(err, SKX_EINVAL, "regions: k must be 0..1000");
    region *rs = malloc(sizeof(region) * (size_t)(o.k + 1));
    if (!rs) return api_fail(err, SKX_ENOMEM, "out of memory");
    sx_err e;
    int nr = 0;
    if (regions_from_errormap(em->map, em->size, img->g.width, img->g.height, &p, rs, &nr, &e)) {
        free(rs);
        return api_fail(err, SKX_EINVAL, e.msg);
    }
    if (nr > cap) {
        free(rs);
        return api_fail(err, SKX_EINVAL, "regions: out has less room than the regions found (k + 1 suffice)");
    }
    for (int i = 0; i < nr; i++)
        put_region(&out[i], &rs[i].box, rs[i].source == REGION_ERRORMAP ? SKX_REGION_ERRORMAP : SKX_REGION_WHOLE);
    free(rs);
    *n = nr;
    api_ok(err);
    return 0;
}

int skx_regions_from_boxes(const float *boxes, int nb, const skx_image *img, skx_region *out, int cap, int *n,
                           skx_error *err) {
    *n = 0;
    if (!img || !out || nb < 0 || (nb > 0 && !boxes)) return api_fail(err, SKX_EINVAL, "boxes, image and out are required");
    float W = (float)img->g.width, H = (float)img->g.height;
    int k = 0;
    for (int i = 0; i < nb; i++) {
        const float *b = boxes + (size_t)4 * i;
        if (!isfinite(b[0]) || !isfinite(b[1]) || !isfinite(b[2]) || !isfinite(b[3]))
            return api_fail(err, SKX_EINVAL, "box values must be finite");
        pix_box c = {fmaxf(0, b[0]), fmaxf(0, b[1]), fminf(W, b[2]), fminf(H, b[3])};
        if (!(c.x1 > c.x0) || !(c.y1 > c.y0)) continue;
        if (k >= cap) return api_fail(err, SKX_EINVAL, "regions: out has less room than the boxes (nb + 1 suffice)");
        put_region(&out[k++], &c, SKX_REGION_BOX);
    }
    if (k >= cap) return api_fail(err, SKX_EINVAL, "regions: out has no room for the whole image");
    put_region(&out[k++], &(pix_box){0, 0, W, H}, SKX_REGION_WHOLE);
    *n = k;
    api_ok(err);
    return 0;
}

/* ------------------------------------------------------------- predict */

void skx_prediction_free(skx_prediction *p) {
    if (!p) return;
    free(p->probs);
    free(p->max);
    free(p->argmax);
    memset(p, 0, sizeof *p);
}

int skx_predict_regions(skx_ctx *ctx, const skx_image *img, const skx_region *regions, int n, skx_prediction *out,
                        skx_error *err) {
    memset(out, 0, sizeof *out);
    if (!ctx || !img || !regions) return api_fail(err, SKX_EINVAL, "ctx, img and regions are required");
    const skx_model *m = ctx->m;
    if (m->kind != SKX_MODEL_CLASSIFIER || m->cls.type == TASK_REGRESSION)
        return api_fail(err, SKX_EMODEL, "region-guided prediction needs a classification model (not an MAE or a regression)");
    if (n < 1 || n > PREDICT_MAX_REGIONS) return api_fail(err, SKX_EINVAL, "regions: n must be in 1..4096");
    int K = m->cls.n_classes;
    out->n_regions = n;
    out->n_outputs = K;
    out->probs = malloc(sizeof(double) * (size_t)n * K);
    out->max = malloc(sizeof(double) * (size_t)K);
    out->argmax = malloc(sizeof(int) * (size_t)K);
    float *pf = malloc(sizeof(float) * (size_t)n * K);
    const char **names = malloc(sizeof(char *) * (size_t)K);
    int rc = 0;
    if (!out->probs || !out->max || !out->argmax || !pf || !names)
        rc = api_fail(err, SKX_ENOMEM, "out of memory");
    for (int r = 0; r < n && !rc; r++) {
        if (regions[r].source != SKX_REGION_WHOLE && regions[r].source != SKX_REGION_ERRORMAP &&
            regions[r].source != SKX_REGION_BOX)
            rc = api_fail(err, SKX_EINVAL, "regions: unknown source");
        else if (!(rc = skx_classify(ctx, img, regions[r].box, out->probs + (size_t)r * K, K, err)))
            for (int j = 0; j < K; j++) pf[(size_t)r * K + j] = (float)out->probs[(size_t)r * K + j];
    }
    if (!rc) {
        /* per output, the maximum over regions (in double) and the first region giving it */
        for (int j = 0; j < K; j++) {
            int best = 0;
            for (int r = 1; r < n; r++)
                if (out->probs[(size_t)r * K + j] > out->probs[(size_t)best * K + j]) best = r;
            out->argmax[j] = best;
            out->max[j] = out->probs[(size_t)best * K + j];
            names[j] = skx_model_output_name(m, j);
        }
        tumour_decision d;
        regions_tumour_rule(pf, n, K, names, &d);
        if (d.applies) {
            out->has_decision = 1;
            out->tumour = d.tumour;
            out->malignant = d.malignant;
            out->p_tumour = d.p_tumour;
            out->p_malignant = d.p_malignant;
            out->region_tumour = d.region_tumour;
            out->region_malignant = d.region_malignant;
        }
    }
    free(pf);
    free(names);
    if (rc) {
        skx_prediction_free(out);
        return rc;
    }
    api_ok(err);
    return 0;
}
