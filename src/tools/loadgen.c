#include "tools/loadgen.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/prom.h"
#include "tools/sse.h"

/* ---- the plan ---- */

void hr_load_planner_init(hr_load_planner *p, uint64_t seed) {
    hr_rng_seed(&p->rng, seed);
    p->index = 0;
}

void hr_load_plan_next(hr_load_planner *p, const hr_load_config *cfg, int64_t *units, int64_t *max_tokens, bool *over) {
    int64_t prompt = hr_dist_draw(cfg->prompt_tokens, &p->rng), m = hr_dist_draw(cfg->max_tokens, &p->rng);
    /* Request i overflows when floor((i+1) x share) steps up: exactly floor(n x share) of
     * the first n requests, spread evenly, whatever the concurrency. Parts per million
     * keep the count exact where floating point would round. */
    int64_t ppm = (int64_t)(cfg->overflow_share * 1e6 + 0.5), i = p->index++;
    *over = cfg->window > 0 && (i + 1) * ppm / 1000000 > i * ppm / 1000000;
    const hr_prompt_calib *c = &cfg->calib;
    if (*over && m < cfg->window) {
        /* A prompt that leaves less room than max_tokens, by 1 to m/4 + 1 tokens: a clamping
         * server generates fewer tokens, a refusing one refuses, neither runs long. */
        int64_t excess = 1 + (int64_t)(hr_rng_u64(&p->rng) % (uint64_t)(m / 4 + 1));
        prompt = cfg->window - m + excess;
        *units = (prompt - c->overhead + c->per_unit - 1) / c->per_unit;
        if (*units < 1) *units = 1;
    } else {
        *units = hr_prompt_units(c, prompt);
    }
    *max_tokens = m;
}

/* ---- transfers ---- */

typedef struct {
    const hr_load_config *cfg;
    CURL *h;
    struct curl_slist *headers;
    hr_strbuf body; /* a whole answer, or an error sent instead of a stream */
    hr_sse sse;
    hr_chat_answer ans;
    bool done_seen, bad_chunk, too_big;
    int64_t chunks; /* streamed chunks that carried text */
    int64_t predicted_prompt, max_tokens;
    double t_start, t_first, t_last;
} slot;

static void on_event(void *ctx, const char *data, size_t len) {
    slot *s = ctx;
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        s->done_seen = true;
        return;
    }
    json_t *chunk = json_loadb(data, len, 0, NULL);
    if (!json_is_object(chunk)) {
        s->bad_chunk = true;
    } else if (hr_chat_answer_chunk(chunk, &s->ans) > 0) {
        s->t_last = hr_now();
        if (s->chunks++ == 0) s->t_first = s->t_last;
    }
    json_decref(chunk);
}

static size_t on_data(char *data, size_t size, size_t n, void *ctx) {
    slot *s = ctx;
    long status = 0;
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    bool stream = s->cfg->stream && status >= 200 && status < 300;
    /* A reply (or one unfinished stream event) past the cap ends the transfer. */
    s->too_big = (stream ? s->sse.line.len + s->sse.data.len : s->body.len) + size * n > HR_HTTP_MAX_REPLY_BYTES;
    if (s->too_big) return 0;
    if (stream) hr_sse_feed(&s->sse, data, size * n, on_event, s);
    else hr_strbuf_append(&s->body, data, size * n);
    return size * n;
}

static void slot_clear(slot *s) {
    if (s->h) curl_easy_cleanup(s->h);
    curl_slist_free_all(s->headers);
    hr_strbuf_free(&s->body);
    hr_sse_free(&s->sse);
    const hr_load_config *cfg = s->cfg;
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
}

static hr_status slot_start(slot *s, CURLM *multi, hr_load_planner *planner, hr_load_result *r, hr_error *err) {
    const hr_load_config *cfg = s->cfg;
    int64_t units;
    bool over;
    hr_load_plan_next(planner, cfg, &units, &s->max_tokens, &over);
    s->predicted_prompt = hr_prompt_tokens(&cfg->calib, units);
    if (cfg->window > 0 && s->predicted_prompt + s->max_tokens > cfg->window) r->planned_over++;
    hr_strbuf text = {0};
    hr_prompt_text(&cfg->calib, units, &text);
    char *body = text.oom ? NULL : hr_chat_body(cfg->model, hr_strbuf_str(&text), text.len, s->max_tokens, cfg->stream);
    hr_strbuf_free(&text);
    s->h =
        body ? hr_http_handle(&cfg->ep, "/v1/chat/completions", body, cfg->timeout_s, &s->headers, on_data, s) : NULL;
    free(body);
    if (!s->h) return hr_fail(err, HR_ERR_NOMEM, "out of memory starting a request");
    curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
    hr_chat_answer_init(&s->ans, 0);
    s->t_start = hr_now();
    if (curl_multi_add_handle(multi, s->h) != CURLM_OK) return hr_fail(err, HR_ERR_IO, "libcurl refused a transfer");
    r->sent++;
    return HR_OK;
}

static void note(hr_load_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(hr_load_result *r, const char *fmt, ...) {
    if (r->n_notes >= HR_LOAD_MAX_NOTES) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->notes[r->n_notes++], sizeof r->notes[0], fmt, ap);
    va_end(ap);
}

static void count_code(hr_load_result *r, const char *code) {
    if (!code[0]) return;
    for (int64_t i = 0; i < r->n_codes; i++)
        if (!strcmp(r->codes[i].code, code)) {
            r->codes[i].count++;
            return;
        }
    if (r->n_codes == HR_LOAD_MAX_CODES) {
        r->other_codes++;
        return;
    }
    snprintf(r->codes[r->n_codes].code, sizeof r->codes[0].code, "%s", code);
    r->codes[r->n_codes++].count = 1;
}

/* Per-interval tallies for soak reports. */
typedef struct {
    int64_t answered, failed, refused, clamped, min_room;
    hr_samples e2e;
} tally;

static void tally_reset(tally *t) {
    hr_samples_free(&t->e2e);
    memset(t, 0, sizeof *t);
    t->min_room = -1;
}

static void keep_min(int64_t *min, int64_t v) {
    if (v >= 0 && (*min < 0 || v < *min)) *min = v;
}

/* A successful answer: latencies, tokens, and what the headroom object says. */
static void record_success(slot *s, hr_load_result *r, tally *t, double now) {
    const hr_load_config *cfg = s->cfg;
    hr_chat_answer *a = &s->ans;
    if (!cfg->stream) hr_chat_answer_parse(a->status, s->body.data, s->body.len, a);
    if (a->malformed || s->bad_chunk || (cfg->stream && !s->done_seen) || a->error_message[0]) {
        r->unexplained++;
        t->failed++;
        note(r, "HTTP %ld but %s", a->status,
             a->error_message[0] ? a->error_message
             : cfg->stream       ? (s->done_seen ? "a chunk was not JSON" : "the stream ended without [DONE]")
                                 : "the body is not a chat completion");
        return;
    }
    int64_t tokens = a->completion_tokens >= 0 ? a->completion_tokens : s->chunks;
    r->output_tokens += tokens;
    if (a->prompt_tokens > 0) r->prompt_tokens += a->prompt_tokens;
    hr_samples_push(&r->e2e, now - s->t_start);
    hr_samples_push(&t->e2e, now - s->t_start);
    if (cfg->stream && s->chunks > 0) {
        hr_samples_push(&r->ttft, s->t_first - s->t_start);
        if (tokens > 1) hr_samples_push(&r->itl, (s->t_last - s->t_first) / (double)(tokens - 1));
    }
    if (hr_chat_answer_clamped(a)) {
        r->clamped++;
        t->clamped++;
    }
    if (hr_chat_answer_truncated(a)) r->truncated++;
    if (a->summarized) r->summarized++;
    if (a->has_headroom) {
        keep_min(&r->min_room, a->room);
        keep_min(&t->min_room, a->room);
    }
}

/* An error answer: explained when it is the refusal an overflowing request asked for. */
static void record_refusal(slot *s, hr_load_result *r, tally *t) {
    hr_chat_answer a;
    hr_chat_answer_parse(s->ans.status, s->body.data, s->body.len, &a);
    count_code(r, a.error_code);
    bool context = !strcmp(a.error_code, "context_length_exceeded") && (a.status == 400 || a.status == 413);
    if (a.status >= 500) {
        r->server_errors++;
        t->failed++;
        note(r, "HTTP %ld: %s", a.status, a.error_message);
    } else if (a.status == 429) {
        r->throttled++;
    } else if (context && (s->cfg->window == 0 || s->predicted_prompt + s->max_tokens > s->cfg->window)) {
        t->refused++;
    } else {
        r->unexplained++;
        t->failed++;
        if (context)
            note(r, "refused a request that fits the %lld-token window (~%lld prompt + %lld max_tokens): %s",
                 (long long)s->cfg->window, (long long)s->predicted_prompt, (long long)s->max_tokens, a.error_message);
        else note(r, "HTTP %ld: %s", a.status, a.error_message);
    }
}

static void slot_finish(slot *s, CURLcode rc, hr_load_result *r, tally *t) {
    double now = hr_now();
    if (rc != CURLE_OK) {
        r->connection_errors++;
        t->failed++;
        if (s->too_big) note(r, "no answer: a reply or stream event larger than %u MiB", HR_HTTP_MAX_REPLY_BYTES >> 20);
        else note(r, "no answer: %s", curl_easy_strerror(rc));
        return;
    }
    long status = 0;
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    s->ans.status = status;
    r->answered++;
    t->answered++;
    r->status[status > 0 && status < 600 ? status : 0]++;
    if (status >= 200 && status < 300) record_success(s, r, t, now);
    else record_refusal(s, r, t);
}

/* ---- soak intervals ---- */

/* A blocking GET between transfers: on loopback it takes a millisecond, and the soak
 * report it feeds is coarse anyway. */
static void scrape(const hr_load_config *cfg, hr_load_interval *iv) {
    hr_http_reply reply;
    hr_error err;
    double timeout = cfg->interval_s < 2 ? cfg->interval_s : 2;
    if (hr_http_request(&cfg->ep, "/metrics", NULL, timeout, &reply, &err) == HR_OK && reply.status == 200) {
        const char *text = hr_strbuf_str(&reply.body);
        iv->have_metrics = hr_prom_value(text, "headroom_kv_usage_ratio", &iv->kv_usage) &&
                           hr_prom_value(text, "headroom_low_room_total", &iv->low_room_total) &&
                           hr_prom_value(text, "headroom_requests_running", &iv->running) &&
                           hr_prom_value(text, "headroom_requests_waiting", &iv->waiting);
    }
    hr_http_reply_free(&reply);
}

static void report_interval(const hr_load_config *cfg, tally *t, double elapsed, double span) {
    hr_load_interval iv = {.t = elapsed,
                           .span = span,
                           .answered = t->answered,
                           .failed = t->failed,
                           .refused = t->refused,
                           .clamped = t->clamped,
                           .min_room = t->min_room};
    hr_summarize(&t->e2e, &iv.e2e);
    scrape(cfg, &iv);
    cfg->on_interval(cfg->cb_ctx, &iv);
    tally_reset(t);
}

/* ---- the loop ---- */

hr_status hr_load_run(const hr_load_config *cfg, hr_load_result *out, hr_error *err) {
    memset(out, 0, sizeof *out);
    out->min_room = -1;
    CURLM *multi = curl_multi_init();
    slot *slots = calloc((size_t)cfg->concurrency, sizeof *slots);
    if (!multi || !slots) {
        free(slots);
        if (multi) curl_multi_cleanup(multi);
        return hr_fail(err, HR_ERR_NOMEM, "out of memory for %d transfers", cfg->concurrency);
    }
    hr_load_planner planner;
    hr_load_planner_init(&planner, cfg->seed);
    tally t = {0};
    tally_reset(&t);
    double start = hr_now(), next_report = start + cfg->interval_s;
    int active = 0;
    hr_status st = HR_OK;
    for (int i = 0; i < cfg->concurrency; i++) slots[i].cfg = cfg;
    for (;;) {
        double now = hr_now();
        bool more = cfg->requests ? out->sent < cfg->requests : now - start < cfg->duration_s;
        for (int i = 0; st == HR_OK && more && i < cfg->concurrency; i++)
            if (!slots[i].h) {
                st = slot_start(&slots[i], multi, &planner, out, err);
                if (st == HR_OK) active++;
                more = cfg->requests ? out->sent < cfg->requests : true;
            }
        if (st != HR_OK || active == 0) break;
        int running;
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            char *priv;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            slot *s = (slot *)priv;
            slot_finish(s, msg->data.result, out, &t);
            curl_multi_remove_handle(multi, s->h);
            slot_clear(s);
            active--;
            if (cfg->on_progress) {
                hr_load_progress p = {.done = out->sent - active,
                                      .total = cfg->requests,
                                      .elapsed = hr_now() - start,
                                      .duration = cfg->duration_s};
                cfg->on_progress(cfg->cb_ctx, &p);
            }
        }
        if (cfg->interval_s > 0 && cfg->on_interval && hr_now() >= next_report) {
            report_interval(cfg, &t, hr_now() - start, hr_now() - (next_report - cfg->interval_s));
            next_report += cfg->interval_s;
        }
        curl_multi_poll(multi, NULL, 0, 50, NULL);
    }
    out->wall_s = hr_now() - start;
    if (cfg->interval_s > 0 && cfg->on_interval && t.answered + t.failed > 0)
        report_interval(cfg, &t, out->wall_s, start + out->wall_s - (next_report - cfg->interval_s));
    for (int i = 0; i < cfg->concurrency; i++) {
        if (slots[i].h) curl_multi_remove_handle(multi, slots[i].h);
        slot_clear(&slots[i]);
    }
    tally_reset(&t);
    free(slots);
    curl_multi_cleanup(multi);
    return st;
}

void hr_load_result_free(hr_load_result *r) {
    hr_samples_free(&r->ttft);
    hr_samples_free(&r->itl);
    hr_samples_free(&r->e2e);
}

int64_t hr_load_failures(const hr_load_result *r) { return r->server_errors + r->connection_errors + r->unexplained; }
