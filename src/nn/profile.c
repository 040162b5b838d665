/* profile.c: see profile.h. The report is the one place this library
 * writes to stderr, and only when the user asked with SKELEX_PROFILE. */
#include "nn/profile.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static sx_prof *g_live;      /* open sets */
static sx_prof g_closed;     /* the sum of closed ones */
static atomic_int g_enabled = -1;

static void add_shape(sx_prof *p, const sx_prof_shape *s) {
    for (int i = 0; i < p->nshapes; i++) {
        sx_prof_shape *q = &p->shapes[i];
        if (q->ta == s->ta && q->tb == s->tb && q->M == s->M && q->N == s->N && q->K == s->K) {
            q->calls += s->calls;
            q->s += s->s;
            return;
        }
    }
    if (p->nshapes < SX_PROF_SHAPES) p->shapes[p->nshapes++] = *s;
}

static void merge(sx_prof *into, const sx_prof *p) {
    into->gemm_s += p->gemm_s;
    into->flops += p->flops;
    into->calls += p->calls;
    into->att_s[0] += p->att_s[0];
    into->att_s[1] += p->att_s[1];
    for (int i = 0; i < p->nshapes; i++) add_shape(into, &p->shapes[i]);
}

static int cmp_shape(const void *a, const void *b) {
    double x = ((const sx_prof_shape *)a)->s, y = ((const sx_prof_shape *)b)->s;
    return (x < y) - (x > y);
}

static void report(void) {
    sx_prof t;
    pthread_mutex_lock(&g_lock);
    t = g_closed;
    for (sx_prof *p = g_live; p; p = p->next) merge(&t, p);
    pthread_mutex_unlock(&g_lock);
    fprintf(stderr, "gemm profile: %ld top-level calls, %.2f s, %.1f GFLOP, %.1f GFLOP/s\n", t.calls, t.gemm_s,
            t.flops / 1e9, t.flops / 1e9 / (t.gemm_s > 0 ? t.gemm_s : 1));
    qsort(t.shapes, (size_t)t.nshapes, sizeof t.shapes[0], cmp_shape);
    for (int i = 0; i < t.nshapes && i < 12; i++) {
        sx_prof_shape *p = &t.shapes[i];
        fprintf(stderr, "  %c%c M=%d N=%d K=%d: %ld calls, %.2f s, %.1f GFLOP/s\n", p->ta ? 'T' : 'N', p->tb ? 'T' : 'N',
                p->M, p->N, p->K, p->calls, p->s, 2.0 * p->M * p->N * p->K * p->calls / p->s / 1e9);
    }
    fprintf(stderr, "attention profile: forward %.2f s, backward %.2f s\n", t.att_s[0], t.att_s[1]);
}

int sx_prof_enabled(void) {
    int e = atomic_load_explicit(&g_enabled, memory_order_relaxed);
    if (e >= 0) return e;   /* every call after the first: no lock */
    pthread_mutex_lock(&g_lock);
    if (g_enabled < 0) {
        g_enabled = getenv("SKELEX_PROFILE") != NULL;
        if (g_enabled) atexit(report);
    }
    e = g_enabled;
    pthread_mutex_unlock(&g_lock);
    return e;
}

void sx_prof_open(sx_prof *p) {
    memset(p, 0, sizeof *p);
    pthread_mutex_lock(&g_lock);
    p->next = g_live;
    g_live = p;
    pthread_mutex_unlock(&g_lock);
}

void sx_prof_close(sx_prof *p) {
    pthread_mutex_lock(&g_lock);
    for (sx_prof **q = &g_live; *q; q = &(*q)->next)
        if (*q == p) { *q = p->next; break; }
    merge(&g_closed, p);
    pthread_mutex_unlock(&g_lock);
}

void sx_prof_gemm(sx_prof *p, int ta, int tb, int M, int N, int K, double s) {
    p->gemm_s += s;
    p->flops += 2.0 * M * N * K;
    p->calls++;
    add_shape(p, &(sx_prof_shape){ta, tb, M, N, K, 1, s});
}

void sx_prof_reset_all(void) {
    pthread_mutex_lock(&g_lock);
    sx_prof *next;
    for (sx_prof *p = g_live; p; p = next) { next = p->next; memset(p, 0, sizeof *p); p->next = next; }
    sx_prof *live = g_live;
    memset(&g_closed, 0, sizeof g_closed);
    g_live = live;
    pthread_mutex_unlock(&g_lock);
}
