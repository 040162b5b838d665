/* comm.h: the processes of a data-parallel run, over MPI.
 *
 * `mpirun -np N ./skelex pretrain ...` starts N processes (ranks). A binary
 * built with MPI (HAVE_MPI: the Makefile sets it when `mpicc --showme` works)
 * joins them with MPI_Init; without MPI, or when the process was not started
 * by a launcher, it is one rank of one and every collective is a no-op, so the
 * single-process program needs nothing of MPI. A binary without MPI started
 * as one of several ranks refuses (dist_init fails) instead of running N
 * independent copies over the same run directory.
 *
 * Collectives return -1 with an sx_err message on failure (the communicator
 * is set to MPI_ERRORS_RETURN); a rank that dies makes mpirun end the others.
 * dist_comm counts the time and bytes spent in the gradient reductions. */
#ifndef SKELEX_DIST_COMM_H
#define SKELEX_DIST_COMM_H
#include "core/common.h"
#include <stddef.h>

#define DIST_BUCKET_FLOATS (1u << 22)  /* 16 MiB per MPI_Allreduce call by default */

typedef struct {
    int rank, size;       /* this process, the number of processes */
    int local_size;       /* processes on this node (from the launcher), >= 1 */
    int mpi;              /* MPI_Init was called by dist_init */
    double reduce_s;      /* seconds inside gradient reductions so far */
    double reduce_bytes;  /* bytes reduced so far */
} dist_comm;

/* One rank of one, without MPI. */
void dist_single(dist_comm *c);
/* Join the launcher's processes (or become a rank of one). */
int  dist_init(dist_comm *c, sx_err *err);
/* MPI_Finalize when dist_init called MPI_Init. */
void dist_finalize(dist_comm *c);
/* Whether this program was built with MPI. */
int  dist_has_mpi(void);

/* Sum n floats over all ranks, in place, in calls of at most bucket floats
 * (0: DIST_BUCKET_FLOATS). Every rank ends with the same sums. */
int dist_allreduce_sum(dist_comm *c, float *buf, size_t n, size_t bucket, sx_err *err);
/* Sum n doubles over all ranks, in place. */
int dist_allreduce_sum_d(dist_comm *c, double *buf, int n, sx_err *err);
/* Max of n ints over all ranks, in place. */
int dist_allreduce_max_i(dist_comm *c, int *buf, int n, sx_err *err);
/* Root's n floats to every rank. */
int dist_bcast(dist_comm *c, float *buf, size_t n, int root, sx_err *err);
/* ZeRO-1: every rank's shard [lo_r, hi_r) of the summed buf (dist_range):
 * reduce-scatter; afterwards buf[lo..hi) of this rank holds the sums, the rest
 * is undefined. */
int dist_reduce_scatter_sum(dist_comm *c, float *buf, size_t n, sx_err *err);
/* ZeRO-1: every rank's shard of buf (dist_range) to every rank (all-gather, in place). */
int dist_allgather(dist_comm *c, float *buf, size_t n, sx_err *err);
/* Every rank's shard of buf to root (gather, in place; the others' buf unchanged). */
int dist_gather(dist_comm *c, float *buf, size_t n, int root, sx_err *err);
int dist_barrier(dist_comm *c, sx_err *err);
/* The first rank whose flag is non-zero, or -1 when none is (collective). */
int dist_first_set(dist_comm *c, int flag, sx_err *err);

/* Pure arithmetic, the same on every rank. */
/* Rank r's share of a global batch of `global` items over `size` ranks:
 * offset and count, contiguous, the first global % size ranks one more. */
void dist_share(long global, int rank, int size, long *offset, long *count);
/* Rank r's range [lo, hi) of n floats (ZeRO-1 shards): dist_share of n. */
void dist_range(size_t n, int rank, int size, size_t *lo, size_t *hi);
/* Weight of a share of `count` items in a global batch of `global`: each
 * rank scales its mean-loss gradient by it before the sum, so the summed
 * gradient is the global batch's mean-loss gradient. */
static inline float dist_share_weight(long count, long global) { return (float)((double)count / (double)global); }

#endif
