/* alloc_hook.h: count heap allocations in the sanitized test build, through
 * ASan's malloc/free hooks (sanitizer/allocator_interface.h). Between
 * alloc_hook_begin() and alloc_hook_end() every malloc/calloc/realloc/
 * posix_memalign of any thread is counted, with the largest size seen.
 * Rule for oneDNN: allocations made while a matrix product runs inside
 * gemm() (gemm_in_flight(): oneDNN's own packing buffers, which it takes
 * from the heap on each call and we cannot lend it) are counted apart, in
 * dnnl; everything else is ours and counts in n. */
#ifndef SKELEX_ALLOC_HOOK_H
#define SKELEX_ALLOC_HOOK_H
#include <stddef.h>

typedef struct { long n, dnnl; size_t max_size; } alloc_count;

/* 1 if hooks are available (ASan build), else 0 (tests then skip). */
int alloc_hook_available(void);
void alloc_hook_begin(void);
alloc_count alloc_hook_end(void);

#endif
