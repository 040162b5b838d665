/* cmd_pretrain.c: `skelex pretrain`: options -> train_run. */
#include "cli/cli.h"
#include "cli/precision_args.h"
#include "train/train.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: skelex pretrain --data PATH [--data PATH ...] --out RUN [options]\n"
    "       skelex pretrain --resume --out RUN [--steps N] [--threads T]\n"
    "\n"
    "Self-supervised MAE pretraining on radiographs. Each PATH is a directory\n"
    "(scanned recursively for PNG and JPEG), a text file listing image paths, or\n"
    "one directory of tar shards written by `skelex shard`.\n"
    "\n"
    "model\n"
    "  --config X         preset tiny|small|base|large|huge or config.json (default tiny)\n"
    "  --init DIR         start from an HF ViTMAE checkpoint (e.g. facebook/vit-mae-large)\n"
    "  --mask-ratio R     override the model's mask ratio (default: the model's, 0.75)\n"
    "  --norm-pix-loss 0|1  override the model's norm_pix_loss\n"
    "schedule\n"
    "  --steps N          optimizer steps (default: from --epochs)\n"
    "  --epochs E         passes over the data (default 1)\n"
    "  --batch B          images per micro-batch (default 32)\n"
    "  --accum K          micro-batches per optimizer step (default 1)\n"
    "  --blr X            base lr; lr = blr * batch * accum / 256 (default 1.5e-4)\n"
    "  --lr X             absolute peak lr (overrides --blr)\n"
    "  --min-lr X         final lr of the cosine decay (default 0)\n"
    "  --warmup-steps N   linear warmup (default 5%% of the steps)\n"
    "  --weight-decay X   AdamW decay on weight matrices (default 0.05); betas 0.9, 0.95\n"
    "  --clip X           gradient-norm clipping (default 0: off)\n"
    "augmentation\n"
    "  --no-augment       plain resize instead of RandomResizedCrop + flip\n"
    "  --crop-scale A,B   RandomResizedCrop area range (default 0.2,1.0)\n"
    "  --crop-ratio A,B   aspect range (default 0.75,1.3333)\n"
    "  --flip P           horizontal flip probability (default 0.5)\n"
    "run\n"
    "  --out RUN          run directory (checkpoint/, log.csv, loss.svg, panels/)\n"
    "  --resume           continue RUN exactly where it stopped (options come from RUN/run.json;\n"
    "                     --steps may extend the run)\n"
    "  --save-every N     checkpoint every N steps (default 500, and at the end)\n"
    "  --panel-every N    reconstruction panel every N steps (default 500)\n"
    "  --panel-images P   images for the panels, e.g. held-aside ones (default: 4 from --data)\n"
    "  --log-every N      log line every N steps (default 10)\n"
    "  --stop-after N     run N steps, save, and stop (continue later with --resume)\n"
    "  --seed S           seed for init, data order, augmentation and masks (default 0)\n"
    "  --threads T        compute threads (default: all cores); each runs a share of\n"
    "                     the batch (up to 4 shares; SKELEX_SPLIT=0: the whole batch\n"
    "                     at once, every product on all threads)\n"
    "  --loader-threads T background decode threads (default 2)\n"
    CLI_PRECISION_HELP
    "data-parallel (mpirun -np N ./skelex pretrain ...; see docs/scale-out.md)\n"
    "                     each rank trains on batch/N images of every batch; rank 0\n"
    "                     writes RUN; default threads per rank: cores / ranks per node\n"
    "  --zero1            shard the AdamW update over the ranks (reduce-scatter,\n"
    "                     local step, all-gather; ZeRO-1); not with --clip\n"
    "  --bucket-mb M      gradient all-reduce bucket size (default 16)\n"
    "shards (--data DIR written by `skelex shard`: streamed, no file opened per image)\n"
    "  --shuffle-buffer K samples mixed per rank (default 1024); each rank reads its\n"
    "                     own shards (at least one shard per rank)\n"
    "\n"
    "Ctrl-C (SIGINT) or SIGTERM stops after the current step and saves a checkpoint.\n"
    "One process at a time per RUN (RUN/.lock); --resume removes the folders an\n"
    "interrupted save left (checkpoint-N/ not linked, *.tmp) and continues log.csv.\n"
    "If the data cannot be read any more mid-run, a checkpoint is saved and the run\n"
    "stops (status 1); a resumed run whose data lost or gained files says how many\n"
    "and continues (no longer bit-exact).\n"
    "\n"
    "exit status: 0 finished (or --stop-after reached, saved), 1 failure, 2 usage,\n"
    "  130 stopped by SIGINT, 143 stopped by SIGTERM (both after saving)\n";

static void parse_pair(const char *opt, const char *s, double *a, double *b) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    char *comma = strchr(buf, ',');
    if (!comma) { fprintf(stderr, "skelex pretrain: %s expects A,B\n", opt); exit(2); }
    *comma = 0;
    *a = cli_double(opt, buf, 1e-3, 100);
    *b = cli_double(opt, comma + 1, 1e-3, 100);
    if (*a > *b) { fprintf(stderr, "skelex pretrain: %s expects A,B with A <= B, got '%s'\n", opt, s); exit(2); }
}

int cmd_pretrain(int argc, char **argv) {
    train_opts o;
    train_opts_default(&o);
    const char *precision = "auto";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) { fputs(HELP, stdout); return 0; }
        else if (!strcmp(a, "--data")) {
            if (o.n_data == TRAIN_MAX_DATA) return cli_usage_error("pretrain", "at most %d --data", TRAIN_MAX_DATA);
            o.data[o.n_data++] = cli_value(argc, argv, &i);
        }
        else if (!strcmp(a, "--config")) o.config = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--init")) o.init = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--out")) o.out = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--resume")) o.resume = 1;
        else if (!strcmp(a, "--panel-images")) o.panel_images = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--steps")) o.steps = cli_long(a, cli_value(argc, argv, &i), 1, 1L << 40);
        else if (!strcmp(a, "--epochs")) o.epochs = cli_double(a, cli_value(argc, argv, &i), 1e-6, 1e6);
        else if (!strcmp(a, "--batch")) o.batch = (int)cli_long(a, cli_value(argc, argv, &i), 1, 65536);
        else if (!strcmp(a, "--accum")) o.accum = (int)cli_long(a, cli_value(argc, argv, &i), 1, 65536);
        else if (!strcmp(a, "--blr")) o.blr = cli_double(a, cli_value(argc, argv, &i), 0, 10);
        else if (!strcmp(a, "--lr")) o.lr = cli_double(a, cli_value(argc, argv, &i), 0, 10);
        else if (!strcmp(a, "--min-lr")) o.min_lr = cli_double(a, cli_value(argc, argv, &i), 0, 10);
        else if (!strcmp(a, "--warmup-steps")) o.warmup_steps = cli_long(a, cli_value(argc, argv, &i), 0, 1L << 40);
        else if (!strcmp(a, "--weight-decay")) o.weight_decay = cli_double(a, cli_value(argc, argv, &i), 0, 10);
        else if (!strcmp(a, "--clip")) o.clip = cli_double(a, cli_value(argc, argv, &i), 0, 1e6);
        else if (!strcmp(a, "--mask-ratio")) o.mask_ratio = cli_double(a, cli_value(argc, argv, &i), 0.01, 0.99);
        else if (!strcmp(a, "--norm-pix-loss")) o.norm_pix_loss = (int)cli_long(a, cli_value(argc, argv, &i), 0, 1);
        else if (!strcmp(a, "--no-augment")) o.augment = 0;
        else if (!strcmp(a, "--crop-scale")) parse_pair(a, cli_value(argc, argv, &i), &o.crop_min, &o.crop_max);
        else if (!strcmp(a, "--crop-ratio")) parse_pair(a, cli_value(argc, argv, &i), &o.ratio_min, &o.ratio_max);
        else if (!strcmp(a, "--flip")) o.flip_prob = cli_double(a, cli_value(argc, argv, &i), 0, 1);
        else if (!strcmp(a, "--save-every")) o.save_every = cli_long(a, cli_value(argc, argv, &i), 1, 1L << 40);
        else if (!strcmp(a, "--panel-every")) o.panel_every = cli_long(a, cli_value(argc, argv, &i), 1, 1L << 40);
        else if (!strcmp(a, "--stop-after")) o.stop_after = cli_long(a, cli_value(argc, argv, &i), 1, 1L << 40);
        else if (!strcmp(a, "--log-every")) o.log_every = cli_long(a, cli_value(argc, argv, &i), 1, 1L << 40);
        else if (!strcmp(a, "--seed")) o.seed = cli_long(a, cli_value(argc, argv, &i), 0, 0x7fffffffL);
        else if (!strcmp(a, "--threads")) o.threads = (int)cli_long(a, cli_value(argc, argv, &i), 1, 1024);
        else if (!strcmp(a, "--loader-threads")) o.loader_threads = (int)cli_long(a, cli_value(argc, argv, &i), 1, 64);
        else if (!strcmp(a, "--zero1")) o.zero1 = 1;
        else if (!strcmp(a, "--shuffle-buffer")) o.shuffle_buffer = (int)cli_long(a, cli_value(argc, argv, &i), 1, 1 << 20);
        else if (!strcmp(a, "--bucket-mb")) o.bucket_floats = cli_long(a, cli_value(argc, argv, &i), 1, 2048) * (1L << 18);
        else if (!strcmp(a, "--precision")) precision = cli_value(argc, argv, &i);
        else return cli_usage_error("pretrain", "unknown option '%s'", a);
    }
    if (!o.out) return cli_usage_error("pretrain", "--out RUN is required");
    if (!o.resume && o.n_data == 0) return cli_usage_error("pretrain", "give at least one --data PATH");
    if (!(o.crop_min > 0 && o.crop_min <= o.crop_max && o.crop_max <= 1 && o.ratio_min > 0 && o.ratio_min <= o.ratio_max))
        return cli_usage_error("pretrain", "crop scale must satisfy 0 < A <= B <= 1 and ratio 0 < A <= B");
    o.bf16 = cli_precision("pretrain", precision) == PREC_BF16;
    sx_err err;
    dist_comm comm;
    if (dist_init(&comm, &err)) { fprintf(stderr, "skelex pretrain: %s\n", err.msg); return 1; }
    o.comm = &comm;
    int rc = train_run(&o, &err);
    if (rc && comm.size > 1) fprintf(stderr, "skelex pretrain: rank %d of %d: %s\n", comm.rank, comm.size, err.msg);
    else if (rc) fprintf(stderr, "skelex pretrain: %s\n", err.msg);
    dist_finalize(&comm);
    if (rc) return 1;
    return o.stopped_by ? 128 + o.stopped_by : 0;
}
