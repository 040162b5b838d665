/* precision_args.h: --precision fp32|bf16|auto for the subcommands, and the
 * CPU line they print (nn/precision.h says what each choice means). */
#ifndef SKELEX_PRECISION_ARGS_H
#define SKELEX_PRECISION_ARGS_H
#include "nn/gemm.h"

/* Parse the value of --precision for cmd (exits 2 on anything else),
 * resolve it on this CPU and, when the request cannot be met as asked, print
 * one note to stderr; returns the precision to run. */
sx_precision cli_precision(const char *cmd, const char *value);
/* "<cmd>: cpu: AMD EPYC, isa avx2 (...), bf16 products: no (unavailable); precision fp32"
 * to stderr (once the command's setup succeeded: errors stay one line). */
void cli_print_cpu(const char *cmd, sx_precision p);

#define CLI_PRECISION_HELP \
    "  --precision P      auto (default: bf16 where the CPU has native bf16 products,\n" \
    "                     AVX512_BF16 or AMX, else fp32), fp32 (exact) or bf16\n" \
    "                     (fp32 master weights; falls back to fp32, saying so, where\n" \
    "                     oneDNN cannot run bf16 products)\n"

#endif
