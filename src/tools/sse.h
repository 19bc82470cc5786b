/* tools/sse — an incremental Server-Sent Events parser: bytes arrive in whatever pieces
 * the network delivers; each complete event's data (its "data:" lines joined by
 * newlines) is handed to a callback.
 *
 * Owns: the partial line and the data gathered for the event in progress.
 * Must not: interpret the data (the caller parses JSON and "[DONE]"). */
#ifndef HR_TOOLS_SSE_H
#define HR_TOOLS_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/strbuf.h"

typedef void (*hr_sse_fn)(void *ctx, const char *data, size_t len);

typedef struct {
    hr_strbuf line; /* bytes of the line not yet ended */
    hr_strbuf data; /* data lines of the event in progress */
    bool has_data;
} hr_sse;

void hr_sse_feed(hr_sse *p, const char *bytes, size_t n, hr_sse_fn fn, void *ctx);
void hr_sse_free(hr_sse *p);

#endif
