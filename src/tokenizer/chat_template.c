#include "tokenizer/chat_template.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/jinja_parse.h"

struct hr_chat_template {
    hr_jtemplate *tmpl;
};

/* headroom's own templates, written for the prompt formats the model families document.
 * Each raises on conversations its format cannot express rather than mangle them. */
#define ALTERNATION_CHECK                                                                  \
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"                    \
    "{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}\n" \
    "{%- endif %}\n"

/* Splits off a leading system message as system_message (or none) and loop_messages. */
#define SPLIT_SYSTEM                                                                       \
    "{%- if messages and messages[0]['role'] == 'system' %}\n"                             \
    "{%- set system_message = messages[0]['content'] %}\n"                                 \
    "{%- set loop_messages = messages[1:] %}\n"                                            \
    "{%- else %}\n"                                                                        \
    "{%- set system_message = none %}\n"                                                   \
    "{%- set loop_messages = messages %}\n"                                                \
    "{%- endif %}\n"

static const struct {
    const char *name;
    const char *bos, *eos;
    const char *source;
} builtins[] = {
    {"chatml", "", "<|im_end|>",
     "{%- for message in messages %}\n"
     "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}\n"
     "{%- endfor %}\n"
     "{%- if add_generation_prompt %}\n"
     "{{- '<|im_start|>assistant\\n' }}\n"
     "{%- endif %}\n"},
    {"llama2", "<s>", "</s>",
     SPLIT_SYSTEM
     "{%- for message in loop_messages %}\n" ALTERNATION_CHECK
     "{%- if message['role'] == 'user' %}\n"
     "{%- if loop.first and system_message is not none %}\n"
     "{{- bos_token + '[INST] <<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n'"
     " + message['content'] | trim + ' [/INST]' }}\n"
     "{%- else %}\n"
     "{{- bos_token + '[INST] ' + message['content'] | trim + ' [/INST]' }}\n"
     "{%- endif %}\n"
     "{%- else %}\n"
     "{{- ' ' + message['content'] | trim + ' ' + eos_token }}\n"
     "{%- endif %}\n"
     "{%- endfor %}\n"},
    {"llama3", "<|begin_of_text|>", "<|eot_id|>",
     "{{- bos_token }}\n"
     "{%- for message in messages %}\n"
     "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
     " + message['content'] | trim + '<|eot_id|>' }}\n"
     "{%- endfor %}\n"
     "{%- if add_generation_prompt %}\n"
     "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
     "{%- endif %}\n"},
    {"mistral", "<s>", "</s>",
     SPLIT_SYSTEM
     "{{- bos_token }}\n"
     "{%- for message in loop_messages %}\n" ALTERNATION_CHECK
     "{%- if message['role'] == 'user' %}\n"
     "{%- if loop.first and system_message is not none %}\n"
     "{{- '[INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n"
     "{%- else %}\n"
     "{{- '[INST] ' + message['content'] + ' [/INST]' }}\n"
     "{%- endif %}\n"
     "{%- else %}\n"
     "{{- message['content'] + eos_token }}\n"
     "{%- endif %}\n"
     "{%- endfor %}\n"},
    {"gemma", "<bos>", "<eos>",
     SPLIT_SYSTEM
     "{{- bos_token }}\n"
     "{%- for message in loop_messages %}\n" ALTERNATION_CHECK
     "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}\n"
     "{%- set prefix = system_message + '\\n\\n' if loop.first and system_message is not none else '' %}\n"
     "{{- '<start_of_turn>' + role + '\\n' + prefix + message['content'] | trim + '<end_of_turn>\\n' }}\n"
     "{%- endfor %}\n"
     "{%- if add_generation_prompt %}\n"
     "{{- '<start_of_turn>model\\n' }}\n"
     "{%- endif %}\n"},
    {"phi3", "<s>", "<|endoftext|>",
     "{%- for message in messages %}\n"
     "{%- if message['role'] not in ['system', 'user', 'assistant'] %}\n"
     "{{- raise_exception('phi3 messages must be system, user or assistant') }}\n"
     "{%- endif %}\n"
     "{{- '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}\n"
     "{%- endfor %}\n"
     "{%- if add_generation_prompt %}\n"
     "{{- '<|assistant|>\\n' }}\n"
     "{%- else %}\n"
     "{{- eos_token }}\n"
     "{%- endif %}\n"},
};

enum { N_BUILTINS = sizeof builtins / sizeof builtins[0] };

static int builtin_index(const char *name) {
    for (int i = 0; i < N_BUILTINS; i++)
        if (!strcmp(builtins[i].name, name)) return i;
    return -1;
}

size_t hr_tmpl_builtin_count(void) { return N_BUILTINS; }
const char *hr_tmpl_builtin_name(size_t i) { return i < N_BUILTINS ? builtins[i].name : NULL; }

const char *hr_tmpl_builtin_source(const char *name) {
    int i = builtin_index(name);
    return i < 0 ? NULL : builtins[i].source;
}

bool hr_tmpl_builtin_tokens(const char *name, const char **bos, const char **eos) {
    int i = builtin_index(name);
    if (i < 0) return false;
    *bos = builtins[i].bos;
    *eos = builtins[i].eos;
    return true;
}

hr_status hr_tmpl_compile(hr_chat_template **out, const char *source, size_t len, hr_error *err) {
    *out = NULL;
    hr_chat_template *t = calloc(1, sizeof *t);
    if (!t) return hr_fail(err, HR_ERR_NOMEM, "chat template: out of memory");
    hr_status st = hr_jinja_parse(&t->tmpl, source, len, err);
    if (st != HR_OK) {
        free(t);
        return hr_fail_wrap(err, "chat template");
    }
    *out = t;
    return HR_OK;
}

hr_status hr_tmpl_compile_builtin(hr_chat_template **out, const char *name, hr_error *err) {
    const char *source = hr_tmpl_builtin_source(name);
    if (!source) {
        *out = NULL;
        return hr_fail(err, HR_ERR_NOT_FOUND,
                       "chat template '%s': no built-in template has that name (chatml, llama2, llama3, mistral, "
                       "gemma, phi3)",
                       name);
    }
    return hr_tmpl_compile(out, source, strlen(source), err);
}

void hr_tmpl_free(hr_chat_template *t) {
    if (!t) return;
    hr_jinja_template_free(t->tmpl);
    free(t);
}

hr_status hr_tmpl_input_from_json(hr_tmpl_input *in, const json_t *conversation, hr_error *err) {
    if (!json_is_object(conversation))
        return hr_fail(err, HR_ERR_FORMAT, "conversation: expected a JSON object with \"messages\"");
    in->messages = json_object_get(conversation, "messages");
    if (!json_is_array(in->messages))
        return hr_fail(err, HR_ERR_FORMAT, "conversation: \"messages\" must be an array of message objects");
    const json_t *agp = json_object_get(conversation, "add_generation_prompt");
    if (agp && !json_is_boolean(agp))
        return hr_fail(err, HR_ERR_FORMAT, "conversation: \"add_generation_prompt\" must be true or false");
    in->add_generation_prompt = json_is_true(agp);
    in->tools = json_object_get(conversation, "tools");
    in->documents = json_object_get(conversation, "documents");
    in->extra = conversation;
    return HR_OK;
}

/* The template's variables: the extras first, then the named inputs over them. */
static hr_status build_vars(const hr_tmpl_input *in, json_t **out, hr_error *err) {
    static const char *const named[] = {"messages", "add_generation_prompt", "tools", "documents", "bos_token",
                                        "eos_token"};
    json_t *vars = json_object();
    if (!vars) return hr_fail(err, HR_ERR_NOMEM, "chat template: out of memory");
    if (in->extra) {
        if (!json_is_object(in->extra)) {
            json_decref(vars);
            return hr_fail(err, HR_ERR_INVALID, "chat template: extra variables must be a JSON object");
        }
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)in->extra, key, val) {
            bool is_named = false;
            for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) is_named |= !strcmp(key, named[i]);
            if (!is_named && json_object_set(vars, key, val) != 0) goto oom;
        }
    }
    if (json_object_set(vars, "messages", (json_t *)in->messages) != 0 ||
        json_object_set_new(vars, "add_generation_prompt", json_boolean(in->add_generation_prompt)) != 0)
        goto oom;
    if (in->tools && json_object_set(vars, "tools", (json_t *)in->tools) != 0) goto oom;
    if (in->documents && json_object_set(vars, "documents", (json_t *)in->documents) != 0) goto oom;
    /* token texts come from vocabularies and need not be valid UTF-8 */
    const char *token_names[] = {"bos_token", "eos_token"}, *token_texts[] = {in->bos_token, in->eos_token};
    for (int i = 0; i < 2; i++)
        if (token_texts[i] &&
            json_object_set_new(vars, token_names[i], json_stringn_nocheck(token_texts[i], strlen(token_texts[i]))))
            goto oom;
    *out = vars;
    return HR_OK;
oom:
    json_decref(vars);
    return hr_fail(err, HR_ERR_NOMEM, "chat template: out of memory");
}

hr_status hr_tmpl_render(const hr_chat_template *t, const hr_tmpl_input *in, char **out, size_t *out_len,
                         hr_error *err) {
    *out = NULL;
    *out_len = 0;
    if (!json_is_array(in->messages))
        return hr_fail(err, HR_ERR_INVALID, "chat template: messages must be a JSON array");
    json_t *vars = NULL;
    hr_status st = build_vars(in, &vars, err);
    if (st != HR_OK) return st;
    hr_jinja_limits limits = in->limits ? *in->limits : hr_jinja_limits_default();
    if (in->now) limits.now = in->now;
    st = hr_jinja_render(t->tmpl, vars, &limits, out, out_len, err);
    json_decref(vars);
    return st == HR_OK ? HR_OK : hr_fail_wrap(err, "chat template");
}
