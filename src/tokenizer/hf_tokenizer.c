#include "tokenizer/hf_tokenizer.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"

#include "tokenizer/bpe.h"
#include "tokenizer/normalize.h"
#include "tokenizer/pretokenize.h"

static const char SPM_SPACE[] = "\xE2\x96\x81";

/* ---- small JSON readers ---- */

static const char *jstr(const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static size_t jstr_len(const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_length(v) : 0;
}

static bool jbool(const json_t *obj, const char *key, bool fallback) {
    const json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : fallback;
}

/* A token id: a whole number in 0..2^24 (the file is read with numbers as reals). */
static int64_t jid(const json_t *v) {
    if (!json_is_number(v)) return -1;
    double d = json_number_value(v);
    return d >= 0 && d < (1 << 24) && d == (double)(int64_t)d ? (int64_t)d : -1;
}

/* A token written as a string or as an AddedToken object {"content": ...}. */
static const char *token_content(const json_t *v) {
    if (json_is_string(v)) return json_string_value(v);
    return json_is_object(v) ? jstr(v, "content") : NULL;
}

static hr_status load_json(json_t **out, const char *path, hr_error *err) {
    /* Parsing from memory: jansson's file reader goes a character at a time. */
    hr_mapped_file file;
    if (hr_file_map(&file, path, err) != HR_OK) return err->status;
    json_error_t jerr;
    /* Integers as reals: configs hold numbers past 64 bits (model_max_length 1e30);
     * token ids stay exact, far below 2^53. */
    *out = json_loadb((const char *)file.data, file.size_bytes, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &jerr);
    hr_file_unmap(&file);
    if (*out) return HR_OK;
    return hr_fail(err, HR_ERR_FORMAT, "'%s' line %d column %d: %s", path, jerr.line, jerr.column, jerr.text);
}

/* A Split/Replace pattern: {"String": s} or {"Regex": r}. */
static hr_status read_pattern(const json_t *node, const char *where, const char **text, size_t *len, bool *literal,
                              hr_error *err) {
    const json_t *pattern = json_object_get(node, "pattern");
    *literal = jstr(pattern, "String") != NULL;
    *text = *literal ? jstr(pattern, "String") : jstr(pattern, "Regex");
    *len = *literal ? jstr_len(pattern, "String") : jstr_len(pattern, "Regex");
    if (!*text)
        return hr_fail(err, HR_ERR_FORMAT, "%s: pattern is neither {\"String\": ...} nor {\"Regex\": ...}", where);
    return HR_OK;
}

/* ---- normalizer ---- */

static hr_status add_normalizer(hr_tok_normalizer *n, const json_t *node, hr_error *err) {
    const char *type = jstr(node, "type");
    if (!type) return hr_fail(err, HR_ERR_FORMAT, "tokenizer.json: a normalizer has no \"type\"");
    static const struct {
        const char *name;
        hr_norm_simple kind;
    } simple[] = {{"NFC", HR_NORM_NFC},         {"NFD", HR_NORM_NFD},
                  {"NFKC", HR_NORM_NFKC},       {"NFKD", HR_NORM_NFKD},
                  {"Lowercase", HR_NORM_LOWERCASE}, {"StripAccents", HR_NORM_STRIP_ACCENTS}};
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
        if (strcmp(type, simple[i].name) == 0) return hr_tok_normalizer_add(n, simple[i].kind, err);
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(node, "normalizers");
        size_t i;
        const json_t *item;
        json_array_foreach(list, i, item) {
            if (add_normalizer(n, item, err) != HR_OK) return err->status;
        }
        return HR_OK;
    }
    if (strcmp(type, "Replace") == 0) {
        const char *pattern, *content = jstr(node, "content");
        size_t len;
        bool literal;
        if (read_pattern(node, "Replace normalizer", &pattern, &len, &literal, err) != HR_OK) return err->status;
        if (!content) return hr_fail(err, HR_ERR_FORMAT, "Replace normalizer without \"content\"");
        return hr_tok_normalizer_add_replace(n, pattern, len, literal, content, jstr_len(node, "content"), err);
    }
    if (strcmp(type, "Prepend") == 0) {
        const char *text = jstr(node, "prepend");
        if (!text) return hr_fail(err, HR_ERR_FORMAT, "Prepend normalizer without \"prepend\"");
        return hr_tok_normalizer_add_prepend(n, text, jstr_len(node, "prepend"), err);
    }
    if (strcmp(type, "Strip") == 0)
        return hr_tok_normalizer_add_strip(n, jbool(node, "strip_left", true), jbool(node, "strip_right", true), err);
    if (strcmp(type, "BertNormalizer") == 0) {
        bool lowercase = jbool(node, "lowercase", true);
        /* strip_accents null follows lowercase, as in BERT. */
        return hr_tok_normalizer_add_bert(n, jbool(node, "clean_text", true), jbool(node, "handle_chinese_chars", true),
                                          jbool(node, "strip_accents", lowercase), lowercase, err);
    }
    return hr_fail(err, HR_ERR_UNSUPPORTED, "normalizer '%s' is not supported", type);
}

/* ---- pre-tokenizer ---- */

typedef struct {
    bool byte_level;
    bool space_prefix; /* a Metaspace that prepends U+2581 */
} pretok_facts;

static hr_status parse_behavior(const json_t *node, hr_split_behavior fallback, hr_split_behavior *out, hr_error *err) {
    static const struct {
        const char *name;
        hr_split_behavior b;
    } names[] = {{"Removed", HR_SPLIT_REMOVED},
                 {"Isolated", HR_SPLIT_ISOLATED},
                 {"MergedWithPrevious", HR_SPLIT_MERGED_WITH_PREVIOUS},
                 {"MergedWithNext", HR_SPLIT_MERGED_WITH_NEXT},
                 {"Contiguous", HR_SPLIT_CONTIGUOUS}};
    const char *name = jstr(node, "behavior");
    *out = fallback;
    if (!name) return HR_OK;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].b;
            return HR_OK;
        }
    return hr_fail(err, HR_ERR_UNSUPPORTED, "split behavior '%s' is not supported", name);
}

static hr_status add_regex_split(hr_pretok *p, const char *regex, hr_split_behavior b, bool invert, hr_error *err) {
    return hr_pretok_add_split(p, regex, strlen(regex), false, b, invert, err);
}

static hr_status add_pretokenizer(hr_pretok *p, const json_t *node, pretok_facts *facts, hr_error *err) {
    const char *type = jstr(node, "type");
    if (!type) return hr_fail(err, HR_ERR_FORMAT, "tokenizer.json: a pre_tokenizer has no \"type\"");
    hr_split_behavior b;
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(node, "pretokenizers");
        size_t i;
        const json_t *item;
        json_array_foreach(list, i, item) {
            if (add_pretokenizer(p, item, facts, err) != HR_OK) return err->status;
        }
        return HR_OK;
    }
    if (strcmp(type, "Split") == 0) {
        const char *pattern;
        size_t len;
        bool literal;
        if (read_pattern(node, "Split pre-tokenizer", &pattern, &len, &literal, err) != HR_OK ||
            parse_behavior(node, HR_SPLIT_ISOLATED, &b, err) != HR_OK)
            return err->status;
        return hr_pretok_add_split(p, pattern, len, literal, b, jbool(node, "invert", false), err);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        facts->byte_level = true;
        if (jbool(node, "add_prefix_space", true) && hr_pretok_add_prefix_space(p, err) != HR_OK) return err->status;
        if (!jbool(node, "use_regex", true)) return HR_OK;
        return add_regex_split(p, HR_PRETOK_GPT2_REGEX, HR_SPLIT_ISOLATED, false, err);
    }
    if (strcmp(type, "Digits") == 0)
        return add_regex_split(p, jbool(node, "individual_digits", false) ? "\\p{N}" : "\\p{N}+", HR_SPLIT_ISOLATED,
                               false, err);
    if (strcmp(type, "Punctuation") == 0) {
        if (parse_behavior(node, HR_SPLIT_ISOLATED, &b, err) != HR_OK) return err->status;
        /* Rust's is_ascii_punctuation (all ASCII symbols) or Unicode punctuation. */
        return add_regex_split(p, "[\\p{P}!-/:-@\\[-`{-~]", b, false, err);
    }
    if (strcmp(type, "Whitespace") == 0) return add_regex_split(p, "\\w+|[^\\w\\s]+", HR_SPLIT_REMOVED, true, err);
    if (strcmp(type, "WhitespaceSplit") == 0) return add_regex_split(p, "\\s+", HR_SPLIT_REMOVED, false, err);
    if (strcmp(type, "BertPreTokenizer") == 0) return hr_pretok_add_bert(p, err);
    if (strcmp(type, "CharDelimiterSplit") == 0) {
        const char *delim = jstr(node, "delimiter");
        if (!delim) return hr_fail(err, HR_ERR_FORMAT, "CharDelimiterSplit without \"delimiter\"");
        return hr_pretok_add_split(p, delim, jstr_len(node, "delimiter"), true, HR_SPLIT_REMOVED, false, err);
    }
    if (strcmp(type, "Metaspace") == 0) {
        const char *rep = jstr(node, "replacement");
        const char *scheme_name = jstr(node, "prepend_scheme");
        /* Older files say add_prefix_space instead of prepend_scheme. */
        hr_prepend_scheme scheme = jbool(node, "add_prefix_space", true) ? HR_PREPEND_ALWAYS : HR_PREPEND_NEVER;
        if (scheme_name)
            scheme = strcmp(scheme_name, "first") == 0   ? HR_PREPEND_FIRST
                     : strcmp(scheme_name, "never") == 0 ? HR_PREPEND_NEVER
                                                         : HR_PREPEND_ALWAYS;
        facts->space_prefix = scheme != HR_PREPEND_NEVER;
        if (!rep) rep = SPM_SPACE;
        return hr_pretok_add_metaspace(p, rep, strlen(rep), scheme, jbool(node, "split", true), err);
    }
    return hr_fail(err, HR_ERR_UNSUPPORTED, "pre-tokenizer '%s' is not supported", type);
}

/* ---- the model ---- */

static hr_status token_id(const hr_vocab *v, const char *text, size_t len, const char *what, int32_t *id,
                          hr_error *err) {
    *id = hr_vocab_find(v, text, len);
    if (*id < 0)
        return hr_fail(err, HR_ERR_FORMAT, "tokenizer.json: %s '%.*s' is not in the vocabulary", what,
                       (int)(len > 60 ? 60 : len), text);
    return HR_OK;
}

/* model.merges: "left right" strings or ["left", "right"] pairs, in rank order. */
static hr_status read_merges(hr_vocab *v, const json_t *merges, hr_error *err) {
    size_t n = json_array_size(merges);
    if (hr_bpe_merges_new(&v->merges, n, err) != HR_OK) return err->status;
    hr_tok_buf joined = {0};
    hr_status st = HR_OK;
    for (size_t i = 0; i < n && st == HR_OK; i++) {
        const json_t *m = json_array_get(merges, i);
        const char *left, *right;
        size_t left_len, right_len;
        if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
            json_is_string(json_array_get(m, 1))) {
            left = json_string_value(json_array_get(m, 0));
            left_len = json_string_length(json_array_get(m, 0));
            right = json_string_value(json_array_get(m, 1));
            right_len = json_string_length(json_array_get(m, 1));
        } else if (json_is_string(m)) {
            const char *s = json_string_value(m);
            size_t len = json_string_length(m);
            const char *sep = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
            if (!sep) {
                st = hr_fail(err, HR_ERR_FORMAT, "tokenizer.json: merges[%zu] \"%.*s\" has no space between its halves",
                             i, (int)(len > 40 ? 40 : len), s);
                break;
            }
            left = s;
            left_len = (size_t)(sep - s);
            right = sep + 1;
            right_len = len - left_len - 1;
        } else {
            st = hr_fail(err, HR_ERR_FORMAT, "tokenizer.json: merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", i);
            break;
        }
        joined.len = 0;
        st = hr_tok_buf_append(&joined, left, left_len, err);
        if (st == HR_OK) st = hr_tok_buf_append(&joined, right, right_len, err);
        int32_t l, r, merged;
        /* Like Hugging Face, a merge naming a token the vocabulary lacks is an error. */
        if (st == HR_OK) st = token_id(v, left, left_len, "merge part", &l, err);
        if (st == HR_OK) st = token_id(v, right, right_len, "merge part", &r, err);
        if (st == HR_OK) st = token_id(v, joined.data, joined.len, "merge result", &merged, err);
        if (st == HR_OK) st = hr_bpe_merges_add(v->merges, l, r, merged, (int32_t)i, err);
    }
    hr_tok_buf_free(&joined);
    return st;
}

/* Size of the id space: the model vocabulary plus added tokens, which may extend it. */
static hr_status count_ids(const json_t *vocab, const json_t *added, int64_t *n, hr_error *err) {
    int64_t max_id = -1;
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)vocab, key, value) {
        if (jid(value) < 0)
            return hr_fail(err, HR_ERR_FORMAT, "tokenizer.json: model.vocab[\"%.60s\"] is not a token id", key);
        if (jid(value) > max_id) max_id = jid(value);
    }
    size_t i;
    json_array_foreach(added, i, value) {
        int64_t id = jid(json_object_get(value, "id"));
        if (id < 0 || !jstr(value, "content"))
            return hr_fail(err, HR_ERR_FORMAT, "tokenizer.json: added_tokens[%zu] has no valid id and content", i);
        if (id > max_id) max_id = id;
    }
    *n = max_id + 1;
    return HR_OK;
}

static hr_status read_vocab(hr_vocab *v, const json_t *vocab, bool byte_fallback, const char *wordpiece_prefix,
                            hr_error *err) {
    const char *key;
    const json_t *value;
    hr_tok_buf spelled = {0};
    size_t prefix_len = wordpiece_prefix ? strlen(wordpiece_prefix) : 0;
    hr_status st = HR_OK;
    json_object_foreach((json_t *)vocab, key, value) {
        size_t len = strlen(key);
        uint8_t type = byte_fallback && hr_vocab_byte_value(key, len) >= 0 ? HR_TOKEN_BYTE : HR_TOKEN_NORMAL;
        const char *text = key;
        if (wordpiece_prefix) {
            /* GGUF's spelling of WordPiece, which wpm.c reads: continuation pieces bare,
             * word-initial pieces after U+2581. */
            spelled.len = 0;
            bool continuation = prefix_len > 0 && len >= prefix_len && memcmp(key, wordpiece_prefix, prefix_len) == 0;
            if (continuation) {
                st = hr_tok_buf_append(&spelled, key + prefix_len, len - prefix_len, err);
            } else {
                st = hr_tok_buf_append(&spelled, SPM_SPACE, 3, err);
                if (st == HR_OK) st = hr_tok_buf_append(&spelled, key, len, err);
            }
            text = spelled.data;
            len = spelled.len;
        }
        if (st == HR_OK) st = hr_vocab_set_token(v, (int32_t)jid(value), text, len, type, 0.0f, err);
        if (st != HR_OK) break;
    }
    hr_tok_buf_free(&spelled);
    return st;
}

/* added_tokens: their texts and types, and the list of tokens matched in text. */
static hr_status read_added(hr_vocab *v, const json_t *added, hr_error *err) {
    size_t n = json_array_size(added);
    hr_vocab_special *specials = malloc((n ? n : 1) * sizeof *specials);
    if (!specials) return hr_fail(err, HR_ERR_NOMEM, "out of memory for %zu added tokens", n);
    hr_status st = HR_OK;
    size_t i;
    const json_t *t;
    json_array_foreach(added, i, t) {
        int32_t id = (int32_t)jid(json_object_get(t, "id"));
        bool special = jbool(t, "special", false);
        st = hr_vocab_set_token(v, id, jstr(t, "content"), jstr_len(t, "content"),
                                special ? HR_TOKEN_CONTROL : HR_TOKEN_USER_DEFINED, 0.0f, err);
        if (st != HR_OK) break;
        uint8_t flags = special ? 0 : HR_SPECIAL_ALWAYS;
        if (jbool(t, "lstrip", false)) flags |= HR_SPECIAL_LSTRIP;
        if (jbool(t, "rstrip", false)) flags |= HR_SPECIAL_RSTRIP;
        if (jbool(t, "single_word", false)) flags |= HR_SPECIAL_SINGLE_WORD;
        if (jbool(t, "normalized", !special)) flags |= HR_SPECIAL_NORMALIZED;
        specials[i] = (hr_vocab_special){.id = id, .flags = flags};
    }
    if (st == HR_OK) st = hr_vocab_set_specials(v, specials, (uint32_t)n, err);
    free(specials);
    return st;
}

/* The id of a special token named in tokenizer_config.json, or -1. */
static int32_t config_token(const hr_vocab *v, const json_t *config, const char *key) {
    const char *text = token_content(json_object_get(config, key));
    return text ? hr_vocab_find(v, text, strlen(text)) : -1;
}

/* The tokens a post-processor puts before and after a single text: TemplateProcessing's
 * "single" list, or BertProcessing's / RobertaProcessing's cls and sep. */
static void template_specials(const json_t *post, const char **first, const char **last) {
    const char *type = jstr(post, "type");
    if (type && strcmp(type, "Sequence") == 0) {
        size_t i;
        const json_t *item;
        json_array_foreach(json_object_get(post, "processors"), i, item) {
            template_specials(item, first, last);
        }
        return;
    }
    if (type && (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0)) {
        const json_t *cls = json_array_get(json_object_get(post, "cls"), 0);
        const json_t *sep = json_array_get(json_object_get(post, "sep"), 0);
        if (json_is_string(cls)) *first = json_string_value(cls);
        if (json_is_string(sep)) *last = json_string_value(sep);
        return;
    }
    const json_t *single = json_object_get(post, "single");
    size_t n = json_array_size(single);
    if (n == 0) return;
    *first = jstr(json_object_get(json_array_get(single, 0), "SpecialToken"), "id");
    if (n > 1) *last = jstr(json_object_get(json_array_get(single, n - 1), "SpecialToken"), "id");
}

/* BOS/EOS and whether to add them: tokenizer_config.json first; otherwise what the
 * post-processor puts around a single text. */
static void read_specials_config(hr_vocab *v, const json_t *root, const json_t *config) {
    const char *first = NULL, *last = NULL;
    template_specials(json_object_get(root, "post_processor"), &first, &last);
    int32_t template_bos = first ? hr_vocab_find(v, first, strlen(first)) : -1;
    int32_t template_eos = last ? hr_vocab_find(v, last, strlen(last)) : -1;
    v->bos_id = config_token(v, config, "bos_token");
    v->eos_id = config_token(v, config, "eos_token");
    v->pad_id = config_token(v, config, "pad_token");
    int32_t unk = config_token(v, config, "unk_token");
    if (unk >= 0) v->unk_id = unk;
    if (v->bos_id < 0) v->bos_id = template_bos;
    if (v->eos_id < 0) v->eos_id = template_eos;
    v->add_bos = jbool(config, "add_bos_token", template_bos >= 0 && template_bos == v->bos_id);
    v->add_eos = jbool(config, "add_eos_token", template_eos >= 0 && template_eos == v->eos_id);
}

/* Whether a normalizer puts U+2581 before the text (Prepend, alone or in a Sequence). */
static bool prepends_space(const json_t *norm) {
    const char *type = jstr(norm, "type");
    if (!type) return false;
    if (strcmp(type, "Prepend") == 0) return jstr(norm, "prepend") && strcmp(jstr(norm, "prepend"), SPM_SPACE) == 0;
    if (strcmp(type, "Sequence") != 0) return false;
    size_t i;
    const json_t *item;
    json_array_foreach(json_object_get(norm, "normalizers"), i, item) {
        if (prepends_space(item)) return true;
    }
    return false;
}

/* model.type, checked before anything else is read: BPE or WordPiece. */
static hr_status model_type(const json_t *model, bool *wordpiece, hr_error *err) {
    const char *type = jstr(model, "type");
    if (!type) type = json_object_get(model, "merges") ? "BPE" : "WordPiece";
    *wordpiece = strcmp(type, "WordPiece") == 0;
    if (strcmp(type, "BPE") != 0 && !*wordpiece)
        return hr_fail(err, HR_ERR_UNSUPPORTED, "tokenizer model '%s' is not supported (supported: BPE, WordPiece)",
                       type);
    return HR_OK;
}

static hr_status read_model(hr_vocab *v, const json_t *model, bool wordpiece, hr_error *err) {
    const char *suffix = jstr(model, "end_of_word_suffix");
    const char *prefix = jstr(model, "continuing_subword_prefix");
    if (!wordpiece && ((suffix && *suffix) || (prefix && *prefix)))
        return hr_fail(err, HR_ERR_UNSUPPORTED,
                       "BPE with continuing_subword_prefix or end_of_word_suffix is not supported");
    v->kind = wordpiece ? HR_VOCAB_WPM : HR_VOCAB_BPE;
    v->byte_fallback = jbool(model, "byte_fallback", false);
    v->ignore_merges = jbool(model, "ignore_merges", false);
    v->fuse_unk = jbool(model, "fuse_unk", false);
    if (!json_is_object(json_object_get(model, "vocab")))
        return hr_fail(err, HR_ERR_FORMAT, "tokenizer.json: model.vocab is not an object of token -> id");
    return read_vocab(v, json_object_get(model, "vocab"), v->byte_fallback, wordpiece ? (prefix ? prefix : "##") : NULL,
                      err);
}

/* tokenizer_config.json beside path, or NULL (HR_OK) when there is none. */
static hr_status load_config(const char *path, json_t **config, hr_error *err) {
    *config = NULL;
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path + 1) : 0;
    static const char name[] = "tokenizer_config.json";
    char *config_path = malloc(dir_len + sizeof name);
    if (!config_path) return hr_fail(err, HR_ERR_NOMEM, "out of memory for a path");
    memcpy(config_path, path, dir_len);
    memcpy(config_path + dir_len, name, sizeof name);
    FILE *f = fopen(config_path, "rb");
    hr_status st = HR_OK;
    if (f) {
        fclose(f);
        st = load_json(config, config_path, err);
        if (st == HR_OK && !json_is_object(*config)) {
            st = hr_fail(err, HR_ERR_FORMAT, "'%s' is not a JSON object", config_path);
            json_decref(*config);
            *config = NULL;
        }
    }
    free(config_path);
    return st;
}

static hr_status build(hr_vocab **out, const json_t *root, const json_t *config, hr_error *err) {
    const json_t *model = json_object_get(root, "model"), *added = json_object_get(root, "added_tokens");
    int64_t n = 0;
    bool wordpiece;
    if (model_type(model, &wordpiece, err) != HR_OK) return err->status;
    if (count_ids(json_object_get(model, "vocab"), added, &n, err) != HR_OK) return err->status;
    hr_vocab *v;
    if (hr_vocab_new(&v, n, err) != HR_OK) return err->status;
    /* Ids that neither the vocabulary nor the added tokens name stay empty and unused. */
    memset(v->types, HR_TOKEN_UNUSED, (size_t)n);
    pretok_facts facts = {0};
    hr_status st = read_model(v, model, wordpiece, err);
    if (st == HR_OK) st = read_added(v, added, err);
    const json_t *norm = json_object_get(root, "normalizer"), *pre = json_object_get(root, "pre_tokenizer");
    if (st == HR_OK && json_is_object(norm)) {
        st = hr_tok_normalizer_new(&v->normalizer, err);
        if (st == HR_OK) st = add_normalizer(v->normalizer, norm, err);
    }
    if (st == HR_OK && json_is_object(pre)) {
        st = hr_pretok_new(&v->pretok, err);
        if (st == HR_OK) st = add_pretokenizer(v->pretok, pre, &facts, err);
    }
    const char *decoder = jstr(json_object_get(root, "decoder"), "type");
    v->byte_level = v->kind == HR_VOCAB_BPE && (facts.byte_level || (decoder && strcmp(decoder, "ByteLevel") == 0));
    if (st == HR_OK) st = hr_vocab_finish(v, err);
    const char *unk = jstr(model, "unk_token");
    if (st == HR_OK && unk) v->unk_id = hr_vocab_find(v, unk, strlen(unk));
    if (st == HR_OK) {
        if (v->unk_id >= 0) v->types[v->unk_id] = HR_TOKEN_UNKNOWN;
        read_specials_config(v, root, config);
        /* The dummy prefix a Prepend("▁") normalizer or a Metaspace adds is dropped
         * when decoding the first piece. */
        v->add_space_prefix = facts.space_prefix || v->kind == HR_VOCAB_WPM || prepends_space(norm);
    }
    if (st == HR_OK && v->kind == HR_VOCAB_BPE) {
        const json_t *merges = json_object_get(model, "merges");
        st = json_is_array(merges) ? read_merges(v, merges, err) : hr_bpe_merges_new(&v->merges, 0, err);
    }
    if (st != HR_OK) {
        hr_vocab_free(v);
        return st;
    }
    *out = v;
    return HR_OK;
}

hr_status hr_vocab_from_hf(hr_vocab **out, const char *path, hr_error *err) {
    *out = NULL;
    json_t *root, *config = NULL;
    if (load_json(&root, path, err) != HR_OK) return err->status;
    hr_status st = HR_OK;
    if (!json_is_object(root) || !json_is_object(json_object_get(root, "model")))
        st = hr_fail(err, HR_ERR_FORMAT, "'%s' is not a tokenizer.json (no \"model\" object)", path);
    if (st == HR_OK) st = load_config(path, &config, err);
    if (st == HR_OK) st = build(out, root, config, err);
    if (st != HR_OK) hr_fail_wrap(err, "%s", path);
    json_decref(root);
    json_decref(config);
    return st;
}

hr_status hr_hf_chat_template(const char *path, char **out, hr_error *err) {
    *out = NULL;
    json_t *config;
    if (load_config(path, &config, err) != HR_OK) return err->status;
    const json_t *tmpl = json_object_get(config, "chat_template");
    const char *source = json_is_string(tmpl) ? json_string_value(tmpl) : NULL;
    /* A list of named templates: the one named "default". */
    size_t i;
    const json_t *item;
    json_array_foreach(tmpl, i, item) {
        if (jstr(item, "name") && strcmp(jstr(item, "name"), "default") == 0) source = jstr(item, "template");
    }
    hr_status st = HR_OK;
    if (source) {
        *out = strdup(source);
        if (!*out) st = hr_fail(err, HR_ERR_NOMEM, "out of memory for a chat template");
    }
    json_decref(config);
    return st;
}
