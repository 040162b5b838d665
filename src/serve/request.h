/* request.h: the pure parts of request handling (no sockets, no model):
 * analysis options from the query string, token checks, the login form,
 * result paths. Each is bounded and total over any input: the fuzz target
 * (with multipart.h). */
#ifndef SKELEX_SERVE_REQUEST_H
#define SKELEX_SERVE_REQUEST_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int passes;        /* 1..max_passes */
    int masking;       /* 0 balanced, 1 random (skx_masking) */
    uint64_t seed;
} rq_opts;

/* Parse the optional query values (NULL: absent -> defaults passes
 * def_passes, balanced, seed 0). passes must be an integer in
 * [1, max_passes], masking "balanced" or "random", seed a decimal integer
 * in [0, 2^63). 0, or -1 with a reason in why. */
int rq_parse_opts(const char *passes, const char *masking, const char *seed, int def_passes, int max_passes,
                  rq_opts *o, char *why, size_t cap);

/* Is the request authorised for token? (token NULL or "": always.) True
 * when the Authorization header is "Bearer <token>" or the Cookie header
 * holds skx_token=<token>; compared in time independent of where they
 * differ. */
int rq_authorized(const char *authorization, const char *cookie, const char *token);

/* The value of key in an application/x-www-form-urlencoded body,
 * percent-decoded into out (cap bytes, NUL-terminated). 0, or -1 when
 * absent, malformed or longer than cap-1. */
int rq_form_value(const char *body, size_t len, const char *key, char *out, size_t cap);

/* "/api/result/<32 hex>/<file>": copy the id into id and return the file
 * part, or NULL when url is not of that shape. */
const char *rq_result_path(const char *url, char id[33]);

#endif
