/* rundir.h: the run directory's housekeeping: its lock, the cleanup of what
 * a crash leaves behind, and log.csv (whole rows, synced at checkpoints,
 * reloaded on resume without limit). */
#ifndef SKELEX_RUNDIR_H
#define SKELEX_RUNDIR_H
#include "core/common.h"

/* Take RUN/.lock (flock, exclusive, never waiting) and write our pid in it.
 * Returns the open fd (hold it for the run's life), or -1 with
 * "RUN is in use by another skelex process (pid N)". */
int rundir_lock(const char *run, sx_err *err);
void rundir_unlock(int fd);

/* Remove dir and the files in it (checkpoints are flat). A symbolic link or
 * a file is unlinked, never followed. */
void rundir_remove_tree(const char *dir);

/* Remove what interrupted saves leave: "*.tmp" entries, and checkpoint-N/
 * folders that RUN/checkpoint does not point to. Each removal is noted on
 * stderr ("pretrain: removed ..."). Returns the number removed. */
int rundir_clean(const char *run);

/* fsync a directory (after renames in it); errors are ignored. */
void rundir_fsync_dir(const char *dir);

/* log.csv: rows are kept in memory and written with one write() each flush,
 * so a kill never leaves part of a row glued to the next. */
typedef struct {
    int fd;
    char *buf;
    size_t used, cap;
} run_log;

/* Rewrite path keeping its header and its whole rows of step <= upto (in
 * step order, no duplicates), calling row(ctx, step, loss, lr) for each;
 * torn or unreadable lines are dropped and counted in *dropped. The file is
 * replaced atomically. A missing file is no error. */
int runlog_reload(const char *path, long upto, void (*row)(void *, long, double, double), void *ctx, int *dropped,
                  sx_err *err);
/* Open path to append (header written when it is empty). */
int runlog_open(run_log *l, const char *path, sx_err *err);
void runlog_row(run_log *l, long step, double epoch, double loss, double lr, double ips);
/* Write the buffered rows; with sync, fsync the file too. */
int runlog_flush(run_log *l, int sync, sx_err *err);
void runlog_close(run_log *l);

#endif
