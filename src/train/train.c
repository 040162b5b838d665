/* train.c: the pretraining loop and its run directory. */
#include "train/train.h"
#include "core/cpu.h"
#include "nn/team.h"
#include "io/checkpoint.h"
#include "data/data.h"
#include "nn/gemm.h"
#include "io/image.h"
#include "nn/optim.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "eval/viz.h"
#include "train/rundir.h"
#include "train/runstate.h"
#include "core/json.h"
#include "dist/dp.h"
#include "data/shard_loader.h"
#include <cjson/cJSON.h>
#include <omp.h>
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

static volatile sig_atomic_t g_stop;  /* the signal that asked to stop, or 0 */
static void on_signal(int sig) { g_stop = sig; }

/* ----------------------------------------------------------- resume state */

typedef struct { const state_header *h; const adamw *opt; } state_ctx;

static int write_state(FILE *f, void *vctx) {
    state_ctx *c = vctx;
    size_t n = c->h->n_floats;
    uint64_t sum = runstate_checksum(c->h, c->opt->m, c->opt->v, n);
    if (fwrite(c->h, sizeof *c->h, 1, f) != 1 || fwrite(c->opt->m, 4, n, f) != n || fwrite(c->opt->v, 4, n, f) != n ||
        fwrite(&sum, 8, 1, f) != 1)
        return -1;
    return 0;
}

/* Streamed (the moments are as large as the model): the checks of
 * runstate_parse_state, without a second copy in memory. */
static int read_state(const char *path, state_header *h, adamw *opt, sx_err *err) {
    uint64_t size;
    FILE *f = sx_fopen_input(path, &size, err);
    if (!f) return -1;
    int rc = 0;
    uint64_t stored = 0;
    if (fread(h, sizeof *h, 1, f) != 1) rc = sx_fail(err, "%s: not a skelex training state", path);
    else if (runstate_check_header(h, opt->n, path, err)) rc = -1;
    else if (size != sizeof *h + (uint64_t)opt->n * 8 + 8)
        rc = sx_fail(err, "%s: %llu bytes, a state for %zu parameters has %llu (truncated or corrupt)", path,
                     (unsigned long long)size, opt->n, (unsigned long long)(sizeof *h + (uint64_t)opt->n * 8 + 8));
    else if (fread(opt->m, 4, opt->n, f) != opt->n || fread(opt->v, 4, opt->n, f) != opt->n || fread(&stored, 8, 1, f) != 1)
        rc = sx_fail(err, "%s: truncated", path);
    else if (runstate_checksum(h, opt->m, opt->v, opt->n) != stored)
        rc = sx_fail(err, "%s: checksum mismatch (corrupt)", path);
    fclose(f);
    return rc;
}

/* --------------------------------------------------------- checkpointing */

/* Write RUN/checkpoint-<step>/ completely, then swap the RUN/checkpoint link
 * to it with one rename. A crash at any point leaves the old link valid. */
static int save_checkpoint_with(const char *run, const mae_model *m, const adamw *opt, long step, int64_t position,
                                const cJSON *shards, sx_err *err);
static int save_checkpoint(const char *run, const mae_model *m, const adamw *opt, long step, int64_t position, sx_err *err) {
    return save_checkpoint_with(run, m, opt, step, position, NULL, err);
}

/* shards: the stream positions of a run on tar shards (shards.json), or NULL. */
static int save_checkpoint_with(const char *run, const mae_model *m, const adamw *opt, long step, int64_t position,
                                const cJSON *shards, sx_err *err) {
    char tmp[4200], final[4200], path[4400], link_tmp[4200], link[4200], old[4200] = "";
    snprintf(tmp, sizeof tmp, "%s/checkpoint-%08ld.tmp", run, step);
    snprintf(final, sizeof final, "%s/checkpoint-%08ld", run, step);
    snprintf(link, sizeof link, "%s/checkpoint", run);
    snprintf(link_tmp, sizeof link_tmp, "%s/checkpoint.link.tmp", run);
    rundir_remove_tree(tmp);
    if (checkpoint_save(tmp, m, err)) { rundir_remove_tree(tmp); return -1; }
    state_header h = {"SKXTRAIN", 1, 0, step, opt->step, position, opt->n};
    state_ctx c = {&h, opt};
    snprintf(path, sizeof path, "%s/training_state.bin", tmp);
    if (sx_atomic_write(path, write_state, &c, err)) { rundir_remove_tree(tmp); return -1; }
    snprintf(path, sizeof path, "%s/shards.json", tmp);
    if (shards && json_write_file(path, shards, err)) { rundir_remove_tree(tmp); return -1; }
    rundir_fsync_dir(tmp);
    ssize_t n = readlink(link, old, sizeof old - 1);
    old[n > 0 ? n : 0] = 0;
    if (!strcmp(old, final + strlen(run) + 1)) old[0] = 0;  /* re-saving the same step */
    else rundir_remove_tree(final);
    if (rename(tmp, final)) { int e = errno; rundir_remove_tree(tmp); return sx_fail(err, "%s: rename failed (%s)", final, strerror(e)); }
    unlink(link_tmp);
    if (symlink(final + strlen(run) + 1, link_tmp) || rename(link_tmp, link))
        return sx_fail(err, "%s: cannot update the checkpoint link (%s)", link, strerror(errno));
    rundir_fsync_dir(run);
    if (old[0]) {
        char oldpath[4400];
        snprintf(oldpath, sizeof oldpath, "%s/%s", run, old);
        rundir_remove_tree(oldpath);
    }
    return 0;
}

/* ---------------------------------------------------------------- logging */

typedef struct { double *step, *loss, *lr; int n, cap; } loss_log;

static void log_push(loss_log *l, double step, double loss, double lr) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->step = realloc(l->step, sizeof(double) * (size_t)l->cap);
        l->loss = realloc(l->loss, sizeof(double) * (size_t)l->cap);
        l->lr = realloc(l->lr, sizeof(double) * (size_t)l->cap);
        if (!l->step || !l->loss || !l->lr) { fprintf(stderr, "skelex: out of memory\n"); exit(4); }
    }
    l->step[l->n] = step; l->loss[l->n] = loss; l->lr[l->n] = lr;
    l->n++;
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
    shard_loader *sloader;  /* --data DIR_OF_SHARDS instead of files */
    float *pixels, *noise, *panel_px, *panel_noise;
    int n_panel;
    loss_log log;
    run_log logf;
    cJSON *run_json;
} run_state;

static void run_free(run_state *s) {
    if (s->loader) loader_destroy(s->loader);
    shard_loader_destroy(s->sloader);
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

static void log_row(void *ctx, long step, double loss, double lr) { log_push(ctx, (double)step, loss, lr); }

/* The model and optimizer of a resumed run (from RUN/checkpoint and
 * RUN/run.json) or of a fresh one. */
static int open_model(run_state *s, train_opts *o, long *total, long *start, int64_t *position, run_plan *plan,
                      sx_err *err) {
    char path[4400];
    if (o->resume) {
        long steps_override = o->steps;
        int threads = o->threads;
        snprintf(path, sizeof path, "%s/run.json", o->out);
        char *text = sx_read_text(path, 1 << 20, err);
        if (!text) return -1;
        int rc = runstate_parse_json(text, strlen(text), path, o, total, plan, &s->run_json, err);
        free(text);
        if (rc) return -1;
        if (steps_override > 0) *total = steps_override;
        if (threads > 0 && plan->threads > 0 && threads != plan->threads)
            fprintf(stderr, "pretrain: resuming with %d threads, the run used %d: the continuation is no longer "
                            "bit-exact (omit --threads to keep the run's)\n", threads, plan->threads);
        if (threads <= 0 && plan->threads > 0) o->threads = plan->threads;
        snprintf(path, sizeof path, "%s/checkpoint", o->out);
        if (checkpoint_load(path, &s->m, err)) return -1;
        adamw_init(&s->opt, &s->m, 0, (float)o->beta1, (float)o->beta2, 1e-8f, (float)o->weight_decay);
        state_header h;
        snprintf(path, sizeof path, "%s/checkpoint/training_state.bin", o->out);
        if (read_state(path, &h, &s->opt, err)) return -1;
        *start = h.step;
        s->opt.step = h.adam_step;
        *position = h.position;
        fprintf(stderr, "resuming %s at step %ld of %ld\n", o->out, *start, *total);
        return 0;
    }
    struct stat st;
    snprintf(path, sizeof path, "%s/checkpoint", o->out);
    if (lstat(path, &st) == 0)
        return sx_fail(err, "%s already holds a run; use --resume to continue it, or another --out", o->out);
    if (o->init) { if (checkpoint_load(o->init, &s->m, err)) return -1; }
    else {
        mae_config cfg;
        if (config_resolve(o->config, &cfg, err) || mae_build(&s->m, &cfg, err)) return -1;
        mae_init_weights(&s->m, (uint64_t)o->seed);
    }
    if (o->mask_ratio >= 0) s->m.cfg.mask_ratio = o->mask_ratio;
    if (o->norm_pix_loss >= 0) s->m.cfg.norm_pix_loss = o->norm_pix_loss;
    if (config_validate(&s->m.cfg, err)) return -1;
    adamw_init(&s->opt, &s->m, 0, (float)o->beta1, (float)o->beta2, 1e-8f, (float)o->weight_decay);
    return 0;
}

static void warn_line(void *ctx, const char *msg) {
    (void)ctx;
    fprintf(stderr, "skelex: warning: %s (skipped)\n", msg);
}

/* Every rank's shard stream position, as {"world_size", "consumed": [...]}
 * on rank 0 (out non-NULL there). Collective. */
static int shard_positions(dist_comm *dc, const shard_loader *sl, cJSON **out, sx_err *err) {
    double *v = sx_calloc((size_t)dc->size, sizeof *v);
    v[dc->rank] = (double)shard_loader_consumed(sl);
    int rc = dist_allreduce_sum_d(dc, v, dc->size, err);
    if (!rc && out) {
        *out = cJSON_CreateObject();
        cJSON_AddNumberToObject(*out, "world_size", dc->size);
        cJSON *a = cJSON_AddArrayToObject(*out, "consumed");
        for (int r = 0; r < dc->size; r++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[r]));
    }
    free(v);
    return rc;
}

/* Where this rank's shard stream stopped, from RUN/checkpoint/shards.json
 * when the run had this world size; else the share of the position (the
 * same data, another order: not exact). */
static long long shard_resume_skip(const char *run, const dist_comm *dc, int64_t position, int batch, long gcnt) {
    char path[4400];
    snprintf(path, sizeof path, "%s/checkpoint/shards.json", run);
    sx_err e;
    cJSON *j = sx_json_load(path, 1 << 24, &e);
    const cJSON *ws = j ? cJSON_GetObjectItemCaseSensitive(j, "world_size") : NULL;
    const cJSON *a = j ? cJSON_GetObjectItemCaseSensitive(j, "consumed") : NULL;
    long long skip = position / batch * gcnt;
    if (cJSON_IsNumber(ws) && (int)ws->valuedouble == dc->size && cJSON_IsArray(a) && cJSON_GetArraySize(a) == dc->size) {
        const cJSON *c = cJSON_GetArrayItem(a, dc->rank);
        if (cJSON_IsNumber(c) && c->valuedouble >= 0 && c->valuedouble < 9e15) skip = (long long)c->valuedouble;
    }
    cJSON_Delete(j);
    return skip;
}

/* Compute threads per rank when none are asked for: the node's cores shared
 * by the ranks on it. */
static int default_threads(const dist_comm *dc) {
    if (dc->size == 1) return 0;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long t = (cores > 0 ? cores : 1) / (dc->local_size > 0 ? dc->local_size : 1);
    return t < 1 ? 1 : (int)t;
}

/* A count a resumed run was saved with (run.json: world_size, shuffle_buffer), or 0. */
static int saved_count(const cJSON *rj, const char *key) {
    const cJSON *w = rj ? cJSON_GetObjectItemCaseSensitive(rj, key) : NULL;
    return cJSON_IsNumber(w) && w->valuedouble >= 1 && w->valuedouble <= 1 << 20 ? (int)w->valuedouble : 0;
}

/* Whether any rank failed (collective). rc is this rank's; on another's
 * failure err says which rank stopped the run. */
static int all_agree(dist_comm *dc, int rc, const char *when, sx_err *err) {
    sx_err e;
    int bad = dist_first_set(dc, rc != 0, &e);
    if (bad == -2) { if (!rc) *err = e; return -1; }
    if (bad < 0) return 0;
    if (!rc) sx_fail(err, "rank %d of %d failed %s (its message says why): every rank stops; the last checkpoint is kept",
                     bad, dc->size, when);
    return -1;
}

int train_run(train_opts *o, sx_err *err) {
    run_state s;
    memset(&s, 0, sizeof s);
    s.logf.fd = -1;
    char path[4400];
    long total = 0, start = 0;
    int64_t position = 0;
    run_plan plan = {0};
    int rc = -1, lock = -1;
    o->stopped_by = 0;
    dist_comm single, *dc = o->comm;
    if (!dc) { dist_single(&single); dc = &single; }
    const int root = dc->rank == 0, zero1 = o->zero1 && dc->size > 1;
    long goff = 0, gcnt = o->batch;  /* this rank's share of every (micro-)batch */
    if (!o->out) return sx_fail(err, "--out RUN is required");
    int setup = -1, S = 0, N = 0, use_shards = 0;
    size_t n_images = 0;
    long per_step = 0;
    double lr_peak = 0;
    const mae_config *c = &s.m.cfg;
    if (mkdir(o->out, 0755) && errno != EEXIST) { sx_fail(err, "%s: cannot create (%s)", o->out, strerror(errno)); goto agree; }
    if (access(o->out, W_OK)) { sx_fail(err, "%s: not writable", o->out); goto agree; }
    if (root && (lock = rundir_lock(o->out, err)) < 0) goto agree;
    if (o->threads <= 0 && !o->resume) o->threads = default_threads(dc);
    if (open_model(&s, o, &total, &start, &position, &plan, err)) goto agree;
    if (root) rundir_clean(o->out);  /* after the fresh-run check: another run's folders are never touched */
    if (o->batch < 1 || o->accum < 1) { sx_fail(err, "--batch and --accum must be at least 1"); goto agree; }
    if (o->n_data == 0) { sx_fail(err, "no --data given"); goto agree; }
    if (o->batch < dc->size) { sx_fail(err, "--batch %d is smaller than the %d ranks: each needs an image", o->batch, dc->size); goto agree; }
    if (zero1 && o->clip > 0) { sx_fail(err, "--zero1 with --clip is not supported (clipping needs the whole gradient)"); goto agree; }
    dist_share(o->batch, dc->rank, dc->size, &goff, &gcnt);
    s.m.loss_only = 1;  /* training needs the loss, not every logit */
    if (o->threads > 0) sx_threads_init(o->threads);
    gemm_set_precision(o->bf16 ? PREC_BF16 : PREC_FP32);
    if (mae_team_init(&s.team, &s.m, (int)gcnt, err)) goto agree;  /* after the precision (its replicas copy it) */
    int saved_ws = saved_count(s.run_json, "world_size");
    if (o->resume && saved_count(s.run_json, "shuffle_buffer")) o->shuffle_buffer = saved_count(s.run_json, "shuffle_buffer");
    if (root && o->resume && saved_ws > 0 && saved_ws != dc->size)
        fprintf(stderr, "pretrain: resuming a run of %d rank(s) on %d: the data order, global batch and optimizer state "
                        "carry over, the continuation is not bit-exact\n", saved_ws, dc->size);
    if (root && o->resume && plan.shares > 0 && s.team.n != plan.shares)
        fprintf(stderr, "pretrain: the batch is split in %d share(s), the run used %d (threads, memory or SKELEX_SPLIT differ): "
                        "the continuation is no longer bit-exact\n", s.team.n, plan.shares);

    // data: files (folders, lists) or one folder of shards
    dataset_init(&s.ds);
    use_shards = o->n_data == 1 && shard_is_dir(o->data[0]);
    if (use_shards) {
        shard_index ix;
        if (shard_index_load(o->data[0], &ix, err)) goto agree;
        n_images = (size_t)ix.total;
        shard_index_free(&ix);
    } else {
        for (int i = 0; i < o->n_data; i++)
            if (dataset_add_list_stream(&s.ds, o->data[i], err)) goto agree;
        n_images = dataset_count(&s.ds);
    }
    per_step = (long)o->batch * o->accum;
    if (root && o->resume && plan.images > 0 && (long)n_images != plan.images) {
        long now = (long)n_images;
        fprintf(stderr, "pretrain: warning: the data holds %ld images, the run started with %ld (%ld %s); continuing "
                        "on the %ld found: the data order differs, so the continuation is not exact\n", now,
                plan.images, labs(plan.images - now), now < plan.images ? "missing" : "added", now);
    }
    if (!o->resume) {
        total = o->steps > 0 ? o->steps : (long)ceil(o->epochs * (double)n_images / (double)per_step);
        if (total < 1) total = 1;
        if (o->warmup_steps < 0) o->warmup_steps = total / 20;
        plan = (run_plan){omp_get_max_threads(), s.team.n, (long)n_images};
        if (root) {
            snprintf(path, sizeof path, "%s/run.json", o->out);
            cJSON *rj = runstate_to_json(o, total, &plan);
            cJSON_AddNumberToObject(rj, "world_size", dc->size);
            if (use_shards) cJSON_AddNumberToObject(rj, "shuffle_buffer", o->shuffle_buffer > 0 ? o->shuffle_buffer : 1024);
            int wrc = json_write_file(path, rj, err);
            cJSON_Delete(rj);
            if (wrc) goto agree;
        }
    }
    lr_peak = o->lr > 0 ? o->lr : o->blr * (double)per_step / 256.0;
    aug_config aug = aug_default(c->image_size);
    aug.augment = o->augment;
    aug.scale_min = o->crop_min; aug.scale_max = o->crop_max;
    aug.ratio_min = o->ratio_min; aug.ratio_max = o->ratio_max;
    aug.flip_p = o->flip_prob;
    if (aug_check(&aug, err)) goto agree;
    snprintf(path, sizeof path, "%s/skipped.txt", o->out);
    if (use_shards) {
        s.sloader = shard_loader_create(o->data[0], dc->rank, dc->size, (int)gcnt, &aug, (uint64_t)o->seed,
                                        o->shuffle_buffer > 0 ? o->shuffle_buffer : 1024, o->resume ? shard_resume_skip(o->out, dc, position, o->batch, gcnt) : 0,
                                        warn_line, NULL, err);
        if (!s.sloader) goto agree;
    } else {
        s.loader = loader_create_share(&s.ds, (int)gcnt, o->batch, goff, &aug, (uint64_t)o->seed, o->loader_threads,
                                       position, path, err);
        if (!s.loader) goto agree;
    }
    S = c->image_size; N = config_num_patches(c);
    s.pixels = sx_malloc(sizeof(float) * (size_t)gcnt * 3 * S * S);
    s.noise = sx_malloc(sizeof(float) * (size_t)o->batch * N);  /* the global batch's, as one process draws it */
    if (root && pick_panel_images(&s, o->panel_images, (uint64_t)o->seed, err)) goto agree;

    snprintf(path, sizeof path, "%s/log.csv", o->out);
    int dropped = 0;
    if (root && (runlog_reload(path, start, log_row, &s.log, &dropped, err) || runlog_open(&s.logf, path, err))) goto agree;
    if (dropped) fprintf(stderr, "pretrain: %s: dropped %d torn or unreadable line(s)\n", path, dropped);
    setup = 0;
agree:
    if (all_agree(dc, setup, "to start", err)) { rc = -1; goto out; }
    /* one model on every rank, whatever each one built or loaded */
    if (dist_bcast(dc, s.m.params, s.m.n_floats, 0, err)) { rc = -1; goto out; }

    g_stop = 0;
    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    if (root)
        fprintf(stderr, "pretrain: %zu images, %s, batch %d x %d, %ld steps (warmup %ld), peak lr %.3g, %zu parameters\n",
                n_images, o->init ? o->init : o->config, o->batch, o->accum, total, o->warmup_steps, lr_peak,
                mae_count_params(&s.m));
    if (root && dc->size > 1)
        fprintf(stderr, "pretrain: %d ranks (MPI), %d to %d images of each batch per rank, %d thread(s) each%s\n",
                dc->size, o->batch / dc->size, (o->batch + dc->size - 1) / dc->size, omp_get_max_threads(),
                zero1 ? ", ZeRO-1 sharded AdamW" : "");
    if (root) {
        char cpu[256];  /* the CPU line and the precision the products run at */
        sx_cpu_describe(cpu, sizeof cpu);
        fprintf(stderr, "pretrain: %s; precision %s\n", cpu, mae_precision(&s.m) == PREC_BF16 ? "bf16" : "fp32");
    }
    int tty = root && isatty(2), data_failed = 0, stop_sig = 0;
    double t_start = sx_now(), loss_acc = 0.0, reduce_at_start = dc->reduce_s;
    long steps_since = 0, steps_done = 0, last_done = start, saved_at = start;
    int epoch = 0;
    rc = 0;
    long stop_at = o->stop_after > 0 && start + o->stop_after < total ? start + o->stop_after : total;
    for (long step = start; step < stop_at; step++) {  /* a signal stops it after this step's save */
        double lr = train_lr_at(step, total, o->warmup_steps, lr_peak, o->min_lr);
        mae_zero_grad(&s.m);
        double loss = 0.0;
        for (int a = 0; a < o->accum && !rc; a++) {
            loader_info info = {0};
            if (s.sloader ? shard_loader_next(s.sloader, s.pixels, &info.epoch, err)
                          : loader_next(s.loader, s.pixels, &info, err)) { rc = -1; data_failed = 1; break; }
            epoch = (int)info.epoch;
            draw_noise(s.noise, (size_t)o->batch * N, (uint64_t)o->seed, step, a);
            if (mae_team_step(&s.team, s.pixels, s.noise + (size_t)goff * N, (int)gcnt, err)) { rc = -1; break; }
            loss += s.m.loss / o->accum;
        }
        /* every rank learns whether any failed, lost its data or was asked to stop */
        int flags[3] = {rc ? dc->size - dc->rank : 0, data_failed, (int)g_stop};
        sx_err e2;
        if (dist_allreduce_max_i(dc, flags, 3, &e2)) { if (!rc) *err = e2; rc = -1; break; }
        if (flags[0] && !rc)
            rc = sx_fail(err, "rank %d of %d failed at step %ld (its message says why): every rank stops; the last "
                         "checkpoint is kept", dc->size - flags[0], dc->size, step + 1);
        if (flags[1]) data_failed = 1;
        stop_sig = flags[2];
        if (rc) break;
        double lsum = loss * dist_share_weight(gcnt, o->batch);
        if (dist_allreduce_sum_d(dc, &lsum, 1, err)) { rc = -1; break; }
        if (dc->size > 1) loss = lsum;
        if (o->accum > 1)
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < s.m.n_floats; i++) s.m.grads[i] /= (float)o->accum;
        if (dp_reduce_grads(dc, &s.m, dist_share_weight(gcnt, o->batch), zero1,
                            (size_t)o->bucket_floats, err)) { rc = -1; break; }
        if (!isfinite(loss)) { rc = sx_fail(err, "loss is %g at step %ld: stopping (the last checkpoint is kept)", loss, step); break; }
        if (o->clip > 0) grad_clip(&s.m, (float)o->clip);  /* off by default, as in MAE pretraining */
        s.opt.lr = (float)lr;
        if (dp_optimizer_step(dc, &s.opt, &s.m, zero1, err)) { rc = -1; break; }
        long done = step + 1;
        last_done = done;
        steps_done++; steps_since++;
        loss_acc += loss;
        double now = sx_now();
        double ips = (double)per_step * steps_done / (now - t_start);
        char eta[32];
        fmt_eta(eta, sizeof eta, (now - t_start) / steps_done * (double)(total - done));
        int save = done % o->save_every == 0 || done == stop_at || stop_sig;
        int wrc = 0;
        if (root) {
            log_push(&s.log, (double)done, loss, lr);
            runlog_row(&s.logf, done, (double)(position + (int64_t)(done - start) * per_step) / (double)n_images, loss, lr, ips);
            if (tty)
                fprintf(stderr, "\rstep %ld/%ld  epoch %d  loss %.4f  lr %.3g  %.2f img/s  ETA %s   ", done, total, epoch,
                        loss, lr, ips, eta);
            if (done % o->log_every == 0 || done == total || save)
                wrc = runlog_flush(&s.logf, save, err);  /* synced with each checkpoint */
            if (!wrc && (done % o->log_every == 0 || done == total)) {
                if (!tty)
                    fprintf(stderr, "step %ld/%ld epoch %d loss %.4f (mean of last %ld: %.4f) lr %.3g %.2f img/s ETA %s\n",
                            done, total, epoch, loss, steps_since, loss_acc / steps_since, lr, ips, eta);
                snprintf(path, sizeof path, "%s/loss.svg", o->out);
                viz_series ser = {"training loss (masked patches)", s.log.loss};
                viz_plot_svg(path, "MAE pretraining loss", "step", "loss", s.log.step, &ser, 1, s.log.n, 1, NULL);
            }
            if (!wrc && (done % o->panel_every == 0 || done == total)) wrc = write_panel(&s, o->out, done, err);
        }
        if (done % o->log_every == 0 || done == total) { loss_acc = 0; steps_since = 0; }
        if (!wrc && save) {
            wrc = dp_gather_state(dc, &s.opt, zero1, err);
            cJSON *sj = NULL;
            if (!wrc && s.sloader) wrc = shard_positions(dc, s.sloader, root ? &sj : NULL, err);
            if (!wrc && root)
                wrc = save_checkpoint_with(o->out, &s.m, &s.opt, done, (position + (int64_t)(done - start) * per_step), sj, err);
            cJSON_Delete(sj);
            if (!wrc) saved_at = done;
        }
        if (all_agree(dc, wrc, "writing the run directory", err)) { rc = -1; break; }
        if (stop_sig) break;
    }
    if (tty) fputc('\n', stderr);
    if (data_failed && last_done > 0) {  /* the data went away: keep what was learnt since the last save */
        char why[SX_ERRLEN];
        snprintf(why, sizeof why, "%s", err->msg);
        sx_err e2;
        int saved = last_done == saved_at;
        if (!saved) {
            int grc = dp_gather_state(dc, &s.opt, zero1, &e2);
            saved = grc == 0 && (!root || (runlog_flush(&s.logf, 1, &e2) == 0 &&
                                           save_checkpoint(o->out, &s.m, &s.opt, last_done,
                                                           position + (int64_t)(last_done - start) * per_step, &e2) == 0));
        }
        if (saved)
            sx_fail(err, "the data could not be read at step %ld (%s); the checkpoint at step %ld is saved: continue "
                    "with --resume --out %s once the data is back", last_done + 1, why, last_done, o->out);
        else
            sx_fail(err, "the data could not be read at step %ld (%s); saving a checkpoint failed too (%s)", last_done + 1,
                    why, e2.msg);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (!rc && stop_sig) o->stopped_by = stop_sig;
    if (root && dc->size > 1 && steps_done > 0) {
        double wall = sx_now() - t_start, red = dc->reduce_s - reduce_at_start;
        fprintf(stderr, "pretrain: %d ranks: %.3f s per step, gradient reduction %.3f s per step (%.1f %% of the "
                        "time), %.2f MB per step\n", dc->size, wall / steps_done, red / steps_done,
                100.0 * red / wall, (double)s.m.n_floats * 4.0 / 1e6);
    }
    if (root && !rc && (stop_sig || stop_at < total))
        fprintf(stderr, "stopped at step %ld of %ld%s; the checkpoint is saved: continue with --resume --out %s\n",
                last_done, total, stop_sig == SIGINT ? " by SIGINT" : stop_sig == SIGTERM ? " by SIGTERM" : "", o->out);
out:
    runlog_close(&s.logf);
    run_free(&s);
    if (lock >= 0) rundir_unlock(lock);
    return rc;
}
