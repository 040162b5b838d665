/* alloc_hook.c: see alloc_hook.h. */
#include "alloc_hook.h"
#include "nn/gemm.h"
#include <stdatomic.h>

static atomic_int counting;
static atomic_long n_ours, n_dnnl;
static atomic_size_t max_size;

#if defined(__SANITIZE_ADDRESS__)
#if __has_include(<sanitizer/allocator_interface.h>)
#include <sanitizer/allocator_interface.h>
#else  /* GCC ships libasan without the header: the declaration, as in compiler-rt */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
#endif

static void on_malloc(const volatile void *p, size_t size) {
    (void)p;
    if (!atomic_load(&counting)) return;
    if (gemm_in_flight()) { atomic_fetch_add(&n_dnnl, 1); return; }
    atomic_fetch_add(&n_ours, 1);
    size_t m = atomic_load(&max_size);
    while (size > m && !atomic_compare_exchange_weak(&max_size, &m, size)) {}
}

static void on_free(const volatile void *p) { (void)p; }

static int installed;
int alloc_hook_available(void) {
    if (!installed) installed = __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free) ? 1 : -1;
    return installed > 0;
}
#else
int alloc_hook_available(void) { return 0; }
#endif

void alloc_hook_begin(void) {
    atomic_store(&n_ours, 0);
    atomic_store(&n_dnnl, 0);
    atomic_store(&max_size, 0);
    atomic_store(&counting, 1);
}

alloc_count alloc_hook_end(void) {
    atomic_store(&counting, 0);
    return (alloc_count){atomic_load(&n_ours), atomic_load(&n_dnnl), atomic_load(&max_size)};
}
