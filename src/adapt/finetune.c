/* finetune.c: the fine-tuning loop of one fold, with best-epoch selection. */
#include "adapt/finetune_parts.h"
#include "eval/metrics.h"
#include "nn/optim.h"
#include "eval/report.h"
#include "train/train.h"
#include "eval/viz.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Options, scores, prediction                                              */

void ft_opts_default(ft_opts *o) {
    *o = (ft_opts){.epochs = 50, .warmup_epochs = 5, .batch = 64, .micro_batch = 32, .eval_batch = 32,
                   .lr = 5e-5, .min_lr = 0.0, .layer_decay = 0.75, .weight_decay = 0.05, .beta1 = 0.9,
                   .beta2 = 0.999, .eps = 1e-8, .clip = 0.0, .augment = 1, .aug = cls_aug_default(), .seed = 0};
}

void ft_result_free(ft_result *r) {
    free(r->log);
    memset(r, 0, sizeof *r);
}

static float sample_y(const task *t, size_t i) {
    return t->type == TASK_REGRESSION ? (float)t->samples[i].target : (float)t->samples[i].label;
}

int finetune_predict(classifier *c, const task *t, const image_cache *ic, const size_t *idx, size_t n, int batch,
                     double *prob, double *pred, double *loss, sx_err *err) {
    int S = ic->S, KK = c->type == TASK_BINARY ? 2 : c->n_classes;
    float *px = sx_malloc(sizeof(float) * (size_t)batch * 3 * S * S), *y = sx_malloc(sizeof(float) * batch);
    double lsum = 0;
    int rc = 0;
    for (size_t i0 = 0; i0 < n && !rc; i0 += (size_t)batch) {
        int B = (int)(n - i0 < (size_t)batch ? n - i0 : (size_t)batch);
        for (int b = 0; b < B; b++) {
            image_cache_input(ic, idx[i0 + b], NULL, NULL, NULL, px + (size_t)b * 3 * S * S);
            y[b] = t ? sample_y(t, idx[i0 + b]) : 0.0f;
        }
        if ((rc = classifier_forward(c, px, B, err))) break;
        if (t) lsum += (double)classifier_loss(c, y, 0.0f) * B;
        classifier_outputs(c, prob ? prob + i0 * KK : NULL, pred ? pred + i0 : NULL);
    }
    if (loss) *loss = n && t ? lsum / (double)n : NAN;
    free(px);
    free(y);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The optimizer: AdamW with layer-wise lr decay                            */

int ft_optim_init(ft_optim *op, const classifier *c, double layer_decay, sx_err *err) {
    const mae_model *m = &c->enc;
    size_t nh = (size_t)c->n_out * m->cfg.hidden_size + c->n_out;
    memset(op, 0, sizeof *op);
    op->n = m->n_floats;
    op->m = sx_alloc_large(m->n_floats * sizeof(float));
    op->v = sx_alloc_large(m->n_floats * sizeof(float));
    if (!op->m || !op->v) {
        sx_free_large(op->m, op->n * sizeof(float));
        sx_free_large(op->v, op->n * sizeof(float));
        return sx_fail(err, "fine-tuning: out of memory for the optimizer state (%zu MB)",
                       2 * m->n_floats * sizeof(float) >> 20);
    }
    memset(op->m, 0, m->n_floats * sizeof(float));
    memset(op->v, 0, m->n_floats * sizeof(float));
    op->hm = sx_calloc(nh, sizeof(float));
    op->hv = sx_calloc(nh, sizeof(float));
    op->scale = sx_calloc((size_t)m->n_info, sizeof(float));
    int top = m->cfg.num_hidden_layers + 1;
    for (int i = 0; i < m->n_info; i++) {
        int id = classifier_layer_id(c, &m->info[i]);
        op->scale[i] = id < 0 ? 0.0f : (float)pow(layer_decay, top - id);
    }
    op->step = 0;
    return 0;
}

void ft_optim_free(ft_optim *op) {
    sx_free_large(op->m, op->n * sizeof(float));
    sx_free_large(op->v, op->n * sizeof(float));
    free(op->hm); free(op->hv); free(op->scale);
}

static double grad_norm_sq(const float *g, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return s;
}

void ft_optim_step(ft_optim *op, classifier *c, const ft_opts *o, double lr) {
    mae_model *m = &c->enc;
    int D = m->cfg.hidden_size, K = c->n_out;
    if (o->clip > 0) {   /* global norm over every trained tensor, head included */
        double ss = grad_norm_sq(c->ghead_w, (size_t)K * D) + grad_norm_sq(c->ghead_b, (size_t)K);
        for (int i = 0; i < m->n_info; i++)
            if (op->scale[i] > 0) ss += grad_norm_sq(m->grads + m->info[i].offset, m->info[i].numel);
        double coef = o->clip / (sqrt(ss) + 1e-6);
        if (coef < 1) {
            for (int i = 0; i < m->n_info; i++)
                if (op->scale[i] > 0)
                    for (size_t j = 0; j < m->info[i].numel; j++) m->grads[m->info[i].offset + j] *= (float)coef;
            for (size_t j = 0; j < (size_t)K * D; j++) c->ghead_w[j] *= (float)coef;
            for (int k = 0; k < K; k++) c->ghead_b[k] *= (float)coef;
        }
    }
    op->step++;
    float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps, wd = (float)o->weight_decay;
    for (int i = 0; i < m->n_info; i++) {
        if (op->scale[i] <= 0) continue;
        const param_info *pi = &m->info[i];
        size_t off = pi->offset;
        adamw_update(m->params + off, m->grads + off, op->m + off, op->v + off, pi->numel, (float)lr * op->scale[i],
                     (pi->flags & PARAM_DECAY) ? wd : 0.0f, b1, b2, eps, op->step);
    }
    mae_weights_changed(m);   /* the encoder's bf16 copies (nn/model.h) */
    /* the head sits at the top layer (scale 1): weight decayed, bias not */
    adamw_update(c->head_w, c->ghead_w, op->hm, op->hv, (size_t)K * D, (float)lr, wd, b1, b2, eps, op->step);
    adamw_update(c->head_b, c->ghead_b, op->hm + (size_t)K * D, op->hv + (size_t)K * D, (size_t)K, (float)lr, 0.0f,
                 b1, b2, eps, op->step);
}

/* ------------------------------------------------------------------------ */
/* Logs                                                                     */

void ft_write_logs(const char *dir, const ft_result *r, int regression) {
    char path[4200];
    snprintf(path, sizeof path, "%s/log.csv", dir);
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "epoch,train_loss,val_loss,val_%s,lr,seconds,best\n", regression ? "neg_mae" : "auroc");
    for (int i = 0; i < r->n_log; i++) {
        const ft_epoch *e = &r->log[i];
        fprintf(f, "%d,%.6f,%.6f,%.6f,%.6g,%.1f,%d\n", e->epoch, e->train_loss, e->val_loss, e->val_score, e->lr,
                e->seconds, e->epoch == r->best_epoch);
    }
    fclose(f);
    int n = r->n_log;
    double *x = sx_malloc(sizeof(double) * n), *tl = sx_malloc(sizeof(double) * n), *vl = sx_malloc(sizeof(double) * n),
           *vs = sx_malloc(sizeof(double) * n);
    for (int i = 0; i < n; i++) {
        x[i] = r->log[i].epoch;
        tl[i] = r->log[i].train_loss;
        vl[i] = r->log[i].val_loss;
        vs[i] = regression ? -r->log[i].val_score : r->log[i].val_score;
    }
    sx_err e;
    viz_series loss[2] = {{"train loss", tl}, {"validation loss", vl}};
    snprintf(path, sizeof path, "%s/curves.svg", dir);
    viz_plot_svg(path, "fine-tuning: training and validation loss", "epoch", "loss", x, loss, 2, n, 0, &e);
    viz_series sc[1] = {{regression ? "validation MAE" : "validation AUROC", vs}};
    char title[128];
    snprintf(title, sizeof title, "validation %s per epoch (best: epoch %d)", regression ? "MAE" : "AUROC",
             r->best_epoch);
    snprintf(path, sizeof path, "%s/val_score.svg", dir);
    viz_plot_svg(path, title, "epoch", regression ? "MAE" : "AUROC", x, sc, 1, n, 0, &e);
    free(x); free(tl); free(vl); free(vs);
}

/* ------------------------------------------------------------------------ */
/* The loop                                                                 */

void ft_shuffle(size_t *perm, size_t n, sx_rng *r) {
    for (size_t i = n; i > 1; i--) {   /* Fisher-Yates */
        size_t j = rng_below(r, (uint32_t)i), tmp = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = tmp;
    }
}

size_t *ft_loop_begin(ft_optim *op, const classifier *c, const ft_opts *o, const size_t *tr, size_t ntr, long *spe,
                      long *total, long *warm, sx_err *err) {
    *spe = (long)((ntr + (size_t)o->batch - 1) / (size_t)o->batch);
    *total = *spe * o->epochs;
    *warm = *spe * o->warmup_epochs;
    if (ft_optim_init(op, c, o->layer_decay, err)) return NULL;
    size_t *perm = sx_malloc(sizeof(size_t) * ntr);
    memcpy(perm, tr, sizeof(size_t) * ntr);
    return perm;
}

FILE *ft_run_begin(ft_result *res, const ft_opts *o, sx_rng *shuf) {
    res->log = sx_calloc((size_t)o->epochs, sizeof(ft_epoch));
    res->best_score = -INFINITY;
    rng_seed(shuf, o->seed * 0x9E3779B97F4A7C15ULL + 1);
    return o->quiet ? NULL : o->progress;
}

size_t ft_step_begin(classifier *c, const ft_opts *o, size_t *perm, size_t ntr, sx_rng *shuf, long s, long step,
                     long total, long warm, size_t *B, double *lr) {
    if (s == 0) ft_shuffle(perm, ntr, shuf);   /* the epoch's order */
    size_t b0 = (size_t)s * o->batch;
    *B = ntr - b0 < (size_t)o->batch ? ntr - b0 : (size_t)o->batch;
    *lr = train_lr_at(step, total, warm, o->lr, o->min_lr);
    classifier_zero_grad(c);
    return b0;
}

void ft_fold_paths(const char *out, int k, char fdir[FT_FDIR], char best[FT_FPATH], char tdir[FT_FPATH],
                   char label[FT_FLABEL]) {
    snprintf(fdir, FT_FDIR, "%s/fold%d", out, k);
    snprintf(best, FT_FPATH, "%s/best", fdir);
    snprintf(tdir, FT_FPATH, "%s/test", fdir);
    snprintf(label, FT_FLABEL, "fold %d", k);
}

int ft_check_step(double lsum, int ep, long s, const ft_opts *o, sx_err *err) {
    if (isfinite(lsum)) return 0;   /* diverged: stop at once, never train (or score) on NaN */
    return sx_fail(err, "fine-tuning diverged: the training loss is not finite at epoch %d, step %ld "
                   "(lr %.3g; try a lower --lr)", ep, s + 1, o->lr);
}

ft_epoch *ft_log_epoch(ft_result *res, int ep, double train_loss, double lr, double chance, const ft_opts *o,
                       sx_err *err) {
    ft_epoch *e = &res->log[res->n_log++];
    e->epoch = ep;
    e->train_loss = train_loss;
    e->lr = lr;
    if (!(e->train_loss <= FT_DIVERGED_X * chance)) {
        sx_fail(err, "fine-tuning diverged: epoch %d's training loss %.4g is over %g x the chance level %.3g "
                "(lr %.3g; try a lower --lr)", ep, e->train_loss, (double)FT_DIVERGED_X, chance, o->lr);
        return NULL;
    }
    return e;
}

int finetune_fold(classifier *c, const task *t, const image_cache *ic, const size_t *tr, size_t ntr,
                  const size_t *va, size_t nva, const ft_opts *o, const char *best_dir, const char *log_dir,
                  const char *label, ft_result *res, sx_err *err) {
    memset(res, 0, sizeof *res);
    if (ntr == 0) return sx_fail(err, "fine-tuning: no training samples");
    if (o->batch < 1 || o->micro_batch < 1 || o->eval_batch < 1 || o->epochs < 1)
        return sx_fail(err, "fine-tuning: batch, micro-batch, eval batch and epochs must be >= 1");
    int S = ic->S, KK = c->type == TASK_BINARY ? 2 : c->n_classes;
    if (c->type == TASK_REGRESSION) {   /* standardise the target with the training part */
        double s = 0, s2 = 0;
        for (size_t i = 0; i < ntr; i++) { double y = t->samples[tr[i]].target; s += y; s2 += y * y; }
        double mean = s / ntr, var = s2 / ntr - mean * mean;
        c->y_mean = (float)mean;
        c->y_sd = (float)(var > 1e-12 ? sqrt(var) : 1.0);
    }
    if (o->balance && c->type != TASK_REGRESSION) {   /* inverse class frequency, mean weight 1 over the training part */
        size_t *cnt = sx_calloc((size_t)c->n_classes, sizeof(size_t));
        for (size_t i = 0; i < ntr; i++) cnt[t->samples[tr[i]].label]++;
        free(c->class_weight);
        c->class_weight = sx_malloc(sizeof(float) * c->n_classes);
        for (int k = 0; k < c->n_classes; k++)
            c->class_weight[k] = cnt[k] ? (float)((double)ntr / ((double)c->n_classes * cnt[k])) : 0.0f;
        free(cnt);
    }
    int mb = o->micro_batch < o->batch ? o->micro_batch : o->batch;
    /* the loss of a model that knows nothing: ln K (ln 2 for binary), or 1 for the standardised target */
    double chance = c->type == TASK_REGRESSION ? 1.0 : log(c->n_classes > 2 ? c->n_classes : 2);
    long spe, total, warm, step = 0;
    ft_optim op;
    size_t *perm = ft_loop_begin(&op, c, o, tr, ntr, &spe, &total, &warm, err);
    if (!perm) return -1;
    /* everything the loop needs, allocated once per run */
    float *px = sx_malloc(sizeof(float) * (size_t)mb * 3 * S * S), *y = sx_malloc(sizeof(float) * mb);
    uint8_t *scratch = sx_malloc((size_t)mb * S * S);
    double *vprob = sx_malloc(sizeof(double) * (nva ? nva : 1) * KK), *vpred = sx_malloc(sizeof(double) * (nva ? nva : 1));
    sx_rng shuf;
    FILE *pf = ft_run_begin(res, o, &shuf);
    int tty = pf && isatty(fileno(pf)), rc = 0;
    double t0 = sx_now(), best_loss = INFINITY;
    for (int ep = 1; ep <= o->epochs && !rc; ep++) {
        double te = sx_now(), lsum = 0, lr = 0;
        for (long s = 0; s < spe && !rc; s++, step++) {
            size_t B, b0 = ft_step_begin(c, o, perm, ntr, &shuf, s, step, total, warm, &B, &lr);
            for (size_t m0 = 0; m0 < B && !rc; m0 += (size_t)mb) {
                int Bm = (int)(B - m0 < (size_t)mb ? B - m0 : (size_t)mb);
#pragma omp parallel for schedule(dynamic)
                for (int b = 0; b < Bm; b++) {
                    size_t idx = perm[b0 + m0 + b];
                    sx_rng r;   /* per (seed, epoch, sample): independent of batching and threads */
                    rng_seed(&r, o->seed ^ ((uint64_t)ep << 40) ^ ((uint64_t)idx * 0x2545F4914F6CDD1DULL));
                    image_cache_input(ic, idx, o->augment ? &o->aug : NULL, &r, scratch + (size_t)b * S * S,
                                      px + (size_t)b * 3 * S * S);
                    y[b] = sample_y(t, idx);
                }
                if ((rc = classifier_forward(c, px, Bm, err))) {
                    if (strstr(err->msg, "out of memory")) {
                        sx_err e = *err;
                        sx_fail(err, "%s (fine-tuning: try a smaller --micro-batch than %d)", e.msg, mb);
                    }
                    break;
                }
                lsum += (double)classifier_loss(c, y, (float)Bm / (float)B) * Bm;
            }
            if (rc || (rc = ft_check_step(lsum, ep, s, o, err))) break;
            ft_optim_step(&op, c, o, lr);
            if (tty) {
                double el = sx_now() - t0, per = el / (double)(step + 1);
                fprintf(pf, "\r%s epoch %d/%d  step %ld/%ld  loss %.4f  lr %.2e  ETA %.0f s   ", label ? label : "",
                        ep, o->epochs, s + 1, spe, lsum / (double)(b0 + B), lr, per * (double)(total - step - 1));
            }
        }
        if (rc) break;
        if (o->epoch_hook) o->epoch_hook(ep, c, o->hook_ctx);
        ft_epoch *e = ft_log_epoch(res, ep, lsum / (double)ntr, lr, chance, o, err);
        if (!e) { rc = -1; break; }
        if ((rc = finetune_predict(c, t, ic, va, nva, o->eval_batch, vprob, vpred, &e->val_loss, err))) break;
        e->val_score = metric_task_score(t, va, nva, vprob, vpred);
        if (nva && !isfinite(e->val_loss)) {
            rc = sx_fail(err, "fine-tuning diverged: the validation loss is not finite at epoch %d (lr %.3g; try a "
                         "lower --lr)", ep, o->lr);
            break;
        }
        /* better: a higher score, or an equal score with a lower validation loss
         * (AUROC saturates on easy tasks); no validation part: the last epoch */
        double sel = nva == 0 ? (double)ep : isnan(e->val_score) ? -e->val_loss : e->val_score;
        int better = sel > res->best_score ||
                     (nva && sel == res->best_score && !isnan(e->val_score) && e->val_loss < best_loss);
        if (better) {
            res->best_score = sel;
            best_loss = e->val_loss;
            res->best_epoch = ep;
            if (best_dir && (rc = classifier_save(c, best_dir, t->name, err))) break;
        }
        e->seconds = sx_now() - te;
        if (log_dir) ft_write_logs(log_dir, res, c->type == TASK_REGRESSION);
        if (pf) {
            double el = sx_now() - t0;
            fprintf(pf, "%s%s epoch %d/%d  train %.4f  val loss %.4f  val %s %.4f  best %d  %.0f s  ETA %.0f s\n",
                    tty ? "\r" : "", label ? label : "", ep, o->epochs, e->train_loss, e->val_loss,
                    c->type == TASK_REGRESSION ? "MAE" : "AUROC",
                    c->type == TASK_REGRESSION ? -e->val_score : e->val_score, res->best_epoch, e->seconds,
                    el / ep * (o->epochs - ep));
        }
    }
    ft_optim_free(&op);
    free(perm); free(px); free(y); free(scratch); free(vprob); free(vpred);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Evaluation on a set of samples                                           */

cJSON *finetune_evaluate(classifier *c, const task *t, const image_cache *ic, const size_t *idx, size_t n,
                         int batch, const char *dir, const char *title, uint64_t seed, sx_err *err) {
    int KK = c->type == TASK_BINARY ? 2 : c->n_classes, reg = c->type == TASK_REGRESSION;
    double *prob = sx_malloc(sizeof(double) * (n ? n : 1) * KK), *pred = sx_malloc(sizeof(double) * (n ? n : 1));
    cJSON *mj = NULL;
    if (!finetune_predict(c, t, ic, idx, n, batch, prob, pred, NULL, err))
        mj = adapt_write_outputs(t, idx, n, reg ? NULL : prob, reg ? pred : NULL, -1, dir, title, seed, err);
    free(prob); free(pred);
    return mj;
}

int adapt_mkdir(const char *dir, sx_err *err) {
    if (mkdir(dir, 0755) && errno != EEXIST) return sx_fail(err, "%s: cannot create (%s)", dir, strerror(errno));
    return 0;
}

int adapt_start_out(const char *out, const task *t, const split *sp, sx_err *err) {
    if (adapt_mkdir(out, err)) return -1;
    char path[4400];
    if (snprintf(path, sizeof path, "%s/split.json", out) >= (int)sizeof path) return sx_fail(err, "%s: path too long", out);
    cJSON *sj = split_to_json(t, sp);
    int rc = json_write_file(path, sj, err);
    cJSON_Delete(sj);
    return rc;
}

cJSON *adapt_write_outputs(const task *t, const size_t *idx, size_t n, const double *prob, const double *pred,
                           int fold, const char *dir, const char *title, uint64_t seed, sx_err *err) {
    int reg = t->type == TASK_REGRESSION, KK = reg ? 1 : t->n_classes;
    double *target = sx_malloc(sizeof(double) * (n ? n : 1));
    int *lab = sx_malloc(sizeof(int) * (n ? n : 1));
    const char **names = sx_malloc(sizeof(char *) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        lab[i] = t->samples[idx[i]].label;
        target[i] = t->samples[idx[i]].target;
        names[i] = task_rel_path(t, idx[i]);
    }
    eval_set es = {t->type, KK, (const char *const *)t->class_names, n, reg ? NULL : prob,
                   reg ? NULL : lab, reg ? pred : NULL, reg ? target : NULL};
    char path[4400];
    cJSON *mj = NULL;
    if (adapt_mkdir(dir, err)) {
    } else if (snprintf(path, sizeof path, "%s/predictions.csv", dir) >= (int)sizeof path) sx_fail(err, "%s: path too long", dir);
    else if (!report_predictions_csv(path, names, &es, fold, err) && (mj = metrics_json(&es, 1000, seed, err))) {
        if (fold >= 0) cJSON_AddNumberToObject(mj, "fold", fold);
        snprintf(path, sizeof path, "%s/metrics.json", dir);
        if (json_write_file(path, mj, err) || report_write_all(dir, title, &es, err)) {
            cJSON_Delete(mj);
            mj = NULL;
        }
    }
    free(target); free(lab); free(names);
    return mj;
}
