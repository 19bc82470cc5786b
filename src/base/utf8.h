/* base/utf8 — UTF-8 facts generated text needs: where a byte string stops being
 * complete (so a stream never splits a character), and a repair that replaces
 * invalid sequences with U+FFFD (so JSON output is always valid).
 *
 * Must not: normalize or otherwise change valid text. */
#ifndef HR_BASE_UTF8_H
#define HR_BASE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the valid or invalid-but-finished UTF-8 in s[0..n): everything except a
 * trailing sequence that is still missing continuation bytes. */
size_t hr_utf8_complete_len(const char *s, size_t n);

/* Length of the well-formed sequence at s (1..4), or 0 when s[0..avail) does not start
 * one (a stray continuation byte, an overlong form, a surrogate, or a cut sequence). */
size_t hr_utf8_seq_len(const unsigned char *s, size_t avail);

/* Writes s[0..n) to dst with each invalid sequence replaced by U+FFFD; dst must hold
 * 3 * n + 1 bytes. Returns the bytes written (NUL-terminated). */
size_t hr_utf8_sanitize(const char *s, size_t n, char *dst);

#endif
