#include "tokenizer/vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/bpe.h"
#include "tokenizer/normalize.h"
#include "tokenizer/pretokenize.h"

/* The SentencePiece "lower one eighth block" that stands for a space in SPM vocabularies. */
static const char SPM_SPACE[] = "\xE2\x96\x81";

static uint32_t hash_bytes(const char *s, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a: short keys, good spread, no state */
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

const char *hr_vocab_text(const hr_vocab *v, int32_t id, size_t *len) {
    if (id < 0 || id >= v->n_tokens) {
        if (len) *len = 0;
        return "";
    }
    if (len) *len = v->text_len[id];
    return v->text_blob + v->text_offset[id];
}

int32_t hr_vocab_find(const hr_vocab *v, const char *text, size_t len) {
    for (uint32_t slot = hash_bytes(text, len) & v->hash_mask;; slot = (slot + 1) & v->hash_mask) {
        int32_t id = v->hash_slots[slot];
        if (id < 0) return -1;
        if (v->text_len[id] == len && memcmp(v->text_blob + v->text_offset[id], text, len) == 0)
            return id;
    }
}

bool hr_vocab_is_control(const hr_vocab *v, int32_t id) {
    return id >= 0 && id < v->n_tokens && v->types[id] == HR_TOKEN_CONTROL;
}

bool hr_vocab_word_start(const hr_vocab *v, const char *s, size_t pos, size_t len) {
    if (pos == 0 || pos + 3 > len || memcmp(s + pos, SPM_SPACE, 3) != 0) return false;
    if (pos >= 3 && memcmp(s + pos - 3, SPM_SPACE, 3) == 0) return false;
    return !v->space_joins[(uint8_t)s[pos - 1]];
}

void hr_vocab_free(hr_vocab *v) {
    if (!v) return;
    free(v->text_blob);
    free(v->text_offset);
    free(v->text_len);
    free(v->scores);
    free(v->types);
    free(v->hash_slots);
    free(v->specials);
    hr_bpe_merges_free(v->merges);
    hr_tok_normalizer_free(v->normalizer);
    hr_pretok_free(v->pretok);
    free(v);
}

hr_status hr_vocab_new(hr_vocab **out, int64_t n_tokens, hr_error *err) {
    *out = NULL;
    if (n_tokens <= 0 || n_tokens > (1 << 24))
        return hr_fail(err, HR_ERR_FORMAT, "vocabulary size %lld is out of range (1..16777216)",
                       (long long)n_tokens);
    hr_vocab *v = calloc(1, sizeof *v);
    if (!v) return hr_fail(err, HR_ERR_NOMEM, "out of memory for the vocabulary");
    v->n_tokens = (int32_t)n_tokens;
    v->text_offset = calloc((size_t)n_tokens, sizeof *v->text_offset);
    v->text_len = calloc((size_t)n_tokens, sizeof *v->text_len);
    v->scores = calloc((size_t)n_tokens, sizeof *v->scores);
    v->types = malloc((size_t)n_tokens);
    v->blob_cap_ = (size_t)n_tokens * 8 + 64;
    v->text_blob = malloc(v->blob_cap_);
    v->bos_id = v->eos_id = v->unk_id = v->pad_id = v->eot_id = -1;
    if (!v->text_offset || !v->text_len || !v->scores || !v->types || !v->text_blob) {
        hr_vocab_free(v);
        return hr_fail(err, HR_ERR_NOMEM, "out of memory for a %lld-token vocabulary", (long long)n_tokens);
    }
    memset(v->types, HR_TOKEN_NORMAL, (size_t)n_tokens);
    /* Offset 0 holds an empty text, which every token has until it is set. */
    v->text_blob[0] = '\0';
    v->blob_len_ = 1;
    *out = v;
    return HR_OK;
}

static hr_status blob_reserve(hr_vocab *v, size_t extra, hr_error *err) {
    if (v->blob_len_ + extra + 1 <= v->blob_cap_) return HR_OK;
    size_t cap = v->blob_cap_;
    while (v->blob_len_ + extra + 1 > cap) cap *= 2;
    if (cap > UINT32_MAX) return hr_fail(err, HR_ERR_FORMAT, "vocabulary texts exceed 4 GiB");
    char *bigger = realloc(v->text_blob, cap);
    if (!bigger) return hr_fail(err, HR_ERR_NOMEM, "out of memory for vocabulary texts");
    v->text_blob = bigger;
    v->blob_cap_ = cap;
    return HR_OK;
}

/* Appends token id's text; with spaces_to_spm, ' ' becomes U+2581 as SPM stores it. */
static hr_status set_text(hr_vocab *v, int32_t id, const char *text, size_t len, bool spaces_to_spm,
                          hr_error *err) {
    size_t spaces = 0;
    if (spaces_to_spm)
        for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    if (blob_reserve(v, len + spaces * 2, err) != HR_OK) return err->status;
    char *dst = v->text_blob + v->blob_len_;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (spaces_to_spm && text[i] == ' ') {
            memcpy(dst + n, SPM_SPACE, 3);
            n += 3;
        } else {
            dst[n++] = text[i];
        }
    }
    dst[n] = '\0';
    v->text_offset[id] = (uint32_t)v->blob_len_;
    v->text_len[id] = (uint32_t)n;
    v->blob_len_ += n + 1;
    return HR_OK;
}

hr_status hr_vocab_set_token(hr_vocab *v, int32_t id, const char *text, size_t len, uint8_t type, float score,
                             hr_error *err) {
    if (id < 0 || id >= v->n_tokens)
        return hr_fail(err, HR_ERR_RANGE, "token id %d is outside the vocabulary (0..%d)", id, v->n_tokens - 1);
    v->types[id] = type;
    v->scores[id] = score;
    return set_text(v, id, text, len, false, err);
}

hr_status hr_vocab_set_specials(hr_vocab *v, const hr_vocab_special *specials, uint32_t n, hr_error *err) {
    hr_vocab_special *copy = malloc((n ? n : 1) * sizeof *copy);
    if (!copy) return hr_fail(err, HR_ERR_NOMEM, "out of memory for %u special tokens", n);
    if (n) memcpy(copy, specials, n * sizeof *copy);
    free(v->specials);
    v->specials = copy;
    v->n_specials = n;
    return HR_OK;
}

int hr_vocab_byte_value(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int value = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        value = value * 16 + d;
    }
    return value;
}

/* Sort key of a special token: by first byte, then longest first, then lowest id, so
 * the first match at a position within a first-byte group is the longest. */
typedef struct {
    uint32_t first, len;
    hr_vocab_special special;
} special_key;

static int special_order(const void *pa, const void *pb) {
    const special_key *a = pa, *b = pb;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->special.id < b->special.id ? -1 : a->special.id > b->special.id;
}

/* Control and unknown tokens are matched only on request; user-defined ones always, as
 * the model's own tokenizer splits them out of any text. */
static hr_status specials_from_types(hr_vocab *v, hr_error *err) {
    uint32_t n = 0;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        uint8_t t = v->types[id];
        n += v->text_len[id] > 0 && (t == HR_TOKEN_CONTROL || t == HR_TOKEN_UNKNOWN || t == HR_TOKEN_USER_DEFINED);
    }
    v->specials = malloc((n ? n : 1) * sizeof *v->specials);
    if (!v->specials) return hr_fail(err, HR_ERR_NOMEM, "out of memory for %u special tokens", n);
    v->n_specials = 0;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        uint8_t t = v->types[id];
        if (v->text_len[id] == 0 || !(t == HR_TOKEN_CONTROL || t == HR_TOKEN_UNKNOWN || t == HR_TOKEN_USER_DEFINED))
            continue;
        v->specials[v->n_specials++] =
            (hr_vocab_special){.id = id, .flags = t == HR_TOKEN_USER_DEFINED ? HR_SPECIAL_ALWAYS : 0};
    }
    return HR_OK;
}

static hr_status index_specials(hr_vocab *v, hr_error *err) {
    special_key *keys = malloc((v->n_specials ? v->n_specials : 1) * sizeof *keys);
    if (!keys) return hr_fail(err, HR_ERR_NOMEM, "out of memory for %u special tokens", v->n_specials);
    uint32_t n = 0;
    for (uint32_t i = 0; i < v->n_specials; i++) {
        int32_t id = v->specials[i].id;
        if (id < 0 || id >= v->n_tokens || v->text_len[id] == 0) continue; /* nothing to match */
        keys[n++] = (special_key){(uint8_t)v->text_blob[v->text_offset[id]], v->text_len[id], v->specials[i]};
    }
    qsort(keys, n, sizeof *keys, special_order);
    for (uint32_t i = 0; i < n; i++) v->specials[i] = keys[i].special;
    v->n_specials = n;
    uint32_t i = 0;
    for (uint32_t b = 0; b < 256; b++) {
        v->special_start[b] = i;
        while (i < n && keys[i].first == b) i++;
    }
    v->special_start[256] = i;
    free(keys);
    return HR_OK;
}

/* Ends of turns in chat models, for vocabularies that do not name an EOT token. */
static void detect_eot(hr_vocab *v) {
    static const char *const names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|EOT|>",
                                        "<|end_of_turn|>"};
    for (size_t i = 0; v->eot_id < 0 && i < sizeof names / sizeof names[0]; i++) {
        int32_t id = hr_vocab_find(v, names[i], strlen(names[i]));
        if (id >= 0 && (v->types[id] == HR_TOKEN_CONTROL || v->types[id] == HR_TOKEN_USER_DEFINED)) v->eot_id = id;
    }
}

hr_status hr_vocab_finish(hr_vocab *v, hr_error *err) {
    uint32_t slots = 1;
    while (slots < (uint32_t)v->n_tokens * 2u) slots <<= 1;
    v->hash_slots = malloc(slots * sizeof *v->hash_slots);
    if (!v->hash_slots) return hr_fail(err, HR_ERR_NOMEM, "out of memory for the vocabulary index");
    memset(v->hash_slots, 0xff, slots * sizeof *v->hash_slots);
    v->hash_mask = slots - 1;
    for (int i = 0; i < 256; i++) v->byte_token[i] = -1;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        const char *text = v->text_blob + v->text_offset[id];
        uint32_t len = v->text_len[id];
        if (len > v->max_token_len) v->max_token_len = len;
        if (len == 0) continue; /* an unset or empty token is never looked up by text */
        /* Duplicate texts happen in real vocabularies; the lowest id wins, as lookups
         * by text in other implementations return the first one. */
        uint32_t slot = hash_bytes(text, len) & v->hash_mask;
        bool duplicate = false;
        for (; v->hash_slots[slot] >= 0; slot = (slot + 1) & v->hash_mask) {
            int32_t other = v->hash_slots[slot];
            if (v->text_len[other] == len && memcmp(v->text_blob + v->text_offset[other], text, len) == 0) {
                duplicate = true;
                break;
            }
        }
        if (!duplicate) v->hash_slots[slot] = id;
        if (v->types[id] == HR_TOKEN_BYTE && !v->byte_level) {
            int byte = hr_vocab_byte_value(text, len);
            if (byte >= 0 && v->byte_token[byte] < 0) v->byte_token[byte] = id;
        }
    }
    for (int32_t id = 0; id < v->n_tokens; id++) {
        const char *text = v->text_blob + v->text_offset[id];
        size_t len = v->text_len[id], i = 0;
        while (i + 3 <= len && memcmp(text + i, SPM_SPACE, 3) == 0) i += 3; /* the leading run */
        for (; i + 3 < len; i++)
            if (memcmp(text + i + 1, SPM_SPACE, 3) == 0 && !(i >= 2 && memcmp(text + i - 2, SPM_SPACE, 3) == 0))
                v->space_joins[(uint8_t)text[i]] = true;
    }
    for (int b = 0; v->byte_level && b < 256; b++) {
        char stand_in[2];
        size_t n = hr_bpe_byte_to_utf8((uint8_t)b, stand_in);
        v->byte_token[b] = hr_vocab_find(v, stand_in, n);
    }
    if (!v->specials && specials_from_types(v, err) != HR_OK) return err->status;
    if (index_specials(v, err) != HR_OK) return err->status;
    detect_eot(v);
    return HR_OK;
}

static void check_special(hr_vocab *v, int32_t *id) {
    if (*id >= v->n_tokens) *id = -1; /* an id past the vocabulary names no token */
}

hr_status hr_vocab_from_llama2c(hr_vocab **out, const char *path, int32_t n_tokens, hr_error *err) {
    *out = NULL;
    hr_mapped_file file;
    if (hr_file_map(&file, path, err) != HR_OK) return err->status;
    hr_vocab *v = NULL;
    hr_status st = hr_vocab_new(&v, n_tokens, err);
    size_t pos = 4; /* int32 max_token_length, which we recompute */
    if (st == HR_OK && file.size_bytes < 4)
        st = hr_fail(err, HR_ERR_FORMAT, "tokenizer '%s': file is %zu bytes, too short for a header",
                     path, file.size_bytes);
    for (int32_t id = 0; st == HR_OK && id < n_tokens; id++) {
        float score;
        int32_t len;
        if (file.size_bytes - pos < 8) {
            st = hr_fail(err, HR_ERR_FORMAT,
                         "tokenizer '%s': token %d at byte %zu: file ends (the model expects %d tokens)",
                         path, id, pos, n_tokens);
            break;
        }
        memcpy(&score, file.data + pos, 4);
        memcpy(&len, file.data + pos + 4, 4);
        pos += 8;
        if (len < 0 || (size_t)len > file.size_bytes - pos) {
            st = hr_fail(err, HR_ERR_FORMAT, "tokenizer '%s': token %d at byte %zu: length %d runs past the end of the file",
                         path, id, pos - 4, len);
            break;
        }
        const char *text = (const char *)file.data + pos;
        pos += (size_t)len;
        uint8_t type = HR_TOKEN_NORMAL;
        /* llama2.c's exporter stores BOS/EOS as "\n<s>\n" and "\n</s>\n" and spaces as
         * ' '; GGUF and SentencePiece spell them "<s>", "</s>" and U+2581. */
        if (id == 0) {
            type = HR_TOKEN_UNKNOWN;
        } else if (id == 1 || id == 2) {
            type = HR_TOKEN_CONTROL;
            text = id == 1 ? "<s>" : "</s>";
            len = id == 1 ? 3 : 4;
        } else if (hr_vocab_byte_value(text, (size_t)len) >= 0) {
            type = HR_TOKEN_BYTE;
        }
        st = set_text(v, id, text, (size_t)len, type == HR_TOKEN_NORMAL, err);
        v->scores[id] = score;
        v->types[id] = type;
    }
    hr_file_unmap(&file);
    if (st == HR_OK) {
        v->kind = HR_VOCAB_SPM;
        v->unk_id = 0;
        v->bos_id = n_tokens > 1 ? 1 : -1;
        v->eos_id = n_tokens > 2 ? 2 : -1;
        v->add_bos = true;
        v->add_space_prefix = true;
        st = hr_vocab_finish(v, err);
    }
    if (st != HR_OK) {
        hr_vocab_free(v);
        return st;
    }
    *out = v;
    return HR_OK;
}

hr_status hr_vocab_synthesize(hr_vocab **out, int32_t n_tokens, hr_error *err) {
    *out = NULL;
    if (n_tokens < 259)
        return hr_fail(err, HR_ERR_RANGE, "a synthetic vocabulary needs at least 259 tokens (3 special + 256 bytes), not %d",
                       n_tokens);
    hr_vocab *v;
    if (hr_vocab_new(&v, n_tokens, err) != HR_OK) return err->status;
    static const char *const specials[3] = {"<unk>", "<s>", "</s>"};
    static const uint8_t special_types[3] = {HR_TOKEN_UNKNOWN, HR_TOKEN_CONTROL, HR_TOKEN_CONTROL};
    hr_status st = HR_OK;
    for (int32_t id = 0; id < n_tokens && st == HR_OK; id++) {
        char text[32];
        size_t len;
        if (id < 3) {
            len = (size_t)snprintf(text, sizeof text, "%s", specials[id]);
            v->types[id] = special_types[id];
        } else if (id < 259) {
            len = (size_t)snprintf(text, sizeof text, "<0x%02X>", id - 3);
            v->types[id] = HR_TOKEN_BYTE;
        } else {
            /* Piece k alternates "letters(k/2)" and " letters(k/2)", letters() being
             * bijective base 26 (a..z, aa, ab, ...), so every text is distinct. */
            int32_t k = id - 259;
            uint32_t serial = (uint32_t)k / 2 + 1;
            char letters[16];
            size_t n = 0;
            while (serial > 0) {
                serial--;
                letters[n++] = (char)('a' + serial % 26);
                serial /= 26;
            }
            len = 0;
            if (k % 2) text[len++] = ' ';
            while (n > 0) text[len++] = letters[--n];
            v->types[id] = HR_TOKEN_NORMAL;
            v->scores[id] = -(float)k;
        }
        st = set_text(v, id, text, len, true, err);
    }
    v->kind = HR_VOCAB_SPM;
    v->unk_id = 0;
    v->bos_id = 1;
    v->eos_id = 2;
    v->add_bos = true;
    v->add_space_prefix = true;
    if (st == HR_OK) st = hr_vocab_finish(v, err);
    if (st != HR_OK) {
        hr_vocab_free(v);
        return st;
    }
    *out = v;
    return HR_OK;
}

/* ---- GGUF ---- */

/* Optional special-token id: absent keys leave *id as it is. */
static hr_status read_optional_id(const hr_gguf *g, const char *key, int32_t *id, hr_error *err) {
    if (!hr_gguf_find(g, key)) return HR_OK;
    int64_t value;
    if (hr_gguf_get_i64(g, key, &value, err) != HR_OK) return err->status;
    /* Converters write 0xFFFFFFFF (as u32) or -1 for "none". */
    *id = (value < 0 || value > INT32_MAX) ? -1 : (int32_t)value;
    return HR_OK;
}

static hr_status read_optional_bool(const hr_gguf *g, const char *key, bool *flag, hr_error *err) {
    if (!hr_gguf_find(g, key)) return HR_OK;
    return hr_gguf_get_bool(g, key, flag, err);
}

/* Tokens, scores and types, common to every tokenizer model. */
static hr_status gguf_tokens(hr_vocab **out, const hr_gguf *g, hr_error *err) {
    const hr_gguf_value *tokens, *scores = NULL, *types = NULL;
    if (hr_gguf_get_arr(g, "tokenizer.ggml.tokens", HR_GGUF_STRING, &tokens, err) != HR_OK) return err->status;
    uint64_t n = tokens->arr.count;
    if (hr_gguf_find(g, "tokenizer.ggml.scores") &&
        hr_gguf_get_arr(g, "tokenizer.ggml.scores", HR_GGUF_FLOAT32, &scores, err) != HR_OK)
        return err->status;
    if (hr_gguf_find(g, "tokenizer.ggml.token_type") &&
        hr_gguf_get_arr(g, "tokenizer.ggml.token_type", -1, &types, err) != HR_OK)
        return err->status;
    if (scores && scores->arr.count != n)
        return hr_fail(err, HR_ERR_FORMAT, "tokenizer.ggml.scores has %llu entries for %llu tokens",
                       (unsigned long long)scores->arr.count, (unsigned long long)n);
    if (types && types->arr.count != n)
        return hr_fail(err, HR_ERR_FORMAT, "tokenizer.ggml.token_type has %llu entries for %llu tokens",
                       (unsigned long long)types->arr.count, (unsigned long long)n);
    hr_vocab *v;
    if (hr_vocab_new(&v, (int64_t)(n > INT32_MAX ? (uint64_t)INT32_MAX + 1 : n), err) != HR_OK) return err->status;
    hr_status st = HR_OK;
    for (uint64_t i = 0; i < n && st == HR_OK; i++) {
        hr_gguf_str s = tokens->arr.items[i].str;
        int64_t type = types ? hr_gguf_arr_int(types, i) : HR_TOKEN_NORMAL;
        st = hr_vocab_set_token(v, (int32_t)i, s.ptr, (size_t)s.len,
                                (type >= 0 && type <= HR_TOKEN_BYTE) ? (uint8_t)type : HR_TOKEN_UNDEFINED,
                                scores ? hr_gguf_arr_f32(scores, i) : 0.0f, err);
    }
    static const struct {
        const char *key;
        size_t field;
    } ids[] = {
        {"tokenizer.ggml.bos_token_id", offsetof(hr_vocab, bos_id)},
        {"tokenizer.ggml.eos_token_id", offsetof(hr_vocab, eos_id)},
        {"tokenizer.ggml.unknown_token_id", offsetof(hr_vocab, unk_id)},
        {"tokenizer.ggml.padding_token_id", offsetof(hr_vocab, pad_id)},
        {"tokenizer.ggml.eot_token_id", offsetof(hr_vocab, eot_id)},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0] && st == HR_OK; i++)
        st = read_optional_id(g, ids[i].key, (int32_t *)((char *)v + ids[i].field), err);
    if (st != HR_OK) {
        hr_vocab_free(v);
        return st;
    }
    *out = v;
    return HR_OK;
}

/* tokenizer.ggml.merges: "left right" strings, in rank order. Reads token ids, so it
 * runs once the text index is built. */
static hr_status gguf_merges(hr_vocab *v, const hr_gguf *g, hr_error *err) {
    const hr_gguf_value *merges = NULL;
    if (hr_gguf_find(g, "tokenizer.ggml.merges") &&
        hr_gguf_get_arr(g, "tokenizer.ggml.merges", HR_GGUF_STRING, &merges, err) != HR_OK)
        return err->status;
    uint64_t n = merges ? merges->arr.count : 0;
    if (n > INT32_MAX)
        return hr_fail(err, HR_ERR_FORMAT, "tokenizer.ggml.merges has %llu entries", (unsigned long long)n);
    if (hr_bpe_merges_new(&v->merges, (size_t)n, err) != HR_OK) return err->status;
    char *joined = NULL;
    size_t joined_cap = 0;
    hr_status st = HR_OK;
    for (uint64_t i = 0; i < n && st == HR_OK; i++) {
        hr_gguf_str s = merges->arr.items[i].str;
        /* The separator is the first space after the first byte: a left half may itself
         * be a space in vocabularies that keep raw spaces. */
        const char *sep = s.len > 1 ? memchr(s.ptr + 1, ' ', (size_t)s.len - 1) : NULL;
        if (!sep) {
            st = hr_fail(err, HR_ERR_FORMAT, "tokenizer.ggml.merges[%llu] \"%.*s\" has no space between its halves",
                         (unsigned long long)i, (int)(s.len > 40 ? 40 : s.len), s.ptr);
            break;
        }
        size_t left_len = (size_t)(sep - s.ptr), right_len = (size_t)s.len - left_len - 1;
        if (left_len + right_len > joined_cap) {
            joined_cap = (left_len + right_len) * 2;
            char *bigger = realloc(joined, joined_cap);
            if (!bigger) {
                st = hr_fail(err, HR_ERR_NOMEM, "out of memory reading merges");
                break;
            }
            joined = bigger;
        }
        memcpy(joined, s.ptr, left_len);
        memcpy(joined + left_len, sep + 1, right_len);
        int32_t left = hr_vocab_find(v, s.ptr, left_len), right = hr_vocab_find(v, sep + 1, right_len);
        int32_t merged = hr_vocab_find(v, joined, left_len + right_len);
        /* A merge whose halves or result are not tokens can never apply to ids. */
        if (left >= 0 && right >= 0 && merged >= 0)
            st = hr_bpe_merges_add(v->merges, left, right, merged, (int32_t)i, err);
    }
    free(joined);
    return st;
}

static hr_status gguf_bpe(hr_vocab *v, const hr_gguf *g, hr_error *err) {
    v->kind = HR_VOCAB_BPE;
    v->byte_level = true;
    hr_gguf_str pre = {.ptr = "default", .len = 7};
    if (hr_gguf_find(g, "tokenizer.ggml.pre") && hr_gguf_get_str(g, "tokenizer.ggml.pre", &pre, err) != HR_OK)
        return err->status;
    if (pre.len >= sizeof v->pre_name)
        return hr_fail(err, HR_ERR_UNSUPPORTED, "pre-tokenizer '%.*s' (tokenizer.ggml.pre) is not supported",
                       (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);
    memcpy(v->pre_name, pre.ptr, (size_t)pre.len);
    v->pre_name[pre.len] = '\0';
    hr_pretok_family family;
    if (hr_pretok_from_gguf_name(&v->pretok, v->pre_name, &family, err) != HR_OK) return err->status;
    v->ignore_merges = family.ignore_merges;
    v->add_bos = family.add_bos;
    if (family.nfc && (hr_tok_normalizer_new(&v->normalizer, err) != HR_OK ||
                       hr_tok_normalizer_add(v->normalizer, HR_NORM_NFC, err) != HR_OK))
        return err->status;
    return HR_OK;
}

static hr_status gguf_wpm(hr_vocab *v, const hr_gguf *g, hr_error *err) {
    v->kind = HR_VOCAB_WPM;
    /* BERT wraps a text in [CLS] ... [SEP]: they play the parts of BOS and EOS here. */
    int32_t cls = -1, sep = -1;
    if (read_optional_id(g, "tokenizer.ggml.cls_token_id", &cls, err) != HR_OK ||
        read_optional_id(g, "tokenizer.ggml.seperator_token_id", &sep, err) != HR_OK ||
        read_optional_id(g, "tokenizer.ggml.separator_token_id", &sep, err) != HR_OK)
        return err->status;
    if (cls >= 0) v->bos_id = cls;
    if (sep >= 0) v->eos_id = sep;
    v->add_bos = v->add_eos = true;
    v->add_space_prefix = true; /* word-initial pieces carry U+2581 */
    if (hr_tok_normalizer_new(&v->normalizer, err) != HR_OK ||
        hr_tok_normalizer_add_bert(v->normalizer, true, true, true, true, err) != HR_OK ||
        hr_pretok_new(&v->pretok, err) != HR_OK || hr_pretok_add_bert(v->pretok, err) != HR_OK)
        return err->status;
    return HR_OK;
}

hr_status hr_vocab_from_gguf(hr_vocab **out, const hr_gguf *g, hr_error *err) {
    *out = NULL;
    hr_gguf_str model;
    if (hr_gguf_get_str(g, "tokenizer.ggml.model", &model, err) != HR_OK) return err->status;
    bool spm = hr_gguf_str_eq(model, "llama"), bpe = hr_gguf_str_eq(model, "gpt2"), wpm = hr_gguf_str_eq(model, "bert");
    if (!spm && !bpe && !wpm)
        return hr_fail(err, HR_ERR_UNSUPPORTED,
                       "tokenizer model '%.*s' is not supported (supported: llama, gpt2, bert)",
                       (int)(model.len > 64 ? 64 : model.len), model.ptr);
    hr_vocab *v = NULL;
    if (gguf_tokens(&v, g, err) != HR_OK) return err->status;
    hr_status st = HR_OK;
    if (spm) {
        v->kind = HR_VOCAB_SPM;
        v->add_bos = true;
        v->add_space_prefix = true;
    } else if (bpe) {
        st = gguf_bpe(v, g, err);
    } else {
        st = gguf_wpm(v, g, err);
    }
    if (st == HR_OK) st = read_optional_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos, err);
    if (st == HR_OK) st = read_optional_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos, err);
    if (st == HR_OK && spm) st = read_optional_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err);
    if (st == HR_OK) {
        check_special(v, &v->bos_id);
        check_special(v, &v->eos_id);
        check_special(v, &v->unk_id);
        check_special(v, &v->pad_id);
        check_special(v, &v->eot_id);
        st = hr_vocab_finish(v, err);
    }
    if (st == HR_OK && bpe) st = gguf_merges(v, g, err);
    if (st != HR_OK) {
        hr_vocab_free(v);
        return st;
    }
    *out = v;
    return HR_OK;
}

/* ---- writing GGUF ---- */

/* tokenizer.ggml.merges back as "left right" strings in rank order. */
static hr_status write_merges(const hr_vocab *v, hr_gguf_writer *w, hr_error *err) {
    size_t n = hr_bpe_merges_count(v->merges);
    const char **texts = malloc((n ? n : 1) * sizeof *texts);
    uint64_t *lens = malloc((n ? n : 1) * sizeof *lens);
    hr_tok_buf all = {0};
    size_t *offsets = malloc((n ? n : 1) * sizeof *offsets);
    hr_status st = (texts && lens && offsets) ? HR_OK : hr_fail(err, HR_ERR_NOMEM, "out of memory writing merges");
    for (size_t i = 0; i < n && st == HR_OK; i++) {
        int32_t left, right;
        hr_bpe_merges_at(v->merges, i, &left, &right);
        size_t ll, rl;
        const char *lt = hr_vocab_text(v, left, &ll), *rt = hr_vocab_text(v, right, &rl);
        offsets[i] = all.len;
        lens[i] = ll + 1 + rl;
        st = hr_tok_buf_append(&all, lt, ll, err);
        if (st == HR_OK) st = hr_tok_buf_append(&all, " ", 1, err);
        if (st == HR_OK) st = hr_tok_buf_append(&all, rt, rl, err);
    }
    for (size_t i = 0; i < n && st == HR_OK; i++) texts[i] = all.data + offsets[i];
    if (st == HR_OK) st = hr_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", texts, lens, n, err);
    free(texts);
    free(lens);
    free(offsets);
    hr_tok_buf_free(&all);
    return st;
}

hr_status hr_vocab_to_gguf(const hr_vocab *v, hr_gguf_writer *w, hr_error *err) {
    const char *model = v->kind == HR_VOCAB_SPM ? "llama" : v->kind == HR_VOCAB_WPM ? "bert" : "gpt2";
    if (v->kind == HR_VOCAB_BPE && !v->pre_name[0])
        return hr_fail(err, HR_ERR_UNSUPPORTED,
                       "this vocabulary came from a tokenizer.json whose pre-tokenizer has no GGUF name; "
                       "it cannot be written as GGUF metadata");
    size_t n = (size_t)v->n_tokens;
    const char **texts = malloc(n * sizeof *texts);
    uint64_t *lens = malloc(n * sizeof *lens);
    int32_t *types = malloc(n * sizeof *types);
    hr_status st = HR_OK;
    if (!texts || !lens || !types) {
        st = hr_fail(err, HR_ERR_NOMEM, "out of memory writing a %zu-token vocabulary", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        texts[i] = v->text_blob + v->text_offset[i];
        lens[i] = v->text_len[i];
        types[i] = v->types[i];
    }
    bool wpm = v->kind == HR_VOCAB_WPM;
    struct {
        const char *key;
        int32_t id;
    } ids[] = {{"tokenizer.ggml.unknown_token_id", v->unk_id},
               {wpm ? "tokenizer.ggml.cls_token_id" : "tokenizer.ggml.bos_token_id", v->bos_id},
               {wpm ? "tokenizer.ggml.seperator_token_id" : "tokenizer.ggml.eos_token_id", v->eos_id},
               {"tokenizer.ggml.padding_token_id", v->pad_id},
               {"tokenizer.ggml.eot_token_id", v->eot_id}};
    st = hr_gguf_writer_set_str(w, "tokenizer.ggml.model", model, err);
    if (st == HR_OK && v->kind == HR_VOCAB_BPE) st = hr_gguf_writer_set_str(w, "tokenizer.ggml.pre", v->pre_name, err);
    if (st == HR_OK) st = hr_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", texts, lens, n, err);
    if (st == HR_OK && v->kind == HR_VOCAB_SPM)
        st = hr_gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", v->scores, n, err);
    if (st == HR_OK) st = hr_gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, n, err);
    if (st == HR_OK && v->kind == HR_VOCAB_BPE) st = write_merges(v, w, err);
    for (size_t i = 0; i < sizeof ids / sizeof ids[0] && st == HR_OK; i++)
        if (ids[i].id >= 0) st = hr_gguf_writer_set_u32(w, ids[i].key, (uint32_t)ids[i].id, err);
    if (st == HR_OK && !wpm) st = hr_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos, err);
    if (st == HR_OK && !wpm) st = hr_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", v->add_eos, err);
    if (st == HR_OK && v->kind == HR_VOCAB_SPM)
        st = hr_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", v->add_space_prefix, err);
done:
    free(texts);
    free(lens);
    free(types);
    return st;
}
