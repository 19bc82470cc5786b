/* Tokenizer pipeline: split behaviours, normalizers, the byte table, special and added
 * tokens (flags, parse-special gating), BOS/EOS, invalid UTF-8, decoding, GGUF write
 * back, refusals by name, and long inputs. Real vocabularies come from ../shared;
 * small synthetic tokenizer.json files cover Hugging Face options none of them use. */
#include <jansson.h>
#include <stdlib.h>

#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "test.h"
#include "tokenizer/bpe.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/normalize.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenize.h"

/* The words of text under p, joined with '|' into out. */
static hr_status split_words(const hr_pretok *p, const char *text, bool at_start, char *out, size_t cap,
                             hr_error *err) {
    hr_pretok_state st;
    if (hr_pretok_state_init(&st, err) != HR_OK) return err->status;
    hr_status s = hr_pretok_run(p, &st, text, strlen(text), at_start, err);
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; s == HR_OK && i < hr_pretok_count(&st); i++) {
        size_t len;
        const char *w = hr_pretok_word(&st, i, &len);
        used += (size_t)snprintf(out + used, cap - used, "%s%.*s", i ? "|" : "", (int)len, w);
        if (used >= cap) used = cap - 1;
    }
    hr_pretok_state_free(&st);
    return s;
}

/* One split step on "the-final--countdown", as the Hugging Face documentation shows. */
static bool split_gives(hr_test_ctx *t, hr_split_behavior b, bool invert, const char *want) {
    hr_error err = {0};
    hr_pretok *p = NULL;
    char got[256] = "";
    hr_status s = hr_pretok_new(&p, &err);
    if (s == HR_OK) s = hr_pretok_add_split(p, "-", 1, true, b, invert, &err);
    if (s == HR_OK) s = split_words(p, "the-final--countdown", true, got, sizeof got, &err);
    hr_pretok_free(p);
    if (s != HR_OK || strcmp(got, want) != 0) {
        hr_test_failf(t, __FILE__, __LINE__, "behaviour %d invert %d: got '%s' want '%s' (%s)", (int)b, invert, got,
                      want, err.msg);
        return false;
    }
    return true;
}

HR_TEST(tok_split_behaviours_match_hugging_face) {
    if (!split_gives(t, HR_SPLIT_REMOVED, false, "the|final|countdown")) return;
    if (!split_gives(t, HR_SPLIT_ISOLATED, false, "the|-|final|-|-|countdown")) return;
    if (!split_gives(t, HR_SPLIT_MERGED_WITH_PREVIOUS, false, "the-|final-|-|countdown")) return;
    if (!split_gives(t, HR_SPLIT_MERGED_WITH_NEXT, false, "the|-final|-|-countdown")) return;
    if (!split_gives(t, HR_SPLIT_CONTIGUOUS, false, "the|-|final|--|countdown")) return;
    if (!split_gives(t, HR_SPLIT_REMOVED, true, "-|-|-")) return;
}

HR_TEST(tok_regex_lookahead_stops_at_the_piece) {
    hr_error err = {0};
    hr_pretok *p;
    char got[256];
    HR_CHECK_OK(hr_pretok_new(&p, &err), &err);
    hr_status s = hr_pretok_add_split(p, HR_PRETOK_GPT2_REGEX, strlen(HR_PRETOK_GPT2_REGEX), false,
                                      HR_SPLIT_ISOLATED, false, &err);
    /* \s+(?!\S) leaves the last space to the word after it, and takes all of a final run. */
    if (s == HR_OK) s = split_words(p, "a   b's 12 !!\n", true, got, sizeof got, &err);
    char got2[256] = "";
    if (s == HR_OK) s = split_words(p, "x \xff\xfe y", true, got2, sizeof got2, &err);
    hr_pretok_free(p);
    HR_CHECK_OK(s, &err);
    HR_CHECKF(strcmp(got, "a|  | b|'s| 12| !!|\n") == 0, "got '%s'", got);
    /* Invalid bytes match nothing: they fall between matches and stay in the text. */
    HR_CHECKF(strcmp(got2, "x| \xff\xfe| y") == 0 || strcmp(got2, "x| |\xff\xfe| y") == 0, "got '%s'", got2);
}

HR_TEST(tok_metaspace_and_prefix_space) {
    hr_error err = {0};
    hr_pretok *meta, *bytes;
    HR_CHECK_OK(hr_pretok_new(&meta, &err), &err);
    HR_CHECK_OK(hr_pretok_new(&bytes, &err), &err);
    char a[128], b[128], c[128], d[128];
    hr_status s = hr_pretok_add_metaspace(meta, "\xE2\x96\x81", 3, HR_PREPEND_FIRST, true, &err);
    if (s == HR_OK) s = hr_pretok_add_prefix_space(bytes, &err);
    if (s == HR_OK) s = split_words(meta, "Hey friend", true, a, sizeof a, &err);
    if (s == HR_OK) s = split_words(meta, "Hey friend", false, b, sizeof b, &err);
    if (s == HR_OK) s = split_words(bytes, "hello", true, c, sizeof c, &err);
    if (s == HR_OK) s = split_words(bytes, " hello", true, d, sizeof d, &err);
    hr_pretok_free(meta);
    hr_pretok_free(bytes);
    HR_CHECK_OK(s, &err);
    HR_CHECKF(strcmp(a, "\xE2\x96\x81Hey|\xE2\x96\x81" "friend") == 0, "first: '%s'", a);
    HR_CHECKF(strcmp(b, "Hey|\xE2\x96\x81" "friend") == 0, "not first: '%s'", b);
    HR_CHECKF(strcmp(c, " hello") == 0 && strcmp(d, " hello") == 0, "prefix space: '%s' '%s'", c, d);
}

/* Normalizes text with n and compares with want. */
static bool normalizes_to(hr_test_ctx *t, const hr_tok_normalizer *n, const char *text, const char *want) {
    hr_error err = {0};
    hr_tok_buf out = {0};
    hr_status s = hr_tok_normalize(n, text, strlen(text), &out, &err);
    bool ok = s == HR_OK && out.len == strlen(want) && memcmp(out.data, want, out.len) == 0;
    if (!ok) hr_test_failf(t, __FILE__, __LINE__, "'%s' -> '%s', want '%s' (%s)", text, out.data, want, err.msg);
    hr_tok_buf_free(&out);
    return ok;
}

HR_TEST(tok_normalizers) {
    hr_error err = {0};
    hr_tok_normalizer *nfc, *nfkc, *bert, *seq;
    HR_CHECK_OK(hr_tok_normalizer_new(&nfc, &err), &err);
    HR_CHECK_OK(hr_tok_normalizer_new(&nfkc, &err), &err);
    HR_CHECK_OK(hr_tok_normalizer_new(&bert, &err), &err);
    HR_CHECK_OK(hr_tok_normalizer_new(&seq, &err), &err);
    hr_status s = hr_tok_normalizer_add(nfc, HR_NORM_NFC, &err);
    if (s == HR_OK) s = hr_tok_normalizer_add(nfkc, HR_NORM_NFKC, &err);
    if (s == HR_OK) s = hr_tok_normalizer_add_bert(bert, true, true, true, true, &err);
    if (s == HR_OK) s = hr_tok_normalizer_add_strip(seq, true, true, &err);
    if (s == HR_OK) s = hr_tok_normalizer_add_replace(seq, " ", 1, true, "\xE2\x96\x81", 3, &err);
    if (s == HR_OK) s = hr_tok_normalizer_add_replace(seq, "[0-9]+", 6, false, "#", 1, &err);
    if (s == HR_OK) s = hr_tok_normalizer_add_prepend(seq, "\xE2\x96\x81", 3, &err);
    bool ok = s == HR_OK;
    /* e + combining acute composes; invalid bytes pass through untouched. */
    ok = ok && normalizes_to(t, nfc, "Cafe\xCC\x81 \xff!", "Caf\xC3\xA9 \xff!");
    ok = ok && normalizes_to(t, nfkc, "\xEF\xAC\x81 \xE2\x91\xA0", "fi 1"); /* ligature fi, circled 1 */
    /* BERT: controls dropped, tab becomes space, accents stripped, lowercased, CJK spaced. */
    ok = ok && normalizes_to(t, bert, "H\xC3\xA9llo\x01\tW\xE4\xB8\x96", "hello w \xE4\xB8\x96 ");
    ok = ok && normalizes_to(t, seq, "  a 12 b  ", "\xE2\x96\x81" "a\xE2\x96\x81#\xE2\x96\x81" "b");
    ok = ok && normalizes_to(t, seq, "", "");
    hr_tok_normalizer_free(nfc);
    hr_tok_normalizer_free(nfkc);
    hr_tok_normalizer_free(bert);
    hr_tok_normalizer_free(seq);
    HR_CHECK_OK(s, &err);
    HR_CHECK(ok);
}

HR_TEST(tok_byte_table_is_a_bijection) {
    bool seen[0x200] = {false};
    for (int b = 0; b < 256; b++) {
        char u[2];
        size_t n = hr_bpe_byte_to_utf8((uint8_t)b, u);
        int32_t cp;
        HR_CHECK_EQ_INT(hr_tok_utf8_next(u, n, &cp), n);
        HR_CHECKF(cp >= 0 && cp < 0x200 && !seen[cp], "byte %d -> U+%04X", b, cp);
        seen[cp] = true;
        HR_CHECK_EQ_INT(hr_bpe_cp_to_byte((uint32_t)cp), b);
    }
    HR_CHECK_EQ_INT(hr_bpe_byte_to_utf8(' ', (char[2]){0}), 2); /* ' ' is U+0120, 'Ġ' */
    HR_CHECK_EQ_INT(hr_bpe_cp_to_byte('A'), 'A');
    HR_CHECK_EQ_INT(hr_bpe_cp_to_byte(0x3000), -1);
}

/* ---- real vocabularies ---- */

typedef struct {
    hr_vocab *v;
    hr_gguf g;
    bool gguf;
} loaded_vocab;

static hr_status load_vocab(loaded_vocab *lv, const char *path, hr_error *err) {
    memset(lv, 0, sizeof *lv);
    size_t n = strlen(path);
    if (n > 5 && strcmp(path + n - 5, ".gguf") == 0) {
        if (hr_gguf_open(&lv->g, path, err) != HR_OK) return err->status;
        lv->gguf = true;
        return hr_vocab_from_gguf(&lv->v, &lv->g, err);
    }
    return hr_vocab_from_hf(&lv->v, path, err);
}

static void unload_vocab(loaded_vocab *lv) {
    hr_vocab_free(lv->v);
    if (lv->gguf) hr_gguf_close(&lv->g);
}

/* Encodes text and writes the ids space-separated into out. */
static hr_status ids_of(const hr_vocab *v, const char *text, size_t len, unsigned flags, char *out, size_t cap,
                        size_t *count, hr_error *err) {
    hr_tokens ids = {0};
    hr_status s = hr_tok_encode(v, text, len, flags, &ids, err);
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; s == HR_OK && i < ids.count && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%d", i ? " " : "", ids.ids[i]);
    if (count) *count = ids.count;
    hr_tokens_free(&ids);
    return s;
}

typedef struct {
    const char *text;
    unsigned flags;
    const char *want;
} id_case;

/* Loads a vocabulary under ../shared once and checks each case's ids. */
static bool encodes_to(hr_test_ctx *t, const char *asset, const id_case *cases, size_t n) {
    const char *path = hr_test_asset(t, asset);
    if (!path) return false;
    hr_error err = {0};
    loaded_vocab lv;
    hr_status s = load_vocab(&lv, path, &err);
    for (size_t i = 0; i < n && s == HR_OK; i++) {
        char got[512] = "";
        s = ids_of(lv.v, cases[i].text, strlen(cases[i].text), cases[i].flags, got, sizeof got, NULL, &err);
        if (s == HR_OK && strcmp(got, cases[i].want) != 0) {
            hr_test_failf(t, __FILE__, __LINE__, "%s: '%s' flags %u gave [%s], want [%s]", asset, cases[i].text,
                          cases[i].flags, got, cases[i].want);
            s = HR_ERR_INVALID;
            err.msg[0] = '\0';
        }
    }
    unload_vocab(&lv);
    if (s != HR_OK && err.msg[0]) hr_test_failf(t, __FILE__, __LINE__, "%s: %s", asset, err.msg);
    return s == HR_OK;
}

HR_TEST(tok_control_tokens_need_parse_special) {
    unsigned parse = HR_TOK_PARSE_SPECIAL;
    const id_case llama3[] = {{"Hi<|eot_id|>", parse, "13347 128009"},
                              {"Hi<|eot_id|>", 0, "13347 27 91 68 354 851 91 29"}};
    /* Qwen's <think> is a non-special added token: its tokenizer always splits it out. */
    const id_case qwen3[] = {{"<think>x<|im_end|>", 0, "151667 87 27 91 318 6213 91 29"},
                             {"<think>x<|im_end|>", parse, "151667 87 151645"}};
    /* SPM puts its dummy prefix after a special token, as llama.cpp does. */
    const id_case spm[] = {{"<s>Hi</s>", parse, "1 6324 2"}, {"<s>", 0, "529 29879 29958"}};
    if (!encodes_to(t, "tokenizers/llama3/tokenizer.json", llama3, 2)) return;
    if (!encodes_to(t, "tokenizers/qwen3/tokenizer.json", qwen3, 2)) return;
    encodes_to(t, "vocab/ggml-vocab-llama-spm.gguf", spm, 2);
}

HR_TEST(tok_bos_and_eos_follow_the_vocabulary) {
    static const struct {
        const char *asset, *text, *want;
    } cases[] = {{"vocab/ggml-vocab-llama-spm.gguf", "Hi", "1 6324"},
                 {"vocab/ggml-vocab-deepseek-coder.gguf", "Hi", "32013 11041"},
                 {"vocab/ggml-vocab-gpt-2.gguf", "Hi", "17250"},
                 {"vocab/ggml-vocab-bert-bge.gguf", "Hi", "101 7632 102"},
                 {"tokenizers/llama2/tokenizer.json", "", "1"},
                 {"tokenizers/gemma3/tokenizer.json", "Hi", "2 10979"},
                 {"tokenizers/qwen3/tokenizer.json", "Hi", "13048"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        id_case c = {cases[i].text, HR_TOK_ADD_SPECIAL, cases[i].want};
        if (!encodes_to(t, cases[i].asset, &c, 1)) return;
    }
}

HR_TEST(tok_invalid_utf8_round_trips_where_the_vocabulary_keeps_bytes) {
    static const char *const assets[] = {"vocab/ggml-vocab-gpt-2.gguf", "vocab/ggml-vocab-llama-spm.gguf",
                                         "vocab/ggml-vocab-bert-bge.gguf", "tokenizers/llama3/tokenizer.json",
                                         "tokenizers/gemma3/tokenizer.json", "tokenizers/qwen3/tokenizer.json"};
    static const char text[] = "\xff\xfe ok \xe2\x82 \xc0\xaf\xed\xa0\x80 end\xf0";
    size_t len = sizeof text - 1;
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++) {
        HR_ASSET(path, assets[i]);
        hr_error err = {0};
        loaded_vocab lv;
        hr_tokens ids = {0};
        char *back = NULL;
        size_t back_len = 0;
        hr_status s = load_vocab(&lv, path, &err);
        if (s == HR_OK) s = hr_tok_encode(lv.v, text, len, HR_TOK_ADD_SPECIAL | HR_TOK_PARSE_SPECIAL, &ids, &err);
        if (s == HR_OK) s = hr_tok_decode(lv.v, ids.ids, ids.count, &back, &back_len, &err);
        /* WordPiece drops what it cannot read; every other kind keeps every byte. */
        bool exact = back && back_len == len && memcmp(back, text, len) == 0;
        bool wpm = lv.v && lv.v->kind == HR_VOCAB_WPM;
        size_t count = ids.count;
        free(back);
        hr_tokens_free(&ids);
        unload_vocab(&lv);
        HR_CHECKF(s == HR_OK, "%s: %s", assets[i], err.msg);
        HR_CHECKF(count > 2, "%s: %zu ids", assets[i], count);
        HR_CHECKF(exact || wpm, "%s: decoding did not give the bytes back", assets[i]);
    }
}

HR_TEST(tok_piece_after_bos_drops_only_a_dummy_prefix) {
    HR_ASSET(spm_path, "vocab/ggml-vocab-llama-spm.gguf");
    HR_ASSET(bpe_path, "tokenizers/llama3/tokenizer.json");
    hr_error err = {0};
    loaded_vocab spm, bpe;
    HR_CHECK_OK(load_vocab(&spm, spm_path, &err), &err);
    HR_CHECK_OK(load_vocab(&bpe, bpe_path, &err), &err);
    char a[32], b[32], c[32];
    size_t na = hr_tok_piece_after(spm.v, spm.v->bos_id, 15043, a, sizeof a);   /* "▁Hello" */
    int32_t hello = hr_vocab_find(bpe.v, "\xC4\xA0Hello", 7);                    /* "ĠHello" */
    size_t nb = hr_tok_piece_after(bpe.v, 128000, hello, b, sizeof b);
    size_t nc = hr_tok_piece(bpe.v, 128009, c, sizeof c); /* <|eot_id|>: control, no text */
    unload_vocab(&spm);
    unload_vocab(&bpe);
    HR_CHECKF(na == 5 && memcmp(a, "Hello", 5) == 0, "spm: '%.*s'", (int)na, a);
    HR_CHECKF(hello >= 0 && nb == 6 && memcmp(b, " Hello", 6) == 0, "byte-level: '%.*s'", (int)nb, b);
    HR_CHECK_EQ_INT(nc, 0);
}

HR_TEST(tok_gguf_written_back_tokenizes_the_same) {
    static const char *const assets[] = {"vocab/ggml-vocab-deepseek-llm.gguf", "vocab/ggml-vocab-bert-bge.gguf",
                                         "vocab/ggml-vocab-phi-3.gguf"};
    static const char text[] = "Hello, y'all! How are you \xF0\x9F\x98\x81 ?\xE6\x88\x91\xE6\x83\xB3 3333 \n\n\t x";
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++) {
        HR_ASSET(path, assets[i]);
        char out_path[512];
        snprintf(out_path, sizeof out_path, "%s/vocab-%zu.gguf", hr_test_tmpdir(), i);
        hr_error err = {0};
        loaded_vocab a, b = {0};
        hr_gguf_writer *w = NULL;
        char ids_a[512] = "", ids_b[512] = "";
        hr_status s = load_vocab(&a, path, &err);
        if (s == HR_OK) s = hr_gguf_writer_new(&w, &err);
        if (s == HR_OK) s = hr_vocab_to_gguf(a.v, w, &err);
        if (s == HR_OK) s = hr_gguf_writer_write(w, out_path, &err);
        if (s == HR_OK) s = load_vocab(&b, out_path, &err);
        unsigned flags = HR_TOK_ADD_SPECIAL | HR_TOK_PARSE_SPECIAL;
        if (s == HR_OK) s = ids_of(a.v, text, sizeof text - 1, flags, ids_a, sizeof ids_a, NULL, &err);
        if (s == HR_OK) s = ids_of(b.v, text, sizeof text - 1, flags, ids_b, sizeof ids_b, NULL, &err);
        hr_gguf_writer_free(w);
        unload_vocab(&a);
        unload_vocab(&b);
        HR_CHECKF(s == HR_OK, "%s: %s", assets[i], err.msg);
        HR_CHECKF(strcmp(ids_a, ids_b) == 0, "%s: [%s] became [%s]", assets[i], ids_a, ids_b);
    }
}

HR_TEST(tok_long_inputs) {
    HR_ASSET(path, "vocab/ggml-vocab-deepseek-coder.gguf");
    hr_error err = {0};
    loaded_vocab lv;
    HR_CHECK_OK(load_vocab(&lv, path, &err), &err);
    size_t n = 1 << 20;
    char *text = malloc(n);
    HR_CHECK(text != NULL);
    /* A megabyte of spaces (one regex match), then 200 KB of one letter (one BPE word). */
    memset(text, ' ', n);
    size_t c1 = 0, c2 = 0;
    char sink[16];
    hr_status s = ids_of(lv.v, text, n, 0, sink, sizeof sink, &c1, &err);
    memset(text, 'a', 200000);
    if (s == HR_OK) s = ids_of(lv.v, text, 200000, 0, sink, sizeof sink, &c2, &err);
    free(text);
    unload_vocab(&lv);
    HR_CHECK_OK(s, &err);
    HR_CHECKF(c1 > 0 && c1 < n / 8, "%zu ids for 1 MB of spaces", c1);
    HR_CHECKF(c2 > 0 && c2 < 200000 / 2, "%zu ids for 200 KB of 'a'", c2);
}

/* ---- synthetic Hugging Face files ---- */

/* Writes tokenizer json to a fresh directory and loads it. */
static hr_status load_hf_json(json_t *root, const char *name, hr_vocab **v, hr_error *err) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.json", hr_test_tmpdir(), name);
    if (json_dump_file(root, path, 0) != 0) return hr_fail(err, HR_ERR_IO, "cannot write %s", path);
    return hr_vocab_from_hf(v, path, err);
}

static json_t *added_token(int id, const char *content, bool special, bool lstrip, bool rstrip, bool single_word,
                           bool normalized) {
    return json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id, "content", content, "special", special, "lstrip",
                     lstrip, "rstrip", rstrip, "single_word", single_word, "normalized", normalized);
}

HR_TEST(tok_hf_added_token_flags) {
    /* Byte-level BPE over the 256 byte stand-ins (id = byte), no merges, lowercasing. */
    json_t *vocab = json_object();
    for (int b = 0; b < 256; b++) {
        char u[3] = {0};
        hr_bpe_byte_to_utf8((uint8_t)b, u);
        json_object_set_new(vocab, u, json_integer(b));
    }
    json_t *added = json_pack("[o, o, o]", added_token(256, "<x>", true, true, true, false, false),
                              added_token(257, "ab", false, false, false, true, false),
                              added_token(258, "hi", false, false, false, false, true));
    json_t *root = json_pack("{s:{s:s, s:o, s:[]}, s:o, s:{s:s}, s:{s:s, s:b, s:b}}", "model", "type", "BPE", "vocab",
                             vocab, "merges", "added_tokens", added, "normalizer", "type", "Lowercase", "pre_tokenizer",
                             "type", "ByteLevel", "add_prefix_space", false, "use_regex", true);
    HR_CHECK(root != NULL);
    hr_error err = {0};
    hr_vocab *v = NULL;
    hr_status s = load_hf_json(root, "added-flags", &v, &err);
    json_decref(root);
    HR_CHECK_OK(s, &err);
    char got[6][128];
    static const struct {
        const char *text;
        unsigned flags;
        const char *want;
    } cases[6] = {
        {"a <x> b", HR_TOK_PARSE_SPECIAL, "97 256 98"},        /* lstrip + rstrip swallow the spaces */
        {"a <x> b", 0, "97 32 60 120 62 32 98"},                /* not parsed: plain bytes */
        {"ab", 0, "257"},                                       /* a non-special added token: always */
        {"cab ab.", 0, "99 97 98 32 257 46"},                   /* single_word: not inside "cab" */
        {"HI", 0, "258"},                                       /* normalized: matched after lowercasing */
        {"x\xff", 0, "120 255"},                                /* any byte has a token */
    };
    for (int i = 0; i < 6 && s == HR_OK; i++)
        s = ids_of(v, cases[i].text, strlen(cases[i].text), cases[i].flags, got[i], sizeof got[i], NULL, &err);
    hr_vocab_free(v);
    HR_CHECK_OK(s, &err);
    for (int i = 0; i < 6; i++)
        HR_CHECKF(strcmp(got[i], cases[i].want) == 0, "'%s': got [%s], want [%s]", cases[i].text, got[i],
                  cases[i].want);
}

HR_TEST(tok_hf_wordpiece) {
    json_t *root = json_pack(
        "{s:{s:s, s:s, s:i, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}}, s:[o, o, o], s:{s:s}, s:{s:s}, "
        "s:{s:s, s:[s, i], s:[s, i]}}",
        "model", "type", "WordPiece", "unk_token", "[UNK]", "max_input_chars_per_word", 100, "vocab", "[UNK]", 0,
        "[CLS]", 1, "[SEP]", 2, "hello", 3, "##lo", 4, "hel", 5, ",", 6, "world", 7, "added_tokens",
        added_token(0, "[UNK]", true, false, false, false, false),
        added_token(1, "[CLS]", true, false, false, false, false),
        added_token(2, "[SEP]", true, false, false, false, false), "normalizer", "type", "BertNormalizer",
        "pre_tokenizer", "type", "BertPreTokenizer", "post_processor", "type", "BertProcessing", "sep", "[SEP]", 2,
        "cls", "[CLS]", 1);
    HR_CHECK(root != NULL);
    hr_error err = {0};
    hr_vocab *v = NULL;
    hr_status s = load_hf_json(root, "wordpiece", &v, &err);
    json_decref(root);
    HR_CHECK_OK(s, &err);
    char a[128] = "", b[128] = "";
    s = ids_of(v, "Hello, WORLD! hello", 19, HR_TOK_ADD_SPECIAL, a, sizeof a, NULL, &err);
    if (s == HR_OK) s = ids_of(v, "hello helo", 10, 0, b, sizeof b, NULL, &err);
    hr_vocab_free(v);
    HR_CHECK_OK(s, &err);
    HR_CHECKF(strcmp(a, "1 3 6 7 0 3 2") == 0, "got [%s]", a);
    /* Greedy longest first: "helo" starts with "hel", and no piece "##o" ends it, so the word is [UNK]. */
    HR_CHECKF(strcmp(b, "3 0") == 0, "got [%s]", b);
}

HR_TEST(tok_unsupported_tokenizers_are_refused_by_name) {
    hr_error err = {0};
    hr_vocab *v = NULL;
    json_t *root = json_pack("{s:{s:s, s:[[s, f]]}}", "model", "type", "Unigram", "vocab", "a", -1.0);
    hr_status s = load_hf_json(root, "unigram", &v, &err);
    json_decref(root);
    HR_CHECK_EQ_INT(s, HR_ERR_UNSUPPORTED);
    HR_CHECKF(strstr(err.msg, "tokenizer model 'Unigram' is not supported"), "message: %s", err.msg);

    /* A GGUF naming a tokenizer model, or a pre-tokenizer, that headroom does not have. */
    static const struct {
        const char *model, *pre, *want;
    } cases[] = {{"t5", "default", "tokenizer model 't5' is not supported"},
                 {"gpt2", "no-such-family", "pre-tokenizer 'no-such-family' (tokenizer.ggml.pre) is not supported"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/unsupported-%zu.gguf", hr_test_tmpdir(), i);
        const char *tokens[2] = {"a", "b"};
        uint64_t lens[2] = {1, 1};
        hr_gguf_writer *w = NULL;
        hr_gguf g;
        bool opened = false;
        s = hr_gguf_writer_new(&w, &err);
        if (s == HR_OK) s = hr_gguf_writer_set_str(w, "tokenizer.ggml.model", cases[i].model, &err);
        if (s == HR_OK) s = hr_gguf_writer_set_str(w, "tokenizer.ggml.pre", cases[i].pre, &err);
        if (s == HR_OK) s = hr_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, lens, 2, &err);
        if (s == HR_OK) s = hr_gguf_writer_write(w, path, &err);
        hr_gguf_writer_free(w);
        if (s == HR_OK) s = hr_gguf_open(&g, path, &err);
        opened = s == HR_OK;
        if (opened) s = hr_vocab_from_gguf(&v, &g, &err);
        if (opened) hr_gguf_close(&g);
        hr_vocab_free(v);
        v = NULL;
        HR_CHECKF(s == HR_ERR_UNSUPPORTED && strstr(err.msg, cases[i].want), "%s/%s: %s", cases[i].model,
                  cases[i].pre, err.msg);
    }
}

/* Encoding word by word where no merge can cross (hr_vocab_word_start) must give what
 * encoding the whole text at once gives: compare with the shortcut disabled. */
HR_TEST(tok_word_by_word_equals_whole_text) {
    static const char *const assets[] = {"vocab/ggml-vocab-llama-spm.gguf", "tokenizers/llama2/tokenizer.json",
                                         "tokenizers/gemma3/tokenizer.json"};
    static const char *const parts[] = {"> ", " </", "a", "bc", "  ", "\n", "\xC3\xA9t\xC3\xA9", "\xF0\x9F\x98\x80",
                                        " >", "\xE2\x96\x81", " the", "\xff", "x>", "\t"};
    char text[4096];
    size_t len = 0;
    for (uint32_t r = 12345; len + 8 < sizeof text;) {
        r = r * 1103515245u + 12345u;
        const char *p = parts[(r >> 16) % (sizeof parts / sizeof parts[0])];
        memcpy(text + len, p, strlen(p));
        len += strlen(p);
    }
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++) {
        HR_ASSET(path, assets[i]);
        hr_error err = {0};
        loaded_vocab lv;
        static char split[16384], whole[16384];
        hr_status s = load_vocab(&lv, path, &err);
        if (s == HR_OK) s = ids_of(lv.v, text, len, 0, split, sizeof split, NULL, &err);
        if (s == HR_OK) {
            memset(lv.v->space_joins, 1, sizeof lv.v->space_joins); /* no word start is safe now */
            s = ids_of(lv.v, text, len, 0, whole, sizeof whole, NULL, &err);
        }
        unload_vocab(&lv);
        HR_CHECKF(s == HR_OK, "%s: %s", assets[i], err.msg);
        HR_CHECKF(strcmp(split, whole) == 0, "%s: word by word differs from the whole text", assets[i]);
    }
}

HR_TEST(tok_chat_prompt_gets_exactly_one_bos) {
    HR_ASSET(path, "vocab/ggml-vocab-llama-spm.gguf");
    hr_gguf g;
    hr_error err = {0};
    HR_CHECK_OK(hr_gguf_open(&g, path, &err), &err);
    hr_vocab *v = NULL;
    hr_status st = hr_vocab_from_gguf(&v, &g, &err);
    hr_gguf_close(&g);
    HR_CHECK_OK(st, &err);
    hr_tokens with = {0}, without = {0}, user = {0};
    st = hr_tok_encode(v, "<s>[INST] hi [/INST]", 20, HR_TOK_CHAT, &with, &err);
    if (st == HR_OK) st = hr_tok_encode(v, "[INST] hi [/INST]", 17, HR_TOK_CHAT, &without, &err);
    if (st == HR_OK) st = hr_tok_encode(v, "<s>[INST] hi [/INST]", 20, HR_TOK_ADD_SPECIAL, &user, &err);
    bool one_bos = with.count > 1 && with.ids[0] == v->bos_id && with.ids[1] != v->bos_id;
    bool added = without.count > 1 && without.ids[0] == v->bos_id && without.count == with.count;
    /* Without parsing, "<s>" written by a user stays text: BOS, then its pieces. */
    bool literal = user.count > with.count && user.ids[0] == v->bos_id && user.ids[1] != v->bos_id;
    hr_tokens_free(&with);
    hr_tokens_free(&without);
    hr_tokens_free(&user);
    hr_vocab_free(v);
    HR_CHECK_OK(st, &err);
    HR_CHECKF(one_bos, "a template that writes <s> got a second BOS");
    HR_CHECKF(added, "a template without <s> did not get BOS added");
    HR_CHECKF(literal, "user text '<s>' was parsed as BOS");
}
