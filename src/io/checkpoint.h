/* checkpoint.h: a model directory = HF config.json + model.safetensors, with
 * exactly HF's tensor names and shapes, so it interoperates with transformers
 * (ViTMAEForPreTraining) in both directions. */
#ifndef SKELEX_CHECKPOINT_H
#define SKELEX_CHECKPOINT_H
#include "nn/model.h"

/* Create dir if needed; write config.json and model.safetensors atomically. */
int checkpoint_save(const char *dir, const mae_model *m, sx_err *err);

/* Build m from dir/config.json and load dir/model.safetensors, for
 * training (with gradients). The weights' header is checked against every
 * tensor the config implies (names, shapes) before memory sized from the
 * config is allocated; non-finite weights are refused, naming the tensor. */
int checkpoint_load(const char *dir, mae_model *m, sx_err *err);
/* The same for inference (info, reconstruct, errormap, eval): no gradient
 * buffers (mae_build_inference), half the memory. */
int checkpoint_load_inference(const char *dir, mae_model *m, sx_err *err);

/* Load weights from a safetensors file into an already built model. Every
 * stored tensor must be present with the right shape (the error names it);
 * F32/F16/BF16 are accepted. Missing position embeddings are regenerated. */
int checkpoint_load_weights(mae_model *m, const char *path, sx_err *err);

/* Open dir (an MAE, ViT or ViT classifier checkpoint) as an encoder-only
 * model with every patch visible (mask_ratio 0); decoder tensors, when
 * present, are not read. */
int checkpoint_load_encoder(const char *dir, mae_model *m, sx_err *err);
/* The same without gradients (features, probe, eval). */
int checkpoint_load_encoder_inference(const char *dir, mae_model *m, sx_err *err);

#endif
