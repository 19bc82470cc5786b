/* server/server — `headroom serve`: an OpenAI-compatible HTTP server over one model and
 * one engine. Every request is counted with the model's tokenizer at the edge, fitted
 * to the window by the caller's policy (or refused with the numbers), and only then
 * queued; streams end on max tokens or a stop string; /metrics and /v1/headroom show
 * how much room is left.
 *
 * Owns: the HTTP daemon, the engine, the metrics, and every in-flight request.
 * Must not: own the model (the caller loads and frees it). */
#ifndef HR_SERVER_SERVER_H
#define HR_SERVER_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "budget/budget.h"
#include "engine/engine.h"
#include "model/model.h"

typedef struct {
    const char *host;          /* default 127.0.0.1 */
    uint16_t port;             /* 0: any free port (see hr_server_port) */
    hr_policy policy;          /* default for requests without context_policy */
    int64_t min_room;          /* clamp refuses below this (default 1) */
    int64_t alert_room;        /* room below this at admission is a low-room event (default 0: off) */
    int32_t max_queue;         /* requests waiting beyond this get 429 (default 64) */
    int32_t idle_timeout_s;    /* a connection silent this long (between requests, or mid-
                                * header or body) is closed (default 60); generation is
                                * not silence */
    const char *api_key;       /* NULL: no authentication */
    const char *chat_template; /* built-in name or file; NULL: the model's own */
    const char *model_id;      /* name in /v1/models (default: the file's base name) */
    size_t max_body_bytes;     /* default 8 MiB; larger bodies get 413 */
    hr_engine_config engine;
} hr_server_config;

typedef struct hr_server hr_server;

hr_status hr_server_start(hr_server **out, const hr_model *model, const hr_server_config *cfg, hr_error *err);
/* Stops accepting, cancels what is in flight, and frees everything. */
void hr_server_stop(hr_server *s);
uint16_t hr_server_port(const hr_server *s);
void hr_server_stats(hr_server *s, hr_engine_stats *out);

#endif
