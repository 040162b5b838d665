/* cmd_data.c: `skelex bench data` (placeholder until the loader lands). */
#include "cli.h"
#include <stdio.h>

int cmd_bench_data(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "skelex bench data: not built yet\n");
    return 1;
}
