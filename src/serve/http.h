/* http.h: the skelex web application: an HTTP server (libmicrohttpd) with
 * the page, the JSON API (/healthz, /api/analyze, /api/result/<id>/...),
 * token authorisation, upload limits, a bounded worker pool and an
 * in-memory result store. Started and stopped in-process, so tests run it
 * on an ephemeral port. */
#ifndef SKELEX_SERVE_HTTP_H
#define SKELEX_SERVE_HTTP_H
#include "core/common.h"
#include <stddef.h>

typedef struct {
    const char *model_dir;        /* an MAE directory (required) */
    const char *classifier_dir;   /* a classifier directory, or NULL */
    const char *host;             /* an IPv4 or IPv6 literal (default 127.0.0.1) */
    int port;                     /* 0: an ephemeral port (see sv_port) */
    int workers;                  /* analyses at once (>= 1) */
    int queue;                    /* analyses waiting beyond them (>= 0) */
    size_t max_upload;            /* bytes in one request body */
    const char *token;            /* NULL or "": no authorisation */
    int max_results;              /* results kept (LRU) */
    double result_ttl_s;          /* and for at most this long */
    double time_limit_s;          /* per analysis, queueing included: then 503 */
    int default_passes, max_passes;
    int threads;                  /* OpenMP threads per worker (0: cores / workers) */
    /* One line per request and per server event (no identifiers: method,
     * path, status, bytes, milliseconds). NULL: silent. */
    void (*log)(void *user, const char *line);
    void *log_user;
} sv_options;

/* The defaults: 127.0.0.1:8080, 2 workers, queue 16, 64 MiB, 64 results
 * for 30 minutes, 300 s limit, 10 passes (at most 16:
 * each worker's workspace holds max_passes images' activations). */
void sv_options_default(sv_options *o);

typedef struct sv_server sv_server;

/* Load the models, start the workers and listen. 0, or -1 with err. */
int sv_start(const sv_options *o, sv_server **out, sx_err *err);
/* The port listened on (the ephemeral one when port was 0). */
int sv_port(const sv_server *s);
/* Stop listening, finish the requests in progress, free everything. */
void sv_stop(sv_server *s);

#endif
