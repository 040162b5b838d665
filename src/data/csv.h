/* csv.h: an RFC 4180 CSV reader over a buffer in memory.
 *
 * Accepts: quoted fields ("a,b"), doubled quotes inside them ("say ""hi"""),
 * newlines inside quoted fields, CRLF or LF line ends (a lone CR inside an
 * unquoted field ends the record too), a UTF-8 byte-order mark at the start,
 * a last record without a line end. Blank lines (only spaces and tabs) are
 * skipped. A quote inside an unquoted field is kept as text (lenient, as
 * Python's csv module).
 * Refuses, with "NAME:LINE: reason": a quoted field that never closes, text
 * after a closing quote, NUL bytes, a record over CSV_RECORD_MAX bytes,
 * more than CSV_FIELDS_MAX fields. Memory is bounded by the record limits:
 * hostile input cannot make it allocate without limit.
 * Not here: reading the file (sx_read_text), what columns mean (task.c). */
#ifndef SKELEX_CSV_H
#define SKELEX_CSV_H
#include "core/common.h"
#include <stdio.h>

#define CSV_FILE_MAX ((size_t)256 << 20)      /* MURA's and GRAZPEDWRI's CSVs are a few MB */
#define CSV_RECORD_MAX ((size_t)1 << 20)      /* bytes in one record, quoted newlines included */
#define CSV_FIELDS_MAX 4096

/* Treat the fields as private. */
typedef struct {
    const char *name;            /* file name, for messages */
    const char *buf;
    size_t len, pos;
    size_t line;                 /* physical line of buf[pos], 1-based */
    size_t rec_line;             /* line where the current record starts */
    char *text;                  /* the record's fields, each NUL-terminated */
    size_t text_len, text_cap;
    size_t *off;                 /* field k starts at text + off[k] */
    size_t nf, off_cap;
} csv_reader;

/* Read buf (len bytes; need not be NUL-terminated; must outlive r); name is
 * used in messages and must outlive r. */
void csv_init(csv_reader *r, const char *name, const char *buf, size_t len);
void csv_free(csv_reader *r);

/* Write s as one RFC 4180 field: quoted when it holds a comma, a quote, CR
 * or LF, or starts or ends with a space; quotes doubled. The one CSV field
 * writer (summary.csv, predictions.csv). */
void csv_write_field(FILE *f, const char *s);

/* The next record: 1 (fields via csv_field), 0 at the end, -1 on error. */
int csv_next(csv_reader *r, sx_err *err);

/* Fields of the current record: count, field k (0 <= k < count; writable,
 * NUL-terminated, valid until the next csv_next), the line it started on. */
static inline size_t csv_nfields(const csv_reader *r) { return r->nf; }
static inline char *csv_field(const csv_reader *r, size_t k) { return r->text + r->off[k]; }
static inline size_t csv_line(const csv_reader *r) { return r->rec_line; }

#endif
