/* Tests of the chat-template interpreter: every reference render in
 * ../shared/ref/templates byte for byte, the Jinja language features one at a time (the
 * expected texts are what Jinja2 3.1 renders under Hugging Face's settings), errors with
 * lines and constructs, refusal of unsupported constructs, the built-in templates, and
 * robustness against malformed and hostile templates. */
#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "test.h"
#include "tokenizer/chat_template.h"

/* 2024-07-26 12:00 UTC: the date the reference renders were made with, in any time zone. */
#define REF_NOW ((time_t)1721995200)

/* Compiles source and renders it with the conversation ctx_json (a JSON object). */
static hr_status render_with(const char *source, size_t source_len, const char *ctx_json, const hr_jinja_limits *limits,
                             char **out, size_t *out_len, hr_error *err) {
    *out = NULL;
    json_error_t jerr;
    json_t *ctx = json_loads(ctx_json, 0, &jerr);
    if (!ctx) return hr_fail(err, HR_ERR_FORMAT, "test context is not JSON: %s", jerr.text);
    hr_chat_template *t = NULL;
    hr_tmpl_input in = {.now = REF_NOW, .limits = limits};
    hr_status st = hr_tmpl_input_from_json(&in, ctx, err);
    if (st == HR_OK) st = hr_tmpl_compile(&t, source, source_len, err);
    if (st == HR_OK) st = hr_tmpl_render(t, &in, out, out_len, err);
    hr_tmpl_free(t);
    json_decref(ctx);
    return st;
}

static hr_status render(const char *source, const char *ctx_json, char **out, size_t *out_len, hr_error *err) {
    return render_with(source, strlen(source), ctx_json, NULL, out, out_len, err);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Describes where got and want first differ, with some text around it. */
static void describe_diff(char *buf, size_t size, const char *got, size_t got_len, const char *want, size_t want_len) {
    size_t i = 0;
    while (i < got_len && i < want_len && got[i] == want[i]) i++;
    size_t from = i > 24 ? i - 24 : 0;
    int g = (int)((got_len - from) < 48 ? got_len - from : 48),
        w = (int)((want_len - from) < 48 ? want_len - from : 48);
    snprintf(buf, size, "first difference at byte %zu (lengths %zu vs %zu): got \"%.*s\", want \"%.*s\"", i, got_len,
             want_len, g, got + from, w, want + from);
}

/* ---------------------------------------------------------------- reference matrix */

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The conversation names (without .json) in dir, sorted. */
static size_t list_conversations(const char *dir, char ***names) {
    size_t n = 0, cap = 16;
    *names = malloc(cap * sizeof **names);
    DIR *d = opendir(dir);
    for (struct dirent *e; d && *names && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || strcmp(e->d_name + len - 5, ".json")) continue;
        if (n == cap) {
            char **more = realloc(*names, 2 * cap * sizeof **names);
            if (!more) break;
            *names = more;
            cap *= 2;
        }
        (*names)[n++] = strndup(e->d_name, len - 5);
    }
    if (d) closedir(d);
    if (n) qsort(*names, n, sizeof **names, compare_names);
    return n;
}

/* Renders one template with one conversation and compares with the reference (.txt), or
 * checks it refuses as the reference did (.error). Returns true when it matches; else
 * describes the problem in why. */
static bool check_pair(const char *root, const char *tname, const json_t *tokens, const char *conv, char *why,
                       size_t why_size) {
    char path[4400];
    char *source = NULL, *want = NULL, *got = NULL;
    size_t source_len, want_len, got_len = 0;
    hr_error err = {0};
    bool ok = false;
    snprintf(path, sizeof path, "%s/templates/%s.jinja", root, tname);
    if (hr_file_read_all(path, &source, &source_len, &err) != HR_OK) {
        snprintf(why, why_size, "%s", err.msg);
        return false;
    }
    snprintf(path, sizeof path, "%s/ref/templates/conversations/%s.json", root, conv);
    json_error_t jerr;
    json_t *ctx = json_load_file(path, 0, &jerr);
    hr_chat_template *t = NULL;
    hr_tmpl_input in = {.now = REF_NOW};
    hr_status st = ctx ? hr_tmpl_input_from_json(&in, ctx, &err) : hr_fail(&err, HR_ERR_FORMAT, "%s", jerr.text);
    in.bos_token = json_string_value(json_object_get(tokens, "bos_token"));
    in.eos_token = json_string_value(json_object_get(tokens, "eos_token"));
    if (st == HR_OK) st = hr_tmpl_compile(&t, source, source_len, &err);
    if (st == HR_OK) st = hr_tmpl_render(t, &in, &got, &got_len, &err);

    snprintf(path, sizeof path, "%s/ref/templates/rendered/%s/%s.txt", root, tname, conv);
    hr_error ferr;
    if (hr_file_read_all(path, &want, &want_len, &ferr) == HR_OK) {
        if (st != HR_OK)
            snprintf(why, why_size, "failed: %s", err.msg);
        else if (got_len != want_len || memcmp(got, want, want_len))
            describe_diff(why, why_size, got, got_len, want, want_len);
        else
            ok = true;
    } else {
        snprintf(path, sizeof path, "%s/ref/templates/rendered/%s/%s.error", root, tname, conv);
        if (hr_file_read_all(path, &want, &want_len, &ferr) != HR_OK) {
            snprintf(why, why_size, "no reference render (.txt or .error)");
        } else {
            while (want_len && (want[want_len - 1] == '\n' || want[want_len - 1] == '\r')) want[--want_len] = '\0';
            if (st == HR_OK)
                snprintf(why, why_size, "rendered, but the reference refused with \"%s\"", want);
            else if (!ends_with(err.msg, want))
                snprintf(why, why_size, "error \"%s\" does not end with \"%s\"", err.msg, want);
            else
                ok = true;
        }
    }
    free(want);
    free(got);
    free(source);
    hr_tmpl_free(t);
    json_decref(ctx);
    return ok;
}

HR_TEST(template_reference_matrix) {
    HR_ASSET(tokens_path, "templates/tokens.json");
    HR_ASSET(conv_dir, "ref/templates/conversations");
    char root[2048];
    snprintf(root, sizeof root, "%.*s", (int)(strlen(tokens_path) - strlen("/templates/tokens.json")), tokens_path);
    json_error_t jerr;
    json_t *tokens = json_load_file(tokens_path, 0, &jerr);
    HR_CHECKF(tokens != NULL, "%s: %s", tokens_path, jerr.text);
    char **convs;
    size_t nconv = list_conversations(conv_dir, &convs);
    int pairs = 0, matched = 0;
    char first_failure[900] = "";
    const char *tname;
    json_t *tok;
    json_object_foreach(tokens, tname, tok) {
        for (size_t c = 0; c < nconv; c++) {
            char why[700];
            pairs++;
            if (check_pair(root, tname, tok, convs[c], why, sizeof why)) {
                matched++;
                continue;
            }
            printf("     template %s x conversation %s: %s\n", tname, convs[c], why);
            if (!first_failure[0]) snprintf(first_failure, sizeof first_failure, "%s x %s: %s", tname, convs[c], why);
        }
    }
    for (size_t c = 0; c < nconv; c++) free(convs[c]);
    free(convs);
    json_decref(tokens);
    printf("     template x conversation matrix: %d of %d pairs match the reference\n", matched, pairs);
    HR_CHECKF(pairs > 0 && nconv > 0, "no template x conversation pairs found under %s", root);
    HR_CHECKF(matched == pairs, "%d of %d pairs differ; first: %s", pairs - matched, pairs, first_failure);
}

/* ---------------------------------------------------------------- the language */

static const char LANG_CONTEXT[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": "
    "\"assistant\", \"content\": \"Yo\"}], \"l\": [3, 1, 2], \"d\": {\"b\": 2, \"a\": 1.5, \"c\": [null, true, "
    "\"x\\\"y\"]}, \"s\": \"  Hello World  \", \"u\": \"héllo 日本 🙂\"}";

static const struct {
    const char *what, *source, *expected;
} language_cases[] = {
    {"trim_blocks drops the newline after a block tag", "a\n{% if true %}\nb\n{% endif %}\nc", "a\nb\nc"},
    {"lstrip_blocks drops indentation before a block tag", "a\n    {% if true %}\n    b\n    {% endif %}\nc",
     "a\n    b\nc"},
    {"minus strips all whitespace on its side", "x  \n {{- ' y ' -}} \n z", "x y z"},
    {"plus keeps the whitespace lstrip_blocks would drop", "  {%+ if true %}x{% endif %}|", "  x|"},
    {"comments are removed and trim like blocks", "a\n  {# note #}\nb {#- tight -#} c", "a\nbc"},
    {"raw blocks are text", "{% raw %}{{ not evaluated }}{% endraw %}", "{{ not evaluated }}"},
    {"one trailing newline is dropped, CRLF becomes LF", "a\r\nb\r\n{% if 1 %}\r\nc{% endif %}\n\n", "a\nb\nc"},
    {"print statements keep no trailing newline", "{{ 1 }}\n{{ 2 }}\n", "1\n2"},
    {"loop variables",
     "{% for i in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ "
     "loop.length }} {% endfor %}",
     "103TrueFalse3 212FalseFalse3 321FalseTrue3 "},
    {"loop previtem and nextitem", "{% for i in l %}{{ loop.previtem }}<{{ i }}>{{ loop.nextitem }};{% endfor %}",
     "<3>1;3<1>2;1<2>;"},
    {"for with a filter counts only kept items",
     "{% for i in l if i > 1 %}{{ i }}:{{ loop.index }}/{{ loop.length }} {% endfor %}", "3:1/2 2:2/2 "},
    {"for else runs when nothing iterates", "{% for i in [] %}x{% else %}empty{% endfor %}", "empty"},
    {"tuple unpacking over items",
     "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for k, v in d|items %}{{ k }};{% endfor %}",
     "b=2;a=1.5;c=[None, True, 'x\"y'];|b;a;c;"},
    {"break and continue",
     "{% for i in range(10) %}{% if i == 1 %}{% continue %}{% endif %}{% if i > 3 %}{% break %}{% endif %}{{ i }}{% "
     "endfor %}",
     "023"},
    {"a set inside a loop does not leak; a namespace does",
     "{% set x = 0 %}{% set ns = namespace(x=0) %}{% for i in l %}{% set x = x + i %}{% set ns.x = ns.x + i %}{% "
     "endfor %}{{ x }} {{ ns.x }}",
     "0 6"},
    {"slicing",
     "{{ l[::-1] }} {{ l[1:] }} {{ l[-1] }} {{ s[2:7] }} {{ u[::-1] }} {{ u[1:3] }} {{ 'abcdef'[1:5:2] }} {{ l[10:] }}",
     "[2, 1, 3] [1, 2] 2 Hello 🙂 本日 olléh él bd []"},
    {"negative steps from or to before the start, as Python clamps them",
     "{{ [0,1,2,3,4][10:-10:-1] }} {{ 'abcde'[-8::-1] }}|{{ 'abcde'[-9:-8:-1] }}|{{ [0,1,2][:-99:-1] }} {{ "
     "[0,1,2][-99:2] }}",
     "[4, 3, 2, 1, 0] ||[2, 1, 0] [0, 1]"},
    {"Python str() of values",
     "{{ none }} {{ true }} {{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e-5 }} {{ 7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ d "
     "}} {{ (1,) }} {{ ['it\\'s'] }}",
     "None True 1.0 0.30000000000000004 1e+16 1e-05 3 2 3.5 {'b': 2, 'a': 1.5, 'c': [None, True, 'x\"y']} (1,) "
     "[\"it's\"]"},
    {"tojson as Hugging Face defines it",
     "{{ d|tojson }} {{ u|tojson }} {{ d|tojson(indent=2) }} {{ [1, {}]|tojson(indent=1) }} {{ "
     "d|tojson(sort_keys=true) }}",
     "{\"b\": 2, \"a\": 1.5, \"c\": [null, true, \"x\\\"y\"]} \"héllo 日本 🙂\" {\n  \"b\": 2,\n  \"a\": 1.5,\n  "
     "\"c\": [\n    null,\n    true,\n    \"x\\\"y\"\n  ]\n} [\n 1,\n {}\n] {\"a\": 1.5, \"b\": 2, \"c\": [null, true, "
     "\"x\\\"y\"]}"},
    {"string methods",
     "{{ s.strip() }}|{{ s.split() }}|{{ 'a,b'.split(',') }}|{{ s.lstrip().startswith('Hello') }}|{{ "
     "'x</think>y'.split('</think>')[-1] }}|{{ s.replace('l', 'L', 2) }}|{{ u.upper() }}|{{ 'hello world'.title() }}",
     "Hello World|['Hello', 'World']|['a', 'b']|True|y|  HeLLo World  |HÉLLO 日本 🙂|Hello World"},
    {"filters",
     "{{ l|sort|join(',') }} {{ l|first }} {{ l|last }} {{ l|length }} {{ s|trim }} {{ x|default('D') }} {{ ['a', "
     "'A']|unique|list }} {{ '42'|int + 1 }} {{ messages|selectattr('role', 'equalto', "
     "'user')|map(attribute='content')|list }} {{ 'a\\nb'|indent(2, first=true) }}",
     "1,2,3 3 2 3 Hello World D ['a'] 43 ['Hi']   a\n  b"},
    {"tests",
     "{{ x is defined }} {{ l is iterable }} {{ 'a' is string }} {{ d is mapping }} {{ 3 is odd }} {{ none is none }} "
     "{{ l is sequence }} {{ 1 is number }}",
     "False True True True True True True True"},
    {"macros with defaults, keywords and recursion",
     "{% macro m(a, b=2) %}[{{ a }}{{ b }}]{% endmacro %}{% macro f(n) %}{% if n %}{{ n }}{{ f(n - 1) }}{% endif %}{% "
     "endmacro %}{{ m(1) }}{{ m(1, b=3) }}{{ f(3) }}",
     "[12][13]321"},
    {"markupsafe: safe strings escape what is added to them",
     "{{ ('<b>'|safe) + '<i>' }} {{ '<i>' ~ ('<b>'|safe) }} {{ '\"&'|e }}", "<b>&lt;i&gt; <i><b> &#34;&amp;"},
    {"and/or yield operands; conditional expressions",
     "{{ 0 or 'y' }} {{ 'a' and 'b' }} {{ 'big' if l|length > 2 else 'small' }} {{ 'x' if false }}|", "y b big |"},
    {"Jinja folds -2 into a constant and Python reads -2 ** n as -(2 ** n)", "{{ -2 ** 2 }} {{ -2 ** l[1] }}", "4 -2"},
    {"strftime_now uses the given time", "{{ strftime_now('%d %b %Y') }}", "26 Jul 2024"},
    {"Unicode case mapping, final sigma included",
     "{{ 'ΟΔΥΣΣΕΥΣ'|lower }} {{ 'ΑΣ. ΣΑΣ'|title }} {{ 'straße'.upper() }} {{ 'ÀÉÎ Привет'|lower }}",
     "οδυσσευς Ασ. Σας STRASSE àéî привет"},
    {"subscripts find keys first, attributes find methods first",
     "{{ {'items': 1}['items'] }} {{ {'get': 1}.get('get') }} {{ (d.items()|list)[0] }}", "1 1 ('b', 2)"},
    {"safe text escapes what is concatenated to it, including tojson", "{{ 'Use '|safe + {'a': '<b>'}|tojson }}",
     "Use {&#34;a&#34;: &#34;&lt;b&gt;&#34;}"},
};

HR_TEST(template_language_features) {
    for (size_t i = 0; i < sizeof language_cases / sizeof language_cases[0]; i++) {
        char *out;
        size_t len;
        hr_error err;
        hr_status st = render(language_cases[i].source, LANG_CONTEXT, &out, &len, &err);
        HR_CHECKF(st == HR_OK, "%s: %s", language_cases[i].what, err.msg);
        char why[400] = "";
        const char *want = language_cases[i].expected;
        bool same = len == strlen(want) && memcmp(out, want, len) == 0;
        if (!same) describe_diff(why, sizeof why, out, len, want, strlen(want));
        free(out);
        HR_CHECKF(same, "%s: %s", language_cases[i].what, why);
    }
}

/* Renders source and expects a failure whose message contains each of the fragments. */
#define EXPECT_ERROR(source, status, ...)                                                                            \
    do {                                                                                                             \
        char *out_;                                                                                                  \
        size_t len_;                                                                                                 \
        hr_error err_ = {0};                                                                                         \
        hr_status st_ = render(source, "{\"messages\": []}", &out_, &len_, &err_);                                   \
        if (st_ == HR_OK) free(out_);                                                                                \
        HR_CHECKF(st_ != HR_OK, "%s rendered instead of failing", source);                                           \
        HR_CHECKF((status) == 0 || st_ == (status), "%s failed with %s: %s", source, hr_status_name(st_), err_.msg); \
        const char *frags_[] = {__VA_ARGS__};                                                                        \
        for (size_t k_ = 0; k_ < sizeof frags_ / sizeof frags_[0]; k_++)                                             \
            HR_CHECKF(strstr(err_.msg, frags_[k_]), "error for %s lacks \"%s\": %s", source, frags_[k_], err_.msg);  \
    } while (0)

HR_TEST(template_errors_name_line_and_construct) {
    EXPECT_ERROR("line 1\n{% if true %}\n  {{ user.name }}\n{% endif %}", HR_ERR_INVALID, "line 3", "attribute 'name'",
                 "UndefinedError: 'user' is undefined");
    EXPECT_ERROR("a\n\n{% for %}{% endfor %}", HR_ERR_FORMAT, "line 3", "TemplateSyntaxError");
    EXPECT_ERROR("{% if true %}never closed", HR_ERR_FORMAT, "Unexpected end of template", "'endif'");
    EXPECT_ERROR("{{ 'a' + 1 }}", HR_ERR_INVALID, "'+' operator", "can only concatenate str (not \"int\") to str");
    EXPECT_ERROR("{{ x | nosuchfilter }}", HR_ERR_FORMAT, "No filter named 'nosuchfilter'");
    EXPECT_ERROR("{% for i in 5 %}{% endfor %}", HR_ERR_INVALID, "for loop", "'int' object is not iterable");
    EXPECT_ERROR("{% break %}", HR_ERR_FORMAT, "outside of a for loop");
    EXPECT_ERROR("{{ 'unterminated }}", HR_ERR_FORMAT, "line 1");
}

HR_TEST(template_raise_exception_message_is_surfaced) {
    EXPECT_ERROR("x\n{{ raise_exception('Roles must alternate: ' ~ 2) }}", HR_ERR_INVALID, "line 2",
                 "call to 'raise_exception'");
    char *out;
    size_t len;
    hr_error err;
    HR_CHECK(render("{{ raise_exception('Only user and assistant roles!') }}", "{\"messages\": []}", &out, &len,
                    &err) != HR_OK);
    HR_CHECKF(ends_with(err.msg, "TemplateError: Only user and assistant roles!"), "got: %s", err.msg);
}

HR_TEST(template_unsupported_constructs_are_refused) {
    EXPECT_ERROR("{% include 'other.jinja' %}", HR_ERR_UNSUPPORTED, "line 1", "include");
    EXPECT_ERROR("x\n{{ messages|groupby('role') }}", HR_ERR_UNSUPPORTED, "line 2", "groupby");
    EXPECT_ERROR("{% for m in messages recursive %}{% endfor %}", HR_ERR_UNSUPPORTED, "recursive");
    EXPECT_ERROR("{% call m() %}{% endcall %}", HR_ERR_UNSUPPORTED, "call");
    EXPECT_ERROR("{% filter upper %}x{% endfilter %}", HR_ERR_UNSUPPORTED, "filter");
    EXPECT_ERROR("{{ f(*args) }}", HR_ERR_UNSUPPORTED, "unpacking");
    EXPECT_ERROR("{{ '%s!' % 'hi' }}", HR_ERR_UNSUPPORTED, "line 1", "'%' operator", "formatting");
    EXPECT_ERROR("{% for m in messages %}{% macro inner() %}{% endmacro %}{% endfor %}", HR_ERR_UNSUPPORTED, "macro");
    EXPECT_ERROR("{{ 'x'.zfill(3) }}", HR_ERR_UNSUPPORTED, "zfill");
    EXPECT_ERROR("{{ 'ǅ'|lower }}", HR_ERR_UNSUPPORTED, "U+01C5");
    EXPECT_ERROR("{{ messages.append(1) }}", HR_ERR_INVALID, "SecurityError", "unsafe");
}

/* ---------------------------------------------------------------- built-in templates */

static const char BUILTIN_CONVERSATION[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi\"},"
    " {\"role\": \"assistant\", \"content\": \"Hello!\"}, {\"role\": \"user\", \"content\": \"Bye\"}],"
    " \"add_generation_prompt\": true}";

HR_TEST(template_builtins_render_known_conversation) {
    static const struct {
        const char *name, *expected;
    } cases[] = {
        {"chatml", "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
                   "Hello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"},
        {"llama2", "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]"},
        {"llama3",
         "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
         "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
         "\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
         "<|start_header_id|>assistant<|end_header_id|>\n\n"},
        {"mistral", "<s>[INST] Be brief.\n\nHi [/INST]Hello!</s>[INST] Bye [/INST]"},
        {"gemma", "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
                  "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"},
        {"phi3",
         "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\nBye<|end|>\n"
         "<|assistant|>\n"},
    };
    HR_CHECK_EQ_INT(hr_tmpl_builtin_count(), sizeof cases / sizeof cases[0]);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        HR_CHECK(!strcmp(hr_tmpl_builtin_name(i), cases[i].name));
    json_error_t jerr;
    json_t *conv = json_loads(BUILTIN_CONVERSATION, 0, &jerr);
    HR_CHECK(conv != NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hr_chat_template *tmpl;
        hr_error err;
        hr_tmpl_input in = {0};
        char *out = NULL;
        size_t len = 0;
        hr_status st = hr_tmpl_compile_builtin(&tmpl, cases[i].name, &err);
        if (st == HR_OK) {
            st = hr_tmpl_input_from_json(&in, conv, &err);
            HR_CHECK(hr_tmpl_builtin_tokens(cases[i].name, &in.bos_token, &in.eos_token));
            if (st == HR_OK) st = hr_tmpl_render(tmpl, &in, &out, &len, &err);
            hr_tmpl_free(tmpl);
        }
        if (st != HR_OK) json_decref(conv);
        HR_CHECKF(st == HR_OK, "%s: %s", cases[i].name, err.msg);
        char why[400] = "";
        bool same = len == strlen(cases[i].expected) && !memcmp(out, cases[i].expected, len);
        if (!same) describe_diff(why, sizeof why, out, len, cases[i].expected, strlen(cases[i].expected));
        free(out);
        if (!same) json_decref(conv);
        HR_CHECKF(same, "built-in %s: %s", cases[i].name, why);
    }
    json_decref(conv);
    hr_chat_template *tmpl;
    hr_error err;
    HR_CHECK(hr_tmpl_compile_builtin(&tmpl, "vicuna", &err) == HR_ERR_NOT_FOUND);
    HR_CHECK(strstr(err.msg, "chatml") != NULL);
}

HR_TEST(template_builtins_refuse_broken_alternation) {
    const char *source = hr_tmpl_builtin_source("mistral");
    HR_CHECK(source != NULL);
    char *out;
    size_t len;
    hr_error err;
    hr_status st = render(source,
                          "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", "
                          "\"content\": \"b\"}]}",
                          &out, &len, &err);
    if (st == HR_OK) free(out);
    HR_CHECK(st != HR_OK);
    HR_CHECKF(ends_with(err.msg, "Conversation roles must alternate user/assistant/user/assistant/..."), "%s", err.msg);
}

/* ---------------------------------------------------------------- robustness */

/* Small limits so the hostile templates below are stopped quickly. */
static hr_jinja_limits tight_limits(void) {
    hr_jinja_limits l = hr_jinja_limits_default();
    l.max_output_bytes = 1 << 20;
    l.max_work_bytes = 16 << 20;
    l.max_items = 1 << 20;
    l.max_steps = 200000;
    l.max_call_depth = 50;
    return l;
}

static void expect_stopped(hr_test_ctx *t, const char *what, const char *source, size_t len, const char *fragment) {
    hr_jinja_limits lim = tight_limits();
    char *out;
    size_t out_len;
    hr_error err = {0};
    hr_status st = render_with(source, len, "{\"messages\": []}", &lim, &out, &out_len, &err);
    if (st == HR_OK) free(out);
    HR_CHECKF(st != HR_OK, "%s: rendered %zu bytes instead of being stopped", what, st == HR_OK ? out_len : 0);
    HR_CHECKF(strstr(err.msg, fragment), "%s: error lacks \"%s\": %s", what, fragment, err.msg);
}

HR_TEST(template_hostile_templates_are_stopped) {
    size_t n = 50000;
    char *deep = malloc(2 * n + 16);
    HR_CHECK(deep != NULL);
    memcpy(deep, "{{ ", 3);
    memset(deep + 3, '(', n);
    memcpy(deep + 3 + n, "1 }}", 5);
    expect_stopped(t, "deep parentheses", deep, strlen(deep), "deep");
    size_t k = 0;
    for (size_t i = 0; i < 5000; i++) k += (size_t)sprintf(deep + k, "{%% if 1 %%}");
    expect_stopped(t, "deeply nested blocks", deep, k, "deep");
    free(deep);
    if (t->failed) return;
    static const char recursion[] = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";
    expect_stopped(t, "endless macro recursion", recursion, strlen(recursion), "RecursionError");
    static const char loops[] = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    expect_stopped(t, "huge loops", loops, strlen(loops), "step limit");
    static const char doubling[] =
        "{% set ns = namespace(s='xy') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}";
    expect_stopped(t, "a string that doubles", doubling, strlen(doubling), "limit");
    static const char lists[] =
        "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = ns.l + ns.l %}{% endfor %}";
    expect_stopped(t, "a list that doubles", lists, strlen(lists), "budget");
    static const char nesting[] =
        "{% set ns = namespace(l=[]) %}{% for i in range(5000) %}{% set ns.l = [ns.l] %}{% endfor %}";
    expect_stopped(t, "lists nested ever deeper", nesting, strlen(nesting), "nested");
}

HR_TEST(template_big_inputs_stay_fast) {
    /* dict lookups are hashed and unique is linear: 100000 keys take milliseconds */
    json_t *big = json_object(), *ctx = json_pack("{s:[o]}", "messages", big);
    HR_CHECK(ctx != NULL);
    char key[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        json_object_set_new(big, key, json_integer(i));
    }
    static const char source[] = "{{ messages[0]|length }} {{ messages[0].k99999 }} {{ messages[0]['k7'] }} "
                                 "{{ (messages[0]|list|unique|list)|length }} {{ (range(100000)|unique|list)|length }}";
    hr_chat_template *tmpl;
    hr_error err;
    hr_tmpl_input in = {0};
    char *out = NULL;
    size_t len = 0;
    hr_status st = hr_tmpl_compile(&tmpl, source, sizeof source - 1, &err);
    if (st == HR_OK) {
        st = hr_tmpl_input_from_json(&in, ctx, &err);
        if (st == HR_OK) st = hr_tmpl_render(tmpl, &in, &out, &len, &err);
        hr_tmpl_free(tmpl);
    }
    json_decref(ctx);
    HR_CHECKF(st == HR_OK, "%s", err.msg);
    bool same = len == strlen("100000 99999 7 100000 100000") && !memcmp(out, "100000 99999 7 100000 100000", len);
    free(out);
    HR_CHECK(same);
}

HR_TEST(template_reference_cycles_are_freed) {
    /* namespaces holding themselves: ASan's leak check fails this test if they leak */
    char *out;
    size_t len;
    hr_error err;
    hr_status st = render("{% set ns = namespace() %}{% set ns.me = ns %}{% set ns.l = [ns, [ns]] %}"
                          "{% set other = namespace(peer=ns) %}{% set ns.peer = other %}{{ ns.l|length }}",
                          "{\"messages\": []}", &out, &len, &err);
    HR_CHECKF(st == HR_OK, "%s", err.msg);
    HR_CHECK(len == 1 && out[0] == '2');
    free(out);
}

HR_TEST(template_invalid_utf8_passes_through) {
    /* bytes that are not UTF-8, in the template and in the data, come out unchanged */
    static const char source[] = "\xff{{ messages[0].content }}|{{ messages[0].content[::-1] }}|"
                                 "{{ messages[0].content|length }}|{{ 'a\xc3' }}";
    json_t *ctx =
        json_pack("{s:[{s:s,s:o}]}", "messages", "role", "user", "content", json_stringn_nocheck("\xc3x\x80", 3));
    HR_CHECK(ctx != NULL);
    hr_chat_template *tp;
    hr_error err;
    hr_tmpl_input in = {0};
    char *out = NULL;
    size_t len = 0;
    hr_status st = hr_tmpl_compile(&tp, source, sizeof source - 1, &err);
    if (st == HR_OK) {
        st = hr_tmpl_input_from_json(&in, ctx, &err);
        if (st == HR_OK) st = hr_tmpl_render(tp, &in, &out, &len, &err);
        hr_tmpl_free(tp);
    }
    json_decref(ctx);
    HR_CHECKF(st == HR_OK, "%s", err.msg);
    static const char want[] = "\xff\xc3x\x80|\x80x\xc3|3|a\xc3";
    bool same = len == sizeof want - 1 && !memcmp(out, want, len);
    free(out);
    HR_CHECK(same);
}

/* A tiny deterministic generator for the mutation test. */
static uint32_t next_random(uint32_t *state) {
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

HR_TEST(template_malformed_sources_never_crash) {
    HR_ASSET(tokens_path, "templates/tokens.json");
    char root[2048];
    snprintf(root, sizeof root, "%.*s", (int)(strlen(tokens_path) - strlen("/tokens.json")), tokens_path);
    static const char *const names[] = {"meetkai-functionary-medium-v3.2", "CohereForAI-c4ai-command-r-plus-tool_use",
                                        "tokenizer-config-qwen3", "microsoft-Phi-3.5-mini-instruct"};
    static const char ctx[] = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"add_generation_prompt\": "
                              "true, \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}";
    hr_jinja_limits lim = tight_limits();
    uint32_t seed = 12345;
    int renders = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s.jinja", root, names[i]);
        char *src;
        size_t n;
        hr_error err;
        HR_CHECK_OK(hr_file_read_all(path, &src, &n, &err), &err);
        /* every prefix (truncated templates), then random byte mutations */
        for (size_t len = 0; len <= n; len += 1 + len % 11) {
            char *out;
            size_t out_len;
            if (render_with(src, len, ctx, &lim, &out, &out_len, &err) == HR_OK) free(out), renders++;
        }
        for (int m = 0; m < 150; m++) {
            char *copy = malloc(n + 1);
            HR_CHECK(copy != NULL);
            memcpy(copy, src, n + 1);
            for (int k = 0; k < 3 && n; k++)
                copy[next_random(&seed) % n] = (char)"{}%#-+()[]'\"|.\\\n \xff"[next_random(&seed) % 18];
            char *out;
            size_t out_len;
            if (render_with(copy, n, ctx, &lim, &out, &out_len, &err) == HR_OK) free(out), renders++;
            free(copy);
        }
        free(src);
    }
    HR_CHECK(renders > 0);
}

/* ---------------------------------------------------------------- concurrency */

typedef struct {
    const hr_chat_template *t;
    const hr_tmpl_input *in;
    char *out;
    size_t len;
    hr_status st;
} render_job;

static void *render_thread(void *arg) {
    render_job *j = arg;
    hr_error err;
    for (int i = 0; i < 50; i++) {
        free(j->out);
        j->out = NULL;
        j->st = hr_tmpl_render(j->t, j->in, &j->out, &j->len, &err);
        if (j->st != HR_OK) break;
    }
    return NULL;
}

HR_TEST(template_one_template_renders_from_many_threads) {
    hr_chat_template *tmpl;
    hr_error err;
    HR_CHECK_OK(hr_tmpl_compile_builtin(&tmpl, "llama3", &err), &err);
    /* The template is shared; each thread has its own conversation, as each request has
     * (jansson's reference counts are not for sharing one value across threads). */
    json_error_t jerr;
    json_t *conv[4];
    hr_tmpl_input in[4];
    bool parsed = true;
    for (int i = 0; i < 4; i++) {
        conv[i] = json_loads(BUILTIN_CONVERSATION, 0, &jerr);
        in[i] = (hr_tmpl_input){.bos_token = "<|begin_of_text|>"};
        parsed = parsed && conv[i] && hr_tmpl_input_from_json(&in[i], conv[i], &err) == HR_OK;
    }
    HR_CHECK(parsed);
    render_job jobs[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (render_job){.t = tmpl, .in = &in[i]};
        pthread_create(&threads[i], NULL, render_thread, &jobs[i]);
    }
    bool same = true;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        same =
            same && jobs[i].st == HR_OK && jobs[i].len == jobs[0].len && !memcmp(jobs[i].out, jobs[0].out, jobs[0].len);
    }
    for (int i = 0; i < 4; i++) {
        free(jobs[i].out);
        json_decref(conv[i]);
    }
    hr_tmpl_free(tmpl);
    HR_CHECK(same);
}
