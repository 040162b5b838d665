/* default_model.c: the shipped models (models/ beside the binary) stand in
 * for --model when it is not given. */
#include "cli/cli.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int has_model(const char *dir) {
    char p[PATH_MAX + 32];
    struct stat st;
    if (snprintf(p, sizeof p, "%s/config.json", dir) >= (int)sizeof p || stat(p, &st) || !S_ISREG(st.st_mode)) return 0;
    if (snprintf(p, sizeof p, "%s/model.safetensors", dir) >= (int)sizeof p) return 0;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The folders searched, in order, into roots[]; returns how many. */
static int model_roots(char roots[3][PATH_MAX]) {
    int n = 0;
    const char *env = getenv("SKELEX_MODELS");
    if (env && *env) {   /* it replaces the default folders */
        snprintf(roots[n++], PATH_MAX, "%s", env);
        return n;
    }
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        snprintf(roots[n++], PATH_MAX, "%.*s/models", PATH_MAX - 8, exe);
        snprintf(roots[n++], PATH_MAX, "%.*s/../share/skelex/models", PATH_MAX - 24, exe);
    }
    return n;
}

int cli_shipped_model(const char *name, char *out, size_t cap) {
    char roots[3][PATH_MAX];
    int n = model_roots(roots);
    for (int i = 0; i < n; i++) {
        char p[PATH_MAX + 256];
        if (snprintf(p, sizeof p, "%s/%s", roots[i], name) >= (int)sizeof p) continue;
        if (has_model(p)) {
            char *real = realpath(p, NULL);
            int w = snprintf(out, cap, "%s", real ? real : p);
            free(real);
            if (w < 0 || (size_t)w >= cap) continue;
            return 0;
        }
    }
    return -1;
}

const char *cli_model_or_shipped(const char *cmd, const char *given, const char *name, char *buf, size_t cap) {
    if (given) return given;
    if (!cli_shipped_model(name, buf, cap)) {
        fprintf(stderr, "skelex %s: no --model given: using the shipped %s (%s)\n", cmd, name, buf);
        return buf;
    }
    char roots[3][PATH_MAX];
    int n = model_roots(roots);
    fprintf(stderr, "skelex %s: no --model given and the shipped %s is not installed; looked in", cmd, name);
    for (int i = 0; i < n; i++) fprintf(stderr, "%s %s/%s", i ? "," : "", roots[i], name);
    fprintf(stderr, " (SKELEX_MODELS=DIR names another folder of models)\n");
    return NULL;
}
