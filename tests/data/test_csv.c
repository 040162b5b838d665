/* test_csv.c: the RFC 4180 reader (data/csv.h): quoting, doubled quotes,
 * CRLF, embedded newlines, BOM, blank lines, and the errors with their line
 * numbers and limits. */
#include "data/csv.h"
#include "testlib.h"
#include <stdlib.h>
#include <string.h>

/* All records of text as "f1|f2;f1|f2;" (one ';' per record) into out; the
 * csv_next status at the end (0 or -1). */
static int read_all(const char *text, size_t len, char *out, size_t cap, size_t *lines, sx_err *err) {
    csv_reader r;
    csv_init(&r, "t.csv", text, len);
    out[0] = 0;
    int rc, k = 0;
    while ((rc = csv_next(&r, err)) == 1) {
        for (size_t f = 0; f < csv_nfields(&r); f++) {
            strncat(out, csv_field(&r, f), cap - strlen(out) - 1);
            strncat(out, f + 1 < csv_nfields(&r) ? "|" : ";", cap - strlen(out) - 1);
        }
        if (lines) lines[k++] = csv_line(&r);
    }
    csv_free(&r);
    return rc;
}

TEST(test_csv_rfc4180) {
    char out[512];
    size_t lines[8];
    sx_err e;
    const char *t1 = "\xEF\xBB\xBFimage,label\r\n\"a,b.png\",1\r\n\"say \"\"hi\"\"\",0\n\n  \n\"two\nlines\",2\nlast,3";
    CHECKF(read_all(t1, strlen(t1), out, sizeof out, lines, &e) == 0, "%s", e.msg);
    CHECKF(strcmp(out, "image|label;a,b.png|1;say \"hi\"|0;two\nlines|2;last|3;") == 0, "%s", out);
    CHECK(lines[0] == 1 && lines[1] == 2 && lines[2] == 3 && lines[3] == 6 && lines[4] == 8);
    /* empty fields, a quoted empty field is a record, a quote inside an unquoted field is text */
    const char *t2 = ",,\n\"\"\nab\"c,d\n";
    CHECKF(read_all(t2, strlen(t2), out, sizeof out, NULL, &e) == 0, "%s", e.msg);
    CHECKF(strcmp(out, "||;;ab\"c|d;") == 0, "%s", out);
    /* the buffer need not be NUL-terminated: only len bytes are read */
    CHECK(read_all("x,y\nz", 3, out, sizeof out, NULL, &e) == 0 && strcmp(out, "x|y;") == 0);
}

TEST(test_csv_errors_name_line) {
    char out[512];
    sx_err e;
    CHECK(read_all("a,b\n\"open\n", 10, out, sizeof out, NULL, &e) == -1);
    CHECKF(strstr(e.msg, "t.csv:2: quoted field is never closed") != NULL, "%s", e.msg);
    CHECK(read_all("a\nb\n\"x\"y\n", 9, out, sizeof out, NULL, &e) == -1);
    CHECKF(strstr(e.msg, "t.csv:3: text after a closing quote") != NULL, "%s", e.msg);
    CHECK(read_all("a\nb\0c\n", 6, out, sizeof out, NULL, &e) == -1);
    CHECKF(strstr(e.msg, "t.csv:2: NUL byte") != NULL, "%s", e.msg);
    /* limits: fields per record and bytes per record */
    size_t n = 2 * CSV_FIELDS_MAX + 2;
    char *many = malloc(n);
    memset(many, ',', n);
    CHECK(read_all(many, n, out, sizeof out, NULL, &e) == -1);
    CHECKF(strstr(e.msg, "t.csv:1: more than") != NULL, "%s", e.msg);
    free(many);
    n = CSV_RECORD_MAX + 10;
    char *big = malloc(n);
    memset(big, 'x', n);
    big[0] = '"';   /* a quoted field that never ends within the limit */
    CHECK(read_all(big, n, out, sizeof out, NULL, &e) == -1);
    CHECKF(strstr(e.msg, "t.csv:1: record longer than") != NULL, "%s", e.msg);
    free(big);
}
