/* http.c: see http.h. libmicrohttpd runs one thread per connection (the
 * connection limit bounds them); a POST /api/analyze is read into memory
 * (the upload limit is checked against Content-Length before any of the
 * body is read, and again while reading a chunked body), handed to the
 * worker pool, and its caller waits up to the time limit. */
#include "serve/http.h"
#include "serve/analyze.h"
#include "serve/assets.h"
#include "serve/jobs.h"
#include "serve/multipart.h"
#include "serve/request.h"
#include "serve/results.h"
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define SMALL_BODY 4096

struct sv_server {
    sv_options o;
    char *token;
    an_models m;
    jb_pool *pool;
    rs_store *store;
    struct MHD_Daemon *d;
    int port;
    /* bytes of request bodies held now, bounded by budget so that many
     * slow uploads at once cannot exhaust memory (503 beyond it) */
    atomic_size_t held;
    size_t budget;
};

typedef struct {
    char *buf;
    size_t len, cap, limit, reserved;
    int analyze, rejected;
    double t0;
} conn;

void sv_options_default(sv_options *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->workers = 2;
    o->queue = 16;
    o->max_upload = (size_t)64 << 20;
    o->max_results = 64;
    o->result_ttl_s = 1800;
    o->time_limit_s = 300;
    o->default_passes = 10;
    o->max_passes = 16;
}

static void logf_(sv_server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(sv_server *s, const char *fmt, ...) {
    if (!s->o.log) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    for (char *p = line; *p; p++)
        if ((unsigned char)*p < 32) *p = '?';
    s->o.log(s->o.log_user, line);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap) {
    sv_server *s = cls;
    if (!s->o.log) return;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    logf_(s, "httpd: %s", line);
}

/* ---- responses ---- */

static enum MHD_Result reply(sv_server *s, struct MHD_Connection *c, conn *cn, const char *method, const char *url,
                             int status, const char *ctype, void *body, size_t len, enum MHD_ResponseMemoryMode mode,
                             const char *extra_name, const char *extra_value) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE) free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    if (!strncmp(ctype, "text/html", 9))
        MHD_add_response_header(r, "Content-Security-Policy",
                                strstr(url, "/report.html")
                                    ? "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
                                    : "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'");
    if (extra_name) MHD_add_response_header(r, extra_name, extra_value);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    logf_(s, "%s %s %d %zu bytes %.0f ms", method, url, status, len, (sx_now() - cn->t0) * 1e3);
    return ok;
}

static enum MHD_Result reply_json(sv_server *s, struct MHD_Connection *c, conn *cn, const char *method,
                                  const char *url, int status, char *json) {
    if (!json) return MHD_NO;
    return reply(s, c, cn, method, url, status, "application/json", json, strlen(json), MHD_RESPMEM_MUST_FREE,
                 NULL, NULL);
}

static enum MHD_Result reply_error(sv_server *s, struct MHD_Connection *c, conn *cn, const char *method,
                                   const char *url, int status, const char *msg) {
    return reply_json(s, c, cn, method, url, status, an_error_json(msg));
}

static enum MHD_Result reply_asset(sv_server *s, struct MHD_Connection *c, conn *cn, const char *method,
                                   const char *url, int status, const char *name) {
    const sv_asset *a = sv_asset_find(name);
    if (!a) return reply_error(s, c, cn, method, url, 404, "not found");
    const char *dot = strrchr(name, '.');
    const char *ct = "application/octet-stream";
    if (dot && !strcmp(dot, ".html")) ct = "text/html; charset=utf-8";
    else if (dot && !strcmp(dot, ".js")) ct = "text/javascript; charset=utf-8";
    else if (dot && !strcmp(dot, ".css")) ct = "text/css; charset=utf-8";
    else if (dot && !strcmp(dot, ".svg")) ct = "image/svg+xml";
    return reply(s, c, cn, method, url, status, ct, (void *)a->data, a->len, MHD_RESPMEM_PERSISTENT, NULL, NULL);
}

/* ---- routes ---- */

static enum MHD_Result do_healthz(sv_server *s, struct MHD_Connection *c, conn *cn, const char *method,
                                  const char *url) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return MHD_NO;
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddStringToObject(o, "model", s->m.mae_info.name ? s->m.mae_info.name : "");
    cJSON_AddStringToObject(o, "version", skx_version());
    if (s->m.cls) cJSON_AddStringToObject(o, "classifier", s->m.cls_info.name ? s->m.cls_info.name : "");
    cJSON_AddNumberToObject(o, "workers", s->o.workers);
    cJSON_AddNumberToObject(o, "pending", jb_pending(s->pool));
    cJSON_AddNumberToObject(o, "results", rs_count(s->store));
    cJSON_AddNumberToObject(o, "max_upload", (double)s->o.max_upload);
    cJSON_AddNumberToObject(o, "upload_bytes_held", (double)atomic_load(&s->held));
    cJSON_AddNumberToObject(o, "max_passes", s->o.max_passes);
    char *js = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return reply_json(s, c, cn, method, url, 200, js);
}

static enum MHD_Result do_analyze(sv_server *s, struct MHD_Connection *c, conn *cn, const char *method,
                                  const char *url) {
    char why[160];
    rq_opts ro;
    if (rq_parse_opts(MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "passes"),
                      MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "masking"),
                      MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "seed"), s->o.default_passes,
                      s->o.max_passes, &ro, why, sizeof why) != 0)
        return reply_error(s, c, cn, method, url, 400, why);
    const char *data = cn->buf;
    size_t len = cn->len;
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct && strncasecmp(ct, "multipart/", 10) == 0) {
        char boundary[MP_MAX_BOUNDARY + 1];
        if (mp_boundary(ct, boundary) != 0)
            return reply_error(s, c, cn, method, url, 400, "multipart/form-data needs a valid boundary");
        if (mp_find_field(cn->buf, cn->len, boundary, "file", &data, &len, why, sizeof why) != 0)
            return reply_error(s, c, cn, method, url, 400, why);
    }
    if (!data || len == 0) return reply_error(s, c, cn, method, url, 400, "empty upload: send the image as the body or as the multipart field 'file'");
    an_task *t = calloc(1, sizeof *t);
    if (!t) return reply_error(s, c, cn, method, url, 503, "out of memory");
    t->body = cn->buf;             /* the task owns the upload now */
    t->data = data;
    t->len = len;
    t->opts = ro;
    cn->buf = NULL;
    cn->len = cn->cap = 0;
    jb_status st = jb_submit_wait(s->pool, t, s->o.time_limit_s);
    if (st == JB_FULL) {
        an_task_free(t);
        return reply_error(s, c, cn, method, url, 503, "all workers are busy and the queue is full: try again shortly");
    }
    if (st == JB_TIMEOUT) return reply_error(s, c, cn, method, url, 503, "the analysis ran over the time limit");
    int http = t->http ? t->http : 500;
    char *json = t->json;
    t->json = NULL;
    if (http == 200 && t->item) {
        rs_put(s->store, t->item);
        t->item = NULL;
    }
    an_task_free(t);
    if (!json) return reply_error(s, c, cn, method, url, 503, "out of memory");
    return reply_json(s, c, cn, method, url, http, json);
}

static enum MHD_Result do_result(sv_server *s, struct MHD_Connection *c, conn *cn, const char *method,
                                 const char *url, const char *id, const char *file) {
    static const struct { const char *file; rs_kind k; const char *ct; } files[] = {
        {"overlay.png", RS_OVERLAY, "image/png"}, {"error.npy", RS_NPY, "application/octet-stream"},
        {"image.png", RS_IMAGE, "image/png"}, {"report.html", RS_REPORT, "text/html; charset=utf-8"},
        {"result.json", RS_JSON, "application/json"}};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        if (strcmp(file, files[i].file) != 0) continue;
        size_t len;
        void *b = rs_get(s->store, id, files[i].k, &len);
        if (!b) return reply_error(s, c, cn, method, url, 404, "no such result (results are kept for a limited time)");
        char disp[96];
        snprintf(disp, sizeof disp, "%s; filename=\"skelex-%.8s-%s\"",
                 files[i].k == RS_REPORT || files[i].k == RS_JSON ? "inline" : "attachment", id, file);
        if (files[i].k == RS_IMAGE || files[i].k == RS_OVERLAY) snprintf(disp, sizeof disp, "inline; filename=\"skelex-%.8s-%s\"", id, file);
        return reply(s, c, cn, method, url, 200, files[i].ct, b, len, MHD_RESPMEM_MUST_FREE, "Content-Disposition", disp);
    }
    return reply_error(s, c, cn, method, url, 404, "not found");
}

static enum MHD_Result do_login(sv_server *s, struct MHD_Connection *c, conn *cn, const char *method,
                                const char *url) {
    char tok[512];
    if (s->token && rq_form_value(cn->buf ? cn->buf : "", cn->len, "token", tok, sizeof tok) == 0) {
        char auth[600];
        snprintf(auth, sizeof auth, "Bearer %s", tok);
        if (rq_authorized(auth, NULL, s->token)) {
            char setc[700];
            snprintf(setc, sizeof setc, "skx_token=%s; Path=/; HttpOnly; SameSite=Strict", s->token);
            struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
            if (!r) return MHD_NO;
            MHD_add_response_header(r, "Set-Cookie", setc);
            MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, "/");
            MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
            enum MHD_Result ok = MHD_queue_response(c, 303, r);
            MHD_destroy_response(r);
            logf_(s, "%s %s 303 login ok", method, url);
            return ok;
        }
    }
    if (!s->token) return reply_error(s, c, cn, method, url, 404, "no token is set: nothing to log in to");
    return reply_asset(s, c, cn, method, url, 401, "login.html");
}

/* Grow cn's share of the body budget to total bytes; 0 when over it. */
static int reserve(sv_server *s, conn *cn, size_t total) {
    if (total <= cn->reserved) return 1;
    size_t more = total - cn->reserved;
    size_t now = atomic_fetch_add(&s->held, more);
    if (now + more > s->budget) {
        atomic_fetch_sub(&s->held, more);
        return 0;
    }
    cn->reserved = total;
    return 1;
}

static int is_page(const char *url) {
    return !strcmp(url, "/") || !strcmp(url, "/index.html");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_size, void **con_cls) {
    (void)version;
    sv_server *s = cls;
    conn *cn = *con_cls;
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    if (!cn) {
        cn = calloc(1, sizeof *cn);
        if (!cn) return MHD_NO;
        cn->t0 = sx_now();
        *con_cls = cn;
        int login = post && !strcmp(url, "/login");
        if (!login && !rq_authorized(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
                                     MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_COOKIE), s->token)) {
            cn->rejected = 1;
            if (get && is_page(url)) return reply_asset(s, c, cn, method, url, 401, "login.html");
            return reply_error(s, c, cn, method, url, 401, "a valid token is required (Authorization: Bearer TOKEN, or log in at /)");
        }
        cn->analyze = post && !strcmp(url, "/api/analyze");
        cn->limit = cn->analyze ? s->o.max_upload : SMALL_BODY;
        if (post) {
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl) {
                char *end;
                unsigned long long v = strtoull(cl, &end, 10);
                if (*end || v > cn->limit) {
                    cn->rejected = 1;
                    char msg[128];
                    snprintf(msg, sizeof msg, "the upload is over the limit of %zu bytes", cn->limit);
                    return reply_error(s, c, cn, method, url, 413, msg);
                }
                if (!reserve(s, cn, (size_t)v)) {
                    cn->rejected = 1;
                    return reply_error(s, c, cn, method, url, 503, "the server holds too many uploads at once: try again shortly");
                }
                if (v > 0 && !(cn->buf = malloc((size_t)v))) return MHD_NO;
                cn->cap = (size_t)v;
            }
        }
        return MHD_YES;
    }
    if (cn->rejected) {        /* a response is queued: drop what follows */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!post || cn->len + *upload_size > cn->limit) {
            /* chunked past the limit (or a body where none belongs): a
             * response cannot be queued mid-body, so close the connection */
            logf_(s, "%s %s closed: body over the limit of %zu bytes", method, url, cn->limit);
            return MHD_NO;
        }
        if (cn->len + *upload_size > cn->cap) {
            size_t nc = cn->cap ? cn->cap : 65536;
            while (nc < cn->len + *upload_size) nc *= 2;
            if (nc > cn->limit) nc = cn->limit;
            if (!reserve(s, cn, nc)) {
                logf_(s, "%s %s closed: the server holds too many uploads at once", method, url);
                return MHD_NO;
            }
            char *nb = realloc(cn->buf, nc);
            if (!nb) return MHD_NO;
            cn->buf = nb;
            cn->cap = nc;
        }
        memcpy(cn->buf + cn->len, upload_data, *upload_size);
        cn->len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    /* the whole request is in */
    if (get && !strcmp(url, "/healthz")) return do_healthz(s, c, cn, method, url);
    if (get && is_page(url)) return reply_asset(s, c, cn, method, url, 200, "index.html");
    if (get && !strcmp(url, "/app.js")) return reply_asset(s, c, cn, method, url, 200, "app.js");
    if (get && !strcmp(url, "/app.css")) return reply_asset(s, c, cn, method, url, 200, "app.css");
    if (cn->analyze) return do_analyze(s, c, cn, method, url);
    if (post && !strcmp(url, "/login")) return do_login(s, c, cn, method, url);
    char id[33];
    const char *file = rq_result_path(url, id);
    if (get && file) return do_result(s, c, cn, method, url, id, file);
    if (!get && !post) return reply_error(s, c, cn, method, url, 405, "method not allowed");
    return reply_error(s, c, cn, method, url, 404, "not found");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)c;
    (void)toe;
    conn *cn = *con_cls;
    if (!cn) return;
    atomic_fetch_sub(&((sv_server *)cls)->held, cn->reserved);
    free(cn->buf);
    free(cn);
    *con_cls = NULL;
}

/* ---- the pool's callbacks ---- */

static int w_init(void *user, int i, void **state, sx_err *err) {
    (void)i;
    an_worker *w;
    if (an_worker_new(&((sv_server *)user)->m, &w, err) != 0) return -1;
    *state = w;
    return 0;
}
static void w_fini(void *user, void *state) {
    (void)user;
    an_worker_free(state);
}
static void w_run(void *user, void *state, void *task) {
    an_run(&((sv_server *)user)->m, state, task);
}
static void w_task_free(void *task) {
    an_task_free(task);
}

/* ---- start / stop ---- */

int sv_port(const sv_server *s) {
    return s->port;
}

void sv_stop(sv_server *s) {
    if (!s) return;
    if (s->d) MHD_stop_daemon(s->d);
    jb_free(s->pool);
    rs_free(s->store);
    skx_model_free(s->m.mae);
    skx_model_free(s->m.cls);
    free(s->token);
    free(s);
}

static int load_model(const char *dir, skx_model_kind want, skx_model **m, skx_model_info *info, sx_err *err) {
    skx_error e;
    if (skx_model_load(dir, m, &e) != 0) return sx_fail(err, "%s", e.msg);
    skx_model_get_info(*m, info);
    if (info->kind != want)
        return sx_fail(err, "%s: %s", dir,
                       want == SKX_MODEL_MAE ? "not a masked autoencoder (ViTMAEForPreTraining): --model needs one"
                                             : "not a classifier (ViTForImageClassification): --classifier needs one");
    if (want == SKX_MODEL_CLASSIFIER && skx_model_group_count(*m) == 0)
        return sx_fail(err, "%s: a regression head: --classifier needs a classification model", dir);
    return 0;
}

/* host (an IPv4 or IPv6 literal) and port as a socket address; 0 or -1. */
static int make_addr(const char *host, int port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof *ss);
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        return inet_pton(AF_INET6, host, &a6->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &a4->sin_addr) == 1 ? 0 : -1;
}

int sv_start(const sv_options *o, sv_server **out, sx_err *err) {
    *out = NULL;
    if (!o->model_dir) return sx_fail(err, "a model directory is required");
    if (o->workers < 1 || o->workers > 256) return sx_fail(err, "workers must be 1..256");
    if (o->max_passes < 1 || o->default_passes < 1 || o->default_passes > o->max_passes)
        return sx_fail(err, "passes: need 1 <= default <= max");
    if (o->port < 0 || o->port > 65535) return sx_fail(err, "port must be 0..65535");
    sv_server *s = calloc(1, sizeof *s);
    if (!s) return sx_fail(err, "out of memory");
    s->o = *o;
    s->o.host = o->host ? o->host : "127.0.0.1";
    if (o->token && *o->token) {
        for (const char *p = o->token; *p; p++)
            if ((unsigned char)*p <= 32 || *p == ';' || *p == ',' || *p == '"' || *p == '\\' || (unsigned char)*p >= 127) {
                free(s);
                return sx_fail(err, "the token must be printable ASCII without spaces, quotes, ';', ',' or '\\'");
            }
        if (strlen(o->token) > 256) {
            free(s);
            return sx_fail(err, "the token is over 256 characters");
        }
        s->token = strdup(o->token);
    }
    s->o.token = NULL;
    if (load_model(o->model_dir, SKX_MODEL_MAE, &s->m.mae, &s->m.mae_info, err) != 0 ||
        (o->classifier_dir &&
         load_model(o->classifier_dir, SKX_MODEL_CLASSIFIER, &s->m.cls, &s->m.cls_info, err) != 0)) {
        sv_stop(s);
        return -1;
    }
    s->m.max_passes = o->max_passes;
    atomic_init(&s->held, 0);
    /* room for every worker's and queued upload at full size, and two more */
    s->budget = o->max_upload * (size_t)(o->workers + o->queue + 2);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    s->m.threads = o->threads > 0 ? o->threads : o->workers == 1 ? 0 : (int)(ncpu / o->workers > 1 ? ncpu / o->workers : 1);
    s->store = rs_new(o->max_results, o->result_ttl_s);
    jb_config jc = {.workers = o->workers, .queue = o->queue, .user = s, .init = w_init, .fini = w_fini,
                    .run = w_run, .task_free = w_task_free};
    if (!s->store || jb_new(&jc, &s->pool, err) != 0) {
        if (!s->store) sx_fail(err, "out of memory");
        sv_stop(s);
        return -1;
    }
    struct sockaddr_storage ss;
    int v6 = strchr(s->o.host, ':') != NULL;
    if (make_addr(s->o.host, o->port, &ss) != 0) {
        sv_stop(s);
        return sx_fail(err, "host '%s' is not an IPv4 or IPv6 address", o->host);
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG |
                     (v6 ? MHD_USE_IPv6 : 0);
    unsigned climit = (unsigned)(o->workers + o->queue + 32);
    s->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, handler, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_LIMIT, climit,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                            MHD_OPTION_END);
    if (!s->d) {
        sv_stop(s);
        return sx_fail(err, "cannot listen on %s port %d (in use, or not an address of this machine?)", o->host, o->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    logf_(s, "listening on %s port %d, %d workers, model %s", s->o.host, s->port, o->workers,
          s->m.mae_info.name ? s->m.mae_info.name : "?");
    *out = s;
    return 0;
}
