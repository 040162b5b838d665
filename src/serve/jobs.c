/* jobs.c: see jobs.h. One mutex; workers wait on `work`, callers on
 * `done` (broadcast; waiters are few). */
#include "serve/jobs.h"
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

typedef struct jnode {
    void *task;
    int done, abandoned;
    struct jnode *next;
} jnode;

struct jb_pool {
    jb_config cfg;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    jnode *head, *tail;
    int queued, running, stop;
    int nthreads;
    pthread_t *th;
    void **state;
};

typedef struct { jb_pool *p; int i; } warg;

static void *worker(void *arg) {
    jb_pool *p = ((warg *)arg)->p;
    int i = ((warg *)arg)->i;
    free(arg);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stop) pthread_cond_wait(&p->work, &p->mu);
        if (!p->head) break;   /* stopping and nothing left */
        jnode *n = p->head;
        p->head = n->next;
        if (!p->head) p->tail = NULL;
        p->queued--;
        if (n->abandoned) {    /* its caller gave up before it started */
            p->cfg.task_free(n->task);
            free(n);
            continue;
        }
        p->running++;
        pthread_mutex_unlock(&p->mu);
        p->cfg.run(p->cfg.user, p->state[i], n->task);
        pthread_mutex_lock(&p->mu);
        p->running--;
        if (n->abandoned) {
            p->cfg.task_free(n->task);
            free(n);
        } else {
            n->done = 1;
            pthread_cond_broadcast(&p->done);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void stop_threads(jb_pool *p) {
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    /* queued tasks nobody waits for any more are freed by the workers */
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->th[i], NULL);
    p->nthreads = 0;
}

void jb_free(jb_pool *p) {
    if (!p) return;
    stop_threads(p);
    for (int i = 0; i < p->cfg.workers; i++)
        if (p->state[i]) p->cfg.fini(p->cfg.user, p->state[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    free(p->th);
    free(p->state);
    free(p);
}

int jb_new(const jb_config *cfg, jb_pool **out, sx_err *err) {
    *out = NULL;
    if (cfg->workers < 1 || cfg->queue < 0) return sx_fail(err, "workers must be >= 1 and the queue >= 0");
    jb_pool *p = calloc(1, sizeof *p);
    if (!p) return sx_fail(err, "out of memory");
    p->cfg = *cfg;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->done, &ca);
    pthread_condattr_destroy(&ca);
    p->th = calloc((size_t)cfg->workers, sizeof *p->th);
    p->state = calloc((size_t)cfg->workers, sizeof *p->state);
    if (!p->th || !p->state) {
        jb_free(p);
        return sx_fail(err, "out of memory");
    }
    for (int i = 0; i < cfg->workers; i++)
        if (cfg->init(cfg->user, i, &p->state[i], err) != 0) {
            jb_free(p);
            return -1;
        }
    for (int i = 0; i < cfg->workers; i++) {
        warg *a = malloc(sizeof *a);
        if (!a) {
            jb_free(p);
            return sx_fail(err, "out of memory");
        }
        a->p = p;
        a->i = i;
        if (pthread_create(&p->th[i], NULL, worker, a) != 0) {
            free(a);
            jb_free(p);
            return sx_fail(err, "cannot start worker thread %d", i);
        }
        p->nthreads++;
    }
    *out = p;
    return 0;
}

jb_status jb_submit_wait(jb_pool *p, void *task, double timeout_s) {
    jnode *n = calloc(1, sizeof *n);
    if (!n) return JB_FULL;
    n->task = task;
    pthread_mutex_lock(&p->mu);
    /* room: one per worker plus the queue */
    if (p->stop || p->queued + p->running >= p->cfg.workers + p->cfg.queue) {
        pthread_mutex_unlock(&p->mu);
        free(n);
        return JB_FULL;
    }
    if (p->tail) p->tail->next = n;
    else p->head = n;
    p->tail = n;
    p->queued++;
    pthread_cond_signal(&p->work);
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    double whole = (double)(long long)timeout_s;
    dl.tv_sec += (time_t)whole;
    dl.tv_nsec += (long)((timeout_s - whole) * 1e9);
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    while (!n->done && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&p->done, &p->mu, &dl);
    if (!n->done) {
        n->abandoned = 1;     /* the worker (or the queue) frees it */
        pthread_mutex_unlock(&p->mu);
        return JB_TIMEOUT;
    }
    pthread_mutex_unlock(&p->mu);
    free(n);
    return JB_DONE;
}

int jb_pending(jb_pool *p) {
    pthread_mutex_lock(&p->mu);
    int n = p->queued + p->running;
    pthread_mutex_unlock(&p->mu);
    return n;
}
