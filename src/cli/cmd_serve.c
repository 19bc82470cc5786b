/* headroom serve — the OpenAI-compatible server. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "formats/ggml_type.h"
#include "server/server.h"

static const char SERVE_HELP[] =
    "usage: headroom serve -m MODEL [options]\n"
    "\n"
    "Serves MODEL over an OpenAI-compatible HTTP API: /v1/chat/completions, /v1/completions,\n"
    "/v1/models, /v1/budget (the budget answer; it generates only a summarize policy's\n"
    "summary), /tokenize, /detokenize, /health, /metrics (Prometheus) and /v1/headroom (live\n"
    "pool and room). Every request is counted with the model's tokenizer and fitted to the\n"
    "window by its policy, or refused with HTTP 400 code context_length_exceeded and the\n"
    "numbers.\n"
    "\n"
    "options:\n"
    "  -m, --model PATH          model file (.gguf or llama2.c .bin)\n"
    "      --tokenizer PATH      llama2.c tokenizer.bin\n"
    "      --host ADDR           address to bind (default 127.0.0.1: loopback only)\n"
    "      --port N              port (default 8080; 0 picks a free one)\n"
    "  -c, --ctx-size N          window per request (default: the model's trained context)\n"
    "      --parallel N          requests generated at once (default 4)\n"
    "      --kv-mem BYTES        KV pool size (default: ctx-size x parallel tokens)\n"
    "      --kv-type T           f16 (default), f32, q8_0\n"
    "      --kv-block N          tokens per KV block (default 16)\n"
    "      --max-batch-tokens N  tokens per forward step (default 512)\n"
    "  -t, --threads N           compute threads (default: the cores available)\n"
    "      --policy P            default context policy: clamp (default), reject, truncate, summarize\n"
    "      --min-room N          clamp refuses a request with less room than this (default 1)\n"
    "      --alert-room N        log a low_room event below this room (default 0: off)\n"
    "      --max-queue N         waiting requests beyond this get 429 (default 64)\n"
    "      --idle-timeout S      close a connection silent for S seconds: between requests,\n"
    "                            or mid-request (default 60; generating is not silence)\n"
    "      --api-key KEY         require 'Authorization: Bearer KEY'\n"
    "      --chat-template NAME  template name or file (default: the model's own, else plain)\n"
    "      --model-id NAME       name in /v1/models (default: the model file's name)\n"
    "  -h, --help                this help\n";

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

int hr_cmd_serve(int argc, char **argv) {
    const char *model_path = NULL, *tokenizer_path = NULL, *policy = "clamp", *kv_type = HR_CLI_KV_TYPE;
    hr_server_config cfg = {.port = 8080, .engine = {.parallel = 4}};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int64_t n;
        uint64_t u;
#define VALUE() (v = hr_arg_value("serve", argc, argv, &i))
#define INT(lo, hi) (VALUE() && hr_arg_int("serve", a, v, lo, hi, &n))
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(SERVE_HELP, stdout);
            return 0;
        }
        const char **text = !strcmp(a, "-m") || !strcmp(a, "--model") ? &model_path
                            : !strcmp(a, "--tokenizer")                 ? &tokenizer_path
                            : !strcmp(a, "--host")                      ? &cfg.host
                            : !strcmp(a, "--policy")                    ? &policy
                            : !strcmp(a, "--kv-type")                   ? &kv_type
                            : !strcmp(a, "--api-key")                   ? &cfg.api_key
                            : !strcmp(a, "--chat-template")             ? &cfg.chat_template
                            : !strcmp(a, "--model-id")                  ? &cfg.model_id
                                                                        : NULL;
        if (text) {
            if (!VALUE()) return 2;
            *text = v;
        } else if (!strcmp(a, "--port")) {
            if (!INT(0, 65535)) return 2;
            cfg.port = (uint16_t)n;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (!INT(1, INT32_MAX)) return 2;
            cfg.engine.ctx_size = (int32_t)n;
        } else if (!strcmp(a, "--parallel")) {
            if (!INT(1, 4096)) return 2;
            cfg.engine.parallel = (int32_t)n;
        } else if (!strcmp(a, "--kv-mem")) {
            if (!VALUE() || !hr_arg_size("serve", a, v, &u)) return 2;
            cfg.engine.kv_mem_bytes = u;
        } else if (!strcmp(a, "--kv-block")) {
            if (!INT(1, 4096)) return 2;
            cfg.engine.block_tokens = (int32_t)n;
        } else if (!strcmp(a, "--max-batch-tokens")) {
            if (!INT(1, 1 << 20)) return 2;
            cfg.engine.max_batch_tokens = (int32_t)n;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!INT(1, 1024)) return 2;
            cfg.engine.n_threads = (int32_t)n;
        } else if (!strcmp(a, "--min-room")) {
            if (!INT(1, INT32_MAX)) return 2;
            cfg.min_room = n;
        } else if (!strcmp(a, "--alert-room")) {
            if (!INT(0, INT32_MAX)) return 2;
            cfg.alert_room = n;
        } else if (!strcmp(a, "--max-queue")) {
            if (!INT(1, 1 << 20)) return 2;
            cfg.max_queue = (int32_t)n;
        } else if (!strcmp(a, "--idle-timeout")) {
            if (!INT(1, 86400)) return 2;
            cfg.idle_timeout_s = (int32_t)n;
        } else {
            fprintf(stderr, "headroom serve: unknown option '%s' (see headroom serve --help)\n", a);
            return 2;
        }
#undef INT
#undef VALUE
    }
    if (!model_path) {
        fprintf(stderr, "headroom serve: no model given; pass -m MODEL (see headroom serve --help)\n");
        return 2;
    }
    hr_error err = {0};
    hr_type kt;
    if (hr_policy_from_name(policy, &cfg.policy, &err) != HR_OK || hr_type_from_name(kv_type, &kt, &err) != HR_OK) {
        fprintf(stderr, "headroom serve: %s\n", err.msg);
        return 2;
    }
    cfg.engine.kv_type = kt;
    /* Each connection holds a descriptor: take all the system allows rather than the
     * usual soft limit of 1024. */
    struct rlimit files;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
    }
    hr_model *model = NULL;
    hr_server *server = NULL;
    if (hr_model_load(&model, model_path, tokenizer_path, &err) != HR_OK ||
        hr_server_start(&server, model, &cfg, &err) != HR_OK) {
        fprintf(stderr, "headroom serve: %s\n", err.msg);
        hr_model_free(model);
        return 1;
    }
    hr_engine_stats es;
    hr_server_stats(server, &es);
    const char *host = cfg.host ? cfg.host : "127.0.0.1";
    bool v6 = strchr(host, ':') != NULL;
    fprintf(stderr,
            "headroom serve: %s, window %d tokens (trained context %d), KV pool %d blocks x %d tokens = %lld tokens, "
            "policy %s\n",
            model_path, es.window, model->hp.n_ctx_train, es.blocks_total, es.block_tokens,
            (long long)es.blocks_total * es.block_tokens, hr_policy_name(cfg.policy));
    fprintf(stderr, "headroom serve: listening on http://%s%s%s:%u/v1\n", v6 ? "[" : "", host, v6 ? "]" : "",
            (unsigned)hr_server_port(server));
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    while (!stop_requested) pause();
    fprintf(stderr, "headroom serve: stopping\n");
    hr_server_stop(server);
    hr_model_free(model);
    return 0;
}
