/* multitask.c: loading a multi-head task (multitask.h). */
#include "data/multitask.h"
#include "core/json.h"
#include "data/task_spec.h"
#include "adapt/ior_crop.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MT_JSON_MAX (4u << 20)

int multitask_is(const char *task_json) {
    sx_err e;
    cJSON *r = sx_json_load(task_json, MT_JSON_MAX, &e);
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(r, "type");
    int is = cJSON_IsString(ty) && !strcmp(ty->valuestring, "multihead");
    cJSON_Delete(r);
    return is;
}

void multitask_free(multitask *mt) {
    if (!mt) return;
    free(mt->name);
    heads_free(&mt->L);
    for (size_t i = 0; i < mt->n && mt->boxes; i++) free(mt->boxes[i]);
    free(mt->boxes); free(mt->nbox); free(mt->targets); free(mt->known); free(mt->source);
    for (int k = 0; k < mt->n_sources && mt->source_names; k++) free(mt->source_names[k]);
    free(mt->source_names);
    task_free(&mt->view);
    memset(mt, 0, sizeof *mt);
}

int multitask_boxes_px(const multitask *mt, size_t i, int W, int H, pix_box *out, int cap) {
    int n = mt->nbox[i] < cap ? mt->nbox[i] : cap;
    ior_boxes_from_yolo(mt->boxes[i], n, W, H, out);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Growing sample table, keyed by path                                      */

typedef struct {
    multitask *mt;
    size_t cap;
    size_t *slot;      /* hash table of sample index + 1 (0 = empty) */
    size_t n_slot;
} table;

static uint64_t fnv(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void rehash(table *tb) {
    size_t ns = tb->n_slot ? tb->n_slot * 2 : 1024;
    free(tb->slot);
    tb->slot = sx_calloc(ns, sizeof(size_t));
    tb->n_slot = ns;
    for (size_t i = 0; i < tb->mt->view.n; i++) {
        size_t h = fnv(tb->mt->view.samples[i].path) & (ns - 1);
        while (tb->slot[h]) h = (h + 1) & (ns - 1);
        tb->slot[h] = i + 1;
    }
}

static void *grow(void *p, size_t n, size_t size) {
    void *q = realloc(p, n * size);
    if (!q) { free(p); return sx_calloc(n, size); }   /* sx_calloc aborts on exhaustion */
    return q;
}

/* The sample of path: existing, or new (masked everywhere). *fresh = 1 when new. */
static size_t sample_of(table *tb, const char *path, int *fresh) {
    multitask *mt = tb->mt;
    if ((mt->view.n + 1) * 2 > tb->n_slot) rehash(tb);
    size_t h = fnv(path) & (tb->n_slot - 1);
    while (tb->slot[h]) {
        size_t i = tb->slot[h] - 1;
        if (!strcmp(mt->view.samples[i].path, path)) { *fresh = 0; return i; }
        h = (h + 1) & (tb->n_slot - 1);
    }
    size_t i = mt->view.n, K = (size_t)mt->L.n_out;
    if (i == tb->cap) {
        tb->cap = tb->cap ? tb->cap * 2 : 1024;
        mt->view.samples = grow(mt->view.samples, tb->cap, sizeof(task_sample));
        mt->targets = grow(mt->targets, tb->cap * K, sizeof(float));
        mt->known = grow(mt->known, tb->cap * K, 1);
        mt->nbox = grow(mt->nbox, tb->cap, sizeof(int));
        mt->boxes = grow(mt->boxes, tb->cap, sizeof(norm_box *));
        mt->source = grow(mt->source, tb->cap, sizeof(int));
    }
    memset(mt->view.samples + i, 0, sizeof(task_sample));
    mt->view.samples[i].path = sx_strdup(path);
    memset(mt->targets + i * K, 0, K * sizeof(float));
    memset(mt->known + i * K, 0, K);
    mt->nbox[i] = 0;
    mt->boxes[i] = NULL;
    mt->source[i] = -1;
    mt->view.n++;
    tb->slot[h] = i + 1;
    *fresh = 1;
    return i;
}

/* ------------------------------------------------------------------------ */
/* One source                                                               */

/* The file name's stem up to the first occurrence of `before` (whole stem
 * when absent). */
static void name_before(const char *path, const char *before, char *out, size_t cap) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *e = strstr(b, before);
    if (!e) e = strrchr(b, '.');
    size_t len = e ? (size_t)(e - b) : strlen(b);
    if (len >= cap) len = cap - 1;
    memcpy(out, b, len);
    out[len] = 0;
}

/* An ordinary task from the object tobj ("patient_from": {"name_before": X}
 * taken out and returned in *before). */
static int load_source_task(const cJSON *tobj, const char *file, const char *root, unsigned flags, task *t,
                            char *before, size_t cap, sx_err *err) {
    cJSON *copy = cJSON_Duplicate(tobj, 1);
    before[0] = 0;
    cJSON *pf = cJSON_GetObjectItemCaseSensitive(copy, "patient_from");
    const cJSON *nb = cJSON_GetObjectItemCaseSensitive(pf, "name_before");
    if (cJSON_IsObject(pf) && cJSON_GetArraySize(pf) == 1 && cJSON_IsString(nb) && *nb->valuestring &&
        strlen(nb->valuestring) < cap) {
        snprintf(before, cap, "%s", nb->valuestring);
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "patient_from");
    }
    task_spec sp;
    int rc = task_spec_parse(copy, &sp, file, err);
    if (!rc) rc = samples_build(&sp, file, root, flags, t, err);
    else memset(t, 0, sizeof *t);
    task_spec_free(&sp);
    cJSON_Delete(copy);
    return rc;
}

static int check_source_keys(const cJSON *src, const char *file, int k, sx_err *err) {
    static const char *ok[] = {"group", "output", "class_outputs", "boxes", "task"};
    for (const cJSON *e = src->child; e; e = e->next) {
        int found = 0;
        for (size_t q = 0; q < sizeof ok / sizeof *ok; q++) found |= !strcmp(e->string, ok[q]);
        if (!found) return sx_fail(err, "%s: sources[%d]: unknown key '%s'", file, k, e->string);
    }
    return 0;
}

/* map[c] = the output of task class c for source k (sigmoid: the output for class 1, -1 for class 0). */
static int source_outputs(const multitask *mt, const cJSON *src, const task *t, const char *file, int k, int g,
                          int *map, sx_err *err) {
    const head_group *G = &mt->L.groups[g];
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(src, "output");
    const cJSON *co = cJSON_GetObjectItemCaseSensitive(src, "class_outputs");
    if (t->type == TASK_REGRESSION) return sx_fail(err, "%s: sources[%d]: a regression task cannot label a group", file, k);
    if (G->kind == HEAD_SIGMOID) {
        int j = cJSON_IsString(out) ? heads_output_index(&mt->L, out->valuestring) : -1;
        if (co || j < 0 || mt->L.group_of[j] != g)
            return sx_fail(err, "%s: sources[%d]: a sigmoid group needs \"output\" naming one of group '%s''s outputs",
                           file, k, G->name);
        if (t->n_classes != 2) return sx_fail(err, "%s: sources[%d]: a sigmoid output needs a binary task", file, k);
        map[0] = map[1] = j;
        return 0;
    }
    if (out || !cJSON_IsObject(co))
        return sx_fail(err, "%s: sources[%d]: a softmax group needs \"class_outputs\": {class: output}", file, k);
    for (const cJSON *e = co->child; e; e = e->next) {
        int c = -1;
        for (int q = 0; q < t->n_classes; q++)
            if (!strcmp(t->class_names[q], e->string)) c = q;
        if (c < 0) return sx_fail(err, "%s: sources[%d]: class_outputs: '%s' is not a class of the task", file, k, e->string);
        int j = cJSON_IsString(e) ? heads_output_index(&mt->L, e->valuestring) : -1;
        if (j < 0 || mt->L.group_of[j] != g)
            return sx_fail(err, "%s: sources[%d]: class_outputs['%s'] is not an output of group '%s'", file, k,
                           e->string, G->name);
        map[c] = j;
    }
    for (int c = 0; c < t->n_classes; c++)
        if (map[c] < 0) return sx_fail(err, "%s: sources[%d]: class_outputs misses class '%s'", file, k, t->class_names[c]);
    return 0;
}

int multitask_read_yolo(const char *dir, const char *image_path, norm_box *out, int cap, sx_err *err) {
    char stem[1024], file[8192];
    const char *b = strrchr(image_path, '/');
    snprintf(stem, sizeof stem, "%s", b ? b + 1 : image_path);
    char *dot = strrchr(stem, '.');
    if (dot) *dot = 0;
    if (snprintf(file, sizeof file, "%s/%s.txt", dir, stem) >= (int)sizeof file) return sx_fail(err, "%s: path too long", dir);
    struct stat st;
    if (stat(file, &st) != 0) return 0;   /* no file: no box */
    return boxes_read_yolo(file, out, cap, err);
}

static int read_boxes(multitask *mt, size_t i, const char *dir, const char *path, sx_err *err) {
    norm_box tmp[MT_MAX_BOXES];
    int n = multitask_read_yolo(dir, path, tmp, MT_MAX_BOXES, err);
    if (n < 0) return -1;
    free(mt->boxes[i]);
    mt->boxes[i] = n ? sx_malloc(sizeof(norm_box) * n) : NULL;
    if (n) memcpy(mt->boxes[i], tmp, sizeof(norm_box) * n);
    mt->nbox[i] = n;
    return 0;
}

static int add_source(multitask *mt, table *tb, const cJSON *src, const char *file, const char *root, unsigned flags,
                      int k, sx_err *err) {
    if (!cJSON_IsObject(src)) return sx_fail(err, "%s: sources[%d] must be an object", file, k);
    if (check_source_keys(src, file, k, err)) return -1;
    const cJSON *gj = cJSON_GetObjectItemCaseSensitive(src, "group"), *tj = cJSON_GetObjectItemCaseSensitive(src, "task");
    const cJSON *bx = cJSON_GetObjectItemCaseSensitive(src, "boxes");
    int g = cJSON_IsString(gj) ? heads_group_index(&mt->L, gj->valuestring) : -1;
    if (g < 0) return sx_fail(err, "%s: sources[%d]: \"group\" must name a group of the layout", file, k);
    if (!cJSON_IsObject(tj)) return sx_fail(err, "%s: sources[%d]: \"task\" must be an object (an ordinary task)", file, k);
    char boxdir[4200] = "";
    if (bx) {
        const cJSON *yd = cJSON_GetObjectItemCaseSensitive(bx, "yolo_dir");
        if (!cJSON_IsObject(bx) || cJSON_GetArraySize(bx) != 1 || !cJSON_IsString(yd) || !*yd->valuestring)
            return sx_fail(err, "%s: sources[%d]: \"boxes\" must be {\"yolo_dir\": DIR}", file, k);
        if (yd->valuestring[0] == '/' || !root || !*root) snprintf(boxdir, sizeof boxdir, "%s", yd->valuestring);
        else snprintf(boxdir, sizeof boxdir, "%s/%s", root, yd->valuestring);
        struct stat st;
        if (stat(boxdir, &st) || !S_ISDIR(st.st_mode)) return sx_fail(err, "%s: sources[%d]: no box folder %s", file, k, boxdir);
    }
    task t;
    char before[64];
    if (load_source_task(tj, file, root, flags, &t, before, sizeof before, err)) return -1;
    int *map = sx_malloc(sizeof(int) * (size_t)(t.n_classes > 2 ? t.n_classes : 2)), rc = 0;
    for (int c = 0; c < (t.n_classes > 2 ? t.n_classes : 2); c++) map[c] = -1;
    rc = source_outputs(mt, src, &t, file, k, g, map, err);
    mt->source_names[k] = sx_strdup(t.name);
    size_t K = (size_t)mt->L.n_out;
    for (size_t s = 0; s < t.n && !rc; s++) {
        const task_sample *ts = &t.samples[s];
        int fresh;
        size_t i = sample_of(tb, ts->path, &fresh);
        float *tg = mt->targets + i * K;
        uint8_t *kn = mt->known + i * K;
        float row_t[1024];
        uint8_t row_k[1024];
        if (K > 1024) { rc = sx_fail(err, "%s: more than 1024 outputs", file); break; }
        memset(row_k, 0, K);
        int sig = mt->L.groups[g].kind == HEAD_SIGMOID, j = map[ts->label];
        rc = heads_mark(&mt->L, g, j, sig ? (float)ts->label : 1.0f, row_t, row_k, err);
        for (size_t q = 0; q < K && !rc; q++) {
            if (!row_k[q]) continue;
            if (kn[q] && tg[q] != row_t[q])
                rc = sx_fail(err, "%s: sources[%d] gives %s a different '%s' than an earlier source", file, k,
                             task_rel_path(&t, s), mt->L.names[q]);
            tg[q] = row_t[q];
            kn[q] = 1;
        }
        if (fresh) {
            char pid[600];
            if (before[0]) name_before(ts->path, before, pid, sizeof pid - 16);
            else snprintf(pid, sizeof pid - 16, "%s", ts->patient);
            char full[700];
            snprintf(full, sizeof full, "s%d:%s", k, pid);
            mt->view.samples[i].patient = sx_strdup(full);
            mt->source[i] = k;
            mt->view.samples[i].label = ts->label;   /* the first source's class, for the strata */
        }
        if (!rc && boxdir[0]) rc = read_boxes(mt, i, boxdir, ts->path, err);
    }
    if (!rc && (before[0] || t.has_patients)) mt->view.has_patients = 1;
    free(map);
    task_free(&t);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The strata and the whole task                                            */

static int stratum_id(char ***names, int *n, const char *name) {
    for (int q = 0; q < *n; q++)
        if (!strcmp((*names)[q], name)) return q;
    *names = grow(*names, (size_t)*n + 1, sizeof(char *));
    (*names)[*n] = sx_strdup(name);
    return (*n)++;
}

/* label of every view sample := its stratum (multitask.h). */
static void make_strata(multitask *mt, const int *labels_all_sources) {
    const head_layout *L = &mt->L;
    int gall = -1;
    for (int g = 0; g < L->n_groups && gall < 0; g++)
        if (labels_all_sources[g]) gall = g;
    char **names = NULL;
    int n = 0;
    for (size_t i = 0; i < mt->view.n; i++) {
        char buf[600];
        const float *tg = mt->targets + i * L->n_out;
        const uint8_t *kn = mt->known + i * L->n_out;
        task_sample *s = &mt->view.samples[i];
        if (gall >= 0) {
            const head_group *G = &L->groups[gall];
            int j = G->outputs[0];
            if (!kn[j]) snprintf(buf, sizeof buf, "unknown");
            else if (G->kind == HEAD_SIGMOID) snprintf(buf, sizeof buf, "%s=%d", L->names[j], tg[j] >= 0.5f);
            else {
                for (int q = 1; q < G->n; q++)
                    if (tg[G->outputs[q]] > tg[j]) j = G->outputs[q];
                snprintf(buf, sizeof buf, "%s", L->names[j]);
            }
        } else
            snprintf(buf, sizeof buf, "%s:%d", mt->source_names[mt->source[i]], s->label);
        s->label = stratum_id(&names, &n, buf);
        s->target = s->label;
    }
    mt->view.class_names = names;
    mt->view.n_classes = n;
}

static int parse_root(multitask *mt, const cJSON *r, const char *file, sx_err *err) {
    static const char *ok[] = {"name", "description", "type", "outputs", "id2label", "groups", "sources"};
    for (const cJSON *e = r->child; e; e = e->next) {
        int found = 0;
        for (size_t q = 0; q < sizeof ok / sizeof *ok; q++) found |= !strcmp(e->string, ok[q]);
        if (!found) return sx_fail(err, "%s: unknown key '%s'", file, e->string);
    }
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(r, "name"), *ty = cJSON_GetObjectItemCaseSensitive(r, "type");
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(r, "sources");
    if (!cJSON_IsString(nm) || !*nm->valuestring) return sx_fail(err, "%s: \"name\" is required", file);
    if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "multihead"))
        return sx_fail(err, "%s: \"type\" must be \"multihead\"", file);
    if (!cJSON_IsArray(src) || cJSON_GetArraySize(src) < 1 || cJSON_GetArraySize(src) > 1000)
        return sx_fail(err, "%s: \"sources\" must be a non-empty array", file);
    if (heads_from_json(r, file, &mt->L, err)) return -1;
    mt->name = sx_strdup(nm->valuestring);
    return 0;
}

int multitask_load(const char *task_json, const char *data_root, unsigned flags, multitask *mt, sx_err *err) {
    memset(mt, 0, sizeof *mt);
    cJSON *r = sx_json_load(task_json, MT_JSON_MAX, err);
    if (!r) return -1;
    int rc = cJSON_IsObject(r) ? parse_root(mt, r, task_json, err) : sx_fail(err, "%s: not a JSON object", task_json);
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(r, "sources");
    table tb = {.mt = mt};
    int *labels = NULL;
    if (!rc) {
        mt->n_sources = cJSON_GetArraySize(src);
        mt->source_names = sx_calloc((size_t)mt->n_sources, sizeof(char *));
        labels = sx_calloc((size_t)mt->L.n_groups, sizeof(int));
        for (int g = 0; g < mt->L.n_groups; g++) labels[g] = 1;
        int k = 0;
        for (const cJSON *s = src->child; s && !rc; s = s->next, k++) {
            rc = add_source(mt, &tb, s, task_json, data_root, flags, k, err);
            const cJSON *gj = cJSON_GetObjectItemCaseSensitive(s, "group");
            int g = rc ? -1 : heads_group_index(&mt->L, gj->valuestring);
            for (int q = 0; q < mt->L.n_groups && !rc; q++)
                if (q != g) labels[q] = 0;   /* q is left out by source k (one group a source) */
        }
    }
    if (!rc && mt->view.n == 0) rc = sx_fail(err, "%s: the sources list no image", task_json);
    if (!rc) {
        mt->n = mt->view.n;
        mt->view.name = sx_strdup(mt->name);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "description");
        mt->view.description = sx_strdup(cJSON_IsString(d) ? d->valuestring : "");
        mt->view.data_root = sx_strdup(data_root ? data_root : "");
        mt->view.type = TASK_MULTICLASS;
        make_strata(mt, labels);
    }
    free(labels);
    free(tb.slot);
    cJSON_Delete(r);
    if (rc) {
        mt->n = mt->view.n;
        multitask_free(mt);
    }
    return rc;
}
