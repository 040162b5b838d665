/* heads.c: head layouts (parse, check, write) and the masked multi-head loss. */
#include "adapt/heads.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HEADS_MAX_OUT 100000

void heads_free(head_layout *L) {
    if (!L) return;
    for (int j = 0; j < L->n_out && L->names; j++) free(L->names[j]);
    free(L->names);
    for (int g = 0; g < L->n_groups && L->groups; g++) { free(L->groups[g].name); free(L->groups[g].outputs); }
    free(L->groups);
    free(L->group_of);
    memset(L, 0, sizeof *L);
}

int heads_output_index(const head_layout *L, const char *name) {
    for (int j = 0; j < L->n_out; j++)
        if (!strcmp(L->names[j], name)) return j;
    return -1;
}

int heads_group_index(const head_layout *L, const char *name) {
    for (int g = 0; g < L->n_groups; g++)
        if (!strcmp(L->groups[g].name, name)) return g;
    return -1;
}

/* The output names from "id2label" (object) or "outputs" (array). */
static int read_names(const cJSON *obj, const char *what, head_layout *L, sx_err *err) {
    const cJSON *id2 = cJSON_GetObjectItemCaseSensitive(obj, "id2label");
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(obj, "outputs");
    const cJSON *src = id2 ? id2 : outs;
    if (id2 && outs) return sx_fail(err, "%s: give the outputs as id2label or as outputs, not both", what);
    if (!src) return sx_fail(err, "%s: no id2label (or outputs): not a classifier layout", what);
    if (id2 ? !cJSON_IsObject(id2) : !cJSON_IsArray(outs))
        return sx_fail(err, "%s: %s must be %s", what, id2 ? "id2label" : "outputs", id2 ? "an object" : "an array");
    int n = cJSON_GetArraySize(src);
    if (n < 1 || n > HEADS_MAX_OUT) return sx_fail(err, "%s: %d outputs (1..%d allowed)", what, n, HEADS_MAX_OUT);
    L->names = sx_calloc((size_t)n, sizeof(char *));
    L->n_out = n;
    for (int j = 0; j < n; j++) {
        const cJSON *s;
        char key[16];
        snprintf(key, sizeof key, "%d", j);
        s = id2 ? cJSON_GetObjectItemCaseSensitive(id2, key) : cJSON_GetArrayItem(outs, j);
        if (!s) return sx_fail(err, "%s: id2label has no key \"%s\" (keys must be 0..%d)", what, key, n - 1);
        if (!cJSON_IsString(s) || !s->valuestring[0])
            return sx_fail(err, "%s: output %d: the name must be a non-empty string", what, j);
        L->names[j] = sx_strdup(s->valuestring);
        for (int i = 0; i < j; i++)
            if (!strcmp(L->names[i], L->names[j]))
                return sx_fail(err, "%s: output name \"%s\" appears twice (%d and %d)", what, L->names[j], i, j);
    }
    return 0;
}

static void add_group(head_layout *L, const char *name, head_kind kind, int n, const int *outputs) {
    head_group *g = &L->groups[L->n_groups++];
    g->name = sx_strdup(name);
    g->kind = kind;
    g->n = n;
    g->outputs = sx_malloc(sizeof(int) * (size_t)n);
    memcpy(g->outputs, outputs, sizeof(int) * (size_t)n);
}

static int derive_groups(const cJSON *obj, const char *what, head_layout *L, sx_err *err) {
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(obj, "problem_type");
    const char *p = cJSON_IsString(pt) ? pt->valuestring : "";
    if (!strcmp(p, "regression")) return sx_fail(err, "%s: a regression head has no groups", what);
    int *all = sx_malloc(sizeof(int) * (size_t)L->n_out);
    for (int j = 0; j < L->n_out; j++) all[j] = j;
    int multi = L->n_out == 1 || !strcmp(p, "multi_label_classification");
    L->groups = sx_calloc(1, sizeof(head_group));
    add_group(L, multi ? "labels" : "label", multi ? HEAD_SIGMOID : HEAD_SOFTMAX, L->n_out, all);
    free(all);
    return 0;
}

static int read_groups(const cJSON *gs, const char *what, head_layout *L, sx_err *err) {
    if (!cJSON_IsArray(gs) || cJSON_GetArraySize(gs) < 1) return sx_fail(err, "%s: groups must be a non-empty array", what);
    int ng = cJSON_GetArraySize(gs);
    if (ng > L->n_out) return sx_fail(err, "%s: %d groups for %d outputs", what, ng, L->n_out);
    L->groups = sx_calloc((size_t)ng, sizeof(head_group));
    int *idx = sx_malloc(sizeof(int) * (size_t)L->n_out), rc = 0;
    for (int j = 0; j < L->n_out; j++) L->group_of[j] = -1;
    for (int g = 0; g < ng && !rc; g++) {
        const cJSON *o = cJSON_GetArrayItem(gs, g);
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "name"), *kd = cJSON_GetObjectItemCaseSensitive(o, "kind");
        const cJSON *out = cJSON_GetObjectItemCaseSensitive(o, "outputs");
        if (!cJSON_IsObject(o)) { rc = sx_fail(err, "%s: group %d must be an object", what, g); break; }
        for (const cJSON *k = o->child; k; k = k->next)
            if (strcmp(k->string, "name") && strcmp(k->string, "kind") && strcmp(k->string, "outputs")) {
                rc = sx_fail(err, "%s: group %d: unknown key \"%s\" (name, kind, outputs)", what, g, k->string);
                break;
            }
        if (rc) break;
        if (!cJSON_IsString(nm) || !nm->valuestring[0]) { rc = sx_fail(err, "%s: group %d needs a name", what, g); break; }
        const char *name = nm->valuestring;
        if (heads_group_index(L, name) >= 0) { rc = sx_fail(err, "%s: group \"%s\" appears twice", what, name); break; }
        head_kind kind;
        if (cJSON_IsString(kd) && !strcmp(kd->valuestring, "sigmoid")) kind = HEAD_SIGMOID;
        else if (cJSON_IsString(kd) && !strcmp(kd->valuestring, "softmax")) kind = HEAD_SOFTMAX;
        else { rc = sx_fail(err, "%s: group \"%s\": kind must be \"sigmoid\" or \"softmax\"", what, name); break; }
        int n = cJSON_IsArray(out) ? cJSON_GetArraySize(out) : 0;
        if (n < (kind == HEAD_SOFTMAX ? 2 : 1)) {
            rc = sx_fail(err, "%s: group \"%s\": a %s group needs %s output names", what, name,
                         kind == HEAD_SOFTMAX ? "softmax" : "sigmoid", kind == HEAD_SOFTMAX ? "at least 2" : "at least 1");
            break;
        }
        if (n > L->n_out) { rc = sx_fail(err, "%s: group \"%s\" has more outputs than the head", what, name); break; }
        for (int i = 0; i < n && !rc; i++) {
            const cJSON *s = cJSON_GetArrayItem(out, i);
            int j = cJSON_IsString(s) ? heads_output_index(L, s->valuestring) : -1;
            if (j < 0)
                rc = sx_fail(err, "%s: group \"%s\": output %s is not in id2label", what, name,
                             cJSON_IsString(s) ? s->valuestring : "(not a string)");
            else if (L->group_of[j] == g)
                rc = sx_fail(err, "%s: group \"%s\" lists output \"%s\" twice", what, name, L->names[j]);
            else if (L->group_of[j] >= 0)
                rc = sx_fail(err, "%s: output \"%s\" is in two groups (\"%s\" and \"%s\")", what, L->names[j],
                             L->groups[L->group_of[j]].name, name);
            else { L->group_of[j] = g; idx[i] = j; }
        }
        if (!rc) add_group(L, name, kind, n, idx);
    }
    for (int j = 0; j < L->n_out && !rc; j++)
        if (L->group_of[j] < 0) rc = sx_fail(err, "%s: output \"%s\" is in no group", what, L->names[j]);
    free(idx);
    return rc;
}

int heads_from_json(const cJSON *obj, const char *what, head_layout *L, sx_err *err) {
    memset(L, 0, sizeof *L);
    if (!cJSON_IsObject(obj)) return sx_fail(err, "%s: not a JSON object", what);
    int rc = read_names(obj, what, L, err);
    if (!rc) {
        L->group_of = sx_malloc(sizeof(int) * (size_t)L->n_out);
        const cJSON *gs = cJSON_GetObjectItemCaseSensitive(obj, "groups");
        rc = gs ? read_groups(gs, what, L, err) : derive_groups(obj, what, L, err);
        if (!rc && !gs)
            for (int j = 0; j < L->n_out; j++) L->group_of[j] = 0;
    }
    if (rc) heads_free(L);
    return rc;
}

int heads_load(const char *path, head_layout *L, sx_err *err) {
    memset(L, 0, sizeof *L);
    char *text = sx_read_text(path, 1 << 22, err);
    if (!text) return -1;
    cJSON *r = cJSON_Parse(text);
    free(text);
    if (!r) return sx_fail(err, "%s: not valid JSON", path);
    int rc = heads_from_json(r, path, L, err);
    cJSON_Delete(r);
    return rc;
}

void heads_to_json(const head_layout *L, cJSON *obj) {
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "id2label");
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "label2id");
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "groups");
    cJSON *id2 = cJSON_AddObjectToObject(obj, "id2label"), *l2i = cJSON_AddObjectToObject(obj, "label2id");
    for (int j = 0; j < L->n_out; j++) {
        char key[16];
        snprintf(key, sizeof key, "%d", j);
        cJSON_AddStringToObject(id2, key, L->names[j]);
        cJSON_AddNumberToObject(l2i, L->names[j], j);
    }
    cJSON *gs = cJSON_AddArrayToObject(obj, "groups");
    for (int g = 0; g < L->n_groups; g++) {
        const head_group *hg = &L->groups[g];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", hg->name);
        cJSON_AddStringToObject(o, "kind", hg->kind == HEAD_SIGMOID ? "sigmoid" : "softmax");
        cJSON *out = cJSON_AddArrayToObject(o, "outputs");
        for (int i = 0; i < hg->n; i++) cJSON_AddItemToArray(out, cJSON_CreateString(L->names[hg->outputs[i]]));
        cJSON_AddItemToArray(gs, o);
    }
}

int heads_mark(const head_layout *L, int g, int j, float value, float *targets, uint8_t *known, sx_err *err) {
    if (g < 0 || g >= L->n_groups || j < 0 || j >= L->n_out || L->group_of[j] != g)
        return sx_fail(err, "output %d is not in group %d", j, g);
    const head_group *hg = &L->groups[g];
    if (hg->kind == HEAD_SIGMOID) {
        if (!(value >= 0 && value <= 1)) return sx_fail(err, "%s: a sigmoid target must be in [0, 1] (got %g)", L->names[j], value);
        targets[j] = value;
        known[j] = 1;
        return 0;
    }
    for (int i = 0; i < hg->n; i++) {
        targets[hg->outputs[i]] = hg->outputs[i] == j;
        known[hg->outputs[i]] = 1;
    }
    return 0;
}

/* ---- loss ---- */

static double softplus_neg_abs(double z) { return log1p(exp(-fabs(z))); }

static double sigmoid(double z) {
    if (z >= 0) return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

/* log-sum-exp and softmax over one group's outputs of one row (p: g->n). */
static double group_softmax(const head_group *g, const float *z, double *p) {
    double m = -INFINITY;
    for (int i = 0; i < g->n; i++) m = fmax(m, (double)z[g->outputs[i]]);
    double s = 0;
    for (int i = 0; i < g->n; i++) { p[i] = exp((double)z[g->outputs[i]] - m); s += p[i]; }
    for (int i = 0; i < g->n; i++) p[i] /= s;
    return m + log(s);
}

static int group_known(const head_group *g, const uint8_t *k) {
    for (int i = 0; i < g->n; i++)
        if (!k[g->outputs[i]]) return 0;
    return 1;
}

double heads_loss(const head_layout *L, const float *logits, const float *targets, const uint8_t *known, int B,
                  float *grad) {
    int n = L->n_out, maxg = 1;
    if (grad) memset(grad, 0, sizeof(float) * (size_t)B * n);
    for (int g = 0; g < L->n_groups; g++) maxg = L->groups[g].n > maxg ? L->groups[g].n : maxg;
    double *p = sx_malloc(sizeof(double) * (size_t)maxg), loss = 0;
    /* sigmoid outputs: one BCE term over every known entry */
    size_t n_sig = 0;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < n; j++) n_sig += known[(size_t)b * n + j] && L->groups[L->group_of[j]].kind == HEAD_SIGMOID;
    if (n_sig) {
        double s = 0;
        for (int b = 0; b < B; b++)
            for (int j = 0; j < n; j++) {
                size_t o = (size_t)b * n + j;
                if (!known[o] || L->groups[L->group_of[j]].kind != HEAD_SIGMOID) continue;
                double z = logits[o], t = targets[o];
                s += fmax(z, 0) - z * t + softplus_neg_abs(z);
                if (grad) grad[o] = (float)((sigmoid(z) - t) / (double)n_sig);
            }
        loss += s / (double)n_sig;
    }
    /* softmax groups: mean cross-entropy over the rows where the whole group is known */
    for (int gi = 0; gi < L->n_groups; gi++) {
        const head_group *g = &L->groups[gi];
        if (g->kind != HEAD_SOFTMAX) continue;
        int rows = 0;
        for (int b = 0; b < B; b++) rows += group_known(g, known + (size_t)b * n);
        if (!rows) continue;
        double s = 0;
        for (int b = 0; b < B; b++) {
            const float *z = logits + (size_t)b * n, *t = targets + (size_t)b * n;
            if (!group_known(g, known + (size_t)b * n)) continue;
            double lse = group_softmax(g, z, p), tsum = 0;
            for (int i = 0; i < g->n; i++) {
                double ti = t[g->outputs[i]];
                s -= ti * ((double)z[g->outputs[i]] - lse);
                tsum += ti;
            }
            if (grad)
                for (int i = 0; i < g->n; i++)
                    grad[(size_t)b * n + g->outputs[i]] = (float)((p[i] * tsum - t[g->outputs[i]]) / rows);
        }
        loss += s / rows;
    }
    free(p);
    return loss;
}

void heads_probs(const head_layout *L, const float *logits, int B, float *probs) {
    int n = L->n_out, maxg = 1;
    for (int g = 0; g < L->n_groups; g++) maxg = L->groups[g].n > maxg ? L->groups[g].n : maxg;
    double *p = sx_malloc(sizeof(double) * (size_t)maxg);
    for (int b = 0; b < B; b++)
        for (int gi = 0; gi < L->n_groups; gi++) {
            const head_group *g = &L->groups[gi];
            const float *z = logits + (size_t)b * n;
            float *o = probs + (size_t)b * n;
            if (g->kind == HEAD_SIGMOID)
                for (int i = 0; i < g->n; i++) o[g->outputs[i]] = (float)sigmoid(z[g->outputs[i]]);
            else {
                group_softmax(g, z, p);
                for (int i = 0; i < g->n; i++) o[g->outputs[i]] = (float)p[i];
            }
        }
    free(p);
}
