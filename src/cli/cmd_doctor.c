/* headroom doctor — names every layer that caps the sequence length, says which one
 * binds, does the memory math, and gives advice: for a model and the flags `serve`
 * would get, or for a running server from what it reports plus a probe. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget/budget.h"
#include "cli/commands.h"
#include "cli/opts.h"
#include "formats/ggml_type.h"
#include "model/model.h"
#include "tools/capacity.h"
#include "tools/client.h"
#include "tools/probe.h"
#include "tools/prom.h"

static const char DOCTOR_HELP[] =
    "usage: headroom doctor MODEL [serve flags]\n"
    "       headroom doctor --url URL [--model NAME] [--api-key KEY] [--max-requests N] [--timeout S]\n"
    "\n"
    "Prints every layer that caps the sequence length, its value, where it came from and\n"
    "which one binds: the trained context (<arch>.context_length), RoPE scaling (type,\n"
    "factor, original context -> effective length), the sliding window, --ctx-size, what\n"
    "the KV pool holds for one sequence and for --parallel sequences, --min-room, and a\n"
    "gateway lane (--lane-max). Then the memory math: KV bytes per token for each KV type,\n"
    "the weights, the total at the chosen window and parallelism, and whether it fits in\n"
    "--mem. Ends with advice; exits 1 when the configuration cannot serve.\n"
    "\n"
    "With --url, does the same for a running server from what it reports (/v1/models,\n"
    "/v1/headroom, /metrics) and a probe of its real cap (see headroom probe).\n"
    "\n"
    "options (the serve flags that shape the window and memory; other serve flags are accepted):\n"
    "  -m, --model PATH          the model (or give it as the first argument); with --url: a model name\n"
    "      --tokenizer PATH      llama2.c tokenizer.bin\n"
    "  -c, --ctx-size N          window per request (default: the trained context)\n"
    "      --parallel N          requests generated at once (default 4, as serve)\n"
    "      --kv-mem BYTES        KV pool size (default: ctx-size x parallel tokens)\n"
    "      --kv-type T           f16 (default), f32, q8_0\n"
    "      --kv-block N          tokens per KV block (default 16)\n"
    "      --policy P            clamp (default), reject, truncate, summarize\n"
    "      --min-room N          clamp refuses a request with less room than this (default 1)\n"
    "      --lane-max N          a gateway lane in front of the server caps requests at N tokens\n"
    "      --mem BYTES           memory to fit in (default: this machine's MemAvailable)\n"
    "      --url URL             diagnose a running server (base URL, with or without /v1)\n"
    "      --api-key KEY         with --url: sent as 'Authorization: Bearer KEY'\n"
    "      --max-requests N      with --url: the probe's request budget (default 40)\n"
    "      --timeout S           with --url: the probe's time budget in seconds (default 120)\n"
    "  -v, --verbose             with --url: print each probe request on stderr\n"
    "  -h, --help                this help\n";

typedef struct {
    const char *model, *tokenizer, *kv_type, *policy, *url, *api_key;
    int64_t ctx_size, parallel, kv_block, min_room, lane_max, max_requests;
    uint64_t kv_mem, mem;
    double timeout;
    bool mem_given, verbose, ctx_given;
} doctor_options;

/* ---- advice ---- */

typedef struct {
    char lines[12][600];
    int n, problems;
} advice;

static void advise(advice *a, bool problem, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void advise(advice *a, bool problem, const char *fmt, ...) {
    if (a->n == (int)(sizeof a->lines / sizeof a->lines[0])) return;
    int k = snprintf(a->lines[a->n], sizeof a->lines[0], "%s", problem ? "problem: " : "advice:  ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->lines[a->n] + k, sizeof a->lines[0] - (size_t)k, fmt, ap);
    va_end(ap);
    a->n++;
    a->problems += problem;
}

static int finish(const advice *a) {
    printf("\n");
    if (a->n == 0) printf("no problems found\n");
    for (int i = 0; i < a->n; i++) printf("%s\n", a->lines[i]);
    return a->problems ? 1 : 0;
}

/* ---- the cap table ---- */

static void cap_row(const char *label, int64_t value, const char *from, bool binds) {
    char v[32] = "-";
    if (value > 0) snprintf(v, sizeof v, "%lld", (long long)value);
    printf("  %-24s %9s  %s%s\n", label, v, from, binds ? "   <- binds" : "");
}

static const char *fmt_b(uint64_t b, char buf[32]) {
    hr_format_bytes(b, buf, 32);
    return buf;
}

/* Loads the model as serve would and reads its shape (metadata beyond hr_hparams too). */
static hr_status load_shape(const doctor_options *o, hr_model **m, hr_model_shape *s, hr_error *err) {
    if (hr_model_load(m, o->model, o->tokenizer, err) != HR_OK) return err->status;
    if ((*m)->source == HR_MODEL_GGUF) {
        if (hr_shape_from_gguf(&(*m)->gguf, o->model, s, err) != HR_OK) return err->status;
        s->weight_bytes = hr_model_weight_bytes(*m);
    } else {
        hr_shape_from_hparams(&(*m)->hp, o->model, hr_model_weight_bytes(*m), s);
    }
    /* The engine holds sequences to what the loader read, whatever other metadata says. */
    s->ctx_train = (*m)->hp.n_ctx_train;
    return HR_OK;
}

static void print_caps(const doctor_options *o, const hr_model_shape *s, const hr_pool_plan *p, int64_t window) {
    char from[256], rope[128];
    printf("\nsequence-length caps             value  from\n");
    snprintf(from, sizeof from, "%s (%s)", s->ctx_key, s->source);
    cap_row("trained context", s->ctx_train, from, s->ctx_train == window);
    hr_rope_describe(s, rope, sizeof rope);
    if (!s->rope.type[0] && !strcmp(s->source, "GGUF metadata"))
        snprintf(from, sizeof from, "none (no %s.rope.scaling.type)", s->arch);
    else snprintf(from, sizeof from, "%s", rope);
    cap_row("RoPE scaling", s->rope.type[0] ? hr_shape_effective_ctx(s) : 0, from, false);
    if (s->sliding_window)
        snprintf(from, sizeof from, "%s.attention.sliding_window: the attention span, not a cap on length", s->arch);
    else snprintf(from, sizeof from, "none");
    cap_row("sliding window", s->sliding_window, from, false);
    if (!o->ctx_given) snprintf(from, sizeof from, "not given: the trained context");
    else if (p->ctx_capped)
        snprintf(from, sizeof from, "%lld given, above the trained context: serve uses %lld", (long long)o->ctx_size,
                 (long long)p->ctx);
    else snprintf(from, sizeof from, "given");
    cap_row("--ctx-size", p->ctx, from, o->ctx_given && !p->ctx_capped && p->ctx == window);
    if (o->kv_mem)
        snprintf(from, sizeof from, "%lld blocks x %lld tokens, from --kv-mem %llu", (long long)p->n_blocks,
                 (long long)p->block_tokens, (unsigned long long)o->kv_mem);
    else
        snprintf(from, sizeof from, "%lld blocks x %lld tokens, from ctx-size x parallel %lld", (long long)p->n_blocks,
                 (long long)p->block_tokens, (long long)p->parallel);
    cap_row("KV pool, one sequence", p->pool_tokens, from, p->pool_tokens == window);
    char label[64];
    snprintf(label, sizeof label, "KV pool, %lld at once", (long long)p->parallel);
    snprintf(from, sizeof from, "tokens each when all run at full length; beyond that the newest is preempted");
    cap_row(label, p->pool_tokens / p->parallel, from, false);
    cap_row("gateway lane", o->lane_max, o->lane_max ? "--lane-max" : "none given (--lane-max)",
            o->lane_max && o->lane_max == window);
    printf("  %-24s %9lld  prompt + max_tokens of one request\n", "=> window", (long long)window);
    printf("  %-24s %9lld  largest prompt under clamp: %lld tokens (policy %s)\n", "--min-room", (long long)o->min_room,
           (long long)(window - o->min_room), o->policy);
}

static void print_memory(const doctor_options *o, const hr_model_shape *s, const hr_pool_plan *p, uint32_t kv,
                         const char *mem_source, advice *a) {
    char b1[32], b2[32], b3[32], b4[32], formula[160], all[320], params[32];
    hr_kv_formula(s, kv, formula, sizeof formula);
    hr_kv_by_type(s, all, sizeof all);
    hr_format_count(s->n_params, params, sizeof params);
    printf("\nmemory\n");
    printf("  KV per token   %s\n                 (%s)\n", formula, all);
    printf("  weights        %s (%s parameters, mapped from the file)\n", fmt_b(s->weight_bytes, b1), params);
    printf("  KV pool        %s (%lld tokens x %llu B)\n", fmt_b(p->pool_bytes, b1), (long long)p->pool_tokens,
           (unsigned long long)p->bytes_per_token);
    uint64_t total = hr_sat_add_u64(s->weight_bytes, p->pool_bytes);
    bool fits = total <= o->mem;
    printf("  total          %s of %s (%s): %s\n", fmt_b(total, b1), fmt_b(o->mem, b2), mem_source,
           fits ? "fits" : "does NOT fit");
    if (!fits) {
        uint64_t f16 = hr_shape_kv_bytes_per_token(s, HR_TYPE_F16), q8 = hr_shape_kv_bytes_per_token(s, HR_TYPE_Q8_0);
        char q8_text[48] = "unusable"; /* q8_0 needs heads of whole 32-element blocks */
        if (q8) snprintf(q8_text, sizeof q8_text, "%s/token", fmt_b(q8, b4));
        advise(a, true,
               "weights + KV pool need %s but %s is available: lower --parallel or --ctx-size, set --kv-mem, or use "
               "a smaller --kv-type (f16 %s/token, q8_0 %s)",
               fmt_b(total, b1), fmt_b(o->mem, b2), fmt_b(f16, b3), q8_text);
    } else if (total > o->mem / 10 * 9) {
        advise(a, false, "weights + KV pool take %s of the %s available: little is left for anything else",
               fmt_b(total, b1), fmt_b(o->mem, b2));
    }
}

static void check_caps(const doctor_options *o, const hr_model_shape *s, const hr_pool_plan *p, int64_t window,
                       advice *a) {
    char b1[32];
    int64_t effective = hr_shape_effective_ctx(s);
    if (p->ctx_capped && effective > s->ctx_train)
        advise(a, false,
               "--ctx-size %lld is above the trained context %lld; the model's RoPE scaling reaches %lld positions, "
               "but serve holds the window to the trained context it reads from %s",
               (long long)o->ctx_size, (long long)s->ctx_train, (long long)effective, s->ctx_key);
    else if (p->ctx_capped)
        advise(a, false,
               "--ctx-size %lld is above the trained context %lld and the model has no RoPE scaling: serve holds the "
               "window to %lld; for longer inputs use a longer-context model",
               (long long)o->ctx_size, (long long)s->ctx_train, (long long)s->ctx_train);
    if (p->pool_tokens < p->ctx)
        advise(a, false,
               "the KV pool holds %lld tokens, fewer than the %lld-token context: every request is capped at %lld; "
               "raise --kv-mem to at least %s (%lld tokens x %llu B) or lower --ctx-size",
               (long long)p->pool_tokens, (long long)p->ctx, (long long)p->pool_tokens,
               fmt_b((uint64_t)p->ctx * p->bytes_per_token, b1), (long long)p->ctx,
               (unsigned long long)p->bytes_per_token);
    else if (p->pool_tokens < p->ctx * p->parallel)
        advise(a, false,
               "%lld sequences at full length need %lld tokens of KV and the pool holds %lld: under full load the "
               "newest are preempted and recomputed (slower, never a crash); --kv-mem %llu holds them all",
               (long long)p->parallel, (long long)(p->ctx * p->parallel), (long long)p->pool_tokens,
               (unsigned long long)((uint64_t)(p->ctx * p->parallel) * p->bytes_per_token));
    if (o->min_room >= window)
        advise(a, true, "--min-room %lld leaves nothing of a %lld-token window: every request would be refused",
               (long long)o->min_room, (long long)window);
    if (o->lane_max > window)
        advise(a, false,
               "the gateway lane lets %lld tokens through but the window is %lld: requests in between pass the "
               "gateway and are fitted or refused by the server; set the lane to at most %lld",
               (long long)o->lane_max, (long long)window, (long long)window);
}

static int doctor_model(doctor_options *o) {
    hr_error err = {0};
    hr_type kv;
    hr_policy policy;
    if (hr_type_from_name(o->kv_type, &kv, &err) != HR_OK || hr_policy_from_name(o->policy, &policy, &err) != HR_OK) {
        fprintf(stderr, "headroom doctor: %s\n", err.msg);
        return 2;
    }
    const char *mem_source = "--mem";
    if (!o->mem_given) {
        if (hr_mem_available(&o->mem, &err) != HR_OK) {
            fprintf(stderr, "headroom doctor: %s\n", err.msg);
            return 1;
        }
        mem_source = "this machine's MemAvailable";
    }
    hr_model *m = NULL;
    hr_model_shape s;
    hr_pool_plan p;
    hr_engine_config cfg = {.ctx_size = (int32_t)o->ctx_size,
                            .parallel = (int32_t)o->parallel,
                            .kv_mem_bytes = o->kv_mem,
                            .block_tokens = (int32_t)o->kv_block,
                            .kv_type = kv};
    if (load_shape(o, &m, &s, &err) != HR_OK) {
        printf("headroom doctor: %s\n\nproblem: serve cannot load the model: %s\n", o->model, err.msg);
        hr_model_free(m);
        return 1;
    }
    char desc[256];
    hr_shape_describe(&s, desc, sizeof desc);
    printf("headroom doctor: %s (%s)\n", o->model, desc);
    advice a = {0};
    if (hr_pool_plan_compute(&s, &cfg, &p, &err) != HR_OK) {
        advise(&a, true, "serve would refuse these flags: %s", err.msg);
        hr_model_free(m);
        return finish(&a);
    }
    int64_t window = p.window;
    if (o->lane_max && o->lane_max < window) window = o->lane_max;
    print_caps(o, &s, &p, window);
    print_memory(o, &s, &p, kv, mem_source, &a);
    check_caps(o, &s, &p, window, &a);
    hr_model_free(m);
    return finish(&a);
}

/* ---- a running server ---- */

static void log_line(void *ctx, const char *line) {
    (void)ctx;
    fprintf(stderr, "headroom doctor: %s\n", line);
}

/* GETs path; the body on 200, else NULL (the caller frees). */
static char *fetch(const hr_endpoint *ep, const char *path, double timeout) {
    hr_http_reply r;
    hr_error err;
    char *text = NULL;
    if (hr_http_request(ep, path, NULL, timeout, &r, &err) == HR_OK && r.status == 200 && !r.body.oom) {
        text = r.body.data;
        r.body.data = NULL;
    }
    hr_http_reply_free(&r);
    return text;
}

static int doctor_url(doctor_options *o) {
    hr_error err = {0};
    hr_probe_session ps = {.max_requests = (int)o->max_requests, .log = o->verbose ? log_line : NULL};
    if (hr_endpoint_parse(o->url, &ps.ep, &err) != HR_OK) {
        fprintf(stderr, "headroom doctor: --url %s\n", err.msg);
        return 2;
    }
    if (o->api_key) snprintf(ps.ep.api_key, sizeof ps.ep.api_key, "%s", o->api_key);
    if (hr_http_init(&err) != HR_OK) {
        fprintf(stderr, "headroom doctor: %s\n", err.msg);
        return 1;
    }
    ps.deadline = hr_now() + o->timeout;
    hr_probe_result r = {0};
    if (hr_fetch_model(&ps.ep, o->model, o->timeout, ps.model, sizeof ps.model, &r.advertised, &err) != HR_OK) {
        fprintf(stderr, "headroom doctor: %s\n", err.msg);
        hr_http_cleanup();
        return 1;
    }
    printf("headroom doctor: %s/v1 (model %s)\n\nsequence-length caps the server reports\n", ps.ep.root, ps.model);
    cap_row("/v1/models window", r.advertised, r.advertised ? "context_window / max_model_len" : "not stated", false);
    char *headroom = fetch(&ps.ep, "/v1/headroom", o->timeout), *metrics = fetch(&ps.ep, "/metrics", o->timeout);
    json_t *h = headroom ? json_loads(headroom, 0, NULL) : NULL;
    int64_t h_window = json_integer_value(json_object_get(h, "window"));
    const json_t *pool = json_object_get(h, "pool");
    int64_t pool_tokens = json_integer_value(json_object_get(pool, "tokens_total"));
    char from[256];
    snprintf(from, sizeof from, "%s", h ? "window" : "no /v1/headroom (not a headroom server)");
    cap_row("/v1/headroom window", h_window, from, false);
    snprintf(from, sizeof from, "%lld blocks x %lld tokens, shared by all requests",
             (long long)json_integer_value(json_object_get(pool, "blocks_total")),
             (long long)json_integer_value(json_object_get(pool, "block_tokens")));
    cap_row("KV pool", pool_tokens, pool ? from : "not reported", false);
    double mw = 0, usage = 0, low = 0;
    bool have_metrics = metrics && hr_prom_value(metrics, "headroom_window_tokens", &mw);
    cap_row("/metrics window", (int64_t)mw, have_metrics ? "headroom_window_tokens" : "no headroom metrics", false);
    hr_probe_run(&ps, &r, &err);
    advice a = {0};
    if (!r.calib.per_unit) {
        advise(&a, true, "the probe could not start: %s", err.msg);
    } else {
        char summary[768], line[900];
        hr_probe_summary(&r, summary, sizeof summary);
        snprintf(line, sizeof line, "probe, %d requests: %s", r.requests, summary);
        cap_row("=> probed window", r.total_ok, line, true);
        if (r.advertised && r.total_ok != r.advertised && !r.stopped[0])
            advise(&a, false,
                   "the server advertises %lld tokens but accepts %lld: a layer %s the advertised window binds "
                   "(a runtime flag, the KV pool, a gateway or the prompt template)",
                   (long long)r.advertised, (long long)r.total_ok, r.total_ok < r.advertised ? "below" : "beside");
        if (r.clamp == HR_CLAMP_SILENT)
            advise(&a, false,
                   "the server lowers max_tokens silently: clients see short answers with no error; "
                   "check finish_reason, or ask for the reject policy");
        if (r.prompt_truncated)
            advise(&a, false, "the server truncated a long prompt without an error (counted %lld of ~%lld tokens)",
                   (long long)r.truncated_counted, (long long)r.truncated_sent);
        if (r.stopped[0]) advise(&a, false, "the probe stopped early: %s", r.stopped);
    }
    if (pool_tokens && h_window && pool_tokens < h_window)
        advise(&a, false, "the KV pool (%lld tokens) is smaller than one window (%lld)", (long long)pool_tokens,
               (long long)h_window);
    if (have_metrics && hr_prom_value(metrics, "headroom_kv_usage_ratio", &usage) &&
        hr_prom_value(metrics, "headroom_low_room_total", &low))
        printf("\nnow: KV pool %.0f%% in use, %.0f low-room events so far\n", usage * 100, low);
    int rc = finish(&a);
    json_decref(h);
    free(headroom);
    free(metrics);
    hr_http_cleanup();
    return rc;
}

int hr_cmd_doctor(int argc, char **argv) {
    doctor_options o = {.kv_type = HR_CLI_KV_TYPE,
                        .policy = "clamp",
                        .parallel = 4,
                        .kv_block = 16,
                        .min_room = 1,
                        .max_requests = 40,
                        .timeout = 120};
    const hr_opt opts[] = {
        {"--model", "-m", HR_OPT_TEXT, &o.model, 0, 0, NULL},
        {"--tokenizer", NULL, HR_OPT_TEXT, &o.tokenizer, 0, 0, NULL},
        {"--ctx-size", "-c", HR_OPT_INT, &o.ctx_size, 1, INT32_MAX, &o.ctx_given},
        {"--parallel", NULL, HR_OPT_INT, &o.parallel, 1, 4096, NULL},
        {"--kv-mem", NULL, HR_OPT_SIZE, &o.kv_mem, 0, 0, NULL},
        {"--kv-type", NULL, HR_OPT_TEXT, &o.kv_type, 0, 0, NULL},
        {"--kv-block", NULL, HR_OPT_INT, &o.kv_block, 1, 4096, NULL},
        {"--policy", NULL, HR_OPT_TEXT, &o.policy, 0, 0, NULL},
        {"--min-room", NULL, HR_OPT_INT, &o.min_room, 1, INT32_MAX, NULL},
        {"--lane-max", NULL, HR_OPT_INT, &o.lane_max, 1, INT32_MAX, NULL},
        {"--mem", NULL, HR_OPT_SIZE, &o.mem, 0, 0, &o.mem_given},
        {"--url", NULL, HR_OPT_TEXT, &o.url, 0, 0, NULL},
        {"--api-key", NULL, HR_OPT_TEXT, &o.api_key, 0, 0, NULL},
        {"--max-requests", NULL, HR_OPT_INT, &o.max_requests, 4, 1000, NULL},
        {"--timeout", NULL, HR_OPT_FLOAT, &o.timeout, 0.1, 86400, NULL},
        {"--verbose", "-v", HR_OPT_FLAG, &o.verbose, 0, 0, NULL},
        /* serve flags that do not shape the window or memory: checked, then ignored */
        {"--host", NULL, HR_OPT_TEXT, NULL, 0, 0, NULL},
        {"--port", NULL, HR_OPT_INT, NULL, 0, 65535, NULL},
        {"--threads", "-t", HR_OPT_INT, NULL, 1, 1024, NULL},
        {"--max-batch-tokens", NULL, HR_OPT_INT, NULL, 1, 1 << 20, NULL},
        {"--alert-room", NULL, HR_OPT_INT, NULL, 0, INT32_MAX, NULL},
        {"--max-queue", NULL, HR_OPT_INT, NULL, 1, 1 << 20, NULL},
        {"--chat-template", NULL, HR_OPT_TEXT, NULL, 0, 0, NULL},
        {"--model-id", NULL, HR_OPT_TEXT, NULL, 0, 0, NULL},
    };
    const char *positional = NULL;
    int rc = hr_opts_parse("doctor", DOCTOR_HELP, opts, sizeof opts / sizeof opts[0], argc, argv, &positional, 1);
    if (rc >= 0) return rc;
    if (positional && o.model) {
        fprintf(stderr, "headroom doctor: two models given ('%s' and '%s')\n", positional, o.model);
        return 2;
    }
    if (positional) o.model = positional;
    if (o.url) return doctor_url(&o);
    if (!o.model) {
        fprintf(stderr, "headroom doctor: no model given; pass MODEL or --url URL (see headroom doctor --help)\n");
        return 2;
    }
    return doctor_model(&o);
}
