/* base/json — small helpers over jansson that several layers need: text from a model
 * made safe for JSON, and the text of an OpenAI message's content.
 *
 * Must not: know about requests or responses; callers build those. */
#ifndef HR_BASE_JSON_H
#define HR_BASE_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "base/strbuf.h"

/* A JSON string of s[0..len) with invalid UTF-8 replaced by U+FFFD (a model can emit any
 * bytes; jansson only takes valid UTF-8). New reference. */
json_t *hr_json_text(const char *s, size_t len);

/* Appends a message content's text: the string itself, or the "text" of each part of a
 * parts array. */
void hr_json_content_text(const json_t *content, hr_strbuf *out);

#endif
