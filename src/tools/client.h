/* tools/client — a small OpenAI-compatible client over libcurl, shared by `probe`,
 * `doctor --url` and `bench`: the server's base URL (with or without /v1), the loopback
 * check, blocking requests, easy-handle setup for the load generator's multi loop, chat
 * request bodies, and what an answer says (usage, finish reason, the headroom object,
 * the OpenAI error object).
 *
 * Owns: nothing beyond each reply's body buffer.
 * Must not: follow redirects, go through a proxy, or aim anywhere but the URL given. */
#ifndef HR_TOOLS_CLIENT_H
#define HR_TOOLS_CLIENT_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/strbuf.h"

/* The largest token count believed from a server (windows, usage, the headroom object)
 * or asked of bench: about 33 million, above any model's window today. Larger or negative
 * numbers read as absent, so sums and prompts built from them stay in range. */
#define HR_MAX_WINDOW_TOKENS (1 << 25)
/* A whole reply, or one event of a stream, is read up to this; past it the request fails. */
#define HR_HTTP_MAX_REPLY_BYTES (64u << 20)

typedef struct {
    char root[1024]; /* scheme://authority[/prefix]: no trailing slash, no /v1 */
    char host[256];  /* without the brackets of an IPv6 literal */
    char api_key[512];
} hr_endpoint;

/* Accepts http:// or https:// URLs; a trailing "/v1" or "/" is dropped. Refuses user
 * info, queries and fragments (they would hide where requests go). */
hr_status hr_endpoint_parse(const char *url, hr_endpoint *out, hr_error *err);
/* True for localhost, 127.0.0.0/8 and ::1. */
bool hr_endpoint_is_loopback(const hr_endpoint *ep);
/* root + path (path starts with '/', e.g. "/v1/models" or "/metrics"). */
void hr_endpoint_url(const hr_endpoint *ep, const char *path, char *buf, size_t cap);

/* Process-wide libcurl setup; pair every successful init with a cleanup. */
hr_status hr_http_init(hr_error *err);
void hr_http_cleanup(void);

/* Seconds on a monotonic clock. */
double hr_now(void);

/* An easy handle for ep + path: a POST of body (JSON) when body is not NULL, else a
 * GET; writes the answer through write_fn. *headers is the caller's to free with
 * curl_slist_free_all once the transfer is over. NULL when libcurl is out of memory. */
CURL *hr_http_handle(const hr_endpoint *ep, const char *path, const char *body, double timeout_s,
                     struct curl_slist **headers, curl_write_callback write_fn, void *write_ctx);

typedef struct {
    long status; /* the HTTP status */
    hr_strbuf body;
} hr_http_reply;

/* A blocking request. Any HTTP answer is HR_OK (see status); no answer at all (refused,
 * timed out, reset) is HR_ERR_IO with libcurl's reason and the URL. */
hr_status hr_http_request(const hr_endpoint *ep, const char *path, const char *body, double timeout_s,
                          hr_http_reply *out, hr_error *err);
void hr_http_reply_free(hr_http_reply *r);

/* A chat completion request with one user message; malloc'd JSON text (NULL when out
 * of memory). Streamed requests ask for usage in the final chunk. */
char *hr_chat_body(const char *model, const char *content, size_t content_len, int64_t max_tokens, bool stream);

/* What one chat completion answer says. Counts are -1 when the server did not say. */
typedef struct {
    long status;
    int64_t prompt_tokens, completion_tokens;
    char finish_reason[24];
    bool has_headroom; /* a headroom object (headroom servers) */
    int64_t window, room, max_tokens_requested, max_tokens_granted, messages_dropped;
    bool summarized, message_cut;
    char error_code[64];     /* error.code, or "" */
    char error_message[512]; /* error.message, or the start of a body that is not an error object */
    bool malformed;          /* a 2xx answer that is not a completion */
} hr_chat_answer;

void hr_chat_answer_init(hr_chat_answer *a, long status);
/* Reads a whole (not streamed) answer with its HTTP status. */
void hr_chat_answer_parse(long status, const char *body, size_t len, hr_chat_answer *out);
/* Folds one streamed chunk into out; returns the content bytes it carried. */
size_t hr_chat_answer_chunk(const json_t *chunk, hr_chat_answer *out);
/* The server lowered max_tokens (the headroom object says so). */
bool hr_chat_answer_clamped(const hr_chat_answer *a);
/* The server cut or folded the prompt (the headroom object says so). */
bool hr_chat_answer_truncated(const hr_chat_answer *a);

/* GET /v1/models: the id of the model named want (or the first one listed when want is
 * NULL or empty) and the window it advertises (context_window, max_model_len,
 * context_length or meta.n_ctx_train; 0 when none, or when want is not listed). Fails
 * when the server does not answer, or lists no model and want is not given. */
hr_status hr_fetch_model(const hr_endpoint *ep, const char *want, double timeout_s, char *id, size_t id_cap,
                         int64_t *window, hr_error *err);

#endif
