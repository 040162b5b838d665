/* env.c: range-checked environment variables; see env.h. */
#include "core/env.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int sx_env_long(const char *name, long lo, long hi, long def, long *out, sx_err *err) {
    const char *s = getenv(name);
    *out = def;
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        return sx_fail(err, "%s=%s: expected an integer in [%ld, %ld] (or unset)", name, s, lo, hi);
    *out = v;
    return 0;
}

int sx_env_flag(const char *name, int def, int *out, sx_err *err) {
    long v;
    int rc = sx_env_long(name, 0, 1, def, &v, err);
    *out = (int)v;
    return rc;
}

int sx_env_check(sx_err *err) {
    long v;
    int f;
    if (sx_env_long("OMP_NUM_THREADS", 1, 4096, 0, &v, err)) return -1;
    if (sx_env_flag("SKELEX_SPLIT", 1, &f, err)) return -1;
    /* switched on by their presence (nn/gemm.c, nn/layers.c): only "1" is
     * accepted, so that "=0" never means "on" */
    static const char *presence[] = {"SKELEX_PROFILE", "SKELEX_NO_PIN"};
    for (size_t i = 0; i < sizeof presence / sizeof presence[0]; i++) {
        const char *s = getenv(presence[i]);
        if (s && strcmp(s, "1")) return sx_fail(err, "%s=%s: set it to 1 to switch it on, or unset it", presence[i], s);
    }
    const char *models = getenv("SKELEX_MODELS");  /* cli/default_model.c */
    if (models && *models) {
        struct stat st;
        if (stat(models, &st) || !S_ISDIR(st.st_mode))
            return sx_fail(err, "SKELEX_MODELS=%s: not a folder (it names where the shipped models are)", models);
    }
    return 0;
}
