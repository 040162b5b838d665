/* cli.h: the subcommands of the skelex program and small argument helpers. */
#ifndef SKELEX_CLI_H
#define SKELEX_CLI_H
#include <stddef.h>
#include <stdint.h>

int cmd_init(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_reconstruct(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_shard(int argc, char **argv);
int cmd_errormap(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_bench_data(int argc, char **argv);
int cmd_bench_masking(int argc, char **argv);   /* argv[0] is "data" */
int cmd_serve(int argc, char **argv);
int cmd_cuda(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_export(int argc, char **argv);

/* The shipped models (default_model.c): name (e.g. "skelex-tiny-mae") is
 * looked for in $SKELEX_MODELS when set (only there), else in models/
 * beside the binary, then ../share/skelex/models beside it; a folder counts when it holds
 * config.json and model.safetensors. Returns 0 with its real path in out. */
#define CLI_MAE_MODEL   "skelex-tiny-mae"
#define CLI_HEADS_MODEL "skelex-heads"
int cli_shipped_model(const char *name, char *out, size_t cap);
/* given when not NULL; else the shipped model (saying so on stderr); else
 * NULL after a message naming the folders searched. */
/* DIR holds a model already: config.json or model.safetensors, even a
 * dangling link (what init and export refuse to overwrite without --force). */
int cli_holds_model(const char *dir);
const char *cli_model_or_shipped(const char *cmd, const char *given, const char *name, char *buf, size_t cap);

/* Option parsing: argv[i] is "--name"; returns its value (advancing *i) or
 * exits with status 2 and a usage error naming the option. Numbers must be
 * finite and inside [lo, hi]; the whole string must be the number. */
const char *cli_value(int argc, char **argv, int *i);
long   cli_long(const char *opt, const char *s, long lo, long hi);
double cli_double(const char *opt, const char *s, double lo, double hi);
int    cli_is_help(const char *s);

/* Print "skelex <cmd>: <message>" and return the exit code 2 (usage) or 1. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
