/* serve_client.c: see serve_client.h. */
#include "serve_client.h"
#include "nn/classifier.h"
#include "api/predict_fixtures.h"
#include "testlib.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

void tc_free(tc_resp *r) {
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static int send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k <= 0) return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

int tc_http(int port, const char *method, const char *path, const char *hdrs, const void *body, size_t blen,
            int headers_only, tc_resp *r) {
    memset(r, 0, sizeof *r);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {.tv_sec = 120};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    char head[4096];
    int hl = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s", method, path,
                      hdrs ? hdrs : "", "");
    if (body || headers_only) hl += snprintf(head + hl, sizeof head - (size_t)hl, "Content-Length: %zu\r\n", blen);
    hl += snprintf(head + hl, sizeof head - (size_t)hl, "\r\n");
    /* a send may fail when the server answers early and closes: read anyway */
    if (send_all(fd, head, (size_t)hl) == 0 && body && !headers_only) send_all(fd, body, blen);
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
        ssize_t k = recv(fd, buf + n, cap - n, 0);
        if (k <= 0) break;
        n += (size_t)k;
    }
    close(fd);
    buf[n] = 0;
    char *end = n ? strstr(buf, "\r\n\r\n") : NULL;
    if (!end || strncmp(buf, "HTTP/1.", 7) != 0) {
        free(buf);
        return 0;   /* status 0: no response */
    }
    r->status = atoi(buf + 9);
    size_t hlen = (size_t)(end - buf) + 2;
    r->head = malloc(hlen + 1);
    memcpy(r->head, buf, hlen);
    r->head[hlen] = 0;
    r->blen = n - (hlen + 2);
    r->body = malloc(r->blen + 1);
    memcpy(r->body, end + 4, r->blen);
    r->body[r->blen] = 0;
    free(buf);
    return 0;
}

const char *tc_header(const tc_resp *r, const char *name, char *out, size_t cap) {
    if (!r->head) return NULL;
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        const char *l = p + 2;
        if (!strncasecmp(l, name, nl) && l[nl] == ':') {
            l += nl + 1;
            while (*l == ' ') l++;
            const char *e = strstr(l, "\r\n");
            size_t k = e ? (size_t)(e - l) : strlen(l);
            if (k >= cap) k = cap - 1;
            memcpy(out, l, k);
            out[k] = 0;
            return out;
        }
    }
    return NULL;
}

int tc_png_size(const void *p, size_t n, int *w, int *h) {
    const unsigned char *b = p;
    if (n < 24 || memcmp(b, "\x89PNG\r\n\x1a\n", 8) != 0 || memcmp(b + 12, "IHDR", 4) != 0) return -1;
    *w = (int)((unsigned)b[16] << 24 | (unsigned)b[17] << 16 | (unsigned)b[18] << 8 | b[19]);
    *h = (int)((unsigned)b[20] << 24 | (unsigned)b[21] << 16 | (unsigned)b[22] << 8 | b[23]);
    return 0;
}

int tc_make_models(char *mae, char *cls, size_t cap) {
    const char *d = tl_tmpdir();
    char cfg[600], cmd[2000], out[4096];
    snprintf(cfg, sizeof cfg, "%s/mae_cfg.json", d);
    if (tl_write_text(cfg, "{\"image_size\": 64, \"patch_size\": 16, \"hidden_size\": 32, \"num_hidden_layers\": 1,"
                           " \"num_attention_heads\": 2, \"intermediate_size\": 64, \"decoder_hidden_size\": 16,"
                           " \"decoder_num_hidden_layers\": 1, \"decoder_num_attention_heads\": 2,"
                           " \"decoder_intermediate_size\": 32}") != 0)
        return -1;
    snprintf(mae, cap, "%s/mae", d);
    snprintf(cmd, sizeof cmd, "./skelex init --config %s --out %s --seed 3", cfg, mae);
    if (tl_run(cmd, out, sizeof out) != 0) {
        fprintf(stderr, "    %s\n", out);
        return -1;
    }
    if (!cls) return 0;
    snprintf(cls, cap, "%s/cls", d);
    return pfx_grouped_classifier(cls, 11);
}
