/* jobs.h: a bounded worker pool. N threads, each with its own state (a
 * skx_ctx per model, made by init), take tasks from a bounded queue; a
 * caller submits a task and waits for it up to a time limit. Thread-safe. */
#ifndef SKELEX_SERVE_JOBS_H
#define SKELEX_SERVE_JOBS_H
#include "core/common.h"

typedef struct jb_pool jb_pool;

typedef struct {
    int workers;          /* threads, >= 1 */
    int queue;            /* tasks waiting beyond the running ones, >= 0 */
    void *user;
    /* Make worker i's state (0 or -1 with err); free it. */
    int  (*init)(void *user, int i, void **state, sx_err *err);
    void (*fini)(void *user, void *state);
    /* Run one task with a worker's state. */
    void (*run)(void *user, void *state, void *task);
    /* Free a task whose caller stopped waiting (time limit). */
    void (*task_free)(void *task);
} jb_config;

/* Start the workers (every init has succeeded when this returns 0). */
int jb_new(const jb_config *cfg, jb_pool **out, sx_err *err);

typedef enum { JB_DONE = 0, JB_FULL = 1, JB_TIMEOUT = 2 } jb_status;

/* Queue task and wait for it up to timeout_s seconds. JB_DONE: it ran, the
 * caller owns it again. JB_FULL: every worker busy and the queue full;
 * nothing was queued, the caller keeps the task. JB_TIMEOUT: still queued
 * or running; the pool now owns it and frees it with task_free. */
jb_status jb_submit_wait(jb_pool *p, void *task, double timeout_s);

/* Tasks queued or running now. */
int jb_pending(jb_pool *p);

/* Stop: workers finish the task in hand, queued tasks that nobody waits
 * for are freed; then join and free. Call when no caller is waiting. */
void jb_free(jb_pool *p);

#endif
