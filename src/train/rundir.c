/* rundir.c: run directory lock, crash leftovers and log.csv; see rundir.h. */
#include "train/rundir.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int rundir_lock(const char *run, sx_err *err) {
    char p[4200];
    snprintf(p, sizeof p, "%s/.lock", run);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    if (fd < 0) return sx_fail(err, "%s: cannot open the run lock (%s)", p, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        close(fd);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        if (e == EWOULDBLOCK)
            return sx_fail(err, "%s is in use by another skelex process (pid %s); wait for it to end, or use another --out",
                           run, pid[0] ? pid : "unknown");
        return sx_fail(err, "%s: cannot lock (%s)", p, strerror(e));
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) || pwrite(fd, pid, (size_t)n, 0) != n) { /* the pid is a courtesy; the lock holds */ }
    return fd;
}

void rundir_unlock(int fd) {
    if (fd >= 0) close(fd);
}

void rundir_remove_tree(const char *dir) {
    struct stat st;
    if (lstat(dir, &st)) return;
    if (!S_ISDIR(st.st_mode)) { unlink(dir); return; }
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[4400];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

void rundir_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) { fsync(fd); close(fd); }
}

int rundir_clean(const char *run) {
    char link[4200], target[4200] = "", p[4400];
    snprintf(link, sizeof link, "%s/checkpoint", run);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n > 0 ? n : 0] = 0;
    DIR *d = opendir(run);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        int tmp = len > 4 && !strcmp(e->d_name + len - 4, ".tmp");
        int orphan = !strncmp(e->d_name, "checkpoint-", 11) && strcmp(e->d_name, target);
        if (!tmp && !orphan) continue;
        snprintf(p, sizeof p, "%s/%s", run, e->d_name);
        rundir_remove_tree(p);
        removed++;
        fprintf(stderr, "pretrain: removed %s (%s)\n", p,
                tmp ? "left by an interrupted save" : "an orphaned checkpoint: RUN/checkpoint does not point to it");
    }
    closedir(d);
    return removed;
}

/* ------------------------------------------------------------------ log */

static const char LOG_HEADER[] = "step,epoch,loss,lr,img_per_s\n";

/* A whole row "step,epoch,loss,lr,ips\n": 1 and its fields, else 0. */
static int parse_row(const char *s, size_t n, long *step, double *loss, double *lr) {
    if (n == 0 || s[n - 1] != '\n') return 0;
    char *end;
    double f[4];
    errno = 0;
    *step = strtol(s, &end, 10);
    if (errno || end == s || *end != ',' || *step < 1) return 0;
    for (int k = 0; k < 4; k++) {
        const char *t = end + 1;
        f[k] = strtod(t, &end);
        if (end == t || *end != (k < 3 ? ',' : '\n')) return 0;
    }
    *loss = f[1];
    *lr = f[2];
    return 1;
}

int runlog_reload(const char *path, long upto, void (*row)(void *, long, double, double), void *ctx, int *dropped,
                  sx_err *err) {
    *dropped = 0;
    FILE *in = sx_fopen_input(path, NULL, NULL);
    if (!in) return 0;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = fopen(tmp, "wb");
    if (!out) { fclose(in); return sx_fail(err, "%s: cannot write (%s)", tmp, strerror(errno)); }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long last = 0;
    int ok = fputs(LOG_HEADER, out) >= 0;
    while ((n = getline(&line, &cap, in)) > 0) {
        long step;
        double loss, lr;
        if (!strcmp(line, LOG_HEADER)) continue;
        if (!parse_row(line, (size_t)n, &step, &loss, &lr) || step <= last) { (*dropped)++; continue; }
        if (step > upto) continue;
        last = step;
        if (row) row(ctx, step, loss, lr);
        ok = ok && fwrite(line, 1, (size_t)n, out) == (size_t)n;
    }
    free(line);
    fclose(in);
    ok = fflush(out) == 0 && fsync(fileno(out)) == 0 && ok;
    ok = fclose(out) == 0 && ok;
    if (!ok || rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        return sx_fail(err, "%s: cannot rewrite (%s)", path, strerror(e));
    }
    return 0;
}

int runlog_open(run_log *l, const char *path, sx_err *err) {
    *l = (run_log){.fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)};
    if (l->fd < 0) return sx_fail(err, "%s: cannot write (%s)", path, strerror(errno));
    struct stat st;
    if (fstat(l->fd, &st) == 0 && st.st_size == 0) {
        l->cap = 4096;
        l->buf = sx_malloc(l->cap);
        memcpy(l->buf, LOG_HEADER, sizeof LOG_HEADER - 1);
        l->used = sizeof LOG_HEADER - 1;
    }
    return 0;
}

void runlog_row(run_log *l, long step, double epoch, double loss, double lr, double ips) {
    char row[256];
    int n = snprintf(row, sizeof row, "%ld,%.4f,%.6f,%.6g,%.3f\n", step, epoch, loss, lr, ips);
    if (n < 0) return;
    if ((size_t)n >= sizeof row) n = (int)sizeof row - 1;
    if (l->used + (size_t)n > l->cap) {
        l->cap = l->cap ? 2 * l->cap + (size_t)n : 4096;
        l->buf = realloc(l->buf, l->cap);
        if (!l->buf) { fprintf(stderr, "skelex: out of memory\n"); exit(3); }
    }
    memcpy(l->buf + l->used, row, (size_t)n);
    l->used += (size_t)n;
}

int runlog_flush(run_log *l, int sync, sx_err *err) {
    size_t done = 0;
    while (done < l->used) {
        ssize_t w = write(l->fd, l->buf + done, l->used - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { l->used = 0; return sx_fail(err, "log.csv: write failed (%s)", w < 0 ? strerror(errno) : "no space"); }
        done += (size_t)w;
    }
    l->used = 0;
    if (sync && fdatasync(l->fd)) return sx_fail(err, "log.csv: fsync failed (%s)", strerror(errno));
    return 0;
}

void runlog_close(run_log *l) {
    if (l->fd >= 0) close(l->fd);
    free(l->buf);
    *l = (run_log){.fd = -1};
}
