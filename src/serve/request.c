/* request.c: see request.h. */
#include "serve/request.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int fail(char *why, size_t cap, const char *msg) {
    if (why && cap) snprintf(why, cap, "%s", msg);
    return -1;
}

static int parse_u(const char *s, unsigned long long max, unsigned long long *out) {
    if (!s || !*s || strlen(s) > 20) return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max) return -1;
    *out = v;
    return 0;
}

int rq_parse_opts(const char *passes, const char *masking, const char *seed, int def_passes, int max_passes,
                  rq_opts *o, char *why, size_t cap) {
    o->passes = def_passes;
    o->masking = 0;
    o->seed = 0;
    unsigned long long v;
    if (passes) {
        if (parse_u(passes, (unsigned long long)max_passes, &v) != 0 || v < 1) {
            char m[96];
            snprintf(m, sizeof m, "passes must be an integer from 1 to %d", max_passes);
            return fail(why, cap, m);
        }
        o->passes = (int)v;
    }
    if (masking) {
        if (!strcmp(masking, "balanced")) o->masking = 0;
        else if (!strcmp(masking, "random")) o->masking = 1;
        else return fail(why, cap, "masking must be 'balanced' or 'random'");
    }
    if (seed) {
        if (parse_u(seed, (1ULL << 63) - 1, &v) != 0) return fail(why, cap, "seed must be a non-negative integer below 2^63");
        o->seed = v;
    }
    return 0;
}

/* Equal strings, in time that depends on the lengths only. */
static int same(const char *a, size_t alen, const char *b) {
    size_t blen = strlen(b);
    unsigned char d = alen != blen;
    for (size_t i = 0; i < blen; i++) d |= (unsigned char)((i < alen ? (unsigned char)a[i] : 0) ^ (unsigned char)b[i]);
    return d == 0;
}

int rq_authorized(const char *authorization, const char *cookie, const char *token) {
    if (!token || !*token) return 1;
    int ok = 0;
    if (authorization && strncasecmp(authorization, "Bearer ", 7) == 0) {
        const char *t = authorization + 7;
        while (*t == ' ') t++;
        size_t n = strlen(t);
        while (n && (t[n - 1] == ' ' || t[n - 1] == '\t')) n--;
        ok |= same(t, n, token);
    }
    if (cookie) {
        const char *p = cookie;
        while (*p) {
            while (*p == ' ' || *p == ';') p++;
            const char *name = p;
            while (*p && *p != '=' && *p != ';') p++;
            size_t nlen = (size_t)(p - name);
            if (*p != '=') continue;
            const char *val = ++p;
            while (*p && *p != ';') p++;
            size_t vlen = (size_t)(p - val);
            while (vlen && val[vlen - 1] == ' ') vlen--;
            if (nlen == 9 && !strncmp(name, "skx_token", 9)) ok |= same(val, vlen, token);
        }
    }
    return ok;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int rq_form_value(const char *body, size_t len, const char *key, char *out, size_t cap) {
    size_t klen = strlen(key), pos = 0;
    if (cap == 0) return -1;
    while (pos < len) {
        const char *pair = body + pos;
        const char *amp = memchr(pair, '&', len - pos);
        size_t plen = amp ? (size_t)(amp - pair) : len - pos;
        pos += plen + 1;
        if (plen > klen && pair[klen] == '=' && !memcmp(pair, key, klen)) {
            size_t o = 0;
            for (size_t i = klen + 1; i < plen; i++) {
                int c = (unsigned char)pair[i];
                if (c == '+') c = ' ';
                else if (c == '%') {
                    if (i + 2 >= plen) return -1;
                    int h = hexval((unsigned char)pair[i + 1]), l = hexval((unsigned char)pair[i + 2]);
                    if (h < 0 || l < 0) return -1;
                    c = h * 16 + l;
                    i += 2;
                }
                if (c == 0 || o + 1 >= cap) return -1;
                out[o++] = (char)c;
            }
            out[o] = 0;
            return 0;
        }
    }
    return -1;
}

const char *rq_result_path(const char *url, char id[33]) {
    static const char pre[] = "/api/result/";
    if (strncmp(url, pre, sizeof pre - 1) != 0) return NULL;
    const char *p = url + sizeof pre - 1;
    for (int i = 0; i < 32; i++)
        if (hexval((unsigned char)p[i]) < 0 || (p[i] >= 'A' && p[i] <= 'F')) return NULL;
    if (p[32] != '/') return NULL;
    memcpy(id, p, 32);
    id[32] = 0;
    return p + 33;
}
