/* model.c: ViTMAE forward and backward, built from layers.c.
 * The encoder sees CLS + the visible patches; the decoder sees CLS + all
 * patches (mask tokens where hidden), as in HF ViTMAEForPreTraining. */
#include "nn/model.h"
#include "nn/layers.h"
#include "core/rng.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------ parameter layout */

typedef struct {
    mae_model *m;
    size_t off;
    int count_only;   /* 1: size only; 2: sizes and m->info, no views (no buffers yet) */
} layout_ctx;

/* Register one HF tensor; returns its offset and records it in m->info. */
static size_t reg(layout_ctx *L, const char *name, int flags, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    int64_t dims[4] = {d0, d1, d2, d3};
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= (size_t)dims[i];
    size_t off = L->off;
    if (L->count_only != 1) {
        param_info *p = &L->m->info[L->m->n_info++];
        snprintf(p->name, sizeof p->name, "%s", name);
        p->ndim = ndim;
        memcpy(p->shape, dims, sizeof dims);
        p->offset = off;
        p->numel = numel;
        p->flags = flags;
    }
    L->off += numel;
    return off;
}

typedef struct { size_t ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, fc2_w, fc2_b; } block_offs;

static block_offs reg_block(layout_ctx *L, const char *prefix, int C, int I, int qkv_bias) {
    char n[96];
    block_offs o;
    const char *qkv[3] = {"query", "key", "value"};
    int bias_flags = qkv_bias ? 0 : PARAM_ABSENT;
#define NAME(fmt, ...) (snprintf(n, sizeof n, "%s." fmt, prefix, __VA_ARGS__), n)
    /* q, k, v weights adjacent, then q, k, v biases adjacent: one fused matrix */
    o.qkv_w = reg(L, NAME("attention.attention.%s.weight", qkv[0]), PARAM_DECAY, 2, C, C, 0, 0);
    reg(L, NAME("attention.attention.%s.weight", qkv[1]), PARAM_DECAY, 2, C, C, 0, 0);
    reg(L, NAME("attention.attention.%s.weight", qkv[2]), PARAM_DECAY, 2, C, C, 0, 0);
    o.qkv_b = reg(L, NAME("attention.attention.%s.bias", qkv[0]), bias_flags, 1, C, 0, 0, 0);
    reg(L, NAME("attention.attention.%s.bias", qkv[1]), bias_flags, 1, C, 0, 0, 0);
    reg(L, NAME("attention.attention.%s.bias", qkv[2]), bias_flags, 1, C, 0, 0, 0);
    o.proj_w = reg(L, NAME("attention.output.dense.%s", "weight"), PARAM_DECAY, 2, C, C, 0, 0);
    o.proj_b = reg(L, NAME("attention.output.dense.%s", "bias"), 0, 1, C, 0, 0, 0);
    o.fc_w = reg(L, NAME("intermediate.dense.%s", "weight"), PARAM_DECAY, 2, I, C, 0, 0);
    o.fc_b = reg(L, NAME("intermediate.dense.%s", "bias"), 0, 1, I, 0, 0, 0);
    o.fc2_w = reg(L, NAME("output.dense.%s", "weight"), PARAM_DECAY, 2, C, I, 0, 0);
    o.fc2_b = reg(L, NAME("output.dense.%s", "bias"), 0, 1, C, 0, 0, 0);
    o.ln1_w = reg(L, NAME("layernorm_before.%s", "weight"), 0, 1, C, 0, 0, 0);
    o.ln1_b = reg(L, NAME("layernorm_before.%s", "bias"), 0, 1, C, 0, 0, 0);
    o.ln2_w = reg(L, NAME("layernorm_after.%s", "weight"), 0, 1, C, 0, 0, 0);
    o.ln2_b = reg(L, NAME("layernorm_after.%s", "bias"), 0, 1, C, 0, 0, 0);
#undef NAME
    return o;
}

static void block_point(block_params *bp, const block_offs *o, float *base) {
    *bp = (block_params){base + o->ln1_w, base + o->ln1_b, base + o->qkv_w, base + o->qkv_b,
                         base + o->proj_w, base + o->proj_b, base + o->ln2_w, base + o->ln2_b,
                         base + o->fc_w, base + o->fc_b, base + o->fc2_w, base + o->fc2_b};
}

/* Walk the whole architecture in HF order; with count_only, just size it
 * (1) or size it and fill m->info (2). */
static void layout(mae_model *m, int count_only) {
    const mae_config *c = &m->cfg;
    int D = c->hidden_size, Dd = c->decoder_hidden_size, N = config_num_patches(c), p = c->patch_size;
    layout_ctx L = {m, 0, count_only};
    size_t cls = reg(&L, "vit.embeddings.cls_token", 0, 3, 1, 1, D, 0);
    size_t pos = reg(&L, "vit.embeddings.position_embeddings", PARAM_FROZEN, 3, 1, N + 1, D, 0);
    size_t pw = reg(&L, "vit.embeddings.patch_embeddings.projection.weight", PARAM_DECAY, 4, D, c->num_channels, p, p);
    size_t pb = reg(&L, "vit.embeddings.patch_embeddings.projection.bias", 0, 1, D, 0, 0, 0);
    char prefix[64];
    block_offs *eo = sx_calloc((size_t)c->num_hidden_layers + 1, sizeof *eo);
    block_offs *dof = sx_calloc((size_t)c->decoder_num_hidden_layers + 1, sizeof *dof);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        snprintf(prefix, sizeof prefix, "vit.encoder.layer.%d", l);
        eo[l] = reg_block(&L, prefix, D, c->intermediate_size, c->qkv_bias);
    }
    size_t enw = reg(&L, "vit.layernorm.weight", 0, 1, D, 0, 0, 0);
    size_t enb = reg(&L, "vit.layernorm.bias", 0, 1, D, 0, 0, 0);
    size_t dew = reg(&L, "decoder.decoder_embed.weight", PARAM_DECAY, 2, Dd, D, 0, 0);
    size_t deb = reg(&L, "decoder.decoder_embed.bias", 0, 1, Dd, 0, 0, 0);
    size_t mt = reg(&L, "decoder.mask_token", 0, 3, 1, 1, Dd, 0);
    size_t dpos = reg(&L, "decoder.decoder_pos_embed", PARAM_FROZEN, 3, 1, N + 1, Dd, 0);
    for (int l = 0; l < c->decoder_num_hidden_layers; l++) {
        snprintf(prefix, sizeof prefix, "decoder.decoder_layers.%d", l);
        dof[l] = reg_block(&L, prefix, Dd, c->decoder_intermediate_size, c->qkv_bias);
    }
    size_t dnw = reg(&L, "decoder.decoder_norm.weight", 0, 1, Dd, 0, 0, 0);
    size_t dnb = reg(&L, "decoder.decoder_norm.bias", 0, 1, Dd, 0, 0, 0);
    size_t prw = reg(&L, "decoder.decoder_pred.weight", PARAM_DECAY, 2, config_patch_dim(c), Dd, 0, 0);
    size_t prb = reg(&L, "decoder.decoder_pred.bias", 0, 1, config_patch_dim(c), 0, 0, 0);
    m->n_floats = L.off;
    if (!count_only) {
        float *bases[2] = {m->params, m->grads};
        mae_params *views[2] = {&m->p, &m->g};
        for (int k = 0; k < (m->grads ? 2 : 1); k++) {  /* an inference model has no gradients */
            float *b = bases[k];
            mae_params *v = views[k];
            v->cls_token = b + cls; v->pos_embed = b + pos; v->patch_w = b + pw; v->patch_b = b + pb;
            v->enc_norm_w = b + enw; v->enc_norm_b = b + enb;
            v->dec_embed_w = b + dew; v->dec_embed_b = b + deb; v->mask_token = b + mt; v->dec_pos_embed = b + dpos;
            v->dec_norm_w = b + dnw; v->dec_norm_b = b + dnb; v->pred_w = b + prw; v->pred_b = b + prb;
            for (int l = 0; l < c->num_hidden_layers; l++) block_point(&v->enc[l], &eo[l], b);
            for (int l = 0; l < c->decoder_num_hidden_layers; l++) block_point(&v->dec[l], &dof[l], b);
        }
    }
    free(eo);
    free(dof);
}

static int count_tensors(const mae_config *c) {
    return 4 + 16 * c->num_hidden_layers + 2 + 4 + 16 * c->decoder_num_hidden_layers + 4;
}

int mae_param_table(const mae_config *cfg, param_info **info, int *n, sx_err *err) {
    *info = NULL;
    *n = 0;
    if (config_validate(cfg, err)) return -1;
    mae_model m;
    memset(&m, 0, sizeof m);
    m.cfg = *cfg;
    m.info = sx_calloc((size_t)count_tensors(cfg), sizeof *m.info);
    layout(&m, 2);
    *info = m.info;
    *n = m.n_info;
    return 0;
}

/* mae_build, or with `shared` a replica whose parameters are shared's
 * (nothing allocated or zeroed for them); inference: no gradients. */
static int build(mae_model *m, const mae_config *cfg, float *shared, int inference, sx_err *err) {
    memset(m, 0, sizeof *m);
    if (config_validate(cfg, err)) return -1;
    m->cfg = *cfg;
    layout(m, 1);
    m->info = sx_calloc((size_t)count_tensors(cfg), sizeof *m->info);
    m->shares_params = shared != NULL;
    m->inference = inference;
    m->params = shared ? shared : sx_alloc_large(m->n_floats * sizeof(float));
    m->grads = inference ? NULL : sx_alloc_large(m->n_floats * sizeof(float));
    if (!m->params || (!inference && !m->grads)) {
        if (!shared) sx_free_large(m->params, m->n_floats * sizeof(float));
        sx_free_large(m->grads, m->n_floats * sizeof(float));
        free(m->info);
        return sx_fail(err, "out of memory: %zu parameters", m->n_floats);
    }
    if (!shared) memset(m->params, 0, m->n_floats * sizeof(float));
    if (m->grads) memset(m->grads, 0, m->n_floats * sizeof(float));
    m->grad_scale = 1.0f;
    for (int k = 0; k < 2; k++) {
        mae_params *v = k ? &m->g : &m->p;
        if (k && inference) break;
        v->enc = sx_calloc((size_t)cfg->num_hidden_layers + 1, sizeof(block_params));
        v->dec = sx_calloc((size_t)cfg->decoder_num_hidden_layers + 1, sizeof(block_params));
    }
    layout(m, 0);
    m->gemm = gemm_ctx_new();
    if (!shared) {
        m->w16 = sx_calloc(1, sizeof *m->w16);
        pthread_mutex_init(&m->w16->lock, NULL);
        m->w16->synced = -1;
    }
    return 0;
}

void mae_set_precision(mae_model *m, sx_precision p) { gemm_ctx_set_precision(m->gemm, p); }
sx_precision mae_precision(const mae_model *m) { return gemm_ctx_precision(m->gemm); }

void mae_weights_changed(mae_model *m) {
    if (!m->w16) return;
    pthread_mutex_lock(&m->w16->lock);
    m->w16->gen++;
    pthread_mutex_unlock(&m->w16->lock);
}

long mae_bf16_refreshes(const mae_model *m) {
    if (!m->w16) return 0;
    pthread_mutex_lock(&m->w16->lock);
    long n = m->w16->refreshes;
    pthread_mutex_unlock(&m->w16->lock);
    return n;
}

void mae_bf16_sync(const mae_model *m) {
    mae_bf16_copy *w = m->w16;
    if (!w || m->shares_params || mae_precision(m) != PREC_BF16) return;
    pthread_mutex_lock(&w->lock);
    if (w->synced != w->gen) {
        if (!w->w) w->w = sx_alloc_large(m->n_floats * sizeof(uint16_t));
        if (w->w) {   /* out of memory: products convert per call instead */
            gemm_to_bf16(w->w, m->params, m->n_floats);   /* every tensor: any B inside params finds its copy */
            w->synced = w->gen;
            w->refreshes++;
        }
    }
    pthread_mutex_unlock(&w->lock);
}

/* Register the bf16 copies with this model's context for the call (when
 * they are current), or nothing at fp32. */
static void bind_weights(mae_model *m) {
    mae_bf16_copy *w = m->w16;
    const uint16_t *cur = NULL;
    if (w && mae_precision(m) == PREC_BF16) {
        mae_bf16_sync(m);
        pthread_mutex_lock(&w->lock);
        if (w->w && w->synced == w->gen) cur = w->w;
        pthread_mutex_unlock(&w->lock);
    }
    gemm_ctx_set_weights(m->gemm, m->params, m->n_floats, cur);
}

int mae_build(mae_model *m, const mae_config *cfg, sx_err *err) { return build(m, cfg, NULL, 0, err); }
int mae_build_inference(mae_model *m, const mae_config *cfg, sx_err *err) { return build(m, cfg, NULL, 1, err); }

int mae_build_replica(mae_model *r, const mae_model *src, sx_err *err) {
    if (build(r, &src->cfg, src->params, src->inference, err)) return -1;   /* a replica of an inference model has no gradients either */
    mae_set_precision(r, mae_precision(src));
    r->w16 = src->w16;      /* the owner's copies; refreshed by the owner (mae_bf16_sync) */
    mae_bf16_sync(src);
    r->encoder_only = src->encoder_only;
    r->loss_only = src->loss_only;
    return 0;
}

static void free_acts(mae_model *m) {
    sx_free_large(m->act_mem, m->act_floats * sizeof(float));
    free(m->enc_a);
    free(m->dec_a);
    free(m->ids_keep);
    free(m->ids_restore);
    free(m->ids_mask);
    free(m->dec_src);
    m->act_mem = NULL; m->enc_a = m->dec_a = NULL; m->ids_keep = m->ids_restore = m->ids_mask = m->dec_src = NULL;
    m->batch_cap = 0;
}

void mae_free(mae_model *m) {
    free_acts(m);
    free(m->info);
    if (!m->shares_params) sx_free_large(m->params, m->n_floats * sizeof(float));
    sx_free_large(m->grads, m->n_floats * sizeof(float));
    free(m->p.enc); free(m->p.dec); free(m->g.enc); free(m->g.dec);
    gemm_ctx_free(m->gemm);
    if (!m->shares_params && m->w16) {
        sx_free_large(m->w16->w, m->n_floats * sizeof(uint16_t));
        pthread_mutex_destroy(&m->w16->lock);
        free(m->w16);
    }
    memset(m, 0, sizeof *m);
}

size_t mae_count_params(const mae_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->n_info; i++)
        if (!(m->info[i].flags & PARAM_ABSENT)) n += m->info[i].numel;
    return n;
}

const param_info *mae_find_param(const mae_model *m, const char *name) {
    for (int i = 0; i < m->n_info; i++)
        if (!strcmp(m->info[i].name, name)) return &m->info[i];
    return NULL;
}

/* ---------------------------------------------------------- initialisation */

void mae_sincos_pos_embed(float *out, int dim, int grid) {
    // HF get_2d_sincos_pos_embed: meshgrid(w, h), so the first half of each row
    // encodes the column (w) and the second half the row (h); each half is
    // [sin(pos * omega), cos(pos * omega)] with omega_k = 10000^(-k / (dim/4)).
    int q = dim / 4;
    memset(out, 0, sizeof(float) * (size_t)dim);  // CLS row
    for (int i = 0; i < grid; i++)
        for (int j = 0; j < grid; j++) {
            float *row = out + (size_t)(1 + i * grid + j) * dim;
            for (int k = 0; k < q; k++) {
                double omega = 1.0 / pow(10000.0, (double)k / (double)q);
                row[k] = (float)sin(j * omega);
                row[q + k] = (float)cos(j * omega);
                row[2 * q + k] = (float)sin(i * omega);
                row[3 * q + k] = (float)cos(i * omega);
            }
        }
}

void mae_init_weights(mae_model *m, uint64_t seed) {
    const mae_config *c = &m->cfg;
    sx_rng r;
    rng_seed(&r, seed);
    float std = (float)c->initializer_range;
    memset(m->params, 0, m->n_floats * sizeof(float));
    for (int i = 0; i < m->n_info; i++) {
        const param_info *pi = &m->info[i];
        float *w = m->params + pi->offset;
        const char *name = pi->name;
        size_t len = strlen(name);
        if (pi->flags & (PARAM_FROZEN | PARAM_ABSENT)) continue;
        if (strstr(name, "layernorm") || strstr(name, "_norm.")) {
            if (len > 7 && !strcmp(name + len - 7, ".weight"))
                for (size_t k = 0; k < pi->numel; k++) w[k] = 1.0f;
        } else if (!strcmp(name, "vit.embeddings.patch_embeddings.projection.weight")) {
            float fan_in = (float)(pi->numel / (size_t)pi->shape[0]), fan_out = (float)pi->shape[0];
            float bound = sqrtf(6.0f / (fan_in + fan_out));
            for (size_t k = 0; k < pi->numel; k++) w[k] = (2.0f * rng_uniform(&r) - 1.0f) * bound;
        } else if (pi->ndim >= 2 || strstr(name, "token")) {
            for (size_t k = 0; k < pi->numel; k++) w[k] = std * rng_normal(&r);
        }
    }
    int grid = config_grid(c);
    mae_sincos_pos_embed(m->p.pos_embed, c->hidden_size, grid);
    mae_sincos_pos_embed(m->p.dec_pos_embed, c->decoder_hidden_size, grid);
    mae_weights_changed(m);
}

/* ------------------------------------------------------------ activations */

static float *carve(float **cur, size_t n) { float *p = *cur; *cur += n; return p; }

static size_t block_acts_layout(block_acts *a, float **cur, int B, int T, int C, int NH, int I) {
    float *start = *cur;
    size_t BT = (size_t)B * T;
    a->ln1 = carve(cur, BT * C); a->ln1_mean = carve(cur, BT); a->ln1_rstd = carve(cur, BT);
    a->qkv = carve(cur, BT * 3 * C); a->att = carve(cur, (size_t)B * NH * T * T); a->atty = carve(cur, BT * C);
    a->res1 = carve(cur, BT * C); a->ln2 = carve(cur, BT * C); a->ln2_mean = carve(cur, BT);
    a->ln2_rstd = carve(cur, BT); a->fc = carve(cur, BT * I); a->gelu = carve(cur, BT * I); a->res2 = carve(cur, BT * C);
    return (size_t)(*cur - start);
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* Lay out every activation for batch B starting at base (a counting pass
 * when base is NULL: pointers are then offsets from NULL and are discarded). */
static size_t acts_layout(mae_model *m, int B, float *base, block_acts *enc, block_acts *dec) {
    const mae_config *c = &m->cfg;
    int D = c->hidden_size, Dd = c->decoder_hidden_size, N = config_num_patches(c), P = config_patch_dim(c);
    int Lk = config_len_keep(c), Te = 1 + Lk, Td = m->encoder_only ? 0 : 1 + N;
    int I = c->intermediate_size, Id = c->decoder_intermediate_size;
    int NH = c->num_attention_heads, NHd = c->decoder_num_attention_heads;
    int dec_layers = m->encoder_only ? 0 : c->decoder_num_hidden_layers;
    size_t cpp = (size_t)c->num_channels * c->patch_size * c->patch_size;
    float *cur = base;
    m->kept_patches = carve(&cur, (size_t)B * Lk * cpp);
    m->emb = carve(&cur, (size_t)B * Lk * D);
    m->h0 = carve(&cur, (size_t)B * Te * D);
    block_acts tmp;
    for (int l = 0; l < c->num_hidden_layers; l++) block_acts_layout(enc ? &enc[l] : &tmp, &cur, B, Te, D, NH, I);
    m->latent = carve(&cur, (size_t)B * Te * D);
    m->lat_mean = carve(&cur, (size_t)B * Te);
    m->lat_rstd = carve(&cur, (size_t)B * Te);
    m->dec_in = carve(&cur, (size_t)B * Te * Dd);
    m->d0 = carve(&cur, (size_t)B * Td * Dd);
    for (int l = 0; l < dec_layers; l++) block_acts_layout(dec ? &dec[l] : &tmp, &cur, B, Td, Dd, NHd, Id);
    m->dn = carve(&cur, (size_t)B * Td * Dd);
    m->dn_mean = carve(&cur, (size_t)B * Td);
    m->dn_rstd = carve(&cur, (size_t)B * Td);
    m->pred = carve(&cur, (size_t)B * Td * P);
    m->target = carve(&cur, m->encoder_only ? 0 : (size_t)B * N * P);
    m->mask = carve(&cur, (size_t)B * N);
    /* backward scratch, shared by encoder and decoder blocks */
    size_t BTe = (size_t)B * Te, BTd = (size_t)B * Td;
    m->dres_enc = carve(&cur, BTe * D);
    m->dres_dec = carve(&cur, BTd * Dd);
    m->dres_rows = carve(&cur, m->encoder_only ? 0 : (size_t)B * (N - Lk) * Dd);
    size_t R = m->encoder_only ? 0 : (size_t)B * Te + N;  // row_share of the first decoder block
    m->dec_xu = carve(&cur, R * Dd);
    m->dec_dxu = carve(&cur, R * Dd);
    m->dec_d3u = carve(&cur, R * 3 * Dd);
    m->dbuf_c = carve(&cur, max_sz(BTe * max_sz((size_t)D, cpp), BTd * Dd));
    m->dbuf_i = carve(&cur, max_sz(BTe * I, BTd * Id));
    m->dbuf_3c = carve(&cur, max_sz(BTe * 3 * D, BTd * 3 * Dd));
    m->dpred = carve(&cur, BTd * P);
    /* layer scratch, sized for the OpenMP thread count now (ensure_batch
     * lays out again when it grows): attention's packed heads or GELU's
     * per-thread sums (never live at once), and the masking sort's keys */
    size_t sc = gelu_scratch_floats(I > Id ? I : Id);
    sc = max_sz(sc, attention_scratch_floats(Te, D, NH, Te));
    if (Td) sc = max_sz(sc, attention_scratch_floats(Td, Dd, NHd, Td));
    m->scratch = carve(&cur, sc);
    m->mask_keys = carve(&cur, 2 * (size_t)N);
    return (size_t)(cur - base);
}

static int ensure_batch(mae_model *m, int B, sx_err *err) {
    if (B <= m->batch_cap && omp_get_max_threads() <= m->scratch_threads) return 0;
    if (m->batch_cap > B) B = m->batch_cap;
    free_acts(m);
    const mae_config *c = &m->cfg;
    size_t n = acts_layout(m, B, NULL, NULL, NULL);
    m->act_mem = sx_alloc_large(n * sizeof(float));
    if (!m->act_mem)
        return sx_fail(err, "out of memory: activations for batch %d need %.2f GiB", B, (double)n * 4 / (1 << 30));
    m->act_floats = n;
    m->enc_a = sx_calloc((size_t)c->num_hidden_layers + 1, sizeof(block_acts));
    m->dec_a = sx_calloc((size_t)c->decoder_num_hidden_layers + 1, sizeof(block_acts));
    acts_layout(m, B, m->act_mem, m->enc_a, m->dec_a);
    m->ids_keep = sx_malloc(sizeof(int) * (size_t)B * config_len_keep(c));
    m->ids_restore = sx_malloc(sizeof(int) * (size_t)B * config_num_patches(c));
    m->dec_src = sx_malloc(sizeof(int) * ((size_t)B * (config_num_patches(c) + 1)));
    m->ids_mask = sx_malloc(sizeof(int) * ((size_t)B * (config_num_patches(c) - config_len_keep(c)) + 1));
    m->batch_cap = B;
    m->scratch_threads = omp_get_max_threads();
    return 0;
}

/* ---------------------------------------------------------------- masking */

typedef struct { float v; int i; } keyed;

static int keyed_less(keyed x, keyed y) { return x.v < y.v || (x.v == y.v && x.i < y.i); }

/* Heapsort by (value, index): a total order (indices are distinct), so the
 * result is the one stable argsort gives; no allocation (qsort may malloc). */
static void sort_keyed(keyed *k, int n) {
    for (int start = n / 2 - 1, end = n; end > 1;) {
        int root;
        if (start >= 0) root = start--;
        else { keyed t = k[0]; k[0] = k[--end]; k[end] = t; root = 0; }
        for (;;) {
            int child = 2 * root + 1;
            if (child >= end) break;
            if (child + 1 < end && keyed_less(k[child], k[child + 1])) child++;
            if (!keyed_less(k[root], k[child])) break;
            keyed t = k[root]; k[root] = k[child]; k[child] = t;
            root = child;
        }
    }
}

void mae_masking_scratch(const float *noise, int B, int N, int len_keep, int *ids_keep, int *ids_restore, float *mask,
                         void *scratch) {
    keyed *k = scratch;
    for (int b = 0; b < B; b++) {
        for (int n = 0; n < N; n++) k[n] = (keyed){noise[(size_t)b * N + n], n};
        sort_keyed(k, N);                                                    // ids_shuffle = argsort(noise)
        for (int j = 0; j < N; j++) ids_restore[(size_t)b * N + k[j].i] = j;  // argsort(ids_shuffle)
        for (int j = 0; j < len_keep; j++) ids_keep[(size_t)b * len_keep + j] = k[j].i;
        for (int n = 0; n < N; n++) mask[(size_t)b * N + n] = ids_restore[(size_t)b * N + n] >= len_keep ? 1.0f : 0.0f;
    }
}

void mae_masking(const float *noise, int B, int N, int len_keep, int *ids_keep, int *ids_restore, float *mask) {
    keyed *k = sx_malloc(sizeof(keyed) * (size_t)(N > 0 ? N : 1));
    mae_masking_scratch(noise, B, N, len_keep, ids_keep, ids_restore, mask, k);
    free(k);
}

/* ------------------------------------------------------- patch reshaping */

void mae_patchify(const mae_config *c, const float *pixels, int B, float *out) {
    // pixels (B,C,H,W) -> out (B, gh*gw, p*p*C), patch vector ordered (py, px, c)
    int p = c->patch_size, g = config_grid(c), C = c->num_channels, H = c->image_size, P = config_patch_dim(c);
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < g; gy++)
            for (int gx = 0; gx < g; gx++) {
                float *o = out + ((size_t)b * g * g + gy * g + gx) * P;
                for (int py = 0; py < p; py++)
                    for (int px = 0; px < p; px++)
                        for (int ch = 0; ch < C; ch++)
                            o[(py * p + px) * C + ch] = pixels[(((size_t)b * C + ch) * H + gy * p + py) * H + gx * p + px];
            }
}

void mae_unpatchify(const mae_config *c, const float *patches, int B, float *pixels) {
    int p = c->patch_size, g = config_grid(c), C = c->num_channels, H = c->image_size, P = config_patch_dim(c);
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < g; gy++)
            for (int gx = 0; gx < g; gx++) {
                const float *o = patches + ((size_t)b * g * g + gy * g + gx) * P;
                for (int py = 0; py < p; py++)
                    for (int px = 0; px < p; px++)
                        for (int ch = 0; ch < C; ch++)
                            pixels[(((size_t)b * C + ch) * H + gy * p + py) * H + gx * p + px] = o[(py * p + px) * C + ch];
            }
}

void mae_patch_stats(const float *t, int P, double *mean, double *std) { patch_norm_stats(t, P, mean, std); }
void mae_normalize_patches(float *patches, size_t n, int P) { patch_norm_forward(patches, n, P); }

/* ------------------------------------------------------------------ block */

/* Rows of a block's input that repeat. The first decoder block's mask-token
 * rows are mask_token + a position embedding: the same in every image. LN1
 * and the qkv projection then run once per distinct row: xu (R,C) holds the
 * distinct rows, src (B*T) maps each input row to one of them. Backward, the
 * LN1 path's d(x) lands in dxu (R,C), summed over the rows that share, and
 * not in dx. d3u (R,3C) is scratch. */
typedef struct { const float *xu; const int *src; int R; float *dxu, *d3u; } row_share;

/* A block's shapes. qrows (B,Tq) restricts everything after the keys and
 * values to those rows (the loss needs no others); NULL: all T rows. share:
 * see row_share; NULL: none. */
typedef struct { int B, T, C, NH, I; float eps; const int *qrows; int Tq; const row_share *share; } block_dims;

static block_dims dims(int B, int T, int C, int NH, int I, float eps) {
    return (block_dims){B, T, C, NH, I, eps, NULL, T, NULL};
}

static void block_forward(const block_params *w, block_acts *a, const float *x, float *scratch, block_dims d) {
    // x (B,T,C) -> a->res2 (B,Tq,C); pre-LayerNorm ViT layer
    int BT = d.B * d.T, BQ = d.B * d.Tq, C = d.C;
    const row_share *sh = d.share;
    if (sh) {  // a->ln1 holds the R distinct rows' LN1
        layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, sh->xu, w->ln1_w, w->ln1_b, sh->R, C, d.eps);
        linear_forward(sh->d3u, a->ln1, w->qkv_w, w->qkv_b, sh->R, C, 3 * C);
        rows_gather(a->qkv, sh->d3u, sh->src, BT, 3 * C);
    } else {
        layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, w->ln1_w, w->ln1_b, BT, C, d.eps);
        linear_forward(a->qkv, a->ln1, w->qkv_w, w->qkv_b, BT, C, 3 * C);
    }
    attention_forward(a->atty, a->att, a->qkv, d.B, d.T, C, d.NH, d.qrows, d.Tq, scratch);
    // the biases of proj, fc and fc2 are added by the pass that follows each
    linear_forward(a->res1, a->atty, w->proj_w, NULL, BQ, C, C);
    if (d.qrows) residual_rows_forward(a->res1, x, w->proj_b, d.qrows, d.B, d.Tq, d.T, C);
    else residual_forward(a->res1, x, w->proj_b, BT, C);
    layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res1, w->ln2_w, w->ln2_b, BQ, C, d.eps);
    linear_forward(a->fc, a->ln2, w->fc_w, NULL, BQ, C, d.I);
    gelu_forward(a->gelu, a->fc, w->fc_b, BQ, d.I);
    linear_forward(a->res2, a->gelu, w->fc2_w, NULL, BQ, d.I, C);
    residual_forward(a->res2, a->res1, w->fc2_b, BQ, C);
}

static void block_backward(const block_params *w, block_params *g, const block_acts *a, const float *x,
                           float *dres, float *dx, const mae_model *m, block_dims d) {
    // dres (B,Tq,C): d(output) in, used as scratch; dx (B,T,C): d(x) out. With
    // every row (no qrows) they may be the same buffer. Scratch: dbuf_c, dbuf_i, dbuf_3c.
    int BT = d.B * d.T, BQ = d.B * d.Tq, C = d.C;
    float *dc = m->dbuf_c, *di = m->dbuf_i, *d3 = m->dbuf_3c;
    linear_backward(di, g->fc2_w, g->fc2_b, dres, a->gelu, w->fc2_w, BQ, d.I, C);
    gelu_backward(di, a->fc, g->fc_b, BQ, d.I, m->scratch);  // with fc's bias gradient
    linear_backward(dc, g->fc_w, NULL, di, a->ln2, w->fc_w, BQ, C, d.I);
    layernorm_backward(dres, g->ln2_w, g->ln2_b, dc, a->res1, w->ln2_w, a->ln2_mean, a->ln2_rstd, BQ, C);
    linear_backward(dc, g->proj_w, g->proj_b, dres, a->atty, w->proj_w, BQ, C, C);
    attention_backward(d3, dc, a->qkv, a->att, d.B, d.T, C, d.NH, d.qrows, d.Tq, m->scratch);
    if (dx != dres) {  // the residual path: d(res1) reaches x only at its rows
        memset(dx, 0, sizeof(float) * (size_t)BT * C);
        if (d.qrows) residual_rows_backward(dx, dres, d.qrows, d.B, d.Tq, d.T, C);
        else memcpy(dx, dres, sizeof(float) * (size_t)BT * C);
    }
    const row_share *sh = d.share;
    if (sh) {  // the products are linear in d3: sum the rows that share first
        memset(sh->d3u, 0, sizeof(float) * (size_t)sh->R * 3 * C);
        rows_gather_backward(sh->d3u, d3, sh->src, BT, 3 * C);
        linear_backward(dc, g->qkv_w, g->qkv_b, sh->d3u, a->ln1, w->qkv_w, sh->R, C, 3 * C);
        memset(sh->dxu, 0, sizeof(float) * (size_t)sh->R * C);
        layernorm_backward(sh->dxu, g->ln1_w, g->ln1_b, dc, sh->xu, w->ln1_w, a->ln1_mean, a->ln1_rstd, sh->R, C);
        return;
    }
    linear_backward(dc, g->qkv_w, g->qkv_b, d3, a->ln1, w->qkv_w, BT, C, 3 * C);
    layernorm_backward(dx, g->ln1_w, g->ln1_b, dc, x, w->ln1_w, a->ln1_mean, a->ln1_rstd, BT, C);
}

/* The first decoder block's row_share, filled by mae_forward. */
static row_share dec_share(const mae_model *m) {
    int R = m->B * (1 + config_len_keep(&m->cfg)) + config_num_patches(&m->cfg);
    return (row_share){m->dec_xu, m->dec_src, R, m->dec_dxu, m->dec_d3u};
}

/* ---------------------------------------------------------------- forward */

/* Embeddings of the visible patches (m->ids_keep), encoder blocks, final
 * LayerNorm: pixels (B,C,H,W) -> m->latent (B, 1+len_keep, D). */
static void encoder_forward(mae_model *m, const float *pixels, int B) {
    const mae_config *c = &m->cfg;
    int D = c->hidden_size, Lk = config_len_keep(c), Te = 1 + Lk;
    float eps = (float)c->layer_norm_eps;
    const mae_params *w = &m->p;
    patch_embed_forward(m->emb, m->kept_patches, pixels, m->ids_keep, w->patch_w, w->patch_b, B, Lk, c->num_channels,
                        c->image_size, c->patch_size, D);
    embed_forward(m->h0, m->emb, w->cls_token, w->pos_embed, m->ids_keep, B, Lk, D);

    // encoder
    const float *x = m->h0;
    block_dims de = dims(B, Te, D, c->num_attention_heads, c->intermediate_size, eps);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        block_forward(&w->enc[l], &m->enc_a[l], x, m->scratch, de);
        x = m->enc_a[l].res2;
    }
    layernorm_forward(m->latent, m->lat_mean, m->lat_rstd, x, w->enc_norm_w, w->enc_norm_b, B * Te, D, eps);
}

static int encode(mae_model *m, const float *pixels, int B, sx_err *err) {
    const mae_config *c = &m->cfg;
    int N = config_num_patches(c);
    if (!m->encoder_only || config_len_keep(c) != N)
        return sx_fail(err, "mae_encode needs an encoder-only model with mask_ratio 0");
    if (ensure_batch(m, B, err)) return -1;
    m->B = B;
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++) m->ids_keep[(size_t)b * N + n] = n;  // every patch, in order
    encoder_forward(m, pixels, B);
    return 0;
}

static int forward(mae_model *m, const float *pixels, const float *noise, int B, sx_err *err) {
    const mae_config *c = &m->cfg;
    if (ensure_batch(m, B, err)) return -1;
    m->B = B;
    int D = c->hidden_size, Dd = c->decoder_hidden_size, N = config_num_patches(c), P = config_patch_dim(c);
    int Lk = config_len_keep(c), Te = 1 + Lk, Td = 1 + N;
    float eps = (float)c->layer_norm_eps;
    const mae_params *w = &m->p;

    if (m->encoder_only) return sx_fail(err, "this model was built encoder-only: it has no decoder activations");
    mae_masking_scratch(noise, B, N, Lk, m->ids_keep, m->ids_restore, m->mask, m->mask_keys);
    encoder_forward(m, pixels, B);

    // decoder: embed, mask tokens, unshuffle, position embeddings
    const float *x;
    linear_forward(m->dec_in, m->latent, w->dec_embed_w, w->dec_embed_b, B * Te, D, Dd);
    unshuffle_forward(m->d0, m->dec_in, w->mask_token, w->dec_pos_embed, m->ids_restore, B, N, Lk, Dd);
    // the first block's distinct input rows (row_share): each image's CLS
    // and visible rows, then mask_token + position for every position
    // (only where that is fewer rows: with one image, say, it is not; LN1's
    // buffers then also hold the distinct rows)
    m->dec_shared = c->decoder_num_hidden_layers > 0 && B * Te + N < B * Td;
    if (m->dec_shared)
        share_rows_forward(m->dec_xu, m->dec_src, m->d0, w->mask_token, w->dec_pos_embed, m->ids_restore, B, N, Lk, Dd);

    // loss_only: the last block runs its queries, and the head its rows, for
    // the masked tokens alone (ids_mask); nothing else reaches the loss
    int L = c->decoder_num_hidden_layers, Lm = N - Lk;
    m->masked_rows_only = m->loss_only && L > 0 && Lm > 0;
    if (m->masked_rows_only) masked_rows_index(m->ids_mask, m->ids_restore, B, N, Lk);
    int Tp = m->masked_rows_only ? Lm : Td;  // head rows per image
    row_share share = dec_share(m);
    x = m->d0;
    block_dims dd = dims(B, Td, Dd, c->decoder_num_attention_heads, c->decoder_intermediate_size, eps);
    for (int l = 0; l < L; l++) {
        dd.share = l == 0 && m->dec_shared ? &share : NULL;
        if (l == L - 1 && m->masked_rows_only) { dd.qrows = m->ids_mask; dd.Tq = Lm; }
        block_forward(&w->dec[l], &m->dec_a[l], x, m->scratch, dd);
        x = m->dec_a[l].res2;
    }
    layernorm_forward(m->dn, m->dn_mean, m->dn_rstd, x, w->dec_norm_w, w->dec_norm_b, B * Tp, Dd, eps);
    linear_forward(m->pred, m->dn, w->pred_w, w->pred_b, B * Tp, Dd, P);

    // loss: mean squared error per patch, averaged over the masked patches
    mae_patchify(c, pixels, B, m->target);
    m->loss = masked_mse_forward(m->target, m->pred, m->mask, B, N, P, Tp, m->masked_rows_only, c->norm_pix_loss);
    return 0;
}

/* --------------------------------------------------------------- backward */

static void encoder_backward(mae_model *m);

void mae_zero_grad(mae_model *m) {
    if (m->grads) memset(m->grads, 0, m->n_floats * sizeof(float));
}

static void backward(mae_model *m) {
    const mae_config *c = &m->cfg;
    int B = m->B, D = c->hidden_size, Dd = c->decoder_hidden_size, N = config_num_patches(c), P = config_patch_dim(c);
    int Lk = config_len_keep(c), Te = 1 + Lk, Td = 1 + N, Lm = N - Lk, L = c->decoder_num_hidden_layers;
    int Tp = m->masked_rows_only ? Lm : Td;  // head rows per image, as in the forward
    const mae_params *w = &m->p;
    mae_params *g = &m->g;

    // d(loss)/d(pred): 2 (pred - target) / (P * sum(mask)) on masked patches, 0 elsewhere
    masked_mse_backward(m->dpred, m->pred, m->target, m->mask, B, N, P, Tp, m->masked_rows_only, m->grad_scale);

    // decoder head and norm
    const float *dec_out = L ? m->dec_a[L - 1].res2 : m->d0;
    float *dtop = m->masked_rows_only ? m->dres_rows : m->dres_dec;  // d(last block's output)
    linear_backward(m->dbuf_c, g->pred_w, g->pred_b, m->dpred, m->dn, w->pred_w, B * Tp, Dd, P);
    memset(dtop, 0, sizeof(float) * (size_t)B * Tp * Dd);
    layernorm_backward(dtop, g->dec_norm_w, g->dec_norm_b, m->dbuf_c, dec_out, w->dec_norm_w, m->dn_mean, m->dn_rstd,
                       B * Tp, Dd);

    // decoder blocks, last to first
    row_share share = dec_share(m);
    block_dims dd = dims(B, Td, Dd, c->decoder_num_attention_heads, c->decoder_intermediate_size, 0);
    for (int l = L - 1; l >= 0; l--) {
        int rows = l == L - 1 && m->masked_rows_only;
        dd.qrows = rows ? m->ids_mask : NULL;
        dd.Tq = rows ? Lm : Td;
        dd.share = l == 0 && m->dec_shared ? &share : NULL;
        block_backward(&w->dec[l], &g->dec[l], &m->dec_a[l], l ? m->dec_a[l - 1].res2 : m->d0, rows ? dtop : m->dres_dec,
                       m->dres_dec, m, dd);
    }
    // the first block's LN1 path: each image's own rows, and mask_token once per position
    if (m->dec_shared) share_rows_backward(m->dres_dec, g->mask_token, m->dec_dxu, m->dec_src, B, N, Lk, Dd);

    // undo the unshuffle: visible tokens back to the encoder's order, the rest to mask_token
    float *ddec_in = m->dbuf_3c;  // (B,Te,Dd), free at this point
    unshuffle_backward(ddec_in, g->mask_token, m->dres_dec, m->ids_restore, B, N, Lk, Dd);
    linear_backward(m->dbuf_c, g->dec_embed_w, g->dec_embed_b, ddec_in, m->latent, w->dec_embed_w, B * Te, D, Dd);
    encoder_backward(m);
}

float *mae_encode_grad(mae_model *m) {
    const mae_config *c = &m->cfg;
    memset(m->dbuf_c, 0, sizeof(float) * (size_t)m->B * (1 + config_len_keep(c)) * c->hidden_size);
    return m->dbuf_c;
}

/* Every entry point runs with this model's product context bound (gemm.h). */
int mae_encode(mae_model *m, const float *pixels, int B, sx_err *err) {
    sx_gemm_ctx *prev = gemm_bind(m->gemm);
    bind_weights(m);
    int rc = encode(m, pixels, B, err);
    gemm_bind(prev);
    return rc;
}

int mae_forward(mae_model *m, const float *pixels, const float *noise, int B, sx_err *err) {
    sx_gemm_ctx *prev = gemm_bind(m->gemm);
    bind_weights(m);
    int rc = forward(m, pixels, noise, B, err);
    gemm_bind(prev);
    return rc;
}

void mae_backward(mae_model *m) {
    if (!m->grads) return;  /* an inference model (mae_build_inference) */
    sx_gemm_ctx *prev = gemm_bind(m->gemm);
    bind_weights(m);
    backward(m);
    gemm_bind(prev);
}

void mae_encode_backward(mae_model *m) {
    if (!m->grads) return;
    sx_gemm_ctx *prev = gemm_bind(m->gemm);
    bind_weights(m);
    encoder_backward(m);
    gemm_bind(prev);
}

/* From d(latent) in m->dbuf_c (B, 1+len_keep, D) back through the final
 * LayerNorm, the encoder blocks and the embeddings. */
static void encoder_backward(mae_model *m) {
    const mae_config *c = &m->cfg;
    int B = m->B, D = c->hidden_size, Lk = config_len_keep(c), Te = 1 + Lk;
    int cpp = c->num_channels * c->patch_size * c->patch_size;
    const mae_params *w = &m->p;
    mae_params *g = &m->g;

    // encoder norm and blocks
    const float *enc_out = c->num_hidden_layers ? m->enc_a[c->num_hidden_layers - 1].res2 : m->h0;
    memset(m->dres_enc, 0, sizeof(float) * (size_t)B * Te * D);
    layernorm_backward(m->dres_enc, g->enc_norm_w, g->enc_norm_b, m->dbuf_c, enc_out, w->enc_norm_w,
                       m->lat_mean, m->lat_rstd, B * Te, D);
    block_dims de = dims(B, Te, D, c->num_attention_heads, c->intermediate_size, 0);
    for (int l = c->num_hidden_layers - 1; l >= 0; l--)
        block_backward(&w->enc[l], &g->enc[l], &m->enc_a[l], l ? m->enc_a[l - 1].res2 : m->h0, m->dres_enc, m->dres_enc,
                       m, de);

    // embeddings: CLS token, then the patch projection of the visible patches
    float *demb = m->dbuf_c;  // (B*Lk, D)
    embed_backward(demb, g->cls_token, m->dres_enc, B, Lk, D);
    patch_embed_backward(g->patch_w, g->patch_b, demb, m->kept_patches, B, Lk, cpp, D);
}
