/* base/strbuf — a growable byte buffer, always NUL-terminated.
 *
 * Owns: its heap buffer (hr_strbuf_free releases it). A failed growth leaves the
 * buffer as it was and sets `oom`, so callers can append freely and check once. */
#ifndef HR_BASE_STRBUF_H
#define HR_BASE_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *data;
    size_t len, cap;
    bool oom;
} hr_strbuf;

void hr_strbuf_append(hr_strbuf *b, const char *s, size_t n);
void hr_strbuf_puts(hr_strbuf *b, const char *s);
void hr_strbuf_printf(hr_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hr_strbuf_clear(hr_strbuf *b);
void hr_strbuf_free(hr_strbuf *b);
/* The contents as a string ("" when empty). */
const char *hr_strbuf_str(const hr_strbuf *b);

#endif
