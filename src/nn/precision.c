/* precision.c: --precision resolution (see precision.h). */
#include "nn/precision.h"
#include "core/cpu.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sx_precision_parse(const char *s, sx_prec_request *out, sx_err *err) {
    if (!s || !strcmp(s, "auto")) *out = PREC_REQ_AUTO;
    else if (!strcmp(s, "fp32")) *out = PREC_REQ_FP32;
    else if (!strcmp(s, "bf16")) *out = PREC_REQ_BF16;
    else return sx_fail(err, "precision is fp32, bf16 or auto, not '%s'", s);
    return 0;
}

int sx_precision_from_env(sx_prec_request *out, sx_err *err) {
    const char *v = getenv("SKELEX_PRECISION");
    if (sx_precision_parse(v && *v ? v : NULL, out, err)) return sx_fail(err, "SKELEX_PRECISION: %s", err->msg);
    return 0;
}

sx_precision sx_precision_resolve(sx_prec_request r, char *note, size_t n) {
    if (n) note[0] = '\0';
    if (r == PREC_REQ_FP32) return PREC_FP32;
    const sx_cpu *c = sx_cpu_info();
    if (r == PREC_REQ_AUTO) return c->bf16 == SX_BF16_NATIVE && gemm_bf16_available() ? PREC_BF16 : PREC_FP32;
    if (!gemm_bf16_available()) {
        snprintf(note, n, "this CPU has no bf16 products oneDNN can run (isa %s; they need AVX-512 or AMX): running fp32",
                 c->dnnl_isa);
        return PREC_FP32;
    }
    if (c->bf16 != SX_BF16_NATIVE)
        snprintf(note, n, "bf16 products are emulated on this CPU (isa %s, no AVX512_BF16 or AMX): slower than fp32",
                 c->dnnl_isa);
    return PREC_BF16;
}

const char *sx_precision_name(sx_precision p) { return p == PREC_BF16 ? "bf16" : "fp32"; }
