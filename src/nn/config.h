/* config.h: the ViTMAE architecture, read from and written to Hugging Face
 * style config.json, plus named presets (tiny, small, base, large, huge). */
#ifndef SKELEX_CONFIG_H
#define SKELEX_CONFIG_H
#include "core/common.h"

typedef struct {
    int hidden_size, num_hidden_layers, num_attention_heads, intermediate_size;
    int decoder_hidden_size, decoder_num_hidden_layers, decoder_num_attention_heads, decoder_intermediate_size;
    int image_size, patch_size, num_channels;
    int qkv_bias;           /* 1: query/key/value Linear layers have a bias */
    int norm_pix_loss;      /* 1: loss target is per-patch normalised */
    double layer_norm_eps, mask_ratio, initializer_range;
} mae_config;

/* Fill c with a preset (tiny|small|base|large|huge). The decoder is MAE's
 * default: 512 wide, 8 layers, 16 heads, 2048 MLP. */
int config_preset(const char *name, mae_config *c, sx_err *err);

/* NAME (a preset) or PATH (a config.json, or a directory holding one). */
int config_resolve(const char *name_or_path, mae_config *c, sx_err *err);

/* Parse / write an HF config.json. Unknown keys are ignored; missing keys
 * take HF ViTMAEConfig's defaults; impossible values are an error. */
int config_parse_json(const char *text, mae_config *c, sx_err *err);
int config_load(const char *path, mae_config *c, sx_err *err);
int config_save(const char *path, const mae_config *c, sx_err *err);
/* The config as a cJSON object: vit = 0: ViTMAEForPreTraining (vit_mae);
 * vit = 1: the encoder's ViTConfig (model_type "vit",
 * ViTForImageClassification), to which a caller adds id2label etc. */
struct cJSON;
struct cJSON *config_to_json(const mae_config *c, int vit);
#include "core/json.h"   /* json_write_file, which moved to core/json.c */

/* Check internal consistency (divisibility, ranges). */
int config_validate(const mae_config *c, sx_err *err);

/* Derived sizes. */
static inline int config_grid(const mae_config *c) { return c->image_size / c->patch_size; }
static inline int config_num_patches(const mae_config *c) { return config_grid(c) * config_grid(c); }
static inline int config_patch_dim(const mae_config *c) { return c->patch_size * c->patch_size * c->num_channels; }
static inline int config_len_keep(const mae_config *c) {
    /* HF: int(seq_length * (1 - mask_ratio)), computed in double like Python */
    return (int)((double)config_num_patches(c) * (1.0 - c->mask_ratio));
}

#endif
