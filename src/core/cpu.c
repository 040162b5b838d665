/* cpu.c: CPU feature detection (see cpu.h). */
#include "core/cpu.h"
#include <cpuid.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static sx_cpu g_cpu;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_all: return "all";
    default: return "unknown";
    }
}

static void trim(char *s) {
    size_t a = 0, n = strlen(s);
    while (s[a] == ' ') a++;
    while (n > a && s[n - 1] == ' ') n--;
    memmove(s, s + a, n - a);
    s[n - a] = '\0';
}

static void detect(void) {
    sx_cpu *c = &g_cpu;
    unsigned a, b, cx, d;
    if (__get_cpuid(0x80000000u, &a, &b, &cx, &d) && a >= 0x80000004u) {
        uint32_t w[12];
        for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002u + i, &w[4 * i], &w[4 * i + 1], &w[4 * i + 2], &w[4 * i + 3]);
        memcpy(c->brand, w, 48);
        c->brand[48] = '\0';
        trim(c->brand);
    }
    int osxsave = __get_cpuid(1, &a, &b, &cx, &d) && (cx & bit_OSXSAVE);
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    int ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6, tiles = (xcr0 & 0x60000) == 0x60000;
    if (__get_cpuid_count(7, 0, &a, &b, &cx, &d)) {
        c->avx2 = ymm && (b & (1u << 5));
        c->avx512f = zmm && (b & (1u << 16));
        c->amx_bf16 = tiles && (d & (1u << 22));
        c->amx_tile = tiles && (d & (1u << 24));
    }
    if (__get_cpuid_count(7, 0, &a, &b, &cx, &d) && a >= 1 && __get_cpuid_count(7, 1, &a, &b, &cx, &d))
        c->avx512_bf16 = zmm && (a & (1u << 5));
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    c->dnnl_isa = isa_name(isa);
    /* the ISA values are bit masks: each includes the ones below it */
    if ((c->avx512_bf16 || c->amx_bf16) && (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16)
        c->bf16 = SX_BF16_NATIVE;
    else if ((isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core)
        c->bf16 = SX_BF16_EMULATED;
    else
        c->bf16 = SX_BF16_UNAVAILABLE;
}

const sx_cpu *sx_cpu_info(void) {
    pthread_once(&g_once, detect);
    return &g_cpu;
}

const char *sx_bf16_support_name(sx_bf16_support s) {
    return s == SX_BF16_NATIVE ? "native" : s == SX_BF16_EMULATED ? "emulated" : "unavailable";
}

void sx_cpu_describe(char *buf, size_t n) {
    const sx_cpu *c = sx_cpu_info();
    char feats[96] = "";
    snprintf(feats, sizeof feats, "%s%s%s%s%s", c->avx2 ? " avx2" : "", c->avx512f ? " avx512f" : "",
             c->avx512_bf16 ? " avx512_bf16" : "", c->amx_tile ? " amx_tile" : "", c->amx_bf16 ? " amx_bf16" : "");
    snprintf(buf, n, "cpu: %s, isa %s (cpuid:%s), bf16 products: %s", c->brand[0] ? c->brand : "unknown", c->dnnl_isa,
             feats[0] ? feats : " none",
             c->bf16 == SX_BF16_NATIVE ? "yes (native)" : c->bf16 == SX_BF16_EMULATED ? "no (emulated)" : "no (unavailable)");
}
