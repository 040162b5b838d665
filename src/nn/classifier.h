/* classifier.h: a ViT image classifier = the MAE encoder (every patch
 * visible) + a linear head on the final-LayerNorm CLS token, exactly HF's
 * ViTForImageClassification:  logits = classifier(layernorm(encoder(x))[:, 0]).
 *
 * Heads by task type (the loss each is trained with):
 *   binary      1 logit,  sigmoid, binary cross-entropy   (HF problem_type
 *               "multi_label_classification": BCEWithLogits on one label)
 *   multiclass,
 *   ordinal     K logits, softmax, cross-entropy           ("single_label_classification")
 *   regression  1 output, mean squared error on the target standardised with
 *               the training set's mean and SD             ("regression")
 * For regression the standardisation is folded into the saved head
 * (w' = sd * w, b' = sd * b + mean), so a saved model predicts the target in
 * its own units, in skelex and in transformers alike.
 *
 * Checkpoints: a directory with config.json (ViTConfig: model_type "vit",
 * architectures ["ViTForImageClassification"], id2label, label2id,
 * problem_type, and a "skelex" object with the task type and class names)
 * (multi-head: "groups" too, read back through heads.c; the config is
 * parsed strictly, core/json.h) and model.safetensors with vit.* (no decoder) + classifier.weight (n_out, D)
 * and classifier.bias (n_out).
 *
 * Not here: the training loop, data, splits (finetune.c). */
#ifndef SKELEX_CLASSIFIER_H
#define SKELEX_CLASSIFIER_H
#include "nn/model.h"
#include "data/task.h"

struct head_layout;   /* adapt/heads.h */

typedef struct {
    mae_model enc;          /* encoder-only, mask_ratio 0 */
    task_type type;
    int n_classes;          /* K; 1 for regression */
    char **class_names;     /* n_classes names (owned) */
    int n_out;              /* logits: K, or 1 for binary and regression */
    float *head_w, *head_b; /* (n_out, D), (n_out) */
    float *ghead_w, *ghead_b;
    float y_mean, y_sd;     /* regression: the head predicts (y - y_mean) / y_sd */
    float *class_weight;    /* NULL, or n_classes loss weights (owned; not saved) */
    struct head_layout *heads; /* NULL, or the head's groups (multi-head: n_out = heads->n_out; owned) */
    float *logits;          /* (B, n_out) of the last forward */
    int logits_cap;
} classifier;

/* From an MAE (ViTMAEForPreTraining) or ViT checkpoint's encoder, with a new
 * head initialised as HF does (normal, sd = initializer_range; bias 0), or
 * with cfg != NULL and dir == NULL from random initialisation (seed). An
 * existing classifier head in the checkpoint is ignored. */
int classifier_create(classifier *c, const char *dir, const mae_config *cfg, task_type type, int n_classes,
                      const char *const *class_names, uint64_t seed, sx_err *err);
/* A multi-head classifier: as classifier_create, with the head of L's
 * n_out (>= 2) outputs; c->heads gets a copy of L, class_names its output
 * names (type TASK_MULTICLASS). Saved with "groups" beside id2label
 * (heads_to_json) and "skelex": {"task_type": "multihead"}. */
int classifier_create_heads(classifier *c, const char *dir, const mae_config *cfg, const struct head_layout *L,
                            uint64_t seed, sx_err *err);
/* A saved classifier (classifier_save, or a transformers
 * ViTForImageClassification with the same head layout), for inference: the
 * encoder has no gradient buffers, and classifier_loss with grad_scale != 0
 * updates only the head's gradients. */
int classifier_load(classifier *c, const char *dir, sx_err *err);
/* config.json + model.safetensors, each written atomically; task_name may be NULL. */
int classifier_save(const classifier *c, const char *dir, const char *task_name, sx_err *err);
void classifier_free(classifier *c);

/* pixels (B,3,S,S) normalised -> c->logits (B, n_out). */
int classifier_forward(classifier *c, const float *pixels, int B, sx_err *err);

/* After classifier_forward: the mean loss over the batch for labels (class
 * index as float) or regression targets (own units); with class_weight,
 * each sample's loss is multiplied by its class's weight (the mean stays a
 * plain mean over the batch, so micro-batches still add up). With grad_scale != 0,
 * grad_scale x its gradients are accumulated into the head and the encoder
 * (call classifier_zero_grad first): 1 for a whole batch, Bm/B for a
 * micro-batch of Bm of a batch of B. */
float classifier_loss(classifier *c, const float *y, float grad_scale);
void classifier_zero_grad(classifier *c);
/* Multi-head classifiers, after classifier_forward: heads_loss over the
 * batch's targets / known (B, n_out); with grad_scale != 0, grad_scale x
 * its gradients are accumulated as classifier_loss does. */
double classifier_heads_loss(classifier *c, const float *targets, const uint8_t *known, float grad_scale);

/* Outputs of the last forward in the eval_set layout: prob (B x max(K,2)),
 * binary as (1-p, p); or pred (B) for regression in the target's units;
 * a multi-head classifier: heads_probs, prob (B x n_out).
 * Either pointer may be NULL when not wanted. */
void classifier_outputs(const classifier *c, double *prob, double *pred);

/* Layer id for layer-wise lr decay (BEiT/MAE fine-tuning): embeddings 0,
 * encoder block i -> i+1, final LayerNorm and head num_hidden_layers+1;
 * -1 for tensors that are not trained (decoder, frozen, absent). */
int classifier_layer_id(const classifier *c, const param_info *pi);

#endif
