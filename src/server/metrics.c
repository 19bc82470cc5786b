#include "server/metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { N_BUCKETS = 14, RECENT = 32 };

typedef struct {
    const char *name, *help;
    const double *bounds; /* N_BUCKETS upper bounds, +Inf implied */
    uint64_t counts[N_BUCKETS + 1];
    double sum;
    uint64_t total;
} histogram;

/* Token counts span 1..1M; latencies 1 ms..60 s. */
static const double TOKEN_BOUNDS[N_BUCKETS] = {1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 32768, 131072};
static const double SECOND_BOUNDS[N_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60};

enum { H_PROMPT, H_GENERATION, H_TOTAL, H_ROOM, H_TTFT, H_ITL, H_COUNT_ };

struct hr_metrics {
    pthread_mutex_t lock;
    uint64_t outcomes[HR_OUTCOME_COUNT_];
    uint64_t low_room;
    histogram h[H_COUNT_];
    hr_request_record recent[RECENT];
    uint64_t n_recent;
};

const char *hr_outcome_name(hr_outcome o) {
    static const char *const names[HR_OUTCOME_COUNT_] = {"ok", "rejected", "clamped", "truncated",
                                                        "summarized", "cancelled", "error"};
    return o < HR_OUTCOME_COUNT_ ? names[o] : "unknown";
}

hr_metrics *hr_metrics_new(void) {
    hr_metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_mutex_init(&m->lock, NULL);
    static const struct {
        const char *name, *help;
        const double *bounds;
    } defs[H_COUNT_] = {
        {"headroom_prompt_tokens", "Prompt tokens per request, counted with the model's tokenizer.", TOKEN_BOUNDS},
        {"headroom_generation_tokens", "Tokens generated per request.", TOKEN_BOUNDS},
        {"headroom_total_tokens", "Prompt plus generated tokens per request.", TOKEN_BOUNDS},
        {"headroom_room_tokens", "Room (window minus prompt) at admission.", TOKEN_BOUNDS},
        {"headroom_time_to_first_token_seconds", "Time from request to first generated token.", SECOND_BOUNDS},
        {"headroom_inter_token_latency_seconds", "Time between consecutive generated tokens.", SECOND_BOUNDS},
    };
    for (int i = 0; i < H_COUNT_; i++) {
        m->h[i].name = defs[i].name;
        m->h[i].help = defs[i].help;
        m->h[i].bounds = defs[i].bounds;
    }
    return m;
}

void hr_metrics_free(hr_metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static void observe(histogram *h, double v) {
    int b = 0;
    while (b < N_BUCKETS && v > h->bounds[b]) b++;
    h->counts[b]++;
    h->sum += v;
    h->total++;
}

void hr_metrics_request(hr_metrics *m, const hr_request_record *r) {
    pthread_mutex_lock(&m->lock);
    m->outcomes[r->outcome < HR_OUTCOME_COUNT_ ? r->outcome : HR_OUTCOME_ERROR]++;
    if (r->prompt_tokens > 0) {
        observe(&m->h[H_PROMPT], (double)r->prompt_tokens);
        observe(&m->h[H_GENERATION], (double)r->completion_tokens);
        observe(&m->h[H_TOTAL], (double)(r->prompt_tokens + r->completion_tokens));
        observe(&m->h[H_ROOM], (double)(r->room > 0 ? r->room : 0));
    }
    m->recent[m->n_recent++ % RECENT] = *r;
    pthread_mutex_unlock(&m->lock);
}

#define LOCKED(m, stmt)                \
    do {                               \
        pthread_mutex_lock(&(m)->lock);   \
        stmt;                          \
        pthread_mutex_unlock(&(m)->lock); \
    } while (0)

void hr_metrics_low_room(hr_metrics *m) { LOCKED(m, m->low_room++); }
void hr_metrics_first_token(hr_metrics *m, double seconds) { LOCKED(m, observe(&m->h[H_TTFT], seconds)); }
void hr_metrics_inter_token(hr_metrics *m, double seconds) { LOCKED(m, observe(&m->h[H_ITL], seconds)); }

uint64_t hr_metrics_low_room_total(hr_metrics *m) {
    uint64_t v;
    LOCKED(m, v = m->low_room);
    return v;
}

static void render_histogram(const histogram *h, hr_strbuf *out) {
    hr_strbuf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help, h->name);
    uint64_t cumulative = 0;
    for (int b = 0; b < N_BUCKETS; b++) {
        cumulative += h->counts[b];
        hr_strbuf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", h->name, h->bounds[b], (unsigned long long)cumulative);
    }
    cumulative += h->counts[N_BUCKETS];
    hr_strbuf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", h->name,
                     (unsigned long long)cumulative, h->name, h->sum, h->name, (unsigned long long)h->total);
}

static void gauge(hr_strbuf *out, const char *name, const char *help, double v) {
    hr_strbuf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %.6g\n", name, help, name, name, v);
}

static void counter(hr_strbuf *out, const char *name, const char *help, uint64_t v) {
    hr_strbuf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, (unsigned long long)v);
}

void hr_metrics_render_prometheus(hr_metrics *m, const hr_engine_stats *es, hr_strbuf *out) {
    pthread_mutex_lock(&m->lock);
    hr_strbuf_puts(out, "# HELP headroom_requests_total Requests by outcome.\n# TYPE headroom_requests_total counter\n");
    for (int o = 0; o < HR_OUTCOME_COUNT_; o++)
        hr_strbuf_printf(out, "headroom_requests_total{outcome=\"%s\"} %llu\n", hr_outcome_name((hr_outcome)o),
                         (unsigned long long)m->outcomes[o]);
    counter(out, "headroom_preemptions_total", "Sequences preempted because the KV pool ran out of blocks.",
            es->preemptions);
    counter(out, "headroom_prefix_cache_hit_tokens_total", "Prompt tokens whose KV came from the prefix cache.",
            es->prefix_hit_tokens);
    counter(out, "headroom_low_room_total", "Requests admitted with room below --alert-room.", m->low_room);
    for (int i = 0; i < H_COUNT_; i++) render_histogram(&m->h[i], out);
    pthread_mutex_unlock(&m->lock);
    gauge(out, "headroom_kv_blocks_total", "KV pool size in blocks.", es->blocks_total);
    gauge(out, "headroom_kv_blocks_used", "KV blocks owned by sequences.", es->blocks_used);
    gauge(out, "headroom_kv_usage_ratio", "Share of the KV pool in use.",
          es->blocks_total ? (double)es->blocks_used / es->blocks_total : 0);
    gauge(out, "headroom_requests_running", "Sequences being generated.", es->running);
    gauge(out, "headroom_requests_waiting", "Requests queued for admission.", es->waiting);
    gauge(out, "headroom_window_tokens", "Tokens one request may hold (prompt plus output).", es->window);
}

void hr_metrics_render_headroom(hr_metrics *m, const hr_engine_stats *es, hr_strbuf *out) {
    hr_strbuf_printf(out,
                     "{\"window\":%d,\"pool\":{\"blocks_total\":%d,\"blocks_used\":%d,\"blocks_cached\":%d,"
                     "\"block_tokens\":%d,\"tokens_total\":%lld},\"running\":%d,\"waiting\":%d,"
                     "\"preemptions\":%llu,\"prefix_cache_hit_tokens\":%llu,",
                     es->window, es->blocks_total, es->blocks_used, es->blocks_cached, es->block_tokens,
                     (long long)es->blocks_total * es->block_tokens, es->running, es->waiting,
                     (unsigned long long)es->preemptions, (unsigned long long)es->prefix_hit_tokens);
    pthread_mutex_lock(&m->lock);
    hr_strbuf_printf(out, "\"low_room_total\":%llu,\"recent\":[", (unsigned long long)m->low_room);
    uint64_t n = m->n_recent < RECENT ? m->n_recent : RECENT;
    for (uint64_t i = 0; i < n; i++) {
        const hr_request_record *r = &m->recent[(m->n_recent - 1 - i) % RECENT]; /* newest first */
        hr_strbuf_printf(out,
                         "%s{\"prompt_tokens\":%lld,\"max_tokens_requested\":%lld,\"max_tokens_granted\":%lld,"
                         "\"room\":%lld,\"completion_tokens\":%lld,\"policy\":\"%s\",\"outcome\":\"%s\","
                         "\"messages_dropped\":%d}",
                         i ? "," : "", (long long)r->prompt_tokens, (long long)r->max_tokens_requested,
                         (long long)r->max_tokens_granted, (long long)r->room, (long long)r->completion_tokens,
                         r->policy ? r->policy : "", hr_outcome_name(r->outcome), r->messages_dropped);
    }
    pthread_mutex_unlock(&m->lock);
    hr_strbuf_puts(out, "]}");
}
