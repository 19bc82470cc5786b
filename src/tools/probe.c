#include "tools/probe.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    MAX_PROBE_TOKENS = 1 << 20, /* a longer cap than this is reported as "none found" */
    OVER = 16,                  /* tokens the over-the-cap request asks beyond it */
};

/* ---- synthetic prompts ---- */

void hr_prompt_text(const hr_prompt_calib *c, int64_t units, hr_strbuf *out) {
    size_t unit_len = strlen(c->unit);
    for (int64_t i = 0; i < units; i++) {
        if (i) hr_strbuf_append(out, " ", 1);
        hr_strbuf_append(out, c->unit, unit_len);
    }
}

int64_t hr_prompt_tokens(const hr_prompt_calib *c, int64_t units) { return c->overhead + c->per_unit * units; }

int64_t hr_prompt_units(const hr_prompt_calib *c, int64_t tokens) {
    int64_t spare = tokens - c->overhead;
    return spare < c->per_unit ? 1 : spare / c->per_unit;
}

static void logf_(hr_probe_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(hr_probe_session *s, const char *fmt, ...) {
    if (!s->log) return;
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->log(s->log_ctx, line);
}

hr_status hr_probe_send(hr_probe_session *s, const hr_prompt_calib *c, int64_t units, int64_t max_tokens,
                        hr_chat_answer *out, hr_error *err) {
    if (s->requests >= s->max_requests)
        return hr_fail(err, HR_ERR_RANGE, "used all %d requests (raise --max-requests)", s->max_requests);
    double left = s->deadline - hr_now();
    if (left <= 0) return hr_fail(err, HR_ERR_RANGE, "ran out of time (raise --timeout)");
    hr_strbuf text = {0};
    hr_prompt_text(c, units, &text);
    char *body = text.oom ? NULL : hr_chat_body(s->model, hr_strbuf_str(&text), text.len, max_tokens, false);
    hr_strbuf_free(&text);
    if (!body) return hr_fail(err, HR_ERR_NOMEM, "out of memory building a %lld-word prompt", (long long)units);
    hr_http_reply reply;
    s->requests++;
    hr_status st = hr_http_request(&s->ep, "/v1/chat/completions", body, left, &reply, err);
    free(body);
    if (st == HR_OK) {
        hr_chat_answer_parse(reply.status, reply.body.data, reply.body.len, out);
        logf_(s,
              "request %d: %lld x '%s' (~%lld prompt tokens), max_tokens %lld -> HTTP %ld, prompt_tokens %lld, "
              "completion_tokens %lld%s%s",
              s->requests, (long long)units, c->unit, (long long)hr_prompt_tokens(c, units), (long long)max_tokens,
              reply.status, (long long)out->prompt_tokens, (long long)out->completion_tokens,
              out->error_message[0] ? ": " : "", out->error_message);
    }
    hr_http_reply_free(&reply);
    return st;
}

/* ---- calibration ---- */

static bool is_success(const hr_chat_answer *a) { return a->status >= 200 && a->status < 300 && !a->malformed; }

/* Prompt tokens the server counts for `units` repetitions of c->unit. HR_ERR_RANGE when
 * the server refused the request as invalid (400, 413, 422): perhaps too long. */
static hr_status measure(hr_probe_session *s, const hr_prompt_calib *c, int64_t units, int64_t *tokens, hr_error *err) {
    hr_chat_answer a;
    if (hr_probe_send(s, c, units, 1, &a, err) != HR_OK) return err->status;
    if (!is_success(&a))
        return hr_fail(err, a.status == 400 || a.status == 413 || a.status == 422 ? HR_ERR_RANGE : HR_ERR_IO,
                       "calibration: %lld words of '%s' with max_tokens 1 answered HTTP %ld: %s", (long long)units,
                       c->unit, a.status, a.malformed ? "not a chat completion" : a.error_message);
    if (a.prompt_tokens < 0)
        return hr_fail(err, HR_ERR_UNSUPPORTED,
                       "the server's answers carry no usage.prompt_tokens, so prompt lengths cannot be calibrated");
    *tokens = a.prompt_tokens;
    return HR_OK;
}

/* Fits overhead and per_unit from two lengths; per_unit stays 0 when the counts are not
 * linear (every repetition must cost the same whole number of tokens). */
static hr_status measure_pair(hr_probe_session *s, hr_prompt_calib *c, int64_t n_short, int64_t n_long, hr_error *err) {
    int64_t t_short, t_long;
    if (measure(s, c, n_short, &t_short, err) != HR_OK || measure(s, c, n_long, &t_long, err) != HR_OK)
        return err->status;
    int64_t diff = t_long - t_short, span = n_long - n_short;
    c->per_unit = 0;
    if (diff <= 0 || diff % span != 0 || t_short - n_short * (diff / span) < 0) return HR_OK;
    c->per_unit = diff / span;
    c->overhead = t_short - n_short * c->per_unit;
    c->accepted_units = n_long;
    return HR_OK;
}

hr_status hr_prompt_calibrate(hr_probe_session *s, hr_prompt_calib *out, hr_error *err) {
    static const char *const UNITS[] = {"the", "a", "hello"};
    /* Shorter prompts when a server refuses the first (a tiny window). */
    static const int64_t LENGTHS[][2] = {{16, 48}, {2, 6}};
    bool found = false;
    for (size_t i = 0; i < sizeof UNITS / sizeof UNITS[0] && !(found && out->per_unit == 1); i++) {
        hr_prompt_calib c = {.per_unit = 1};
        snprintf(c.unit, sizeof c.unit, "%s", UNITS[i]);
        hr_status st = HR_ERR_RANGE;
        for (size_t k = 0; k < sizeof LENGTHS / sizeof LENGTHS[0] && st == HR_ERR_RANGE; k++)
            st = measure_pair(s, &c, LENGTHS[k][0], LENGTHS[k][1], err);
        if (st != HR_OK) return st;
        if (c.per_unit && (!found || c.per_unit < out->per_unit)) {
            *out = c;
            found = true;
        }
    }
    if (!found) return hr_fail(err, HR_ERR_UNSUPPORTED, "no test word gave prompt lengths that grow linearly");
    return HR_OK;
}

/* ---- searches ---- */

typedef struct {
    hr_probe_session *s;
    hr_probe_result *r;
    int64_t fixed_units; /* the max_tokens search's prompt */
} probe_ctx;

typedef hr_status (*try_fn)(probe_ctx *ctx, int64_t x, bool *accepted, hr_error *err);

/* Narrows [lo accepted, hi refused] (hi == 0: nothing refused yet) to adjacent values
 * below max. A hint (the expected largest accepted) is tried first, then the value after
 * it, so a server that states its window truthfully costs two requests. */
static hr_status search(probe_ctx *ctx, try_fn try, int64_t *lo, int64_t *hi, int64_t hint, int64_t max,
                        hr_error *err) {
    bool ok;
    if (hint > *lo && hint <= max && (*hi == 0 || hint < *hi)) {
        if (try(ctx, hint, &ok, err) != HR_OK) return err->status;
        if (!ok) *hi = hint;
        else if ((*lo = hint) < max && *hi != hint + 1) {
            if (try(ctx, hint + 1, &ok, err) != HR_OK) return err->status;
            if (ok) *lo = hint + 1;
            else *hi = hint + 1;
        }
    }
    while (*hi == 0 && *lo < max) {
        int64_t x = *lo * 2 < max ? *lo * 2 : max;
        if (try(ctx, x, &ok, err) != HR_OK) return err->status;
        if (ok) *lo = x;
        else *hi = x;
    }
    while (*hi - *lo > 1) {
        int64_t mid = *lo + (*hi - *lo) / 2;
        if (try(ctx, mid, &ok, err) != HR_OK) return err->status;
        if (ok) *lo = mid;
        else *hi = mid;
    }
    return HR_OK;
}

/* A refusal the search can use, or a stop: busy servers and non-answers end the probe. */
static hr_status judge(const hr_chat_answer *a, bool *accepted, hr_error *err) {
    if (a->status == 429) return hr_fail(err, HR_ERR_IO, "the server is busy (HTTP 429): %s", a->error_message);
    if (a->status >= 200 && a->status < 300 && a->malformed)
        return hr_fail(err, HR_ERR_FORMAT, "the server answered HTTP %ld without a chat completion", a->status);
    *accepted = is_success(a);
    return HR_OK;
}

/* Keeps what the server said about the smallest value it refused: the boundary's answer. */
static void keep_refusal(const hr_chat_answer *a, int64_t x, int64_t *smallest, long *status, char *msg, size_t cap) {
    if (*smallest && x >= *smallest) return;
    *smallest = x;
    *status = a->status;
    snprintf(msg, cap, "%s%s%s", a->error_code[0] ? a->error_code : "", a->error_code[0] ? ": " : "", a->error_message);
}

static hr_status try_prompt(probe_ctx *ctx, int64_t units, bool *accepted, hr_error *err) {
    hr_probe_result *r = ctx->r;
    hr_chat_answer a;
    if (hr_probe_send(ctx->s, &r->calib, units, 1, &a, err) != HR_OK || judge(&a, accepted, err) != HR_OK)
        return err->status;
    int64_t predicted = hr_prompt_tokens(&r->calib, units);
    if (*accepted && a.prompt_tokens >= 0 && a.prompt_tokens < predicted) {
        /* Accepted, but not whole: the server cut the prompt without saying so. */
        *accepted = false;
        r->prompt_truncated = true;
        r->truncated_sent = predicted;
        r->truncated_counted = a.prompt_tokens;
        snprintf(a.error_message, sizeof a.error_message,
                 "accepted, but counted %lld of about %lld prompt tokens: the prompt was truncated",
                 (long long)a.prompt_tokens, (long long)predicted);
    }
    if (*accepted) {
        int64_t actual = a.prompt_tokens >= 0 ? a.prompt_tokens : predicted;
        if (actual > r->prompt_ok) r->prompt_ok = actual;
    } else {
        keep_refusal(&a, predicted, &r->prompt_refused, &r->prompt_status, r->prompt_error, sizeof r->prompt_error);
    }
    return HR_OK;
}

/* What an answer to a request over a cap says: refused, clamped (visibly or not), or
 * generated in full; UNKNOWN when the model stopped on its own first. */
static hr_clamp_kind classify(const hr_chat_answer *a, bool accepted, int64_t asked) {
    if (!accepted) return HR_CLAMP_REFUSED;
    if (hr_chat_answer_clamped(a)) return HR_CLAMP_REPORTED;
    if (a->completion_tokens >= asked) return HR_CLAMP_FULL;
    if (a->completion_tokens >= 0 && !strcmp(a->finish_reason, "length")) return HR_CLAMP_SILENT;
    return HR_CLAMP_UNKNOWN;
}

/* Accepted means generated without clamping: a clamped answer marks the cap as surely as
 * a refusal does, and tells how the server treats what does not fit. */
static hr_status try_max_tokens(probe_ctx *ctx, int64_t max_tokens, bool *accepted, hr_error *err) {
    hr_probe_result *r = ctx->r;
    hr_chat_answer a;
    if (hr_probe_send(ctx->s, &r->calib, ctx->fixed_units, max_tokens, &a, err) != HR_OK ||
        judge(&a, accepted, err) != HR_OK)
        return err->status;
    if (*accepted && a.prompt_tokens >= 0) r->fixed_prompt = a.prompt_tokens;
    hr_clamp_kind kind = classify(&a, *accepted, max_tokens);
    *accepted = kind == HR_CLAMP_FULL || kind == HR_CLAMP_UNKNOWN;
    if (*accepted) return HR_OK;
    if (kind != HR_CLAMP_REFUSED) {
        r->clamp = kind;
        snprintf(a.error_message, sizeof a.error_message, "accepted, but %lld of %lld tokens %s",
                 (long long)(kind == HR_CLAMP_REPORTED ? a.max_tokens_granted : a.completion_tokens),
                 (long long)max_tokens, kind == HR_CLAMP_REPORTED ? "granted" : "generated");
    }
    keep_refusal(&a, max_tokens, &r->max_refused, &r->max_status, r->max_error, sizeof r->max_error);
    return HR_OK;
}

/* One request OVER tokens past the cap the prompt search found. */
static hr_status try_over_the_cap(probe_ctx *ctx, hr_error *err) {
    hr_probe_result *r = ctx->r;
    int64_t target = r->prompt_ok > 2 * OVER ? r->prompt_ok - OVER : r->prompt_ok / 2;
    ctx->fixed_units = hr_prompt_units(&r->calib, target);
    r->fixed_prompt = r->clamp_prompt = hr_prompt_tokens(&r->calib, ctx->fixed_units);
    r->clamp_asked = r->prompt_ok + 1 - r->clamp_prompt + OVER;
    hr_chat_answer a;
    bool accepted;
    if (hr_probe_send(ctx->s, &r->calib, ctx->fixed_units, r->clamp_asked, &a, err) != HR_OK ||
        judge(&a, &accepted, err) != HR_OK)
        return err->status;
    r->clamp_status = a.status;
    r->clamp_generated = a.completion_tokens;
    r->clamp_granted = a.max_tokens_granted;
    snprintf(r->clamp_finish, sizeof r->clamp_finish, "%s", a.finish_reason);
    if (a.prompt_tokens >= 0) r->fixed_prompt = r->clamp_prompt = a.prompt_tokens;
    r->clamp = r->clamp_first = classify(&a, accepted, r->clamp_asked);
    if (r->clamp == HR_CLAMP_REFUSED) {
        keep_refusal(&a, r->clamp_asked, &r->max_refused, &r->max_status, r->max_error, sizeof r->max_error);
        snprintf(r->clamp_error, sizeof r->clamp_error, "%s", r->max_error);
    }
    return HR_OK;
}

static hr_status run_searches(probe_ctx *ctx, hr_error *err) {
    hr_probe_result *r = ctx->r;
    const hr_prompt_calib *c = &r->calib;
    int64_t lo = c->accepted_units, hi = 0;
    int64_t hint = r->advertised > 0 ? hr_prompt_units(c, r->advertised - 1) : 0;
    hr_status st = search(ctx, try_prompt, &lo, &hi, hint, hr_prompt_units(c, MAX_PROBE_TOKENS), err);
    r->total_ok = r->prompt_ok + 1;
    if (st != HR_OK || hi == 0) return st;
    if ((st = try_over_the_cap(ctx, err)) != HR_OK) return st;
    /* A clamp already shows the cap and the behaviour over it; otherwise search the total. */
    if (r->clamp == HR_CLAMP_REPORTED || r->clamp == HR_CLAMP_SILENT) return HR_OK;
    int64_t m_lo = r->clamp == HR_CLAMP_REFUSED ? 1 : r->clamp_asked, m_hi = r->max_refused;
    int64_t expected = r->advertised > 0 ? r->advertised : r->prompt_ok + 1;
    st = search(ctx, try_max_tokens, &m_lo, &m_hi, expected - r->fixed_prompt, MAX_PROBE_TOKENS, err);
    r->max_ok = m_lo;
    if (r->fixed_prompt + m_lo > r->total_ok) r->total_ok = r->fixed_prompt + m_lo;
    return st;
}

hr_status hr_probe_run(hr_probe_session *s, hr_probe_result *out, hr_error *err) {
    int64_t advertised = out->advertised;
    memset(out, 0, sizeof *out);
    out->advertised = advertised;
    if (hr_prompt_calibrate(s, &out->calib, err) != HR_OK) {
        out->requests = s->requests;
        return err->status;
    }
    out->prompt_ok = hr_prompt_tokens(&out->calib, out->calib.accepted_units);
    probe_ctx ctx = {.s = s, .r = out};
    hr_error stop = {0};
    if (run_searches(&ctx, &stop) != HR_OK) snprintf(out->stopped, sizeof out->stopped, "%s", stop.msg);
    out->requests = s->requests;
    return HR_OK;
}

const char *hr_clamp_kind_name(hr_clamp_kind k) {
    switch (k) {
    case HR_CLAMP_REFUSED: return "refuses";
    case HR_CLAMP_REPORTED: return "clamps (reported in the headroom object)";
    case HR_CLAMP_SILENT: return "clamps silently";
    case HR_CLAMP_FULL: return "generates past the prompt cap";
    case HR_CLAMP_UNKNOWN: break;
    }
    return "was not seen to clamp or refuse";
}

void hr_probe_summary(const hr_probe_result *r, char *buf, size_t cap) {
    if (!r->prompt_refused) {
        snprintf(buf, cap, "no cap found: a %lld-token prompt was accepted%s", (long long)r->prompt_ok,
                 r->stopped[0] ? " before the probe stopped" : ", the longest tried");
        return;
    }
    /* The boundary is exact when the refused value is the next one after the accepted. */
    bool exact = r->max_refused ? r->max_refused == r->max_ok + 1 : r->prompt_refused == r->prompt_ok + 1;
    int64_t upper = r->max_refused ? r->fixed_prompt + r->max_refused : r->prompt_refused + 1;
    char bound[96] = "";
    if (!exact) snprintf(bound, sizeof bound, " (the cap lies below %lld)", (long long)upper);
    char prompts[128] = "";
    if (r->clamp_first == HR_CLAMP_FULL || r->clamp_first == HR_CLAMP_UNKNOWN)
        snprintf(prompts, sizeof prompts, "; prompts alone are capped lower, at %lld tokens", (long long)r->prompt_ok);
    snprintf(buf, cap, "largest prompt + max_tokens accepted: %lld tokens%s; over it the server %s%s",
             (long long)r->total_ok, bound, hr_clamp_kind_name(r->clamp), prompts);
}
