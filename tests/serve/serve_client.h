/* serve_client.h: a tiny HTTP/1.1 client for the serve tests (loopback,
 * Connection: close, no curl), and a server fixture: a tiny MAE made with
 * ./skelex init and a tiny classifier, shared by the serve test files. */
#ifndef SKELEX_TEST_SERVE_CLIENT_H
#define SKELEX_TEST_SERVE_CLIENT_H
#include <stddef.h>

typedef struct {
    int status;          /* 0: no response (connection closed or failed) */
    char *head;          /* status line and headers, NUL-terminated */
    char *body;          /* NUL-terminated after blen bytes */
    size_t blen;
} tc_resp;

/* Send method path with extra header lines hdrs ("Name: v\r\n"..., or NULL)
 * and body (Content-Length blen; with headers_only the body is announced but
 * not sent), read the whole response. 0, or -1 on a socket error. */
int tc_http(int port, const char *method, const char *path, const char *hdrs, const void *body, size_t blen,
            int headers_only, tc_resp *r);
void tc_free(tc_resp *r);

/* A header's value in r->head (copied into out), or NULL. */
const char *tc_header(const tc_resp *r, const char *name, char *out, size_t cap);

/* Width and height from a PNG's IHDR; 0, or -1 when p is not a PNG. */
int tc_png_size(const void *p, size_t n, int *w, int *h);

/* Make the tiny models under tl_tmpdir(): dir/mae (64 px MAE) and
 * dir/cls (32 px classifier with outputs normal, fracture, lesion). 0 or -1. */
int tc_make_models(char *mae, char *cls, size_t cap);

#endif
