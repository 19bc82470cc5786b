/* The OpenAI-compatible endpoints: request validation, the budget at the edge, engine
 * submission, and responses (whole, or as Server-Sent Events). */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/utf8.h"
#include "budget/fit.h"
#include "engine/textstream.h"
#include "server/http.h"
#include "server/server_internal.h"

enum { MAX_STOPS = 16, MAX_STOP_BYTES = 256 };

typedef enum { API_CHAT, API_COMPLETION } api_kind;

/* A validated request body. */
typedef struct {
    json_t *root;
    api_kind kind;
    json_t *messages;    /* chat: a deep copy the budget may change */
    const char *prompt;  /* completion: text, or NULL with prompt_ids */
    size_t prompt_len;
    const json_t *prompt_ids;
    int64_t max_tokens;  /* -1: not given */
    hr_sampling sampling;
    const char *stops[MAX_STOPS];
    size_t n_stops;
    bool stream, include_usage;
    hr_policy policy;
} api_request;

/* ---- validation: each failure names its field ---- */

typedef struct {
    char param[64];
    char msg[512];
} bad_field;

static bool fail_field(bad_field *bad, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail_field(bad_field *bad, const char *param, const char *fmt, ...) {
    snprintf(bad->param, sizeof bad->param, "%s", param);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(bad->msg, sizeof bad->msg, fmt, ap);
    va_end(ap);
    return false;
}

/* A number field within [min, max]; absent or null leaves *out alone. */
static bool get_number(const json_t *root, const char *key, double min, double max, double *out, bad_field *bad) {
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_number(v)) return fail_field(bad, key, "'%s' must be a number", key);
    double d = json_number_value(v);
    if (!isfinite(d) || d < min || d > max)
        return fail_field(bad, key, "'%s' is %g; it must be between %g and %g", key, d, min, max);
    *out = d;
    return true;
}

static bool get_int(const json_t *root, const char *key, int64_t min, int64_t max, int64_t *out, bad_field *bad) {
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_integer(v)) return fail_field(bad, key, "'%s' must be an integer", key);
    json_int_t i = json_integer_value(v);
    if (i < min || i > max)
        return fail_field(bad, key, "'%s' is %lld; it must be between %lld and %lld", key, (long long)i,
                          (long long)min, (long long)max);
    *out = i;
    return true;
}

static bool get_bool(const json_t *root, const char *key, bool *out, bad_field *bad) {
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_boolean(v)) return fail_field(bad, key, "'%s' must be true or false", key);
    *out = json_is_true(v);
    return true;
}

static bool valid_messages(const json_t *messages, bad_field *bad) {
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return fail_field(bad, "messages", "'messages' must be a non-empty array of {role, content} objects");
    size_t i;
    const json_t *m;
    json_array_foreach(messages, i, m) {
        const json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
        if (!json_is_object(m) || !json_is_string(role))
            return fail_field(bad, "messages", "messages[%zu] needs a string 'role'", i);
        static const char *const roles[] = {"system", "developer", "user", "assistant", "tool", "function"};
        size_t r = 0;
        while (r < sizeof roles / sizeof roles[0] && strcmp(json_string_value(role), roles[r]) != 0) r++;
        if (r == sizeof roles / sizeof roles[0])
            return fail_field(bad, "messages", "messages[%zu].role '%.32s' is not one of system, developer, user, assistant, tool",
                              i, json_string_value(role));
        if (content && !json_is_string(content) && !json_is_array(content) && !json_is_null(content))
            return fail_field(bad, "messages", "messages[%zu].content must be a string, an array of parts, or null", i);
        size_t k;
        const json_t *part;
        json_array_foreach(content, k, part) {
            const char *type = json_string_value(json_object_get(part, "type"));
            if (!json_is_object(part) || !type || strcmp(type, "text") != 0 || !json_is_string(json_object_get(part, "text")))
                return fail_field(bad, "messages",
                                  "messages[%zu].content[%zu] must be {\"type\": \"text\", \"text\": string} (this model reads text only)",
                                  i, k);
        }
        if (json_is_string(content) &&
            hr_utf8_complete_len(json_string_value(content), json_string_length(content)) != json_string_length(content))
            return fail_field(bad, "messages", "messages[%zu].content is not valid UTF-8", i);
    }
    return true;
}

/* Checks messages and returns a copy in which every content is a string, the shape chat
 * templates expect: text parts joined as the plain renderer joins them, null or absent
 * content empty. New reference; NULL (bad filled) when they are invalid. */
static json_t *text_messages(const json_t *messages, bad_field *bad) {
    if (!valid_messages(messages, bad)) return NULL;
    json_t *copy = json_deep_copy(messages);
    size_t i;
    json_t *m;
    json_array_foreach(copy, i, m) {
        json_t *content = json_object_get(m, "content");
        if (json_is_string(content)) continue;
        hr_strbuf text = {0};
        hr_json_content_text(content, &text);
        json_t *joined = text.oom ? NULL : json_stringn(hr_strbuf_str(&text), text.len);
        hr_strbuf_free(&text);
        if (!joined || json_object_set_new(m, "content", joined) != 0) {
            json_decref(copy);
            copy = NULL;
            break;
        }
    }
    if (!copy) fail_field(bad, "messages", "out of memory copying 'messages'");
    return copy;
}

static bool parse_stops(const json_t *root, api_request *r, bad_field *bad) {
    const json_t *stop = json_object_get(root, "stop");
    if (!stop || json_is_null(stop)) return true;
    if (json_is_string(stop)) {
        if (json_string_length(stop) == 0 || json_string_length(stop) > MAX_STOP_BYTES)
            return fail_field(bad, "stop", "'stop' must be a non-empty string of at most %d bytes", MAX_STOP_BYTES);
        r->stops[r->n_stops++] = json_string_value(stop);
        return true;
    }
    if (!json_is_array(stop)) return fail_field(bad, "stop", "'stop' must be a string or an array of strings");
    if (json_array_size(stop) > MAX_STOPS)
        return fail_field(bad, "stop", "'stop' has %zu strings; at most %d are allowed", json_array_size(stop), MAX_STOPS);
    size_t i;
    const json_t *s;
    json_array_foreach(stop, i, s) {
        if (!json_is_string(s) || json_string_length(s) == 0 || json_string_length(s) > MAX_STOP_BYTES)
            return fail_field(bad, "stop", "stop[%zu] must be a non-empty string of at most %d bytes", i, MAX_STOP_BYTES);
        r->stops[r->n_stops++] = json_string_value(s);
    }
    return true;
}

/* Fills r from the body; on failure, bad says which field and why. */
static bool parse_request(const hr_server *s, api_kind kind, json_t *root, api_request *r, bad_field *bad) {
    memset(r, 0, sizeof *r);
    r->root = root;
    r->kind = kind;
    r->max_tokens = -1;
    r->policy = s->cfg.policy;
    r->sampling = hr_sampling_default();
    r->sampling.temperature = 1.0f; /* OpenAI's default */
    r->sampling.top_k = 0;
    r->sampling.top_p = 1.0f;
    r->sampling.min_p = 0.0f;
    r->sampling.seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)r;
    if (!json_is_object(root)) return fail_field(bad, "body", "the body must be a JSON object");
    if (kind == API_CHAT) {
        r->messages = text_messages(json_object_get(root, "messages"), bad);
        if (!r->messages) return false;
    } else {
        const json_t *p = json_object_get(root, "prompt");
        if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0))) p = json_array_get(p, 0);
        if (json_is_string(p)) {
            r->prompt = json_string_value(p);
            r->prompt_len = json_string_length(p);
        } else if (json_is_array(p) && json_array_size(p) > 0 && json_is_integer(json_array_get(p, 0))) {
            r->prompt_ids = p;
        } else {
            return fail_field(bad, "prompt", "'prompt' must be a string or an array of token ids");
        }
    }
    double d;
    int64_t n;
    if (!get_int(root, "max_tokens", 1, INT32_MAX, &r->max_tokens, bad) ||
        !get_int(root, "max_completion_tokens", 1, INT32_MAX, &r->max_tokens, bad))
        return false;
    d = r->sampling.temperature;
    if (!get_number(root, "temperature", 0, 2, &d, bad)) return false;
    r->sampling.temperature = (float)d;
    d = r->sampling.top_p;
    if (!get_number(root, "top_p", 0, 1, &d, bad)) return false;
    r->sampling.top_p = (float)d;
    d = r->sampling.min_p;
    if (!get_number(root, "min_p", 0, 1, &d, bad)) return false;
    r->sampling.min_p = (float)d;
    d = r->sampling.repeat_penalty;
    if (!get_number(root, "repeat_penalty", 0.01, 10, &d, bad)) return false;
    r->sampling.repeat_penalty = (float)d;
    n = r->sampling.top_k;
    if (!get_int(root, "top_k", 0, INT32_MAX, &n, bad)) return false;
    r->sampling.top_k = (int32_t)n;
    n = 0;
    const json_t *seed = json_object_get(root, "seed");
    if (seed && !json_is_null(seed)) {
        if (!json_is_integer(seed)) return fail_field(bad, "seed", "'seed' must be an integer");
        r->sampling.seed = (uint64_t)json_integer_value(seed);
    }
    n = 1;
    if (!get_int(root, "n", 1, 1000000, &n, bad)) return false;
    if (n != 1) return fail_field(bad, "n", "'n' is %lld; headroom generates one choice per request (n = 1)", (long long)n);
    if (!get_bool(root, "stream", &r->stream, bad) || !parse_stops(root, r, bad)) return false;
    const json_t *opts = json_object_get(root, "stream_options");
    if (opts && !json_is_null(opts)) {
        if (!json_is_object(opts)) return fail_field(bad, "stream_options", "'stream_options' must be an object");
        if (!get_bool(opts, "include_usage", &r->include_usage, bad)) return false;
    }
    const json_t *policy = json_object_get(root, "context_policy");
    if (policy && !json_is_null(policy)) {
        hr_error err;
        if (!json_is_string(policy) || hr_policy_from_name(json_string_value(policy), &r->policy, &err) != HR_OK)
            return fail_field(bad, "context_policy", "'context_policy' must be one of clamp, reject, truncate, summarize");
    }
    return true;
}

static void request_free(api_request *r) {
    json_decref(r->messages);
    json_decref(r->root);
}

/* ---- generation state shared by the HTTP side and the engine thread ---- */

typedef struct gen gen;
struct gen {
    hr_server *srv;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_int refs; /* the HTTP side and the engine's event stream */
    uint64_t id;     /* the engine's request id, once submitted */
    hr_textstream ts;
    hr_strbuf text;  /* released text not yet sent */
    int64_t completion_tokens;
    bool done, stop_matched, client_gone;
    hr_finish finish;
    double t_start, t_last;
    api_kind kind;
    bool stream, include_usage, role_sent, final_sent;
    char resp_id[48];
    long created;
    hr_fit_result fit;
    hr_policy policy;
    int fd;
    hr_strbuf wire; /* SSE bytes produced but not yet handed to MHD */
    size_t wire_pos;
};

static atomic_ullong next_response_id;

static void gen_release(gen *g) {
    if (atomic_fetch_sub(&g->refs, 1) != 1) return;
    hr_textstream_free(&g->ts);
    hr_strbuf_free(&g->text);
    hr_strbuf_free(&g->wire);
    hr_fit_result_free(&g->fit);
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
    free(g);
}

static void on_gen_event(void *ctx, uint64_t id, int32_t token, hr_finish finish, const char *error) {
    (void)error;
    gen *g = ctx;
    bool cancel = false;
    double now = hr_now_s();
    pthread_mutex_lock(&g->lock);
    if (finish == HR_FINISH_NONE) {
        if (!g->stop_matched) {
            if (g->completion_tokens++ == 0) hr_metrics_first_token(g->srv->metrics, now - g->t_start);
            else hr_metrics_inter_token(g->srv->metrics, now - g->t_last);
            g->t_last = now;
            cancel = g->stop_matched = hr_textstream_push(&g->ts, token, &g->text);
        }
    } else {
        if (!g->stop_matched) hr_textstream_finish(&g->ts, &g->text);
        g->finish = finish;
        g->done = true;
    }
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
    /* A completed stop string ends the request; the engine frees its blocks next step. */
    if (cancel) hr_server_cancel(g->srv, id);
    if (finish != HR_FINISH_NONE) gen_release(g);
}

static const char *finish_reason(const gen *g) {
    if (g->stop_matched || g->finish == HR_FINISH_STOP) return "stop";
    return g->finish == HR_FINISH_LENGTH ? "length" : "stop";
}

static json_t *headroom_object(const hr_fit_result *fit, hr_policy policy) {
    const hr_budget *b = &fit->budget;
    return json_pack("{s:I, s:I, s:o, s:I, s:I, s:s, s:i, s:b, s:b}", "window", (json_int_t)b->window, "prompt_tokens",
                     (json_int_t)b->prompt_tokens, "max_tokens_requested",
                     b->max_tokens_requested >= 0 ? json_integer(b->max_tokens_requested) : json_null(),
                     "max_tokens_granted", (json_int_t)b->max_tokens_granted, "room", (json_int_t)b->room, "policy",
                     hr_policy_name(policy), "messages_dropped", fit->messages_dropped, "summarized", fit->summarized,
                     "message_cut", fit->message_cut);
}

static json_t *usage_object(const gen *g) {
    int64_t p = g->fit.budget.prompt_tokens;
    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)p, "completion_tokens",
                     (json_int_t)g->completion_tokens, "total_tokens", (json_int_t)(p + g->completion_tokens));
}

static hr_outcome outcome_of(const gen *g) {
    if (g->client_gone) return HR_OUTCOME_CANCELLED;
    if (g->finish == HR_FINISH_ERROR) return HR_OUTCOME_ERROR;
    if (g->fit.summarized) return HR_OUTCOME_SUMMARIZED;
    if (g->fit.messages_dropped > 0 || g->fit.message_cut) return HR_OUTCOME_TRUNCATED;
    const hr_budget *b = &g->fit.budget;
    if (b->max_tokens_requested >= 0 && b->max_tokens_granted < b->max_tokens_requested) return HR_OUTCOME_CLAMPED;
    return HR_OUTCOME_OK;
}

static void record(hr_server *s, const hr_fit_result *fit, hr_policy policy, hr_outcome outcome, int64_t completion) {
    hr_request_record rec = {.prompt_tokens = fit->budget.prompt_tokens,
                             .max_tokens_requested = fit->budget.max_tokens_requested,
                             .max_tokens_granted = fit->budget.max_tokens_granted, .room = fit->budget.room,
                             .completion_tokens = completion, .policy = hr_policy_name(policy), .outcome = outcome,
                             .messages_dropped = fit->messages_dropped};
    hr_metrics_request(s->metrics, &rec);
}

/* The HTTP side is done with g: account for the request, then let go. */
static void gen_http_done(void *cls) {
    gen *g = cls;
    /* Read under the lock: a request left unfinished still gets tokens from the engine
     * thread until its cancel takes effect. */
    pthread_mutex_lock(&g->lock);
    bool unfinished = !g->done;
    if (unfinished) g->client_gone = true;
    hr_outcome outcome = outcome_of(g);
    int64_t completion_tokens = g->completion_tokens;
    pthread_mutex_unlock(&g->lock);
    if (unfinished) hr_server_cancel(g->srv, g->id);
    record(g->srv, &g->fit, g->policy, outcome, completion_tokens);
    gen_release(g);
}

/* A new generation holding two references: the caller's and the engine's. */
static gen *gen_new(hr_server *s, api_kind kind, hr_policy policy, int fd) {
    gen *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->srv = s;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    atomic_init(&g->refs, 2);
    g->kind = kind;
    g->policy = policy;
    g->fd = fd;
    g->created = (long)time(NULL);
    snprintf(g->resp_id, sizeof g->resp_id, "%s-%llx%06llx", kind == API_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)time(NULL), (unsigned long long)atomic_fetch_add(&next_response_id, 1));
    g->t_start = hr_now_s();
    return g;
}

/* Waits (g->lock held) until text arrives or the request is done; false when the
 * client went away, after cancelling the request. */
static bool gen_wait_locked(gen *g, bool for_text) {
    while (!g->done && !(for_text && g->text.len > 0)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 50 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->cond, &g->lock, &until);
        if (!g->done && !g->client_gone && hr_http_peer_gone(g->fd)) {
            g->client_gone = true;
            pthread_mutex_unlock(&g->lock);
            hr_server_cancel(g->srv, g->id);
            pthread_mutex_lock(&g->lock);
            return false;
        }
    }
    return !g->client_gone;
}

/* Submits the fitted prompt; on failure the engine's reference is dropped too. */
static hr_status gen_submit(gen *g, const api_request *r, hr_error *err) {
    hr_request req = {.prompt = g->fit.prompt.ids, .n_prompt = (int32_t)g->fit.prompt.count,
                      .max_new_tokens = (int32_t)g->fit.budget.max_tokens_granted, .sampling = r->sampling,
                      .on_event = on_gen_event, .ctx = g};
    int32_t last = g->fit.prompt.count ? g->fit.prompt.ids[g->fit.prompt.count - 1] : -1;
    hr_status st = hr_textstream_init(&g->ts, g->srv->model->vocab, last, r->stops, r->n_stops, err);
    uint64_t id = 0;
    pthread_mutex_lock(&g->lock); /* the first event must see the id */
    if (st == HR_OK) st = hr_server_submit(g->srv, &req, &id, err);
    g->id = id;
    pthread_mutex_unlock(&g->lock);
    if (st != HR_OK) gen_release(g);
    return st;
}

static json_t *chunk_object(const gen *g, json_t *choice) {
    return json_pack("{s:s, s:s, s:i, s:s, s:[o]}", "id", g->resp_id, "object",
                     g->kind == API_CHAT ? "chat.completion.chunk" : "text_completion", "created", (int)g->created,
                     "model", g->srv->model_id, "choices", choice);
}

static void sse(gen *g, json_t *obj) {
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text) return;
    hr_strbuf_printf(&g->wire, "data: %s\n\n", text);
    free(text);
}

/* Produces the next SSE events into g->wire (g->lock held). */
static void next_events(gen *g) {
    bool chat = g->kind == API_CHAT;
    if (!g->role_sent) {
        g->role_sent = true;
        if (chat)
            sse(g, chunk_object(g, json_pack("{s:i, s:{s:s, s:s}, s:n}", "index", 0, "delta", "role", "assistant",
                                             "content", "", "finish_reason")));
        return;
    }
    if (g->text.len > 0) {
        json_t *text = hr_json_text(g->text.data, g->text.len);
        hr_strbuf_clear(&g->text);
        sse(g, chunk_object(g, chat ? json_pack("{s:i, s:{s:o}, s:n}", "index", 0, "delta", "content", text, "finish_reason")
                                    : json_pack("{s:i, s:o, s:n, s:n}", "index", 0, "text", text, "logprobs", "finish_reason")));
        return;
    }
    if (!g->done) return;
    if (g->finish == HR_FINISH_ERROR || (g->finish == HR_FINISH_CANCELLED && !g->stop_matched)) {
        /* Not a normal end: say so rather than pretend the answer is complete. */
        json_t *err = json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message",
                                g->finish == HR_FINISH_ERROR ? "the forward pass failed" : "the server is shutting down",
                                "type", "server_error", "param", "code");
        sse(g, err);
        hr_strbuf_puts(&g->wire, "data: [DONE]\n\n");
        g->final_sent = true;
        return;
    }
    json_t *last = chunk_object(g, chat ? json_pack("{s:i, s:{}, s:s}", "index", 0, "delta", "finish_reason", finish_reason(g))
                                        : json_pack("{s:i, s:s, s:n, s:s}", "index", 0, "text", "", "logprobs",
                                                    "finish_reason", finish_reason(g)));
    json_object_set_new(last, "headroom", headroom_object(&g->fit, g->policy));
    sse(g, last);
    if (g->include_usage) {
        json_t *usage = chunk_object(g, json_null());
        json_object_set_new(usage, "choices", json_array());
        json_object_set_new(usage, "usage", usage_object(g));
        sse(g, usage);
    }
    hr_strbuf_puts(&g->wire, "data: [DONE]\n\n");
    g->final_sent = true;
}

static ssize_t gen_pull(void *cls, char *buf, size_t max) {
    gen *g = cls;
    for (;;) {
        if (g->wire_pos < g->wire.len) {
            size_t n = g->wire.len - g->wire_pos < max ? g->wire.len - g->wire_pos : max;
            memcpy(buf, g->wire.data + g->wire_pos, n);
            g->wire_pos += n;
            return (ssize_t)n;
        }
        hr_strbuf_clear(&g->wire);
        g->wire_pos = 0;
        if (g->final_sent) return 0;
        pthread_mutex_lock(&g->lock);
        bool alive = !g->role_sent || gen_wait_locked(g, true);
        if (alive) next_events(g);
        pthread_mutex_unlock(&g->lock);
        if (!alive) return -1;
    }
}

static enum MHD_Result respond_whole(hr_server *s, struct MHD_Connection *c, gen *g) {
    pthread_mutex_lock(&g->lock);
    bool alive = gen_wait_locked(g, false);
    pthread_mutex_unlock(&g->lock);
    if (!alive) {
        gen_http_done(g);
        return MHD_NO;
    }
    json_t *text = hr_json_text(hr_strbuf_str(&g->text), g->text.len);
    json_t *choice = g->kind == API_CHAT
                         ? json_pack("{s:i, s:{s:s, s:o}, s:s, s:n}", "index", 0, "message", "role", "assistant",
                                     "content", text, "finish_reason", finish_reason(g), "logprobs")
                         : json_pack("{s:i, s:o, s:s, s:n}", "index", 0, "text", text, "finish_reason",
                                     finish_reason(g), "logprobs");
    json_t *resp = json_pack("{s:s, s:s, s:i, s:s, s:[o], s:o, s:o}", "id", g->resp_id, "object",
                             g->kind == API_CHAT ? "chat.completion" : "text_completion", "created", (int)g->created,
                             "model", s->model_id, "choices", choice, "usage", usage_object(g), "headroom",
                             headroom_object(&g->fit, g->policy));
    bool failed = g->finish == HR_FINISH_ERROR, shutdown = g->finish == HR_FINISH_CANCELLED && !g->stop_matched;
    gen_http_done(g);
    if (failed || shutdown) {
        json_decref(resp);
        return hr_http_send_error(c, failed ? 500 : 503, "server_error", NULL, NULL, "%s",
                                  failed ? "the forward pass failed" : "the server is shutting down");
    }
    return hr_http_send_json(c, 200, resp);
}

/* ---- the budget at the edge ---- */

static hr_status render_cb(void *ctx, const json_t *messages, hr_strbuf *out, hr_error *err) {
    hr_server *s = ctx;
    return hr_chat_render(s->chat, messages, out, err);
}


/* The summarize policy's state message, generated by the model under a small budget of
 * its own. Fails (and the caller falls back to an extractive summary) when the model's
 * window is too small to spare one. */
static hr_status summarize_cb(void *ctx, const char *text, hr_strbuf *out, hr_error *err) {
    hr_server *s = ctx;
    hr_engine_stats es;
    if (!hr_server_engine_stats(s, &es)) return hr_fail(err, HR_ERR_IO, "the server is shutting down");
    int64_t budget = es.window / 8 < 64 ? es.window / 8 : 64;
    if (es.window < 256) return hr_fail(err, HR_ERR_RANGE, "a %d-token window is too small to summarize in", es.window);
    hr_strbuf ask = {0};
    hr_strbuf_printf(&ask, "Summarize this conversation in one or two sentences:\n%s", text);
    json_t *messages = json_pack("[{s:s, s:s%}]", "role", "user", "content", hr_strbuf_str(&ask), ask.len);
    hr_strbuf_free(&ask);
    hr_fit_request fr = {.vocab = s->model->vocab, .encode_flags = HR_TOK_CHAT, .policy = HR_POLICY_REJECT,
                         .window = es.window, .min_room = 1, .max_tokens = budget, .render = render_cb, .ctx = s};
    gen *g = gen_new(s, API_CHAT, HR_POLICY_REJECT, -1);
    hr_status st = g && messages ? hr_fit_chat(&fr, messages, &g->fit, err)
                                 : hr_fail(err, HR_ERR_NOMEM, "out of memory summarizing");
    json_decref(messages);
    if (!g) return st;
    api_request r = {.sampling = hr_sampling_default()};
    r.sampling.temperature = 0.0f;
    if (st != HR_OK) {
        gen_release(g); /* never submitted: both references are ours */
        gen_release(g);
        return st;
    }
    if (gen_submit(g, &r, err) != HR_OK) {
        gen_release(g);
        return err->status;
    }
    pthread_mutex_lock(&g->lock);
    gen_wait_locked(g, false);
    hr_strbuf_append(out, hr_strbuf_str(&g->text), g->text.len);
    pthread_mutex_unlock(&g->lock);
    gen_release(g);
    return HR_OK;
}

static enum MHD_Result bad_request(struct MHD_Connection *c, const bad_field *bad) {
    return hr_http_send_error(c, 400, "invalid_request_error", bad->param, "invalid_value", "%s", bad->msg);
}

/* Parses the body as JSON, answering 400 with the line and column of a syntax error. */
static json_t *parse_json(struct MHD_Connection *c, const char *body, size_t len, enum MHD_Result *answered) {
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        *answered = hr_http_send_error(c, 400, "invalid_request_error", "body", "invalid_json",
                                       "malformed JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
    return root;
}

/* Runs the budget for r; on failure answers the client (400 with the numbers). */
static bool fit_request(hr_server *s, struct MHD_Connection *c, api_request *r, hr_fit_result *fit, bool dry_run,
                        enum MHD_Result *answered) {
    /* Every way out leaves fit freeable and recordable, including a refusal before any
     * fitting began (a bad token id). */
    memset(fit, 0, sizeof *fit);
    hr_engine_stats es;
    hr_server_engine_stats(s, &es);
    /* A chat prompt carries its special tokens as template text; a plain prompt is the
     * caller's text, where control tokens stay text. */
    hr_fit_request fr = {.vocab = s->model->vocab,
                         .encode_flags = r->kind == API_CHAT ? HR_TOK_CHAT : HR_TOK_ADD_SPECIAL, .policy = r->policy,
                         .window = es.window, .min_room = s->cfg.min_room, .max_tokens = r->max_tokens,
                         .render = render_cb, .summarize = summarize_cb, .ctx = s};
    hr_error err = {0};
    hr_status st;
    if (r->kind == API_CHAT) {
        st = hr_fit_chat(&fr, r->messages, fit, &err);
    } else if (r->prompt) {
        st = hr_fit_text(&fr, r->prompt, r->prompt_len, fit, &err);
    } else {
        size_t n = json_array_size(r->prompt_ids);
        int32_t *ids = malloc(n * sizeof *ids);
        st = ids ? HR_OK : hr_fail(&err, HR_ERR_NOMEM, "out of memory");
        for (size_t i = 0; st == HR_OK && i < n; i++) {
            json_int_t id = json_integer_value(json_array_get(r->prompt_ids, i));
            if (!json_is_integer(json_array_get(r->prompt_ids, i)) || id < 0 || id >= s->model->hp.n_vocab)
                st = hr_fail(&err, HR_ERR_INVALID, "prompt[%zu] is not a token id of this vocabulary (0..%d)", i,
                             s->model->hp.n_vocab - 1);
            else ids[i] = (int32_t)id;
        }
        if (st == HR_OK) st = hr_fit_tokens(&fr, ids, n, fit, &err);
        free(ids);
    }
    if (st == HR_OK) return true;
    if (!dry_run) record(s, fit, r->policy, st == HR_ERR_RANGE ? HR_OUTCOME_REJECTED : HR_OUTCOME_ERROR, 0);
    if (st == HR_ERR_RANGE) {
        *answered = hr_http_send_error(c, 400, "invalid_request_error", r->kind == API_CHAT ? "messages" : "prompt",
                                       "context_length_exceeded", "%s", err.msg);
    } else {
        *answered = hr_http_send_error(c, st == HR_ERR_NOMEM ? 500 : 400, st == HR_ERR_NOMEM ? "server_error" : "invalid_request_error",
                                       r->kind == API_CHAT ? "messages" : "prompt", NULL, "%s", err.msg);
    }
    return false;
}

static void low_room_event(hr_server *s, const hr_fit_result *fit, hr_policy policy) {
    if (s->cfg.alert_room <= 0 || fit->budget.room >= s->cfg.alert_room) return;
    hr_metrics_low_room(s->metrics);
    fprintf(stderr,
            "{\"event\":\"low_room\",\"room\":%lld,\"alert_room\":%lld,\"window\":%lld,\"prompt_tokens\":%lld,"
            "\"max_tokens_granted\":%lld,\"policy\":\"%s\"}\n",
            (long long)fit->budget.room, (long long)s->cfg.alert_room, (long long)fit->budget.window,
            (long long)fit->budget.prompt_tokens, (long long)fit->budget.max_tokens_granted, hr_policy_name(policy));
}

/* Reserves a place in the admission queue; false when it is full. */
static bool queue_enter(hr_server *s) {
    hr_engine_stats es;
    hr_server_engine_stats(s, &es);
    pthread_mutex_lock(&s->lock);
    bool ok = es.waiting + s->admitting < s->cfg.max_queue;
    if (ok) s->admitting++;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static void queue_leave(hr_server *s) {
    pthread_mutex_lock(&s->lock);
    s->admitting--;
    pthread_mutex_unlock(&s->lock);
}

static enum MHD_Result handle_generate(hr_server *s, struct MHD_Connection *c, api_kind kind, const char *body,
                                       size_t len) {
    enum MHD_Result answered = MHD_NO;
    hr_fit_result none = {0};
    json_t *root = parse_json(c, body, len, &answered);
    if (!root) {
        record(s, &none, s->cfg.policy, HR_OUTCOME_ERROR, 0);
        return answered;
    }
    api_request r;
    bad_field bad;
    memset(&bad, 0, sizeof bad);
    if (!parse_request(s, kind, root, &r, &bad)) {
        request_free(&r);
        record(s, &none, r.policy, HR_OUTCOME_ERROR, 0);
        return bad_request(c, &bad);
    }
    if (!queue_enter(s)) {
        request_free(&r);
        record(s, &none, r.policy, HR_OUTCOME_REJECTED, 0);
        return hr_http_send_error(c, 429, "rate_limit_error", NULL, "queue_full",
                                  "the queue holds %d waiting requests; retry shortly", s->cfg.max_queue);
    }
    gen *g = gen_new(s, kind, r.policy, hr_http_socket(c));
    hr_error err = {0};
    enum MHD_Result result;
    if (!g) {
        result = hr_http_send_error(c, 500, "server_error", NULL, NULL, "out of memory");
    } else if (!fit_request(s, c, &r, &g->fit, false, &answered)) {
        gen_release(g);
        gen_release(g);
        result = answered;
    } else {
        low_room_event(s, &g->fit, r.policy);
        g->stream = r.stream;
        g->include_usage = r.include_usage;
        if (gen_submit(g, &r, &err) != HR_OK) {
            record(s, &g->fit, r.policy, HR_OUTCOME_ERROR, 0);
            gen_release(g);
            result = hr_http_send_error(c, 503, "server_error", NULL, NULL, "%s", err.msg);
        } else if (r.stream) {
            result = hr_http_send_stream(c, "text/event-stream", gen_pull, gen_http_done, g);
        } else {
            queue_leave(s);
            request_free(&r);
            return respond_whole(s, c, g);
        }
    }
    queue_leave(s);
    request_free(&r);
    return result;
}

enum MHD_Result hr_api_chat_completions(hr_server *s, struct MHD_Connection *c, const char *body, size_t len) {
    return handle_generate(s, c, API_CHAT, body, len);
}

enum MHD_Result hr_api_completions(hr_server *s, struct MHD_Connection *c, const char *body, size_t len) {
    return handle_generate(s, c, API_COMPLETION, body, len);
}

/* The same budget answer as a real request, without generating. */
enum MHD_Result hr_api_budget(hr_server *s, struct MHD_Connection *c, const char *body, size_t len) {
    enum MHD_Result answered = MHD_NO;
    json_t *root = parse_json(c, body, len, &answered);
    if (!root) return answered;
    api_request r;
    bad_field bad;
    memset(&bad, 0, sizeof bad);
    api_kind kind = json_object_get(root, "messages") ? API_CHAT : API_COMPLETION;
    if (!parse_request(s, kind, root, &r, &bad)) {
        request_free(&r);
        return bad_request(c, &bad);
    }
    hr_fit_result fit;
    enum MHD_Result result;
    if (fit_request(s, c, &r, &fit, true, &answered)) {
        result = hr_http_send_json(c, 200, json_pack("{s:s, s:b, s:o}", "object", "budget", "fits", 1, "headroom",
                                                     headroom_object(&fit, r.policy)));
    } else {
        result = answered;
    }
    hr_fit_result_free(&fit);
    request_free(&r);
    return result;
}

enum MHD_Result hr_api_tokenize(hr_server *s, struct MHD_Connection *c, const char *body, size_t len) {
    enum MHD_Result answered = MHD_NO;
    json_t *root = parse_json(c, body, len, &answered);
    if (!root) return answered;
    bad_field bad;
    memset(&bad, 0, sizeof bad);
    bool add_special = false;
    const json_t *content = json_object_get(root, "content");
    if (!content) content = json_object_get(root, "text");
    hr_strbuf text = {0};
    hr_error err = {0};
    hr_status st = HR_OK;
    if (json_object_get(root, "messages")) {
        /* A conversation is counted exactly as a chat request would be. */
        add_special = true;
        json_t *messages = text_messages(json_object_get(root, "messages"), &bad);
        st = messages ? hr_chat_render(s->chat, messages, &text, &err) : HR_ERR_INVALID;
        json_decref(messages);
    } else if (!json_is_string(content)) {
        fail_field(&bad, "content", "'content' must be a string (or send 'messages')");
        st = HR_ERR_INVALID;
    } else {
        hr_strbuf_append(&text, json_string_value(content), json_string_length(content));
    }
    if (st == HR_OK && !get_bool(root, "add_special", &add_special, &bad)) st = HR_ERR_INVALID;
    hr_tokens ids = {0};
    if (st == HR_OK)
        st = hr_tok_encode(s->model->vocab, hr_strbuf_str(&text), text.len,
                           json_object_get(root, "messages") ? HR_TOK_CHAT : add_special ? HR_TOK_ADD_SPECIAL : 0, &ids, &err);
    enum MHD_Result result;
    if (st == HR_OK) {
        json_t *arr = json_array();
        for (size_t i = 0; i < ids.count; i++) json_array_append_new(arr, json_integer(ids.ids[i]));
        result = hr_http_send_json(c, 200, json_pack("{s:o, s:I}", "tokens", arr, "count", (json_int_t)ids.count));
    } else if (bad.msg[0]) {
        result = bad_request(c, &bad);
    } else {
        result = hr_http_send_error(c, 400, "invalid_request_error", "messages", NULL, "%s", err.msg);
    }
    hr_tokens_free(&ids);
    hr_strbuf_free(&text);
    json_decref(root);
    return result;
}

enum MHD_Result hr_api_detokenize(hr_server *s, struct MHD_Connection *c, const char *body, size_t len) {
    enum MHD_Result answered = MHD_NO;
    json_t *root = parse_json(c, body, len, &answered);
    if (!root) return answered;
    const json_t *tokens = json_object_get(root, "tokens");
    enum MHD_Result result;
    if (!json_is_array(tokens)) {
        result = hr_http_send_error(c, 400, "invalid_request_error", "tokens", "invalid_value",
                                    "'tokens' must be an array of token ids");
    } else {
        size_t n = json_array_size(tokens), bad_at = n;
        int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
        for (size_t i = 0; ids && i < n && bad_at == n; i++) {
            const json_t *t = json_array_get(tokens, i);
            json_int_t id = json_integer_value(t);
            if (!json_is_integer(t) || id < 0 || id >= s->model->hp.n_vocab) bad_at = i;
            else ids[i] = (int32_t)id;
        }
        char *text = NULL;
        size_t text_len = 0;
        hr_error err = {0};
        if (!ids) {
            result = hr_http_send_error(c, 500, "server_error", NULL, NULL, "out of memory");
        } else if (bad_at < n) {
            result = hr_http_send_error(c, 400, "invalid_request_error", "tokens", "invalid_value",
                                        "tokens[%zu] is not a token id of this vocabulary (0..%d)", bad_at,
                                        s->model->hp.n_vocab - 1);
        } else if (hr_tok_decode(s->model->vocab, ids, n, &text, &text_len, &err) != HR_OK) {
            result = hr_http_send_error(c, 400, "invalid_request_error", "tokens", NULL, "%s", err.msg);
        } else {
            result = hr_http_send_json(c, 200, json_pack("{s:o}", "content", hr_json_text(text, text_len)));
        }
        free(text);
        free(ids);
    }
    json_decref(root);
    return result;
}
