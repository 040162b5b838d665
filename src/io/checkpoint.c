/* checkpoint.c: HF-compatible model directories. */
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int checkpoint_save(const char *dir, const mae_model *m, sx_err *err) {
    if (mkdir(dir, 0755) && errno != EEXIST) return sx_fail(err, "%s: cannot create directory (%s)", dir, strerror(errno));
    st_entry *e = sx_calloc((size_t)m->n_info, sizeof *e);
    int n = 0;
    for (int i = 0; i < m->n_info; i++) {
        const param_info *pi = &m->info[i];
        if (pi->flags & PARAM_ABSENT) continue;
        e[n].name = pi->name;
        e[n].data = m->params + pi->offset;
        e[n].ndim = pi->ndim;
        for (int d = 0; d < pi->ndim; d++) e[n].shape[d] = pi->shape[d];
        n++;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *k[] = {"format"}, *v[] = {"pt"};
    int rc = st_write_f32(path, e, n, k, v, 1, err);
    free(e);
    if (rc) return rc;
    char cpath[4200];
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    return config_save(cpath, &m->cfg, err);   /* atomic (json_write_file) */
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && o < n; d++) o += (size_t)snprintf(buf + o, n - o, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* Check the file's header against the tensor table (every tensor present
 * with its shape; frozen ones may be missing) before anything is read or
 * allocated. *regenerate is set when a frozen tensor is missing; *used
 * counts the table's tensors the file has. */
static int check_table(const st_file *f, const param_info *info, int n, int encoder_only, const char *path,
                       int *regenerate, int *used, sx_err *err) {
    *regenerate = *used = 0;
    for (int i = 0; i < n; i++) {
        const param_info *pi = &info[i];
        if (pi->flags & PARAM_ABSENT) continue;
        const st_tensor *t = st_find(f, pi->name);
        if (encoder_only && !strncmp(pi->name, "decoder.", 8)) {  /* a ViT checkpoint has no decoder */
            *used += t != NULL;                                    /* an MAE one has: known, not needed */
            continue;
        }
        if (!t) {
            if (pi->flags & PARAM_FROZEN) { *regenerate = 1; continue; }
            return sx_fail(err, "%s: tensor '%s' is missing (does config.json match these weights?)", path, pi->name);
        }
        (*used)++;
        int same = t->ndim == pi->ndim;
        for (int d = 0; same && d < pi->ndim; d++) same = t->shape[d] == pi->shape[d];
        if (!same) {
            char want[96], got[96];
            shape_str(want, sizeof want, pi->ndim, pi->shape);
            shape_str(got, sizeof got, t->ndim, t->shape);
            return sx_fail(err, "%s: tensor '%s' has shape %s, config.json implies %s", path, pi->name, got, want);
        }
    }
    return 0;
}

/* Read the checked tensors of f into m (check_table passed on m's table). */
static int read_weights(mae_model *m, const st_file *f, const char *path, int regenerate, int used, sx_err *err) {
    for (int i = 0; i < m->n_info; i++) {
        const param_info *pi = &m->info[i];
        if ((pi->flags & PARAM_ABSENT) || (m->encoder_only && !strncmp(pi->name, "decoder.", 8))) continue;
        const st_tensor *t = st_find(f, pi->name);
        if (t && st_read_f32(f, t, m->params + pi->offset, err)) return -1;
    }
    int heads = 0;   /* a classifier's head is read by classifier.c, not here */
    for (int i = 0; i < f->n; i++) heads += !strncmp(f->tensors[i].name, "classifier.", 11);
    if (used + heads < f->n)
        fprintf(stderr, "skelex: note: %s: %d tensor(s) not part of ViTMAEForPreTraining were ignored\n", path,
                f->n - used - heads);
    if (regenerate) {
        int g = config_grid(&m->cfg);
        if (!st_find(f, "vit.embeddings.position_embeddings")) mae_sincos_pos_embed(m->p.pos_embed, m->cfg.hidden_size, g);
        if (!st_find(f, "decoder.decoder_pos_embed")) mae_sincos_pos_embed(m->p.dec_pos_embed, m->cfg.decoder_hidden_size, g);
    }
    mae_weights_changed(m);   /* bf16 copies (nn/model.h) */
    return 0;
}

int checkpoint_load_weights(mae_model *m, const char *path, sx_err *err) {
    st_file f;
    if (st_open(path, &f, err)) return -1;
    int regenerate, used;
    int rc = check_table(&f, m->info, m->n_info, m->encoder_only, path, &regenerate, &used, err);
    if (!rc) rc = read_weights(m, &f, path, regenerate, used, err);
    st_close(&f);
    return rc;
}

/* The one loader: config.json, then the weights' header checked against the
 * tensor table the config implies, and only then the model is built (its
 * size comes from the config, which may be wrong) and the data read. */
static int load_dir(const char *dir, mae_model *m, int encoder_only, int inference, sx_err *err) {
    memset(m, 0, sizeof *m);
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode))
        return sx_fail(err, "%s: not a model directory (expected config.json + model.safetensors)", dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    mae_config cfg;
    if (config_load(path, &cfg, err)) return -1;
    if (encoder_only) cfg.mask_ratio = 0.0;
    param_info *info;
    int n, regenerate, used;
    if (mae_param_table(&cfg, &info, &n, err)) return -1;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_file f;
    if (st_open(path, &f, err)) { free(info); return -1; }
    int rc = check_table(&f, info, n, encoder_only, path, &regenerate, &used, err);
    free(info);
    if (!rc) rc = inference ? mae_build_inference(m, &cfg, err) : mae_build(m, &cfg, err);
    if (!rc) {
        m->encoder_only = encoder_only;
        if ((rc = read_weights(m, &f, path, regenerate, used, err))) mae_free(m);
    }
    st_close(&f);
    return rc;
}

int checkpoint_load(const char *dir, mae_model *m, sx_err *err) { return load_dir(dir, m, 0, 0, err); }
int checkpoint_load_inference(const char *dir, mae_model *m, sx_err *err) { return load_dir(dir, m, 0, 1, err); }
int checkpoint_load_encoder(const char *dir, mae_model *m, sx_err *err) { return load_dir(dir, m, 1, 0, err); }
int checkpoint_load_encoder_inference(const char *dir, mae_model *m, sx_err *err) { return load_dir(dir, m, 1, 1, err); }
