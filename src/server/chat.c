/* Chat rendering for the server: a template given with --chat-template (a built-in name
 * or a Jinja file), else the template the model carries, else — for a model with no
 * chat template at all, such as the story model stories260K — "plain": the message
 * contents, one per line. */
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/json.h"
#include "server/server_internal.h"
#include "tokenizer/chat_template.h"

struct hr_chat {
    char name[256];
    hr_chat_template *tmpl; /* NULL: plain */
    char *bos, *eos;        /* token texts the template sees */
};

static char *token_text(const hr_vocab *v, int32_t id) {
    if (id < 0) return NULL;
    size_t len;
    const char *t = hr_vocab_text(v, id, &len);
    return strndup(t, len);
}

hr_status hr_chat_new(hr_chat **out, const hr_model *m, const char *name_or_file, hr_error *err) {
    *out = NULL;
    hr_chat *c = calloc(1, sizeof *c);
    if (!c) return hr_fail(err, HR_ERR_NOMEM, "out of memory for the chat template");
    c->bos = token_text(m->vocab, m->vocab->bos_id);
    c->eos = token_text(m->vocab, m->vocab->eos_id);
    hr_status st = HR_OK;
    hr_gguf_str source = {0};
    if (name_or_file && strcmp(name_or_file, "plain") == 0) {
        snprintf(c->name, sizeof c->name, "plain");
    } else if (name_or_file && hr_tmpl_builtin_source(name_or_file)) {
        snprintf(c->name, sizeof c->name, "%s", name_or_file);
        st = hr_tmpl_compile_builtin(&c->tmpl, name_or_file, err);
    } else if (name_or_file) {
        char *text;
        size_t len;
        st = hr_file_read_all(name_or_file, &text, &len, err);
        if (st != HR_OK) {
            size_t n = hr_tmpl_builtin_count();
            hr_fail(err, HR_ERR_NOT_FOUND, "--chat-template '%s' is neither a built-in (plain%s%s...) nor a readable file",
                    name_or_file, n ? ", " : "", n ? hr_tmpl_builtin_name(0) : "");
        } else {
            snprintf(c->name, sizeof c->name, "%s", name_or_file);
            st = hr_tmpl_compile(&c->tmpl, text, len, err);
            free(text);
        }
    } else if (m->source == HR_MODEL_GGUF && hr_gguf_find(&m->gguf, "tokenizer.chat_template") &&
               hr_gguf_get_str(&m->gguf, "tokenizer.chat_template", &source, err) == HR_OK) {
        snprintf(c->name, sizeof c->name, "model");
        st = hr_tmpl_compile(&c->tmpl, source.ptr, (size_t)source.len, err);
    } else {
        snprintf(c->name, sizeof c->name, "plain");
    }
    if (st != HR_OK) {
        hr_fail_wrap(err, "chat template '%s'", c->name[0] ? c->name : name_or_file);
        hr_chat_free(c);
        return st;
    }
    *out = c;
    return HR_OK;
}

void hr_chat_free(hr_chat *c) {
    if (!c) return;
    hr_tmpl_free(c->tmpl);
    free(c->bos);
    free(c->eos);
    free(c);
}

const char *hr_chat_name(const hr_chat *c) { return c->name; }

hr_status hr_chat_render(hr_chat *c, const json_t *messages, hr_strbuf *out, hr_error *err) {
    if (c->tmpl) {
        hr_tmpl_input in = {.messages = messages, .add_generation_prompt = true, .bos_token = c->bos,
                            .eos_token = c->eos};
        char *text;
        size_t len;
        if (hr_tmpl_render(c->tmpl, &in, &text, &len, err) != HR_OK) return err->status;
        hr_strbuf_append(out, text, len);
        free(text);
    } else {
        size_t i;
        const json_t *m;
        json_array_foreach(messages, i, m) {
            if (i > 0) hr_strbuf_puts(out, "\n");
            hr_json_content_text(json_object_get(m, "content"), out);
        }
    }
    return out->oom ? hr_fail(err, HR_ERR_NOMEM, "out of memory rendering the conversation") : HR_OK;
}
