/* train.c: the pretraining loop and its run directory. */
#include "train/train.h"
#include "nn/team.h"
#include "io/checkpoint.h"
#include "data/data.h"
#include "nn/gemm.h"
#include "io/image.h"
#include "nn/optim.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "eval/viz.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void train_opts_default(train_opts *o) {
    *o = (train_opts){
        .config = "tiny", .batch = 32, .accum = 1, .epochs = 1.0, .blr = 1.5e-4, .lr = 0.0, .min_lr = 0.0,
        .warmup_steps = -1, .weight_decay = 0.05, .beta1 = 0.9, .beta2 = 0.95, .clip = 0.0, .mask_ratio = -1,
        .norm_pix_loss = -1, .threads = 0, .loader_threads = 2, .seed = 0, .save_every = 500, .log_every = 10,
        .panel_every = 500, .crop_min = 0.2, .crop_max = 1.0, .ratio_min = 3.0 / 4.0, .ratio_max = 4.0 / 3.0,
        .flip_prob = 0.5, .augment = 1,
    };
}

double train_lr_at(long step, long total, long warmup, double lr, double min_lr) {
    if (step < warmup) return lr * (double)step / (double)warmup;
    if (total <= warmup) return lr;
    double t = (double)(step - warmup) / (double)(total - warmup);
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + cos(M_PI * t));
}

/* ------------------------------------------------------------- stop signal */

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { (void)sig; g_stop = 1; }

/* ------------------------------------------------------------- run options */

static int save_run_json(const char *path, const train_opts *o, long total, sx_err *err) {
    cJSON *r = cJSON_CreateObject(), *d = cJSON_AddArrayToObject(r, "data");
    for (int i = 0; i < o->n_data; i++) cJSON_AddItemToArray(d, cJSON_CreateString(o->data[i]));
    cJSON_AddNumberToObject(r, "batch", o->batch);
    cJSON_AddNumberToObject(r, "accum", o->accum);
    cJSON_AddNumberToObject(r, "total_steps", (double)total);
    cJSON_AddNumberToObject(r, "blr", o->blr);
    cJSON_AddNumberToObject(r, "lr", o->lr);
    cJSON_AddNumberToObject(r, "min_lr", o->min_lr);
    cJSON_AddNumberToObject(r, "warmup_steps", (double)o->warmup_steps);
    cJSON_AddNumberToObject(r, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(r, "beta1", o->beta1);
    cJSON_AddNumberToObject(r, "beta2", o->beta2);
    cJSON_AddNumberToObject(r, "clip", o->clip);
    cJSON_AddNumberToObject(r, "seed", (double)o->seed);
    cJSON_AddBoolToObject(r, "bf16", o->bf16);
    cJSON_AddNumberToObject(r, "save_every", (double)o->save_every);
    cJSON_AddNumberToObject(r, "log_every", (double)o->log_every);
    cJSON_AddNumberToObject(r, "panel_every", (double)o->panel_every);
    cJSON_AddBoolToObject(r, "augment", o->augment);
    cJSON_AddNumberToObject(r, "crop_min", o->crop_min);
    cJSON_AddNumberToObject(r, "crop_max", o->crop_max);
    cJSON_AddNumberToObject(r, "ratio_min", o->ratio_min);
    cJSON_AddNumberToObject(r, "ratio_max", o->ratio_max);
    cJSON_AddNumberToObject(r, "flip_prob", o->flip_prob);
    if (o->panel_images) cJSON_AddStringToObject(r, "panel_images", o->panel_images);
    int rc = json_write_file(path, r, err);
    cJSON_Delete(r);
    return rc;
}

/* Read the options a run was started with; strings are kept in *keep. */
static int load_run_json(const char *path, train_opts *o, long *total, cJSON **keep, sx_err *err) {
    char *text = sx_read_text(path, 1 << 20, err);
    if (!text) return -1;
    cJSON *r = cJSON_Parse(text);
    free(text);
    if (!r) return sx_fail(err, "%s: not valid JSON", path);
    const cJSON *d = cJSON_GetObjectItem(r, "data"), *it;
    o->n_data = 0;
    cJSON_ArrayForEach(it, d) if (cJSON_IsString(it) && o->n_data < TRAIN_MAX_DATA) o->data[o->n_data++] = it->valuestring;
#define NUM(key, dst, type) do { const cJSON *v = cJSON_GetObjectItem(r, key); if (cJSON_IsNumber(v)) dst = (type)v->valuedouble; } while (0)
#define BOOL(key, dst) do { const cJSON *v = cJSON_GetObjectItem(r, key); if (cJSON_IsBool(v)) dst = cJSON_IsTrue(v); } while (0)
    NUM("batch", o->batch, int); NUM("accum", o->accum, int); NUM("total_steps", *total, long);
    NUM("blr", o->blr, double); NUM("lr", o->lr, double); NUM("min_lr", o->min_lr, double);
    NUM("warmup_steps", o->warmup_steps, long); NUM("weight_decay", o->weight_decay, double);
    NUM("beta1", o->beta1, double); NUM("beta2", o->beta2, double); NUM("clip", o->clip, double);
    NUM("seed", o->seed, long); BOOL("bf16", o->bf16); NUM("save_every", o->save_every, long);
    NUM("log_every", o->log_every, long); NUM("panel_every", o->panel_every, long); BOOL("augment", o->augment);
    NUM("crop_min", o->crop_min, double); NUM("crop_max", o->crop_max, double);
    NUM("ratio_min", o->ratio_min, double); NUM("ratio_max", o->ratio_max, double);
    NUM("flip_prob", o->flip_prob, double);
    const cJSON *pi = cJSON_GetObjectItem(r, "panel_images");
    if (cJSON_IsString(pi)) o->panel_images = pi->valuestring;
#undef NUM
#undef BOOL
    *keep = r;
    return o->n_data ? 0 : sx_fail(err, "%s: lists no data", path);
}

/* ----------------------------------------------------------- resume state */

typedef struct {
    char magic[8];            /* "SKXTRAIN" */
    uint32_t version, pad;
    int64_t step, adam_step, position;
    uint64_t n_floats;
} state_header;

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 0x100000001b3ull; }
    return h;
}

typedef struct { const state_header *h; const adamw *opt; } state_ctx;

static int write_state(FILE *f, void *vctx) {
    state_ctx *c = vctx;
    uint64_t sum = 0xcbf29ce484222325ull;
    size_t n = c->h->n_floats;
    sum = fnv1a(sum, c->h, sizeof *c->h);
    sum = fnv1a(sum, c->opt->m, n * 4);
    sum = fnv1a(sum, c->opt->v, n * 4);
    if (fwrite(c->h, sizeof *c->h, 1, f) != 1 || fwrite(c->opt->m, 4, n, f) != n || fwrite(c->opt->v, 4, n, f) != n ||
        fwrite(&sum, 8, 1, f) != 1)
        return -1;
    return 0;
}

static int read_state(const char *path, state_header *h, adamw *opt, sx_err *err) {
    FILE *f = sx_fopen_input(path, NULL, err);
    if (!f) return -1;
    int rc = 0;
    uint64_t sum = 0xcbf29ce484222325ull, stored = 0;
    if (fread(h, sizeof *h, 1, f) != 1 || memcmp(h->magic, "SKXTRAIN", 8) || h->version != 1)
        rc = sx_fail(err, "%s: not a skelex training state", path);
    else if (h->n_floats != opt->n)
        rc = sx_fail(err, "%s: state for %llu parameters, the model has %zu", path, (unsigned long long)h->n_floats, opt->n);
    else if (fread(opt->m, 4, opt->n, f) != opt->n || fread(opt->v, 4, opt->n, f) != opt->n || fread(&stored, 8, 1, f) != 1)
        rc = sx_fail(err, "%s: truncated", path);
    else {
        sum = fnv1a(sum, h, sizeof *h);
        sum = fnv1a(sum, opt->m, opt->n * 4);
        sum = fnv1a(sum, opt->v, opt->n * 4);
        if (sum != stored) rc = sx_fail(err, "%s: checksum mismatch (corrupt)", path);
    }
    fclose(f);
    return rc;
}

/* --------------------------------------------------------- checkpointing */

static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) { fsync(fd); close(fd); }
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4400];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* Write RUN/checkpoint-<step>/ completely, then swap the RUN/checkpoint link
 * to it with one rename. A crash at any point leaves the old link valid. */
static int save_checkpoint(const char *run, const mae_model *m, const adamw *opt, long step, int64_t position, sx_err *err) {
    char tmp[4200], final[4200], path[4400], link_tmp[4200], link[4200], old[4200] = "";
    snprintf(tmp, sizeof tmp, "%s/checkpoint-%08ld.tmp", run, step);
    snprintf(final, sizeof final, "%s/checkpoint-%08ld", run, step);
    snprintf(link, sizeof link, "%s/checkpoint", run);
    snprintf(link_tmp, sizeof link_tmp, "%s/checkpoint.link.tmp", run);
    remove_tree(tmp);
    if (checkpoint_save(tmp, m, err)) { remove_tree(tmp); return -1; }
    state_header h = {"SKXTRAIN", 1, 0, step, opt->step, position, opt->n};
    state_ctx c = {&h, opt};
    snprintf(path, sizeof path, "%s/training_state.bin", tmp);
    if (sx_atomic_write(path, write_state, &c, err)) { remove_tree(tmp); return -1; }
    fsync_dir(tmp);
    ssize_t n = readlink(link, old, sizeof old - 1);
    old[n > 0 ? n : 0] = 0;
    if (!strcmp(old, final + strlen(run) + 1)) old[0] = 0;  /* re-saving the same step */
    else remove_tree(final);
    if (rename(tmp, final)) { int e = errno; remove_tree(tmp); return sx_fail(err, "%s: rename failed (%s)", final, strerror(e)); }
    unlink(link_tmp);
    if (symlink(final + strlen(run) + 1, link_tmp) || rename(link_tmp, link))
        return sx_fail(err, "%s: cannot update the checkpoint link (%s)", link, strerror(errno));
    fsync_dir(run);
    if (old[0]) {
        char oldpath[4400];
        snprintf(oldpath, sizeof oldpath, "%s/%s", run, old);
        remove_tree(oldpath);
    }
    return 0;
}

/* Remove *.tmp leftovers of a save that was interrupted. */
static void clean_partial(const char *run) {
    DIR *d = opendir(run);
    if (!d) return;
    struct dirent *e;
    char p[4400];
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 4 && !strcmp(e->d_name + n - 4, ".tmp")) {
            snprintf(p, sizeof p, "%s/%s", run, e->d_name);
            remove_tree(p);
            unlink(p);
        }
    }
    closedir(d);
}

/* ---------------------------------------------------------------- logging */

typedef struct { double *step, *loss, *lr; int n, cap; } loss_log;

static void log_push(loss_log *l, double step, double loss, double lr) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->step = realloc(l->step, sizeof(double) * (size_t)l->cap);
        l->loss = realloc(l->loss, sizeof(double) * (size_t)l->cap);
        l->lr = realloc(l->lr, sizeof(double) * (size_t)l->cap);
        if (!l->step || !l->loss || !l->lr) { fprintf(stderr, "skelex: out of memory\n"); exit(3); }
    }
    l->step[l->n] = step; l->loss[l->n] = loss; l->lr[l->n] = lr;
    l->n++;
}

/* Reload RUN/log.csv up to (and including) step `upto`, rewriting the file so
 * a resumed run continues it without duplicate rows. */
static void log_reload(const char *path, long upto, loss_log *l) {
    FILE *f = sx_fopen_input(path, NULL, NULL);
    if (!f) return;
    char line[512], *kept = sx_malloc(1 << 20);
    size_t used = 0;
    while (fgets(line, sizeof line, f)) {
        long step;
        double epoch, loss, lr;
        if (sscanf(line, "%ld,%lf,%lf,%lf", &step, &epoch, &loss, &lr) == 4) {
            if (step > upto) continue;
            log_push(l, (double)step, loss, lr);
        }
        size_t n = strlen(line);
        if (used + n < (1 << 20)) { memcpy(kept + used, line, n); used += n; }
    }
    fclose(f);
    f = fopen(path, "w");
    if (f) { fwrite(kept, 1, used, f); fclose(f); }
    free(kept);
}

static void fmt_eta(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) { snprintf(buf, n, "?"); return; }
    long t = (long)s;
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
    else snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

/* ------------------------------------------------------------------- run */

typedef struct {
    mae_model m;
    mae_team team;  /* the batch split across the cores */
    adamw opt;
    dataset ds;
    loader *loader;
    float *pixels, *noise, *panel_px, *panel_noise;
    int n_panel;
    loss_log log;
    cJSON *run_json;
} run_state;

static void run_free(run_state *s) {
    if (s->loader) loader_destroy(s->loader);
    dataset_free(&s->ds);
    adamw_free(&s->opt);
    mae_team_free(&s->team);  /* before the model: its replicas share the weights */
    mae_free(&s->m);
    free(s->pixels); free(s->noise); free(s->panel_px); free(s->panel_noise);
    free(s->log.step); free(s->log.loss); free(s->log.lr);
    cJSON_Delete(s->run_json);
}

static void draw_noise(float *noise, size_t n, uint64_t seed, long step, int micro) {
    sx_rng r;
    rng_seed(&r, seed * 0x9e3779b97f4a7c15ull + (uint64_t)step * 1000003ull + (uint64_t)micro);
    for (size_t i = 0; i < n; i++) noise[i] = rng_uniform(&r);
}

/* A few fixed images, plain-resized, to watch the model learn: from
 * panel_images (held aside) when given, else spread over the training data. */
static int pick_panel_images(run_state *s, const char *panel_images, uint64_t seed, sx_err *err) {
    const mae_config *c = &s->m.cfg;
    int S = c->image_size, N = config_num_patches(c);
    dataset held;
    dataset_init(&held);
    if (panel_images && dataset_add(&held, panel_images, err)) { dataset_free(&held); return -1; }
    const dataset *from = panel_images ? &held : &s->ds;
    size_t n = dataset_count(from);
    s->panel_px = sx_malloc(sizeof(float) * 4 * 3 * S * S);
    s->panel_noise = sx_malloc(sizeof(float) * 4 * (size_t)N);
    for (size_t k = 0; k < n && s->n_panel < 4; k++) {
        size_t idx = (k * 7919 + n / 2) % n;  /* spread over the sorted list */
        sx_err e;
        if (image_preprocess_file(dataset_path(from, idx), S, s->panel_px + (size_t)s->n_panel * 3 * S * S, &e) == 0) s->n_panel++;
    }
    dataset_free(&held);
    draw_noise(s->panel_noise, (size_t)4 * N, seed + 77, -1, 0);
    return 0;
}

static int write_panel(run_state *s, const char *run, long step, sx_err *err) {
    if (!s->n_panel) return 0;
    int loss_only = s->m.loss_only;
    s->m.loss_only = 0;  /* the panels need every logit */
    int rc = mae_forward(&s->m, s->panel_px, s->panel_noise, s->n_panel, err);
    s->m.loss_only = loss_only;
    if (rc) return -1;
    char path[4400];
    snprintf(path, sizeof path, "%s/panels", run);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/panels/step_%08ld.png", run, step);
    return viz_write_panels(path, &s->m, s->panel_px, s->n_panel, err);
}

int train_run(train_opts *o, sx_err *err) {
    run_state s;
    memset(&s, 0, sizeof s);
    char path[4400];
    long total = 0, start = 0;
    int64_t position = 0;
    int rc = -1;
    if (!o->out) return sx_fail(err, "--out RUN is required");
    if (mkdir(o->out, 0755) && errno != EEXIST) return sx_fail(err, "%s: cannot create (%s)", o->out, strerror(errno));
    if (access(o->out, W_OK)) return sx_fail(err, "%s: not writable", o->out);
    clean_partial(o->out);
    snprintf(path, sizeof path, "%s/run.json", o->out);

    if (o->resume) {
        long steps_override = o->steps;
        if (load_run_json(path, o, &total, &s.run_json, err)) goto out;
        if (steps_override > 0) total = steps_override;
        snprintf(path, sizeof path, "%s/checkpoint", o->out);
        if (checkpoint_load(path, &s.m, err)) goto out;
        adamw_init(&s.opt, &s.m, 0, (float)o->beta1, (float)o->beta2, 1e-8f, (float)o->weight_decay);
        state_header h;
        snprintf(path, sizeof path, "%s/checkpoint/training_state.bin", o->out);
        if (read_state(path, &h, &s.opt, err)) goto out;
        start = h.step;
        s.opt.step = h.adam_step;
        position = h.position;
        fprintf(stderr, "resuming %s at step %ld of %ld\n", o->out, start, total);
    } else {
        struct stat st;
        snprintf(path, sizeof path, "%s/checkpoint", o->out);
        if (lstat(path, &st) == 0) {
            sx_fail(err, "%s already holds a run; use --resume to continue it, or another --out", o->out);
            goto out;
        }
        if (o->init) { if (checkpoint_load(o->init, &s.m, err)) goto out; }
        else {
            mae_config cfg;
            if (config_resolve(o->config, &cfg, err) || mae_build(&s.m, &cfg, err)) goto out;
            mae_init_weights(&s.m, (uint64_t)o->seed);
        }
        if (o->mask_ratio >= 0) s.m.cfg.mask_ratio = o->mask_ratio;
        if (o->norm_pix_loss >= 0) s.m.cfg.norm_pix_loss = o->norm_pix_loss;
        if (config_validate(&s.m.cfg, err)) goto out;
        adamw_init(&s.opt, &s.m, 0, (float)o->beta1, (float)o->beta2, 1e-8f, (float)o->weight_decay);
    }
    if (o->batch < 1 || o->accum < 1) { sx_fail(err, "--batch and --accum must be at least 1"); goto out; }
    if (o->n_data == 0) { sx_fail(err, "no --data given"); goto out; }
    s.m.loss_only = 1;  /* training needs the loss, not every logit */
    if (o->threads > 0) sx_threads_init(o->threads);
    gemm_set_precision(o->bf16 ? PREC_BF16 : PREC_FP32);
    if (mae_team_init(&s.team, &s.m, o->batch, err)) goto out;  /* after the precision: bf16 runs unsplit */

    // data
    dataset_init(&s.ds);
    for (int i = 0; i < o->n_data; i++)
        if (dataset_add(&s.ds, o->data[i], err)) goto out;
    const mae_config *c = &s.m.cfg;
    long per_step = (long)o->batch * o->accum;
    if (!o->resume) {
        total = o->steps > 0 ? o->steps : (long)ceil(o->epochs * (double)dataset_count(&s.ds) / (double)per_step);
        if (total < 1) total = 1;
        if (o->warmup_steps < 0) o->warmup_steps = total / 20;
        snprintf(path, sizeof path, "%s/run.json", o->out);
        if (save_run_json(path, o, total, err)) goto out;
    }
    double lr_peak = o->lr > 0 ? o->lr : o->blr * (double)per_step / 256.0;
    aug_config aug = aug_default(c->image_size);
    aug.augment = o->augment;
    aug.scale_min = o->crop_min; aug.scale_max = o->crop_max;
    aug.ratio_min = o->ratio_min; aug.ratio_max = o->ratio_max;
    aug.flip_p = o->flip_prob;
    if (aug_check(&aug, err)) goto out;
    snprintf(path, sizeof path, "%s/skipped.txt", o->out);
    s.loader = loader_create(&s.ds, o->batch, &aug, (uint64_t)o->seed, o->loader_threads, position, path, err);
    if (!s.loader) goto out;
    int S = c->image_size, N = config_num_patches(c);
    s.pixels = sx_malloc(sizeof(float) * (size_t)o->batch * 3 * S * S);
    s.noise = sx_malloc(sizeof(float) * (size_t)o->batch * N);
    if (pick_panel_images(&s, o->panel_images, (uint64_t)o->seed, err)) goto out;

    snprintf(path, sizeof path, "%s/log.csv", o->out);
    log_reload(path, start, &s.log);
    FILE *logf = fopen(path, "a");
    if (!logf) { sx_fail(err, "%s: cannot write (%s)", path, strerror(errno)); goto out; }
    if (ftell(logf) == 0) fprintf(logf, "step,epoch,loss,lr,img_per_s\n");
    fprintf(stderr, "pretrain: %zu images, %s, batch %d x %d, %ld steps (warmup %ld), peak lr %.3g, %zu parameters\n",
            dataset_count(&s.ds), o->init ? o->init : o->config, o->batch, o->accum, total, o->warmup_steps, lr_peak,
            mae_count_params(&s.m));

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int tty = isatty(2);
    double t_start = sx_now(), t_last = t_start, loss_acc = 0.0;
    long steps_since = 0, steps_done = 0, last_done = start;
    int epoch = 0;
    rc = 0;
    long stop_at = o->stop_after > 0 && start + o->stop_after < total ? start + o->stop_after : total;
    for (long step = start; step < stop_at && !g_stop; step++) {
        double lr = train_lr_at(step, total, o->warmup_steps, lr_peak, o->min_lr);
        mae_zero_grad(&s.m);
        double loss = 0.0;
        for (int a = 0; a < o->accum && !rc; a++) {
            loader_info info;
            if (loader_next(s.loader, s.pixels, &info, err)) { rc = -1; break; }
            epoch = (int)info.epoch;
            draw_noise(s.noise, (size_t)o->batch * N, (uint64_t)o->seed, step, a);
            if (mae_team_step(&s.team, s.pixels, s.noise, o->batch, err)) { rc = -1; break; }
            loss += s.m.loss / o->accum;
        }
        if (rc) break;
        if (o->accum > 1)
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < s.m.n_floats; i++) s.m.grads[i] /= (float)o->accum;
        if (!isfinite(loss)) { rc = sx_fail(err, "loss is %g at step %ld: stopping (the last checkpoint is kept)", loss, step); break; }
        if (o->clip > 0) grad_clip(&s.m, (float)o->clip);  /* off by default, as in MAE pretraining */
        s.opt.lr = (float)lr;
        adamw_step(&s.opt, &s.m);
        long done = step + 1;
        last_done = done;
        steps_done++; steps_since++;
        loss_acc += loss;
        log_push(&s.log, (double)done, loss, lr);
        double now = sx_now();
        double ips = (double)per_step * steps_done / (now - t_start);
        fprintf(logf, "%ld,%.4f,%.6f,%.6g,%.3f\n", done, (double)loader_position(s.loader) / (double)dataset_count(&s.ds), loss, lr, ips);
        char eta[32];
        fmt_eta(eta, sizeof eta, (now - t_start) / steps_done * (double)(total - done));
        if (tty)
            fprintf(stderr, "\rstep %ld/%ld  epoch %d  loss %.4f  lr %.3g  %.2f img/s  ETA %s   ", done, total, epoch,
                    loss, lr, ips, eta);
        if (done % o->log_every == 0 || done == total) {
            fflush(logf);
            if (!tty)
                fprintf(stderr, "step %ld/%ld epoch %d loss %.4f (mean of last %ld: %.4f) lr %.3g %.2f img/s ETA %s\n",
                        done, total, epoch, loss, steps_since, loss_acc / steps_since, lr, ips, eta);
            loss_acc = 0; steps_since = 0; t_last = now;
            snprintf(path, sizeof path, "%s/loss.svg", o->out);
            viz_series ser = {"training loss (masked patches)", s.log.loss};
            viz_plot_svg(path, "MAE pretraining loss", "step", "loss", s.log.step, &ser, 1, s.log.n, 1, NULL);
        }
        if (done % o->panel_every == 0 || done == total) {
            if (write_panel(&s, o->out, done, err)) { rc = -1; break; }
        }
        if (done % o->save_every == 0 || done == stop_at || g_stop) {
            if (save_checkpoint(o->out, &s.m, &s.opt, done, loader_position(s.loader), err)) { rc = -1; break; }
        }
    }
    (void)t_last;
    if (tty) fputc('\n', stderr);
    fclose(logf);
    if (!rc && (g_stop || stop_at < total))
        fprintf(stderr, "stopped at step %ld of %ld; the checkpoint is saved: continue with --resume --out %s\n",
                last_done, total, o->out);
out:
    run_free(&s);
    return rc;
}
