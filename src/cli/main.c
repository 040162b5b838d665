/* main.c: the skelex command line: dispatches to one subcommand. */
#include "cli/cli.h"
#include "core/env.h"
#include "nn/gemm.h"
#include <stdio.h>
#include <string.h>

static const char *USAGE =
    "skelex: a foundation model for musculoskeletal radiographs (ViT masked autoencoder, in C)\n"
    "\n"
    "usage: skelex <command> [options]   (skelex <command> --help for each)\n"
    "\n"
    "commands:\n"
    "  init         create a randomly initialised model directory (HF ViTMAE layout)\n"
    "  info         print a model's architecture and parameter count\n"
    "  reconstruct  mask an image, reconstruct it, write logits (.npy) and a panel (.png)\n"
    "  pretrain     self-supervised MAE pretraining on a folder or list of radiographs\n"
    "  shard        pack radiographs into tar shards for pretraining at scale\n"
    "  errormap     zero-shot abnormality maps from multi-mask reconstruction error\n"
    "  preprocess   write the 8-bit image the model sees (PNG, JPEG or DICOM input)\n"
    "  probe        linear probe of a frozen encoder on a task (SKELEX split protocol)\n"
    "  finetune     fine-tune the whole model on a task (SKELEX protocol, best epoch per fold)\n"
    "  eval         apply a fine-tuned model to a task or a folder: predictions.csv, metrics.json\n"
    "  bench        measure training, inference or data-loading speed (images/s)\n"
    "  predict      region-guided classification: regions from the error map, boxes or whole\n"
    "  serve        the web application: upload a radiograph, see its error map in a browser\n"
    "  export       rewrite a model's weights in f16, bf16 or f32 (what models/ ships)\n"
    "  cuda         list the CUDA devices (a build made with `make cuda`)\n"
    "\n"
    "Model directories hold config.json + model.safetensors, exactly as Hugging Face\n"
    "transformers writes ViTMAEForPreTraining, so checkpoints move both ways.\n"
    "Threads: OMP_NUM_THREADS (default: all cores); threads are pinned to cores.\n"
    "Environment (checked before any command runs; a bad value is exit status 2):\n"
    "  OMP_NUM_THREADS 1..4096, SKELEX_SPLIT 0|1, SKELEX_PROFILE=1, SKELEX_NO_PIN=1,\n"
    "  SKELEX_MODELS=DIR (the folder of shipped models; default models/ beside\n"
    "  the binary: skelex-tiny-mae, skelex-heads, used when --model is not given)\n"
    "\n"
    "exit status: 0 success, 1 failure, 2 usage (bad option, number or environment),\n"
    "  3 partial success (some inputs failed), 130/143 interrupted by SIGINT/SIGTERM\n";

int main(int argc, char **argv) {
    if (argc < 2 || cli_is_help(argv[1])) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    static const struct { const char *name; int (*fn)(int, char **); } cmds[] = {
        {"init", cmd_init}, {"info", cmd_info}, {"reconstruct", cmd_reconstruct}, {"bench", cmd_bench},
        {"pretrain", cmd_pretrain}, {"errormap", cmd_errormap}, {"probe", cmd_probe}, {"finetune", cmd_finetune}, {"eval", cmd_eval},
        {"preprocess", cmd_preprocess}, {"serve", cmd_serve}, {"shard", cmd_shard}, {"cuda", cmd_cuda},
        {"predict", cmd_predict}, {"export", cmd_export},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name)) {
            sx_err err;
            if (sx_env_check(&err)) { fprintf(stderr, "skelex: %s\n", err.msg); return 2; }
            sx_threads_init(0);
            return cmds[i].fn(argc - 1, argv + 1);
        }
    fprintf(stderr, "skelex: unknown command '%s'\n\n%s", argv[1], USAGE);
    return 2;
}
