/* tokenizer/chat_template — turns a conversation into the prompt text a model was trained
 * on, by running the model's Jinja chat template the way Hugging Face transformers'
 * apply_chat_template does (Jinja2 sandbox, trim_blocks, lstrip_blocks, tojson without
 * ASCII escaping, raise_exception, strftime_now), byte for byte. Also headroom's own
 * built-in templates for common model families.
 *
 * Owns: compiled templates (immutable once compiled: one may be rendered from several
 * threads at once, each with its own input: jansson values are not for sharing).
 * Must not: tokenize, or guess. A construct the interpreter does not support is refused
 * when compiling or rendering, with the template line and the construct; it is never
 * rendered approximately. */
#ifndef HR_TOKENIZER_CHAT_TEMPLATE_H
#define HR_TOKENIZER_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "base/error.h"
#include "tokenizer/jinja_eval.h"

typedef struct hr_chat_template hr_chat_template;

/* Compiles Jinja template source (len bytes; need not be NUL-terminated). */
hr_status hr_tmpl_compile(hr_chat_template **out, const char *source, size_t len, hr_error *err);
/* Compiles one of the built-in templates: chatml, llama2, llama3, mistral, gemma, phi3. */
hr_status hr_tmpl_compile_builtin(hr_chat_template **out, const char *name, hr_error *err);
void hr_tmpl_free(hr_chat_template *t);

/* The built-in templates: their count, names, Jinja source, and the BOS/EOS token texts
 * of the model family (used when no model supplies them). Lookups return NULL/false for
 * an unknown name. */
size_t hr_tmpl_builtin_count(void);
const char *hr_tmpl_builtin_name(size_t i);
const char *hr_tmpl_builtin_source(const char *name);
bool hr_tmpl_builtin_tokens(const char *name, const char **bos, const char **eos);

typedef struct {
    const json_t *messages;  /* array of {"role", "content", ...} objects; required */
    const json_t *tools;     /* NULL: the template sees `tools` as undefined */
    const json_t *documents; /* NULL: undefined */
    bool add_generation_prompt;
    const char *bos_token;         /* NULL: undefined */
    const char *eos_token;         /* NULL: undefined */
    const json_t *extra;           /* object of further variables (enable_thinking, ...), or NULL */
    time_t now;                    /* what strftime_now() formats; 0: the current time */
    const hr_jinja_limits *limits; /* NULL: hr_jinja_limits_default() */
} hr_tmpl_input;

/* Fills in from a conversation object: "messages" (required), "add_generation_prompt",
 * "tools", "documents"; any other members become extra variables (the conversation must
 * outlive the input). Token fields, now and limits are left as they were. */
hr_status hr_tmpl_input_from_json(hr_tmpl_input *in, const json_t *conversation, hr_error *err);

/* Renders the prompt. *out is malloc'd and NUL-terminated; *out_len excludes the NUL.
 * A template that calls raise_exception(msg) fails with a message ending in
 * "TemplateError: msg". */
hr_status hr_tmpl_render(const hr_chat_template *t, const hr_tmpl_input *in, char **out, size_t *out_len,
                         hr_error *err);

#endif
