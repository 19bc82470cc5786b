/* server/http — the small layer over libmicrohttpd every endpoint uses: JSON and
 * OpenAI-style error responses, streamed responses fed by a pull callback, and
 * detection of a client that has gone away.
 *
 * Must not: know about models, budgets or OpenAI request fields. */
#ifndef HR_SERVER_HTTP_H
#define HR_SERVER_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Sends body with status and content type. Returns MHD's verdict for the handler. */
enum MHD_Result hr_http_send(struct MHD_Connection *c, unsigned status, const char *content_type, const char *body,
                             size_t len);
/* Sends a JSON value (the reference is consumed). */
enum MHD_Result hr_http_send_json(struct MHD_Connection *c, unsigned status, json_t *body);
/* {"error": {"message", "type", "param", "code"}}; param and code may be NULL. */
enum MHD_Result hr_http_send_error(struct MHD_Connection *c, unsigned status, const char *type, const char *param,
                                   const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* 405 with the Allow header listing the methods the path accepts. */
enum MHD_Result hr_http_send_not_allowed(struct MHD_Connection *c, const char *allow, const char *method,
                                         const char *url);

/* A streamed response: pull(cls, buf, max) fills buf and returns the bytes written,
 * 0 at the end of the stream, or -1 to abort the connection; done(cls) runs once when
 * MHD is finished with the response, whether it completed or the client left. */
typedef ssize_t (*hr_http_pull_fn)(void *cls, char *buf, size_t max);
typedef void (*hr_http_done_fn)(void *cls);
enum MHD_Result hr_http_send_stream(struct MHD_Connection *c, const char *content_type, hr_http_pull_fn pull,
                                    hr_http_done_fn done, void *cls);

/* The connection's socket, for hr_http_peer_gone. */
int hr_http_socket(struct MHD_Connection *c);
/* True once the peer has closed or reset the connection. */
bool hr_http_peer_gone(int fd);

#endif
