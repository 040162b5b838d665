/* api_core.c: errors, models and per-thread contexts of include/skelex.h. */
#include "api/api_internal.h"
#include "io/checkpoint.h"
#include "nn/precision.h"
#include <cjson/cJSON.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *skx_version(void) { return SKX_VERSION; }

int api_fail(skx_error *err, int code, const char *msg) {
    if (err) {
        err->code = code;
        snprintf(err->msg, sizeof err->msg, "%s", msg);
    }
    return code;
}

void api_ok(skx_error *err) {
    if (err) { err->code = SKX_OK; err->msg[0] = 0; }
}

int api_code_of(const char *msg, int dflt) {
    static const struct { const char *words; int code; } table[] = {
        {"out of memory", SKX_ENOMEM},   {"too large", SKX_ETOOBIG},      {"file too large", SKX_ETOOBIG},
        {"refused before decoding", SKX_ETOOBIG}, {"not found", SKX_EIO}, {"cannot open", SKX_EIO},
        {"cannot stat", SKX_EIO},        {"is a directory", SKX_EIO},     {"not a regular file", SKX_EIO},
        {"cannot read:", SKX_EIO},       {"cannot create", SKX_EIO},      {"cannot write", SKX_EIO},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strstr(msg, table[i].words)) return table[i].code;
    return dflt;
}

int api_fail_sx(skx_error *err, const sx_err *e, int dflt) { return api_fail(err, api_code_of(e->msg, dflt), e->msg); }

int api_threads_begin(const skx_ctx *ctx) {
    int saved = omp_get_max_threads();
    if (ctx->threads > 0) omp_set_num_threads(ctx->threads);
    return saved;
}

void api_threads_end(int saved) { omp_set_num_threads(saved); }

/* ---------------------------------------------------------------- models */

/* Models and contexts here only run forwards: the gradient arrays the
 * builder made are returned at once (their views in m->g are never used;
 * mae_free skips a NULL). */

cJSON *api_config_json(const char *dir, size_t max_bytes, char *path, size_t cap, sx_err *err) {
    snprintf(path, cap, "%s/config.json", dir);
    char *text = sx_read_text(path, max_bytes, err);
    if (!text) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        sx_fail(err, "%s: not a JSON object (corrupt config)", path);
        return NULL;
    }
    return j;
}

/* Whether dir/config.json describes a classifier (ViTForImageClassification
 * or a ViT with labels), and its "_name_or_path" into name when present. */
static int config_kind(const char *dir, char *name, size_t cap, int *classifier, sx_err *err) {
    char path[4200];
    cJSON *j = api_config_json(dir, (size_t)1 << 20, path, sizeof path, err);
    if (!j) return -1;
    *classifier = 0;
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(j, "architectures"), *a;
    cJSON_ArrayForEach(a, arch) if (cJSON_IsString(a) && strstr(a->valuestring, "ForImageClassification")) *classifier = 1;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    if (cJSON_IsString(mt) && !strcmp(mt->valuestring, "vit") && cJSON_GetObjectItemCaseSensitive(j, "id2label"))
        *classifier = 1;
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "_name_or_path");
    if (cJSON_IsString(nm) && nm->valuestring[0]) snprintf(name, cap, "%s", nm->valuestring);
    cJSON_Delete(j);
    return 0;
}

int skx_model_load(const char *dir, skx_model **out, skx_error *err) {
    *out = NULL;
    if (!dir) return api_fail(err, SKX_EINVAL, "model directory is NULL");
    skx_model *m = calloc(1, sizeof *m);
    if (!m) return api_fail(err, SKX_ENOMEM, "out of memory");
    /* the directory's last component ("runs/m/" -> "m") */
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && dir[start - 1] != '/') start--;
    snprintf(m->name, sizeof m->name, "%.*s", (int)(len - start), dir + start);
    sx_err e;
    sx_prec_request prec;   /* SKELEX_PRECISION: auto (default), fp32 or bf16 (nn/precision.h) */
    int is_cls = 0, rc = sx_precision_from_env(&prec, &e);
    if (!rc) rc = config_kind(dir, m->name, sizeof m->name, &is_cls, &e);
    if (!rc && is_cls) {
        m->kind = SKX_MODEL_CLASSIFIER;
        rc = classifier_load(&m->cls, dir, &e);
        if (!rc && (rc = api_load_groups(m, dir, &e))) classifier_free(&m->cls);
    } else if (!rc) {
        m->kind = SKX_MODEL_MAE;
        rc = checkpoint_load_inference(dir, &m->mae, &e);
    }
    if (rc) {
        free(m);
        return api_fail_sx(err, &e, SKX_EFORMAT);
    }
    mae_set_precision(m->kind == SKX_MODEL_MAE ? &m->mae : &m->cls.enc, sx_precision_resolve(prec, NULL, 0));
    *out = m;
    api_ok(err);
    return 0;
}

void skx_model_get_info(const skx_model *m, skx_model_info *info) {
    memset(info, 0, sizeof *info);
    const mae_model *mm = m->kind == SKX_MODEL_MAE ? &m->mae : &m->cls.enc;
    const mae_config *c = &mm->cfg;
    info->kind = m->kind;
    info->image_size = c->image_size;
    info->patch_size = c->patch_size;
    info->hidden_size = c->hidden_size;
    info->num_layers = c->num_hidden_layers;
    info->num_heads = c->num_attention_heads;
    info->parameters = (int64_t)mae_count_params(mm);
    if (m->kind == SKX_MODEL_MAE) {
        info->mask_ratio = (float)c->mask_ratio;
        info->norm_pix_loss = c->norm_pix_loss;
    } else {
        info->parameters += (int64_t)m->cls.n_out * (c->hidden_size + 1);
        info->n_outputs = m->cls.n_classes;
    }
    info->name = m->name;
}

const char *skx_model_output_name(const skx_model *m, int i) {
    if (m->kind != SKX_MODEL_CLASSIFIER || i < 0 || i >= m->cls.n_classes || !m->cls.class_names) return NULL;
    return m->cls.class_names[i];
}

void skx_model_free(skx_model *m) {
    if (!m) return;
    if (m->kind == SKX_MODEL_MAE) mae_free(&m->mae);
    else classifier_free(&m->cls);
    heads_free(&m->layout);
    free(m);
}

/* ----------------------------------------------------------------- ctx */

int skx_ctx_new(const skx_model *m, int max_batch, int threads, skx_ctx **out, skx_error *err) {
    *out = NULL;
    if (!m) return api_fail(err, SKX_EINVAL, "model is NULL");
    if (max_batch < 1 || max_batch > 1024) return api_fail(err, SKX_EINVAL, "max_batch must be in 1..1024");
    if (threads < 0 || threads > 1024) return api_fail(err, SKX_EINVAL, "threads must be in 0..1024");
    skx_ctx *c = calloc(1, sizeof *c);
    if (!c) return api_fail(err, SKX_ENOMEM, "out of memory");
    c->m = m;
    c->max_batch = max_batch;
    c->threads = threads;
    sx_err e;
    if (m->kind == SKX_MODEL_MAE) {
        if (mae_build_replica(&c->rep, &m->mae, &e)) { free(c); return api_fail_sx(err, &e, SKX_ENOMEM); }
        c->have_rep = 1;
    } else {
        /* the encoder as a replica over the loaded weights; the head is
         * read-only in a forward, so its arrays are shared, not copied */
        const classifier *s = &m->cls;
        if (mae_build_replica(&c->cls.enc, &s->enc, &e)) { free(c); return api_fail_sx(err, &e, SKX_ENOMEM); }
        c->cls.type = s->type;
        c->cls.n_classes = s->n_classes;
        c->cls.class_names = s->class_names;
        c->cls.n_out = s->n_out;
        c->cls.head_w = s->head_w;
        c->cls.head_b = s->head_b;
        c->cls.y_mean = s->y_mean;
        c->cls.y_sd = s->y_sd;
    }
    *out = c;
    api_ok(err);
    return 0;
}

void skx_ctx_free(skx_ctx *c) {
    if (!c) return;
    if (c->have_rep) mae_free(&c->rep);
    if (c->m->kind == SKX_MODEL_CLASSIFIER) {
        mae_free(&c->cls.enc);
        free(c->cls.logits);
    }
    free(c);
}
