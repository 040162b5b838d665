/* precision_args.c: see precision_args.h. */
#include "cli/precision_args.h"
#include "cli/cli.h"
#include "core/cpu.h"
#include "nn/precision.h"
#include <stdio.h>
#include <stdlib.h>

sx_precision cli_precision(const char *cmd, const char *value) {
    sx_prec_request r;
    sx_err err;
    if (sx_precision_parse(value, &r, &err)) exit(cli_usage_error(cmd, "--precision: %s", err.msg));
    char note[256];
    sx_precision p = sx_precision_resolve(r, note, sizeof note);
    if (note[0]) fprintf(stderr, "skelex %s: note: --precision %s: %s\n", cmd, value ? value : "auto", note);
    return p;
}

void cli_print_cpu(const char *cmd, sx_precision p) {
    char cpu[256];
    sx_cpu_describe(cpu, sizeof cpu);
    fprintf(stderr, "%s: %s; precision %s\n", cmd, cpu, sx_precision_name(p));
}
