/* model.h: the ViT masked autoencoder (HF ViTMAEForPreTraining), its
 * parameters, activations, forward and backward.
 *
 * Life cycle: mae_build -> mae_init_weights (or checkpoint_load) ->
 * [mae_forward -> mae_zero_grad -> mae_backward -> adamw_step]* -> mae_free.
 * Parameters and gradients are each one allocation, carved into the HF
 * tensors in a fixed order; query/key/value of a layer are adjacent, so they
 * form one fused (3C, C) matrix. Activations are one allocation per batch
 * size; the training step allocates nothing. */
#ifndef SKELEX_MODEL_H
#define SKELEX_MODEL_H
#include "nn/config.h"
#include "nn/gemm.h"
#include <pthread.h>

typedef struct {
    float *ln1_w, *ln1_b;     /* layernorm_before */
    float *qkv_w, *qkv_b;     /* attention.attention.{query,key,value}: (3C, C), (3C) */
    float *proj_w, *proj_b;   /* attention.output.dense */
    float *ln2_w, *ln2_b;     /* layernorm_after */
    float *fc_w, *fc_b;       /* intermediate.dense: (I, C) */
    float *fc2_w, *fc2_b;     /* output.dense: (C, I) */
} block_params;

typedef struct {
    float *cls_token, *pos_embed, *patch_w, *patch_b;
    block_params *enc;
    float *enc_norm_w, *enc_norm_b;
    float *dec_embed_w, *dec_embed_b, *mask_token, *dec_pos_embed;
    block_params *dec;
    float *dec_norm_w, *dec_norm_b, *pred_w, *pred_b;
} mae_params;

enum {
    PARAM_DECAY = 1,    /* AdamW weight decay applies (weight matrices only) */
    PARAM_FROZEN = 2,   /* fixed sin-cos position embeddings: never updated */
    PARAM_ABSENT = 4,   /* q/k/v biases when qkv_bias is false: zero, not stored */
};

typedef struct {
    char name[96];        /* the Hugging Face state_dict key */
    int ndim;
    int64_t shape[4];
    size_t offset, numel; /* in floats, within params/grads */
    int flags;
} param_info;

typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *att, *atty, *res1;
    float *ln2, *ln2_mean, *ln2_rstd, *fc, *gelu, *res2;
} block_acts;

/* The bf16 copies of the parameters (all of them, at the same offsets; the
 * weight matrices are what products read), which bf16 products read in place: refreshed when
 * the weights changed since the last refresh (a generation count), shared
 * by a model and its replicas. */
typedef struct {
    pthread_mutex_t lock; /* replicas on other threads (the API's contexts) sync and read it */
    uint16_t *w;          /* n_floats values; NULL until the first bf16 forward */
    long gen;             /* bumped by mae_weights_changed */
    long synced;          /* the generation w holds (-1: none) */
    long refreshes;       /* how many times w was rewritten */
} mae_bf16_copy;

typedef struct {
    mae_config cfg;
    int encoder_only;     /* set before the first forward: no decoder activations (features, fine-tuning) */
    int loss_only;        /* training: the forward computes the loss, not every logit. The last decoder
                             block's queries, its MLP, the decoder norm and the prediction then run on
                             the masked tokens only (the visible ones cannot reach the loss), and m->pred
                             holds (B, N - len_keep, P) rows, image by image in patch order. Same loss and
                             gradients, about 25 % less work in that block. */
    float grad_scale;     /* mae_backward's gradients are d(grad_scale * loss); 1 after mae_build */
    int n_info;
    param_info *info;
    size_t n_floats;
    float *params, *grads;
    int shares_params;    /* a replica: params belong to another model (mae_build_replica) */
    int inference;        /* mae_build_inference: grads is NULL; no backward */
    mae_params p, g;

    /* activations for up to batch_cap images */
    int batch_cap, B;
    float *act_mem;
    size_t act_floats;
    float *kept_patches, *emb, *h0, *latent, *lat_mean, *lat_rstd, *dec_in, *d0;
    float *dn, *dn_mean, *dn_rstd, *pred, *target, *mask;
    block_acts *enc_a, *dec_a;
    int *ids_keep, *ids_restore;
    int *ids_mask;           /* (B, N - len_keep): decoder rows 1 + n of the masked patches n, ascending */
    int masked_rows_only;    /* the last forward ran in loss_only mode */
    /* the first decoder block's distinct input rows (B*(1+len_keep) + N, see
     * row_share in model.c), their map from the B*(1+N) rows, and gradients */
    float *dec_xu, *dec_dxu, *dec_d3u;
    int *dec_src;
    int dec_shared;          /* the last forward used them (they save work only for batches above 1) */
    /* backward scratch */
    float *dres_enc, *dres_dec, *dres_rows, *dbuf_c, *dbuf_i, *dbuf_3c, *dpred;
    /* layer scratch (attention's packed heads, GELU's per-thread sums) for
     * scratch_threads OpenMP threads, and the masking sort's keys */
    float *scratch, *mask_keys;
    int scratch_threads;
    float loss;
    mae_bf16_copy *w16;   /* bf16 weight copies (owned unless shares_params) */
    sx_gemm_ctx *gemm;    /* this model's product context (precision, bf16 cache, profile), bound to the
                             calling thread during forward and backward: see gemm.h */
} mae_model;

int  mae_build(mae_model *m, const mae_config *cfg, sx_err *err);
/* As mae_build, without gradient buffers (half the memory): forward only.
 * mae_zero_grad is a no-op on it; mae_backward and mae_encode_backward
 * must not be called. */
int  mae_build_inference(mae_model *m, const mae_config *cfg, sx_err *err);
/* The HF tensor table cfg implies (names, shapes, offsets), without
 * building the model: a few KB, to check a weights file against before
 * allocating anything sized from the config. The caller frees *info. */
int  mae_param_table(const mae_config *cfg, param_info **info, int *n, sx_err *err);
void mae_free(mae_model *m);
/* A second model over src's parameters (not copied: updates to src reach it)
 * with its own gradients and activations, for a share of a batch (team.h).
 * It copies encoder_only and loss_only. Free it with mae_free before src. */
int  mae_build_replica(mae_model *r, const mae_model *src, sx_err *err);   /* inference when src is */
/* This model's product precision: PREC_DEFAULT (after mae_build) follows
 * gemm_set_precision; PREC_FP32 / PREC_BF16 fix it for this model alone. */
void mae_set_precision(mae_model *m, sx_precision p);
sx_precision mae_precision(const mae_model *m);   /* the one products use (FP32 or BF16) */
/* Whoever writes m->params outside the loaders and mae_init_weights (an
 * optimizer: adamw_step does it) calls this once afterwards, so the bf16
 * copies are refreshed before the next bf16 product reads them. */
void mae_weights_changed(mae_model *m);
/* Bring the bf16 copies up to date now if the model runs bf16 and they are
 * stale (forward calls it on a model that owns its weights; team.c calls it
 * before its shares start, as replicas never refresh). Thread-safe, but the
 * weights must not change while another thread's products read them. */
void mae_bf16_sync(const mae_model *m);
/* Times the bf16 copies were rewritten (tests, profile). */
long mae_bf16_refreshes(const mae_model *m);
/* HF initialisation: Linear N(0, initializer_range), patch projection
 * Xavier-uniform, tokens N(0, initializer_range), LayerNorm 1/0, biases 0,
 * sin-cos position embeddings. */
void mae_init_weights(mae_model *m, uint64_t seed);
/* HF's fixed 2-D sin-cos embedding, (1 + grid^2, dim), row 0 (CLS) zero. */
void mae_sincos_pos_embed(float *out, int dim, int grid);
size_t mae_count_params(const mae_model *m);   /* stored tensors, frozen included */
const param_info *mae_find_param(const mae_model *m, const char *name);

/* HF random_masking: per-sample argsort(noise) (B,N); the first len_keep are
 * visible. Fills ids_keep (B,len_keep), ids_restore (B,N), mask (B,N). */
void mae_masking(const float *noise, int B, int N, int len_keep, int *ids_keep, int *ids_restore, float *mask);
/* The same without allocating: scratch holds 8 N bytes (mae_forward uses
 * m->mask_keys). mae_masking allocates them per call. */
void mae_masking_scratch(const float *noise, int B, int N, int len_keep, int *ids_keep, int *ids_restore, float *mask,
                         void *scratch);

/* pixels (B,C,H,W) normalised, noise (B,N). Returns the loss; logits, mask
 * and ids_restore stay in the model until the next forward. */
int   mae_forward(mae_model *m, const float *pixels, const float *noise, int B, sx_err *err);
/* Encoder only, every patch visible, in order (needs mask_ratio 0 and
 * encoder_only). m->latent then holds (B, 1+N, D) after the final LayerNorm:
 * row 0 is CLS. */
int   mae_encode(mae_model *m, const float *pixels, int B, sx_err *err);
/* Backward of mae_encode: fill the returned (B, 1+N, D) buffer with
 * d(loss)/d(latent), then call mae_encode_backward (accumulates into grads). */
float *mae_encode_grad(mae_model *m);
void  mae_encode_backward(mae_model *m);
void  mae_zero_grad(mae_model *m);
void  mae_backward(mae_model *m);   /* accumulates into m->grads */
/* Decoder logits of image b: (N, patch*patch*C), CLS dropped. Not with
 * loss_only, which computes the masked patches' rows alone. */
static inline const float *mae_logits(const mae_model *m, int b) {
    int N = config_num_patches(&m->cfg), P = config_patch_dim(&m->cfg);
    return m->pred + ((size_t)b * (N + 1) + 1) * P;
}

/* The statistics of norm_pix_loss for one patch vector of P values: its
 * mean and sqrt(unbiased variance + 1e-6), as HF's forward_loss. */
void mae_patch_stats(const float *t, int P, double *mean, double *std);
/* Normalise n patch vectors in place with those statistics. */
void mae_normalize_patches(float *patches, size_t n, int P);

/* (B,C,H,W) -> (B,N,p*p*C) in HF's "nchpwq->nhwpqc" order, and back. */
void mae_patchify(const mae_config *c, const float *pixels, int B, float *out);
void mae_unpatchify(const mae_config *c, const float *patches, int B, float *pixels);

#endif
