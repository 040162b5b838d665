/* cpu.h: what this CPU offers for matrix products (cpuid), and the ISA
 * oneDNN actually dispatches to (dnnl_get_effective_cpu_isa).
 *
 * bf16 products are "native" when the CPU has AVX512_BF16 or AMX-BF16 and
 * oneDNN's effective ISA reaches avx512_core_bf16; "emulated" when only
 * AVX-512 is there (oneDNN rounds in software, slower than fp32); otherwise
 * "unavailable" (oneDNN 2.6 has no bf16 matmul for AVX2). */
#ifndef SKELEX_CPU_H
#define SKELEX_CPU_H
#include <stddef.h>

typedef enum { SX_BF16_UNAVAILABLE, SX_BF16_EMULATED, SX_BF16_NATIVE } sx_bf16_support;

typedef struct {
    char brand[64];          /* cpuid brand string, trimmed ("" if none) */
    int avx2, avx512f, avx512_bf16, amx_tile, amx_bf16;  /* cpuid bits, with OS support for the registers */
    const char *dnnl_isa;    /* oneDNN's effective ISA, e.g. "avx2", "avx512_core_amx" */
    sx_bf16_support bf16;    /* see above */
} sx_cpu;

/* Detect once (later calls return the same). */
const sx_cpu *sx_cpu_info(void);
/* "cpu: AMD EPYC 7B13, isa avx2, bf16 products: no (unavailable)" into buf (NUL-terminated). */
void sx_cpu_describe(char *buf, size_t n);
/* "native", "emulated" or "unavailable". */
const char *sx_bf16_support_name(sx_bf16_support s);

#endif
