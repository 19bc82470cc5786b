/* tokenizer/jinja_unicode — the few Unicode facts the chat-template interpreter needs to
 * behave like Python's str: UTF-8 decoding that never fails, whitespace and line-break
 * classes (str.isspace, str.splitlines), printability for repr(), and case mapping.
 *
 * Owns: nothing; pure functions over bytes and code points.
 * Must not: allocate, or guess. Case mapping covers ASCII, Latin-1, Latin Extended-A,
 * basic Greek and Cyrillic and fullwidth Latin; for other cased scripts it reports
 * "not supported" so callers refuse rather than render a wrong letter. */
#ifndef HR_TOKENIZER_JINJA_UNICODE_H
#define HR_TOKENIZER_JINJA_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes that are not valid UTF-8 decode one at a time to U+DC80..U+DCFF (Python's
 * "surrogateescape") and encode back to the same byte, so any input round-trips. */
#define HR_UTF8_ESCAPE_BASE 0xDC00u

/* Decodes the code point starting at s[0] (n >= 1 bytes available); returns its length
 * in bytes (1..4). */
size_t hr_utf8_decode(const char *s, size_t n, uint32_t *cp);
/* Encodes cp into out; returns the byte count (1..4). */
size_t hr_utf8_encode(uint32_t cp, char out[4]);
/* Number of code points in s[0..n). */
size_t hr_utf8_count(const char *s, size_t n);

bool hr_uni_is_space(uint32_t cp);          /* Python str.isspace() */
bool hr_uni_is_linebreak(uint32_t cp);      /* a boundary for str.splitlines() */
bool hr_uni_is_printable(uint32_t cp);      /* close to str.isprintable(), for repr() */
bool hr_uni_is_cased(uint32_t cp);          /* has case, within the supported blocks */
bool hr_uni_is_case_ignorable(uint32_t cp); /* skipped when deciding a final sigma */

typedef enum { HR_CASE_LOWER, HR_CASE_UPPER, HR_CASE_TITLE } hr_case_mode;

/* Maps cp to 1..3 code points in out and returns the count, or returns 0 when cp
 * belongs to a cased script whose mapping headroom does not carry. */
int hr_uni_case(uint32_t cp, hr_case_mode mode, uint32_t out[3]);

#endif
