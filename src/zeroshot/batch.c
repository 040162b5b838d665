/* batch.c: names, summary, outputs and localisation for a batch of error
 * maps (contract: batch.h). */
#include "zeroshot/batch.h"
#include "data/csv.h"
#include "eval/viz.h"
#include "io/npy.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void zs_stem_of(const char *path, char *stem, size_t cap) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(stem, cap, "%s", b);
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = 0;
}

static uint32_t fnv1a(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

char **zs_output_stems(const char *const *paths, size_t n) {
    char **stems = sx_calloc(n ? n : 1, sizeof *stems);
    sx_keyed *v = sx_malloc(sizeof *v * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        char s[1024];
        zs_stem_of(paths[i], s, sizeof s);
        stems[i] = sx_strdup(s);
        v[i] = (sx_keyed){stems[i], i};
    }
    qsort(v, n, sizeof *v, sx_cmp_keyed);
    uint8_t *dup = sx_calloc(n ? n : 1, 1);
    for (size_t k = 1; k < n; k++)
        if (!strcmp(v[k].key, v[k - 1].key)) dup[v[k].i] = dup[v[k - 1].i] = 1;
    for (size_t i = 0; i < n; i++) {
        if (!dup[i]) continue;
        size_t l = strlen(stems[i]) + 10;
        char *s = sx_malloc(l);
        snprintf(s, l, "%s-%08x", stems[i], (unsigned)fnv1a(paths[i]));
        free(stems[i]);
        stems[i] = s;
    }
    free(dup);
    free(v);
    return stems;
}

void zs_stems_free(char **stems, size_t n) {
    for (size_t i = 0; stems && i < n; i++) free(stems[i]);
    free(stems);
}

const char *zs_space_name(int norm_pix) { return norm_pix ? "patch-normalised" : "pixel [0,1]"; }

void zs_summary_header(FILE *f) {
    fputs("file,output,mean_error,max_error,peak_x,peak_y,never_masked_pixels,space\r\n", f);
}

void zs_summary_row(FILE *f, const char *file, const char *stem, const zs_map *z) {
    csv_write_field(f, file);
    fputc(',', f);
    csv_write_field(f, stem);
    fprintf(f, ",%.6g,%.6g,%.1f,%.1f,%d,", z->mean, z->max, z->peak_x, z->peak_y, z->never_masked);
    csv_write_field(f, zs_space_name(z->norm_pix));
    fputs("\r\n", f);
}

int zs_write_outputs(const char *outdir, const char *stem, const mae_model *m, const gray_image *img,
                     const zs_map *z, float alpha, sx_err *err) {
    char npy[4400], png[4400], panel[4400];
    snprintf(npy, sizeof npy, "%s/%s_error.npy", outdir, stem);
    snprintf(png, sizeof png, "%s/%s_errormap.png", outdir, stem);
    snprintf(panel, sizeof panel, "%s/%s_panel.png", outdir, stem);
    int64_t shape[2] = {z->size, z->size};
    if (npy_write_f32(npy, z->map, 2, shape, err)) return -1;
    if (viz_errormap_overlay(png, img, z->map, z->size, z->scale_max, alpha, err)) {
        remove(npy);
        return -1;
    }
    if (viz_write_panels(panel, m, z->pixels, 1, err)) {
        remove(npy);
        remove(png);
        return -1;
    }
    return 0;
}

void zs_loc_init(zs_loc *t) {
    memset(t, 0, sizeof *t);
    t->per_image = cJSON_CreateArray();
}

void zs_loc_free(zs_loc *t) {
    cJSON_Delete(t->per_image);
    t->per_image = NULL;
}

int zs_loc_add(zs_loc *t, const char *boxdir, const char *file, const zs_map *z, sx_err *err) {
    char stem[1024], path[4400];
    zs_stem_of(file, stem, sizeof stem);
    snprintf(path, sizeof path, "%s/%s.txt", boxdir, stem);
    norm_box bx[64];
    int nb = access(path, F_OK) == 0 ? boxes_read_yolo(path, bx, 64, err) : 0;
    if (nb < 0) return -1;
    if (nb == 0) { t->n_unboxed++; return 0; }
    int S = z->size;
    uint8_t *inside = sx_malloc((size_t)S * S);
    boxes_rasterize(bx, nb, S, S, inside);
    loc_metrics lm;
    int ok = localization_metrics(z->map, inside, S, S, &lm) == 0;
    free(inside);
    t->n_scored++;
    t->hits += lm.hit;
    t->mass_share += lm.mass_share;
    t->area_share += lm.area_share;
    if (ok) { t->auroc += lm.auroc; t->n_auroc++; }
    if (lm.area_share > 0) t->lift += lm.mass_share / lm.area_share;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", file);
    cJSON_AddBoolToObject(o, "hit", lm.hit);
    cJSON_AddNumberToObject(o, "mass_share", lm.mass_share);
    cJSON_AddNumberToObject(o, "area_share", lm.area_share);
    cJSON_AddNumberToObject(o, "auroc", ok ? lm.auroc : -1);
    cJSON_AddItemToArray(t->per_image, o);
    return 0;
}

void zs_loc_means(const zs_loc *t, double *hit, double *mass, double *area, double *lift, double *auroc) {
    int n = t->n_scored;
    *hit = n ? (double)t->hits / n : NAN;
    *mass = n ? t->mass_share / n : NAN;
    *area = n ? t->area_share / n : NAN;
    *lift = n ? t->lift / n : NAN;
    *auroc = t->n_auroc ? t->auroc / t->n_auroc : NAN;
}

cJSON *zs_loc_json(zs_loc *t, int passes, masking_kind kind, int norm_pix) {
    double hit, ms, as, lift, au;
    zs_loc_means(t, &hit, &ms, &as, &lift, &au);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "images_scored", t->n_scored);
    cJSON_AddNumberToObject(j, "images_without_boxes", t->n_unboxed);
    cJSON_AddNumberToObject(j, "pointing_game_hit_rate", hit);
    cJSON_AddNumberToObject(j, "pointing_game_random_baseline", as);
    cJSON_AddNumberToObject(j, "mean_error_mass_in_boxes", ms);
    cJSON_AddNumberToObject(j, "mean_box_area_share", as);
    cJSON_AddNumberToObject(j, "mean_lift", lift);
    cJSON_AddNumberToObject(j, "mass_lift_of_means", as > 0 ? ms / as : NAN);
    cJSON_AddNumberToObject(j, "mean_pixel_auroc", au);
    cJSON_AddNumberToObject(j, "passes", passes);
    cJSON_AddStringToObject(j, "masking", kind == MASKING_BALANCED ? "balanced" : "random");
    cJSON_AddStringToObject(j, "error_space", zs_space_name(norm_pix));
    cJSON_AddItemToObject(j, "per_image", t->per_image);
    t->per_image = NULL;
    return j;
}
