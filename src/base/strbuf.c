#include "base/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(hr_strbuf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        if (cap > ((size_t)-1) / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *bigger = realloc(b->data, cap);
    if (!bigger) {
        b->oom = true;
        return false;
    }
    b->data = bigger;
    b->cap = cap;
    return true;
}

void hr_strbuf_append(hr_strbuf *b, const char *s, size_t n) {
    if (!reserve(b, n)) return;
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void hr_strbuf_puts(hr_strbuf *b, const char *s) { hr_strbuf_append(b, s, strlen(s)); }

void hr_strbuf_printf(hr_strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void hr_strbuf_clear(hr_strbuf *b) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void hr_strbuf_free(hr_strbuf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

const char *hr_strbuf_str(const hr_strbuf *b) { return b->data ? b->data : ""; }
