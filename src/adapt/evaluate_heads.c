/* evaluate_heads.c: per-group scores of a multi-head classifier, whole-image
 * and region-guided (evaluate_heads.h). */
#include "adapt/evaluate_heads.h"
#include "data/csv.h"
#include "adapt/finetune.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "io/image.h"
#include "nn/classifier.h"
#include "skelex.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------------ */
/* Metrics                                                                  */

/* Rows of softmax group G known in full: their probabilities (renormalised
 * within the group) and answers; returns the count. */
static size_t group_rows(const head_layout *L, const head_group *G, const double *prob, const float *tg,
                         const uint8_t *kn, size_t n, double *gp, int *lab) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const double *p = prob + i * L->n_out;
        const float *t = tg + i * L->n_out;
        const uint8_t *k = kn + i * L->n_out;
        int all = 1, best = 0;
        double s = 0;
        for (int q = 0; q < G->n; q++) {
            all &= k[G->outputs[q]] != 0;
            s += p[G->outputs[q]];
            if (t[G->outputs[q]] > t[G->outputs[best]]) best = q;
        }
        if (!all) continue;
        for (int q = 0; q < G->n; q++) gp[m * G->n + q] = s > 0 ? p[G->outputs[q]] / s : 1.0 / G->n;
        lab[m++] = best;
    }
    return m;
}

/* Entries of sigmoid output j known: (1-p, p) and labels; returns the count. */
static size_t output_rows(const head_layout *L, int j, const double *prob, const float *tg, const uint8_t *kn,
                          size_t n, double *p2, int *lab) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!kn[i * L->n_out + j]) continue;
        double p = prob[i * L->n_out + j];
        p2[2 * m] = 1 - p;
        p2[2 * m + 1] = p;
        lab[m++] = tg[i * L->n_out + j] >= 0.5f;
    }
    return m;
}

/* Macro AUROC over the classes present (both as positive and negative). */
static double macro_present(const double *gp, int K, const int *lab, size_t m) {
    if (K == 2) return metric_auroc_prob(gp, 2, lab, m, NULL);
    double *per = sx_malloc(sizeof(double) * K), s = 0;
    int c = 0;
    metric_auroc_prob(gp, K, lab, m, per);
    for (int k = 0; k < K; k++)
        if (isfinite(per[k])) { s += per[k]; c++; }
    free(per);
    return c ? s / c : NAN;
}

double evh_mean_auroc(const head_layout *L, const double *prob, const float *tg, const uint8_t *kn, size_t n) {
    int maxg = 2;
    for (int g = 0; g < L->n_groups; g++) maxg = L->groups[g].n > maxg ? L->groups[g].n : maxg;
    double *buf = sx_malloc(sizeof(double) * (n ? n : 1) * maxg), s = 0;
    int *lab = sx_malloc(sizeof(int) * (n ? n : 1)), c = 0;
    for (int g = 0; g < L->n_groups; g++) {
        const head_group *G = &L->groups[g];
        if (G->kind == HEAD_SOFTMAX) {
            size_t m = group_rows(L, G, prob, tg, kn, n, buf, lab);
            double a = m ? macro_present(buf, G->n, lab, m) : NAN;
            if (isfinite(a)) { s += a; c++; }
        } else
            for (int q = 0; q < G->n; q++) {
                size_t m = output_rows(L, G->outputs[q], prob, tg, kn, n, buf, lab);
                double a = m ? metric_auroc_prob(buf, 2, lab, m, NULL) : NAN;
                if (isfinite(a)) { s += a; c++; }
            }
    }
    free(buf); free(lab);
    return c ? s / c : NAN;
}

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

static void add_ci(cJSON *o, const double *p, int K, const int *lab, size_t m, int n_boot, uint64_t seed) {
    if (n_boot <= 0) return;
    metric_ci ci = metric_auroc_ci(p, K, lab, m, n_boot, 0.95, seed);
    cJSON *a = cJSON_AddArrayToObject(o, "auroc_ci95");
    cJSON_AddItemToArray(a, isfinite(ci.lo) ? cJSON_CreateNumber(ci.lo) : cJSON_CreateNull());
    cJSON_AddItemToArray(a, isfinite(ci.hi) ? cJSON_CreateNumber(ci.hi) : cJSON_CreateNull());
}

cJSON *evh_metrics(const head_layout *L, const double *prob, const float *tg, const uint8_t *kn, size_t n, int n_boot,
                   uint64_t seed) {
    int maxg = 2;
    for (int g = 0; g < L->n_groups; g++) maxg = L->groups[g].n > maxg ? L->groups[g].n : maxg;
    double *buf = sx_malloc(sizeof(double) * (n ? n : 1) * maxg);
    int *lab = sx_malloc(sizeof(int) * (n ? n : 1)), *pred = sx_malloc(sizeof(int) * (n ? n : 1));
    cJSON *r = cJSON_CreateObject();
    add_num(r, "mean_auroc", evh_mean_auroc(L, prob, tg, kn, n));
    cJSON_AddNumberToObject(r, "n", (double)n);
    cJSON *gs = cJSON_AddObjectToObject(r, "groups");
    for (int g = 0; g < L->n_groups; g++) {
        const head_group *G = &L->groups[g];
        cJSON *go = cJSON_AddObjectToObject(gs, G->name);
        cJSON_AddStringToObject(go, "kind", G->kind == HEAD_SOFTMAX ? "softmax" : "sigmoid");
        calibration cal;
        if (G->kind == HEAD_SOFTMAX) {
            size_t m = group_rows(L, G, prob, tg, kn, n, buf, lab);
            cJSON_AddNumberToObject(go, "n", (double)m);
            cJSON *cnt = cJSON_AddObjectToObject(go, "counts");
            for (int q = 0; q < G->n; q++) {
                size_t c = 0;
                for (size_t i = 0; i < m; i++) c += lab[i] == q;
                cJSON_AddNumberToObject(cnt, L->names[G->outputs[q]], (double)c);
            }
            for (size_t i = 0; i < m; i++) pred[i] = metric_argmax(buf + i * G->n, G->n);
            add_num(go, "macro_auroc", m ? macro_present(buf, G->n, lab, m) : NAN);
            if (m) add_ci(go, buf, G->n, lab, m, n_boot, seed + (uint64_t)g);
            add_num(go, "balanced_accuracy", m ? metric_balanced_accuracy(pred, lab, m, G->n) : NAN);
            if (m) metric_calibration(buf, G->n, lab, m, &cal);
            add_num(go, "ece", m ? cal.ece : NAN);
            continue;
        }
        cJSON *outs = cJSON_AddObjectToObject(go, "outputs");
        for (int q = 0; q < G->n; q++) {
            int j = G->outputs[q];
            size_t m = output_rows(L, j, prob, tg, kn, n, buf, lab), pos = 0;
            for (size_t i = 0; i < m; i++) pos += lab[i];
            cJSON *oo = cJSON_AddObjectToObject(outs, L->names[j]);
            cJSON_AddNumberToObject(oo, "n", (double)m);
            cJSON_AddNumberToObject(oo, "positives", (double)pos);
            add_num(oo, "auroc", m ? metric_auroc_prob(buf, 2, lab, m, NULL) : NAN);
            if (m) add_ci(oo, buf, 2, lab, m, n_boot, seed + 1000 + (uint64_t)j);
            for (size_t i = 0; i < m; i++) pred[i] = buf[2 * i + 1] > buf[2 * i];
            add_num(oo, "balanced_accuracy", m ? metric_balanced_accuracy(pred, lab, m, 2) : NAN);
            if (m) metric_calibration(buf, 2, lab, m, &cal);
            add_num(oo, "ece", m ? cal.ece : NAN);
        }
    }
    free(buf); free(lab); free(pred);
    return r;
}

int evh_write_predictions(const char *path, const head_layout *L, const char *const *names, const double *prob,
                          const int *region, const int *nregions, size_t n, sx_err *err) {
    char tmp[4608], col[1100];
    FILE *f = sx_atomic_open(path, tmp, sizeof tmp, err);
    if (!f) return -1;
    fputs("image", f);
    for (int j = 0; j < L->n_out; j++) { fputc(',', f); csv_write_field(f, L->names[j]); }
    for (int j = 0; region && j < L->n_out; j++) {   /* the suffix inside the field, so quoting covers it */
        snprintf(col, sizeof col, "%s_region", L->names[j]);
        fputc(',', f);
        csv_write_field(f, col);
    }
    if (nregions) fputs(",regions", f);
    fputc('\n', f);
    for (size_t i = 0; i < n; i++) {
        csv_write_field(f, names[i]);
        for (int j = 0; j < L->n_out; j++) fprintf(f, ",%.6f", prob[i * L->n_out + j]);
        for (int j = 0; region && j < L->n_out; j++) fprintf(f, ",%d", region[i * L->n_out + j]);
        if (nregions) fprintf(f, ",%d", nregions[i]);
        fputc('\n', f);
    }
    return sx_atomic_commit(f, tmp, path, err);
}

void evh_print_table(FILE *f, const cJSON *combined) {
    const cJSON *modes = cJSON_GetObjectItem(combined, "modes");
    if (!modes || !modes->child) return;
    fprintf(f, "%-28s %6s", "group / output (AUROC)", "n");
    for (const cJSON *m = modes->child; m; m = m->next) fprintf(f, " %10s", m->string);
    fprintf(f, "\n");
    const cJSON *g0 = cJSON_GetObjectItem(modes->child, "groups");
    for (const cJSON *g = g0 ? g0->child : NULL; g; g = g->next) {
        const cJSON *kind = cJSON_GetObjectItem(g, "kind");
        int soft = cJSON_IsString(kind) && !strcmp(kind->valuestring, "softmax");
        const cJSON *outs = soft ? NULL : cJSON_GetObjectItem(g, "outputs");
        const cJSON *o = soft ? g : outs ? outs->child : NULL;
        for (; o; o = soft ? NULL : o->next) {
            char label[64];
            snprintf(label, sizeof label, "%s%s%s", g->string, soft ? " (macro)" : ": ", soft ? "" : o->string);
            fprintf(f, "%-28s %6.0f", label, cJSON_GetObjectItem(o, "n")->valuedouble);
            for (const cJSON *m = modes->child; m; m = m->next) {
                const cJSON *mg = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(m, "groups"), g->string),
                                                      soft ? "macro_auroc" : "outputs");
                if (!soft) mg = cJSON_GetObjectItem(cJSON_GetObjectItem(mg, o->string), "auroc");
                if (cJSON_IsNumber(mg)) fprintf(f, " %10.4f", mg->valuedouble);
                else fprintf(f, " %10s", "-");
            }
            fprintf(f, "\n");
        }
    }
    fprintf(f, "%-28s %6s", "mean AUROC", "");
    for (const cJSON *m = modes->child; m; m = m->next) {
        const cJSON *a = cJSON_GetObjectItem(m, "mean_auroc");
        if (cJSON_IsNumber(a)) fprintf(f, " %10.4f", a->valuedouble);
        else fprintf(f, " %10s", "-");
    }
    fprintf(f, "\n");
}

/* ------------------------------------------------------------------------ */
/* Inference, whole-image and region-guided                                 */

void evh_gather(const multitask *mt, const size_t *idx, size_t n, float *tg, uint8_t *kn, const char **names) {
    size_t K = (size_t)mt->L.n_out;
    for (size_t i = 0; i < n; i++) {
        memcpy(tg + i * K, mt->targets + idx[i] * K, sizeof(float) * K);
        memcpy(kn + i * K, mt->known + idx[i] * K, K);
        if (names) names[i] = task_rel_path(&mt->view, idx[i]);
    }
}

void evh_opts_default(evh_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch = 32;
    o->passes = 10;
    o->n_boot = 1000;
    regions_default_params(&o->rp);
}

static int same_layout(const head_layout *a, const head_layout *b) {
    if (a->n_out != b->n_out || a->n_groups != b->n_groups) return 0;
    for (int j = 0; j < a->n_out; j++)
        if (strcmp(a->names[j], b->names[j])) return 0;
    for (int g = 0; g < a->n_groups; g++) {
        const head_group *x = &a->groups[g], *y = &b->groups[g];
        if (strcmp(x->name, y->name) || x->kind != y->kind || x->n != y->n) return 0;
        for (int q = 0; q < x->n; q++)
            if (x->outputs[q] != y->outputs[q]) return 0;
    }
    return 1;
}

enum { M_WHOLE, M_BOXES, M_ERRORMAP, M_N };
static const char *const MODE_NAME[M_N] = {"whole", "boxes", "errormap"};

typedef struct {
    classifier *c;
    int S, K;
    float *px, *pf, *pmax;
    double *pd;
    uint8_t *sq;
} runner;

/* The regions of one image through the model: per output the maximum and its region. */
static int run_regions(runner *ru, const uint8_t *u8, int W, int H, const region *rg, int R, double *prob, int *reg,
                       int *nr, sx_err *err) {
    *nr = R;
    size_t ss = (size_t)ru->S * ru->S;
    for (int r = 0; r < R; r++) {
        if (regions_crop_u8(u8, W, H, &rg[r].box, ru->S, ru->sq, err)) return -1;
        image_u8_to_chw(ru->sq, ru->S, ru->px + (size_t)r * 3 * ss);
    }
    if (classifier_forward(ru->c, ru->px, R, err)) return -1;
    classifier_outputs(ru->c, ru->pd, NULL);
    for (size_t q = 0; q < (size_t)R * ru->K; q++) ru->pf[q] = (float)ru->pd[q];
    regions_max(ru->pf, R, ru->K, ru->pmax, reg);
    for (int j = 0; j < ru->K; j++) prob[j] = ru->pmax[j];
    return 0;
}

static int given_boxes(const char *dir, const char *path, int W, int H, region *rg, sx_err *err) {
    norm_box nb[MT_MAX_BOXES];
    int n = multitask_read_yolo(dir, path, nb, MT_MAX_BOXES, err);
    return n < 0 ? -1 : regions_from_boxes(nb, n, W, H, rg);
}

static int errormap_regions(skx_ctx *ctx, const evh_opts *o, const char *path, int W, int H, region *rg, int *R,
                            sx_err *err) {
    skx_image *im = NULL;
    skx_error e;
    skx_errormap em;
    skx_errormap_opts eo;
    skx_errormap_opts_default(&eo);
    eo.passes = o->passes;
    if (skx_image_load_file(path, &im, &e)) return sx_fail(err, "%s", e.msg);
    int rc = skx_errormap_compute(ctx, im, &eo, &em, &e);
    skx_image_free(im);
    if (rc) return sx_fail(err, "%s: error map: %s", path, e.msg);
    rc = regions_from_errormap(em.map, em.size, W, H, &o->rp, rg, R, err);
    skx_errormap_free(&em);
    return rc;
}

/* Every mode's probabilities (n x K) and regions for the images idx. */
static int infer_all(const multitask *mt, const size_t *idx, size_t n, classifier *c, const evh_opts *o,
                     const int *on, double **prob, int **reg, int **nreg, sx_err *err) {
    runner ru = {.c = c, .S = c->enc.cfg.image_size, .K = c->n_out};
    int Rmax = MT_MAX_BOXES + 1 > o->rp.k + 1 ? MT_MAX_BOXES + 1 : o->rp.k + 1, rc = 0;
    size_t ss = (size_t)ru.S * ru.S;
    ru.px = sx_malloc(sizeof(float) * Rmax * 3 * ss);
    ru.pf = sx_malloc(sizeof(float) * Rmax * ru.K);
    ru.pd = sx_malloc(sizeof(double) * Rmax * ru.K);
    ru.pmax = sx_malloc(sizeof(float) * ru.K);
    ru.sq = sx_malloc(ss);
    region *rg = sx_malloc(sizeof(region) * Rmax);
    skx_model *mm = NULL;
    skx_ctx *ctx = NULL;
    if (on[M_ERRORMAP]) {
        skx_error e;
        if (skx_model_load(o->mae, &mm, &e) || skx_ctx_new(mm, o->passes, 0, &ctx, &e))
            rc = sx_fail(err, "%s: %s", o->mae, e.msg);
    }
    for (size_t i = 0; i < n && !rc; i++) {
        const char *path = mt->view.samples[idx[i]].path;
        gray_image img;
        if ((rc = image_load_gray(path, &img, err))) break;
        image_preprocess(&img, ru.S, ru.px);
        if (!(rc = classifier_forward(c, ru.px, 1, err))) classifier_outputs(c, prob[M_WHOLE] + i * ru.K, NULL);
        for (int j = 0; j < ru.K; j++) reg[M_WHOLE][i * ru.K + j] = 0;
        uint8_t *u8 = NULL;
        if (!rc && (on[M_BOXES] || on[M_ERRORMAP])) {
            u8 = sx_malloc((size_t)img.width * img.height);
            image_minmax_u8(&img, u8);
        }
        int W = img.width, H = img.height, R = 0;
        if (!rc && on[M_BOXES] && (R = given_boxes(o->boxes_dir, path, W, H, rg, err)) < 0) rc = -1;
        if (!rc && on[M_BOXES]) rc = run_regions(&ru, u8, W, H, rg, R, prob[M_BOXES] + i * ru.K, reg[M_BOXES] + i * ru.K,
                                             nreg[M_BOXES] + i, err);
        if (!rc && on[M_ERRORMAP]) rc = errormap_regions(ctx, o, path, W, H, rg, &R, err);
        if (!rc && on[M_ERRORMAP])
            rc = run_regions(&ru, u8, W, H, rg, R, prob[M_ERRORMAP] + i * ru.K, reg[M_ERRORMAP] + i * ru.K,
                             nreg[M_ERRORMAP] + i, err);
        free(u8);
        gray_image_free(&img);
        if (o->progress && ((i + 1) % 100 == 0 || i + 1 == n)) fprintf(o->progress, "eval %zu/%zu\n", i + 1, n);
    }
    skx_ctx_free(ctx);
    skx_model_free(mm);
    free(ru.px); free(ru.pf); free(ru.pd); free(ru.pmax); free(ru.sq); free(rg);
    return rc;
}

/* "regions_mean" and, per output, the share of images whose maximum came
 * from a region other than the whole image (the last one). */
static void region_stats(cJSON *mj, const head_layout *L, const int *reg, const int *nreg, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += nreg[i];
    cJSON_AddNumberToObject(mj, "regions_mean", n ? s / (double)n : 0);
    cJSON *fr = cJSON_AddObjectToObject(mj, "max_not_whole_share");
    for (int j = 0; j < L->n_out; j++) {
        size_t c = 0;
        for (size_t i = 0; i < n; i++) c += reg[i * L->n_out + j] != nreg[i] - 1;
        cJSON_AddNumberToObject(fr, L->names[j], n ? (double)c / (double)n : 0);
    }
}

int eval_heads_run(const multitask *mt, const split *sp, const evh_opts *o, cJSON **metrics, sx_err *err) {
    *metrics = NULL;
    classifier c;
    if (classifier_load(&c, o->model, err)) return -1;
    if (!c.heads) { classifier_free(&c); return sx_fail(err, "%s: not a multi-head classifier (no \"groups\")", o->model); }
    if (!same_layout(c.heads, &mt->L)) {
        classifier_free(&c);
        return sx_fail(err, "%s: the model's outputs and groups are not the task's (%s)", o->model, mt->name);
    }
    size_t n = 0, *idx;
    if (o->all) {
        n = mt->n;
        idx = sx_malloc(sizeof(size_t) * (n ? n : 1));
        for (size_t i = 0; i < n; i++) idx[i] = i;
    } else
        idx = split_indices(sp, SPLIT_TEST, 0, &n);
    int on[M_N] = {1, o->boxes_dir != NULL, o->mae != NULL}, K = c.n_out, rc = 0;
    double *prob[M_N] = {0};
    int *reg[M_N] = {0}, *nreg[M_N] = {0};
    for (int m = 0; m < M_N; m++) {
        prob[m] = sx_calloc((n ? n : 1) * K, sizeof(double));
        reg[m] = sx_calloc((n ? n : 1) * K, sizeof(int));
        nreg[m] = sx_calloc(n ? n : 1, sizeof(int));
    }
    float *tg = sx_malloc(sizeof(float) * (n ? n : 1) * K);
    uint8_t *kn = sx_malloc((n ? n : 1) * K);
    const char **names = sx_malloc(sizeof(char *) * (n ? n : 1));
    evh_gather(mt, idx, n, tg, kn, names);
    if (n == 0) rc = sx_fail(err, "%s: no image to score", mt->name);
    if (!rc) rc = adapt_mkdir(o->out, err);
    if (!rc) rc = infer_all(mt, idx, n, &c, o, on, prob, reg, nreg, err);
    cJSON *all = cJSON_CreateObject(), *modes = NULL;
    cJSON_AddStringToObject(all, "task", mt->name);
    cJSON_AddStringToObject(all, "model", o->model);
    cJSON_AddNumberToObject(all, "n", (double)n);
    cJSON_AddStringToObject(all, "split", o->all ? "all" : "test");
    modes = cJSON_AddObjectToObject(all, "modes");
    char path[4600];
    for (int m = 0; m < M_N && !rc; m++) {
        if (!on[m]) continue;
        snprintf(path, sizeof path, "%s/%s", o->out, MODE_NAME[m]);
        if ((rc = adapt_mkdir(path, err))) break;
        snprintf(path, sizeof path, "%s/%s/predictions.csv", o->out, MODE_NAME[m]);
        if ((rc = evh_write_predictions(path, &mt->L, names, prob[m], m ? reg[m] : NULL, m ? nreg[m] : NULL, n, err)))
            break;
        cJSON *mj = evh_metrics(&mt->L, prob[m], tg, kn, n, o->n_boot, o->seed);
        if (m) region_stats(mj, &mt->L, reg[m], nreg[m], n);
        snprintf(path, sizeof path, "%s/%s/metrics.json", o->out, MODE_NAME[m]);
        rc = json_write_file(path, mj, err);
        cJSON_AddItemToObject(modes, MODE_NAME[m], mj);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/metrics.json", o->out);
        rc = json_write_file(path, all, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/metrics.txt", o->out);
        FILE *f = fopen(path, "w");
        if (!f) rc = sx_fail(err, "%s: cannot write (%s)", path, strerror(errno));
        else { evh_print_table(f, all); if (fclose(f)) rc = sx_fail(err, "%s: write failed", path); }
    }
    if (rc) cJSON_Delete(all);
    else *metrics = all;
    for (int m = 0; m < M_N; m++) { free(prob[m]); free(reg[m]); free(nreg[m]); }
    free(tg); free(kn); free(names); free(idx);
    classifier_free(&c);
    return rc;
}
