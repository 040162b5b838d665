/* config.c: HF ViTMAEConfig <-> mae_config, through cJSON. */
#include "nn/config.h"
#include "core/json.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void config_defaults(mae_config *c) {
    /* HF ViTMAEConfig defaults (= ViT-Base encoder, MAE decoder). */
    *c = (mae_config){
        .hidden_size = 768, .num_hidden_layers = 12, .num_attention_heads = 12, .intermediate_size = 3072,
        .decoder_hidden_size = 512, .decoder_num_hidden_layers = 8, .decoder_num_attention_heads = 16,
        .decoder_intermediate_size = 2048, .image_size = 224, .patch_size = 16, .num_channels = 3,
        .qkv_bias = 1, .norm_pix_loss = 0, .layer_norm_eps = 1e-12, .mask_ratio = 0.75,
        .initializer_range = 0.02,
    };
}

int config_preset(const char *name, mae_config *c, sx_err *err) {
    static const struct { const char *name; int d, l, h, i, p; } presets[] = {
        {"tiny", 192, 12, 3, 768, 16},   {"small", 384, 12, 6, 1536, 16},
        {"base", 768, 12, 12, 3072, 16}, {"large", 1024, 24, 16, 4096, 16},
        {"huge", 1280, 32, 16, 5120, 14},
    };
    for (size_t k = 0; k < sizeof presets / sizeof presets[0]; k++) {
        if (strcmp(name, presets[k].name) != 0) continue;
        config_defaults(c);
        c->hidden_size = presets[k].d; c->num_hidden_layers = presets[k].l;
        c->num_attention_heads = presets[k].h; c->intermediate_size = presets[k].i;
        c->patch_size = presets[k].p;
        return 0;
    }
    return sx_fail(err, "unknown preset '%s' (expected tiny, small, base, large or huge)", name);
}

int config_validate(const mae_config *c, sx_err *err) {
    const struct { const char *k; int v, lo, hi; } ranges[] = {
        {"hidden_size", c->hidden_size, 2, 16384},
        {"num_hidden_layers", c->num_hidden_layers, 0, 256},
        {"num_attention_heads", c->num_attention_heads, 1, 1024},
        {"intermediate_size", c->intermediate_size, 1, 65536},
        {"decoder_hidden_size", c->decoder_hidden_size, 2, 16384},
        {"decoder_num_hidden_layers", c->decoder_num_hidden_layers, 0, 256},
        {"decoder_num_attention_heads", c->decoder_num_attention_heads, 1, 1024},
        {"decoder_intermediate_size", c->decoder_intermediate_size, 1, 65536},
        {"image_size", c->image_size, 1, 4096},
        {"patch_size", c->patch_size, 1, 1024},
        {"num_channels", c->num_channels, 1, 4},
    };
    for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++)
        if (ranges[k].v < ranges[k].lo || ranges[k].v > ranges[k].hi)
            return sx_fail(err, "config: %s=%d is outside [%d, %d]", ranges[k].k, ranges[k].v, ranges[k].lo, ranges[k].hi);
    if (c->hidden_size % c->num_attention_heads)
        return sx_fail(err, "config: hidden_size %d is not a multiple of num_attention_heads %d", c->hidden_size, c->num_attention_heads);
    if (c->decoder_hidden_size % c->decoder_num_attention_heads)
        return sx_fail(err, "config: decoder_hidden_size %d is not a multiple of decoder_num_attention_heads %d",
                       c->decoder_hidden_size, c->decoder_num_attention_heads);
    if (c->hidden_size % 4 || c->decoder_hidden_size % 4)
        return sx_fail(err, "config: sin-cos position embeddings need hidden sizes divisible by 4");
    if (c->image_size % c->patch_size)
        return sx_fail(err, "config: image_size %d is not a multiple of patch_size %d", c->image_size, c->patch_size);
    if (!(c->mask_ratio >= 0.0 && c->mask_ratio < 1.0))
        return sx_fail(err, "config: mask_ratio %g must be in [0, 1)", c->mask_ratio);
    if (config_len_keep(c) < 1)
        return sx_fail(err, "config: mask_ratio %g keeps no patch", c->mask_ratio);
    if (!(c->layer_norm_eps > 0.0 && c->layer_norm_eps < 1.0))
        return sx_fail(err, "config: layer_norm_eps %g must be in (0, 1)", c->layer_norm_eps);
    if (!(c->initializer_range >= 0.0 && c->initializer_range < 10.0))
        return sx_fail(err, "config: initializer_range %g out of range", c->initializer_range);
    return 0;
}

static int json_int(const cJSON *root, const char *key, int *out, sx_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) return 0;
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 2) { /* image_size/patch_size may be [h, w] */
        const cJSON *a = cJSON_GetArrayItem(v, 0), *b = cJSON_GetArrayItem(v, 1);
        if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b) || a->valuedouble != b->valuedouble)
            return sx_fail(err, "config: %s must be one number or a square [n, n]", key);
        v = a;
    }
    /* range first: converting a double outside int's range is undefined */
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= INT_MIN && v->valuedouble <= INT_MAX) ||
        v->valuedouble != (double)(int)v->valuedouble)
        return sx_fail(err, "config: %s must be an integer (in int range)", key);
    *out = (int)v->valuedouble;
    return 0;
}

static int json_float(const cJSON *root, const char *key, double *out, sx_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) return 0;
    if (!cJSON_IsNumber(v)) return sx_fail(err, "config: %s must be a number", key);
    *out = v->valuedouble;
    return 0;
}

static int json_bool(const cJSON *root, const char *key, int *out, sx_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return sx_fail(err, "config: %s must be true or false", key);
    *out = cJSON_IsTrue(v);
    return 0;
}

int config_parse_json(const char *text, mae_config *c, sx_err *err) {
    cJSON *root = sx_json_parse(text, strlen(text), "config", err);
    if (!root || !cJSON_IsObject(root)) {
        if (!root) return -1;
        cJSON_Delete(root);
        return sx_fail(err, "config: not a JSON object");
    }
    config_defaults(c);
    int rc = 0;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (mt && (!cJSON_IsString(mt) || (strcmp(mt->valuestring, "vit_mae") && strcmp(mt->valuestring, "vit"))))
        rc = sx_fail(err, "config: model_type must be \"vit_mae\" (or \"vit\")");
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (!rc && act && (!cJSON_IsString(act) || strcmp(act->valuestring, "gelu")))
        rc = sx_fail(err, "config: hidden_act must be \"gelu\" (exact erf GELU); other activations are not supported");
    const struct { const char *k; int *p; } ints[] = {
        {"hidden_size", &c->hidden_size}, {"num_hidden_layers", &c->num_hidden_layers},
        {"num_attention_heads", &c->num_attention_heads}, {"intermediate_size", &c->intermediate_size},
        {"decoder_hidden_size", &c->decoder_hidden_size}, {"decoder_num_hidden_layers", &c->decoder_num_hidden_layers},
        {"decoder_num_attention_heads", &c->decoder_num_attention_heads},
        {"decoder_intermediate_size", &c->decoder_intermediate_size},
        {"image_size", &c->image_size}, {"patch_size", &c->patch_size}, {"num_channels", &c->num_channels},
    };
    for (size_t k = 0; !rc && k < sizeof ints / sizeof ints[0]; k++) rc = json_int(root, ints[k].k, ints[k].p, err);
    if (!rc) rc = json_bool(root, "qkv_bias", &c->qkv_bias, err);
    if (!rc) rc = json_bool(root, "norm_pix_loss", &c->norm_pix_loss, err);
    if (!rc) rc = json_float(root, "layer_norm_eps", &c->layer_norm_eps, err);
    if (!rc) rc = json_float(root, "mask_ratio", &c->mask_ratio, err);
    if (!rc) rc = json_float(root, "initializer_range", &c->initializer_range, err);
    cJSON_Delete(root);
    if (!rc) rc = config_validate(c, err);
    return rc;
}

int config_load(const char *path, mae_config *c, sx_err *err) {
    char *text = sx_read_text(path, 1 << 20, err);  /* config files are small */
    if (!text) return -1;
    sx_err inner;
    int rc = config_parse_json(text, c, &inner);
    free(text);
    if (rc) return sx_fail(err, "%s: %s", path, inner.msg);
    return 0;
}

int config_resolve(const char *name_or_path, mae_config *c, sx_err *err) {
    struct stat st;
    if (stat(name_or_path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            char p[4096];
            snprintf(p, sizeof p, "%s/config.json", name_or_path);
            return config_load(p, c, err);
        }
        return config_load(name_or_path, c, err);
    }
    if (strchr(name_or_path, '/') || strstr(name_or_path, ".json"))
        return sx_fail(err, "%s: no such file", name_or_path);
    return config_preset(name_or_path, c, err);
}

cJSON *config_to_json(const mae_config *c, int vit) {
    cJSON *r = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(vit ? "ViTForImageClassification" : "ViTMAEForPreTraining"));
    cJSON_AddStringToObject(r, "model_type", vit ? "vit" : "vit_mae");
    const json_number sizes[] = {{"hidden_size", c->hidden_size}, {"num_hidden_layers", c->num_hidden_layers},
                                 {"num_attention_heads", c->num_attention_heads},
                                 {"intermediate_size", c->intermediate_size}};
    json_add_numbers(r, sizes, sizeof sizes / sizeof *sizes);
    cJSON_AddStringToObject(r, "hidden_act", "gelu");
    const json_number rest[] = {{"hidden_dropout_prob", 0.0}, {"attention_probs_dropout_prob", 0.0},
                                {"initializer_range", c->initializer_range}, {"layer_norm_eps", c->layer_norm_eps},
                                {"image_size", c->image_size}, {"patch_size", c->patch_size},
                                {"num_channels", c->num_channels}};
    json_add_numbers(r, rest, sizeof rest / sizeof *rest);
    cJSON_AddBoolToObject(r, "qkv_bias", c->qkv_bias);
    if (vit) {
        cJSON_AddNumberToObject(r, "encoder_stride", c->patch_size);
    } else {
        const json_number dec[] = {{"decoder_num_attention_heads", c->decoder_num_attention_heads},
                                   {"decoder_hidden_size", c->decoder_hidden_size},
                                   {"decoder_num_hidden_layers", c->decoder_num_hidden_layers},
                                   {"decoder_intermediate_size", c->decoder_intermediate_size},
                                   {"mask_ratio", c->mask_ratio}};
        json_add_numbers(r, dec, sizeof dec / sizeof *dec);
        cJSON_AddBoolToObject(r, "norm_pix_loss", c->norm_pix_loss);
    }
    cJSON_AddStringToObject(r, "torch_dtype", "float32");
    return r;
}

int config_save(const char *path, const mae_config *c, sx_err *err) {
    cJSON *r = config_to_json(c, 0);
    int rc = json_write_file(path, r, err);
    cJSON_Delete(r);
    return rc;
}
