/* test_checkpoint.c: HF-layout checkpoints: round trip, F16/BF16 reading,
 * and clear errors (naming the tensor) for malformed or mismatched files. */
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "testlib.h"
#include "nn/alloc_hook.h"
#include <stdlib.h>
#include <string.h>

TEST(test_checkpoint_roundtrip_bit_identical) {
    sx_err err;
    mae_config c = tl_toy_config(32);
    c.norm_pix_loss = 1; c.mask_ratio = 0.6; c.layer_norm_eps = 1e-6;
    mae_model a, b;
    CHECK(mae_build(&a, &c, &err) == 0);
    mae_init_weights(&a, 3);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/ck", tl_tmpdir());
    CHECKF(checkpoint_save(dir, &a, &err) == 0, "%s", err.msg);
    CHECKF(checkpoint_load(dir, &b, &err) == 0, "%s", err.msg);
    CHECK(b.n_floats == a.n_floats);
    CHECK(memcmp(a.params, b.params, a.n_floats * sizeof(float)) == 0);
    CHECK(b.cfg.norm_pix_loss == 1 && b.cfg.mask_ratio == 0.6 && b.cfg.layer_norm_eps == 1e-6);
    CHECK(b.cfg.hidden_size == 32 && b.cfg.decoder_hidden_size == 16 && b.cfg.decoder_num_hidden_layers == 1);
    CHECK(b.cfg.intermediate_size == 64 && b.cfg.decoder_intermediate_size == 32 && b.cfg.patch_size == 8);
    // HF names and shapes, as transformers expects them
    const param_info *q = mae_find_param(&b, "vit.encoder.layer.1.attention.attention.value.weight");
    CHECK(q && q->ndim == 2 && q->shape[0] == 32 && q->shape[1] == 32);
    const param_info *pw = mae_find_param(&b, "vit.embeddings.patch_embeddings.projection.weight");
    CHECK(pw && pw->ndim == 4 && pw->shape[1] == 3 && pw->shape[2] == 8);
    CHECK(mae_find_param(&b, "decoder.decoder_pred.bias") && mae_find_param(&b, "decoder.decoder_pos_embed"));
    mae_free(&a);
    mae_free(&b);
}

TEST(test_checkpoint_without_qkv_bias) {
    sx_err err;
    mae_config c = tl_toy_config(32);
    c.qkv_bias = 0;
    mae_model a, b;
    CHECK(mae_build(&a, &c, &err) == 0);
    mae_init_weights(&a, 1);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/nobias", tl_tmpdir());
    CHECK(checkpoint_save(dir, &a, &err) == 0);
    snprintf(dir + strlen(dir), 64, "/model.safetensors");
    st_file f;
    CHECK(st_open(dir, &f, &err) == 0);
    CHECK(st_find(&f, "vit.encoder.layer.0.attention.attention.query.bias") == NULL);
    CHECK(st_find(&f, "vit.encoder.layer.0.attention.output.dense.bias") != NULL);
    st_close(&f);
    dir[strlen(dir) - strlen("/model.safetensors")] = 0;
    CHECK(checkpoint_load(dir, &b, &err) == 0);
    CHECK(b.cfg.qkv_bias == 0 && memcmp(a.params, b.params, a.n_floats * 4) == 0);
    mae_free(&a);
    mae_free(&b);
}

TEST(test_checkpoint_reads_f16_bf16) {
    sx_err err;
    mae_model ref, h;
    CHECK(checkpoint_load("tests/fixtures/twin_pix", &ref, &err) == 0);
    CHECK(mae_build(&h, &ref.cfg, &err) == 0);
    const char *files[2] = {"tests/fixtures/twin_pix/model_f16.safetensors", "tests/fixtures/twin_pix/model_bf16.safetensors"};
    const double tol[2] = {1.0 / 1024, 1.0 / 128};  // relative precision of each format
    for (int k = 0; k < 2; k++) {
        CHECKF(checkpoint_load_weights(&h, files[k], &err) == 0, "%s", err.msg);
        double worst = 0;
        for (size_t i = 0; i < ref.n_floats; i++) {
            double a = ref.params[i], b = h.params[i];
            if (fabs(a) < 1e-4) continue;  // f16 subnormals lose relative precision
            double e = fabs(a - b) / fabs(a);
            if (e > worst) worst = e;
        }
        CHECKF(worst <= tol[k], "%s: worst relative rounding error %.3g", files[k], worst);
        CHECK(worst > 0);  // it really was a lower precision file
    }
    mae_free(&ref);
    mae_free(&h);
}

TEST(test_half_conversions) {
    CHECK(sx_f16_to_f32(0x3c00) == 1.0f);
    CHECK(sx_f16_to_f32(0xc000) == -2.0f);
    CHECK(sx_f16_to_f32(0x0001) == ldexpf(1.0f, -24));  // smallest subnormal
    CHECK(sx_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(isinf(sx_f16_to_f32(0x7c00)));
    CHECK(sx_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(sx_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(sx_f32_to_bf16(1.00390625f) == 0x3f80);  // tie rounds to even
    CHECK(sx_f32_to_bf16(1.01171875f) == 0x3f82);  // tie rounds to even (up)
}

static void write_st(const char *path, const char *header, size_t data_bytes) {
    size_t h = strlen(header);
    uint8_t *buf = calloc(8 + h + data_bytes, 1);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    tl_write_file(path, buf, 8 + h + data_bytes);
    free(buf);
}

TEST(test_safetensors_rejects_malformed) {
    char p[512];
    sx_err err;
    st_file f;
    snprintf(p, sizeof p, "%s/x.safetensors", tl_tmpdir());
    tl_write_file(p, "abc", 3);
    CHECK(st_open(p, &f, &err) == -1 && strstr(err.msg, "too short"));
    uint8_t huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    tl_write_file(p, huge, 16);
    CHECKF(st_open(p, &f, &err) == -1 && strstr(err.msg, "header length") && strstr(err.msg, "(16 bytes)"), "%s", err.msg);
    write_st(p, "{not json", 0);
    CHECK(st_open(p, &f, &err) == -1 && strstr(err.msg, "JSON"));
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8);  // truncated data
    CHECK(st_open(p, &f, &err) == -1 && strstr(err.msg, "'w'"));
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16);  // size mismatch
    CHECK(st_open(p, &f, &err) == -1 && strstr(err.msg, "'w'"));
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4);
    CHECK(st_open(p, &f, &err) == -1 && strstr(err.msg, "shape"));
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4);
    CHECK(st_open(p, &f, &err) == -1);
    write_st(p, "{\"w\":{\"dtype\":\"Q9\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    CHECK(st_open(p, &f, &err) == -1 && strstr(err.msg, "dtype"));
    write_st(p, "{\"w\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8);
    CHECK(st_open(p, &f, &err) == 0);
    float x;
    CHECK(st_read_f32(&f, st_find(&f, "w"), &x, &err) == -1 && strstr(err.msg, "I64"));
    st_close(&f);
    CHECK(st_open("/nonexistent/model.safetensors", &f, &err) == -1 && strstr(err.msg, "/nonexistent"));
}

TEST(test_checkpoint_mismatch_names_tensor) {
    sx_err err;
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/mm", tl_tmpdir());
    mae_config c = tl_toy_config(32);
    mae_model a, b;
    CHECK(mae_build(&a, &c, &err) == 0);
    mae_init_weights(&a, 2);
    CHECK(checkpoint_save(dir, &a, &err) == 0);
    // a config that disagrees with the weights: the error names the tensor and both shapes
    mae_config c2 = c;
    c2.intermediate_size = 48;
    CHECK(mae_build(&b, &c2, &err) == 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(checkpoint_load_weights(&b, path, &err) == -1);
    CHECKF(strstr(err.msg, "vit.encoder.layer.0.intermediate.dense.weight") && strstr(err.msg, "[64, 32]") &&
           strstr(err.msg, "[48, 32]"), "%s", err.msg);
    mae_free(&b);
    // more layers than stored: the first missing tensor is named
    c2 = c;
    c2.num_hidden_layers = 3;
    CHECK(mae_build(&b, &c2, &err) == 0);
    CHECK(checkpoint_load_weights(&b, path, &err) == -1);
    CHECKF(strstr(err.msg, "vit.encoder.layer.2.") && strstr(err.msg, "missing"), "%s", err.msg);
    mae_free(&b);
    // a truncated copy of a good file is refused, never read out of bounds
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    tl_write_file(path, buf, (size_t)n / 2);
    free(buf);
    CHECK(checkpoint_load(dir, &b, &err) == -1 && strstr(err.msg, "outside the file"));
    mae_free(&a);
}

TEST(test_config_parse_and_validate) {
    sx_err err;
    mae_config c;
    CHECK(config_parse_json("{\"hidden_size\": 1024, \"num_hidden_layers\": 24, \"num_attention_heads\": 16,"
                            "\"intermediate_size\": 4096, \"image_size\": [224, 224], \"norm_pix_loss\": true}", &c, &err) == 0);
    CHECK(c.hidden_size == 1024 && c.image_size == 224 && c.norm_pix_loss == 1 && c.decoder_hidden_size == 512);
    CHECK(c.layer_norm_eps == 1e-12 && c.mask_ratio == 0.75);
    CHECK(config_len_keep(&c) == 49);
    CHECK(config_parse_json("{\"hidden_size\": 100, \"num_attention_heads\": 16}", &c, &err) == -1 && strstr(err.msg, "multiple"));
    CHECK(config_parse_json("{\"hidden_act\": \"relu\"}", &c, &err) == -1 && strstr(err.msg, "hidden_act"));
    CHECK(config_parse_json("{\"image_size\": 225}", &c, &err) == -1 && strstr(err.msg, "patch_size"));
    CHECK(config_parse_json("{\"mask_ratio\": 1.0}", &c, &err) == -1);
    CHECK(config_parse_json("[1, 2]", &c, &err) == -1);
    CHECK(config_parse_json("{\"hidden_size\": 7.5}", &c, &err) == -1 && strstr(err.msg, "integer"));
    CHECK(config_preset("large", &c, &err) == 0 && c.hidden_size == 1024 && c.num_hidden_layers == 24);
    CHECK(config_preset("huge", &c, &err) == 0 && c.patch_size == 14 && config_num_patches(&c) == 256);
    CHECK(config_preset("gigantic", &c, &err) == -1 && strstr(err.msg, "gigantic"));
}

/* A toy MAE (seed) saved as tl_tmpdir()/name; its directory in dir. 0 or -1. */
static int save_toy(mae_model *a, const char *name, uint64_t seed, char *dir, size_t cap) {
    sx_err err;
    mae_config c = tl_toy_config(32);
    if (mae_build(a, &c, &err)) return -1;
    mae_init_weights(a, seed);
    snprintf(dir, cap, "%s/%s", tl_tmpdir(), name);
    return checkpoint_save(dir, a, &err);
}

TEST(test_safetensors_offsets_must_tile) {
    char p[512];
    sx_err err;
    st_file f;
    snprintf(p, sizeof p, "%s/t.safetensors", tl_tmpdir());
    const char *A = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":";
    char h[512];
    snprintf(h, sizeof h, "{%s[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", A);
    write_st(p, h, 12);  // exact tiling: accepted (any key order)
    CHECKF(st_open(p, &f, &err) == 0, "%s", err.msg);
    st_close(&f);
    snprintf(h, sizeof h, "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},%s[0,8]}}", A);
    write_st(p, h, 12);
    CHECKF(st_open(p, &f, &err) == 0, "%s", err.msg);
    st_close(&f);
    snprintf(h, sizeof h, "{%s[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", A);
    write_st(p, h, 16);  // a gap
    CHECKF(st_open(p, &f, &err) == -1 && strstr(err.msg, "gap") && strstr(err.msg, "'b'"), "%s", err.msg);
    snprintf(h, sizeof h, "{%s[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", A);
    write_st(p, h, 8);   // an overlap
    CHECKF(st_open(p, &f, &err) == -1 && strstr(err.msg, "overlaps"), "%s", err.msg);
    snprintf(h, sizeof h, "{%s[0,8]}}", A);
    write_st(p, h, 9);   // a trailing byte
    CHECKF(st_open(p, &f, &err) == -1 && strstr(err.msg, "1 trailing"), "%s", err.msg);
    snprintf(h, sizeof h, "{%s[4,12]}}", A);
    write_st(p, h, 12);  // data not starting at 0
    CHECKF(st_open(p, &f, &err) == -1 && strstr(err.msg, "gap"), "%s", err.msg);
    write_st(p, "{}", 4);  // no tensors, but data
    CHECKF(st_open(p, &f, &err) == -1 && strstr(err.msg, "no tensors"), "%s", err.msg);

    // a real checkpoint whose header length is 5 bytes short (issue 21 #10) is refused
    mae_model a, b;
    char dir[512], path[600];
    CHECK(save_toy(&a, "short", 4, dir, sizeof dir) == 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t n;
    uint8_t *buf = tl_read_file(path, &n);
    CHECK(buf && n > 8);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | buf[i];
    hl -= 5;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(hl >> (8 * i));
    tl_write_file(path, buf, n);
    free(buf);
    CHECK(checkpoint_load(dir, &b, &err) == -1);
    CHECK(checkpoint_load_inference(dir, &b, &err) == -1);
    mae_free(&a);
}

TEST(test_checkpoint_refuses_non_finite_weights) {
    sx_err err;
    mae_config c = tl_toy_config(32);
    mae_model a, b;
    CHECK(mae_build(&a, &c, &err) == 0);
    mae_init_weights(&a, 5);
    const param_info *pi = mae_find_param(&a, "decoder.decoder_pred.weight");
    CHECK(pi != NULL);
    float *w = a.params + pi->offset;
    w[0] = NAN; w[7] = INFINITY; w[pi->numel - 1] = -INFINITY;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/nan", tl_tmpdir());
    CHECK(checkpoint_save(dir, &a, &err) == 0);
    CHECK(checkpoint_load(dir, &b, &err) == -1);
    CHECKF(strstr(err.msg, "model.safetensors: tensor decoder.decoder_pred.weight holds 3 non-finite values"), "%s",
           err.msg);
    CHECK(checkpoint_load_inference(dir, &b, &err) == -1 && strstr(err.msg, "3 non-finite"));
    // an encoder-only load does not read the decoder: the NaNs there do not matter
    CHECKF(checkpoint_load_encoder_inference(dir, &b, &err) == 0, "%s", err.msg);
    mae_free(&b);
    w[0] = w[7] = w[pi->numel - 1] = 0.5f;
    CHECK(checkpoint_save(dir, &a, &err) == 0);
    CHECKF(checkpoint_load(dir, &b, &err) == 0, "%s", err.msg);
    mae_free(&b);
    mae_free(&a);
}

/* A config.json that disagrees with a small checkpoint ({} = HF defaults, a
 * ViT-B MAE of ~112 M floats) fails on the first tensor's shape before any
 * memory sized from the config is allocated (issue 21 #11). */
TEST(test_checkpoint_checks_shapes_before_allocating) {
    if (!alloc_hook_available()) TEST_SKIP("needs the ASan malloc hooks");
    sx_err err;
    mae_config c = tl_toy_config(32);
    mae_model a, b;
    char dir[512], path[600];
    CHECK(save_toy(&a, "empty_cfg", 6, dir, sizeof dir) == 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(tl_write_text(path, "{}") == 0);
    int (*loaders[4])(const char *, mae_model *, sx_err *) = {checkpoint_load, checkpoint_load_inference,
                                                              checkpoint_load_encoder, checkpoint_load_encoder_inference};
    for (int k = 0; k < 4; k++) {
        alloc_hook_begin();
        int rc = loaders[k](dir, &b, &err);
        alloc_count n = alloc_hook_end();
        CHECK(rc == -1);
        CHECKF(strstr(err.msg, "has shape") && strstr(err.msg, "config.json implies"), "%s", err.msg);
        CHECKF(n.max_size < (4u << 20), "loader %d allocated %zu bytes at once", k, n.max_size);
    }
    // the matching config loads, and its table is what the model is built with
    param_info *info;
    int nt;
    CHECK(mae_param_table(&c, &info, &nt, &err) == 0);
    CHECK(nt == a.n_info);
    for (int i = 0; i < nt && i < a.n_info; i++)
        CHECK(!strcmp(info[i].name, a.info[i].name) && info[i].offset == a.info[i].offset && info[i].numel == a.info[i].numel);
    free(info);
    mae_free(&a);
}

/* Inference loads allocate no gradients and give the same forward. */
TEST(test_checkpoint_load_inference_has_no_grads) {
    sx_err err;
    mae_config c = tl_toy_config(32);
    mae_model a, tr, inf;
    char dir[512];
    CHECK(save_toy(&a, "inf", 7, dir, sizeof dir) == 0);
    CHECKF(checkpoint_load(dir, &tr, &err) == 0, "%s", err.msg);
    CHECKF(checkpoint_load_inference(dir, &inf, &err) == 0, "%s", err.msg);
    CHECK(tr.grads != NULL && inf.grads == NULL && inf.inference == 1 && tr.inference == 0);
    int B = 2, N = config_num_patches(&c), S = c.image_size;
    float *px = malloc(sizeof(float) * (size_t)B * 3 * S * S), *noise = malloc(sizeof(float) * (size_t)B * N);
    for (int i = 0; i < B * 3 * S * S; i++) px[i] = (float)sin(i * 0.37);
    for (int i = 0; i < B * N; i++) noise[i] = (float)((i * 7919) % 101) / 101.0f;
    CHECK(mae_forward(&tr, px, noise, B, &err) == 0 && mae_forward(&inf, px, noise, B, &err) == 0);
    CHECK(tr.loss == inf.loss && isfinite(tr.loss));
    mae_zero_grad(&inf);   // no-ops on an inference model
    mae_backward(&inf);
    mae_free(&inf);
    CHECKF(checkpoint_load_encoder_inference(dir, &inf, &err) == 0, "%s", err.msg);
    CHECK(inf.grads == NULL && inf.encoder_only == 1 && inf.cfg.mask_ratio == 0.0);
    free(px); free(noise);
    mae_free(&inf); mae_free(&tr); mae_free(&a);
}
