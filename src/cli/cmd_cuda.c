/* cmd_cuda.c: `skelex cuda`: the CUDA devices this build can use. Built
 * twice: plainly (the command says CUDA is not compiled in) and, for
 * `make cuda`, with -DSKELEX_CUDA against src/cuda/. */
#include "cli/cli.h"
#include <stdio.h>
#ifdef SKELEX_CUDA
#include "cuda/cuda_layers.h"
#endif

static const char *USAGE =
    "usage: skelex cuda\n"
    "  List the CUDA devices (name, compute capability, memory) of a build made\n"
    "  with `make cuda`.\n"
    "exit status: 0 at least one device; 1 no device, or built without CUDA;\n"
    "  2 usage\n";

int cmd_cuda(int argc, char **argv) {
    if (argc > 1 && cli_is_help(argv[1])) { fputs(USAGE, stdout); return 0; }
    if (argc > 1) return cli_usage_error("cuda", "unexpected argument '%s'", argv[1]);
#ifndef SKELEX_CUDA
    fprintf(stderr, "skelex cuda: this skelex was built without CUDA (`make cuda` builds it with)\n");
    return 1;
#else
    sx_err err;
    int n = sx_cuda_device_count(&err);
    if (n == 0) { fprintf(stderr, "skelex cuda: %s\n", err.msg); return 1; }
    for (int d = 0; d < n; d++) {
        char name[256];
        int major, minor;
        size_t mem;
        if (sx_cuda_device_info(d, name, sizeof name, &major, &minor, &mem, &err)) {
            fprintf(stderr, "skelex cuda: device %d: %s\n", d, err.msg);
            return 1;
        }
        printf("cuda:%d  %s  compute %d.%d  %.1f GiB%s\n", d, name, major, minor, (double)mem / (1 << 30),
               major == 9 ? "" : "  (no sm_90 code: runs the compute_90 PTX if the driver can)");
    }
    return 0;
#endif
}
