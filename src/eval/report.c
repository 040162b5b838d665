/* report.c: ROC, confusion-matrix, reliability and scatter plots as SVG
 * (see report.h). Every plot is a fixed-size figure with a white
 * background, a title, axes with ticks and a legend where one is needed;
 * coordinates are computed here, text is left to the viewer.
 * Not here: metric definitions (metrics.c), PNG output, fonts. */
#include "eval/report.h"
#include "data/csv.h"
#include <errno.h>
#include <unistd.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *PALETTE[10] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
                                  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

/* ------------------------------------------------------------ SVG basics */

static void put_escaped(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            if ((unsigned char)*s >= 0x20) fputc(*s, f);  /* control characters are dropped */
        }
    }
}

static FILE *svg_open(const char *path, int W, int H, const char *title, sx_err *err) {
    FILE *f = fopen(path, "w");
    if (!f) { sx_fail(err, "%s: cannot write", path); return NULL; }
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%d\" y=\"26\" text-anchor=\"middle\" font-size=\"15\">", W / 2);
    put_escaped(f, title);
    fprintf(f, "</text>\n");
    return f;
}

static int svg_close(FILE *f, const char *path, sx_err *err) {
    fprintf(f, "</svg>\n");
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return sx_fail(err, "%s: write failed", path);
    return 0;
}

static void text_at(FILE *f, double x, double y, const char *anchor, const char *extra, const char *s) {
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"%s%s>", x, y, anchor, extra ? " " : "", extra ? extra : "");
    put_escaped(f, s);
    fprintf(f, "</text>\n");
}

/* A square unit plot area: frame, grid and ticks at 0, 0.2, ..., 1. */
typedef struct { double L, T, S; } unit_area;   /* left, top, side */

static double ux(unit_area a, double v) { return a.L + v * a.S; }
static double uy(unit_area a, double v) { return a.T + (1 - v) * a.S; }

/* Grid, frame and axis labels of a square plot: ticks+1 grid lines each way
 * at lo, lo+step, ... labelled with fmt; the y label sits ylab_dx left of
 * the frame. */
static void axes(FILE *f, unit_area a, const char *xlabel, const char *ylabel, int ticks, double lo, double step,
                 const char *fmt, double ylab_dx) {
    for (int k = 0; k <= ticks; k++) {
        double v = (double)k / ticks;
        char lab[32];
        snprintf(lab, sizeof lab, fmt, lo + k * step);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", ux(a, 0), uy(a, v), ux(a, 1), uy(a, v));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", ux(a, v), uy(a, 0), ux(a, v), uy(a, 1));
        text_at(f, ux(a, 0) - 6, uy(a, v) + 4, "end", NULL, lab);
        text_at(f, ux(a, v), uy(a, 0) + 16, "middle", NULL, lab);
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n", a.L, a.T, a.S, a.S);
    text_at(f, a.L + a.S / 2, a.T + a.S + 38, "middle", NULL, xlabel);
    char rot[64];
    snprintf(rot, sizeof rot, "transform=\"rotate(-90 %.1f %.1f)\"", a.L - ylab_dx, a.T + a.S / 2);
    text_at(f, a.L - ylab_dx, a.T + a.S / 2, "middle", rot, ylabel);
}

/* The [0,1] x [0,1] axes of the ROC curve and the reliability diagram. */
static void unit_axes(FILE *f, unit_area a, const char *xlabel, const char *ylabel) {
    axes(f, a, xlabel, ylabel, 5, 0.0, 0.2, "%.1f", 44);
}

static void diagonal(FILE *f, unit_area a, const char *label) {
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" stroke-dasharray=\"5,4\"/>\n",
            ux(a, 0), uy(a, 0), ux(a, 1), uy(a, 1));
    if (label) {
        char rot[64];
        snprintf(rot, sizeof rot, "fill=\"#777\" transform=\"rotate(-45 %.1f %.1f)\"", ux(a, 0.62), uy(a, 0.62) - 6);
        text_at(f, ux(a, 0.62), uy(a, 0.62) - 6, "middle", rot, label);
    }
}

static const char *class_label(const char *const *names, int k, char *buf, size_t cap) {
    if (names && names[k]) return names[k];
    snprintf(buf, cap, "class %d", k);
    return buf;
}

/* ------------------------------------------------------------------- ROC */

int report_roc_svg(const char *path, const char *title, const double *prob, int K, const int *label, size_t n,
                   const char *const *class_names, sx_err *err) {
    if (K < 2 || !n) return sx_fail(err, "%s: a ROC curve needs 2 or more classes and samples", path);
    unit_area a = {80, 50, 440};
    int ncurves = K == 2 ? 1 : K, W = 560, H = 560;
    FILE *f = svg_open(path, W, H, title, err);
    if (!f) return -1;
    unit_axes(f, a, "False positive rate (1 - specificity)", "True positive rate (sensitivity)");
    diagonal(f, a, "chance");
    double *score = sx_malloc(sizeof(double) * n);
    int *pos = sx_malloc(sizeof(int) * n);
    int row = 0;
    for (int c = 0; c < ncurves; c++) {
        int cls = K == 2 ? 1 : c;
        for (size_t i = 0; i < n; i++) { score[i] = prob[i * (size_t)K + cls]; pos[i] = label[i] == cls; }
        double *fpr, *tpr;
        size_t m;
        char name[32], legend[256];
        const char *cname = class_label(class_names, cls, name, sizeof name);
        if (metric_roc_curve(score, pos, n, &fpr, &tpr, &m)) {
            snprintf(legend, sizeof legend, "%.200s (AUC n/a: one class only)", cname);
        } else {
            const char *color = PALETTE[c % 10];
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
            for (size_t i = 0; i < m; i++) fprintf(f, "%.1f,%.1f ", ux(a, fpr[i]), uy(a, tpr[i]));
            fprintf(f, "\"/>\n");
            snprintf(legend, sizeof legend, "%.200s (AUC %.3f)", cname, metric_auroc(score, pos, n));
            free(fpr);
            free(tpr);
        }
        double ly = uy(a, 0) - 12 - 18.0 * (ncurves - 1 - row++);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n",
                ux(a, 0.45), ly - 4, ux(a, 0.45) + 18, ly - 4, PALETTE[c % 10]);
        text_at(f, ux(a, 0.45) + 24, ly, "start", NULL, legend);
    }
    free(score);
    free(pos);
    return svg_close(f, path, err);
}

/* ------------------------------------------------------ confusion matrix */

int report_confusion_svg(const char *path, const char *title, const size_t *cm, int K,
                         const char *const *class_names, sx_err *err) {
    if (K < 2) return sx_fail(err, "%s: a confusion matrix needs 2 or more classes", path);
    double cell = 480.0 / K;
    if (cell > 110) cell = 110;
    if (cell < 28) cell = 28;
    size_t longest = 8;   /* room for the names: about 7 px a character at 12 px */
    for (int k = 0; k < K && class_names; k++)
        if (class_names[k] && strlen(class_names[k]) > longest) longest = strlen(class_names[k]);
    if (longest > 40) longest = 40;
    double name_px = 7.0 * (double)longest, L = 50 + name_px, T = 80, side = cell * K;
    int W = (int)(L + side + 40), H = (int)(T + side + 60 + 0.6 * name_px);
    int title_px = (int)(8 * strlen(title)) + 40;   /* about 8 px a character at 15 px */
    if (W < title_px) W = title_px;
    FILE *f = svg_open(path, W, H, title, err);
    if (!f) return -1;
    int small = cell < 56;
    char buf[64], name[32];
    for (int t = 0; t < K; t++) {
        size_t rowsum = 0;
        for (int p = 0; p < K; p++) rowsum += cm[(size_t)t * K + p];
        for (int p = 0; p < K; p++) {
            size_t v = cm[(size_t)t * K + p];
            double share = rowsum ? (double)v / (double)rowsum : 0;
            int r = (int)lround(247 - share * (247 - 8)), g = (int)lround(251 - share * (251 - 69)),
                b = (int)lround(255 - share * (255 - 148));   /* white -> dark blue */
            double x = L + p * cell, y = T + t * cell;
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"rgb(%d,%d,%d)\" stroke=\"#fff\"/>\n",
                    x, y, cell, cell, r, g, b);
            const char *ink = share > 0.5 ? "fill=\"white\"" : "fill=\"black\"";
            char attr[64];
            snprintf(attr, sizeof attr, "%s font-size=\"%d\"", ink, small ? 10 : 14);
            snprintf(buf, sizeof buf, "%zu", v);
            text_at(f, x + cell / 2, y + cell / 2 + (small ? 4 : 2), "middle", attr, buf);
            if (!small && rowsum) {
                snprintf(attr, sizeof attr, "%s font-size=\"10\"", ink);
                snprintf(buf, sizeof buf, "%.0f%%", 100 * share);
                text_at(f, x + cell / 2, y + cell / 2 + 17, "middle", attr, buf);
            }
        }
        text_at(f, L - 8, T + t * cell + cell / 2 + 4, "end", NULL, class_label(class_names, t, name, sizeof name));
    }
    for (int p = 0; p < K; p++) {
        double x = L + p * cell + cell / 2, y = T + side + 14;
        char rot[64];
        snprintf(rot, sizeof rot, "transform=\"rotate(-35 %.1f %.1f)\"", x, y);
        text_at(f, x, y, "end", rot, class_label(class_names, p, name, sizeof name));
    }
    text_at(f, L + side / 2, T - 12, "middle", "font-weight=\"bold\"", "Predicted class");
    char rot[80];
    snprintf(rot, sizeof rot, "font-weight=\"bold\" transform=\"rotate(-90 %.1f %.1f)\"", 20.0, T + side / 2);
    text_at(f, 20, T + side / 2, "middle", rot, "True class");
    text_at(f, L + side / 2, H - 12, "middle", "fill=\"#555\"", "rows = true class; shade = share of the row");
    return svg_close(f, path, err);
}

/* ---------------------------------------------------- reliability diagram */

int report_reliability_svg(const char *path, const char *title, const calibration *c, sx_err *err) {
    char full[512], buf[64];
    snprintf(full, sizeof full, "%.400s (ECE %.3f)", title, c->ece);
    unit_area a = {80, 50, 440};
    FILE *f = svg_open(path, 560, 570, full, err);
    if (!f) return -1;
    unit_axes(f, a, "Confidence (largest predicted probability)", "Accuracy");
    double w = 1.0 / CALIB_BINS;
    for (int b = 0; b < CALIB_BINS; b++) {
        if (!c->count[b]) continue;
        double x0 = ux(a, b * w) + 1, bw = a.S * w - 2, acc = c->accuracy[b];
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4c72b0\" fill-opacity=\"0.8\"/>\n",
                x0, uy(a, acc), bw, uy(a, 0) - uy(a, acc));
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#d62728\"/>\n", ux(a, c->confidence[b]),
                uy(a, c->confidence[b]));
        snprintf(buf, sizeof buf, "%zu", c->count[b]);
        int inside = uy(a, 0) - uy(a, acc) > 16;   /* the count at the bar's foot, or above a short bar */
        text_at(f, x0 + bw / 2, inside ? uy(a, 0) - 5 : uy(a, acc) - 4, "middle",
                inside ? "font-size=\"9\" fill=\"white\"" : "font-size=\"9\" fill=\"#333\"", buf);
    }
    diagonal(f, a, NULL);
    text_at(f, a.L + 8, a.T + 16, "start", "font-size=\"11\" fill=\"#4c72b0\"", "bars: accuracy per bin (count at the foot)");
    text_at(f, a.L + 8, a.T + 30, "start", "font-size=\"11\" fill=\"#d62728\"", "dots: mean confidence");
    text_at(f, a.L + 8, a.T + 44, "start", "font-size=\"11\" fill=\"#777\"", "dashed: perfect calibration");
    return svg_close(f, path, err);
}

/* ------------------------------------------------------------ regression */

int report_scatter_svg(const char *path, const char *title, const double *pred, const double *target, size_t n,
                       const char *value_name, sx_err *err) {
    if (!n) return sx_fail(err, "%s: no samples to plot", path);
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        lo = fmin(lo, fmin(pred[i], target[i]));
        hi = fmax(hi, fmax(pred[i], target[i]));
    }
    if (!(hi > lo)) { lo -= 1; hi += 1; }
    /* round axis ends: ticks at a step of 1, 2 or 5 times a power of ten */
    double raw = (hi - lo) / 5, mag = pow(10, floor(log10(raw))), step = mag;
    if (raw > 5 * mag) step = 10 * mag;
    else if (raw > 2 * mag) step = 5 * mag;
    else if (raw > mag) step = 2 * mag;
    lo = floor(lo / step) * step;
    hi = ceil(hi / step) * step;
    int ticks = (int)lround((hi - lo) / step);   /* 5 to 7 */
    char full[512], xl[160], yl[160];
    snprintf(full, sizeof full, "%.400s (MAE %.3g)", title, metric_mae(pred, target, n));
    snprintf(xl, sizeof xl, "True %.140s", value_name ? value_name : "value");
    snprintf(yl, sizeof yl, "Predicted %.140s", value_name ? value_name : "value");
    unit_area a = {80, 50, 440};
    FILE *f = svg_open(path, 560, 570, full, err);
    if (!f) return -1;
    axes(f, a, xl, yl, ticks, lo, step, "%.6g", 50);
    diagonal(f, a, NULL);
    text_at(f, a.L + 8, a.T + 16, "start", "font-size=\"11\" fill=\"#777\"", "dashed: prediction = truth");
    fprintf(f, "<g fill=\"#1f77b4\" fill-opacity=\"0.45\">\n");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\"/>\n", ux(a, (target[i] - lo) / (hi - lo)),
                uy(a, (pred[i] - lo) / (hi - lo)));
    fprintf(f, "</g>\n");
    return svg_close(f, path, err);
}

/* ----------------------------------------------------------------- all */

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = sx_malloc(a + b + 2);
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

int report_write_all(const char *dir, const char *title, const eval_set *e, sx_err *err) {
    if (eval_set_check(e, err)) return -1;
    char t[512];
    int rc = 0;
    if (e->type == TASK_REGRESSION) {
        char *p = join(dir, "scatter.svg");
        snprintf(t, sizeof t, "%.400s: predicted vs true", title);
        rc = report_scatter_svg(p, t, e->pred, e->target, e->n, e->class_names ? e->class_names[0] : NULL, err);
        free(p);
        return rc;
    }
    int K = e->n_classes;
    char *p = join(dir, "roc.svg");
    snprintf(t, sizeof t, "%.400s: ROC", title);
    rc = report_roc_svg(p, t, e->prob, K, e->label, e->n, e->class_names, err);
    free(p);
    if (rc) return rc;
    int *pred = sx_malloc(sizeof(int) * e->n);
    for (size_t i = 0; i < e->n; i++) pred[i] = metric_argmax(e->prob + i * (size_t)K, K);
    size_t *cm = sx_malloc(sizeof(size_t) * (size_t)K * (size_t)K);
    metric_confusion(pred, e->label, e->n, K, cm);
    p = join(dir, "confusion.svg");
    snprintf(t, sizeof t, "%.400s: confusion matrix (n = %zu)", title, e->n);
    rc = report_confusion_svg(p, t, cm, K, e->class_names, err);
    free(p);
    free(cm);
    free(pred);
    if (rc) return rc;
    calibration c;
    metric_calibration(e->prob, K, e->label, e->n, &c);
    p = join(dir, "reliability.svg");
    snprintf(t, sizeof t, "%.400s: reliability", title);
    rc = report_reliability_svg(p, t, &c, err);
    free(p);
    return rc;
}

int report_predictions_csv(const char *path, const char *const *images, const eval_set *e, int fold, sx_err *err) {
    char tmp[4200];
    FILE *f = sx_atomic_open(path, tmp, sizeof tmp, err);
    if (!f) return -1;
    int K = e->n_classes;
    const char *fold_col = fold >= 0 ? ",fold" : "";
    if (e->type == TASK_REGRESSION) fprintf(f, "image,target,prediction%s\n", fold_col);
    else {
        fputs("image,label", f);
        for (int k = 0; k < K; k++) {
            char col[300];
            if (e->class_names) snprintf(col, sizeof col, "prob_%s", e->class_names[k]);
            else snprintf(col, sizeof col, "prob_%d", k);
            fputc(',', f);
            csv_write_field(f, col);
        }
        fprintf(f, ",predicted%s\n", fold_col);
    }
    for (size_t i = 0; i < e->n; i++) {
        csv_write_field(f, images[i]);
        if (e->type == TASK_REGRESSION) {
            if (e->target) fprintf(f, ",%.9g", e->target[i]); else fputc(',', f);
            fprintf(f, ",%.9g", e->pred[i]);
            if (fold >= 0) fprintf(f, ",%d", fold);
            fputc('\n', f);
            continue;
        }
        fputc(',', f);
        if (e->label) {
            if (e->class_names) csv_write_field(f, e->class_names[e->label[i]]);
            else fprintf(f, "%d", e->label[i]);
        }
        for (int k = 0; k < K; k++) fprintf(f, ",%.9g", e->prob[i * K + k]);
        int p = metric_argmax(e->prob + i * K, K);
        fputc(',', f);
        if (e->class_names) csv_write_field(f, e->class_names[p]);
        else fprintf(f, "%d", p);
        if (fold >= 0) fprintf(f, ",%d", fold);
        fputc('\n', f);
    }
    return sx_atomic_commit(f, tmp, path, err);
}
