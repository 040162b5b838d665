/* alloc_hook.c: see alloc_hook.h. */
#include "alloc_hook.h"
#include <dlfcn.h>
#include <execinfo.h>
#include <stdatomic.h>
#include <string.h>

static atomic_int counting;
static atomic_long n_ours, n_runtime;
static atomic_size_t max_size;
static _Thread_local int in_hook;   /* backtrace/dladdr may allocate: not counted */

static const char *module(void *pc) {
    Dl_info d;
    return dladdr(pc, &d) && d.dli_fname ? d.dli_fname : "";
}

/* 1 if the allocation's caller is the OpenMP runtime or oneDNN. The stack
 * reads: backtrace's interceptor (libasan), this hook (our binary), the
 * allocator (libasan), then whoever allocated (through libstdc++'s
 * operator new, possibly). */
static int runtime_caller(void) {
    void *f[32];
    int n = backtrace(f, 32), i = 1;
    while (i < n && !strstr(module(f[i]), "libasan")) i++;   /* the hook's own frames */
    while (i < n && (strstr(module(f[i]), "libasan") || strstr(module(f[i]), "libstdc++"))) i++;
    if (i >= n) return 0;
    const char *m = module(f[i]);
    return strstr(m, "libgomp") != NULL || strstr(m, "libdnnl") != NULL;
}

#if defined(__SANITIZE_ADDRESS__)
#if __has_include(<sanitizer/allocator_interface.h>)
#include <sanitizer/allocator_interface.h>
#else  /* GCC ships libasan without the header: the declaration, as in compiler-rt */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
#endif

static void on_malloc(const volatile void *p, size_t size) {
    (void)p;
    if (!atomic_load(&counting) || in_hook) return;
    in_hook = 1;
    if (runtime_caller()) atomic_fetch_add(&n_runtime, 1);
    else {
        atomic_fetch_add(&n_ours, 1);
        size_t m = atomic_load(&max_size);
        while (size > m && !atomic_compare_exchange_weak(&max_size, &m, size)) {}
    }
    in_hook = 0;
}

static void on_free(const volatile void *p) { (void)p; }

static int installed;
int alloc_hook_available(void) {
    if (!installed) {
        void *f[4];
        backtrace(f, 4);   /* the unwinder loads on first use: not during a count */
        installed = __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free) ? 1 : -1;
    }
    return installed > 0;
}
#else
int alloc_hook_available(void) { (void)runtime_caller; return 0; }
#endif

void alloc_hook_begin(void) {
    atomic_store(&n_ours, 0);
    atomic_store(&n_runtime, 0);
    atomic_store(&max_size, 0);
    atomic_store(&counting, 1);
}

alloc_count alloc_hook_end(void) {
    atomic_store(&counting, 0);
    return (alloc_count){atomic_load(&n_ours), atomic_load(&n_runtime), atomic_load(&max_size)};
}
