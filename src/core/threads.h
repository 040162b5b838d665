/* threads.h: the OpenMP thread count and pinning, once per process. */
#ifndef SKELEX_THREADS_H
#define SKELEX_THREADS_H

/* Bind each OpenMP thread to its own core (idempotent). Set threads <= 0 for
 * the default (OMP_NUM_THREADS or the number of cores). Also tunes malloc
 * for the products' packing buffers (see threads.c). */
void sx_threads_init(int threads);

#endif
