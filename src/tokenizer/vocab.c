#include "tokenizer/vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void hr_vocab_free(hr_vocab *v) {
    if (!v) return;
    free(v->text_blob);
    free(v->text_offset);
    free(v->text_len);
    free(v->scores);
    free(v->types);
    free(v->hash_slots);
    free(v);
}

/* Both loaders fill a vocabulary in the same steps: allocate the per-token arrays,
 * append each token's text, then build the lookups in vocab_finish. */
typedef struct {
    hr_vocab *v;
    size_t blob_len, blob_cap;
} vocab_builder;

static hr_status builder_start(vocab_builder *b, int64_t n_tokens, hr_error *err) {
    memset(b, 0, sizeof *b);
    if (n_tokens <= 0 || n_tokens > (1 << 24))
        return hr_fail(err, HR_ERR_FORMAT, "vocabulary size %lld is out of range (1..16777216)",
                       (long long)n_tokens);
    hr_vocab *v = calloc(1, sizeof *v);
    if (!v) return hr_fail(err, HR_ERR_NOMEM, "out of memory for the vocabulary");
    b->v = v;
    v->n_tokens = (int32_t)n_tokens;
    v->text_offset = calloc((size_t)n_tokens, sizeof *v->text_offset);
    v->text_len = calloc((size_t)n_tokens, sizeof *v->text_len);
    v->scores = calloc((size_t)n_tokens, sizeof *v->scores);
    v->types = calloc((size_t)n_tokens, sizeof *v->types);
    b->blob_cap = (size_t)n_tokens * 8 + 64;
    v->text_blob = malloc(b->blob_cap);
    v->bos_id = v->eos_id = v->unk_id = v->pad_id = v->eot_id = -1;
    if (!v->text_offset || !v->text_len || !v->scores || !v->types || !v->text_blob) {
        hr_vocab_free(v);
        b->v = NULL;
        return hr_fail(err, HR_ERR_NOMEM, "out of memory for a %lld-token vocabulary",
                       (long long)n_tokens);
    }
    return HR_OK;
}

static hr_status builder_reserve(vocab_builder *b, size_t extra, hr_error *err) {
    if (b->blob_len + extra + 1 <= b->blob_cap) return HR_OK;
    size_t cap = b->blob_cap;
    while (b->blob_len + extra + 1 > cap) cap *= 2;
    if (cap > UINT32_MAX) return hr_fail(err, HR_ERR_FORMAT, "vocabulary texts exceed 4 GiB");
    char *bigger = realloc(b->v->text_blob, cap);
    if (!bigger) return hr_fail(err, HR_ERR_NOMEM, "out of memory for vocabulary texts");
    b->v->text_blob = bigger;
    b->blob_cap = cap;
    return HR_OK;
}

/* Appends token id's text; with spaces_to_spm, ' ' becomes U+2581 as SPM stores it. */
static hr_status builder_set_text(vocab_builder *b, int32_t id, const char *text, size_t len,
                                  bool spaces_to_spm, hr_error *err) {
    size_t spaces = 0;
    if (spaces_to_spm)
        for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    if (builder_reserve(b, len + spaces * 2, err) != HR_OK) return err->status;
    hr_vocab *v = b->v;
    char *dst = v->text_blob + b->blob_len;
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
    v->text_offset[id] = (uint32_t)b->blob_len;
    v->text_len[id] = (uint32_t)n;
    b->blob_len += n + 1;
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

static hr_status vocab_finish(vocab_builder *b, hr_error *err) {
    hr_vocab *v = b->v;
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
        if (v->types[id] == HR_TOKEN_BYTE) {
            int byte = hr_vocab_byte_value(text, len);
            if (byte >= 0 && v->byte_token[byte] < 0) v->byte_token[byte] = id;
        }
    }
    return HR_OK;
}

static void check_special(hr_vocab *v, int32_t *id) {
    if (*id >= v->n_tokens) *id = -1; /* an id past the vocabulary names no token */
}

hr_status hr_vocab_from_llama2c(hr_vocab **out, const char *path, int32_t n_tokens, hr_error *err) {
    *out = NULL;
    hr_mapped_file file;
    if (hr_file_map(&file, path, err) != HR_OK) return err->status;
    vocab_builder b;
    hr_status st = builder_start(&b, n_tokens, err);
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
        st = builder_set_text(&b, id, text, (size_t)len, type == HR_TOKEN_NORMAL, err);
        b.v->scores[id] = score;
        b.v->types[id] = type;
    }
    hr_file_unmap(&file);
    if (st == HR_OK) {
        hr_vocab *v = b.v;
        v->kind = HR_VOCAB_SPM;
        v->unk_id = 0;
        v->bos_id = n_tokens > 1 ? 1 : -1;
        v->eos_id = n_tokens > 2 ? 2 : -1;
        v->add_bos = true;
        v->add_space_prefix = true;
        st = vocab_finish(&b, err);
    }
    if (st != HR_OK) {
        hr_vocab_free(b.v);
        return st;
    }
    *out = b.v;
    return HR_OK;
}

hr_status hr_vocab_synthesize(hr_vocab **out, int32_t n_tokens, hr_error *err) {
    *out = NULL;
    if (n_tokens < 259)
        return hr_fail(err, HR_ERR_RANGE, "a synthetic vocabulary needs at least 259 tokens (3 special + 256 bytes), not %d",
                       n_tokens);
    vocab_builder b;
    if (builder_start(&b, n_tokens, err) != HR_OK) return err->status;
    hr_vocab *v = b.v;
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
        st = builder_set_text(&b, id, text, len, true, err);
    }
    v->kind = HR_VOCAB_SPM;
    v->unk_id = 0;
    v->bos_id = 1;
    v->eos_id = 2;
    v->add_bos = true;
    v->add_space_prefix = true;
    if (st == HR_OK) st = vocab_finish(&b, err);
    if (st != HR_OK) {
        hr_vocab_free(v);
        return st;
    }
    *out = v;
    return HR_OK;
}

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

hr_status hr_vocab_from_gguf(hr_vocab **out, const hr_gguf *g, hr_error *err) {
    *out = NULL;
    hr_gguf_str model;
    if (hr_gguf_get_str(g, "tokenizer.ggml.model", &model, err) != HR_OK) return err->status;
    if (!hr_gguf_str_eq(model, "llama"))
        return hr_fail(err, HR_ERR_UNSUPPORTED,
                       "tokenizer model '%.*s' is not supported yet (supported: llama)",
                       (int)(model.len > 64 ? 64 : model.len), model.ptr);
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
    vocab_builder b;
    if (builder_start(&b, (int64_t)(n > INT32_MAX ? (uint64_t)INT32_MAX + 1 : n), err) != HR_OK) return err->status;
    hr_vocab *v = b.v;
    hr_status st = HR_OK;
    for (uint64_t i = 0; i < n && st == HR_OK; i++) {
        hr_gguf_str s = tokens->arr.items[i].str;
        st = builder_set_text(&b, (int32_t)i, s.ptr, (size_t)s.len, false, err);
        v->scores[i] = scores ? hr_gguf_arr_f32(scores, i) : 0.0f;
        int64_t type = types ? hr_gguf_arr_int(types, i) : HR_TOKEN_NORMAL;
        v->types[i] = (type >= 0 && type <= HR_TOKEN_BYTE) ? (uint8_t)type : HR_TOKEN_UNDEFINED;
    }
    v->kind = HR_VOCAB_SPM;
    v->add_bos = true;
    v->add_space_prefix = true;
    if (st == HR_OK) st = read_optional_id(g, "tokenizer.ggml.bos_token_id", &v->bos_id, err);
    if (st == HR_OK) st = read_optional_id(g, "tokenizer.ggml.eos_token_id", &v->eos_id, err);
    if (st == HR_OK) st = read_optional_id(g, "tokenizer.ggml.unknown_token_id", &v->unk_id, err);
    if (st == HR_OK) st = read_optional_id(g, "tokenizer.ggml.padding_token_id", &v->pad_id, err);
    if (st == HR_OK) st = read_optional_id(g, "tokenizer.ggml.eot_token_id", &v->eot_id, err);
    if (st == HR_OK) st = read_optional_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos, err);
    if (st == HR_OK) st = read_optional_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos, err);
    if (st == HR_OK) st = read_optional_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err);
    if (st == HR_OK) {
        check_special(v, &v->bos_id);
        check_special(v, &v->eos_id);
        check_special(v, &v->unk_id);
        check_special(v, &v->pad_id);
        check_special(v, &v->eot_id);
        st = vocab_finish(&b, err);
    }
    if (st != HR_OK) {
        hr_vocab_free(v);
        return st;
    }
    *out = v;
    return HR_OK;
}

hr_status hr_vocab_to_gguf(const hr_vocab *v, hr_gguf_writer *w, hr_error *err) {
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
    struct {
        const char *key;
        int32_t id;
    } ids[] = {{"tokenizer.ggml.unknown_token_id", v->unk_id}, {"tokenizer.ggml.bos_token_id", v->bos_id},
               {"tokenizer.ggml.eos_token_id", v->eos_id},     {"tokenizer.ggml.padding_token_id", v->pad_id},
               {"tokenizer.ggml.eot_token_id", v->eot_id}};
    st = hr_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", err);
    if (st == HR_OK) st = hr_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", texts, lens, n, err);
    if (st == HR_OK) st = hr_gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", v->scores, n, err);
    if (st == HR_OK) st = hr_gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, n, err);
    for (size_t i = 0; i < sizeof ids / sizeof ids[0] && st == HR_OK; i++)
        if (ids[i].id >= 0) st = hr_gguf_writer_set_u32(w, ids[i].key, (uint32_t)ids[i].id, err);
    if (st == HR_OK) st = hr_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos, err);
    if (st == HR_OK) st = hr_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", v->add_eos, err);
    if (st == HR_OK) st = hr_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", v->add_space_prefix, err);
done:
    free(texts);
    free(lens);
    free(types);
    return st;
}
