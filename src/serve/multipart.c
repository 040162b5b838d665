/* multipart.c: see multipart.h. The body is scanned once for delimiter
 * lines "\r\n--boundary"; each part's headers are bounded and only
 * Content-Disposition is read. */
#include "serve/multipart.h"
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MP_MAX_HEADERS 8192

static int bchar_ok(int c) {
    /* RFC 2046 bcharsnospace plus space (not last) */
    return isalnum(c) || strchr("'()+_,-./:=? ", c) != NULL;
}

int mp_boundary(const char *ctype, char out[MP_MAX_BOUNDARY + 1]) {
    if (!ctype) return -1;
    while (*ctype == ' ' || *ctype == '\t') ctype++;
    if (strncasecmp(ctype, "multipart/form-data", 19) != 0) return -1;
    const char *p = ctype + 19;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ';') p++;
        const char *name = p;
        while (*p && *p != '=' && *p != ';') p++;
        size_t nlen = (size_t)(p - name);
        while (nlen && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t')) nlen--;
        if (*p != '=') continue;
        p++;
        while (*p == ' ' || *p == '\t') p++;
        char val[MP_MAX_BOUNDARY + 1];
        size_t vlen = 0;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (vlen >= MP_MAX_BOUNDARY) return -1;
                val[vlen++] = *p++;
            }
            if (*p != '"') return -1;
            p++;
        } else {
            while (*p && *p != ';' && *p != ' ' && *p != '\t') {
                if (vlen >= MP_MAX_BOUNDARY) return -1;
                val[vlen++] = *p++;
            }
        }
        val[vlen] = 0;
        if (nlen == 8 && strncasecmp(name, "boundary", 8) == 0) {
            if (vlen == 0 || val[vlen - 1] == ' ') return -1;
            for (size_t i = 0; i < vlen; i++)
                if (!bchar_ok((unsigned char)val[i])) return -1;
            memcpy(out, val, vlen + 1);
            return 0;
        }
    }
    return -1;
}

static const char *find_mem(const char *h, size_t hlen, const char *n, size_t nlen) {
    if (nlen == 0 || hlen < nlen) return NULL;
    return memmem(h, hlen, n, nlen);
}

/* The next delimiter at or after from: "\r\n--boundary" followed by "--"
 * or by optional spaces and CRLF (a boundary that is a prefix of longer
 * text in the content is not a delimiter). */
static const char *find_delim(const char *body, size_t len, size_t from, const char *delim, size_t dl) {
    while (from < len) {
        const char *f = find_mem(body + from, len - from, delim, dl);
        if (!f) return NULL;
        size_t a = (size_t)(f - body) + dl;
        if (len - a >= 2 && body[a] == '-' && body[a + 1] == '-') return f;
        while (a < len && (body[a] == ' ' || body[a] == '\t')) a++;
        if (len - a >= 2 && body[a] == '\r' && body[a + 1] == '\n') return f;
        from = (size_t)(f - body) + 1;
    }
    return NULL;
}

static int fail(char *why, size_t cap, const char *msg) {
    if (why && cap) snprintf(why, cap, "%s", msg);
    return -1;
}

/* Does the header block hdr[0..n) hold Content-Disposition: form-data with
 * name="field"? */
static int disposition_names(const char *hdr, size_t n, const char *field) {
    size_t pos = 0;
    while (pos < n) {
        const char *line = hdr + pos;
        const char *eol = find_mem(line, n - pos, "\r\n", 2);
        size_t llen = eol ? (size_t)(eol - line) : n - pos;
        pos += llen + 2;
        if (llen < 20 || strncasecmp(line, "content-disposition:", 20) != 0) continue;
        char buf[1024];
        if (llen >= sizeof buf) return 0;
        memcpy(buf, line, llen);
        buf[llen] = 0;
        const char *p = buf + 20;
        while (*p == ' ' || *p == '\t') p++;
        if (strncasecmp(p, "form-data", 9) != 0) return 0;
        p += 9;
        while ((p = strchr(p, ';')) != NULL) {
            p++;
            while (*p == ' ' || *p == '\t') p++;
            if (strncasecmp(p, "name=", 5) != 0) continue;
            p += 5;
            size_t flen = strlen(field);
            if (*p == '"') return strncmp(p + 1, field, flen) == 0 && p[1 + flen] == '"';
            return strncmp(p, field, flen) == 0 && (p[flen] == 0 || p[flen] == ';' || p[flen] == ' ');
        }
        return 0;
    }
    return 0;
}

int mp_find_field(const char *body, size_t len, const char *boundary, const char *field,
                  const char **data, size_t *dlen, char *why, size_t cap) {
    size_t blen = boundary ? strlen(boundary) : 0;
    if (blen == 0 || blen > MP_MAX_BOUNDARY) return fail(why, cap, "multipart: bad boundary");
    char delim[MP_MAX_BOUNDARY + 5];
    delim[0] = '\r';
    delim[1] = '\n';
    delim[2] = '-';
    delim[3] = '-';
    memcpy(delim + 4, boundary, blen);
    size_t dl = blen + 4;
    /* The first delimiter may start the body (without the CRLF before it). */
    size_t pos;
    if (len >= dl - 2 && memcmp(body, delim + 2, dl - 2) == 0) {
        pos = dl - 2;
    } else {
        const char *f = find_delim(body, len, 0, delim, dl);
        if (!f) return fail(why, cap, "multipart: no opening boundary");
        pos = (size_t)(f - body) + dl;
    }
    for (;;) {
        /* after a delimiter: "--" ends the body; else optional space, CRLF */
        if (len - pos >= 2 && body[pos] == '-' && body[pos + 1] == '-')
            return fail(why, cap, "multipart: no field named 'file'");
        while (pos < len && (body[pos] == ' ' || body[pos] == '\t')) pos++;
        if (len - pos < 2 || body[pos] != '\r' || body[pos + 1] != '\n')
            return fail(why, cap, "multipart: malformed boundary line");
        pos += 2;
        size_t hmax = len - pos < MP_MAX_HEADERS ? len - pos : MP_MAX_HEADERS;
        const char *hend;
        if (hmax >= 2 && body[pos] == '\r' && body[pos + 1] == '\n') {
            hend = body + pos;   /* a part with no headers */
        } else {
            hend = find_mem(body + pos, hmax, "\r\n\r\n", 4);
            if (!hend) return fail(why, cap, "multipart: part headers missing their end or over 8 KiB");
            hend += 2;
        }
        size_t hlen = (size_t)(hend - (body + pos));
        int want = disposition_names(body + pos, hlen, field);
        size_t cstart = (size_t)(hend - body) + 2;
        const char *next = cstart <= len ? find_delim(body, len, cstart, delim, dl) : NULL;
        if (!next) return fail(why, cap, "multipart: no closing boundary");
        if (want) {
            *data = body + cstart;
            *dlen = (size_t)(next - (body + cstart));
            return 0;
        }
        pos = (size_t)(next - body) + dl;
    }
}
