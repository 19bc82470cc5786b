#include "server/http.h"

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum MHD_Result hr_http_send(struct MHD_Connection *c, unsigned status, const char *content_type, const char *body,
                             size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", content_type);
    if (status == 429) MHD_add_response_header(r, "Retry-After", "1");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

enum MHD_Result hr_http_send_json(struct MHD_Connection *c, unsigned status, json_t *body) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) return hr_http_send(c, 500, "application/json", "{\"error\":{\"message\":\"out of memory\"}}", 37);
    enum MHD_Result ok = hr_http_send(c, status, "application/json", text, strlen(text));
    free(text);
    return ok;
}

enum MHD_Result hr_http_send_error(struct MHD_Connection *c, unsigned status, const char *type, const char *param,
                                   const char *code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *err = json_pack("{s:s, s:s, s:o, s:o}", "message", msg, "type", type, "param",
                            param ? json_string(param) : json_null(), "code", code ? json_string(code) : json_null());
    return hr_http_send_json(c, status, json_pack("{s:o}", "error", err));
}

enum MHD_Result hr_http_send_not_allowed(struct MHD_Connection *c, const char *allow, const char *method,
                                         const char *url) {
    char body[512];
    int n = snprintf(body, sizeof body,
                     "{\"error\":{\"message\":\"%.16s is not allowed on %.64s (use %s)\",\"type\":\"invalid_request_error\","
                     "\"param\":null,\"code\":\"method_not_allowed\"}}",
                     method, url, allow);
    struct MHD_Response *r = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Allow", allow);
    enum MHD_Result ok = MHD_queue_response(c, 405, r);
    MHD_destroy_response(r);
    return ok;
}

typedef struct {
    hr_http_pull_fn pull;
    hr_http_done_fn done;
    void *cls;
} stream_ctx;

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_ctx *s = cls;
    ssize_t n = s->pull(s->cls, buf, max);
    if (n > 0) return n;
    return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls) {
    stream_ctx *s = cls;
    s->done(s->cls);
    free(s);
}

enum MHD_Result hr_http_send_stream(struct MHD_Connection *c, const char *content_type, hr_http_pull_fn pull,
                                    hr_http_done_fn done, void *cls) {
    stream_ctx *s = malloc(sizeof *s);
    if (!s) {
        done(cls);
        return MHD_NO;
    }
    *s = (stream_ctx){pull, done, cls};
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, s, stream_free);
    if (!r) {
        stream_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", content_type);
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ok = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ok;
}

int hr_http_socket(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info ? info->connect_fd : -1;
}

bool hr_http_peer_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}
