/* dist_allreduce.c: MPI_Allreduce (float sum, in place) time per size, the
 * figure docs/scaling.md projects from. Built and run by dist_allreduce.sh. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const int mb[] = {1, 4, 16, 64, 256};
    if (rank == 0) printf("ranks %d\n%8s %10s %10s %12s\n", size, "MB", "ms", "ms/MB", "busbw GB/s");
    for (size_t k = 0; k < sizeof mb / sizeof *mb; k++) {
        size_t n = (size_t)mb[k] << 18;
        float *b = malloc(n * sizeof *b);
        for (size_t i = 0; i < n; i++) b[i] = 1.0f;
        int reps = mb[k] >= 64 ? 5 : 20;
        MPI_Allreduce(MPI_IN_PLACE, b, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);  /* warm-up */
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (int r = 0; r < reps; r++) MPI_Allreduce(MPI_IN_PLACE, b, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double ms = (MPI_Wtime() - t0) / reps * 1e3;
        /* ring all-reduce moves 2 (N-1)/N of the buffer per rank */
        double busbw = (double)n * 4 * 2.0 * (size - 1) / size / (ms * 1e-3) / 1e9;
        if (rank == 0) printf("%8d %10.2f %10.3f %12.2f\n", mb[k], ms, ms / mb[k], busbw);
        free(b);
    }
    MPI_Finalize();
    return 0;
}
