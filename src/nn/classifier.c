/* classifier.c: ViTForImageClassification = encoder + linear head on CLS. */
#include "nn/classifier.h"
#include "io/checkpoint.h"
#include "nn/layers.h"
#include "core/rng.h"
#include "core/json.h"
#include "adapt/heads.h"
#include "io/safetensors.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int n_out_for(task_type type, int n_classes) {
    return (type == TASK_BINARY || type == TASK_REGRESSION) ? 1 : n_classes;
}

static void head_alloc(classifier *c) {
    int D = c->enc.cfg.hidden_size;
    c->n_out = n_out_for(c->type, c->n_classes);
    c->head_w = sx_calloc((size_t)c->n_out * D, sizeof(float));
    c->head_b = sx_calloc((size_t)c->n_out, sizeof(float));
    c->ghead_w = sx_calloc((size_t)c->n_out * D, sizeof(float));
    c->ghead_b = sx_calloc((size_t)c->n_out, sizeof(float));
    c->y_mean = 0.0f;
    c->y_sd = 1.0f;
}

static char **copy_names(const char *const *names, int n) {
    char **out = sx_calloc((size_t)n, sizeof(char *));
    for (int k = 0; k < n; k++) {
        char buf[32];
        snprintf(buf, sizeof buf, "%d", k);
        out[k] = sx_strdup(names && names[k] ? names[k] : buf);
    }
    return out;
}

int classifier_create(classifier *c, const char *dir, const mae_config *cfg, task_type type, int n_classes,
                      const char *const *class_names, uint64_t seed, sx_err *err) {
    memset(c, 0, sizeof *c);
    if (type != TASK_REGRESSION && n_classes < 2) return sx_fail(err, "classifier: a classification task needs >= 2 classes");
    if (dir) {
        if (checkpoint_load_encoder(dir, &c->enc, err)) return -1;
    } else {
        mae_config cc = *cfg;
        cc.mask_ratio = 0.0;
        if (mae_build(&c->enc, &cc, err)) return -1;
        c->enc.encoder_only = 1;
        mae_init_weights(&c->enc, seed);
    }
    c->type = type;
    c->n_classes = type == TASK_REGRESSION ? 1 : n_classes;
    c->class_names = copy_names(class_names, c->n_classes);
    head_alloc(c);
    sx_rng r;   /* HF _init_weights: Linear ~ N(0, initializer_range), bias 0 */
    rng_seed(&r, seed ^ 0x68656164ULL);
    size_t nw = (size_t)c->n_out * c->enc.cfg.hidden_size;
    for (size_t i = 0; i < nw; i++) c->head_w[i] = (float)c->enc.cfg.initializer_range * rng_normal(&r);
    return 0;
}

/* A copy of L (through its JSON form, which heads_from_json checks again). */
static head_layout *layout_copy(const head_layout *L, const char *what, sx_err *err) {
    cJSON *o = cJSON_CreateObject();
    heads_to_json(L, o);
    head_layout *h = sx_calloc(1, sizeof *h);
    if (heads_from_json(o, what, h, err)) { free(h); h = NULL; }
    cJSON_Delete(o);
    return h;
}

int classifier_create_heads(classifier *c, const char *dir, const mae_config *cfg, const head_layout *L,
                            uint64_t seed, sx_err *err) {
    memset(c, 0, sizeof *c);
    if (L->n_out < 2) return sx_fail(err, "classifier: a multi-head layout needs >= 2 outputs (use a binary task)");
    head_layout *h = layout_copy(L, "head layout", err);
    if (!h) return -1;
    if (classifier_create(c, dir, cfg, TASK_MULTICLASS, L->n_out, (const char *const *)L->names, seed, err)) {
        heads_free(h);
        free(h);
        return -1;
    }
    c->heads = h;
    return 0;
}

void classifier_free(classifier *c) {
    if (c->heads) { heads_free(c->heads); free(c->heads); }
    mae_free(&c->enc);
    for (int k = 0; k < c->n_classes && c->class_names; k++) free(c->class_names[k]);
    free(c->class_names);
    free(c->head_w); free(c->head_b); free(c->ghead_w); free(c->ghead_b); free(c->logits); free(c->class_weight);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------------------ */
/* Forward, loss and backward                                               */

int classifier_forward(classifier *c, const float *pixels, int B, sx_err *err) {
    if (mae_encode(&c->enc, pixels, B, err)) return -1;
    if (B > c->logits_cap) {  /* logits and their gradient, (B, K) each */
        free(c->logits);
        c->logits = sx_malloc(sizeof(float) * 2 * (size_t)B * c->n_out);
        c->logits_cap = B;
    }
    int D = c->enc.cfg.hidden_size, T = 1 + config_num_patches(&c->enc.cfg), K = c->n_out;
    cls_head_forward(c->logits, c->enc.latent, c->head_w, c->head_b, B, T, D, K);
    return 0;
}

void classifier_zero_grad(classifier *c) {
    mae_zero_grad(&c->enc);
    memset(c->ghead_w, 0, sizeof(float) * (size_t)c->n_out * c->enc.cfg.hidden_size);
    memset(c->ghead_b, 0, sizeof(float) * (size_t)c->n_out);
}

static double softplus(double z) { return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)); }

/* head backward: dW (K, D) += dz^T cls; db += sum dz; dcls = dz W -> row 0 of d(latent) */
static void head_backward(classifier *c, const float *dlogits) {
    int B = c->enc.B, K = c->n_out, D = c->enc.cfg.hidden_size, T = 1 + config_num_patches(&c->enc.cfg);
    float *dlat = mae_encode_grad(&c->enc);   // (B, T, D), zeroed
    cls_head_backward(dlat, c->ghead_w, c->ghead_b, dlogits, c->enc.latent, c->head_w, B, T, D, K);
    mae_encode_backward(&c->enc);
}

float classifier_loss(classifier *c, const float *y, float grad_scale) {
    int B = c->enc.B, K = c->n_out;
    float *dlogits = c->logits + (size_t)c->logits_cap * K;   /* allocated with the logits */
    double loss = 0;
    for (int b = 0; b < B; b++) {
        const float *z = c->logits + (size_t)b * K;
        float *dz = dlogits + (size_t)b * K;
        double w = c->class_weight && c->type != TASK_REGRESSION ? c->class_weight[(int)y[b]] : 1.0;
        if (c->type == TASK_BINARY) {           // BCE with logits: softplus(z) - y z
            double p = 1.0 / (1.0 + exp(-(double)z[0]));
            loss += w * (softplus(z[0]) - y[b] * z[0]);
            dz[0] = (float)(w * (p - y[b]) / B * grad_scale);
        } else if (c->type == TASK_REGRESSION) { // MSE on the standardised target
            double t = (y[b] - c->y_mean) / c->y_sd, d = z[0] - t;
            loss += d * d;
            dz[0] = (float)(2.0 * d / B * grad_scale);
        } else {                                 // cross-entropy: logsumexp(z) - z_y
            int lab = (int)y[b];
            double mx = z[0], s = 0;
            for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
            for (int k = 0; k < K; k++) s += exp(z[k] - mx);
            loss += w * (mx + log(s) - z[lab]);
            for (int k = 0; k < K; k++) dz[k] = (float)(w * (exp(z[k] - mx) / s - (k == lab)) / B * grad_scale);
        }
    }
    if (grad_scale != 0.0f) head_backward(c, dlogits);
    return (float)(loss / B);
}

double classifier_heads_loss(classifier *c, const float *targets, const uint8_t *known, float grad_scale) {
    int B = c->enc.B, K = c->n_out;
    float *dlogits = c->logits + (size_t)c->logits_cap * K;
    double loss = heads_loss(c->heads, c->logits, targets, known, B, grad_scale != 0.0f ? dlogits : NULL);
    if (grad_scale != 0.0f) {
        for (size_t i = 0; i < (size_t)B * K; i++) dlogits[i] *= grad_scale;
        head_backward(c, dlogits);
    }
    return loss;
}

void classifier_outputs(const classifier *c, double *prob, double *pred) {
    int B = c->enc.B, K = c->n_out;
    if (c->heads) {
        if (!prob) return;
        float *p = sx_malloc(sizeof(float) * (size_t)B * K);
        heads_probs(c->heads, c->logits, B, p);
        for (size_t i = 0; i < (size_t)B * K; i++) prob[i] = p[i];
        free(p);
        return;
    }
    for (int b = 0; b < B; b++) {
        const float *z = c->logits + (size_t)b * K;
        if (c->type == TASK_REGRESSION) {
            if (pred) pred[b] = (double)z[0] * c->y_sd + c->y_mean;
        } else if (c->type == TASK_BINARY) {
            double p = 1.0 / (1.0 + exp(-(double)z[0]));
            if (prob) { prob[(size_t)b * 2] = 1.0 - p; prob[(size_t)b * 2 + 1] = p; }
        } else if (prob) {
            double mx = z[0], s = 0;
            for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
            for (int k = 0; k < K; k++) s += exp(z[k] - mx);
            for (int k = 0; k < K; k++) prob[(size_t)b * K + k] = exp(z[k] - mx) / s;
        }
    }
}

int classifier_layer_id(const classifier *c, const param_info *pi) {
    if (pi->flags & (PARAM_FROZEN | PARAM_ABSENT)) return -1;
    if (!strncmp(pi->name, "vit.embeddings.", 15)) return 0;
    int l;
    if (sscanf(pi->name, "vit.encoder.layer.%d.", &l) == 1) return l + 1;
    if (!strncmp(pi->name, "vit.layernorm.", 14)) return c->enc.cfg.num_hidden_layers + 1;
    return -1;   /* decoder.*: not part of the classifier */
}

/* ------------------------------------------------------------------------ */
/* Checkpoints (HF ViTForImageClassification)                               */

static const char *problem_type(task_type t) {
    return t == TASK_REGRESSION ? "regression"
         : t == TASK_BINARY     ? "multi_label_classification"
                                : "single_label_classification";
}

/* dir/config.json from r (deleted here), atomically. */
static int write_config(const char *dir, cJSON *r, sx_err *err) {
    char cpath[4200];
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    int rc = json_write_file(cpath, r, err);   /* atomic */
    cJSON_Delete(r);
    return rc;
}

int classifier_save(const classifier *c, const char *dir, const char *task_name, sx_err *err) {
    if (mkdir(dir, 0755) && errno != EEXIST) return sx_fail(err, "%s: cannot create directory (%s)", dir, strerror(errno));
    const mae_model *m = &c->enc;
    int D = m->cfg.hidden_size, K = c->n_out;
    st_entry *e = sx_calloc((size_t)m->n_info + 2, sizeof *e);
    int n = 0;
    for (int i = 0; i < m->n_info; i++) {
        const param_info *pi = &m->info[i];
        if ((pi->flags & PARAM_ABSENT) || !strncmp(pi->name, "decoder.", 8)) continue;
        e[n].name = pi->name;
        e[n].data = m->params + pi->offset;
        e[n].ndim = pi->ndim;
        for (int d = 0; d < pi->ndim; d++) e[n].shape[d] = pi->shape[d];
        n++;
    }
    // regression: fold the target standardisation into the head
    float *w = sx_malloc(sizeof(float) * (size_t)K * D), *b = sx_malloc(sizeof(float) * K);
    for (size_t i = 0; i < (size_t)K * D; i++) w[i] = c->head_w[i] * c->y_sd;
    for (int k = 0; k < K; k++) b[k] = c->head_b[k] * c->y_sd + c->y_mean;
    e[n++] = (st_entry){"classifier.weight", w, 2, {K, D}};
    e[n++] = (st_entry){"classifier.bias", b, 1, {K}};
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    int rc = st_write_f32(path, e, n, mk, mv, 1, err);
    free(e); free(w); free(b);
    if (rc) return rc;

    cJSON *r = config_to_json(&m->cfg, 1);
    if (c->heads) {   /* id2label, label2id and the groups; the sigmoid outputs make it multi-label for HF */
        heads_to_json(c->heads, r);
        cJSON_AddStringToObject(r, "problem_type", "multi_label_classification");
        cJSON *sx = cJSON_AddObjectToObject(r, "skelex");
        cJSON_AddStringToObject(sx, "task_type", "multihead");
        if (task_name) cJSON_AddStringToObject(sx, "task", task_name);
        return write_config(dir, r, err);
    }
    cJSON *id2 = cJSON_AddObjectToObject(r, "id2label"), *l2i = cJSON_AddObjectToObject(r, "label2id");
    for (int k = 0; k < K; k++) {
        /* binary: the one output is the positive class; regression: the target */
        const char *name = c->type == TASK_BINARY ? c->class_names[1] : c->class_names[k];
        char key[16];
        snprintf(key, sizeof key, "%d", k);
        cJSON_AddStringToObject(id2, key, name);
        cJSON_AddNumberToObject(l2i, name, k);
    }
    cJSON_AddStringToObject(r, "problem_type", problem_type(c->type));
    cJSON *sx = cJSON_AddObjectToObject(r, "skelex");
    cJSON_AddStringToObject(sx, "task_type", task_type_name(c->type));
    if (task_name) cJSON_AddStringToObject(sx, "task", task_name);
    cJSON *cl = cJSON_AddArrayToObject(sx, "classes");
    for (int k = 0; k < c->n_classes; k++) cJSON_AddItemToArray(cl, cJSON_CreateString(c->class_names[k]));
    return write_config(dir, r, err);
}

/* Task type and class names from config.json: the "skelex" object, else
 * HF's problem_type and id2label. */
static int read_head_config(const char *path, classifier *c, sx_err *err) {
    cJSON *r = sx_json_load(path, 1 << 20, err);
    if (!r) return -1;
    int rc = 0;
    const cJSON *sx = cJSON_GetObjectItemCaseSensitive(r, "skelex");
    const cJSON *sty = cJSON_GetObjectItemCaseSensitive(sx, "task_type");
    if (!cJSON_IsObject(r)) rc = sx_fail(err, "%s: not a JSON object", path);
    else if (cJSON_GetObjectItemCaseSensitive(r, "groups") ||
             (cJSON_IsString(sty) && !strcmp(sty->valuestring, "multihead"))) {   /* a multi-head classifier */
        c->heads = sx_calloc(1, sizeof *c->heads);
        if (!cJSON_GetObjectItemCaseSensitive(r, "groups"))
            rc = sx_fail(err, "%s: a multihead classifier needs \"groups\"", path);
        else if (heads_from_json(r, path, c->heads, err)) rc = -1;
        else if (c->heads->n_out < 2) rc = sx_fail(err, "%s: a multi-head layout needs >= 2 outputs", path);
        else {
            c->type = TASK_MULTICLASS;
            c->n_classes = c->heads->n_out;
            c->class_names = copy_names((const char *const *)c->heads->names, c->n_classes);
        }
        cJSON_Delete(r);
        return rc;
    }
    const cJSON *id2 = cJSON_GetObjectItemCaseSensitive(r, "id2label");
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(r, "problem_type");
    if (rc) {
    } else if (sx) {
        const cJSON *ty = sty, *cl = cJSON_GetObjectItemCaseSensitive(sx, "classes");
        if (!cJSON_IsString(ty) || task_type_parse(ty->valuestring, &c->type) || !cJSON_IsArray(cl) ||
            cJSON_GetArraySize(cl) < 1 || cJSON_GetArraySize(cl) > 100000)
            rc = sx_fail(err, "%s: \"skelex\" needs task_type and classes", path);
        else {
            c->n_classes = cJSON_GetArraySize(cl);
            c->class_names = sx_calloc((size_t)c->n_classes, sizeof(char *));
            for (int k = 0; k < c->n_classes; k++) {
                const cJSON *s = cJSON_GetArrayItem(cl, k);
                c->class_names[k] = sx_strdup(cJSON_IsString(s) ? s->valuestring : "?");
            }
        }
    } else if (cJSON_IsObject(id2) && cJSON_GetArraySize(id2) >= 1 && cJSON_GetArraySize(id2) <= 100000) {
        int n = cJSON_GetArraySize(id2);
        const char *p = cJSON_IsString(pt) ? pt->valuestring : (n == 1 ? "regression" : "single_label_classification");
        c->type = !strcmp(p, "regression") ? TASK_REGRESSION : n == 1 ? TASK_BINARY : TASK_MULTICLASS;
        c->n_classes = c->type == TASK_BINARY ? 2 : n;
        c->class_names = sx_calloc((size_t)c->n_classes, sizeof(char *));
        for (int k = 0; k < n; k++) {
            char key[16];
            snprintf(key, sizeof key, "%d", k);
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(id2, key);
            const char *name = cJSON_IsString(s) ? s->valuestring : key;
            if (c->type == TASK_BINARY) { c->class_names[0] = sx_strdup("negative"); c->class_names[1] = sx_strdup(name); }
            else c->class_names[k] = sx_strdup(name);
        }
    } else
        rc = sx_fail(err, "%s: not a classifier (no id2label): is this an MAE checkpoint? use it with --model in finetune",
                     path);
    cJSON_Delete(r);
    if (!rc && ((c->type == TASK_BINARY && c->n_classes != 2) || (c->type == TASK_REGRESSION && c->n_classes != 1) ||
                (c->type != TASK_REGRESSION && c->n_classes < 2)))
        rc = sx_fail(err, "%s: a %s head cannot have %d class(es)", path, task_type_name(c->type), c->n_classes);
    return rc;
}

int classifier_load(classifier *c, const char *dir, sx_err *err) {
    memset(c, 0, sizeof *c);
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (read_head_config(path, c, err)) { classifier_free(c); return -1; }
    if (checkpoint_load_encoder_inference(dir, &c->enc, err)) { classifier_free(c); return -1; }
    head_alloc(c);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_file f;
    if (st_open(path, &f, err)) { classifier_free(c); return -1; }
    int D = c->enc.cfg.hidden_size, rc = 0;
    const st_tensor *w = st_find(&f, "classifier.weight"), *b = st_find(&f, "classifier.bias");
    if (!w || !b) rc = sx_fail(err, "%s: tensor '%s' is missing", path, w ? "classifier.bias" : "classifier.weight");
    else if (w->ndim != 2 || w->shape[0] != c->n_out || w->shape[1] != D)
        rc = sx_fail(err, "%s: tensor 'classifier.weight' must be [%d, %d] for this config", path, c->n_out, D);
    else if (b->ndim != 1 || b->shape[0] != c->n_out)
        rc = sx_fail(err, "%s: tensor 'classifier.bias' must be [%d]", path, c->n_out);
    if (!rc) rc = st_read_f32(&f, w, c->head_w, err);
    if (!rc) rc = st_read_f32(&f, b, c->head_b, err);
    st_close(&f);
    if (rc) { classifier_free(c); return -1; }
    return 0;
}
