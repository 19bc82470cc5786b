/* headroom count — how many tokens a text or a chat takes with a model's own tokenizer,
 * counted exactly as the server and the budget count them. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/file.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "formats/gguf.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenize.h"

static const char COUNT_HELP[] =
    "usage: headroom count -m MODEL (--text STR | --file F | --chat MESSAGES.json) [options]\n"
    "\n"
    "Prints how many tokens the input takes with MODEL's tokenizer; with --ids, the token ids\n"
    "follow on a second line, separated by spaces.\n"
    "\n"
    "MODEL is a GGUF file (a whole model or a vocabulary-only file), a Hugging Face\n"
    "tokenizer.json (tokenizer_config.json beside it is read too), or a directory holding one.\n"
    "A llama2.c checkpoint is converted to GGUF first (headroom convert).\n"
    "\n"
    "By default the count is what a prompt costs: BOS/EOS are added as the vocabulary says and\n"
    "special tokens written in the text (<|eot_id|>, <s>, ...) count as one token each.\n"
    "--chat renders a conversation with the model's chat template (generation prompt\n"
    "included) and counts the result; BOS is added only if the template did not write it.\n"
    "\n"
    "options:\n"
    "  -m, --model PATH     GGUF, tokenizer.json, or a directory with tokenizer.json\n"
    "      --text STR       the text to count\n"
    "      --file F         count the contents of file F (\"-\" for stdin)\n"
    "      --chat F         a JSON conversation: an array of {\"role\", \"content\"} messages, or\n"
    "                       an object with \"messages\" (and optionally \"tools\",\n"
    "                       \"add_generation_prompt\", other template variables)\n"
    "      --template T     chat template to use instead of the model's: a built-in name\n"
    "                       (chatml, llama2, llama3, mistral, gemma, phi3) or a Jinja file\n"
    "      --ids            also print the token ids\n"
    "      --raw            plain text: no BOS/EOS, special tokens not parsed (the convention\n"
    "                       of tokenizer test vectors)\n"
    "  -h, --help           this help\n";

typedef struct {
    const char *model, *text, *file, *chat, *template_name;
    bool ids, raw;
} count_options;

/* Returns -1 to go on, or the exit status. */
static int parse_options(int argc, char **argv, count_options *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **value = !strcmp(a, "-m") || !strcmp(a, "--model") ? &o->model
                             : !strcmp(a, "--text")                     ? &o->text
                             : !strcmp(a, "--file")                     ? &o->file
                             : !strcmp(a, "--chat")                     ? &o->chat
                             : !strcmp(a, "--template")                 ? &o->template_name
                                                                        : NULL;
        if (value) {
            if (!(*value = hr_arg_value("count", argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--ids")) {
            o->ids = true;
        } else if (!strcmp(a, "--raw")) {
            o->raw = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(COUNT_HELP, stdout);
            return 0;
        } else {
            fprintf(stderr, "headroom count: unknown option '%s' (see headroom count --help)\n", a);
            return 2;
        }
    }
    if (!o->model) {
        fprintf(stderr, "headroom count: no model given; pass -m MODEL (see headroom count --help)\n");
        return 2;
    }
    if (!!o->text + !!o->file + !!o->chat != 1) {
        fprintf(stderr, "headroom count: give exactly one of --text, --file or --chat\n");
        return 2;
    }
    if (o->template_name && !o->chat) {
        fprintf(stderr, "headroom count: --template applies to --chat only\n");
        return 2;
    }
    return -1;
}

/* The vocabulary, and the model's chat template source when it has one. */
typedef struct {
    hr_vocab *vocab;
    hr_gguf gguf;
    bool gguf_open;
    char *json_path; /* tokenizer.json, when the model is one */
} model_tokenizer;

static void model_close(model_tokenizer *m) {
    hr_vocab_free(m->vocab);
    if (m->gguf_open) hr_gguf_close(&m->gguf);
    free(m->json_path);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static hr_status model_open(model_tokenizer *m, const char *path, hr_error *err) {
    struct stat sb;
    bool dir = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
    if (dir || ends_with(path, ".json")) {
        size_t n = strlen(path);
        m->json_path = malloc(n + sizeof "/tokenizer.json");
        if (!m->json_path) return hr_fail(err, HR_ERR_NOMEM, "out of memory");
        snprintf(m->json_path, n + sizeof "/tokenizer.json", dir ? "%s/tokenizer.json" : "%s", path);
        return hr_vocab_from_hf(&m->vocab, m->json_path, err);
    }
    if (hr_gguf_open(&m->gguf, path, err) != HR_OK) return err->status;
    m->gguf_open = true;
    if (hr_vocab_from_gguf(&m->vocab, &m->gguf, err) != HR_OK) return hr_fail_wrap(err, "%s: vocabulary", path);
    return HR_OK;
}

/* The chat template: --template (a built-in name or a file), else the model's own. */
static hr_status load_template(const model_tokenizer *m, const char *name, hr_chat_template **out, hr_error *err) {
    if (name && hr_tmpl_builtin_source(name)) return hr_tmpl_compile_builtin(out, name, err);
    char *source = NULL;
    size_t len = 0;
    hr_status st = HR_OK;
    if (name) {
        st = hr_file_read_all(name, &source, &len, err);
    } else if (m->json_path) {
        st = hr_hf_chat_template(m->json_path, &source, err);
        if (source) len = strlen(source);
    } else if (hr_gguf_find(&m->gguf, "tokenizer.chat_template")) {
        hr_gguf_str s;
        st = hr_gguf_get_str(&m->gguf, "tokenizer.chat_template", &s, err);
        if (st == HR_OK && !(source = strndup(s.ptr, (size_t)s.len))) st = hr_fail(err, HR_ERR_NOMEM, "out of memory");
        len = source ? strlen(source) : 0;
    }
    if (st == HR_OK && !source)
        st = hr_fail(err, HR_ERR_NOT_FOUND,
                     "the model has no chat template; pass --template NAME (chatml, llama2, llama3, mistral, "
                     "gemma, phi3) or --template FILE.jinja");
    if (st == HR_OK) st = hr_tmpl_compile(out, source, len, err);
    free(source);
    return st;
}

/* A token's text for the template's bos_token / eos_token, or NULL. */
static char *token_text(const hr_vocab *v, int32_t id) {
    if (id < 0) return NULL;
    size_t len;
    const char *text = hr_vocab_text(v, id, &len);
    return strndup(text, len);
}

/* Renders the conversation in path with the chat template. */
static hr_status render_chat(const model_tokenizer *m, const count_options *o, char **prompt, size_t *len,
                             hr_error *err) {
    json_error_t jerr;
    json_t *chat = json_load_file(o->chat, 0, &jerr);
    if (!chat)
        return hr_fail(err, HR_ERR_FORMAT, "%s line %d column %d: %s", o->chat, jerr.line, jerr.column, jerr.text);
    hr_chat_template *t = NULL;
    hr_tmpl_input in = {.messages = chat, .add_generation_prompt = true};
    hr_status st = HR_OK;
    if (json_is_object(chat)) {
        st = hr_tmpl_input_from_json(&in, chat, err);
        /* Counting a prompt means counting what the model sees before it answers. */
        if (!json_object_get(chat, "add_generation_prompt")) in.add_generation_prompt = true;
    } else if (!json_is_array(chat)) {
        st = hr_fail(err, HR_ERR_FORMAT, "%s: expected an array of messages or an object with \"messages\"", o->chat);
    }
    char *bos = token_text(m->vocab, m->vocab->bos_id), *eos = token_text(m->vocab, m->vocab->eos_id);
    in.bos_token = bos;
    in.eos_token = eos;
    if (st == HR_OK) st = load_template(m, o->template_name, &t, err);
    if (st == HR_OK) st = hr_tmpl_render(t, &in, prompt, len, err);
    hr_tmpl_free(t);
    free(bos);
    free(eos);
    json_decref(chat);
    return st;
}

static hr_status read_input(const count_options *o, char **text, size_t *len, hr_error *err) {
    if (o->file && strcmp(o->file, "-") == 0) return hr_file_read_stream(stdin, "stdin", text, len, err);
    if (o->file) return hr_file_read_all(o->file, text, len, err);
    *len = strlen(o->text);
    *text = strdup(o->text);
    return *text ? HR_OK : hr_fail(err, HR_ERR_NOMEM, "out of memory");
}

/* Chat prompts hold their special tokens as text and usually BOS too: counted the way
 * the server's budget counts them (HR_TOK_CHAT). */
static hr_status encode_chat(const hr_vocab *v, const char *prompt, size_t len, bool raw, hr_tokens *ids,
                             hr_error *err) {
    return hr_tok_encode(v, prompt, len, raw ? 0 : HR_TOK_CHAT, ids, err);
}

int hr_cmd_count(int argc, char **argv) {
    count_options o = {0};
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0) return rc;
    hr_error err = {0};
    model_tokenizer m = {0};
    hr_tokens ids = {0};
    char *text = NULL;
    size_t len = 0;
    hr_status st = model_open(&m, o.model, &err);
    if (st == HR_OK) {
        st = o.chat ? render_chat(&m, &o, &text, &len, &err) : read_input(&o, &text, &len, &err);
    }
    if (st == HR_OK && o.chat) st = encode_chat(m.vocab, text, len, o.raw, &ids, &err);
    else if (st == HR_OK)
        st = hr_tok_encode(m.vocab, text, len, o.raw ? 0 : HR_TOK_ADD_SPECIAL | HR_TOK_PARSE_SPECIAL, &ids, &err);
    if (st == HR_OK) {
        printf("%zu\n", ids.count);
        for (size_t i = 0; o.ids && i < ids.count; i++) printf(i + 1 < ids.count ? "%d " : "%d", ids.ids[i]);
        if (o.ids) putchar('\n');
    } else {
        fprintf(stderr, "headroom count: %s\n", err.msg);
    }
    free(text);
    hr_tokens_free(&ids);
    model_close(&m);
    return st == HR_OK ? 0 : 1;
}
