/* fuzz_http.c: libFuzzer harness for skelex serve's own request parsing
 * (src/serve/multipart.c, src/serve/request.c): the input's first line is
 * taken as a Content-Type header, the rest as the request body. The body
 * sits in a buffer of exactly its size, so any read past it is caught.
 * Checked: a found field is a view inside the body; a reason is given on
 * every failure; option parsing either fails or yields values in range;
 * the token check never accepts a wrong token. (HTTP framing itself is
 * libmicrohttpd's.) */
#include "serve/multipart.h"
#include "serve/request.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char *dup_n(const uint8_t *p, size_t n) {
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const uint8_t *nl = memchr(data, '\n', n < 512 ? n : 512);
    size_t hl = nl ? (size_t)(nl - data) : 0;
    char *ctype = dup_n(data, hl);
    size_t blen = n - (nl ? hl + 1 : 0);
    char *body = malloc(blen ? blen : 1);
    memcpy(body, data + (n - blen), blen);

    char b[MP_MAX_BOUNDARY + 1], why[160];
    if (mp_boundary(ctype, b) == 0) {
        size_t bl = strlen(b);
        if (bl == 0 || bl > MP_MAX_BOUNDARY) abort();
        static const char *const fields[] = {"file", "note", ""};
        for (int f = 0; f < 3; f++) {
            const char *d = NULL;
            size_t dl = 0;
            why[0] = 0;
            if (mp_find_field(body, blen, b, fields[f], &d, &dl, why, sizeof why) == 0) {
                if (d < body || d > body + blen || dl > (size_t)(body + blen - d)) abort();
            } else if (!why[0]) {
                abort();
            }
        }
    }

    /* the same bytes as query values, headers and a login form */
    char *s = dup_n(data, n < 64 ? n : 64);
    size_t sl = strlen(s);
    char *third[3] = {s, s + sl / 3, s + 2 * sl / 3};
    rq_opts o;
    why[0] = 0;
    if (rq_parse_opts(third[0], NULL, NULL, 10, 32, &o, why, sizeof why) == 0) {
        if (o.passes < 1 || o.passes > 32) abort();
    } else if (!why[0]) abort();
    if (rq_parse_opts(NULL, third[1], third[2], 10, 32, &o, why, sizeof why) == 0 && (o.masking < 0 || o.masking > 1 || o.seed >> 63))
        abort();
    if (rq_authorized(ctype, s, "Tok3n-XYZ-never-in-corpus")) {
        /* only a header or cookie holding exactly the token passes */
        if (!strstr(ctype, "Tok3n-XYZ-never-in-corpus") && !strstr(s, "Tok3n-XYZ-never-in-corpus")) abort();
    }
    char v[32];
    if (rq_form_value(body, blen, "token", v, sizeof v) == 0 && strlen(v) >= sizeof v) abort();
    char id[33];
    const char *rest = rq_result_path(s, id);
    if (rest && (strlen(id) != 32 || rest != s + 45)) abort();
    free(s);
    free(ctype);
    free(body);
    return 0;
}
