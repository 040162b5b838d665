/* cmd_model.c: `skelex init` and `skelex info`. */
#include "io/checkpoint.h"
#include "cli/cli.h"
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *INIT_HELP =
    "usage: skelex init --config NAME|config.json --out DIR [--seed S]\n"
    "\n"
    "Create DIR with config.json and model.safetensors, initialised as Hugging Face\n"
    "ViTMAEForPreTraining does (normal(0, initializer_range) linears, Xavier patch\n"
    "projection, fixed sin-cos position embeddings).\n"
    "\n"
    "  --config X   preset tiny|small|base|large|huge, or an HF config.json (or a\n"
    "               directory holding one). Presets use MAE's decoder: 512 wide,\n"
    "               8 layers, 16 heads.\n"
    "  --out DIR    output directory (created if missing); a DIR that already holds\n"
    "               a model (config.json or model.safetensors) is refused\n"
    "  --force      overwrite the model in DIR\n"
    "  --seed S     random seed (default 0)\n"
    "\n"
    "exit status: 0 written, 1 failure (including DIR holding a model), 2 usage\n";

int cmd_init(int argc, char **argv) {
    const char *config = NULL, *out = NULL;
    long seed = 0;
    int force = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { fputs(INIT_HELP, stdout); return 0; }
        else if (!strcmp(argv[i], "--force")) force = 1;
        else if (!strcmp(argv[i], "--config")) config = cli_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--out")) out = cli_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--seed")) seed = cli_long("--seed", cli_value(argc, argv, &i), 0, 0x7fffffffL);
        else return cli_usage_error("init", "unknown option '%s'", argv[i]);
    }
    if (!config || !out) return cli_usage_error("init", "--config and --out are required");
    sx_err err;
    if (!force && cli_holds_model(out)) {
        fprintf(stderr, "skelex init: %s already holds a model; use --force to overwrite it, or another --out\n", out);
        return 1;
    }
    mae_config cfg;
    mae_model m;
    if (config_resolve(config, &cfg, &err) || mae_build(&m, &cfg, &err)) {
        fprintf(stderr, "skelex init: %s\n", err.msg);
        return 1;
    }
    mae_init_weights(&m, (uint64_t)seed);
    int rc = checkpoint_save(out, &m, &err);
    if (rc) fprintf(stderr, "skelex init: %s\n", err.msg);
    else printf("wrote %s (parameters=%zu)\n", out, mae_count_params(&m));
    mae_free(&m);
    return rc ? 1 : 0;
}

static const char *INFO_HELP =
    "usage: skelex info DIR\n"
    "\n"
    "Print the architecture of the model in DIR (config.json + model.safetensors),\n"
    "after checking that every tensor loads, and a line parameters=<count>.\n"
    "\n"
    "exit status: 0 printed, 1 the model does not load, 2 usage\n";

int cmd_info(int argc, char **argv) {
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { fputs(INFO_HELP, stdout); return 0; }
        else if (argv[i][0] == '-') return cli_usage_error("info", "unknown option '%s'", argv[i]);
        else if (!dir) dir = argv[i];
        else return cli_usage_error("info", "one model directory only");
    }
    char shipped[4200];
    if (!(dir = cli_model_or_shipped("info", dir, CLI_MAE_MODEL, shipped, sizeof shipped))) return 2;
    sx_err err;
    mae_model m;
    if (checkpoint_load_inference(dir, &m, &err)) { fprintf(stderr, "skelex info: %s\n", err.msg); return 1; }
    const mae_config *c = &m.cfg;
    size_t enc = 0, dec = 0;
    for (int i = 0; i < m.n_info; i++) {
        if (m.info[i].flags & PARAM_ABSENT) continue;
        if (!strncmp(m.info[i].name, "vit.", 4)) enc += m.info[i].numel; else dec += m.info[i].numel;
    }
    printf("model: %s (ViTMAEForPreTraining)\n", dir);
    printf("image: %dx%d px, %d channel(s), patch %d -> %d patches (%dx%d), patch vector %d\n",
           c->image_size, c->image_size, c->num_channels, c->patch_size, config_num_patches(c),
           config_grid(c), config_grid(c), config_patch_dim(c));
    printf("encoder: %d layers, width %d, %d heads, MLP %d, qkv_bias=%s, layer_norm_eps=%g\n",
           c->num_hidden_layers, c->hidden_size, c->num_attention_heads, c->intermediate_size,
           c->qkv_bias ? "true" : "false", c->layer_norm_eps);
    printf("decoder: %d layers, width %d, %d heads, MLP %d\n", c->decoder_num_hidden_layers,
           c->decoder_hidden_size, c->decoder_num_attention_heads, c->decoder_intermediate_size);
    printf("masking: ratio %g (%d of %d patches visible), norm_pix_loss=%s\n", c->mask_ratio,
           config_len_keep(c), config_num_patches(c), c->norm_pix_loss ? "true" : "false");
    printf("encoder_parameters=%zu\ndecoder_parameters=%zu\n", enc, dec);
    printf("parameters=%zu\n", mae_count_params(&m));
    mae_free(&m);
    return 0;
}
