/* heads.h: a classifier head partitioned into groups (the SKELEX multi-head
 * layout), described as data, and the masked multi-head loss.
 *
 * A layout names n_out outputs (the logits, in order) and partitions them
 * into groups: a "sigmoid" group is a set of independent yes/no outputs
 * (binary cross-entropy each), a "softmax" group is one categorical answer
 * over its >= 2 outputs (cross-entropy). Every output is in exactly one group.
 *
 * In a classifier's config.json the layout sits beside HF's id2label:
 *   "id2label": {"0": "abnormal", "1": "malignant", ...},
 *   "groups": [{"name": "abnormal", "kind": "sigmoid", "outputs": ["abnormal"]},
 *              {"name": "tumour", "kind": "softmax",
 *               "outputs": ["malignant", "intermediate", "benign", "no_tumour"]}, ...]
 * (transformers ignores the extra key). A task file may give the outputs as
 * an array instead: "outputs": ["abnormal", "malignant", ...].
 *
 * The loss of a batch, for logits z, targets t and a known-mask k, all (B, n_out):
 *   L = [sum over known sigmoid entries of BCE(z, t)] / (number of them)
 *     + sum over softmax groups g of
 *         [sum over rows where every output of g is known of CE_g] / (number of those rows)
 * with BCE(z, t) = max(z,0) - z t + log(1 + exp(-|z|)) and
 * CE_g = -sum_{j in g} t_j log softmax_g(z)_j (t one-hot, or a distribution).
 * A term with nothing known contributes 0 (and no gradient). Sigmoid targets
 * lie in [0,1]; entries that are not known are never read.
 *
 * Not here: the encoder and its training loop (nn/classifier.c, finetune.c). */
#ifndef SKELEX_HEADS_H
#define SKELEX_HEADS_H
#include "core/common.h"
#include <cjson/cJSON.h>

typedef enum { HEAD_SIGMOID, HEAD_SOFTMAX } head_kind;

typedef struct {
    char *name;
    head_kind kind;
    int n;            /* outputs in the group */
    int *outputs;     /* their indices, in the order the group lists them */
} head_group;

typedef struct head_layout {
    int n_out;
    char **names;     /* n_out output names (id2label order) */
    int n_groups;
    head_group *groups;
    int *group_of;    /* n_out: the group of each output */
} head_layout;

/* Parse a layout from a JSON object holding "groups" and either "id2label"
 * (keys "0".."n_out-1", every one present) or "outputs" (array of names).
 * Checks: output names non-empty and unique; group names non-empty and
 * unique; kind "sigmoid" or "softmax"; every group output names an output;
 * every output in exactly one group; softmax groups have >= 2 outputs,
 * sigmoid groups >= 1. Without "groups" (an ordinary classifier config) the
 * layout is derived from problem_type: one output or
 * "multi_label_classification" -> one sigmoid group "labels"; otherwise one
 * softmax group "label"; "regression" is refused. `what` names the source in
 * messages (a path). On failure *L is empty (heads_free-safe). */
int heads_from_json(const cJSON *obj, const char *what, head_layout *L, sx_err *err);
/* The same from a file (a config.json or a task file). */
int heads_load(const char *path, head_layout *L, sx_err *err);
/* Add (replacing any present) id2label, label2id and groups to obj. */
void heads_to_json(const head_layout *L, cJSON *obj);
void heads_free(head_layout *L);

/* Index of the output / group with this name, or -1. */
int heads_output_index(const head_layout *L, const char *name);
int heads_group_index(const head_layout *L, const char *name);

/* Record one label in a row of targets / known (n_out each): for a softmax
 * group, its answer is output j (every output of the group becomes known,
 * target 1 at j and 0 elsewhere); for a sigmoid output j, the value
 * (0..1). -1 with err when j is not in group g or the value is out of range. */
int heads_mark(const head_layout *L, int g, int j, float value, float *targets, uint8_t *known, sx_err *err);

/* The masked multi-head loss above of B rows; known[b*n_out+j] != 0 marks a
 * known entry. grad (B, n_out), when non-NULL, receives d(loss)/d(logits)
 * (0 where an entry takes no part). Computed in double. */
double heads_loss(const head_layout *L, const float *logits, const float *targets, const uint8_t *known, int B,
                  float *grad);

/* Probabilities per group: sigmoid of each sigmoid output, softmax within
 * each softmax group. probs is (B, n_out), may alias logits. */
void heads_probs(const head_layout *L, const float *logits, int B, float *probs);

#endif
