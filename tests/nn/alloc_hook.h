/* alloc_hook.h: count heap allocations in the sanitized test build, through
 * ASan's malloc/free hooks (sanitizer/allocator_interface.h). Between
 * alloc_hook_begin() and alloc_hook_end() every malloc/calloc/realloc/
 * posix_memalign of any thread is counted, with the largest size seen.
 *
 * The rule for allocations that are not ours: each allocation's caller is
 * found from its stack (the first frame outside libasan and libstdc++).
 * When that caller is in libdnnl (oneDNN's packing buffers, which sgemm
 * takes from the heap on each call and has no API to lend) or in libgomp
 * (the OpenMP runtime's team structures at the start of some parallel
 * regions), it is counted apart, in runtime. Everything else, our code
 * included, counts in n. */
#ifndef SKELEX_ALLOC_HOOK_H
#define SKELEX_ALLOC_HOOK_H
#include <stddef.h>

typedef struct { long n, runtime; size_t max_size; } alloc_count;

/* 1 if hooks are available (ASan build), else 0 (tests then skip). */
int alloc_hook_available(void);
void alloc_hook_begin(void);
alloc_count alloc_hook_end(void);

#endif
