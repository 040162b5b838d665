/* precision.h: what --precision fp32|bf16|auto means on this CPU.
 *
 * auto: bf16 where the CPU has native bf16 products (AVX512_BF16 or AMX,
 *       core/cpu.h) and oneDNN runs them, else fp32.
 * bf16: bf16 where oneDNN can run bf16 products at all (natively, or
 *       emulated on AVX-512, which is slower than fp32); where it cannot
 *       (AVX2: oneDNN 2.6 has no bf16 matmul), fp32, with a note saying so.
 * fp32: fp32, exact (the reference). */
#ifndef SKELEX_PRECISION_H
#define SKELEX_PRECISION_H
#include "nn/gemm.h"
#include "core/common.h"
#include <stddef.h>

typedef enum { PREC_REQ_FP32, PREC_REQ_BF16, PREC_REQ_AUTO } sx_prec_request;

/* "fp32", "bf16" or "auto" (NULL: auto). 0, or -1 with a message. */
int sx_precision_parse(const char *s, sx_prec_request *out, sx_err *err);
/* The precision to run; note gets a line for the user when the request
 * could not be met as asked ("" otherwise). */
sx_precision sx_precision_resolve(sx_prec_request r, char *note, size_t n);
/* SKELEX_PRECISION (the API and serve): the request it names, auto when unset.
 * -1 with a message if it names something else. */
int sx_precision_from_env(sx_prec_request *out, sx_err *err);
/* "fp32" or "bf16". */
const char *sx_precision_name(sx_precision p);

#endif
