/* test_serve_units.c: the server's pure parts: multipart, request options,
 * tokens, the login form, result paths, the result store's bounds, the
 * worker pool's queue and time limit, the report's escaping. */
#include "serve/jobs.h"
#include "serve/multipart.h"
#include "serve/report.h"
#include "serve/request.h"
#include "serve/results.h"
#include "testlib.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TEST(test_serve_multipart) {
    char b[MP_MAX_BOUNDARY + 1];
    CHECK(mp_boundary("multipart/form-data; boundary=abc123", b) == 0 && !strcmp(b, "abc123"));
    CHECK(mp_boundary("Multipart/Form-Data;charset=utf-8; boundary=\"a b:c\"", b) == 0 && !strcmp(b, "a b:c"));
    CHECK(mp_boundary("multipart/form-data", b) == -1);
    CHECK(mp_boundary("multipart/form-data; boundary=", b) == -1);
    CHECK(mp_boundary("multipart/form-data; boundary=\"unterminated", b) == -1);
    CHECK(mp_boundary("text/plain; boundary=abc", b) == -1);
    CHECK(mp_boundary("multipart/form-data; boundary=bad{char}", b) == -1);
    char long_b[200] = "multipart/form-data; boundary=";
    memset(long_b + strlen(long_b), 'x', 71);
    CHECK(mp_boundary(long_b, b) == -1);

    const char *body = "preamble\r\n--B\r\nContent-Disposition: form-data; name=\"files\"\r\n\r\nnot me\r\n"
                       "--B\r\ncontent-disposition: form-data; name=file; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"
                       "\x89PNG\r\n--Bx\r\n\r\n--B--\r\n";
    const char *d;
    size_t n;
    char why[128];
    CHECK(mp_find_field(body, strlen(body), "B", "file", &d, &n, why, sizeof why) == 0);
    CHECKF(n == 12 && !memcmp(d, "\x89PNG\r\n--Bx\r\n", 12), "%zu", n);   /* "--Bx" without the CRLF before is data */
    CHECK(mp_find_field(body, strlen(body), "B", "files", &d, &n, why, sizeof why) == 0 && n == 6 && !memcmp(d, "not me", 6));
    CHECK(mp_find_field(body, strlen(body), "B", "other", &d, &n, why, sizeof why) == -1 && strstr(why, "no field"));
    /* starts with the boundary; an empty part; binary with NULs */
    const char bin[] = "--q\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\na\0b\0c\r\n--q--";
    CHECK(mp_find_field(bin, sizeof bin - 1, "q", "file", &d, &n, why, sizeof why) == 0 && n == 5 && d[1] == 0);
    const char *empty = "--q\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n\r\n--q--\r\n";
    CHECK(mp_find_field(empty, strlen(empty), "q", "file", &d, &n, why, sizeof why) == 0 && n == 0);
    /* malformed: no closing boundary, no header end, no opening boundary */
    const char *open_end = "--q\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc";
    CHECK(mp_find_field(open_end, strlen(open_end), "q", "file", &d, &n, why, sizeof why) == -1 && strstr(why, "closing"));
    const char *nohdr = "--q\r\nContent-Disposition: form-data; name=\"file\"\r\nabc";
    CHECK(mp_find_field(nohdr, strlen(nohdr), "q", "file", &d, &n, why, sizeof why) == -1);
    CHECK(mp_find_field("hello", 5, "q", "file", &d, &n, why, sizeof why) == -1 && strstr(why, "opening"));
    CHECK(mp_find_field("", 0, "q", "file", &d, &n, why, sizeof why) == -1);
    /* headers over 8 KiB */
    size_t hl = 9000;
    char *huge = malloc(hl + 100);
    strcpy(huge, "--q\r\nX: ");
    memset(huge + 8, 'a', hl);
    strcpy(huge + 8 + hl, "\r\n\r\nabc\r\n--q--");
    CHECK(mp_find_field(huge, strlen(huge), "q", "file", &d, &n, why, sizeof why) == -1 && strstr(why, "8 KiB"));
    free(huge);
}

TEST(test_serve_request_opts) {
    rq_opts o;
    char why[128];
    CHECK(rq_parse_opts(NULL, NULL, NULL, 10, 32, &o, why, sizeof why) == 0 && o.passes == 10 && o.masking == 0 && o.seed == 0);
    CHECK(rq_parse_opts("32", "random", "123456789012", 10, 32, &o, why, sizeof why) == 0 && o.passes == 32 &&
          o.masking == 1 && o.seed == 123456789012ULL);
    const char *badp[] = {"0", "33", "-1", "1e1", " 5", "5 ", "", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof badp / sizeof *badp; i++)
        CHECKF(rq_parse_opts(badp[i], NULL, NULL, 10, 32, &o, why, sizeof why) == -1 && strstr(why, "passes"), "%s", badp[i]);
    CHECK(rq_parse_opts(NULL, "Balanced", NULL, 10, 32, &o, why, sizeof why) == -1 && strstr(why, "masking"));
    CHECK(rq_parse_opts(NULL, NULL, "9223372036854775808", 10, 32, &o, why, sizeof why) == -1 && strstr(why, "seed"));
    CHECK(rq_parse_opts(NULL, NULL, "9223372036854775807", 10, 32, &o, why, sizeof why) == 0);
}

TEST(test_serve_request_auth_form_paths) {
    CHECK(rq_authorized(NULL, NULL, NULL) && rq_authorized(NULL, NULL, ""));
    CHECK(!rq_authorized(NULL, NULL, "tok"));
    CHECK(rq_authorized("Bearer tok", NULL, "tok") && rq_authorized("bearer  tok ", NULL, "tok"));
    CHECK(!rq_authorized("Bearer to", NULL, "tok") && !rq_authorized("Bearer toke", NULL, "tok") && !rq_authorized("Basic tok", NULL, "tok"));
    CHECK(rq_authorized(NULL, "x=1; skx_token=tok; y=2", "tok") && rq_authorized(NULL, "skx_token=tok", "tok"));
    CHECK(!rq_authorized(NULL, "xskx_token=tok", "tok") && !rq_authorized(NULL, "skx_token=tokk", "tok") && !rq_authorized(NULL, "skx_token", "tok"));
    CHECK(rq_authorized("Bearer bad", "skx_token=tok", "tok"));
    char v[16];
    CHECK(rq_form_value("a=1&token=x%2By+z", 17, "token", v, sizeof v) == 0 && !strcmp(v, "x+y z"));
    CHECK(rq_form_value("token=abc", 9, "tok", v, sizeof v) == -1);
    CHECK(rq_form_value("token=%4", 8, "token", v, sizeof v) == -1 && rq_form_value("token=%zz", 9, "token", v, sizeof v) == -1);
    CHECK(rq_form_value("token=%00", 9, "token", v, sizeof v) == -1);
    CHECK(rq_form_value("token=0123456789abcdef", 22, "token", v, sizeof v) == -1);   /* over cap */
    char id[33];
    const char *f = rq_result_path("/api/result/0123456789abcdef0123456789abcdef/overlay.png", id);
    CHECK(f && !strcmp(f, "overlay.png") && !strcmp(id, "0123456789abcdef0123456789abcdef"));
    CHECK(!rq_result_path("/api/result/0123456789ABCDEF0123456789abcdef/x", id));
    CHECK(!rq_result_path("/api/result/0123456789abcdef/x", id) && !rq_result_path("/api/results/", id));
}

TEST(test_serve_results_lru_and_age) {
    rs_store *s = rs_new(3, 3600);
    char ids[5][33];
    for (int i = 0; i < 5; i++) {
        rs_item *it = rs_item_new();
        memcpy(ids[i], it->id, 33);
        it->blob[RS_JSON] = strdup("{}");
        it->len[RS_JSON] = 2;
        rs_put(s, it);
        if (i == 2) {   /* touch the first: the second becomes the oldest */
            size_t n;
            free(rs_get(s, ids[0], RS_JSON, &n));
        }
    }
    CHECK(rs_count(s) == 3);
    size_t n;
    void *p;
    CHECK((p = rs_get(s, ids[0], RS_JSON, &n)) != NULL && n == 2);
    free(p);
    CHECK(rs_get(s, ids[1], RS_JSON, &n) == NULL && rs_get(s, ids[2], RS_JSON, &n) == NULL);
    CHECK((p = rs_get(s, ids[4], RS_JSON, &n)) != NULL);
    free(p);
    CHECK(rs_get(s, ids[4], RS_OVERLAY, &n) == NULL);   /* empty blob */
    CHECK(strcmp(ids[3], ids[4]) != 0);
    rs_free(s);
    /* by age */
    s = rs_new(10, 0.05);
    rs_item *it = rs_item_new();
    char id[33];
    memcpy(id, it->id, 33);
    it->blob[RS_NPY] = strdup("x");
    it->len[RS_NPY] = 1;
    rs_put(s, it);
    CHECK((p = rs_get(s, id, RS_NPY, &n)) != NULL);
    free(p);
    usleep(120000);
    CHECK(rs_get(s, id, RS_NPY, &n) == NULL && rs_count(s) == 0);
    rs_free(s);
}

/* a pool whose tasks wait for a gate, to fill it deterministically */
typedef struct { pthread_mutex_t mu; pthread_cond_t cv; int open, started, inits; } gate;
typedef struct { gate *g; int ran; } gtask;
static int g_init(void *u, int i, void **st, sx_err *e) {
    (void)e;
    ((gate *)u)->inits++;
    *st = (void *)(intptr_t)(i + 1);
    return 0;
}
static void g_fini(void *u, void *st) { (void)u; (void)st; }
static void g_run(void *u, void *st, void *t) {
    gate *g = u;
    pthread_mutex_lock(&g->mu);
    g->started++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    ((gtask *)t)->ran = (int)(intptr_t)st;
}
static void g_free(void *t) { free(t); }
typedef struct { jb_pool *p; gtask *t; jb_status st; double timeout; } sub_arg;
static void *submit_th(void *a) {
    sub_arg *s = a;
    s->st = jb_submit_wait(s->p, s->t, s->timeout);
    return NULL;
}

TEST(test_serve_jobs_queue_full_and_timeout) {
    gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    jb_config c = {.workers = 1, .queue = 1, .user = &g, .init = g_init, .fini = g_fini, .run = g_run, .task_free = g_free};
    jb_pool *p;
    sx_err err;
    CHECK(jb_new(&c, &p, &err) == 0 && g.inits == 1);
    gtask *t1 = calloc(1, sizeof *t1), *t2 = calloc(1, sizeof *t2), t3 = {0};
    sub_arg a1 = {p, t1, -1, 30}, a2 = {p, t2, -1, 30};
    pthread_t h1, h2;
    pthread_create(&h1, NULL, submit_th, &a1);
    pthread_mutex_lock(&g.mu);
    while (g.started < 1) pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    pthread_create(&h2, NULL, submit_th, &a2);
    while (jb_pending(p) < 2) usleep(1000);
    /* one running, one queued: full */
    CHECK(jb_submit_wait(p, &t3, 1) == JB_FULL && t3.ran == 0);
    pthread_mutex_lock(&g.mu);
    g.open = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(h1, NULL);
    pthread_join(h2, NULL);
    CHECK(a1.st == JB_DONE && a2.st == JB_DONE && t1->ran == 1 && t2->ran == 1);
    free(t1);
    free(t2);
    /* a time limit: the caller gives up, the pool frees the task later */
    g.open = 0;
    gtask *t4 = calloc(1, sizeof *t4);
    CHECK(jb_submit_wait(p, t4, 0.05) == JB_TIMEOUT);
    pthread_mutex_lock(&g.mu);
    g.open = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    while (jb_pending(p) > 0) usleep(1000);
    jb_free(p);   /* t4 was freed by the pool (LeakSanitizer checks) */
}

TEST(test_serve_report_escaping) {
    char out[64];
    rp_escape("<a href=\"x\">&'", out, sizeof out);
    CHECK(!strcmp(out, "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"));
    rp_escape("<<<<<<<<", out, 10);   /* cut at a whole entity */
    CHECK(!strcmp(out, "&lt;&lt;"));
    char *b = rp_base64("Man", 3);
    CHECK(b && !strcmp(b, "TWFu"));
    free(b);
    b = rp_base64("Ma", 2);
    CHECK(b && !strcmp(b, "TWE="));
    free(b);
    b = rp_base64("M", 1);
    CHECK(b && !strcmp(b, "TQ=="));
    free(b);
    const char *names[] = {"<script>"};
    double pr[] = {0.25};
    rp_input in = {.image_png = "ab", .image_len = 2, .overlay_png = "c", .overlay_len = 1, .width = 3, .height = 4,
                   .masking = "balanced", .model_name = "m<1>", .version = "0.3.0", .n_heads = 1, .head_names = names,
                   .head_probs = pr, .date = "2026-01-01 00:00 UTC", .id = "abc"};
    size_t n;
    char *h = rp_html(&in, &n);
    CHECK(h && n == strlen(h) && strstr(h, "m&lt;1&gt;") && strstr(h, "&lt;script&gt;") && !strstr(h, "<script>") &&
          strstr(h, "base64,YWI=") && strstr(h, "0.250"));
    free(h);
    /* with regions: the maximum over regions per output, and one row per region with its top output */
    double mx[] = {0.75}, rp[] = {0.75, 0.25};
    int at[] = {0}, top[] = {0, 0};
    float boxes[] = {1, 2, 3, 4, 0, 0, 3, 4};
    const char *src[] = {"errormap", "whole"};
    in.head_max = mx;
    in.head_region = at;
    in.n_regions = 2;
    in.region_boxes = boxes;
    in.region_sources = src;
    in.region_top = top;
    in.region_probs = rp;
    h = rp_html(&in, &n);
    CHECK(h && strstr(h, "Maximum over regions") && strstr(h, "<td>0.750</td><td>0</td>") &&
          strstr(h, "<td>0</td><td>errormap</td><td>(1, 2)&ndash;(3, 4)</td><td>&lt;script&gt; 0.750</td>") &&
          strstr(h, "<td>1</td><td>whole</td>"));
    free(h);
}
