/* test_cuda_cli.c: `skelex cuda` in the CPU suite. A plain build says it
 * has no CUDA (exit 1); a `make cuda` build lists devices (exit 0) or says
 * there is none (exit 1); usage errors are exit 2 in both. */
#include "testlib.h"
#include <string.h>

TEST(test_cuda_cli) {
    char out[4096];
    int rc = tl_run("timeout -s KILL 60 ./skelex cuda --help", out, sizeof out);
    CHECKF(rc == 0 && strstr(out, "usage: skelex cuda"), "rc %d: %s", rc, out);
    rc = tl_run("timeout -s KILL 60 ./skelex cuda extra", out, sizeof out);
    CHECKF(rc == 2 && strstr(out, "unexpected argument 'extra'"), "rc %d: %s", rc, out);
    rc = tl_run("timeout -s KILL 60 ./skelex cuda", out, sizeof out);
    if (rc == 0) CHECKF(strncmp(out, "cuda:0  ", 8) == 0 && strstr(out, "compute "), "%s", out);
    else CHECKF(rc == 1 && (strstr(out, "built without CUDA") || strstr(out, "no CUDA device")), "rc %d: %s", rc, out);
    // the command is in the program's usage
    rc = tl_run("timeout -s KILL 60 ./skelex --help", out, sizeof out);
    CHECKF(rc == 0 && strstr(out, "  cuda  "), "rc %d", rc);
}
