/* cmd_bench.c: `skelex bench train|infer`: speed of the MAE training step
 * (forward + backward + AdamW) or of inference, on random data. */
#include "cli/cli.h"
#include "cli/precision_args.h"
#include "core/cpu.h"
#include "nn/precision.h"
#include "zeroshot/pipeline.h"
#include "nn/gemm.h"
#include "nn/layers.h"
#include "nn/model.h"
#include "nn/optim.h"
#include "core/rng.h"
#include "nn/team.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char *HELP =
    "usage: skelex bench data --data PATH [...]   (see skelex bench data --help)\n"
    "       skelex bench masking --model DIR --image FILE [...]   (balanced vs random masks)\n"
    "       skelex bench train|infer|errormap --config NAME|config.json [--batch B | --passes N]\n"
    "                    [--steps N] [--precision auto|fp32|bf16] [--threads T]\n"
    "\n"
    "  train   time forward + backward + AdamW on random images (batch B)\n"
    "  infer   time forward only on a batch of B images\n"
    "  errormap  time one error map: --passes N masks of one image (default 10) as\n"
    "          one batch, plus the per-pixel accumulation; prints seconds_per_image\n"
    "\n"
    "  --config X      preset (tiny|small|base|large|huge) or config.json (default base)\n"
    "  --batch B       images per step (default 32 for train, 10 for infer)\n"
    "  --steps N       timed steps after one untimed warm-up (default 3)\n"
    "  --precision P   fp32 (exact, default here so runs compare), bf16 (matrix inputs\n"
    "                  rounded to bfloat16; fp32 where oneDNN cannot, saying so) or\n"
    "                  auto (bf16 where the CPU has native bf16 products)\n"
    "  --threads T     threads (default: OMP_NUM_THREADS or all cores)\n"
    "\n"
    "Prints images_per_s=<value> (and seconds_per_step, peak_rss_mib, cpu_isa,\n"
    "bf16_products (native|emulated|unavailable), precision and\n"
    "step_seconds=<each timed step>); each step's time and CPU time go to stderr.\n"
    "train splits the batch across the threads as skelex pretrain does (each\n"
    "thread a share, its own activations and gradients); SKELEX_SPLIT=0 runs the\n"
    "whole batch at once with every product on all threads.\n";

/* CPU seconds this process has spent in user and kernel mode so far. */
static void cpu_times(double *user, double *sys) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6;
    *sys = (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

int cmd_bench(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "data")) return cmd_bench_data(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "masking")) return cmd_bench_masking(argc - 1, argv + 1);
    const char *mode = NULL, *config = "base", *prec = "fp32";
    long batch = -1, steps = 3, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (!strcmp(argv[i], "--config")) config = cli_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--passes")) batch = cli_long("--passes", cli_value(argc, argv, &i), 1, 4096);
        else if (!strcmp(argv[i], "--batch")) batch = cli_long("--batch", cli_value(argc, argv, &i), 1, 4096);
        else if (!strcmp(argv[i], "--steps")) steps = cli_long("--steps", cli_value(argc, argv, &i), 1, 100000);
        else if (!strcmp(argv[i], "--threads")) threads = cli_long("--threads", cli_value(argc, argv, &i), 1, 1024);
        else if (!strcmp(argv[i], "--precision")) prec = cli_value(argc, argv, &i);
        else if (argv[i][0] != '-' && !mode) mode = argv[i];
        else return cli_usage_error("bench", "unknown argument '%s'", argv[i]);
    }
    if (!mode || (strcmp(mode, "train") && strcmp(mode, "infer") && strcmp(mode, "errormap")))
        return cli_usage_error("bench", "say what to measure: train, infer, errormap or data");
    int train = !strcmp(mode, "train"), emap = !strcmp(mode, "errormap");
    if (batch < 0) batch = train ? 32 : 10;
    if (threads) sx_threads_init((int)threads);
    sx_precision run_prec = cli_precision("bench", prec);
    gemm_set_precision(run_prec);
    const char *prec_note = strcmp(prec, sx_precision_name(run_prec)) ? " (requested " : "";

    sx_err err;
    mae_config cfg;
    mae_model m;
    if (config_resolve(config, &cfg, &err) || mae_build(&m, &cfg, &err)) {
        fprintf(stderr, "skelex bench: %s\n", err.msg);
        return 1;
    }
    mae_init_weights(&m, 0);
    m.loss_only = train;  /* as skelex pretrain: the loss, not every logit */
    int B = (int)batch, N = config_num_patches(&cfg), S = cfg.image_size;
    size_t npx = (size_t)B * cfg.num_channels * S * S;
    float *pixels = sx_malloc(sizeof(float) * npx), *noise = sx_malloc(sizeof(float) * (size_t)B * N);
    sx_rng r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < npx; i++) pixels[i] = rng_normal(&r);
    adamw opt;
    adamw_init(&opt, &m, 1.5e-4f, 0.9f, 0.95f, 1e-8f, 0.05f);
    mae_team team = {1, &m, NULL};  /* as skelex pretrain: the batch split across the cores */
    int rc = train ? mae_team_init(&team, &m, B, &err) : 0;
    fprintf(stderr, "bench %s: %s, batch %d, %s%s%s%s, %d threads, %zu parameters%s\n", mode, config, B,
            sx_precision_name(run_prec), prec_note, prec_note[0] ? prec : "", prec_note[0] ? ")" : "",
            omp_get_max_threads(), mae_count_params(&m), team.n > 1 ? ", batch split across the threads" : "");
    cli_print_cpu("bench", run_prec);
    double total = 0.0, *step_s = sx_malloc(sizeof(double) * (size_t)steps);
    for (long s = 0; s <= steps && !rc; s++) {
        for (size_t i = 0; i < (size_t)B * N; i++) noise[i] = rng_uniform(&r);
        double t0 = sx_now(), u0, s0;
        cpu_times(&u0, &s0);
        if (emap) {  /* one image through the error-map pipeline: B mask passes, accumulation, statistics */
            zs_map z;
            rc = zs_errormap_pixels(&m, pixels, &(zs_opts){.passes = B, .masking = MASKING_BALANCED, .seed = (uint64_t)s},
                                    &z, &err);
            zs_map_free(&z);
        } else if (train) {
            mae_zero_grad(&m);
            rc = mae_team_step(&team, pixels, noise, B, &err);
            if (!rc) adamw_step(&opt, &m);
        } else {
            rc = mae_forward(&m, pixels, noise, B, &err);
        }
        double dt = sx_now() - t0, u1, s1;
        cpu_times(&u1, &s1);
        if (s > 0) { total += dt; step_s[s - 1] = dt; }
        else { gemm_profile_reset(); attention_profile_reset(); }  /* profile the timed steps only */
        fprintf(stderr, "  step %ld/%ld%s: %.3f s (cpu: user %.1f s, system %.1f s), loss %.4f\n", s, steps,
                s ? "" : " (warm-up)", dt, u1 - u0, s1 - s0, (double)m.loss);
    }
    if (rc) fprintf(stderr, "skelex bench: %s\n", err.msg);
    else {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("precision=%s\n", sx_precision_name(run_prec));
        printf("cpu_isa=%s\n", sx_cpu_info()->dnnl_isa);
        printf("bf16_products=%s\n", sx_bf16_support_name(sx_cpu_info()->bf16));
        printf("seconds_per_step=%.4f\n", total / steps);
        if (emap) printf("seconds_per_image=%.4f\n", total / steps);
        else printf("images_per_s=%.4f\n", (double)B * steps / total);
        printf("peak_rss_mib=%.0f\n", ru.ru_maxrss / 1024.0);
        printf("step_seconds=");  /* each timed step, for medians over noisy machines */
        for (long s = 0; s < steps; s++) printf("%s%.4f", s ? "," : "", step_s[s]);
        printf("\n");
    }
    free(step_s);
    adamw_free(&opt);
    mae_team_free(&team);
    free(pixels);
    free(noise);
    mae_free(&m);
    return rc ? 1 : 0;
}
