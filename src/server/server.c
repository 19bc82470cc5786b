#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "server/http.h"
#include "server/server_internal.h"

/* Open connections at once (each has a thread; past this, new ones are closed at once).
 * The library's default is select()'s limit, 1020, which a thousand idle sockets fill. */
enum { MAX_CONNECTIONS = 4096 };
/* Seconds a stopping server gives requests to send their final answer. */
enum { STOP_GRACE_S = 3 };

typedef struct {
    hr_strbuf body;
    bool too_large;
} conn_state;

typedef enum MHD_Result (*body_handler)(hr_server *, struct MHD_Connection *, const char *, size_t);
typedef enum MHD_Result (*get_handler)(hr_server *, struct MHD_Connection *);

static enum MHD_Result get_health(hr_server *s, struct MHD_Connection *c) {
    (void)s;
    return hr_http_send_json(c, 200, json_pack("{s:s}", "status", "ok"));
}

hr_status hr_server_submit(hr_server *s, const hr_request *r, uint64_t *id, hr_error *err) {
    pthread_mutex_lock(&s->lock);
    hr_status st = s->engine ? hr_engine_submit(s->engine, r, id, err)
                             : hr_fail(err, HR_ERR_IO, "the server is shutting down");
    pthread_mutex_unlock(&s->lock);
    return st;
}

void hr_server_cancel(hr_server *s, uint64_t id) {
    pthread_mutex_lock(&s->lock);
    if (s->engine) hr_engine_cancel(s->engine, id);
    pthread_mutex_unlock(&s->lock);
}

bool hr_server_engine_stats(hr_server *s, hr_engine_stats *out) {
    pthread_mutex_lock(&s->lock);
    bool ok = s->engine != NULL;
    if (ok) hr_engine_stats_get(s->engine, out);
    else memset(out, 0, sizeof *out);
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static enum MHD_Result get_models(hr_server *s, struct MHD_Connection *c) {
    hr_engine_stats es;
    hr_server_engine_stats(s, &es);
    json_t *model = json_pack("{s:s, s:s, s:i, s:s, s:i, s:i, s:s}", "id", s->model_id, "object", "model", "created",
                              0, "owned_by", "headroom", "context_window", es.window, "max_model_len", es.window,
                              "architecture", s->model->hp.arch);
    return hr_http_send_json(c, 200, json_pack("{s:s, s:[o]}", "object", "list", "data", model));
}

/* The live views: engine stats rendered by a metrics function. */
static enum MHD_Result send_view(hr_server *s, struct MHD_Connection *c, const char *content_type,
                                 void (*render)(hr_metrics *, const hr_engine_stats *, hr_strbuf *)) {
    hr_engine_stats es;
    hr_server_engine_stats(s, &es);
    hr_strbuf out = {0};
    render(s->metrics, &es, &out);
    enum MHD_Result r = hr_http_send(c, 200, content_type, hr_strbuf_str(&out), out.len);
    hr_strbuf_free(&out);
    return r;
}

static enum MHD_Result get_metrics(hr_server *s, struct MHD_Connection *c) {
    return send_view(s, c, "text/plain; version=0.0.4", hr_metrics_render_prometheus);
}

static enum MHD_Result get_headroom(hr_server *s, struct MHD_Connection *c) {
    return send_view(s, c, "application/json", hr_metrics_render_headroom);
}

static const struct {
    const char *path;
    get_handler get;
    body_handler post;
} routes[] = {
    {"/health", get_health, NULL},
    {"/v1/models", get_models, NULL},
    {"/metrics", get_metrics, NULL},
    {"/v1/headroom", get_headroom, NULL},
    {"/v1/chat/completions", NULL, hr_api_chat_completions},
    {"/v1/completions", NULL, hr_api_completions},
    {"/v1/budget", NULL, hr_api_budget},
    {"/tokenize", NULL, hr_api_tokenize},
    {"/detokenize", NULL, hr_api_detokenize},
};

static bool authorized(hr_server *s, struct MHD_Connection *c) {
    if (!s->api_key[0]) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    return h && strncmp(h, "Bearer ", 7) == 0 && strcmp(h + 7, s->api_key) == 0;
}

static enum MHD_Result dispatch(hr_server *s, struct MHD_Connection *c, const char *url, const char *method,
                                conn_state *st) {
    size_t n_routes = sizeof routes / sizeof routes[0];
    size_t i = 0;
    while (i < n_routes && strcmp(routes[i].path, url) != 0) i++;
    if (i == n_routes)
        return hr_http_send_error(c, 404, "invalid_request_error", NULL, "not_found", "no endpoint at %s", url);
    if (strcmp(url, "/health") != 0 && !authorized(s, c))
        return hr_http_send_error(c, 401, "invalid_request_error", NULL, "invalid_api_key",
                                  "missing or wrong API key: send the header 'Authorization: Bearer KEY'");
    /* HEAD is GET without the body (the library leaves the body out). */
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0, post = strcmp(method, "POST") == 0;
    if (get && routes[i].get) return routes[i].get(s, c);
    if (post && routes[i].post) {
        if (st->too_large)
            return hr_http_send_error(c, 413, "invalid_request_error", NULL, "request_too_large",
                                      "request body exceeds %zu bytes", s->cfg.max_body_bytes);
        if (st->body.oom) return hr_http_send_error(c, 500, "server_error", NULL, NULL, "out of memory reading the body");
        return routes[i].post(s, c, hr_strbuf_str(&st->body), st->body.len);
    }
    return hr_http_send_not_allowed(c, routes[i].get ? "GET, HEAD" : "POST", method, url);
}

static enum MHD_Result count_length_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    (void)value;
    if (strcasecmp(key, "Content-Length") == 0) ++*(int *)cls;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    hr_server *s = cls;
    conn_state *st = *con_cls;
    if (!st) {
        /* Two Content-Length headers make the body's end ambiguous (RFC 9112 6.3: a
         * request smuggling vector behind a proxy); the library would take one. */
        int lengths = 0;
        MHD_get_connection_values(c, MHD_HEADER_KIND, count_length_header, &lengths);
        if (lengths > 1)
            return hr_http_send_error(c, 400, "invalid_request_error", NULL, "bad_request",
                                      "the request has %d Content-Length headers", lengths);
        st = calloc(1, sizeof *st);
        if (!st) return MHD_NO;
        *con_cls = st;
        pthread_mutex_lock(&s->lock);
        s->in_flight++;
        pthread_mutex_unlock(&s->lock);
        return MHD_YES;
    }
    if (*upload_size > 0) {
        /* Past the limit the rest is read and dropped, so the 413 reaches the client. */
        if (!st->too_large && st->body.len + *upload_size > s->cfg.max_body_bytes) {
            st->too_large = true;
            hr_strbuf_free(&st->body);
        }
        if (!st->too_large) hr_strbuf_append(&st->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    return dispatch(s, c, url, method, st);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    hr_server *s = cls;
    (void)c;
    (void)toe;
    conn_state *st = *con_cls;
    if (!st) return;
    hr_strbuf_free(&st->body);
    free(st);
    *con_cls = NULL;
    pthread_mutex_lock(&s->lock);
    if (--s->in_flight == 0) pthread_cond_broadcast(&s->answered);
    pthread_mutex_unlock(&s->lock);
}

hr_status hr_server_start(hr_server **out, const hr_model *model, const hr_server_config *cfg, hr_error *err) {
    *out = NULL;
    hr_server *s = calloc(1, sizeof *s);
    if (!s) return hr_fail(err, HR_ERR_NOMEM, "out of memory for the server");
    s->cfg = *cfg;
    s->model = model;
    if (!s->cfg.max_body_bytes) s->cfg.max_body_bytes = 8u << 20;
    if (s->cfg.max_queue <= 0) s->cfg.max_queue = 64;
    if (s->cfg.min_room <= 0) s->cfg.min_room = 1;
    /* The library counts only silence: a handler that blocks while the model generates
     * (a whole answer of 300 tokens on a 1B model took 8.6 s with a 3 s timeout) is not
     * timed out, so the limit can be short enough that idle sockets do not pile up. */
    if (s->cfg.idle_timeout_s <= 0) s->cfg.idle_timeout_s = 60;
    snprintf(s->host, sizeof s->host, "%s", cfg->host ? cfg->host : "127.0.0.1");
    snprintf(s->api_key, sizeof s->api_key, "%s", cfg->api_key ? cfg->api_key : "");
    const char *base = strrchr(model->path, '/');
    snprintf(s->model_id, sizeof s->model_id, "%s", cfg->model_id ? cfg->model_id : base ? base + 1 : model->path);
    s->cfg.engine.threaded = true;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->answered, NULL);
    s->metrics = hr_metrics_new();
    hr_status st = s->metrics ? HR_OK : hr_fail(err, HR_ERR_NOMEM, "out of memory for metrics");
    if (st == HR_OK) st = hr_chat_new(&s->chat, model, cfg->chat_template, err);
    if (st == HR_OK) st = hr_engine_new(&s->engine, model, &s->cfg.engine, err);
    struct sockaddr_storage addr = {0};
    if (st == HR_OK) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
        struct addrinfo *res = NULL;
        char port[16];
        snprintf(port, sizeof port, "%u", (unsigned)cfg->port);
        if (getaddrinfo(s->host, port, &hints, &res) != 0 || !res)
            st = hr_fail(err, HR_ERR_INVALID, "--host '%s' is not a numeric IPv4 or IPv6 address", s->host);
        else memcpy(&addr, res->ai_addr, res->ai_addrlen);
        if (res) freeaddrinfo(res);
    }
    if (st == HR_OK) {
        /* poll, not select: select cannot watch a descriptor past FD_SETSIZE (1024), so
         * a thousand idle connections would lock every later client out. */
        unsigned flags =
            MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
        if (addr.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
        s->daemon = MHD_start_daemon(flags, cfg->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &addr,
                                     MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
                                     (unsigned)s->cfg.idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
                                     MHD_OPTION_END);
        if (!s->daemon)
            st = hr_fail(err, HR_ERR_IO, "cannot listen on %s:%u (in use, or not an address of this machine?)", s->host,
                         (unsigned)cfg->port);
    }
    if (st == HR_OK) {
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
        s->port = info ? info->port : cfg->port;
    }
    if (st != HR_OK) {
        hr_server_stop(s);
        return st;
    }
    *out = s;
    return HR_OK;
}

void hr_server_stop(hr_server *s) {
    if (!s) return;
    /* Stop accepting, then end every request (handlers waiting on tokens get their
     * final event), then wait for the connection threads. */
    if (s->daemon) MHD_quiesce_daemon(s->daemon);
    pthread_mutex_lock(&s->lock);
    hr_engine *e = s->engine;
    s->engine = NULL;
    pthread_mutex_unlock(&s->lock);
    hr_engine_free(e);
    /* Stopping the daemon closes every connection: first let the requests just ended
     * send their 503 or their stream's error event, for a while (a client still
     * sending its body, say, is not waited for past it). */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += STOP_GRACE_S;
    pthread_mutex_lock(&s->lock);
    while (s->in_flight > 0 && pthread_cond_timedwait(&s->answered, &s->lock, &until) == 0) {}
    pthread_mutex_unlock(&s->lock);
    if (s->daemon) MHD_stop_daemon(s->daemon);
    hr_chat_free(s->chat);
    hr_metrics_free(s->metrics);
    pthread_cond_destroy(&s->answered);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

uint16_t hr_server_port(const hr_server *s) { return s->port; }

void hr_server_stats(hr_server *s, hr_engine_stats *out) { hr_server_engine_stats(s, out); }
