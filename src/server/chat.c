/* Chat rendering for the server: the template the model carries, a named built-in or a
 * file given with --chat-template, or, for a model with no chat template at all (a
 * story model such as stories260K), "plain": the message contents, one per line. */
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

struct hr_chat {
    char name[256];
};

hr_status hr_chat_new(hr_chat **out, const hr_model *m, const char *name_or_file, hr_error *err) {
    (void)m;
    *out = NULL;
    if (name_or_file && strcmp(name_or_file, "plain") != 0)
        return hr_fail(err, HR_ERR_UNSUPPORTED, "chat template '%s' is not available (available: plain)", name_or_file);
    hr_chat *c = calloc(1, sizeof *c);
    if (!c) return hr_fail(err, HR_ERR_NOMEM, "out of memory for the chat template");
    snprintf(c->name, sizeof c->name, "plain");
    *out = c;
    return HR_OK;
}

void hr_chat_free(hr_chat *c) { free(c); }

const char *hr_chat_name(const hr_chat *c) { return c->name; }

hr_status hr_chat_render(hr_chat *c, const json_t *messages, hr_strbuf *out, hr_error *err) {
    (void)c;
    size_t i;
    const json_t *m;
    json_array_foreach(messages, i, m) {
        const json_t *content = json_object_get(m, "content");
        if (i > 0) hr_strbuf_puts(out, "\n");
        if (json_is_string(content)) {
            hr_strbuf_append(out, json_string_value(content), json_string_length(content));
        } else {
            size_t k;
            const json_t *part;
            json_array_foreach(content, k, part) {
                const json_t *text = json_object_get(part, "text");
                if (json_is_string(text)) hr_strbuf_append(out, json_string_value(text), json_string_length(text));
            }
        }
    }
    return out->oom ? hr_fail(err, HR_ERR_NOMEM, "out of memory rendering the conversation") : HR_OK;
}
