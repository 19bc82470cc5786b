/* server/metrics — the server's counters, histograms and recent-request log, rendered
 * in Prometheus text format for /metrics and as JSON for /v1/headroom.
 *
 * Owns: every metric value and the ring of recent requests; all updates are
 * thread-safe (one mutex: metrics are touched once or twice per request, per token
 * only for the inter-token histogram).
 * Must not: read the engine itself; the server passes engine stats in when rendering. */
#ifndef HR_SERVER_METRICS_H
#define HR_SERVER_METRICS_H

#include <stdint.h>

#include "base/strbuf.h"
#include "engine/engine.h"

typedef enum {
    HR_OUTCOME_OK,
    HR_OUTCOME_REJECTED,
    HR_OUTCOME_CLAMPED,
    HR_OUTCOME_TRUNCATED,
    HR_OUTCOME_SUMMARIZED,
    HR_OUTCOME_CANCELLED,
    HR_OUTCOME_ERROR,
    HR_OUTCOME_COUNT_
} hr_outcome;

const char *hr_outcome_name(hr_outcome o);

typedef struct hr_metrics hr_metrics;

/* One finished (or refused) request, as /v1/headroom lists it. */
typedef struct {
    int64_t prompt_tokens, max_tokens_requested, max_tokens_granted, room, completion_tokens;
    const char *policy; /* static string */
    hr_outcome outcome;
    int messages_dropped;
} hr_request_record;

hr_metrics *hr_metrics_new(void);
void hr_metrics_free(hr_metrics *m);

void hr_metrics_request(hr_metrics *m, const hr_request_record *r);
void hr_metrics_low_room(hr_metrics *m);
void hr_metrics_first_token(hr_metrics *m, double seconds);
void hr_metrics_inter_token(hr_metrics *m, double seconds);
uint64_t hr_metrics_low_room_total(hr_metrics *m);

void hr_metrics_render_prometheus(hr_metrics *m, const hr_engine_stats *es, hr_strbuf *out);
/* {"window":..., "pool": {...}, "running":..., "waiting":..., "recent": [...]} */
void hr_metrics_render_headroom(hr_metrics *m, const hr_engine_stats *es, hr_strbuf *out);

#endif
