/* analyze.h: one analysis of an uploaded image through the public API
 * (include/skelex.h): decode it from memory, compute its error map,
 * classify it when a classifier is loaded, and render everything the page
 * and the downloads need. Uses pixels and figures only, so no DICOM
 * identifier can reach what it produces. */
#ifndef SKELEX_SERVE_ANALYZE_H
#define SKELEX_SERVE_ANALYZE_H
#include "core/common.h"
#include "serve/request.h"
#include "serve/results.h"
#include "skelex.h"

#define AN_MAX_REGIONS 4   /* the error map's default 3 areas + the whole image */

typedef struct {
    skx_model *mae, *cls;      /* cls may be NULL */
    skx_model_info mae_info, cls_info;
    int max_passes;            /* each worker's ctx holds this many passes */
    int threads;               /* OpenMP threads per worker (0: all) */
} an_models;

typedef struct { skx_ctx *mae, *cls; } an_worker;

int  an_worker_new(const an_models *m, an_worker **out, sx_err *err);
void an_worker_free(an_worker *w);

typedef struct {
    /* in: the upload (owned: freed with the task) and the view of the image in it */
    void *body;
    const void *data;
    size_t len;
    rq_opts opts;
    /* out */
    int http;                  /* 200, or the error status */
    char *json;                /* the response body (malloc'd) */
    rs_item *item;             /* on 200: the result's files, for the store */
} an_task;

/* Run t with worker w: fills t->http, t->json and, on success, t->item. */
void an_run(const an_models *m, an_worker *w, an_task *t);
void an_task_free(an_task *t);

/* {"error": msg} as a malloc'd string (NULL on exhaustion). */
char *an_error_json(const char *msg);

/* An 8-bit grey PNG of w x h pixels (malloc'd); 0 or -1 with err. */
int an_gray_png(const uint8_t *px, int w, int h, void **png, size_t *len, sx_err *err);

#endif
