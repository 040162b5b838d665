/* finetune_heads.c: the multi-head fine-tuning protocol (finetune_heads.h). */
#include "adapt/finetune_heads.h"
#include "adapt/evaluate_heads.h"
#include "adapt/finetune_parts.h"
#include "eval/report.h"
#include "io/image.h"
#include "train/train.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void fth_opts_default(fth_opts *h) {
    memset(h, 0, sizeof *h);
    h->ior = 1;
    ior_default_params(&h->ip, 224);
}

/* ------------------------------------------------------------------------ */
/* Images: decoded once, as the model's plain input and as crop sources     */

typedef struct {
    image_cache ic;     /* S x S, the plain preprocessing (validation, test) */
    uint8_t **src;      /* per sample: min-max 8-bit image, long side <= crop_side */
    int *w, *h;
} heads_images;

static void images_free(heads_images *im, size_t n) {
    image_cache_free(&im->ic);
    for (size_t i = 0; im->src && i < n; i++) free(im->src[i]);
    free(im->src); free(im->w); free(im->h);
    memset(im, 0, sizeof *im);
}

static int images_build(heads_images *im, const multitask *mt, int S, int crop_side, int want_src, FILE *progress,
                        sx_err *err) {
    size_t n = mt->n;
    memset(im, 0, sizeof *im);
    im->ic.S = S;
    im->ic.n = n;
    im->ic.px = sx_malloc(n * (size_t)S * S);
    im->src = sx_calloc(n, sizeof(uint8_t *));
    im->w = sx_calloc(n, sizeof(int));
    im->h = sx_calloc(n, sizeof(int));
    size_t done = 0, first_bad = n;   /* every image is tried; the first failure (in order) is reported */
#pragma omp parallel for schedule(dynamic, 4)
    for (size_t i = 0; i < n; i++) {
        gray_image img;
        sx_err e;
        if (image_load_gray(mt->view.samples[i].path, &img, &e)) {
#pragma omp critical(fth_err)
            if (i < first_bad) { first_bad = i; *err = e; }
            continue;
        }
        image_preprocess_u8(&img, S, im->ic.px + i * (size_t)S * S);
        if (want_src) {
            int W = img.width, H = img.height, L = W > H ? W : H;
            double f = L > crop_side ? (double)crop_side / L : 1.0;
            int w = (int)lround(W * f), h = (int)lround(H * f);
            w = w < 1 ? 1 : w;
            h = h < 1 ? 1 : h;
            uint8_t *full = sx_malloc((size_t)W * H);
            image_minmax_u8(&img, full);
            if (w == W && h == H) im->src[i] = full;
            else {
                im->src[i] = sx_malloc((size_t)w * h);
                image_resize_bilinear_u8(full, W, H, im->src[i], w, h);
                free(full);
            }
            im->w[i] = w;
            im->h[i] = h;
        }
        gray_image_free(&img);
#pragma omp critical(fth_progress)
        {
            done++;
            if (progress && (done % 1000 == 0 || done == n)) fprintf(progress, "decoding %zu/%zu\n", done, n);
        }
    }
    if (first_bad < n) { images_free(im, n); return -1; }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Prediction and the loop of one fold                                      */

/* Probabilities (n x K) of the plain inputs idx; *loss (may be NULL): the
 * mean masked loss over batches (weighted by their size). */
static int predict_heads(classifier *c, const multitask *mt, const image_cache *ic, const size_t *idx, size_t n,
                         int batch, double *prob, double *loss, sx_err *err) {
    int S = ic->S, K = c->n_out;
    float *px = sx_malloc(sizeof(float) * (size_t)batch * 3 * S * S), *tg = sx_malloc(sizeof(float) * (size_t)batch * K);
    uint8_t *kn = sx_malloc((size_t)batch * K);
    double ls = 0;
    int rc = 0;
    for (size_t i0 = 0; i0 < n && !rc; i0 += (size_t)batch) {
        int B = (int)(n - i0 < (size_t)batch ? n - i0 : (size_t)batch);
        for (int b = 0; b < B; b++) {
            size_t i = idx[i0 + b];
            image_cache_input(ic, i, NULL, NULL, NULL, px + (size_t)b * 3 * S * S);
            memcpy(tg + (size_t)b * K, mt->targets + i * K, sizeof(float) * K);
            memcpy(kn + (size_t)b * K, mt->known + i * K, K);
        }
        if ((rc = classifier_forward(c, px, B, err))) break;
        ls += classifier_heads_loss(c, tg, kn, 0.0f) * B;
        classifier_outputs(c, prob + i0 * K, NULL);
    }
    if (loss) *loss = n ? ls / (double)n : NAN;
    free(px); free(tg); free(kn);
    return rc;
}

static double chance_loss(const head_layout *L) {
    double s = log(2.0);
    for (int g = 0; g < L->n_groups; g++)
        if (L->groups[g].kind == HEAD_SOFTMAX) s += log((double)L->groups[g].n);
    return s;
}

typedef struct {
    const multitask *mt;
    const heads_images *im;
    const ft_opts *o;
    const fth_opts *h;
} fold_ctx;

/* Training input of sample idx into px (3,S,S); scratch S*S bytes. */
static int train_input(const fold_ctx *fc, size_t idx, int ep, uint8_t *scratch, float *px) {
    const ft_opts *o = fc->o;
    int S = fc->im->ic.S;
    sx_rng r;   /* per (seed, epoch, sample), as finetune_fold */
    rng_seed(&r, o->seed ^ ((uint64_t)ep << 40) ^ ((uint64_t)idx * 0x2545F4914F6CDD1DULL));
    if (!fc->h->ior || !o->augment) {
        image_cache_input(&fc->im->ic, idx, o->augment ? &o->aug : NULL, &r, scratch, px);
        return 0;
    }
    pix_box bx[MT_MAX_BOXES];
    int W = fc->im->w[idx], H = fc->im->h[idx], nb = multitask_boxes_px(fc->mt, idx, W, H, bx, MT_MAX_BOXES);
    sx_err e;
    if (ior_crop(fc->im->src[idx], W, H, bx, nb, &fc->h->ip, &r, scratch, NULL, &e)) return -1;
    image_u8_to_chw(scratch, S, px);
    return 0;
}

static int train_fold(classifier *c, const fold_ctx *fc, const size_t *tr, size_t ntr, const size_t *va, size_t nva,
                      const char *best_dir, const char *log_dir, const char *label, ft_result *res, sx_err *err) {
    const ft_opts *o = fc->o;
    const multitask *mt = fc->mt;
    memset(res, 0, sizeof *res);
    if (ntr == 0) return sx_fail(err, "fine-tuning: no training samples");
    int S = fc->im->ic.S, K = c->n_out, mb = o->micro_batch < o->batch ? o->micro_batch : o->batch;
    double chance = chance_loss(&mt->L);
    long spe, total, warm, step = 0;
    ft_optim op;
    size_t *perm = ft_loop_begin(&op, c, o, tr, ntr, &spe, &total, &warm, err);
    if (!perm) return -1;
    float *px = sx_malloc(sizeof(float) * (size_t)mb * 3 * S * S), *tg = sx_malloc(sizeof(float) * (size_t)mb * K);
    uint8_t *kn = sx_malloc((size_t)mb * K), *scratch = sx_malloc((size_t)mb * S * S);
    double *vprob = sx_malloc(sizeof(double) * (nva ? nva : 1) * K);
    float *vtg = sx_malloc(sizeof(float) * (nva ? nva : 1) * K);
    uint8_t *vkn = sx_malloc((nva ? nva : 1) * K);
    evh_gather(mt, va, nva, vtg, vkn, NULL);
    sx_rng shuf;
    FILE *pf = ft_run_begin(res, o, &shuf);
    double t0 = sx_now(), best_loss = INFINITY;
    int rc = 0;
    for (int ep = 1; ep <= o->epochs && !rc; ep++) {
        double te = sx_now(), lsum = 0, lr = 0;
        for (long s = 0; s < spe && !rc; s++, step++) {
            size_t B, b0 = ft_step_begin(c, o, perm, ntr, &shuf, s, step, total, warm, &B, &lr);
            for (size_t m0 = 0; m0 < B && !rc; m0 += (size_t)mb) {
                int Bm = (int)(B - m0 < (size_t)mb ? B - m0 : (size_t)mb), bad = 0;
#pragma omp parallel for schedule(dynamic) reduction(| : bad)
                for (int b = 0; b < Bm; b++) {
                    size_t idx = perm[b0 + m0 + b];
                    bad |= train_input(fc, idx, ep, scratch + (size_t)b * S * S, px + (size_t)b * 3 * S * S) != 0;
                    memcpy(tg + (size_t)b * K, mt->targets + idx * K, sizeof(float) * K);
                    memcpy(kn + (size_t)b * K, mt->known + idx * K, K);
                }
                if (bad) { rc = sx_fail(err, "fine-tuning: bad IoR crop parameters"); break; }
                if ((rc = classifier_forward(c, px, Bm, err))) break;
                lsum += classifier_heads_loss(c, tg, kn, (float)Bm / (float)B) * Bm;
            }
            if (rc || (rc = ft_check_step(lsum, ep, s, o, err))) break;
            ft_optim_step(&op, c, o, lr);
        }
        if (rc) break;
        if (o->epoch_hook) o->epoch_hook(ep, c, o->hook_ctx);
        ft_epoch *e = ft_log_epoch(res, ep, lsum / (double)ntr, lr, chance, o, err);
        if (!e) { rc = -1; break; }
        if ((rc = predict_heads(c, mt, &fc->im->ic, va, nva, o->eval_batch, vprob, &e->val_loss, err))) break;
        e->val_score = evh_mean_auroc(&mt->L, vprob, vtg, vkn, nva);
        if (nva && !isfinite(e->val_loss)) {
            rc = sx_fail(err, "fine-tuning diverged: the validation loss is not finite at epoch %d", ep);
            break;
        }
        double sel = nva == 0 ? (double)ep : isnan(e->val_score) ? -e->val_loss : e->val_score;
        if (sel > res->best_score || (nva && sel == res->best_score && e->val_loss < best_loss)) {
            res->best_score = sel;
            best_loss = e->val_loss;
            res->best_epoch = ep;
            if (best_dir && (rc = classifier_save(c, best_dir, mt->name, err))) break;
        }
        e->seconds = sx_now() - te;
        if (log_dir) ft_write_logs(log_dir, res, 0);
        if (pf)
            fprintf(pf, "%s epoch %d/%d  train %.4f  val loss %.4f  val mean AUROC %.4f  best %d  %.0f s  ETA %.0f s\n",
                    label, ep, o->epochs, e->train_loss, e->val_loss, e->val_score, res->best_epoch, e->seconds,
                    (sx_now() - t0) / ep * (o->epochs - ep));
    }
    ft_optim_free(&op);
    free(perm); free(px); free(tg); free(kn); free(scratch); free(vprob); free(vtg); free(vkn);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The protocol                                                             */

static cJSON *score_test(classifier *c, const multitask *mt, const image_cache *ic, const size_t *idx, size_t n,
                         int batch, const char *dir, uint64_t seed, sx_err *err) {
    int K = c->n_out;
    double *prob = sx_malloc(sizeof(double) * (n ? n : 1) * K);
    float *tg = sx_malloc(sizeof(float) * (n ? n : 1) * K);
    uint8_t *kn = sx_malloc((n ? n : 1) * K);
    const char **names = sx_malloc(sizeof(char *) * (n ? n : 1));
    evh_gather(mt, idx, n, tg, kn, names);
    cJSON *mj = NULL;
    char path[4600];
    if (!predict_heads(c, mt, ic, idx, n, batch, prob, NULL, err) && !adapt_mkdir(dir, err)) {
        snprintf(path, sizeof path, "%s/predictions.csv", dir);
        if (!evh_write_predictions(path, &mt->L, names, prob, NULL, NULL, n, err)) {
            mj = evh_metrics(&mt->L, prob, tg, kn, n, 1000, seed);
            snprintf(path, sizeof path, "%s/metrics.json", dir);
            if (json_write_file(path, mj, err)) { cJSON_Delete(mj); mj = NULL; }
        }
    }
    free(prob); free(tg); free(kn); free(names);
    return mj;
}

static cJSON *run_fold(const multitask *mt, const split *sp, const finetune_run_opts *o, const fold_ctx *fc, int k,
                       const size_t *test_idx, size_t n_test, sx_err *err) {
    size_t ntr, nva, *tr = NULL, *va = split_indices(sp, SPLIT_VAL, k, &nva);
    if (split_train_subset(&mt->view, sp, k, o->label_fraction, o->ft.seed + 17, &tr, &ntr, err)) { free(va); return NULL; }
    char fdir[FT_FDIR], best[FT_FPATH], tdir[FT_FPATH], label[FT_FLABEL];
    ft_fold_paths(o->out, k, fdir, best, tdir, label);
    cJSON *mj = NULL;
    classifier c;
    ft_result res = {0};
    if (adapt_mkdir(fdir, err) ||
        classifier_create_heads(&c, o->model, o->config, &mt->L, o->ft.seed * 1000 + (uint64_t)k, err))
        goto done;
    int frc = train_fold(&c, fc, tr, ntr, va, nva, best, fdir, label, &res, err);
    classifier_free(&c);
    if (frc || classifier_load(&c, best, err)) goto done;   /* score the model saved at the best epoch */
    mj = score_test(&c, mt, &fc->im->ic, test_idx, n_test, o->ft.eval_batch, tdir, o->ft.seed + (uint64_t)k, err);
    classifier_free(&c);
    if (mj) {
        cJSON_AddNumberToObject(mj, "fold", k);
        cJSON_AddNumberToObject(mj, "n_train", (double)ntr);
        cJSON_AddNumberToObject(mj, "n_val", (double)nva);
        cJSON_AddNumberToObject(mj, "best_epoch", res.best_epoch);
        cJSON_AddNumberToObject(mj, "val_score_best", res.log[res.best_epoch - 1].val_score);
        cJSON_AddNumberToObject(mj, "val_score_last", res.log[res.n_log - 1].val_score);
    }
done:
    ft_result_free(&res);
    free(tr); free(va);
    return mj;
}

static int out_is_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return access(path, F_OK) != 0;   /* missing: fine; a file: not */
    struct dirent *e;
    int any = 0;
    while (!any && (e = readdir(d))) any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return !any;
}

int finetune_heads_run(const multitask *mt, const split *sp, const finetune_run_opts *o, const fth_opts *h, sx_err *err) {
    if (!o->config) return sx_fail(err, "finetune: no model configuration");
    if (!(o->label_fraction > 0 && o->label_fraction <= 1))
        return sx_fail(err, "finetune: label fraction %g is not in (0, 1]", o->label_fraction);
    if (!(o->ft.lr > 0) || !isfinite(o->ft.lr) || !(o->ft.min_lr >= 0) || !isfinite(o->ft.min_lr))
        return sx_fail(err, "finetune: need a finite lr > 0 and min_lr >= 0");
    if (o->ft.batch < 1 || o->ft.micro_batch < 1 || o->ft.eval_batch < 1 || o->ft.epochs < 1)
        return sx_fail(err, "fine-tuning: batch, micro-batch, eval batch and epochs must be >= 1");
    if (!o->force && !out_is_empty(o->out))
        return sx_fail(err, "%s already holds results; use --force to overwrite them, or another --out", o->out);
    int S = o->config->image_size;
    fth_opts hh = *h;
    hh.ip.out_size = S;
    if (hh.crop_side <= 0) hh.crop_side = 2 * S;
    if (adapt_start_out(o->out, &mt->view, sp, err)) return -1;
    if (o->ft.progress)
        fprintf(o->ft.progress, "finetune %s (multi-head, %d outputs in %d groups): %zu images, %d folds, from %s\n",
                mt->name, mt->L.n_out, mt->L.n_groups, mt->n, sp->folds, o->init_name ? o->init_name : "?");
    heads_images im;
    if (images_build(&im, mt, S, hh.crop_side, hh.ior && o->ft.augment, o->ft.progress, err)) return -1;
    fold_ctx fc = {mt, &im, &o->ft, &hh};
    size_t n_test = 0, *test_idx = split_indices(sp, SPLIT_TEST, 0, &n_test);
    cJSON *results = cJSON_CreateObject();
    cJSON_AddStringToObject(results, "task", mt->name);
    cJSON_AddStringToObject(results, "model", o->init_name ? o->init_name : "");
    cJSON_AddStringToObject(results, "init", o->model ? "checkpoint" : "random");
    cJSON_AddStringToObject(results, "inputs", hh.ior && o->ft.augment ? "ior_crops" : o->ft.augment ? "augment" : "plain");
    cJSON_AddNumberToObject(results, "label_fraction", o->label_fraction);
    cJSON_AddNumberToObject(results, "epochs", o->ft.epochs);
    cJSON_AddNumberToObject(results, "test_images", (double)n_test);
    cJSON *folds = cJSON_AddArrayToObject(results, "folds");
    int rc = 0, n_done = 0;
    double sum = 0;
    if (o->table) fprintf(o->table, "%-5s %8s %6s %10s %10s\n", "fold", "n_train", "best", "val_best", "test_mean");
    for (int k = 0; k < sp->folds && !rc; k++) {
        if (o->only && !o->only[k]) continue;
        cJSON *mj = run_fold(mt, sp, o, &fc, k, test_idx, n_test, err);
        if (!mj) { rc = -1; break; }
        cJSON_AddItemToArray(folds, mj);
        const cJSON *ma = cJSON_GetObjectItem(mj, "mean_auroc");
        double v = cJSON_IsNumber(ma) ? ma->valuedouble : NAN;
        sum += v;
        n_done++;
        if (o->table)
            fprintf(o->table, "%-5d %8.0f %6.0f %10.4f %10.4f\n", k, cJSON_GetObjectItem(mj, "n_train")->valuedouble,
                    cJSON_GetObjectItem(mj, "best_epoch")->valuedouble,
                    cJSON_GetObjectItem(mj, "val_score_best")->valuedouble, v);
    }
    if (!rc && !n_done) rc = sx_fail(err, "finetune: no fold was run");
    if (!rc) {
        cJSON_AddNumberToObject(results, "mean_test_auroc", sum / n_done);
        char path[4400];
        snprintf(path, sizeof path, "%s/results.json", o->out);
        rc = json_write_file(path, results, err);
    }
    cJSON_Delete(results);
    free(test_idx);
    images_free(&im, mt->n);
    return rc;
}
