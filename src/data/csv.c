/* csv.c: the RFC 4180 reader (see csv.h). One pass over the buffer; the
 * current record's fields are kept back to back in one growing buffer. */
#include "data/csv.h"
#include <stdlib.h>
#include <string.h>

void csv_init(csv_reader *r, const char *name, const char *buf, size_t len) {
    *r = (csv_reader){.name = name, .buf = buf, .len = len, .line = 1};
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) r->pos = 3;  /* UTF-8 BOM */
}

void csv_free(csv_reader *r) {
    free(r->text);
    free(r->off);
    r->text = NULL;
    r->off = NULL;
    r->text_cap = r->off_cap = r->text_len = r->nf = 0;
}

static int put(csv_reader *r, char c, sx_err *err) {
    if (r->text_len + 1 > CSV_RECORD_MAX)
        return sx_fail(err, "%s:%zu: record longer than %zu bytes", r->name, r->rec_line, CSV_RECORD_MAX);
    if (r->text_len + 1 > r->text_cap) {
        size_t cap = r->text_cap ? 2 * r->text_cap : 256;
        if (cap > CSV_RECORD_MAX) cap = CSV_RECORD_MAX;
        char *t = realloc(r->text, cap);
        if (!t) return sx_fail(err, "%s: out of memory", r->name);
        r->text = t;
        r->text_cap = cap;
    }
    r->text[r->text_len++] = c;
    return 0;
}

static int begin_field(csv_reader *r, sx_err *err) {
    if (r->nf >= CSV_FIELDS_MAX) return sx_fail(err, "%s:%zu: more than %d fields", r->name, r->rec_line, CSV_FIELDS_MAX);
    if (r->nf == r->off_cap) {
        size_t cap = r->off_cap ? 2 * r->off_cap : 32;
        size_t *o = realloc(r->off, cap * sizeof *o);
        if (!o) return sx_fail(err, "%s: out of memory", r->name);
        r->off = o;
        r->off_cap = cap;
    }
    r->off[r->nf++] = r->text_len;
    return 0;
}

static int quoted(csv_reader *r, sx_err *err) {
    size_t start_line = r->line;
    r->pos++;  /* opening quote */
    for (;;) {
        if (r->pos >= r->len) return sx_fail(err, "%s:%zu: quoted field is never closed", r->name, start_line);
        char c = r->buf[r->pos++];
        if (c == '"') {
            if (r->pos < r->len && r->buf[r->pos] == '"') {
                r->pos++;
                if (put(r, '"', err)) return -1;
                continue;
            }
            break;
        }
        if (c == 0) return sx_fail(err, "%s:%zu: NUL byte", r->name, r->line);
        if (c == '\n') r->line++;
        if (put(r, c, err)) return -1;
    }
    if (r->pos < r->len && r->buf[r->pos] != ',' && r->buf[r->pos] != '\n' && r->buf[r->pos] != '\r')
        return sx_fail(err, "%s:%zu: text after a closing quote", r->name, r->line);
    return 0;
}

static int blank(const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    return !*s;
}

int csv_next(csv_reader *r, sx_err *err) {
    for (;;) {
        if (r->pos >= r->len) return 0;
        r->text_len = r->nf = 0;
        r->rec_line = r->line;
        int was_quoted = 0;
        for (;;) {
            if (begin_field(r, err)) return -1;
            if (r->pos < r->len && r->buf[r->pos] == '"') {
                was_quoted = 1;
                if (quoted(r, err)) return -1;
            } else {
                while (r->pos < r->len) {
                    char c = r->buf[r->pos];
                    if (c == ',' || c == '\n' || c == '\r') break;
                    if (c == 0) return sx_fail(err, "%s:%zu: NUL byte", r->name, r->line);
                    if (put(r, c, err)) return -1;
                    r->pos++;
                }
            }
            if (put(r, 0, err)) return -1;
            if (r->pos >= r->len) break;
            char c = r->buf[r->pos++];
            if (c == ',') continue;
            if (c == '\r' && r->pos < r->len && r->buf[r->pos] == '\n') r->pos++;
            r->line++;
            break;
        }
        if (r->nf == 1 && !was_quoted && blank(r->text)) continue;  /* blank line */
        return 1;
    }
}

void csv_write_field(FILE *f, const char *s) {
    size_t n = strlen(s);
    int quote = strpbrk(s, ",\"\r\n") != NULL || (n && (s[0] == ' ' || s[n - 1] == ' '));
    if (!quote) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}
