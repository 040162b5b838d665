/* comm.c: MPI collectives for data-parallel training, with a rank-of-one
 * fallback when the program is built without MPI or not launched by mpirun. */
#include "dist/comm.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#ifdef HAVE_MPI
#include <mpi.h>
#endif

void dist_share(long global, int rank, int size, long *offset, long *count) {
    long base = global / size, extra = global % size;
    *count = base + (rank < extra ? 1 : 0);
    *offset = rank * base + (rank < extra ? rank : extra);
}

void dist_range(size_t n, int rank, int size, size_t *lo, size_t *hi) {
    size_t base = n / (size_t)size, extra = n % (size_t)size, r = (size_t)rank;
    *lo = r * base + (r < extra ? r : extra);
    *hi = *lo + base + (r < extra ? 1 : 0);
}

void dist_single(dist_comm *c) { *c = (dist_comm){.rank = 0, .size = 1, .local_size = 1}; }

int dist_has_mpi(void) {
#ifdef HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

/* The world size the launcher announced (OpenMPI, MPICH/Hydra, Slurm's PMI), or 0. */
static long launcher_size(const char **which) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        char *end;
        if (!v || !*v) continue;
        long n = strtol(v, &end, 10);
        if (*end || n < 1 || n > 1 << 20) continue;
        *which = vars[i];
        return n;
    }
    return 0;
}

static int local_size_env(void) {
    const char *v = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!v) v = getenv("MPI_LOCALNRANKS");
    char *end;
    long n = v && *v ? strtol(v, &end, 10) : 1;
    return v && *v && !*end && n >= 1 && n <= 1 << 16 ? (int)n : 1;
}

#ifdef HAVE_MPI
static int mpi_fail(int code, sx_err *err, const char *what) {
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(code, msg, &len);
    return sx_fail(err, "%s failed: %s (another rank has probably stopped)", what, msg);
}
#define MPI_CHECK(call, what) do { int rc_ = (call); if (rc_ != MPI_SUCCESS) return mpi_fail(rc_, err, what); } while (0)
#endif

int dist_init(dist_comm *c, sx_err *err) {
    dist_single(c);
    const char *which = NULL;
    long announced = launcher_size(&which);
#ifdef HAVE_MPI
    if (announced < 1) return 0;  /* not launched by mpirun: a plain single process */
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return sx_fail(err, "MPI_Init failed (%s=%ld)", which, announced);
    c->mpi = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    c->local_size = local_size_env();
    return 0;
#else
    if (announced > 1)
        return sx_fail(err, "started as one of %ld processes (%s), but this skelex was built without MPI: rebuild "
                       "with libopenmpi-dev installed (make; see docs/scale-out.md)", announced, which);
    c->local_size = local_size_env();
    return 0;
#endif
}

void dist_finalize(dist_comm *c) {
#ifdef HAVE_MPI
    if (c->mpi) MPI_Finalize();
#endif
    c->mpi = 0;
}

/* Time and bytes of a gradient reduction that started at t0. */
static int account(dist_comm *c, double t0, size_t n) {
    c->reduce_s += sx_now() - t0;
    c->reduce_bytes += (double)n * sizeof(float);
    return 0;
}

int dist_allreduce_sum(dist_comm *c, float *buf, size_t n, size_t bucket, sx_err *err) {
    if (c->size == 1) return 0;
    if (bucket == 0 || bucket > (size_t)INT_MAX) bucket = DIST_BUCKET_FLOATS;
    double t0 = sx_now();
#ifdef HAVE_MPI
    for (size_t off = 0; off < n; off += bucket) {
        int cnt = (int)(n - off < bucket ? n - off : bucket);
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "gradient all-reduce");
    }
#else
    (void)buf; (void)err;
#endif
    return account(c, t0, n);
}

/* A small all-reduce: sums of doubles or maxima of ints, in place. */
enum { SMALL_SUM_D, SMALL_MAX_I };
static int small_allreduce(dist_comm *c, void *buf, int n, int kind, sx_err *err) {
    if (c->size == 1) return 0;
#ifdef HAVE_MPI
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf, n, kind == SMALL_SUM_D ? MPI_DOUBLE : MPI_INT,
                            kind == SMALL_SUM_D ? MPI_SUM : MPI_MAX, MPI_COMM_WORLD), "all-reduce");
#else
    (void)buf; (void)n; (void)kind; (void)err;
#endif
    return 0;
}

int dist_allreduce_sum_d(dist_comm *c, double *buf, int n, sx_err *err) { return small_allreduce(c, buf, n, SMALL_SUM_D, err); }
int dist_allreduce_max_i(dist_comm *c, int *buf, int n, sx_err *err) { return small_allreduce(c, buf, n, SMALL_MAX_I, err); }

int dist_bcast(dist_comm *c, float *buf, size_t n, int root, sx_err *err) {
    if (c->size == 1) return 0;
#ifdef HAVE_MPI
    for (size_t off = 0; off < n; off += DIST_BUCKET_FLOATS) {
        int cnt = (int)(n - off < DIST_BUCKET_FLOATS ? n - off : DIST_BUCKET_FLOATS);
        MPI_CHECK(MPI_Bcast(buf + off, cnt, MPI_FLOAT, root, MPI_COMM_WORLD), "broadcast");
    }
#else
    (void)buf; (void)n; (void)root; (void)err;
#endif
    return 0;
}

#ifdef HAVE_MPI
/* Counts and displacements of every rank's shard (dist_range); each shard must fit an int. */
static int shard_layout(const dist_comm *c, size_t n, int **counts, int **displs, sx_err *err) {
    *counts = sx_malloc(sizeof(int) * (size_t)c->size);
    *displs = sx_malloc(sizeof(int) * (size_t)c->size);
    for (int r = 0; r < c->size; r++) {
        size_t lo, hi;
        dist_range(n, r, c->size, &lo, &hi);
        if (hi > (size_t)INT_MAX) {
            free(*counts); free(*displs);
            return sx_fail(err, "ZeRO-1: %zu floats is too many for one sharded call (limit %d)", n, INT_MAX);
        }
        (*counts)[r] = (int)(hi - lo);
        (*displs)[r] = (int)lo;
    }
    return 0;
}
#endif

int dist_reduce_scatter_sum(dist_comm *c, float *buf, size_t n, sx_err *err) {
    if (c->size == 1) return 0;
    double t0 = sx_now();
#ifdef HAVE_MPI
    int *counts, *displs;
    if (shard_layout(c, n, &counts, &displs, err)) return -1;
    /* In place: the result lands at the start of buf, so move it to the shard. */
    int rc = MPI_Reduce_scatter(MPI_IN_PLACE, buf, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    if (rc == MPI_SUCCESS && displs[c->rank]) memmove(buf + displs[c->rank], buf, sizeof(float) * (size_t)counts[c->rank]);
    free(counts); free(displs);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, err, "gradient reduce-scatter");
#else
    (void)buf; (void)err;
#endif
    return account(c, t0, n);
}

int dist_allgather(dist_comm *c, float *buf, size_t n, sx_err *err) {
    if (c->size == 1) return 0;
    double t0 = sx_now();
#ifdef HAVE_MPI
    int *counts, *displs;
    if (shard_layout(c, n, &counts, &displs, err)) return -1;
    int rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
    free(counts); free(displs);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, err, "parameter all-gather");
#else
    (void)buf; (void)n; (void)err;
#endif
    c->reduce_s += sx_now() - t0;
    return 0;
}

int dist_gather(dist_comm *c, float *buf, size_t n, int root, sx_err *err) {
    if (c->size == 1) return 0;
#ifdef HAVE_MPI
    int *counts, *displs;
    if (shard_layout(c, n, &counts, &displs, err)) return -1;
    int rc = c->rank == root
                 ? MPI_Gatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_FLOAT, root, MPI_COMM_WORLD)
                 : MPI_Gatherv(buf + displs[c->rank], counts[c->rank], MPI_FLOAT, NULL, NULL, NULL, MPI_FLOAT, root,
                               MPI_COMM_WORLD);
    free(counts); free(displs);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, err, "optimizer-state gather");
#else
    (void)buf; (void)n; (void)root; (void)err;
#endif
    return 0;
}

int dist_barrier(dist_comm *c, sx_err *err) {
    if (c->size == 1) return 0;
#ifdef HAVE_MPI
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD), "barrier");
#else
    (void)err;
#endif
    return 0;
}

int dist_first_set(dist_comm *c, int flag, sx_err *err) {
    /* max of (size - rank) over the ranks whose flag is set picks the lowest such rank */
    int v = flag ? c->size - c->rank : 0;
    if (dist_allreduce_max_i(c, &v, 1, err)) return -2;
    return v ? c->size - v : -1;
}
