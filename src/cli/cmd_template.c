/* headroom template — prints the prompt a chat template makes of a conversation, exactly
 * as the model would see it (no newline is added), or the template's error. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/file.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "formats/gguf.h"
#include "tokenizer/chat_template.h"

static const char TEMPLATE_HELP[] =
    "usage: headroom template (-m MODEL | --chat-template NAME|FILE) --chat CONVERSATION.json [options]\n"
    "\n"
    "Renders CONVERSATION with a chat template, as Hugging Face transformers'\n"
    "apply_chat_template would, and prints the prompt to stdout with nothing added.\n"
    "CONVERSATION is a JSON object: {\"messages\": [{\"role\": ..., \"content\": ...}, ...],\n"
    "\"add_generation_prompt\": true|false, \"tools\": [...], \"documents\": [...]}; any other\n"
    "members are passed to the template as variables (e.g. \"enable_thinking\"). A bare array\n"
    "is taken as the messages. A template error goes to stderr and the exit status is 1.\n"
    "\n"
    "options:\n"
    "  -m, --model PATH          GGUF model: its tokenizer.chat_template, and its BOS/EOS token\n"
    "                            texts\n"
    "      --chat-template T     a built-in template (chatml, llama2, llama3, mistral, gemma,\n"
    "                            phi3) or a Jinja template file; with -m it replaces the model's\n"
    "      --chat PATH           the conversation (JSON)\n"
    "      --bos-token S         BOS token text (default: the model's, or the built-in's)\n"
    "      --eos-token S         EOS token text (default: the model's, or the built-in's)\n"
    "      --date YYYY-MM-DD     the day strftime_now() reports (default: today)\n"
    "  -h, --help                this help\n";

typedef struct {
    const char *model, *template_arg, *chat, *bos, *eos, *date;
} template_options;

static int parse_options(int argc, char **argv, template_options *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(TEMPLATE_HELP, stdout);
            return 0;
        }
        const char **slot = !strcmp(a, "-m") || !strcmp(a, "--model") ? &o->model
                            : !strcmp(a, "--chat-template")           ? &o->template_arg
                            : !strcmp(a, "--chat")                    ? &o->chat
                            : !strcmp(a, "--bos-token")               ? &o->bos
                            : !strcmp(a, "--eos-token")               ? &o->eos
                            : !strcmp(a, "--date")                    ? &o->date
                                                                      : NULL;
        if (!slot) {
            fprintf(stderr, "headroom template: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!(*slot = hr_arg_value("template", argc, argv, &i))) return 2;
    }
    if (!o->model && !o->template_arg) {
        fprintf(stderr, "headroom template: give a model (-m) or a template (--chat-template)\n");
        return 2;
    }
    if (!o->chat) {
        fprintf(stderr, "headroom template: --chat CONVERSATION.json is required\n");
        return 2;
    }
    return -1;
}

/* Noon of the given day, local time: the same date in strftime_now whatever the zone. */
static bool parse_date(const char *text, time_t *out) {
    struct tm tm = {0};
    char tail;
    int year = 0, month = 0, day = 0;
    bool ok = sscanf(text, "%4d-%2d-%2d%c", &year, &month, &day, &tail) == 3 && year >= 1 && month >= 1 &&
              month <= 12 && day >= 1 && day <= 31;
    if (ok) {
        tm.tm_year = year - 1900;
        tm.tm_mon = month - 1;
        tm.tm_mday = day;
        tm.tm_hour = 12;
        tm.tm_isdst = -1;
        *out = mktime(&tm);
        /* mktime moves a day past the month's end (2024-02-30) into the next month. */
        ok = *out != (time_t)-1 && tm.tm_mday == day && tm.tm_mon == month - 1;
    }
    if (!ok) fprintf(stderr, "headroom template: --date: '%s' is not a date like 2024-07-26\n", text);
    return ok;
}

/* The text of the token whose id is stored under id_key, or NULL when the model has none. */
static char *token_text(const hr_gguf *g, const char *id_key) {
    uint32_t id;
    const hr_gguf_value *tokens;
    if (hr_gguf_get_u32(g, id_key, &id, NULL) != HR_OK ||
        hr_gguf_get_arr(g, "tokenizer.ggml.tokens", HR_GGUF_STRING, &tokens, NULL) != HR_OK || id >= tokens->arr.count)
        return NULL;
    hr_gguf_str s = tokens->arr.items[id].str;
    return strndup(s.ptr, (size_t)s.len);
}

/* Everything the command loads, released together. */
typedef struct {
    hr_gguf model;
    bool model_open;
    hr_chat_template *tmpl;
    char *model_bos, *model_eos;
    json_t *conversation;
} loaded;

static void release(loaded *l) {
    hr_tmpl_free(l->tmpl);
    free(l->model_bos);
    free(l->model_eos);
    json_decref(l->conversation);
    if (l->model_open) hr_gguf_close(&l->model);
}

/* Loads the template and token texts; returns false with err filled. */
static bool load_template(const template_options *o, loaded *l, const char **bos, const char **eos, hr_error *err) {
    if (o->model) {
        if (hr_gguf_open(&l->model, o->model, err) != HR_OK) return false;
        l->model_open = true;
        l->model_bos = token_text(&l->model, "tokenizer.ggml.bos_token_id");
        l->model_eos = token_text(&l->model, "tokenizer.ggml.eos_token_id");
        *bos = l->model_bos;
        *eos = l->model_eos;
    }
    if (o->template_arg) {
        if (hr_tmpl_builtin_source(o->template_arg)) {
            const char *b, *e;
            hr_tmpl_builtin_tokens(o->template_arg, &b, &e);
            if (!o->model) *bos = b, *eos = e;
            return hr_tmpl_compile_builtin(&l->tmpl, o->template_arg, err) == HR_OK;
        }
        char *source;
        size_t len;
        if (hr_file_read_all(o->template_arg, &source, &len, err) != HR_OK) {
            hr_fail_wrap(err, "--chat-template is neither a built-in name nor a readable file");
            return false;
        }
        hr_status st = hr_tmpl_compile(&l->tmpl, source, len, err);
        free(source);
        if (st != HR_OK) hr_fail_wrap(err, "%s", o->template_arg);
        return st == HR_OK;
    }
    hr_gguf_str source;
    if (hr_gguf_get_str(&l->model, "tokenizer.chat_template", &source, err) != HR_OK) {
        hr_fail_wrap(err, "%s has no chat template (use --chat-template)", o->model);
        return false;
    }
    if (hr_tmpl_compile(&l->tmpl, source.ptr, (size_t)source.len, err) != HR_OK) {
        hr_fail_wrap(err, "%s", o->model);
        return false;
    }
    return true;
}

/* Reads the conversation; a bare array is the messages. */
static bool load_conversation(const char *path, loaded *l, hr_tmpl_input *in, hr_error *err) {
    json_error_t jerr;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        hr_fail(err, HR_ERR_FORMAT, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        return false;
    }
    if (json_is_array(j)) {
        json_t *wrapped = json_pack("{s:o}", "messages", j);
        if (!wrapped) {
            hr_fail(err, HR_ERR_NOMEM, "out of memory");
            return false;
        }
        j = wrapped;
    }
    l->conversation = j;
    if (hr_tmpl_input_from_json(in, j, err) != HR_OK) {
        hr_fail_wrap(err, "%s", path);
        return false;
    }
    return true;
}

int hr_cmd_template(int argc, char **argv) {
    template_options o = {0};
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0) return rc;
    hr_tmpl_input in = {0};
    if (o.date && !parse_date(o.date, &in.now)) return 2;

    loaded l = {0};
    hr_error err = {0};
    char *out = NULL;
    size_t len = 0;
    bool ok = load_template(&o, &l, &in.bos_token, &in.eos_token, &err) && load_conversation(o.chat, &l, &in, &err);
    if (ok) {
        if (o.bos) in.bos_token = o.bos;
        if (o.eos) in.eos_token = o.eos;
        ok = hr_tmpl_render(l.tmpl, &in, &out, &len, &err) == HR_OK;
    }
    if (ok) {
        ok = fwrite(out, 1, len, stdout) == len && fflush(stdout) == 0;
        if (!ok) hr_fail(&err, HR_ERR_IO, "cannot write the prompt to stdout");
    }
    if (!ok) fprintf(stderr, "headroom template: %s\n", err.msg);
    free(out);
    release(&l);
    return ok ? 0 : 1;
}
