/* data.c: the training data pipeline (contract: data.h).
 *
 * Does:
 *  - gather image paths from directories (recursive readdir, no stat for
 *    ordinary entries) and list files (streamed with getline, listed files
 *    not touched), into one growing arena; sort and de-duplicate;
 *  - RandomResizedCrop exactly as torchvision's get_params (our RNG, not
 *    torch's), Pillow-bilinear resize (image.c), horizontal flip, SKELEX
 *    min-max and ImageNet normalisation;
 *  - a loader: worker pthreads fill a ring of QUEUE_DEPTH batches, one
 *    sample at a time, while the caller trains. Everything a sample is made
 *    of is a function of its position (see data.h), so batches do not depend
 *    on timing or thread count; undecodable files are replaced by the next
 *    decodable entry of the epoch's permutation, warned about and logged
 *    once.
 * Does not: labels, class balancing, decoding itself (image.c: PNG, JPEG,
 * DICOM), caching decoded images, or choose how many threads the machine
 * can spare (the caller does).
 */
#include "data/data.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------------ */
/* Dataset: arena of paths                                                  */

void dataset_init(dataset *ds) { memset(ds, 0, sizeof *ds); }

void dataset_free(dataset *ds) {
    free(ds->arena);
    free(ds->off);
    dataset_init(ds);
}

/* Make room for `need` more elements of `size` bytes after *len in *p. */
static void grow(void **p, size_t *cap, size_t len, size_t need, size_t size) {
    if (len + need <= *cap) return;
    size_t c = *cap ? *cap : 1024;
    while (c < len + need) c *= 2;
    void *q = sx_malloc(c * size);   /* the program's one out-of-memory policy (common.c) */
    if (len) memcpy(q, *p, len * size);
    free(*p);
    *p = q;
    *cap = c;
}

/* Append dir + "/" + name (just name when dir is NULL or empty). */
static void ds_push(dataset *ds, const char *dir, const char *name) {
    size_t ld = dir ? strlen(dir) : 0, ln = strlen(name);
    int sep = ld && dir[ld - 1] != '/';
    grow((void **)&ds->arena, &ds->arena_cap, ds->arena_len, ld + sep + ln + 1, 1);
    grow((void **)&ds->off, &ds->cap, ds->count, 1, sizeof *ds->off);
    char *q = ds->arena + ds->arena_len;
    if (ld) memcpy(q, dir, ld);
    if (sep) q[ld] = '/';
    memcpy(q + ld + sep, name, ln + 1);
    ds->off[ds->count++] = ds->arena_len;
    ds->arena_len += ld + sep + ln + 1;
}

/* Remove and return (malloc'ed) the last path: the dataset as a stack. */
static char *ds_pop(dataset *ds) {
    size_t o = ds->off[--ds->count];
    char *s = sx_strdup(ds->arena + o);
    ds->arena_len = o;
    return s;
}

static int cmp_paths(const void *a, const void *b, void *arena) {
    return strcmp((const char *)arena + *(const size_t *)a, (const char *)arena + *(const size_t *)b);
}

/* Sort by strcmp and drop repeated paths (their bytes stay in the arena). */
static void ds_sort_unique(dataset *ds) {
    qsort_r(ds->off, ds->count, sizeof *ds->off, cmp_paths, ds->arena);
    size_t w = 0;
    for (size_t i = 0; i < ds->count; i++)
        if (w == 0 || strcmp(ds->arena + ds->off[i], ds->arena + ds->off[w - 1]) != 0) ds->off[w++] = ds->off[i];
    ds->count = w;
}

long long dataset_find(const dataset *ds, const char *path) {
    size_t lo = 0, hi = ds->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(dataset_path(ds, mid), path);
        if (c == 0) return (long long)mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot || strchr(dot, '/')) return 0;
    return !strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") ||
           !strcasecmp(dot, ".dcm") || !strcasecmp(dot, ".dicom");
}

/* ------------------------------------------------------------------------ */
/* Dataset: directory scan                                                  */

enum { ENTRY_OTHER, ENTRY_FILE, ENTRY_DIR };

/* What a directory entry is, from d_type when the file system gives it;
 * lstat only when it does not. A symbolic link is never descended into (as
 * find's default); with an image extension it counts as a file, and one
 * that does not lead to a decodable image is skipped later by the loader. */
static int entry_kind(const char *dir, const struct dirent *e) {
    if (e->d_type == DT_DIR) return ENTRY_DIR;
    if (e->d_type == DT_REG || e->d_type == DT_LNK) return ENTRY_FILE;
    if (e->d_type != DT_UNKNOWN) return ENTRY_OTHER;
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, e->d_name) < 0) return ENTRY_OTHER;
    struct stat st;
    int kind = lstat(p, &st) ? ENTRY_OTHER : S_ISDIR(st.st_mode) ? ENTRY_DIR : ENTRY_FILE;
    free(p);
    return kind;
}

/* Read one directory: images go to ds, subdirectories to the pending stack.
 * Only the top directory's failure to open is an error. */
static int scan_one_dir(dataset *ds, dataset *pending, const char *dir, int top, sx_err *err) {
    DIR *d = opendir(dir);
    if (!d) {
        if (top) return sx_fail(err, "%s: cannot read directory: %s", dir, strerror(errno));
        ds->unreadable_dirs++;   /* counted for the caller to report */
        return 0;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* ".", "..", hidden files and directories */
        int kind = entry_kind(dir, e);
        if (kind == ENTRY_FILE && has_image_ext(e->d_name)) ds_push(ds, dir, e->d_name);
        else if (kind == ENTRY_DIR) ds_push(pending, dir, e->d_name);
    }
    closedir(d);
    return 0;
}

/* Depth-first over a stack of directories: one directory open at a time. */
static int scan_tree(dataset *ds, const char *root, sx_err *err) {
    dataset pending;
    dataset_init(&pending);
    int rc = scan_one_dir(ds, &pending, root, 1, err);
    while (!rc && pending.count) {
        char *dir = ds_pop(&pending);
        rc = scan_one_dir(ds, &pending, dir, 0, err);
        free(dir);
    }
    dataset_free(&pending);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Dataset: list files                                                      */

/* The directory part of a path with its slash ("a/b/" for "a/b/list.txt",
 * "/" for "/list.txt"), or "" for a bare file name. */
static char *dir_part(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) + 1 : 0;
    char *d = sx_malloc(n + 1);
    memcpy(d, path, n);
    d[n] = 0;
    return d;
}

/* Trim blanks (and the line end) in place; return the first non-blank. */
static char *trim(char *s, size_t n) {
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = 0;
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

static int read_list(dataset *ds, const char *path, FILE *f, sx_err *err) {
    char *dir = dir_part(path), *line = NULL;
    size_t cap = 0, lineno = 0, added = 0;
    ssize_t n;
    int rc = 0;
    while (!rc && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (memchr(line, 0, (size_t)n)) {
            rc = sx_fail(err, "%s: not a list of image paths (binary data on line %zu)", path, lineno);
            break;
        }
        char *p = trim(line, (size_t)n);
        if (!*p || *p == '#') continue;
        ds_push(ds, *p == '/' ? NULL : dir, p);
        added++;
    }
    if (!rc && ferror(f)) rc = sx_fail(err, "%s: cannot read list: %s", path, strerror(errno));
    if (!rc && !added) rc = sx_fail(err, "%s: list file names no image (only blank or comment lines)", path);
    free(line);
    free(dir);
    return rc;
}

int dataset_add_dir(dataset *ds, const char *dir, sx_err *err) {
    size_t count0 = ds->count, len0 = ds->arena_len;
    if (scan_tree(ds, dir, err)) {
        ds->count = count0;
        ds->arena_len = len0;
        return -1;
    }
    ds_sort_unique(ds);
    return 0;
}

int dataset_add(dataset *ds, const char *path, sx_err *err) {
    size_t count0 = ds->count, len0 = ds->arena_len;
    struct stat st;
    if (stat(path, &st)) return sx_fail(err, "%s: cannot open data path: %s", path, strerror(errno));
    int rc = 0;
    if (S_ISDIR(st.st_mode)) {
        rc = scan_tree(ds, path, err);
        if (!rc && ds->count == count0)
            rc = sx_fail(err, "%s: no PNG or JPEG image or DICOM file found (directory scanned recursively)", path);
    } else if (has_image_ext(path)) {
        ds_push(ds, NULL, path);
    } else {
        FILE *f = sx_fopen_input(path, NULL, err);
        if (!f) return -1;
        rc = read_list(ds, path, f, err);
        fclose(f);
    }
    if (rc) { /* only appended so far: roll back */
        ds->count = count0;
        ds->arena_len = len0;
        return -1;
    }
    ds_sort_unique(ds);
    return 0;
}

/* Whether paths count0.. are in strcmp order after those before them. */
static int ds_sorted_from(const dataset *ds, size_t from) {
    for (size_t i = from ? from : 1; i < ds->count; i++)
        if (strcmp(ds->arena + ds->off[i - 1], ds->arena + ds->off[i]) >= 0) return 0;
    return 1;
}

int dataset_add_list_stream(dataset *ds, const char *path, sx_err *err) {
    size_t count0 = ds->count, len0 = ds->arena_len;
    struct stat st;
    if (stat(path, &st) || S_ISDIR(st.st_mode) || has_image_ext(path)) return dataset_add(ds, path, err);
    FILE *f = sx_fopen_input(path, NULL, err);
    if (!f) return -1;
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    int rc = read_list(ds, path, f, err);
    fclose(f);
    if (rc) { ds->count = count0; ds->arena_len = len0; return -1; }
    if (!ds_sorted_from(ds, count0)) ds_sort_unique(ds);  /* a sorted list (sort -u) skips the sort */
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Augmentation                                                             */

aug_config aug_default(int image_size) {
    return (aug_config){.image_size = image_size, .augment = 1, .scale_min = 0.2, .scale_max = 1.0,
                        .ratio_min = 3.0 / 4.0, .ratio_max = 4.0 / 3.0, .flip_p = 0.5, .decode_min_side = 0};
}

int aug_check(const aug_config *a, sx_err *err) {
    if (a->image_size < 1 || a->image_size > 4096)
        return sx_fail(err, "image size %d is out of range [1, 4096]", a->image_size);
    if (!a->augment) return 0;
    if (!(a->scale_min > 0 && a->scale_min <= a->scale_max && a->scale_max <= 1))
        return sx_fail(err, "crop scale (%g, %g) must satisfy 0 < min <= max <= 1", a->scale_min, a->scale_max);
    if (!(a->ratio_min > 0 && a->ratio_min <= a->ratio_max && isfinite(a->ratio_max)))
        return sx_fail(err, "crop ratio (%g, %g) must satisfy 0 < min <= max", a->ratio_min, a->ratio_max);
    if (!(a->flip_p >= 0 && a->flip_p <= 1))
        return sx_fail(err, "flip probability %g is not in [0, 1]", a->flip_p);
    return 0;
}

int aug_decode_min_side(const aug_config *a) {
    if (a->decode_min_side > 0) return a->decode_min_side;
    if (a->decode_min_side < 0 || !a->augment) return 0;
    return (int)ceil(a->image_size / sqrt(a->scale_min));
}

/* Uniform double in [lo, hi), 53 random bits. */
static double uniform(sx_rng *r, double lo, double hi) {
    return lo + (hi - lo) * ((double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0));
}

/* Python's round() on a non-negative double: half to even (rint's default). */
static int round_even(double v) { return (int)rint(v); }

crop_box rrc_params(int width, int height, const aug_config *a, sx_rng *r) {
    double area = (double)width * (double)height;
    double log_lo = log(a->ratio_min), log_hi = log(a->ratio_max);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * uniform(r, a->scale_min, a->scale_max);
        double aspect = exp(uniform(r, log_lo, log_hi));
        int w = round_even(sqrt(target * aspect)), h = round_even(sqrt(target / aspect));
        if (0 < w && w <= width && 0 < h && h <= height) {
            int top = (int)rng_below(r, (uint32_t)(height - h + 1));
            int left = (int)rng_below(r, (uint32_t)(width - w + 1));
            return (crop_box){top, left, h, w};
        }
    }
    /* Fallback: centre crop, clamped to the ratio bounds. */
    double in_ratio = (double)width / (double)height;
    int w = width, h = height;
    if (in_ratio < a->ratio_min) h = round_even(w / a->ratio_min);
    else if (in_ratio > a->ratio_max) w = round_even(h * a->ratio_max);
    if (w < 1) w = 1; /* only for degenerate ratio bounds on tiny images */
    if (h < 1) h = 1;
    return (crop_box){(height - h) / 2, (width - w) / 2, h, w};
}

static void flip_horizontal(uint8_t *px, int w, int h) {
    for (int y = 0; y < h; y++) {
        uint8_t *row = px + (size_t)y * w;
        for (int x = 0; x < w / 2; x++) {
            uint8_t t = row[x];
            row[x] = row[w - 1 - x];
            row[w - 1 - x] = t;
        }
    }
}

void augment_u8(const gray_image *img, const aug_config *a, sx_rng *r, uint8_t *out) {
    int w = img->width, h = img->height, S = a->image_size;
    uint8_t *u8 = sx_malloc((size_t)w * (size_t)h);
    image_minmax_u8(img, u8); /* on the whole image, before any crop */
    if (!a->augment) {
        image_resize_bilinear_u8(u8, w, h, out, S, S);
        free(u8);
        return;
    }
    crop_box c = rrc_params(w, h, a, r);
    uint8_t *crop = sx_malloc((size_t)c.width * (size_t)c.height);
    for (int y = 0; y < c.height; y++)
        memcpy(crop + (size_t)y * c.width, u8 + (size_t)(c.top + y) * w + c.left, (size_t)c.width);
    image_resize_bilinear_u8(crop, c.width, c.height, out, S, S);
    if (rng_uniform(r) < a->flip_p) flip_horizontal(out, S, S);
    free(crop);
    free(u8);
}

void augment_image(const gray_image *img, const aug_config *a, sx_rng *r, float *chw) {
    uint8_t *sq = sx_malloc((size_t)a->image_size * (size_t)a->image_size);
    augment_u8(img, a, r, sq);
    image_u8_to_chw(sq, a->image_size, chw);
    free(sq);
}

/* ------------------------------------------------------------------------ */
/* Loader: state                                                            */

#define QUEUE_DEPTH 3     /* batches decoded ahead of the caller */
#define PERM_CACHE 4      /* epoch permutations kept (a batch can span epochs) */
#define MAX_THREADS 256

enum { FILE_BAD = 1, FILE_LOGGED = 2, FILE_WARNED = 4 };          /* per-file flags */
enum { DOMAIN_PERM = 0x7065726d, DOMAIN_AUG = 0x61756721 };      /* seed derivation */

typedef struct { long long epoch; uint32_t *idx; } epoch_perm;

struct loader {
    /* fixed at creation */
    const dataset *ds;
    size_t n;
    aug_config aug;
    int min_side, batch, nthreads;
    uint64_t seed;
    long long start;
    long long stride, offset;             /* one rank's share: batch k starts at start + k*stride + offset */
    size_t sample_floats;                 /* 3*S*S */
    pthread_t *threads;
    float *slot_px[QUEUE_DEPTH];
    /* guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;      /* work: a slot freed / stop; done: a batch filled / failure */
    int slot_filled[QUEUE_DEPTH], slot_replaced[QUEUE_DEPTH];
    long long next_sample;                /* next sample (counted from start) to hand to a worker */
    long long consumed;                   /* batches returned to the caller */
    int stop, failed;
    sx_err fail_err;
    uint8_t *flags;                       /* FILE_* per dataset entry */
    long long skipped;
    epoch_perm perms[PERM_CACHE];
    char *skip_log_path;
    FILE *skip_log;
    int skip_log_broken;
};

/* splitmix64's finaliser: a bijective 64-bit mix. */
static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* An RNG seed for (seed, domain, value): distinct streams per purpose. */
static uint64_t derive_seed(uint64_t seed, uint64_t domain, uint64_t value) {
    return mix64(mix64(seed ^ mix64(domain)) ^ value);
}

/* Fisher-Yates shuffle of 0..n-1 drawn from (seed, epoch). */
static void make_perm(uint32_t *idx, size_t n, uint64_t seed, long long epoch) {
    sx_rng r;
    rng_seed(&r, derive_seed(seed, DOMAIN_PERM, (uint64_t)epoch));
    for (size_t i = 0; i < n; i++) idx[i] = (uint32_t)i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = rng_below(&r, (uint32_t)(i + 1));
        uint32_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

/* Entry k of epoch e's permutation (caller holds mu). Cached; on a miss the
 * lowest cached epoch is recomputed (positions move forward). */
static uint32_t perm_at(loader *L, long long e, size_t k) {
    for (int i = 0; i < PERM_CACHE; i++)
        if (L->perms[i].idx && L->perms[i].epoch == e) return L->perms[i].idx[k];
    epoch_perm *v = &L->perms[0];
    for (int i = 0; i < PERM_CACHE; i++) {
        if (!L->perms[i].idx) { v = &L->perms[i]; break; }
        if (L->perms[i].epoch < v->epoch) v = &L->perms[i];
    }
    if (!v->idx) v->idx = sx_malloc(L->n * sizeof *v->idx);
    make_perm(v->idx, L->n, L->seed, e);
    v->epoch = e;
    return v->idx[k];
}

/* ------------------------------------------------------------------------ */
/* Loader: bad files, warnings, skip log                                    */

/* Mark the entries already named in an existing skip log as logged, so a
 * resumed run does not repeat them. Lines are "PATH\tREASON". */
static void skip_log_preload(loader *L) {
    FILE *f = fopen(L->skip_log_path, "r");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        line[strcspn(line, "\t\n")] = 0;
        long long i = dataset_find(L->ds, line);
        if (i >= 0) L->flags[i] |= FILE_LOGGED;
    }
    free(line);
    fclose(f);
}

/* Append "PATH\tREASON" (caller holds mu). A log that cannot be written
 * gives one warning and is then left alone: never fatal. */
static void skip_log_append(loader *L, const char *path, const char *msg) {
    if (!L->skip_log_path || L->skip_log_broken) return;
    if (!L->skip_log && !(L->skip_log = fopen(L->skip_log_path, "a"))) {
        fprintf(stderr, "skelex: warning: %s: cannot open skip log: %s\n", L->skip_log_path, strerror(errno));
        L->skip_log_broken = 1;
        return;
    }
    size_t lp = strlen(path);
    const char *reason = !strncmp(msg, path, lp) && !strncmp(msg + lp, ": ", 2) ? msg + lp + 2 : msg;
    fprintf(L->skip_log, "%s\t%s\n", path, reason);
    fflush(L->skip_log);
}

/* A file failed to decode: count it, warn and log once. */
static void note_bad(loader *L, size_t idx, const sx_err *why) {
    pthread_mutex_lock(&L->mu);
    if (!(L->flags[idx] & FILE_BAD)) {
        L->flags[idx] |= FILE_BAD;
        L->skipped++;
        fprintf(stderr, "skelex: warning: %s (file skipped)\n", why->msg);
        if (!(L->flags[idx] & FILE_LOGGED)) skip_log_append(L, dataset_path(L->ds, idx), why->msg);
        L->flags[idx] |= FILE_LOGGED;
    }
    pthread_mutex_unlock(&L->mu);
}

/* A decoder warning (e.g. a truncated JPEG): printed once per file. */
static void note_warning(loader *L, size_t idx, const sx_err *w) {
    pthread_mutex_lock(&L->mu);
    if (!(L->flags[idx] & FILE_WARNED)) {
        L->flags[idx] |= FILE_WARNED;
        fprintf(stderr, "skelex: warning: %s\n", w->msg);
    }
    pthread_mutex_unlock(&L->mu);
}

/* ------------------------------------------------------------------------ */
/* Loader: one sample                                                       */

/* Decode dataset entry idx and augment it with position p's RNG. */
static int load_entry(loader *L, size_t idx, long long p, float *out, sx_err *err) {
    gray_image img;
    sx_err warn;
    image_load_opts o = {.min_side = L->min_side, .warning = &warn};
    if (image_load_gray_opts(dataset_path(L->ds, idx), &o, &img, err)) return -1;
    if (warn.msg[0]) note_warning(L, idx, &warn);
    sx_rng r;
    rng_seed(&r, derive_seed(L->seed, DOMAIN_AUG, (uint64_t)p));
    augment_image(&img, &L->aug, &r, out);
    gray_image_free(&img);
    return 0;
}

/* The sample at position p: entry p % n of epoch p / n's permutation, or
 * the first decodable entry after it (wrapping). Known-bad files are not
 * retried, which changes the speed, never the result. */
static int make_sample(loader *L, long long p, float *out, int *replaced, sx_err *err) {
    long long e = p / (long long)L->n;
    size_t k = (size_t)(p % (long long)L->n);
    for (size_t j = 0; j < L->n; j++) {
        pthread_mutex_lock(&L->mu);
        uint32_t idx = perm_at(L, e, (k + j) % L->n);
        int bad = L->flags[idx] & FILE_BAD;
        pthread_mutex_unlock(&L->mu);
        if (bad) continue;
        sx_err why;
        if (load_entry(L, idx, p, out, &why) == 0) {
            *replaced = j > 0;
            return 0;
        }
        note_bad(L, idx, &why);
    }
    return sx_fail(err, "no file of the dataset (%zu) could be decoded%s%s", L->n,
                   L->skip_log_path ? "; reasons in " : "", L->skip_log_path ? L->skip_log_path : "");
}

/* ------------------------------------------------------------------------ */
/* Loader: threads                                                          */

/* Let a worker run on any allowed core, not on the core its creator may
 * have been pinned to (gemm.c pins the OpenMP threads, the caller's too). */
static void unpin_self(void) {
    cpu_set_t all;
    CPU_ZERO(&all);
    for (int i = 0; i < CPU_SETSIZE; i++) CPU_SET(i, &all);
    sched_setaffinity(0, sizeof all, &all); /* the kernel keeps only the allowed cores */
}

/* The position of the loader's s-th sample (counted from its start). */
static long long sample_position(const loader *L, long long s) {
    return L->start + (s / L->batch) * L->stride + L->offset + s % L->batch;
}

/* Take samples whose batch has a free slot, make them, count them in. */
static void *worker_main(void *arg) {
    loader *L = arg;
    unpin_self();
    pthread_mutex_lock(&L->mu);
    for (;;) {
        while (!L->stop && !L->failed && L->next_sample / L->batch >= L->consumed + QUEUE_DEPTH)
            pthread_cond_wait(&L->work_cv, &L->mu);
        if (L->stop || L->failed) break;
        long long s = L->next_sample++;
        int slot = (int)((s / L->batch) % QUEUE_DEPTH);
        float *dst = L->slot_px[slot] + (size_t)(s % L->batch) * L->sample_floats;
        pthread_mutex_unlock(&L->mu);

        int replaced = 0;
        sx_err e;
        int rc = make_sample(L, sample_position(L, s), dst, &replaced, &e);

        pthread_mutex_lock(&L->mu);
        if (rc) {
            if (!L->failed) L->fail_err = e;
            L->failed = 1;
            pthread_cond_broadcast(&L->done_cv);
            pthread_cond_broadcast(&L->work_cv);
        } else {
            L->slot_replaced[slot] += replaced;
            if (++L->slot_filled[slot] == L->batch) pthread_cond_broadcast(&L->done_cv);
        }
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

static void stop_threads(loader *L, int started) {
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->work_cv);
    pthread_mutex_unlock(&L->mu);
    for (int i = 0; i < started; i++) pthread_join(L->threads[i], NULL);
}

/* ------------------------------------------------------------------------ */
/* Loader: API                                                              */

static int check_loader_args(const dataset *ds, int batch, const aug_config *aug, int threads,
                             long long start, sx_err *err) {
    if (!ds || ds->count == 0) return sx_fail(err, "the dataset is empty");
    if (ds->count > UINT32_MAX) return sx_fail(err, "the dataset has %zu files (limit %u)", ds->count, UINT32_MAX);
    if (batch < 1 || batch > 65536) return sx_fail(err, "batch size %d is out of range [1, 65536]", batch);
    if (threads < 0 || threads > MAX_THREADS)
        return sx_fail(err, "loader threads %d is out of range [0, %d]", threads, MAX_THREADS);
    if (start < 0) return sx_fail(err, "start position %lld is negative", start);
    return aug_check(aug, err);
}

void loader_destroy(loader *L) {
    if (!L) return;
    if (L->threads) stop_threads(L, L->nthreads);
    for (int i = 0; i < QUEUE_DEPTH; i++) free(L->slot_px[i]);
    for (int i = 0; i < PERM_CACHE; i++) free(L->perms[i].idx);
    if (L->skip_log) fclose(L->skip_log);
    pthread_cond_destroy(&L->work_cv);
    pthread_cond_destroy(&L->done_cv);
    pthread_mutex_destroy(&L->mu);
    free(L->threads);
    free(L->flags);
    free(L->skip_log_path);
    free(L);
}

loader *loader_create(const dataset *ds, int batch, const aug_config *aug, uint64_t seed, int threads,
                      long long start_position, const char *skip_log_path, sx_err *err) {
    return loader_create_share(ds, batch, batch, 0, aug, seed, threads, start_position, skip_log_path, err);
}

loader *loader_create_share(const dataset *ds, int batch, long long stride, long long offset, const aug_config *aug,
                            uint64_t seed, int threads, long long start_position, const char *skip_log_path,
                            sx_err *err) {
    if (check_loader_args(ds, batch, aug, threads, start_position, err)) return NULL;
    if (stride < batch || offset < 0 || offset + batch > stride) {
        sx_fail(err, "a share of %d at offset %lld does not fit a global batch of %lld", batch, offset, stride);
        return NULL;
    }
    loader *L = sx_calloc(1, sizeof *L);
    L->stride = stride;
    L->offset = offset;
    L->ds = ds;
    L->n = ds->count;
    L->aug = *aug;
    L->min_side = aug_decode_min_side(aug);
    L->batch = batch;
    L->seed = seed;
    L->start = start_position;
    L->sample_floats = 3 * (size_t)aug->image_size * (size_t)aug->image_size;
    L->flags = sx_calloc(L->n, 1);
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->work_cv, NULL);
    pthread_cond_init(&L->done_cv, NULL);
    if (skip_log_path) {
        L->skip_log_path = sx_strdup(skip_log_path);
        skip_log_preload(L);
    }
    if (threads == 0) return L;

    for (int i = 0; i < QUEUE_DEPTH; i++) L->slot_px[i] = sx_malloc((size_t)batch * L->sample_floats * sizeof(float));
    L->threads = sx_calloc((size_t)threads, sizeof *L->threads);
    for (int i = 0; i < threads; i++) {
        int rc = pthread_create(&L->threads[i], NULL, worker_main, L);
        if (rc) {
            stop_threads(L, i);
            free(L->threads);
            L->threads = NULL;
            loader_destroy(L);
            sx_fail(err, "cannot start loader thread %d of %d: %s", i + 1, threads, strerror(rc));
            return NULL;
        }
    }
    L->nthreads = threads;
    return L;
}

/* No threads: make the batch here. */
static int next_inline(loader *L, float *pixels, int *replaced, sx_err *err) {
    long long first = sample_position(L, L->consumed * L->batch);
    *replaced = 0;
    for (int i = 0; i < L->batch; i++) {
        int rep = 0;
        if (make_sample(L, first + i, pixels + (size_t)i * L->sample_floats, &rep, err)) return -1;
        *replaced += rep;
    }
    return 0;
}

/* Threads: wait for the batch's slot to fill, copy it out, free the slot. */
static int next_queued(loader *L, float *pixels, int *replaced, sx_err *err) {
    pthread_mutex_lock(&L->mu);
    int slot = (int)(L->consumed % QUEUE_DEPTH);
    while (L->slot_filled[slot] < L->batch && !L->failed) pthread_cond_wait(&L->done_cv, &L->mu);
    if (L->slot_filled[slot] < L->batch) {
        sx_err e = L->fail_err;
        pthread_mutex_unlock(&L->mu);
        return sx_fail(err, "%s", e.msg);
    }
    *replaced = L->slot_replaced[slot];
    pthread_mutex_unlock(&L->mu);
    /* No worker writes a full slot: the next batch for it waits for consumed to move. */
    memcpy(pixels, L->slot_px[slot], (size_t)L->batch * L->sample_floats * sizeof(float));
    pthread_mutex_lock(&L->mu);
    L->slot_filled[slot] = 0; /* reused once loader_next advances consumed */
    L->slot_replaced[slot] = 0;
    pthread_mutex_unlock(&L->mu);
    return 0;
}

int loader_next(loader *L, float *pixels, loader_info *info, sx_err *err) {
    int replaced = 0;
    if (L->threads ? next_queued(L, pixels, &replaced, err) : next_inline(L, pixels, &replaced, err)) return -1;
    long long first = sample_position(L, L->consumed * L->batch);
    pthread_mutex_lock(&L->mu);
    L->consumed++;
    if (info)
        *info = (loader_info){.position = first, .epoch = first / (long long)L->n, .replaced = replaced,
                              .skipped = L->skipped};
    pthread_cond_broadcast(&L->work_cv);
    pthread_mutex_unlock(&L->mu);
    return 0;
}

long long loader_position(const loader *L) { return L->start + L->consumed * L->stride; }
