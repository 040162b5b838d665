/* report.c: see report.h. */
#include "serve/report.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *rp_base64(const void *p, size_t n) {
    static const char tb[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = p;
    if (n > ((size_t)-1 / 4) * 3 - 3) return NULL;
    char *o = malloc((n + 2) / 3 * 4 + 1), *w = o;
    if (!o) return NULL;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        *w++ = tb[v >> 18];
        *w++ = tb[(v >> 12) & 63];
        *w++ = tb[(v >> 6) & 63];
        *w++ = tb[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0);
        *w++ = tb[v >> 18];
        *w++ = tb[(v >> 12) & 63];
        *w++ = i + 1 < n ? tb[(v >> 6) & 63] : '=';
        *w++ = '=';
    }
    *w = 0;
    return o;
}

void rp_escape(const char *s, char *out, size_t cap) {
    size_t o = 0;
    if (!cap) return;
    for (; s && *s; s++) {
        const char *r = NULL;
        switch (*s) {
        case '&': r = "&amp;"; break;
        case '<': r = "&lt;"; break;
        case '>': r = "&gt;"; break;
        case '"': r = "&quot;"; break;
        case '\'': r = "&#39;"; break;
        default: break;
        }
        size_t k = r ? strlen(r) : 1;
        if (o + k >= cap) break;
        if (r) memcpy(out + o, r, k);
        else out[o] = *s;
        o += k;
    }
    out[o] = 0;
}

typedef struct { char *p; size_t n, cap; int bad; } sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...) {
    if (b->bad) return;
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) {
        b->bad = 1;
        va_end(ap2);
        return;
    }
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 4096) + (size_t)k + 1;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->bad = 1;
            va_end(ap2);
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap2);
    va_end(ap2);
    b->n += (size_t)k;
}

char *rp_html(const rp_input *in, size_t *len) {
    char *img = rp_base64(in->image_png, in->image_len);
    char *ov = rp_base64(in->overlay_png, in->overlay_len);
    sbuf b = {0};
    if (!img || !ov) b.bad = 1;
    char model[256], cls[256], masking[64];
    rp_escape(in->model_name, model, sizeof model);
    rp_escape(in->classifier_name, cls, sizeof cls);
    rp_escape(in->masking, masking, sizeof masking);
    put(&b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>skelex report %s</title>\n<style>"
            "body{font-family:sans-serif;margin:1.5cm;color:#111}"
            "h1{font-size:1.4em;margin:0 0 .3em}.sub{color:#555;margin:0 0 1em}"
            ".imgs{display:flex;gap:1em}.imgs figure{flex:1;margin:0}"
            ".imgs img{width:100%%;height:auto;border:1px solid #ccc}"
            "figcaption{font-size:.85em;color:#444}"
            ".bar{height:12px;margin-top:4px;border:1px solid #999;-webkit-print-color-adjust:exact;print-color-adjust:exact;"
            "background:linear-gradient(to right,#000004,#1f0c48,#550f6d,#88226a,#ba3655,#e35933,#f98c0a,#f9c932,#fcffa4)}"
            ".ticks{display:flex;justify-content:space-between;font-size:.8em;color:#333}"
            "table{border-collapse:collapse;margin-top:1em}td,th{border:1px solid #bbb;padding:.25em .6em;text-align:left}"
            ".note{font-size:.8em;color:#555;margin-top:1.5em}"
            "@media print{body{margin:1cm}.noprint{display:none}}"
            "</style></head><body>\n", in->id);
    put(&b, "<h1>skelex zero-shot error map</h1><p class=\"sub\">Analysis %s &middot; %s</p>\n", in->id, in->date);
    put(&b, "<div class=\"imgs\"><figure><img alt=\"radiograph\" src=\"data:image/png;base64,%s\">"
            "<figcaption>Radiograph, %d &times; %d px</figcaption></figure>\n",
        img ? img : "", in->width, in->height);
    put(&b, "<figure><img alt=\"error map overlay\" src=\"data:image/png;base64,%s\">"
            "<div class=\"bar\"></div><div class=\"ticks\"><span>0</span><span>%.4g</span><span>&ge; %.4g</span></div>"
            "<figcaption>Reconstruction error (squared, inferno colours; the scale's top is the map's 99th "
            "percentile)</figcaption></figure></div>\n",
        ov ? ov : "", in->scale_max / 2, in->scale_max);
    put(&b, "<table><tr><th>Mean error</th><td>%.6g</td></tr><tr><th>Maximum error</th><td>%.6g</td></tr>"
            "<tr><th>Peak at (x, y)</th><td>%.1f, %.1f px</td></tr><tr><th>Passes</th><td>%d</td></tr>"
            "<tr><th>Masking</th><td>%s, ratio %.2f</td></tr><tr><th>Pixels never masked</th><td>%d</td></tr>"
            "<tr><th>Model</th><td>%s</td></tr><tr><th>skelex version</th><td>%s</td></tr>",
        in->mean, in->max, in->peak_x, in->peak_y, in->passes, masking, in->mask_ratio, in->never_masked, model,
        in->version);
    if (in->classifier_name) put(&b, "<tr><th>Classifier</th><td>%s</td></tr>", cls);
    put(&b, "</table>\n");
    if (in->n_heads > 0) {
        int regions = in->head_max && in->head_region && in->n_regions > 0;
        if (regions)
            put(&b, "<table><tr><th>Output</th><th>Whole image</th><th>Maximum over regions</th><th>Region</th></tr>");
        else
            put(&b, "<table><tr><th>Output</th><th>Probability</th></tr>");
        for (int i = 0; i < in->n_heads; i++) {
            char nm[256];
            rp_escape(in->head_names[i], nm, sizeof nm);
            put(&b, "<tr><td>%s</td><td>%.3f</td>", nm, in->head_probs[i]);
            if (regions) put(&b, "<td>%.3f</td><td>%d</td>", in->head_max[i], in->head_region[i]);
            put(&b, "</tr>");
        }
        put(&b, "</table>\n");
        if (regions && in->region_boxes && in->region_sources) {
            put(&b, "<table><tr><th>Region</th><th>Source</th><th>Box (x0, y0)&ndash;(x1, y1) px</th><th>Top output</th></tr>");
            for (int r = 0; r < in->n_regions; r++) {
                const float *bx = in->region_boxes + 4 * (size_t)r;
                char src[64], top[256] = "";
                rp_escape(in->region_sources[r], src, sizeof src);
                int t = in->region_top ? in->region_top[r] : -1;
                if (t >= 0 && t < in->n_heads) rp_escape(in->head_names[t], top, sizeof top);
                put(&b, "<tr><td>%d</td><td>%s</td><td>(%.0f, %.0f)&ndash;(%.0f, %.0f)</td><td>%s %.3f</td></tr>", r, src,
                    bx[0], bx[1], bx[2], bx[3], top,
                    t >= 0 && t < in->n_heads && in->region_probs ? in->region_probs[(size_t)r * in->n_heads + t] : 0.0);
            }
            put(&b, "</table>\n");
        }
    }
    put(&b, "<p class=\"note\">Research use only; not a diagnosis. The error map shows where the masked "
            "autoencoder reconstructs the image poorly, which may or may not be pathology. "
            "No patient identifiers are kept or shown.</p></body></html>\n");
    free(img);
    free(ov);
    if (b.bad) {
        free(b.p);
        return NULL;
    }
    *len = b.n;
    return b.p;
}
