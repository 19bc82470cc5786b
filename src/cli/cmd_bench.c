/* headroom bench — a load generator for OpenAI-compatible servers: mixed prompt and
 * output lengths, a share built to overflow the window, latency percentiles, every
 * outcome counted, and a non-zero exit on any 5xx, lost connection or unexplained
 * failure (the seed's "send a burst of mixed lengths" regression guard). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "cli/commands.h"
#include "cli/opts.h"
#include "tools/client.h"
#include "tools/dist.h"
#include "tools/loadgen.h"
#include "tools/probe.h"

static const char BENCH_HELP[] =
    "usage: headroom bench URL [--requests N | --duration S] [--concurrency C] [--prompt-tokens DIST]\n"
    "                          [--max-tokens DIST] [--overflow-share F] [--stream] [--json FILE]\n"
    "                          [--soak --duration S --interval S --alert-room N] [--allow-remote]\n"
    "\n"
    "Sends chat requests to the server at URL (its base URL, with or without /v1) from one\n"
    "process, C at a time, with prompt and output lengths drawn from DIST: a fixed \"N\", a\n"
    "uniform \"A..B\", or \"@FILE\" of lengths replayed in order. Prompts are a word repeated,\n"
    "calibrated first against the server's usage.prompt_tokens, so lengths are in tokens.\n"
    "A share F of the requests is built over the window (prompt + max_tokens > window).\n"
    "Measures time to first token and inter-token latency (with --stream), end-to-end\n"
    "latency (p50/p90/p99), output tokens/s and requests/s, and counts every HTTP status,\n"
    "error code, and the clamped/truncated/summarized answers headroom objects report.\n"
    "\n"
    "Exits 1 when any request got a 5xx, lost its connection, or failed unexplained (a\n"
    "refusal of a request that fits the window, a broken stream, a malformed answer); a 429\n"
    "is counted as throttled, and a refusal of a request built over the window is expected.\n"
    "Refuses a non-loopback URL unless --allow-remote: it only ever sends to the URL given.\n"
    "\n"
    "options:\n"
    "      --requests N         requests to send (default 100)\n"
    "      --duration S         send for S seconds instead\n"
    "      --concurrency C      requests in flight (default 4)\n"
    "      --prompt-tokens DIST prompt lengths in tokens (default 32..256)\n"
    "      --max-tokens DIST    max_tokens of each request (default 16..128)\n"
    "      --overflow-share F   share of requests built over the window, 0..1 (default 0)\n"
    "      --window N           the window to plan overflows against (default: what /v1/models says)\n"
    "      --stream             stream the answers (needed for time to first token)\n"
    "      --json FILE          also write the results as JSON to FILE ('-': stdout)\n"
    "      --soak               with --duration: a summary line every --interval, and the\n"
    "                           server's /metrics watched for low headroom\n"
    "      --interval S         seconds between soak lines (default 10)\n"
    "      --alert-room N       soak: alert when a request's room falls below N tokens\n"
    "      --seed N             seed of the length draws (default 1): same seed, same requests\n"
    "      --model NAME         model to ask for (default: the first in /v1/models)\n"
    "      --api-key KEY        sent as 'Authorization: Bearer KEY'\n"
    "      --timeout S          per request (default 120)\n"
    "      --allow-remote       allow a URL that is not loopback (only for servers you run)\n"
    "  -h, --help               this help\n";

typedef struct {
    const char *url, *prompt_spec, *max_spec, *json_path, *model, *api_key;
    int64_t requests, concurrency, window, alert_room, seed;
    double duration, overflow_share, interval, timeout;
    bool stream, soak, allow_remote, requests_given, duration_given, interval_given, alert_given;
} bench_options;

typedef struct {
    const bench_options *o;
    FILE *out;     /* the report: stdout, or stderr when the JSON goes to stdout */
    bool progress; /* stderr is a terminal */
    int64_t alerts;
    double last_low_room; /* the server's low-room counter at the previous interval; < 0: none yet */
} bench_ui;

static void on_progress(void *ctx, const hr_load_progress *p) {
    bench_ui *ui = ctx;
    if (!ui->progress) return;
    double frac = p->total ? (double)p->done / (double)p->total : p->elapsed / p->duration;
    int filled = (int)((frac < 1 ? frac : 1) * 30);
    char count[48];
    if (p->total) snprintf(count, sizeof count, "%lld/%lld", (long long)p->done, (long long)p->total);
    else snprintf(count, sizeof count, "%lld done", (long long)p->done);
    fprintf(stderr, "\r  [%.*s%*s] %s  %.1f s ", filled, "==============================", 30 - filled, "", count,
            p->elapsed);
    fflush(stderr);
}

static void on_interval(void *ctx, const hr_load_interval *iv) {
    bench_ui *ui = ctx;
    const bench_options *o = ui->o;
    fprintf(ui->out, "[%7.1f s] %lld answered (%.1f/s)", iv->t, (long long)iv->answered,
            iv->span > 0 ? (double)iv->answered / iv->span : 0.0);
    if (iv->e2e.n) fprintf(ui->out, ", e2e p50 %.1f ms p99 %.1f ms", iv->e2e.p50 * 1e3, iv->e2e.p99 * 1e3);
    fprintf(ui->out, ", %lld failed, %lld refused, %lld clamped", (long long)iv->failed, (long long)iv->refused,
            (long long)iv->clamped);
    if (iv->min_room >= 0) fprintf(ui->out, ", min room %lld", (long long)iv->min_room);
    if (iv->have_metrics)
        fprintf(ui->out, "; server: KV %.0f%% used, %.0f running, %.0f waiting, %.0f low-room events",
                iv->kv_usage * 100, iv->running, iv->waiting, iv->low_room_total);
    fprintf(ui->out, "\n");
    if (o->alert_room > 0 && iv->min_room >= 0 && iv->min_room < o->alert_room) {
        ui->alerts++;
        fprintf(ui->out, "ALERT [%7.1f s] room fell to %lld tokens, below --alert-room %lld\n", iv->t,
                (long long)iv->min_room, (long long)o->alert_room);
    }
    if (iv->have_metrics && ui->last_low_room >= 0 && iv->low_room_total > ui->last_low_room) {
        ui->alerts++;
        fprintf(ui->out, "ALERT [%7.1f s] the server logged %.0f new low-room events\n", iv->t,
                iv->low_room_total - ui->last_low_room);
    }
    if (iv->have_metrics) ui->last_low_room = iv->low_room_total;
    fflush(ui->out);
}

static double rate(int64_t n, double seconds) { return seconds > 0 ? (double)n / seconds : 0; }

static void print_latency(FILE *out, const char *label, hr_samples *s) {
    hr_summary m;
    hr_summarize(s, &m);
    if (m.n == 0) {
        fprintf(out, "  %-22s %10s\n", label, "n/a");
        return;
    }
    fprintf(out, "  %-22s %7.1f ms %7.1f ms %7.1f ms %7.1f ms   (%zu)\n", label, m.p50 * 1e3, m.p90 * 1e3, m.p99 * 1e3,
            m.max * 1e3, m.n);
}

static void print_count(FILE *out, const char *label, int64_t n) {
    fprintf(out, "  %-22s %10lld\n", label, (long long)n);
}

static void print_summary(FILE *out, const bench_options *o, const hr_load_config *cfg, hr_load_result *r,
                          int64_t alerts) {
    fprintf(out, "\n  %-22s %10.2f s\n", "wall time", r->wall_s);
    fprintf(out, "  %-22s %10.1f\n", "requests/s", rate(r->answered, r->wall_s));
    fprintf(out, "  %-22s %10.1f   (%lld tokens)\n", "output tokens/s", rate(r->output_tokens, r->wall_s),
            (long long)r->output_tokens);
    fprintf(out, "  %-22s %10s %10s %10s %10s\n", "", "p50", "p90", "p99", "max");
    print_latency(out, "time to first token", &r->ttft);
    print_latency(out, "inter-token latency", &r->itl);
    print_latency(out, "end-to-end", &r->e2e);
    fprintf(out, "\noutcomes\n");
    for (int s = 0; s < 600; s++) {
        if (!r->status[s]) continue;
        char label[32];
        snprintf(label, sizeof label, s ? "HTTP %d" : "HTTP (invalid status)", s);
        print_count(out, label, r->status[s]);
    }
    if (r->n_codes) {
        fprintf(out, "  %-22s ", "error codes");
        for (int64_t i = 0; i < r->n_codes; i++)
            fprintf(out, "%s%s %lld", i ? ", " : "", r->codes[i].code, (long long)r->codes[i].count);
        if (r->other_codes) fprintf(out, ", others %lld", (long long)r->other_codes);
        fprintf(out, "\n");
    }
    if (cfg->window) print_count(out, "planned over window", r->planned_over);
    print_count(out, "clamped", r->clamped);
    print_count(out, "truncated", r->truncated);
    print_count(out, "summarized", r->summarized);
    print_count(out, "throttled (429)", r->throttled);
    print_count(out, "connection errors", r->connection_errors);
    print_count(out, "unexplained", r->unexplained);
    if (r->min_room >= 0) print_count(out, "smallest room seen", r->min_room);
    if (o->soak) print_count(out, "alerts", alerts);
    int64_t failures = hr_load_failures(r);
    if (failures == 0) fprintf(out, "\nresult: ok (no 5xx, no connection error, no unexplained failure)\n");
    else
        fprintf(out, "\nresult: FAILED (%lld 5xx, %lld connection errors, %lld unexplained)\n",
                (long long)r->server_errors, (long long)r->connection_errors, (long long)r->unexplained);
    for (int i = 0; i < r->n_notes; i++) fprintf(out, "  %s\n", r->notes[i]);
}

static json_t *latency_json(hr_samples *s) {
    hr_summary m;
    hr_summarize(s, &m);
    if (m.n == 0) return json_null();
    return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f}", "count", (json_int_t)m.n, "p50", m.p50 * 1e3, "p90", m.p90 * 1e3,
                     "p99", m.p99 * 1e3, "max", m.max * 1e3, "mean", m.mean * 1e3);
}

static int write_json(const bench_options *o, const hr_load_config *cfg, hr_load_result *r, int64_t alerts) {
    json_t *status = json_object(), *codes = json_object(), *notes = json_array();
    for (int s = 0; s < 600; s++)
        if (r->status[s]) {
            char key[16];
            snprintf(key, sizeof key, "%d", s);
            json_object_set_new(status, key, json_integer((json_int_t)r->status[s]));
        }
    for (int64_t i = 0; i < r->n_codes; i++)
        json_object_set_new(codes, r->codes[i].code, json_integer(r->codes[i].count));
    for (int i = 0; i < r->n_notes; i++) json_array_append_new(notes, json_string(r->notes[i]));
    const struct {
        const char *key;
        int64_t value;
    } counts[] = {
        {"window", cfg->window},
        {"concurrency", cfg->concurrency},
        {"seed", (int64_t)cfg->seed},
        {"sent", r->sent},
        {"answered", r->answered},
        {"output_tokens", r->output_tokens},
        {"prompt_tokens_answered", r->prompt_tokens},
        {"planned_over_window", r->planned_over},
        {"clamped", r->clamped},
        {"truncated", r->truncated},
        {"summarized", r->summarized},
        {"throttled", r->throttled},
        {"connection_errors", r->connection_errors},
        {"server_errors", r->server_errors},
        {"unexplained", r->unexplained},
        {"min_room", r->min_room},
        {"alerts", alerts},
        {"failures", hr_load_failures(r)},
    };
    json_t *root = json_pack("{s:s, s:s, s:s, s:s, s:b, s:f, s:f, s:f, s:f, s:o, s:o, s:o, s:o, s:o, s:o, s:b}", "url",
                             cfg->ep.root, "model", cfg->model, "prompt_tokens", o->prompt_spec, "max_tokens",
                             o->max_spec, "stream", cfg->stream, "overflow_share", cfg->overflow_share, "wall_seconds",
                             r->wall_s, "requests_per_second", rate(r->answered, r->wall_s), "output_tokens_per_second",
                             rate(r->output_tokens, r->wall_s), "ttft_ms", latency_json(&r->ttft), "itl_ms",
                             latency_json(&r->itl), "e2e_ms", latency_json(&r->e2e), "status", status, "error_codes",
                             codes, "notes", notes, "ok", hr_load_failures(r) == 0);
    for (size_t i = 0; root && i < sizeof counts / sizeof counts[0]; i++)
        json_object_set_new(root, counts[i].key, json_integer((json_int_t)counts[i].value));
    char *text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    if (!text) {
        fprintf(stderr, "headroom bench: out of memory writing JSON\n");
        return 1;
    }
    FILE *f = strcmp(o->json_path, "-") ? fopen(o->json_path, "w") : stdout;
    bool ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && f != stdout) ok = fclose(f) == 0 && ok;
    free(text);
    if (!ok) fprintf(stderr, "headroom bench: cannot write '%s'\n", o->json_path);
    return ok ? 0 : 1;
}

/* The checks that need no network; returns -1 to go on or the exit status. */
static int check_options(const bench_options *o, const hr_endpoint *ep) {
    const char *why = !o->url                                  ? "no URL given"
                      : o->requests_given && o->duration_given ? "--requests and --duration exclude each other"
                      : o->soak && !o->duration_given          ? "--soak runs for a --duration"
                      : (o->interval_given || o->alert_given) && !o->soak ? "--interval and --alert-room need --soak"
                                                                          : NULL;
    if (why) {
        fprintf(stderr, "headroom bench: %s (see headroom bench --help)\n", why);
        return 2;
    }
    hr_error err = {0};
    if (o->json_path && strcmp(o->json_path, "-") && hr_file_check_writable(o->json_path, &err) != HR_OK) {
        fprintf(stderr, "headroom bench: --json: %s\n", err.msg);
        return 2;
    }
    if (!hr_endpoint_is_loopback(ep) && !o->allow_remote) {
        fprintf(stderr,
                "headroom bench: refusing to load-test %s: '%s' is not a loopback address (localhost, 127.0.0.0/8, "
                "::1); pass --allow-remote only for a server you run\n",
                o->url, ep->host);
        return 2;
    }
    return -1;
}

static void print_header(FILE *out, const bench_options *o, const hr_load_config *cfg, int calib_requests) {
    char pd[160], md[160];
    hr_dist_describe(cfg->prompt_tokens, o->prompt_spec, pd, sizeof pd);
    hr_dist_describe(cfg->max_tokens, o->max_spec, md, sizeof md);
    fprintf(out, "headroom bench: %s/v1, model %s, window %lld%s\n  ", cfg->ep.root, cfg->model, (long long)cfg->window,
            o->window ? " (--window)" : "");
    if (cfg->requests) fprintf(out, "%lld requests", (long long)cfg->requests);
    else fprintf(out, "%.1f s", cfg->duration_s);
    fprintf(out, ", concurrency %d, prompt tokens %s, max tokens %s, overflow share %.2f, %s, seed %llu\n",
            cfg->concurrency, pd, md, cfg->overflow_share, cfg->stream ? "streaming" : "not streaming",
            (unsigned long long)cfg->seed);
    fprintf(out, "  prompts: '%s' repeated, %lld + %lld tokens per word (calibrated in %d requests)\n", cfg->calib.unit,
            (long long)cfg->calib.overhead, (long long)cfg->calib.per_unit, calib_requests);
    fflush(out);
}

static int run(const bench_options *o, hr_load_config *cfg) {
    hr_error err = {0};
    int64_t advertised = 0;
    if (hr_fetch_model(&cfg->ep, o->model, o->timeout, cfg->model, sizeof cfg->model, &advertised, &err) != HR_OK) {
        fprintf(stderr, "headroom bench: %s\n", err.msg);
        return 1;
    }
    cfg->window = o->window ? o->window : advertised;
    if (o->overflow_share > 0 && !cfg->window) {
        fprintf(stderr, "headroom bench: the server states no window to overflow; pass --window N\n");
        return 1;
    }
    hr_probe_session ps = {.ep = cfg->ep, .max_requests = 6, .deadline = hr_now() + o->timeout};
    snprintf(ps.model, sizeof ps.model, "%s", cfg->model);
    if (hr_prompt_calibrate(&ps, &cfg->calib, &err) != HR_OK) {
        fprintf(stderr, "headroom bench: calibrating prompt lengths: %s\n", err.msg);
        return 1;
    }
    bench_ui ui = {.o = o,
                   .out = o->json_path && !strcmp(o->json_path, "-") ? stderr : stdout,
                   .progress = isatty(STDERR_FILENO) && !o->soak,
                   .last_low_room = -1};
    print_header(ui.out, o, cfg, ps.requests);
    cfg->cb_ctx = &ui;
    cfg->on_progress = on_progress;
    cfg->on_interval = o->soak ? on_interval : NULL;
    hr_load_result r;
    if (hr_load_run(cfg, &r, &err) != HR_OK) {
        fprintf(stderr, "headroom bench: %s\n", err.msg);
        hr_load_result_free(&r);
        return 1;
    }
    if (ui.progress) fprintf(stderr, "\r%60s\r", "");
    int rc = hr_load_failures(&r) ? 1 : 0;
    print_summary(ui.out, o, cfg, &r, ui.alerts);
    if (o->json_path && write_json(o, cfg, &r, ui.alerts) != 0) rc = 1;
    hr_load_result_free(&r);
    return rc;
}

int hr_cmd_bench(int argc, char **argv) {
    bench_options o = {.prompt_spec = "32..256",
                       .max_spec = "16..128",
                       .requests = 100,
                       .concurrency = 4,
                       .seed = 1,
                       .interval = 10,
                       .timeout = 120};
    const hr_opt opts[] = {
        {"--requests", "-n", HR_OPT_INT, &o.requests, 1, 10000000, &o.requests_given},
        {"--duration", NULL, HR_OPT_FLOAT, &o.duration, 0.1, 30 * 86400, &o.duration_given},
        {"--concurrency", "-c", HR_OPT_INT, &o.concurrency, 1, 1024, NULL},
        {"--prompt-tokens", NULL, HR_OPT_TEXT, &o.prompt_spec, 0, 0, NULL},
        {"--max-tokens", NULL, HR_OPT_TEXT, &o.max_spec, 0, 0, NULL},
        {"--overflow-share", NULL, HR_OPT_FLOAT, &o.overflow_share, 0, 1, NULL},
        {"--window", NULL, HR_OPT_INT, &o.window, 1, HR_MAX_WINDOW_TOKENS, NULL},
        {"--stream", NULL, HR_OPT_FLAG, &o.stream, 0, 0, NULL},
        {"--json", NULL, HR_OPT_TEXT, &o.json_path, 0, 0, NULL},
        {"--soak", NULL, HR_OPT_FLAG, &o.soak, 0, 0, NULL},
        {"--interval", NULL, HR_OPT_FLOAT, &o.interval, 0.1, 86400, &o.interval_given},
        {"--alert-room", NULL, HR_OPT_INT, &o.alert_room, 1, 1ll << 32, &o.alert_given},
        {"--seed", NULL, HR_OPT_INT, &o.seed, 0, INT64_MAX, NULL},
        {"--model", "-m", HR_OPT_TEXT, &o.model, 0, 0, NULL},
        {"--api-key", NULL, HR_OPT_TEXT, &o.api_key, 0, 0, NULL},
        {"--timeout", NULL, HR_OPT_FLOAT, &o.timeout, 0.1, 86400, NULL},
        {"--allow-remote", NULL, HR_OPT_FLAG, &o.allow_remote, 0, 0, NULL},
    };
    int rc = hr_opts_parse("bench", BENCH_HELP, opts, sizeof opts / sizeof opts[0], argc, argv, &o.url, 1);
    if (rc >= 0) return rc;
    hr_error err = {0};
    hr_load_config cfg = {.requests = o.duration_given ? 0 : o.requests,
                          .duration_s = o.duration,
                          .concurrency = (int)o.concurrency,
                          .overflow_share = o.overflow_share,
                          .stream = o.stream,
                          .seed = (uint64_t)o.seed,
                          .timeout_s = o.timeout,
                          .interval_s = o.soak ? o.interval : 0};
    if (o.url && hr_endpoint_parse(o.url, &cfg.ep, &err) != HR_OK) {
        fprintf(stderr, "headroom bench: %s\n", err.msg);
        return 2;
    }
    if ((rc = check_options(&o, &cfg.ep)) >= 0) return rc;
    if (o.api_key) snprintf(cfg.ep.api_key, sizeof cfg.ep.api_key, "%s", o.api_key);
    hr_dist prompt, max_tokens;
    if (hr_dist_parse(o.prompt_spec, 1, 1 << 24, &prompt, &err) != HR_OK) {
        fprintf(stderr, "headroom bench: --prompt-tokens: %s\n", err.msg);
        return 2;
    }
    if (hr_dist_parse(o.max_spec, 1, 1 << 24, &max_tokens, &err) != HR_OK) {
        fprintf(stderr, "headroom bench: --max-tokens: %s\n", err.msg);
        hr_dist_free(&prompt);
        return 2;
    }
    cfg.prompt_tokens = &prompt;
    cfg.max_tokens = &max_tokens;
    rc = 1;
    if (hr_http_init(&err) != HR_OK) {
        fprintf(stderr, "headroom bench: %s\n", err.msg);
    } else {
        rc = run(&o, &cfg);
        hr_http_cleanup();
    }
    hr_dist_free(&prompt);
    hr_dist_free(&max_tokens);
    return rc;
}
