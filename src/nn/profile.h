/* profile.h: SKELEX_PROFILE=1 counters (time and flops of top-level matrix
 * products by shape, time in attention), one set per product context
 * (gemm.h), so two models in two threads never share them. Every set ever
 * used is summed into one report on stderr at exit. */
#ifndef SKELEX_PROFILE_H
#define SKELEX_PROFILE_H

#define SX_PROF_SHAPES 64

typedef struct { int ta, tb, M, N, K; long calls; double s; } sx_prof_shape;

typedef struct sx_prof {
    double gemm_s, flops, att_s[2];   /* att_s: attention forward, backward */
    long calls;
    sx_prof_shape shapes[SX_PROF_SHAPES];
    int nshapes;
    struct sx_prof *next;             /* the registry of live sets */
} sx_prof;

/* 1 if SKELEX_PROFILE is set (read once). */
int  sx_prof_enabled(void);
/* Register p (zeroed) in the report; sx_prof_close folds it into the
 * total of closed sets and unregisters it. */
void sx_prof_open(sx_prof *p);
void sx_prof_close(sx_prof *p);
void sx_prof_gemm(sx_prof *p, int ta, int tb, int M, int N, int K, double s);
/* Forget everything counted so far, in every set (a bench's warm-up). */
void sx_prof_reset_all(void);

#endif
