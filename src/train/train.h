/* train.h: MAE pretraining: the loop, the learning-rate schedule, the run
 * directory (checkpoints, resume state, log, plots, panels) and progress.
 *
 * Run directory layout:
 *   RUN/run.json                 the options, image count and thread/split plan
 *                                (a resumed run reads them back; train/runstate.h)
 *   RUN/.lock                    flock'ed by the running process (its pid inside)
 *   RUN/checkpoint -> checkpoint-<step>/   HF config.json + model.safetensors
 *                                + training_state.bin (optimizer moments, step,
 *                                data position); the link is swapped atomically
 *   RUN/log.csv, RUN/loss.svg    step, epoch, loss, lr, img/s; the loss curve
 *   RUN/panels/step_<n>.png      reconstructions of a few fixed images
 *   RUN/skipped.txt              files that could not be decoded
 * A data-parallel run (o->comm with several ranks) has the same layout and
 * the same global batch, lr and schedule: rank 0 writes every file (run.json
 * records world_size), each rank trains on its share of every batch. */
#ifndef SKELEX_TRAIN_H
#define SKELEX_TRAIN_H
#include "core/common.h"
#include "dist/comm.h"

#define TRAIN_MAX_DATA 64

typedef struct {
    const char *data[TRAIN_MAX_DATA];
    int n_data;
    const char *config;      /* preset or config.json for a fresh model */
    const char *init;        /* start from this HF ViTMAE checkpoint instead */
    const char *out;         /* run directory */
    const char *panel_images;/* images for the panels (held aside); NULL: from the data */
    int resume;              /* continue RUN exactly where it stopped */
    int batch, accum;
    long steps;              /* optimizer steps; 0: from epochs */
    double epochs;
    double blr, lr, min_lr;  /* lr = blr * batch * accum / 256 unless lr > 0 */
    long warmup_steps;       /* < 0: 5 % of the run */
    double weight_decay, beta1, beta2, clip;
    double mask_ratio;       /* < 0: the model's */
    int norm_pix_loss;       /* < 0: the model's */
    int bf16, threads, loader_threads;
    long seed;
    long save_every, log_every, panel_every;
    long stop_after;         /* > 0: save and stop after this many steps (resume later) */
    double crop_min, crop_max, ratio_min, ratio_max, flip_prob;
    int augment;
    dist_comm *comm;         /* the ranks of a data-parallel run (dist/comm.h); NULL: one process */
    int zero1;               /* shard the AdamW update and state over the ranks (dist/dp.h) */
    long bucket_floats;
    int shuffle_buffer;      /* --data DIR_OF_SHARDS: shuffle buffer samples per rank (0: 1024) */      /* floats per gradient all-reduce call (0: DIST_BUCKET_FLOATS) */
    int stopped_by;          /* out: the signal (SIGINT, SIGTERM) that stopped the run after saving, else 0 */
} train_opts;

void train_opts_default(train_opts *o);
/* Returns 0 on success, or on a clean stop after saving (SIGINT/SIGTERM:
 * o->stopped_by says which). A run directory in use by another process, or
 * data that can no longer be read mid-run (a checkpoint is saved first), is
 * -1 with the reason. */
int train_run(train_opts *o, sx_err *err);

/* The schedule: linear warmup from 0, then half-cosine to min_lr. */
double train_lr_at(long step, long total, long warmup, double lr, double min_lr);

#endif
