/* fuzz_csv.c: libFuzzer harness for the RFC 4180 reader (data/csv.c).
 * Every input is read record by record; errors must keep the message
 * contract ("NAME:LINE: reason", one line). Accepted input must also
 * round-trip: every record written back with every field quoted (quotes
 * doubled) and read again gives the same fields, and record line numbers
 * never go backwards. Links only csv.c and common.c. */
#include "data/csv.h"
#include "fuzz_util.h"

static void quote_into(char **buf, size_t *len, size_t *cap, const char *s, int sep) {
    size_t need = *len + 2 * strlen(s) + 4;
    if (need > *cap) {
        *cap = need * 2;
        *buf = realloc(*buf, *cap);
        if (!*buf) abort();
    }
    char *o = *buf + *len;
    if (sep) *o++ = ',';
    *o++ = '"';
    for (; *s; s++) {
        if (*s == '"') *o++ = '"';
        *o++ = *s;
    }
    *o++ = '"';
    *len = (size_t)(o - *buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    csv_reader r;
    csv_init(&r, "in.csv", (const char *)data, n);
    sx_err err;
    char *out = NULL;
    size_t out_len = 0, out_cap = 0, records = 0, last_line = 0;
    int rc;
    while ((rc = csv_next(&r, &err)) == 1) {
        if (csv_nfields(&r) < 1 || csv_nfields(&r) > CSV_FIELDS_MAX) abort();
        if (csv_line(&r) < last_line || csv_line(&r) < 1) abort();
        last_line = csv_line(&r);
        for (size_t k = 0; k < csv_nfields(&r); k++) quote_into(&out, &out_len, &out_cap, csv_field(&r, k), k > 0);
        quote_into(&out, &out_len, &out_cap, "", 0);   /* room for the line end ... */
        out_len -= 2;                                   /* ... without the empty field itself */
        out[out_len++] = '\r';
        out[out_len++] = '\n';
        records++;
    }
    if (rc < 0) fuzz_check_error(&err, "in.csv:");
    if (rc == 0 && records) {   /* round trip */
        csv_reader a, b;
        csv_init(&a, "in.csv", (const char *)data, n);
        csv_init(&b, "out.csv", out, out_len);
        size_t seen = 0;
        for (;;) {
            int ra = csv_next(&a, &err), rb;
            sx_err eb;
            rb = csv_next(&b, &eb);
            /* a record of one empty quoted field reads back as a blank line only when unquoted: ours are quoted */
            if (ra != rb) { fprintf(stderr, "round trip: %d vs %d (%s)\n", ra, rb, rb < 0 ? eb.msg : ""); abort(); }
            if (ra != 1) break;
            if (csv_nfields(&a) != csv_nfields(&b)) abort();
            for (size_t k = 0; k < csv_nfields(&a); k++)
                if (strcmp(csv_field(&a, k), csv_field(&b, k)) != 0) abort();
            seen++;
        }
        if (seen != records) abort();
        csv_free(&a);
        csv_free(&b);
    }
    free(out);
    csv_free(&r);
    return 0;
}
