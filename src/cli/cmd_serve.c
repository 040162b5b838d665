/* cmd_serve.c: `skelex serve`: the web application (src/serve/http.h). */
#include "cli/cli.h"
#include "serve/http.h"
#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *HELP =
    "usage: skelex serve --model MAE_DIR [--classifier DIR] [--host 127.0.0.1] [--port 8080]\n"
    "                    [--workers N] [--max-upload-mb 64] [--token T]\n"
    "\n"
    "Serve the web page and HTTP API: upload a radiograph (PNG, JPEG or DICOM) in a\n"
    "browser and see its zero-shot error map (and the classifier's outputs).\n"
    "\n"
    "  --model DIR          an MAE model directory (ViTMAEForPreTraining); default: the\n"
    "                       shipped models/skelex-tiny-mae\n"
    "  --classifier DIR     also classify each upload with this ViTForImageClassification;\n"
    "                       default, when neither --model nor --classifier is given:\n"
    "                       the shipped models/skelex-heads\n"
    "  --no-classifier      the error map only\n"
    "  --host ADDR          the address to listen on (default 127.0.0.1: this machine only;\n"
    "                       0.0.0.0 exposes it to the network: use --token then)\n"
    "  --port P             the port (default 8080; 0 picks a free one)\n"
    "  --workers N          analyses computed at once (default 2), each with its own workspace\n"
    "  --queue N            analyses waiting beyond them before 503 (default 16)\n"
    "  --max-upload-mb M    the largest request body (default 64)\n"
    "  --token T            every request must carry 'Authorization: Bearer T' or the cookie\n"
    "                       set by the login form at /; the environment variable\n"
    "                       SKELEX_SERVE_TOKEN sets it too, without showing it in ps\n"
    "  --passes N           the default number of masks per error map (default 10)\n"
    "  --max-passes N       the most a request may ask for (default 16); each worker's\n"
    "                       workspace holds this many images' activations\n"
    "  --time-limit S       seconds an analysis may take, waiting included (default 300)\n"
    "\n"
    "Uploads stay in memory; results are kept for 30 minutes (at most 64) for download.\n"
    "Prints the URL to open, then one line per request on stderr. Ctrl-C stops it.\n"
    "Exit status: 0 after Ctrl-C/SIGTERM, 1 when it cannot start, 2 for a usage error.\n";

/* SIGINT/SIGTERM, whichever thread takes them (OpenMP's threads exist
 * before this command runs, so a blocked mask would not cover them): the
 * handler only posts a semaphore (async-signal-safe); main waits on it. */
static sem_t stop_sem;
static volatile sig_atomic_t stop_sig;
static void on_signal(int sig) {
    stop_sig = sig;
    sem_post(&stop_sem);
}

static void log_line(void *user, const char *line) {
    (void)user;
    char ts[32];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    fprintf(stderr, "%s %s\n", ts, line);
}

int cmd_serve(int argc, char **argv) {
    sv_options o;
    sv_options_default(&o);
    const char *token = getenv("SKELEX_SERVE_TOKEN");
    int no_classifier = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (!strcmp(argv[i], "--model")) o.model_dir = cli_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--classifier")) o.classifier_dir = cli_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--no-classifier")) no_classifier = 1;
        else if (!strcmp(argv[i], "--host")) o.host = cli_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--port")) o.port = (int)cli_long("--port", cli_value(argc, argv, &i), 0, 65535);
        else if (!strcmp(argv[i], "--workers")) o.workers = (int)cli_long("--workers", cli_value(argc, argv, &i), 1, 256);
        else if (!strcmp(argv[i], "--queue")) o.queue = (int)cli_long("--queue", cli_value(argc, argv, &i), 0, 4096);
        else if (!strcmp(argv[i], "--max-upload-mb"))
            o.max_upload = (size_t)(cli_double("--max-upload-mb", cli_value(argc, argv, &i), 0.001, 1024) * 1048576.0);
        else if (!strcmp(argv[i], "--token")) token = cli_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--passes")) o.default_passes = (int)cli_long("--passes", cli_value(argc, argv, &i), 1, 1024);
        else if (!strcmp(argv[i], "--max-passes")) o.max_passes = (int)cli_long("--max-passes", cli_value(argc, argv, &i), 1, 1024);
        else if (!strcmp(argv[i], "--time-limit")) o.time_limit_s = cli_double("--time-limit", cli_value(argc, argv, &i), 1, 86400);
        else return cli_usage_error("serve", "unknown option '%s'", argv[i]);
    }
    char shipped[4200], shipped_heads[4200];
    if (!o.model_dir && !o.classifier_dir && !no_classifier && !cli_shipped_model(CLI_HEADS_MODEL, shipped_heads, sizeof shipped_heads)) {
        o.classifier_dir = shipped_heads;
        fprintf(stderr, "skelex serve: no --classifier given: using the shipped %s (%s)\n", CLI_HEADS_MODEL, shipped_heads);
    }
    if (!(o.model_dir = cli_model_or_shipped("serve", o.model_dir, CLI_MAE_MODEL, shipped, sizeof shipped))) return 2;
    if (no_classifier) o.classifier_dir = NULL;
    if (token && !*token) return cli_usage_error("serve", "--token is empty");
    if (o.default_passes > o.max_passes) return cli_usage_error("serve", "--passes %d is over --max-passes %d", o.default_passes, o.max_passes);
    o.token = token;
    o.log = log_line;

    sem_init(&stop_sem, 0, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    sx_err err;
    sv_server *s;
    if (sv_start(&o, &s, &err) != 0) {
        fprintf(stderr, "skelex serve: %s\n", err.msg);
        return 1;
    }
    int v6 = strchr(o.host, ':') != NULL;
    const char *shown = !strcmp(o.host, "0.0.0.0") ? "127.0.0.1" : !strcmp(o.host, "::") ? "[::1]" : o.host;
    printf("skelex serve: open http://%s%s%s:%d/%s\n", v6 && shown[0] != '[' ? "[" : "", shown,
           v6 && shown[0] != '[' ? "]" : "", sv_port(s), token ? "  (log in with the token)" : "");
    fflush(stdout);
    while (sem_wait(&stop_sem) != 0 && errno == EINTR) {
    }
    fprintf(stderr, "skelex serve: %s received, stopping\n", stop_sig == SIGINT ? "SIGINT" : "SIGTERM");
    sv_stop(s);
    return 0;
}
