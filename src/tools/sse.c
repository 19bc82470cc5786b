#include "tools/sse.h"

#include <string.h>

/* One line without its terminator: a blank line ends the event; "data:" adds to it;
 * comments (":") and other fields (event, id, retry) carry nothing a client needs here. */
static void take_line(hr_sse *p, const char *line, size_t len, hr_sse_fn fn, void *ctx) {
    if (len > 0 && line[len - 1] == '\r') len--;
    if (len == 0) {
        if (p->has_data) fn(ctx, hr_strbuf_str(&p->data), p->data.len);
        hr_strbuf_clear(&p->data);
        p->has_data = false;
        return;
    }
    if (len < 5 || memcmp(line, "data:", 5) != 0) return;
    size_t skip = len > 5 && line[5] == ' ' ? 6 : 5;
    if (p->has_data) hr_strbuf_append(&p->data, "\n", 1);
    hr_strbuf_append(&p->data, line + skip, len - skip);
    p->has_data = true;
}

void hr_sse_feed(hr_sse *p, const char *bytes, size_t n, hr_sse_fn fn, void *ctx) {
    while (n > 0) {
        const char *nl = memchr(bytes, '\n', n);
        size_t chunk = nl ? (size_t)(nl - bytes) : n;
        if (!nl) {
            hr_strbuf_append(&p->line, bytes, chunk);
            return;
        }
        if (p->line.len > 0) {
            hr_strbuf_append(&p->line, bytes, chunk);
            take_line(p, hr_strbuf_str(&p->line), p->line.len, fn, ctx);
            hr_strbuf_clear(&p->line);
        } else {
            take_line(p, bytes, chunk, fn, ctx);
        }
        bytes += chunk + 1;
        n -= chunk + 1;
    }
}

void hr_sse_free(hr_sse *p) {
    hr_strbuf_free(&p->line);
    hr_strbuf_free(&p->data);
    p->has_data = false;
}
