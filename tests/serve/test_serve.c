/* test_serve.c: skelex serve over HTTP on loopback: a server started
 * in-process on an ephemeral port with tiny models made here, talked to by
 * a small socket client (serve_client.c). */
#include "dicom_fixtures.h"
#include "io/image.h"
#include "serve/http.h"
#include "serve_client.h"
#include "testlib.h"
#include <cjson/cJSON.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

/* every log line, to check that no identifier reaches the log */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[1 << 16];
static size_t log_len;
static void log_cb(void *user, const char *line) {
    (void)user;
    pthread_mutex_lock(&log_mu);
    size_t n = strlen(line);
    if (log_len + n + 2 < sizeof log_buf) {
        memcpy(log_buf + log_len, line, n);
        log_len += n;
        log_buf[log_len++] = '\n';
        log_buf[log_len] = 0;
    }
    pthread_mutex_unlock(&log_mu);
}

static sv_server *start(const char *mae, const char *cls, const char *token, size_t max_upload, int workers) {
    sv_options o;
    sv_options_default(&o);
    o.model_dir = mae;
    o.classifier_dir = cls;
    o.port = 0;
    o.token = token;
    o.workers = workers;
    o.threads = 1;
    o.default_passes = 4;
    if (max_upload) o.max_upload = max_upload;
    o.log = log_cb;
    sv_server *s = NULL;
    sx_err err;
    CHECKF(sv_start(&o, &s, &err) == 0, "%s", err.msg);
    if (s) CHECK(sv_port(s) > 0);
    return s;
}

static void phantom(uint8_t *px, int w, int h) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int dx = x - w / 2, dy = y - h / 3;
            px[y * w + x] = (uint8_t)(20 + (dx * dx + dy * dy < w * w / 25 ? 170 : 0) + (x * 50) / w);
        }
}

/* The classifier's part of an analyze answer (the grouped layout of
 * api/predict_fixtures.h): heads grouped (the softmax group sums to 1, the
 * sigmoid ones stand alone), regions from the error map inside the image
 * with the whole image last, each output's maximum equal to the maximum over
 * the regions and its region, the tumour decision. */
static void check_heads_and_regions(const cJSON *j, int W, int H) {
    const cJSON *hs = cJSON_GetObjectItem(j, "heads"), *rs = cJSON_GetObjectItem(j, "regions");
    CHECK(cJSON_GetArraySize(hs) == 3);
    int nr = cJSON_GetArraySize(rs);
    CHECK(nr >= 1 && nr <= 4);
    if (cJSON_GetArraySize(hs) != 3 || nr < 1) return;
    const char *gname[3] = {"abnormal", "tumour", "implant"}, *gkind[3] = {"sigmoid", "softmax", "sigmoid"};
    const int gn[3] = {1, 4, 1};
    for (int g = 0; g < 3; g++) {
        const cJSON *go = cJSON_GetArrayItem(hs, g), *outs = cJSON_GetObjectItem(go, "outputs");
        CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(go, "name")), gname[g]));
        CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(go, "kind")), gkind[g]));
        CHECK(cJSON_GetArraySize(outs) == gn[g]);
        double sum = 0;
        const cJSON *h;
        cJSON_ArrayForEach(h, outs) {
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(h, "name"));
            double p = cJSON_GetObjectItem(h, "probability")->valuedouble, mx = cJSON_GetObjectItem(h, "max")->valuedouble;
            int at = cJSON_GetObjectItem(h, "region")->valueint;
            sum += p;
            CHECK(p >= 0 && p <= 1 && mx >= p - 1e-12 && at >= 0 && at < nr);
            /* the maximum over the regions' own probabilities, and the first region giving it */
            double best = -1;
            int where = -1;
            for (int r = 0; r < nr; r++) {
                const cJSON *rh;
                cJSON_ArrayForEach(rh, cJSON_GetObjectItem(cJSON_GetArrayItem(rs, r), "heads"))
                    if (name && !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(rh, "name")), name) &&
                        cJSON_GetObjectItem(rh, "probability")->valuedouble > best)
                        best = cJSON_GetObjectItem(rh, "probability")->valuedouble, where = r;
            }
            CHECK(mx == best && at == where);
        }
        if (g == 1) CHECK_NEAR(sum, 1.0, 1e-6);   // softmax within the group only
    }
    for (int r = 0; r < nr; r++) {
        const cJSON *ro = cJSON_GetArrayItem(rs, r), *bx = cJSON_GetObjectItem(ro, "box");
        const char *src = cJSON_GetStringValue(cJSON_GetObjectItem(ro, "source"));
        CHECK(src && !strcmp(src, r == nr - 1 ? "whole" : "errormap"));
        CHECK(cJSON_GetArraySize(bx) == 4 && cJSON_GetArraySize(cJSON_GetObjectItem(ro, "heads")) == 6);
        CHECK(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(ro, "top"), "name")));
        if (cJSON_GetArraySize(bx) != 4) continue;
        double b[4];
        for (int k = 0; k < 4; k++) b[k] = cJSON_GetArrayItem(bx, k)->valuedouble;
        CHECKF(b[0] >= 0 && b[1] >= 0 && b[2] <= W && b[3] <= H && b[2] > b[0] && b[3] > b[1], "box %g %g %g %g in %d x %d",
               b[0], b[1], b[2], b[3], W, H);
        if (r == nr - 1) CHECK(b[0] == 0 && b[1] == 0 && b[2] == W && b[3] == H);
    }
    const cJSON *d = cJSON_GetObjectItem(j, "decision");
    CHECK(cJSON_IsObject(d) && !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(d, "rule")), "skelex_tumour"));
}

/* Analyze body (raw, or as multipart field 'file'); check the JSON and every
 * file it names. Returns the parsed JSON (caller deletes) or NULL. */
static cJSON *analyze(int port, const void *img, size_t n, int multipart, int want_w, int want_h, int heads,
                      tc_resp *files /* RS-sized: overlay, map, image, report; may be NULL */) {
    tc_resp r;
    if (multipart) {
        const char *pre = "--XyZb0und\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
                          "--XyZb0und\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.bin\"\r\n"
                          "Content-Type: application/octet-stream\r\n\r\n";
        const char *post = "\r\n--XyZb0und--\r\n";
        size_t a = strlen(pre), b = strlen(post);
        char *body = malloc(a + n + b);
        memcpy(body, pre, a);
        memcpy(body + a, img, n);
        memcpy(body + a + n, post, b);
        CHECK(tc_http(port, "POST", "/api/analyze?passes=3&seed=7", "Content-Type: multipart/form-data; boundary=XyZb0und\r\n",
                      body, a + n + b, 0, &r) == 0);
        free(body);
    } else {
        CHECK(tc_http(port, "POST", "/api/analyze", "Content-Type: application/octet-stream\r\n", img, n, 0, &r) == 0);
    }
    CHECKF(r.status == 200, "status %d: %s", r.status, r.body ? r.body : "");
    cJSON *j = r.status == 200 ? cJSON_Parse(r.body) : NULL;
    tc_free(&r);
    if (!j) return NULL;
    cJSON *id = cJSON_GetObjectItem(j, "id"), *s = cJSON_GetObjectItem(j, "summary");
    CHECK(cJSON_IsString(id) && strlen(id->valuestring) == 32);
    CHECK(cJSON_GetObjectItem(j, "width")->valueint == want_w);
    CHECK(cJSON_GetObjectItem(j, "height")->valueint == want_h);
    CHECK(cJSON_IsObject(s));
    if (!s) return j;
    double mean = cJSON_GetObjectItem(s, "mean")->valuedouble, mx = cJSON_GetObjectItem(s, "max")->valuedouble;
    double px = cJSON_GetObjectItem(s, "peak_x")->valuedouble, py = cJSON_GetObjectItem(s, "peak_y")->valuedouble;
    CHECKF(mean > 0 && mx >= mean, "mean %g max %g", mean, mx);
    CHECKF(px >= 0 && px <= want_w && py >= 0 && py <= want_h, "peak %g,%g", px, py);
    CHECK(cJSON_GetObjectItem(s, "passes")->valueint == (multipart ? 3 : 4));
    CHECK(!strcmp(cJSON_GetObjectItem(s, "masking")->valuestring, "balanced"));
    CHECK(cJSON_IsArray(cJSON_GetObjectItem(j, "heads")) == heads);
    if (heads) check_heads_and_regions(j, want_w, want_h);
    const char *keys[4] = {"overlay", "map", "image", "report"};
    for (int k = 0; k < 4; k++) {
        cJSON *p = cJSON_GetObjectItem(j, keys[k]);
        CHECK(cJSON_IsString(p) && strstr(p->valuestring, id->valuestring));
        tc_resp f;
        if (!cJSON_IsString(p) || tc_http(port, "GET", p->valuestring, NULL, NULL, 0, 0, &f) != 0) continue;
        CHECKF(f.status == 200, "%s: %d", keys[k], f.status);
        int w = 0, h = 0;
        if (k == 0 || k == 2) {
            CHECK(tc_png_size(f.body, f.blen, &w, &h) == 0);
            CHECKF(w == want_w && h == want_h, "%s is %dx%d, the input %dx%d", keys[k], w, h, want_w, want_h);
        } else if (k == 1) {
            int S = cJSON_GetObjectItem(s, "map_size")->valueint;
            CHECK(f.blen > 10 && !memcmp(f.body, "\x93NUMPY", 6) && f.blen >= (size_t)S * S * 4);
        } else {
            CHECK(strstr(f.body, "<!doctype html>") && strstr(f.body, "data:image/png;base64,") && strstr(f.body, "0.3"));
            CHECK(!heads || (strstr(f.body, "malignant") && strstr(f.body, "Maximum over regions") && strstr(f.body, "errormap")));
        }
        if (files) files[k] = f;
        else tc_free(&f);
    }
    return j;
}

/* Options for a tiny MAE made for the test (in mae), one worker, one
 * thread, an ephemeral port; the caller adjusts them. */
static void tiny_options(sv_options *o, char *mae, size_t cap) {
    CHECK(tc_make_models(mae, NULL, cap) == 0);
    sv_options_default(o);
    o->model_dir = mae;
    o->port = 0;
    o->workers = 1;
    o->threads = 1;
    o->log = log_cb;
}

static sv_server *start_with(const sv_options *o) {
    sv_server *s = NULL;
    sx_err err;
    CHECKF(sv_start(o, &s, &err) == 0, "%s", err.msg);
    return s;
}

/* A server on a tiny MAE made for the test (NULL when that failed). */
static sv_server *start_tiny(int workers, const char *token, size_t max_upload) {
    char mae[600];
    CHECK(tc_make_models(mae, NULL, sizeof mae) == 0);
    return start(mae, NULL, token, max_upload, workers);
}

TEST(test_serve_analyze_png_jpeg_dicom) {
    sv_server *s = start_tiny(2, NULL, 0);
    if (!s) return;
    int port = sv_port(s);
    tc_resp r;
    CHECK(tc_http(port, "GET", "/healthz", NULL, NULL, 0, 0, &r) == 0 && r.status == 200);
    CHECKF(r.body && strstr(r.body, "\"status\":\"ok\"") && strstr(r.body, "\"model\":\"mae\""), "%s", r.body);
    tc_free(&r);
    CHECK(tc_http(port, "GET", "/", NULL, NULL, 0, 0, &r) == 0 && r.status == 200 && strstr(r.body, "<script src=\"/app.js\">"));
    tc_free(&r);
    CHECK(tc_http(port, "GET", "/app.js", NULL, NULL, 0, 0, &r) == 0 && r.status == 200 && strstr(r.body, "/api/analyze"));
    tc_free(&r);

    int W = 97, H = 75;
    uint8_t px[97 * 75];
    phantom(px, W, H);
    sx_err err;
    CHECK(png_write_u8(tl_path("a.png"), px, W, H, 1, &err) == 0);
    size_t n;
    void *png = tl_read_file(tl_path("a.png"), &n);
    cJSON *j = analyze(port, png, n, 0, W, H, 0, NULL);
    /* the same image and options give the same map: deterministic */
    cJSON *j2 = analyze(port, png, n, 0, W, H, 0, NULL);
    if (j && j2)
        CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "summary"), "mean")->valuedouble ==
              cJSON_GetObjectItem(cJSON_GetObjectItem(j2, "summary"), "mean")->valuedouble);
    cJSON_Delete(j);
    cJSON_Delete(j2);
    free(png);

    tl_jpeg jp = {.w = W, .h = H, .comps = 1, .quality = 90, .px = px};
    CHECK(tl_write_jpeg(tl_path("a.jpg"), &jp) == 0);
    void *jpg = tl_read_file(tl_path("a.jpg"), &n);
    cJSON_Delete(analyze(port, jpg, n, 1, W, H, 0, NULL));
    free(jpg);

    if (!dcmfx_have_tools()) {
        sv_stop(s);
        TEST_SKIP("DCMTK tools missing: DICOM upload not tested");
    }
    int32_t dpx[60 * 44];
    dcmfx_phantom(60, 44, 0, 100, 3000, dpx);
    dcm_spec d = {.w = 60, .h = 44, .bits_alloc = 16, .bits_stored = 12, .px = dpx};
    CHECK(dcmfx_write(tl_path("a.dcm"), &d) == 0);
    void *dcm = tl_read_file(tl_path("a.dcm"), &n);
    cJSON_Delete(analyze(port, dcm, n, 0, 60, 44, 0, NULL));
    free(dcm);
    sv_stop(s);
}

#define PATIENT_LINES                                                                                        \
    "(0008,0050) SH [ACC-55501234]\n(0008,0080) LO [Nowhere Infirmary Qz]\n(0008,0090) PN [Dr^Obscurus]\n" \
    "(0010,0010) PN [Zyxwvut^Qwertyuiop]\n(0010,0020) LO [PID-8675309-XQ]\n(0010,0030) DA [19230405]\n"
static const char *const SECRETS[] = {"55501234", "Nowhere Infirmary", "Obscurus", "Zyxwvut", "Qwertyuiop", "8675309", "19230405"};

static int leaks(const void *p, size_t n) {
    for (size_t k = 0; k < sizeof SECRETS / sizeof *SECRETS; k++)
        if (p && memmem(p, n, SECRETS[k], strlen(SECRETS[k]))) return (int)k + 1;
    return 0;
}

TEST(test_serve_dicom_identifiers_never_leak) {
    if (!dcmfx_have_tools()) TEST_SKIP("DCMTK tools missing");
    char mae[600], cls[600];
    CHECK(tc_make_models(mae, cls, sizeof mae) == 0);
    pthread_mutex_lock(&log_mu);
    log_len = 0;
    log_buf[0] = 0;
    pthread_mutex_unlock(&log_mu);
    sv_server *s = start(mae, cls, NULL, 0, 1);
    if (!s) return;
    int32_t dpx[64 * 52];
    dcmfx_phantom(64, 52, 0, 0, 4000, dpx);
    dcm_spec d = {.w = 64, .h = 52, .bits_alloc = 16, .bits_stored = 12, .px = dpx, .extra = PATIENT_LINES,
                  .window_center = "1800", .window_width = "2000"};
    CHECK(dcmfx_write(tl_path("p.dcm"), &d) == 0);
    size_t n;
    char *dcm = tl_read_file(tl_path("p.dcm"), &n);
    CHECK(dcm && leaks(dcm, n));   /* the file does hold them */
    tc_resp files[4] = {0};
    cJSON *j = analyze(sv_port(s), dcm, n, 1, 64, 52, 1, files);
    char *js = j ? cJSON_PrintUnformatted(j) : NULL;
    CHECKF(js && !leaks(js, strlen(js)), "JSON leaks secret %d", js ? leaks(js, strlen(js)) : -1);
    for (int k = 0; k < 4; k++) {
        CHECKF(files[k].status == 200 && !leaks(files[k].head, strlen(files[k].head)) && !leaks(files[k].body, files[k].blen),
               "file %d leaks secret %d", k, leaks(files[k].body, files[k].blen));
        tc_free(&files[k]);
    }
    /* a corrupt copy (cut short): the 415 message must not quote it either */
    tc_resp r;
    CHECK(tc_http(sv_port(s), "POST", "/api/analyze", NULL, dcm, n / 2, 0, &r) == 0);
    CHECKF(r.status == 415 || r.status == 400, "%d %s", r.status, r.body);
    CHECK(!leaks(r.body, r.blen));
    tc_free(&r);
    sv_stop(s);
    pthread_mutex_lock(&log_mu);
    CHECKF(log_len > 0 && !leaks(log_buf, log_len), "log leaks secret %d", leaks(log_buf, log_len));
    CHECK(strstr(log_buf, "POST /api/analyze 200") != NULL);
    pthread_mutex_unlock(&log_mu);
    free(js);
    cJSON_Delete(j);
    free(dcm);
}

TEST(test_serve_error_statuses) {
    sv_server *s = start_tiny(1, NULL, 100000);
    if (!s) return;
    int port = sv_port(s);
    tc_resp r;
    /* 413 from Content-Length alone: the body is announced, never sent */
    CHECK(tc_http(port, "POST", "/api/analyze", NULL, NULL, 50000000, 1, &r) == 0);
    CHECKF(r.status == 413 && strstr(r.body, "\"error\""), "%d", r.status);
    tc_free(&r);
    /* a body just over the limit, sent: 413 too */
    char *big = calloc(1, 100001);
    CHECK(tc_http(port, "POST", "/api/analyze", NULL, big, 100001, 0, &r) == 0 && r.status == 413);
    tc_free(&r);
    /* 415: not an image (zeros; text) */
    CHECK(tc_http(port, "POST", "/api/analyze", NULL, big, 5000, 0, &r) == 0);
    CHECKF(r.status == 415 && strstr(r.body, "{\"error\":"), "%d %s", r.status, r.body);
    tc_free(&r);
    CHECK(tc_http(port, "POST", "/api/analyze", "Content-Type: image/png\r\n", "<html>", 6, 0, &r) == 0 && r.status == 415);
    tc_free(&r);
    free(big);
    /* 400: empty, bad options, malformed multipart */
    CHECK(tc_http(port, "POST", "/api/analyze", NULL, "", 0, 0, &r) == 0 && r.status == 400);
    tc_free(&r);
    const char *bad[] = {"/api/analyze?passes=0", "/api/analyze?passes=17", "/api/analyze?passes=2x",
                         "/api/analyze?masking=grid", "/api/analyze?seed=-1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(tc_http(port, "POST", bad[i], NULL, "abc", 3, 0, &r) == 0);
        CHECKF(r.status == 400 && strstr(r.body, "\"error\""), "%s: %d", bad[i], r.status);
        tc_free(&r);
    }
    const char *mp = "--b1\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--b1--\r\n";
    CHECK(tc_http(port, "POST", "/api/analyze", "Content-Type: multipart/form-data; boundary=b1\r\n", mp, strlen(mp), 0, &r) == 0);
    CHECKF(r.status == 400 && strstr(r.body, "file"), "%d %s", r.status, r.body);
    tc_free(&r);
    CHECK(tc_http(port, "POST", "/api/analyze", "Content-Type: multipart/form-data\r\n", mp, strlen(mp), 0, &r) == 0 && r.status == 400);
    tc_free(&r);
    /* unknown things: 404, 405; never 500 */
    CHECK(tc_http(port, "GET", "/api/result/0123456789abcdef0123456789abcdef/overlay.png", NULL, NULL, 0, 0, &r) == 0 && r.status == 404);
    tc_free(&r);
    CHECK(tc_http(port, "GET", "/api/result/../../etc/passwd", NULL, NULL, 0, 0, &r) == 0 && r.status == 404);
    tc_free(&r);
    CHECK(tc_http(port, "DELETE", "/healthz", NULL, NULL, 0, 0, &r) == 0 && r.status == 405);
    tc_free(&r);
    CHECK(tc_http(port, "POST", "/healthz", NULL, "x", 1, 0, &r) == 0 && r.status != 500 && r.status != 0);
    tc_free(&r);
    /* still alive */
    CHECK(tc_http(port, "GET", "/healthz", NULL, NULL, 0, 0, &r) == 0 && r.status == 200);
    tc_free(&r);
    sv_stop(s);
}

TEST(test_serve_token) {
    sv_server *s = start_tiny(1, "s3cret-T0ken", 0);
    if (!s) return;
    int port = sv_port(s);
    tc_resp r;
    char v[256];
    CHECK(tc_http(port, "GET", "/healthz", NULL, NULL, 0, 0, &r) == 0 && r.status == 401 && strstr(r.body, "\"error\""));
    tc_free(&r);
    CHECK(tc_http(port, "GET", "/healthz", "Authorization: Bearer wrong\r\n", NULL, 0, 0, &r) == 0 && r.status == 401);
    tc_free(&r);
    CHECK(tc_http(port, "GET", "/healthz", "Authorization: Bearer s3cret-T0ke\r\n", NULL, 0, 0, &r) == 0 && r.status == 401);
    tc_free(&r);
    CHECK(tc_http(port, "POST", "/api/analyze", NULL, "x", 1, 0, &r) == 0 && r.status == 401);
    tc_free(&r);
    CHECK(tc_http(port, "GET", "/healthz", "Authorization: Bearer s3cret-T0ken\r\n", NULL, 0, 0, &r) == 0 && r.status == 200);
    tc_free(&r);
    CHECK(tc_http(port, "GET", "/healthz", "Cookie: a=b; skx_token=s3cret-T0ken\r\n", NULL, 0, 0, &r) == 0 && r.status == 200);
    tc_free(&r);
    /* the page without the token: the login form; a wrong token: the form again */
    CHECK(tc_http(port, "GET", "/", NULL, NULL, 0, 0, &r) == 0 && r.status == 401 && strstr(r.body, "action=\"/login\""));
    tc_free(&r);
    CHECK(tc_http(port, "POST", "/login", "Content-Type: application/x-www-form-urlencoded\r\n", "token=nope", 10, 0, &r) == 0 &&
          r.status == 401 && !tc_header(&r, "Set-Cookie", v, sizeof v));
    tc_free(&r);
    CHECK(tc_http(port, "POST", "/login", "Content-Type: application/x-www-form-urlencoded\r\n", "token=s3cret%2DT0ken", 20, 0, &r) == 0);
    CHECKF(r.status == 303 && tc_header(&r, "Set-Cookie", v, sizeof v) && strstr(v, "skx_token=s3cret-T0ken") && strstr(v, "HttpOnly"),
           "%d %s", r.status, r.head ? r.head : "");
    tc_free(&r);
    sv_stop(s);
}

typedef struct { int port; const void *img; size_t n; int status; } conc_arg;
static void *conc_run(void *p) {
    conc_arg *a = p;
    tc_resp r;
    if (tc_http(a->port, "POST", "/api/analyze?passes=2", NULL, a->img, a->n, 0, &r) == 0) a->status = r.status;
    tc_free(&r);
    return NULL;
}

TEST(test_serve_eight_concurrent) {
    sv_server *s = start_tiny(2, NULL, 0);
    if (!s) return;
    uint8_t px[80 * 64];
    phantom(px, 80, 64);
    sx_err err;
    CHECK(png_write_u8(tl_path("c.png"), px, 80, 64, 1, &err) == 0);
    size_t n;
    void *png = tl_read_file(tl_path("c.png"), &n);
    pthread_t th[8];
    conc_arg a[8];
    for (int i = 0; i < 8; i++) {
        a[i] = (conc_arg){sv_port(s), png, n, 0};
        pthread_create(&th[i], NULL, conc_run, &a[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        CHECKF(a[i].status == 200, "request %d: %d", i, a[i].status);
    }
    free(png);
    sv_stop(s);
}

TEST(test_serve_start_errors) {
    char mae[600], cls[600];
    CHECK(tc_make_models(mae, cls, sizeof mae) == 0);
    sv_options o;
    sv_options_default(&o);
    sv_server *s = NULL;
    sx_err err;
    o.port = 0;
    o.model_dir = cls;   /* a classifier where an MAE belongs */
    CHECK(sv_start(&o, &s, &err) == -1 && s == NULL && strstr(err.msg, "masked autoencoder"));
    o.model_dir = mae;
    o.host = "not-an-address";
    CHECK(sv_start(&o, &s, &err) == -1 && strstr(err.msg, "not-an-address"));
    o.host = "127.0.0.1";
    o.token = "has space";
    CHECK(sv_start(&o, &s, &err) == -1 && strstr(err.msg, "token"));
    o.token = NULL;
    o.model_dir = tl_path("nowhere");
    CHECK(sv_start(&o, &s, &err) == -1);
}

TEST(test_serve_cli_url_and_ctrl_c) {
    char mae[600], cmd[4096], out[8192];
    CHECK(tc_make_models(mae, NULL, sizeof mae) == 0);
    CHECK(tl_run("./skelex serve --help", out, sizeof out) == 0 && strstr(out, "--max-upload-mb") && strstr(out, "--token"));
    /* no --model and no shipped model (SKELEX_MODELS names an empty folder): usage error */
    snprintf(cmd, sizeof cmd, "env SKELEX_MODELS=%s timeout -s KILL 20 ./skelex serve --port 1", tl_tmpdir());
    CHECK(tl_run(cmd, out, sizeof out) == 2 && strstr(out, "skelex-tiny-mae is not installed"));
    CHECK(tl_run("./skelex serve --model x --port 70000", out, sizeof out) == 2);
    snprintf(cmd, sizeof cmd, "./skelex serve --model %s/nothing --port 0", tl_tmpdir());
    CHECK(tl_run(cmd, out, sizeof out) == 1 && strstr(out, "skelex serve:"));
    /* start it, read the URL, ask /healthz through it, then SIGINT: exit 0 */
    char script[4096];
    snprintf(script, sizeof script,
             "d=%s; ./skelex serve --model %s --port 0 --workers 1 > $d/url.txt 2> $d/log.txt & p=$!; "
             "for i in $(seq 200); do grep -q 'open http' $d/url.txt && break; sleep 0.05; done; "
             "port=$(sed -n 's|.*http://127.0.0.1:\\([0-9]*\\)/.*|\\1|p' $d/url.txt); "
             "exec 3<>/dev/tcp/127.0.0.1/$port; printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3; head -n 1 <&3; exec 3<&-; "
             "kill -INT $p; wait $p; echo exit=$?; cat $d/log.txt",
             tl_tmpdir(), mae);
    CHECK(tl_write_text(tl_path("run.sh"), script) == 0);
    snprintf(cmd, sizeof cmd, "bash %s", tl_path("run.sh"));
    CHECK(tl_run(cmd, out, sizeof out) == 0);
    CHECKF(strstr(out, " 200 OK") && strstr(out, "exit=0") && strstr(out, "SIGINT received") &&
           strstr(out, "GET /healthz 200"), "%s", out);
}

/* Bodies held at once are bounded: uploads announced but not yet sent
 * hold their share; past the budget a new upload gets 503, and once they
 * go away there is room again. */
TEST(test_serve_upload_budget) {
    char mae[600];
    sv_options o;
    tiny_options(&o, mae, sizeof mae);
    o.queue = 0;
    o.max_upload = 100000;   /* budget: 3 uploads of 100000 */
    sv_server *s = start_with(&o);
    if (!s) return;
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sv_port(s))};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CHECK(connect(fds[i], (struct sockaddr *)&a, sizeof a) == 0);
        const char *h = "POST /api/analyze HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc";
        CHECK(send(fds[i], h, strlen(h), MSG_NOSIGNAL) == (ssize_t)strlen(h));
    }
    tc_resp r;
    int st = 0, in = 0;
    for (int k = 0; k < 1000 && !in; k++) {   /* until the three are in (healthz tells) */
        CHECK(tc_http(sv_port(s), "GET", "/healthz", NULL, NULL, 0, 0, &r) == 0);
        in = r.body && strstr(r.body, "\"upload_bytes_held\":300000");
        tc_free(&r);
        if (!in) usleep(10000);
    }
    CHECK(in);
    CHECK(tc_http(sv_port(s), "POST", "/api/analyze", NULL, "xyz", 3, 0, &r) == 0);
    st = r.status;
    tc_free(&r);
    CHECKF(st == 503, "%d", st);
    for (int i = 0; i < 3; i++) close(fds[i]);
    for (int k = 0; k < 100 && st == 503; k++) {
        usleep(20000);
        CHECK(tc_http(sv_port(s), "POST", "/api/analyze", NULL, "xyz", 3, 0, &r) == 0);
        st = r.status;
        tc_free(&r);
    }
    CHECKF(st == 415, "%d", st);
    sv_stop(s);
}

/* The per-request time limit: a request that cannot be answered in time
 * gets 503, the abandoned analysis is freed by its worker (the leak check
 * sees to that), and the server goes on. */
TEST(test_serve_time_limit) {
    char mae[600];
    sv_options o;
    tiny_options(&o, mae, sizeof mae);
    o.time_limit_s = 1e-6;
    sv_server *s = start_with(&o);
    if (!s) return;
    sx_err err;
    uint8_t px[64 * 64];
    phantom(px, 64, 64);
    CHECK(png_write_u8(tl_path("t.png"), px, 64, 64, 1, &err) == 0);
    size_t n;
    void *png = tl_read_file(tl_path("t.png"), &n);
    tc_resp r;
    CHECK(tc_http(sv_port(s), "POST", "/api/analyze", NULL, png, n, 0, &r) == 0);
    CHECKF(r.status == 503 && strstr(r.body, "time limit"), "%d %s", r.status, r.body ? r.body : "");
    tc_free(&r);
    CHECK(tc_http(sv_port(s), "GET", "/healthz", NULL, NULL, 0, 0, &r) == 0 && r.status == 200);
    tc_free(&r);
    free(png);
    sv_stop(s);
}
