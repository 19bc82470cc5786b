#include "base/json.h"

#include <stdlib.h>

#include "base/utf8.h"

json_t *hr_json_text(const char *s, size_t len) {
    char *clean = malloc(3 * len + 1);
    if (!clean) return json_string("");
    size_t n = hr_utf8_sanitize(s, len, clean);
    json_t *j = json_stringn(clean, n);
    free(clean);
    return j;
}

void hr_json_content_text(const json_t *content, hr_strbuf *out) {
    if (json_is_string(content)) {
        hr_strbuf_append(out, json_string_value(content), json_string_length(content));
        return;
    }
    size_t i;
    const json_t *part;
    json_array_foreach(content, i, part) {
        const json_t *text = json_object_get(part, "text");
        if (json_is_string(text)) hr_strbuf_append(out, json_string_value(text), json_string_length(text));
    }
}
