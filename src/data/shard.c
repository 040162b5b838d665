/* shard.c: WebDataset-style tar shards: writer, index, streaming reader
 * with a seeded shuffle buffer; see shard.h. */
#include "data/shard.h"
#include "core/json.h"
#include "core/rng.h"
#include "data/data.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK 512
#define MAX_MEMBER (1ull << 31)  /* a member larger than 2 GiB is taken as a corrupt size field */

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

static size_t padded(uint64_t n) { return (size_t)((n + BLOCK - 1) / BLOCK * BLOCK); }

/* ------------------------------------------------------------------ tar */

static unsigned header_sum(const uint8_t *h) {
    unsigned s = 0;
    for (int i = 0; i < BLOCK; i++) s += (i >= 148 && i < 156) ? ' ' : h[i];
    return s;
}

static void tar_header(uint8_t *h, const char *name, uint64_t size) {
    memset(h, 0, BLOCK);
    snprintf((char *)h, 100, "%s", name);
    memcpy(h + 100, "0000644", 8);
    memcpy(h + 108, "0000000", 8);
    memcpy(h + 116, "0000000", 8);
    snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
    memcpy(h + 136, "00000000000", 12);  /* mtime 0: the same inputs give the same bytes */
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    snprintf((char *)h + 148, 8, "%06o", header_sum(h));
    h[155] = ' ';
}

static int parse_octal(const uint8_t *p, int n, uint64_t *out) {
    uint64_t v = 0;
    int i = 0, digits = 0;
    while (i < n && p[i] == ' ') i++;
    for (; i < n && p[i] >= '0' && p[i] <= '7'; i++, digits++) v = v * 8 + (uint64_t)(p[i] - '0');
    for (; i < n; i++) if (p[i] != ' ' && p[i] != 0) return -1;
    if (!digits) return -1;
    *out = v;
    return 0;
}

/* A valid ustar header: checksum, magic, a size, a NUL-terminated name. */
static int header_ok(const uint8_t *h, uint64_t *size) {
    uint64_t sum;
    if (parse_octal(h + 148, 8, &sum) || sum != header_sum(h)) return 0;
    if (memcmp(h + 257, "ustar", 5)) return 0;
    if (parse_octal(h + 124, 12, size) || *size > MAX_MEMBER) return 0;
    return memchr(h, 0, 100) != NULL && h[0] != 0;
}

static int all_zero(const uint8_t *h) {
    for (int i = 0; i < BLOCK; i++) if (h[i]) return 0;
    return 1;
}

/* --------------------------------------------------------------- writer */

struct shard_writer {
    char *dir;
    uint64_t max;
    FILE *f;
    char tmp[4200];
    uint64_t bytes;       /* in the open shard */
    long long in_shard, total;
    int shards;
    cJSON *list;
};

shard_writer *shard_writer_open(const char *dir, uint64_t max_bytes, sx_err *err) {
    char p[4200];
    if (mkdir(dir, 0755) && errno != EEXIST) { sx_fail(err, "%s: cannot create (%s)", dir, strerror(errno)); return NULL; }
    snprintf(p, sizeof p, "%s/%s", dir, SHARD_INDEX);
    if (access(p, F_OK) == 0) { sx_fail(err, "%s already holds shards (%s); use another --out", dir, SHARD_INDEX); return NULL; }
    if (max_bytes < 4 * BLOCK) { sx_fail(err, "shard size %llu bytes is too small", (unsigned long long)max_bytes); return NULL; }
    shard_writer *w = sx_calloc(1, sizeof *w);
    w->dir = strdup(dir);
    w->max = max_bytes;
    w->list = cJSON_CreateArray();
    if (!w->dir || !w->list) { fprintf(stderr, "skelex: out of memory\n"); exit(4); }
    return w;
}

static int write_all(shard_writer *w, const void *p, size_t n, sx_err *err) {
    if (n && fwrite(p, 1, n, w->f) != n) return sx_fail(err, "%s: write failed (%s)", w->tmp, strerror(errno));
    w->bytes += n;
    return 0;
}

static int write_member(shard_writer *w, const char *name, const void *data, size_t n, sx_err *err) {
    uint8_t h[BLOCK], zero[BLOCK] = {0};
    tar_header(h, name, n);
    if (write_all(w, h, BLOCK, err) || write_all(w, data, n, err)) return -1;
    return write_all(w, zero, padded(n) - n, err);
}

static int finish_shard(shard_writer *w, sx_err *err) {
    uint8_t zero[2 * BLOCK] = {0};
    int rc = write_all(w, zero, sizeof zero, err);
    if (!rc && (fflush(w->f) || fsync(fileno(w->f)))) rc = sx_fail(err, "%s: write failed (%s)", w->tmp, strerror(errno));
    if (fclose(w->f) && !rc) rc = sx_fail(err, "%s: close failed (%s)", w->tmp, strerror(errno));
    w->f = NULL;
    char name[64], final[4300];
    snprintf(name, sizeof name, "shard-%06d.tar", w->shards);
    snprintf(final, sizeof final, "%s/%s", w->dir, name);
    if (!rc && rename(w->tmp, final)) rc = sx_fail(err, "%s: rename failed (%s)", final, strerror(errno));
    if (rc) { unlink(w->tmp); return -1; }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddNumberToObject(o, "samples", (double)w->in_shard);
    cJSON_AddNumberToObject(o, "bytes", (double)w->bytes);
    cJSON_AddItemToArray(w->list, o);
    w->shards++;
    w->in_shard = 0;
    w->bytes = 0;
    return 0;
}

int shard_writer_add_bytes(shard_writer *w, const char *source, const char *ext, const void *data, size_t n,
                           sx_err *err) {
    char key[32], name[64], json[256];
    snprintf(key, sizeof key, "%09lld", w->total);
    int jn = snprintf(json, sizeof json, "{\"key\": \"%s\", \"source_hash\": \"%016llx\", \"size\": %zu, \"ext\": \"%s\"}\n",
                      key, (unsigned long long)fnv1a64(source), n, ext);
    uint64_t need = 2 * BLOCK + padded(n) + padded((uint64_t)jn);
    if (w->f && w->in_shard > 0 && w->bytes + need + 2 * BLOCK > w->max && finish_shard(w, err)) return -1;
    if (!w->f) {
        snprintf(w->tmp, sizeof w->tmp, "%s/shard-%06d.tar.tmp", w->dir, w->shards);
        if (!(w->f = fopen(w->tmp, "wb"))) return sx_fail(err, "%s: cannot create (%s)", w->tmp, strerror(errno));
    }
    snprintf(name, sizeof name, "%s.%s", key, ext);
    if (write_member(w, name, data, n, err)) return -1;
    snprintf(name, sizeof name, "%s.json", key);
    if (write_member(w, name, json, (size_t)jn, err)) return -1;
    w->in_shard++;
    w->total++;
    return 0;
}

int shard_writer_add(shard_writer *w, const char *path, sx_err *err) {
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    char ext[16] = "bin";
    if (dot && (!slash || dot > slash) && strlen(dot + 1) > 0 && strlen(dot + 1) < sizeof ext) {
        for (size_t i = 0; dot[1 + i]; i++) ext[i] = (char)tolower((unsigned char)dot[1 + i]);
        ext[strlen(dot + 1)] = 0;
    }
    uint64_t size;
    FILE *f = sx_fopen_input(path, &size, err);
    if (!f) return -1;
    if (size > MAX_MEMBER) { fclose(f); return sx_fail(err, "%s: %llu bytes is too large for a shard member", path, (unsigned long long)size); }
    uint8_t *buf = sx_malloc(size ? (size_t)size : 1);
    int rc = fread(buf, 1, (size_t)size, f) == (size_t)size ? 0 : sx_fail(err, "%s: read failed", path);
    fclose(f);
    if (!rc) rc = shard_writer_add_bytes(w, path, ext, buf, (size_t)size, err);
    free(buf);
    return rc;
}

static void writer_free(shard_writer *w) {
    cJSON_Delete(w->list);
    free(w->dir);
    free(w);
}

void shard_writer_abort(shard_writer *w) {
    if (!w) return;
    if (w->f) { fclose(w->f); unlink(w->tmp); }
    writer_free(w);
}

long long shard_writer_samples(const shard_writer *w) { return w->total; }
int shard_writer_shards(const shard_writer *w) { return w->shards + (w->f ? 1 : 0); }

int shard_writer_close(shard_writer *w, sx_err *err) {
    if (w->f && finish_shard(w, err)) { writer_free(w); return -1; }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "format", "skelex-shards");
    cJSON_AddNumberToObject(r, "version", 1);
    cJSON_AddNumberToObject(r, "samples", (double)w->total);
    cJSON_AddItemToObject(r, "shards", w->list);
    w->list = NULL;
    char tmp[4300], final[4300];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", w->dir, SHARD_INDEX);
    snprintf(final, sizeof final, "%s/%s", w->dir, SHARD_INDEX);
    int rc = json_write_file(tmp, r, err);
    cJSON_Delete(r);
    if (!rc && rename(tmp, final)) rc = sx_fail(err, "%s: rename failed (%s)", final, strerror(errno));
    if (rc) unlink(tmp);
    writer_free(w);
    return rc;
}

/* ---------------------------------------------------------------- index */

int shard_is_dir(const char *path) {
    char p[4200];
    struct stat st;
    if (stat(path, &st) || !S_ISDIR(st.st_mode)) return 0;
    snprintf(p, sizeof p, "%s/%s", path, SHARD_INDEX);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

void shard_index_free(shard_index *ix) {
    for (int i = 0; i < ix->n; i++) free(ix->names[i]);
    free(ix->names);
    free(ix->samples);
    free(ix->dir);
    memset(ix, 0, sizeof *ix);
}

int shard_index_load(const char *dir, shard_index *ix, sx_err *err) {
    memset(ix, 0, sizeof *ix);
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, SHARD_INDEX);
    cJSON *r = sx_json_load(p, 64u << 20, err);
    if (!r) return -1;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(r, "format"), *ver = cJSON_GetObjectItemCaseSensitive(r, "version");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(r, "shards"), *it;
    int rc = 0;
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "skelex-shards") || !cJSON_IsNumber(ver) || ver->valuedouble != 1)
        rc = sx_fail(err, "%s: not a skelex shard index (format skelex-shards, version 1)", p);
    else if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) < 1 || cJSON_GetArraySize(list) > 10000000)
        rc = sx_fail(err, "%s: \"shards\" must list 1 to 10000000 shards", p);
    if (!rc) {
        int n = cJSON_GetArraySize(list);
        ix->names = sx_calloc((size_t)n, sizeof *ix->names);
        ix->samples = sx_calloc((size_t)n, sizeof *ix->samples);
        cJSON_ArrayForEach(it, list) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name"), *ns = cJSON_GetObjectItemCaseSensitive(it, "samples");
            if (!cJSON_IsString(nm) || !nm->valuestring[0] || strchr(nm->valuestring, '/') || !strcmp(nm->valuestring, "..") ||
                !cJSON_IsNumber(ns) || ns->valuedouble < 0 || ns->valuedouble > 1e12 || ns->valuedouble != (double)(long long)ns->valuedouble) {
                rc = sx_fail(err, "%s: shard %d needs a plain file \"name\" and a whole \"samples\" count", p, ix->n);
                break;
            }
            ix->names[ix->n] = strdup(nm->valuestring);
            if (!ix->names[ix->n]) { fprintf(stderr, "skelex: out of memory\n"); exit(4); }
            ix->samples[ix->n] = (long long)ns->valuedouble;
            ix->total += ix->samples[ix->n];
            ix->n++;
        }
    }
    cJSON_Delete(r);
    if (!rc && ix->total == 0) rc = sx_fail(err, "%s: the shards hold no sample", p);
    if (!rc && !(ix->dir = strdup(dir))) { fprintf(stderr, "skelex: out of memory\n"); exit(4); }
    if (rc) shard_index_free(ix);
    return rc;
}

/* --------------------------------------------------------------- stream */

void shard_sample_free(shard_sample *s) {
    free(s->data);
    free(s->json);
    memset(s, 0, sizeof *s);
}

struct shard_stream {
    const shard_index *ix;
    int *mine, n_mine;     /* this rank's shards */
    int *order, next;      /* this epoch's order, next to open */
    uint64_t seed;
    int rank;
    long long epoch, skipped;
    sx_rng rng;
    shard_warn_fn warn;
    void *ctx;
    FILE *f;
    int cur;               /* shard being read */
    uint64_t off;          /* byte offset in it */
    shard_sample pending;  /* members of the key being assembled */
    int input_done;
    shard_sample *buf;
    int buf_n, buf_cap;
};

static void warnf(shard_stream *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warnf(shard_stream *s, const char *fmt, ...) {
    s->skipped++;
    if (!s->warn) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->warn(s->ctx, msg);
}

static void start_epoch(shard_stream *s) {
    rng_seed(&s->rng, (s->seed * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)s->epoch * 1000003ull + (uint64_t)s->rank * 7919ull + 1));
    memcpy(s->order, s->mine, sizeof(int) * (size_t)s->n_mine);
    for (int i = s->n_mine - 1; i > 0; i--) {
        int j = (int)rng_below(&s->rng, (uint32_t)(i + 1)), t = s->order[i];
        s->order[i] = s->order[j];
        s->order[j] = t;
    }
    s->next = 0;
    s->input_done = 0;
}

shard_stream *shard_stream_open(const shard_index *ix, int rank, int size, uint64_t seed, int buffer,
                                shard_warn_fn warn, void *ctx, sx_err *err) {
    if (size < 1 || rank < 0 || rank >= size) { sx_fail(err, "rank %d of %d is out of range", rank, size); return NULL; }
    if (buffer < 1 || buffer > 1 << 20) { sx_fail(err, "shuffle buffer %d is out of range [1, %d]", buffer, 1 << 20); return NULL; }
    if (ix->n < size) { sx_fail(err, "%s: %d shard(s) for %d ranks: each rank needs one (write smaller shards)", ix->dir, ix->n, size); return NULL; }
    shard_stream *s = sx_calloc(1, sizeof *s);
    s->ix = ix; s->seed = seed; s->rank = rank; s->warn = warn; s->ctx = ctx;
    s->mine = sx_malloc(sizeof(int) * (size_t)ix->n);
    s->order = sx_malloc(sizeof(int) * (size_t)ix->n);
    for (int i = rank; i < ix->n; i += size) s->mine[s->n_mine++] = i;
    s->buf_cap = buffer;
    s->buf = sx_calloc((size_t)buffer, sizeof *s->buf);
    start_epoch(s);
    return s;
}

static void close_shard(shard_stream *s) {
    if (s->f) fclose(s->f);
    s->f = NULL;
}

/* Skip n bytes of the open shard; -1 when it ends first. */
static int skip_bytes(shard_stream *s, uint64_t n) {
    if (fseeko(s->f, (off_t)n, SEEK_CUR)) return -1;
    s->off += n;
    /* a seek past the end succeeds: check that the bytes were there */
    uint64_t size;
    struct stat st;
    if (fstat(fileno(s->f), &st)) return -1;
    size = (uint64_t)st.st_size;
    return s->off <= size ? 0 : -1;
}

/* The next member of the open shard: 1 with *name/data/len, 0 at its end. */
static int read_member(shard_stream *s, char name[101], uint8_t **data, size_t *len) {
    const char *shard = s->ix->names[s->cur];
    uint8_t h[BLOCK];
    int resync = 0;
    uint64_t size = 0;
    for (;;) {
        size_t got = fread(h, 1, BLOCK, s->f);
        if (got < BLOCK) {
            if (resync) warnf(s, "%s/%s: no valid member after the corrupt header: the rest is skipped", s->ix->dir, shard);
            else warnf(s, "%s/%s: truncated at byte %llu (no end-of-archive blocks)", s->ix->dir, shard, (unsigned long long)s->off);
            return 0;
        }
        if (!resync && all_zero(h)) return 0;  /* end of archive */
        if (header_ok(h, &size)) { s->off += BLOCK; break; }
        if (!resync) warnf(s, "%s/%s: corrupt member header at byte %llu: skipped", s->ix->dir, shard, (unsigned long long)s->off);
        resync = 1;
        s->off += BLOCK;
    }
    memcpy(name, h, 100);
    name[100] = 0;
    if (h[156] != '0' && h[156] != 0) {  /* not a regular file (directory, pax header): its data is skipped */
        if (skip_bytes(s, padded(size))) { warnf(s, "%s/%s: truncated in member %s", s->ix->dir, shard, name); return 0; }
        *data = NULL;
        *len = 0;
        return 1;
    }
    *data = sx_malloc(size + 1);
    if (fread(*data, 1, (size_t)size, s->f) != (size_t)size) {
        free(*data);
        *data = NULL;
        warnf(s, "%s/%s: truncated in member %s: the rest of the shard is skipped", s->ix->dir, shard, name);
        return 0;
    }
    (*data)[size] = 0;
    *len = (size_t)size;
    s->off += size;
    if (skip_bytes(s, padded(size) - size)) { /* the padding is missing: the member itself is whole */ }
    return 1;
}

/* Hand the pending sample out (1) if it has an image, else drop it (0). */
static int take_pending(shard_stream *s, shard_sample *out) {
    if (!s->pending.key[0]) return 0;
    if (!s->pending.data) {
        warnf(s, "%s: sample %s has no image member: skipped", s->ix->dir, s->pending.key);
        shard_sample_free(&s->pending);
        return 0;
    }
    *out = s->pending;
    memset(&s->pending, 0, sizeof s->pending);
    return 1;
}

/* The next sample from the shards of this epoch, in their order: 1, 0 at the end, -1 on error. */
static int read_sample(shard_stream *s, shard_sample *out, sx_err *err) {
    for (;;) {
        if (!s->f) {
            if (s->next >= s->n_mine) return take_pending(s, out);
            s->cur = s->order[s->next++];
            char p[4400];
            snprintf(p, sizeof p, "%s/%s", s->ix->dir, s->ix->names[s->cur]);
            uint64_t size;
            if (!(s->f = sx_fopen_input(p, &size, err))) return -1;
            s->off = 0;
        }
        char name[101];
        uint8_t *data;
        size_t len;
        if (!read_member(s, name, &data, &len)) {
            close_shard(s);
            if (take_pending(s, out)) return 1;
            continue;
        }
        const char *base = strrchr(name, '/');
        base = base ? base + 1 : name;
        const char *dot = strchr(base, '.');
        size_t klen = dot ? (size_t)(dot - base) : strlen(base);
        if (!data || !dot || klen == 0 || klen >= sizeof out->key || strlen(dot + 1) >= sizeof out->ext) { free(data); continue; }
        int ready = 0;
        shard_sample done;
        if (s->pending.key[0] && (strlen(s->pending.key) != klen || strncmp(s->pending.key, base, klen)))
            ready = take_pending(s, &done);
        if (!s->pending.key[0]) { memcpy(s->pending.key, base, klen); s->pending.key[klen] = 0; }
        if (!strcmp(dot + 1, "json")) { free(s->pending.json); s->pending.json = (char *)data; }
        else {
            free(s->pending.data);
            s->pending.data = data;
            s->pending.len = len;
            snprintf(s->pending.ext, sizeof s->pending.ext, "%s", dot + 1);
        }
        if (ready) { *out = done; return 1; }
    }
}

int shard_stream_next(shard_stream *s, shard_sample *out, sx_err *err) {
    memset(out, 0, sizeof *out);
    while (s->buf_n < s->buf_cap && !s->input_done) {
        int rc = read_sample(s, &s->buf[s->buf_n], err);
        if (rc < 0) return -1;
        if (rc == 0) s->input_done = 1;
        else s->buf_n++;
    }
    if (s->buf_n == 0) {
        s->epoch++;
        start_epoch(s);
        return 0;
    }
    uint32_t j = s->buf_cap > 1 ? rng_below(&s->rng, (uint32_t)s->buf_n) : 0;
    *out = s->buf[j];
    s->buf[j] = s->buf[--s->buf_n];
    return 1;
}

long long shard_stream_epoch(const shard_stream *s) { return s->epoch; }
long long shard_stream_skipped(const shard_stream *s) { return s->skipped; }

void shard_stream_close(shard_stream *s) {
    if (!s) return;
    close_shard(s);
    shard_sample_free(&s->pending);
    for (int i = 0; i < s->buf_n; i++) shard_sample_free(&s->buf[i]);
    free(s->buf); free(s->mine); free(s->order);
    free(s);
}

/* ----------------------------------------------------------------- pack */

int shard_pack(const void *dsv, const char *dir, uint64_t max_bytes, uint64_t seed, shard_warn_fn warn, void *ctx,
               long long *written, long long *skipped, int *shards, sx_err *err) {
    const dataset *ds = dsv;
    size_t n = dataset_count(ds);
    *written = *skipped = 0;
    *shards = 0;
    if (n == 0) return sx_fail(err, "no image to pack");
    shard_writer *w = shard_writer_open(dir, max_bytes, err);
    if (!w) return -1;
    uint32_t *order = sx_malloc(sizeof *order * n);
    sx_rng r;
    rng_seed(&r, seed * 0x9e3779b97f4a7c15ull + 0x5a4d);
    for (size_t i = 0; i < n; i++) order[i] = (uint32_t)i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = rng_below(&r, (uint32_t)(i + 1));
        uint32_t t = order[i]; order[i] = order[j]; order[j] = t;
    }
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        sx_err e;
        const char *path = dataset_path(ds, order[i]);
        uint64_t size;
        FILE *probe = sx_fopen_input(path, &size, &e);  /* unreadable: skipped, as the loader skips */
        if (!probe) {
            (*skipped)++;
            if (warn) warn(ctx, e.msg);
            continue;
        }
        fclose(probe);
        rc = shard_writer_add(w, path, err);
    }
    free(order);
    if (rc) { shard_writer_abort(w); return -1; }
    *written = shard_writer_samples(w);
    *shards = shard_writer_shards(w);
    if (*written == 0) { shard_writer_abort(w); return sx_fail(err, "none of the %zu files could be read", n); }
    return shard_writer_close(w, err);
}
