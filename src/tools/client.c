#include "tools/client.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void trim_slashes(char *s, size_t *len, size_t min_len) {
    while (*len > min_len && s[*len - 1] == '/') s[--*len] = '\0';
}

hr_status hr_endpoint_parse(const char *url, hr_endpoint *out, hr_error *err) {
    memset(out, 0, sizeof *out);
    const char *rest = NULL;
    if (!strncasecmp(url, "http://", 7)) rest = url + 7;
    else if (!strncasecmp(url, "https://", 8)) rest = url + 8;
    if (!rest) return hr_fail(err, HR_ERR_INVALID, "'%s' is not an http:// or https:// URL", url);
    if (strpbrk(url, "?#@ "))
        return hr_fail(err, HR_ERR_INVALID, "'%s': give the server's base URL, without user, query or fragment", url);
    size_t authority = strcspn(rest, "/");
    const char *host = rest, *host_end;
    if (*host == '[') {
        host_end = memchr(host, ']', authority);
        if (!host_end) return hr_fail(err, HR_ERR_INVALID, "'%s': unclosed '[' in the host", url);
        host++;
    } else {
        host_end = memchr(host, ':', authority);
        if (!host_end) host_end = rest + authority;
    }
    const char *after_host = host_end + (*host_end == ']');
    if (host_end == host || (size_t)(host_end - host) >= sizeof out->host)
        return hr_fail(err, HR_ERR_INVALID, "'%s' has no host", url);
    if (after_host < rest + authority) {
        const char *port = after_host + 1;
        size_t digits = strspn(port, "0123456789");
        if (*after_host != ':' || digits == 0 || digits > 5 || port + digits != rest + authority || atoi(port) < 1 ||
            atoi(port) > 65535)
            return hr_fail(err, HR_ERR_INVALID, "'%s': the port is not a number from 1 to 65535", url);
    }
    snprintf(out->host, sizeof out->host, "%.*s", (int)(host_end - host), host);
    size_t len = strlen(url);
    if (len >= sizeof out->root)
        return hr_fail(err, HR_ERR_INVALID, "the URL is longer than %zu bytes", sizeof out->root);
    memcpy(out->root, url, len + 1);
    /* Requests add "/v1/..." themselves: drop trailing slashes and one "/v1". */
    size_t min_len = (size_t)(rest - url) + authority;
    trim_slashes(out->root, &len, min_len);
    if (len >= min_len + 3 && !strcmp(out->root + len - 3, "/v1")) {
        len -= 3;
        out->root[len] = '\0';
        trim_slashes(out->root, &len, min_len);
    }
    return HR_OK;
}

bool hr_endpoint_is_loopback(const hr_endpoint *ep) {
    if (!strcasecmp(ep->host, "localhost")) return true;
    struct in_addr v4;
    if (inet_pton(AF_INET, ep->host, &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    struct in6_addr v6;
    return inet_pton(AF_INET6, ep->host, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

void hr_endpoint_url(const hr_endpoint *ep, const char *path, char *buf, size_t cap) {
    snprintf(buf, cap, "%s%s", ep->root, path);
}

hr_status hr_http_init(hr_error *err) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return hr_fail(err, HR_ERR_IO, "libcurl failed to initialise");
    return HR_OK;
}

void hr_http_cleanup(void) { curl_global_cleanup(); }

double hr_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

CURL *hr_http_handle(const hr_endpoint *ep, const char *path, const char *body, double timeout_s,
                     struct curl_slist **headers, curl_write_callback write_fn, void *write_ctx) {
    char url[2048];
    hr_endpoint_url(ep, path, url, sizeof url);
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    struct curl_slist *hs = NULL, *next;
    if ((next = curl_slist_append(hs, "Content-Type: application/json"))) hs = next;
    if (ep->api_key[0]) {
        char auth[600];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", ep->api_key);
        if ((next = curl_slist_append(hs, auth))) hs = next;
    }
    *headers = hs;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
    /* Only ever the URL given: no proxy from the environment, no redirects. */
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000 > 1 ? timeout_s * 1000 : 1));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_fn);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, write_ctx);
    if (body) curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, body);
    return h;
}

static size_t append_body(char *data, size_t size, size_t n, void *ctx) {
    hr_strbuf *b = ctx;
    if (b->len + size * n > HR_HTTP_MAX_REPLY_BYTES) return 0; /* curl then fails the transfer */
    hr_strbuf_append(b, data, size * n);
    return b->oom ? 0 : size * n;
}

hr_status hr_http_request(const hr_endpoint *ep, const char *path, const char *body, double timeout_s,
                          hr_http_reply *out, hr_error *err) {
    memset(out, 0, sizeof *out);
    struct curl_slist *headers = NULL;
    CURL *h = hr_http_handle(ep, path, body, timeout_s, &headers, append_body, &out->body);
    if (!h) return hr_fail(err, HR_ERR_NOMEM, "out of memory for an HTTP request");
    char why[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, why);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    if (rc == CURLE_OK) return HR_OK;
    bool too_big = rc == CURLE_WRITE_ERROR && !out->body.oom;
    hr_strbuf_free(&out->body); /* a failed request leaves nothing to free */
    char url[2048];
    hr_endpoint_url(ep, path, url, sizeof url);
    if (too_big)
        return hr_fail(err, HR_ERR_IO, "%s %s: the reply is larger than %u MiB", body ? "POST" : "GET", url,
                       HR_HTTP_MAX_REPLY_BYTES >> 20);
    return hr_fail(err, HR_ERR_IO, "%s %s: %s", body ? "POST" : "GET", url, why[0] ? why : curl_easy_strerror(rc));
}

void hr_http_reply_free(hr_http_reply *r) { hr_strbuf_free(&r->body); }

char *hr_chat_body(const char *model, const char *content, size_t content_len, int64_t max_tokens, bool stream) {
    json_t *req =
        json_pack("{s:s, s:[{s:s, s:s%}], s:I, s:i, s:b}", "model", model, "messages", "role", "user", "content",
                  content, content_len, "max_tokens", (json_int_t)max_tokens, "temperature", 0, "stream", stream);
    if (req && stream) json_object_set_new(req, "stream_options", json_pack("{s:b}", "include_usage", 1));
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    return text;
}

void hr_chat_answer_init(hr_chat_answer *a, long status) {
    memset(a, 0, sizeof *a);
    a->status = status;
    a->prompt_tokens = a->completion_tokens = -1;
    a->window = a->room = a->max_tokens_requested = a->max_tokens_granted = -1;
}

/* A token count a server reports, or fallback when it is absent or out of range. */
static int64_t count_or(const json_t *obj, const char *key, int64_t fallback) {
    const json_t *v = json_object_get(obj, key);
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;
    return n >= 0 && n <= HR_MAX_WINDOW_TOKENS ? (int64_t)n : fallback;
}

static void read_error(const json_t *root, hr_chat_answer *out) {
    const json_t *e = json_object_get(root, "error");
    /* Some servers send the message as a bare string. */
    const char *msg = json_is_string(e) ? json_string_value(e) : json_string_value(json_object_get(e, "message"));
    const json_t *code = json_object_get(e, "code");
    if (msg) snprintf(out->error_message, sizeof out->error_message, "%s", msg);
    if (json_is_string(code)) snprintf(out->error_code, sizeof out->error_code, "%s", json_string_value(code));
    else if (json_is_integer(code))
        snprintf(out->error_code, sizeof out->error_code, "%lld", (long long)json_integer_value(code));
}

/* Usage, the headroom object, finish_reason and content of a whole answer or a chunk. */
static size_t read_fields(const json_t *root, hr_chat_answer *out) {
    const json_t *usage = json_object_get(root, "usage");
    if (json_is_object(usage)) {
        out->prompt_tokens = count_or(usage, "prompt_tokens", out->prompt_tokens);
        out->completion_tokens = count_or(usage, "completion_tokens", out->completion_tokens);
    }
    const json_t *h = json_object_get(root, "headroom");
    if (json_is_object(h)) {
        out->has_headroom = true;
        out->window = count_or(h, "window", -1);
        out->room = count_or(h, "room", -1);
        out->max_tokens_requested = count_or(h, "max_tokens_requested", -1);
        out->max_tokens_granted = count_or(h, "max_tokens_granted", -1);
        out->messages_dropped = count_or(h, "messages_dropped", 0);
        out->summarized = json_is_true(json_object_get(h, "summarized"));
        out->message_cut = json_is_true(json_object_get(h, "message_cut"));
    }
    size_t bytes = 0;
    const json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
    const char *reason = json_string_value(json_object_get(choice, "finish_reason"));
    if (reason) snprintf(out->finish_reason, sizeof out->finish_reason, "%s", reason);
    const json_t *msg = json_object_get(choice, "message");
    if (!msg) msg = json_object_get(choice, "delta");
    const json_t *content = json_object_get(msg, "content");
    if (!content) content = json_object_get(choice, "text");
    if (json_is_string(content)) bytes = json_string_length(content);
    if (json_object_get(root, "error")) read_error(root, out);
    return bytes;
}

void hr_chat_answer_parse(long status, const char *body, size_t len, hr_chat_answer *out) {
    hr_chat_answer_init(out, status);
    json_t *root = json_loadb(body, len, 0, NULL);
    if (json_is_object(root)) read_fields(root, out);
    if (status >= 200 && status < 300 && !json_is_array(json_object_get(root, "choices"))) out->malformed = true;
    if (status >= 300 && !out->error_message[0])
        snprintf(out->error_message, sizeof out->error_message, "%.*s", (int)(len < 300 ? len : 300), body ? body : "");
    json_decref(root);
}

size_t hr_chat_answer_chunk(const json_t *chunk, hr_chat_answer *out) { return read_fields(chunk, out); }

bool hr_chat_answer_clamped(const hr_chat_answer *a) {
    return a->has_headroom && a->max_tokens_requested >= 0 && a->max_tokens_granted < a->max_tokens_requested;
}

bool hr_chat_answer_truncated(const hr_chat_answer *a) {
    return a->has_headroom && !a->summarized && (a->messages_dropped > 0 || a->message_cut);
}

/* The entry of the list named want, else the first (NULL when the list names none). */
static const json_t *pick_model(const json_t *data, const char *want) {
    const json_t *first = NULL, *each;
    size_t i;
    json_array_foreach(data, i, each) {
        const char *name = json_string_value(json_object_get(each, "id"));
        if (!name) continue;
        if (want && !strcmp(name, want)) return each;
        if (!first) first = each;
    }
    return want ? NULL : first;
}

hr_status hr_fetch_model(const hr_endpoint *ep, const char *want, double timeout_s, char *id, size_t id_cap,
                         int64_t *window, hr_error *err) {
    hr_http_reply r;
    *window = 0;
    if (want && !want[0]) want = NULL;
    if (hr_http_request(ep, "/v1/models", NULL, timeout_s, &r, err) != HR_OK) return err->status;
    json_t *root = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
    const json_t *data = json_object_get(root, "data");
    const json_t *m = r.status == 200 && json_is_array(data) ? pick_model(data, want) : NULL;
    hr_status st = HR_OK;
    /* A model the list does not name may still be served (gateways route by name, and some
     * servers have no list): the caller's name stands, with no window known. */
    if (want) {
        snprintf(id, id_cap, "%s", want);
    } else if (m) {
        snprintf(id, id_cap, "%s", json_string_value(json_object_get(m, "id")));
    } else {
        hr_chat_answer a;
        hr_chat_answer_parse(r.status, r.body.data, r.body.len, &a);
        st = hr_fail(err, HR_ERR_NOT_FOUND, "GET %s/v1/models answered %ld with no model (%s); pass --model NAME",
                     ep->root, r.status, a.error_message[0] ? a.error_message : "an empty list");
    }
    static const char *const WINDOW_KEYS[] = {"context_window", "max_model_len", "context_length"};
    for (size_t k = 0; m && *window == 0 && k < sizeof WINDOW_KEYS / sizeof WINDOW_KEYS[0]; k++)
        *window = count_or(m, WINDOW_KEYS[k], 0);
    if (m && *window == 0) *window = count_or(json_object_get(m, "meta"), "n_ctx_train", 0);
    json_decref(root);
    hr_http_reply_free(&r);
    return st;
}
