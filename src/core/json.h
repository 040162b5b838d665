/* json.h: the program's one strict JSON reader and its one JSON writer.
 * Strict: the whole text is one JSON value (nothing but whitespace after
 * it), no object repeats a key, no number is out of double range. cJSON
 * alone accepts trailing garbage and keeps the first of two equal keys. */
#ifndef SKELEX_JSON_H
#define SKELEX_JSON_H
#include "core/common.h"

struct cJSON;

/* Parse text[0..len) strictly. what names the source in messages ("PATH"
 * or "config"). The tree, or NULL with "WHAT: reason" in err. */
struct cJSON *sx_json_parse(const char *text, size_t len, const char *what, sx_err *err);

/* Read path (at most max_bytes) and parse it strictly. */
struct cJSON *sx_json_load(const char *path, size_t max_bytes, sx_err *err);

/* Write any cJSON object as a pretty-printed JSON file with a final newline,
 * atomically (sx_atomic_open/commit: never a partial or 0-byte file); the
 * one JSON file writer of the program. */
int json_write_file(const char *path, const struct cJSON *r, sx_err *err);

/* Add the n numbers f[i].value under the keys f[i].name to object o, in order. */
typedef struct { const char *name; double value; } json_number;
void json_add_numbers(struct cJSON *o, const json_number *f, size_t n);

#endif
