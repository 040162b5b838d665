/* multipart.h: a small, bounded multipart/form-data parser over a body
 * already held in memory (the server reads the body into a buffer capped by
 * the upload limit, so the parser never allocates and never copies: it
 * returns a view into the body). Pure functions, no I/O: the fuzz target. */
#ifndef SKELEX_SERVE_MULTIPART_H
#define SKELEX_SERVE_MULTIPART_H
#include <stddef.h>

#define MP_MAX_BOUNDARY 70   /* RFC 2046: 1..70 characters */

/* The boundary of a Content-Type "multipart/form-data; boundary=..." (quoted
 * or not) into out (NUL-terminated). 0, or -1 when ctype is not
 * multipart/form-data or its boundary is missing or invalid. */
int mp_boundary(const char *ctype, char out[MP_MAX_BOUNDARY + 1]);

/* Find the part whose Content-Disposition is form-data with name="field"
 * in body[0..len) and return its content as *data and *dlen (a view into
 * body). 0 when found; -1 with a one-line reason in why (cap bytes) when the
 * body is malformed (no opening boundary, a part without a blank line
 * after its headers, headers over 8 KiB, no closing boundary) or has no
 * such field. */
int mp_find_field(const char *body, size_t len, const char *boundary, const char *field,
                  const char **data, size_t *dlen, char *why, size_t cap);

#endif
