/* tests/unit/test_gguf — the GGUF reader and writer: a real converted model, round trips
 * through the writer, and hostile input (every truncation of the index, seeded random
 * byte flips, hand-made malicious headers). */
#include "test.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "formats/ggml_type.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"

/* ---- helpers ---- */

static const char *tmp_path(const char *name) {
    static char bufs[4][512];
    static int next;
    char *buf = bufs[next++ % 4];
    snprintf(buf, sizeof bufs[0], "%s/%s", hr_test_tmpdir(), name);
    return buf;
}

static bool str_is(hr_gguf_str s, const char *bytes, uint64_t len) {
    return s.len == len && (len == 0 || memcmp(s.ptr, bytes, len) == 0);
}

static bool value_eq(const hr_gguf_value *a, const hr_gguf_value *b) {
    if (a->type != b->type) return false;
    switch (a->type) {
    case HR_GGUF_STRING:
        return str_is(a->str, b->str.ptr, b->str.len);
    case HR_GGUF_ARRAY: {
        if (a->arr.elem_type != b->arr.elem_type || a->arr.count != b->arr.count) return false;
        unsigned size = hr_gguf_type_size(a->arr.elem_type);
        if (size)
            return a->arr.count == 0 || memcmp(a->arr.raw, b->arr.raw, a->arr.count * size) == 0;
        for (uint64_t i = 0; i < a->arr.count; i++)
            if (!value_eq(&a->arr.items[i], &b->arr.items[i])) return false;
        return true;
    }
    case HR_GGUF_FLOAT32:
    case HR_GGUF_FLOAT64:
        return a->f == b->f;
    case HR_GGUF_INT8:
    case HR_GGUF_INT16:
    case HR_GGUF_INT32:
    case HR_GGUF_INT64:
        return a->i == b->i;
    default:
        return a->u == b->u;
    }
}

static hr_gguf_value scalar_array(hr_gguf_type elem_type, const void *raw, uint64_t count) {
    return (hr_gguf_value){.type = HR_GGUF_ARRAY,
                           .arr = {.elem_type = elem_type, .count = count, .raw = raw}};
}

static hr_gguf_kv make_kv(const char *key, hr_gguf_value v) {
    return (hr_gguf_kv){.key = {key, strlen(key)}, .value = v};
}

/* Tensors of odd sizes and several types, shared by the writer-made files. */
static float f32_data[15];
static uint16_t f16_data[7];
static uint8_t q8_data[3 * 34];
static float f32_4d_data[6];

static void fill_tensor_data(void) {
    for (int i = 0; i < 15; i++) f32_data[i] = (float)i * 0.5f - 3.0f;
    for (int i = 0; i < 7; i++) f16_data[i] = (uint16_t)(0x3c00 + i);
    for (int i = 0; i < (int)sizeof q8_data; i++) q8_data[i] = (uint8_t)(i * 7 + 1);
    for (int i = 0; i < 6; i++) f32_4d_data[i] = (float)(i + 1);
}

typedef struct {
    const char *name;
    uint32_t type, n_dims;
    uint64_t ne[4];
    const void *data;
    uint64_t size_bytes;
} tensor_spec;

static const tensor_spec small_tensors[] = {
    {"f32.odd", HR_TYPE_F32, 2, {3, 5}, f32_data, sizeof f32_data},
    {"f16.odd", HR_TYPE_F16, 1, {7}, f16_data, sizeof f16_data},
    {"q8_0.rows", HR_TYPE_Q8_0, 2, {32, 3}, q8_data, sizeof q8_data},
    {"f32.4d", HR_TYPE_F32, 4, {1, 2, 3, 1}, f32_4d_data, sizeof f32_4d_data},
};
enum { N_SMALL_TENSORS = sizeof small_tensors / sizeof small_tensors[0] };

static hr_status add_small_tensors(hr_gguf_writer *w, hr_error *err) {
    fill_tensor_data();
    for (int i = 0; i < N_SMALL_TENSORS; i++) {
        const tensor_spec *s = &small_tensors[i];
        hr_status st = hr_gguf_writer_add_tensor(w, s->name, s->type, s->n_dims, s->ne, s->data,
                                                 s->size_bytes, err);
        if (st != HR_OK) return st;
    }
    return HR_OK;
}

/* A small file made by the writer, so the corruption tests run without assets too. */
static void write_small_file(hr_test_ctx *t, const char *path) {
    hr_error err;
    hr_gguf_writer *w;
    HR_CHECK_OK(hr_gguf_writer_new(&w, &err), &err);
    static const char *const toks[] = {"<s>", "</s>", "hello"};
    static const uint64_t tok_lens[] = {3, 4, 5};
    static const float scores[] = {0.0f, -1.0f, -2.5f};
    hr_status s = hr_gguf_writer_set_str(w, "general.architecture", "llama", &err);
    if (s == HR_OK) s = hr_gguf_writer_set_u32(w, "llama.context_length", 128, &err);
    if (s == HR_OK)
        s = hr_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, tok_lens, 3, &err);
    if (s == HR_OK) s = hr_gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", scores, 3, &err);
    if (s == HR_OK) s = hr_gguf_writer_set_bool(w, "test.flag", true, &err);
    if (s == HR_OK) s = add_small_tensors(w, &err);
    if (s == HR_OK) s = hr_gguf_writer_write(w, path, &err);
    hr_gguf_writer_free(w);
    HR_CHECKF(s == HR_OK, "writing %s: %s", path, err.msg);
}

static void load_file(hr_test_ctx *t, const char *path, uint8_t **out, size_t *size) {
    hr_error err;
    char *buf;
    HR_CHECK_OK(hr_file_read_all(path, &buf, size, &err), &err);
    *out = (uint8_t *)buf;
}

/* Reads every byte the index points at, so ASan sees any pointer outside the buffer. */
static unsigned touch_value(const hr_gguf_value *v) {
    unsigned sum = 0;
    if (v->type == HR_GGUF_STRING && v->str.len)
        return (unsigned char)v->str.ptr[0] + (unsigned char)v->str.ptr[v->str.len - 1];
    if (v->type != HR_GGUF_ARRAY || v->arr.count == 0) return 0;
    unsigned size = hr_gguf_type_size(v->arr.elem_type);
    uint64_t last = v->arr.count - 1;
    if (size) {
        sum += v->arr.raw[0] + v->arr.raw[last * size + size - 1];
        sum += (unsigned)hr_gguf_arr_int(v, last) + (unsigned)(hr_gguf_arr_f32(v, 0) != 0);
        return sum;
    }
    for (uint64_t i = 0; i < v->arr.count; i++) sum += touch_value(&v->arr.items[i]);
    return sum;
}

static bool within(const void *p, uint64_t len, const uint8_t *file, size_t size) {
    const uint8_t *b = p;
    return b >= file && len <= size && b - file <= (ptrdiff_t)(size - len);
}

/* Walks a successfully parsed file: every kv, every tensor's first and last data byte. */
static void walk_parsed(hr_test_ctx *t, const hr_gguf *g, const uint8_t *file, size_t size) {
    volatile unsigned sink = 0;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const hr_gguf_kv *kv = &g->kvs[i];
        HR_CHECK(within(kv->key.ptr, kv->key.len, file, size));
        sink += touch_value(&kv->value);
        char key[256];
        if (kv->key.len < sizeof key && !memchr(kv->key.ptr, 0, kv->key.len)) {
            memcpy(key, kv->key.ptr, kv->key.len);
            key[kv->key.len] = '\0';
            HR_CHECK(hr_gguf_find(g, key) == kv);
        }
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const hr_gguf_tensor *tt = &g->tensors[i];
        HR_CHECK(tt->size_bytes > 0);
        HR_CHECK(within(tt->data, tt->size_bytes, file, size));
        HR_CHECK((uint64_t)(tt->data - file) % g->alignment == 0);
        sink += tt->data[0] + tt->data[tt->size_bytes - 1];
    }
    (void)sink;
}

/* End of the last tensor's data: cutting the file anywhere before it must be refused. */
static uint64_t data_end(const hr_gguf *g) {
    uint64_t end = g->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        uint64_t e = g->data_offset + g->tensors[i].offset + g->tensors[i].size_bytes;
        if (e > end) end = e;
    }
    return end;
}

static void check_refused(hr_test_ctx *t, const uint8_t *bytes, size_t n, const char *what) {
    /* An exact-size copy, so ASan catches any read past the end. */
    uint8_t *copy = malloc(n ? n : 1);
    HR_CHECK(copy);
    memcpy(copy, bytes, n);
    hr_gguf g;
    hr_error err = {.msg = ""};
    hr_status s = hr_gguf_parse(&g, copy, n, &err);
    if (s == HR_OK) hr_gguf_close(&g);
    free(copy);
    HR_CHECKF(s != HR_OK, "%s: prefix of %zu bytes was accepted", what, n);
    HR_CHECKF(strstr(err.msg, "gguf: ") && strstr(err.msg, " at byte "),
              "%s: prefix of %zu bytes: message lacks a byte offset: '%s'", what, n, err.msg);
}

static void check_truncations(hr_test_ctx *t, const uint8_t *file, size_t size, const char *what) {
    hr_gguf g;
    hr_error err;
    HR_CHECK_OK(hr_gguf_parse(&g, file, size, &err), &err);
    uint64_t index_end = g.data_offset, end = data_end(&g);
    HR_CHECK(g.n_tensors > 0);
    hr_gguf_close(&g);
    for (uint64_t n = 0; n <= index_end; n++) {
        check_refused(t, file, n, what);
        if (t->failed) return;
    }
    const uint64_t inside[] = {index_end + 1, index_end + (end - index_end) / 2, end - 1};
    for (int i = 0; i < 3; i++) {
        check_refused(t, file, inside[i], what);
        if (t->failed) return;
    }
}

static uint64_t xorshift64(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

/* Flips 1-8 random bytes of the index (everything before the data) per mutant; each mutant must
 * parse (and then every pointer must be in range) or be refused with a located message. */
static void check_flips(hr_test_ctx *t, const uint8_t *file, size_t size, int mutants,
                        uint64_t seed, const char *what) {
    hr_gguf g;
    hr_error err;
    HR_CHECK_OK(hr_gguf_parse(&g, file, size, &err), &err);
    uint64_t region = g.data_offset;
    hr_gguf_close(&g);
    uint8_t *copy = malloc(size);
    HR_CHECK(copy);
    memcpy(copy, file, size);
    int accepted = 0, refused = 0;
    for (int m = 0; m < mutants && !t->failed; m++) {
        uint64_t pos[8];
        uint8_t mask[8];
        int flips = 1 + (int)(xorshift64(&seed) % 8);
        for (int f = 0; f < flips; f++) {
            /* Half the flips go to the last quarter of the index, where the scalar kvs and
             * the tensor infos are, so they are not drowned out by long string arrays. */
            bool tail = xorshift64(&seed) & 1;
            uint64_t r = xorshift64(&seed);
            pos[f] = tail ? region - 1 - r % (region / 4 + 1) : r % region;
            mask[f] = (uint8_t)(1 + xorshift64(&seed) % 255);
            copy[pos[f]] ^= mask[f];
        }
        err.msg[0] = '\0';
        if (hr_gguf_parse(&g, copy, size, &err) == HR_OK) {
            accepted++;
            walk_parsed(t, &g, copy, size);
            hr_gguf_close(&g);
        } else {
            refused++;
            if (!strstr(err.msg, " at byte "))
                hr_test_failf(t, __FILE__, __LINE__,
                              "%s mutant %d: message lacks a byte offset: '%s'", what, m, err.msg);
        }
        for (int f = 0; f < flips; f++) copy[pos[f]] ^= mask[f];
    }
    free(copy);
    /* Both outcomes must occur, or the mutants are not exercising the parser. */
    HR_CHECKF(accepted > 0 && refused > 0, "%s: %d accepted, %d refused", what, accepted, refused);
}

/* ---- the real model ---- */

HR_TEST(gguf_reads_stories260k) {
    HR_ASSET(path, "models/stories260K.gguf");
    hr_gguf g;
    hr_error err;
    HR_CHECK_OK(hr_gguf_open(&g, path, &err), &err);
    HR_CHECK_EQ_INT(g.version, 3);
    HR_CHECK_EQ_INT(g.n_tensors, 48);
    HR_CHECK_EQ_INT(g.n_kv, 19);
    HR_CHECK_EQ_INT(g.alignment, 32);
    HR_CHECK_EQ_INT(g.data_offset % 32, 0);

    uint32_t u32 = 0;
    HR_CHECK_OK(hr_gguf_get_u32(&g, "llama.context_length", &u32, &err), &err);
    HR_CHECK_EQ_INT(u32, 512);
    HR_CHECK_OK(hr_gguf_get_u32(&g, "llama.embedding_length", &u32, &err), &err);
    HR_CHECK_EQ_INT(u32, 64);
    int64_t i64 = 0;
    HR_CHECK_OK(hr_gguf_get_i64(&g, "tokenizer.ggml.seperator_token_id", &i64, &err), &err);
    HR_CHECK_EQ_INT(i64, 4294967295LL);
    float eps = 0;
    HR_CHECK_OK(hr_gguf_get_f32(&g, "llama.attention.layer_norm_rms_epsilon", &eps, &err), &err);
    HR_CHECK(fabsf(eps - 1e-5f) < 1e-9f);
    hr_gguf_str arch;
    HR_CHECK_OK(hr_gguf_get_str(&g, "general.architecture", &arch, &err), &err);
    HR_CHECK(hr_gguf_str_eq(arch, "llama"));

    const hr_gguf_value *tokens, *scores, *types;
    HR_CHECK_OK(hr_gguf_get_arr(&g, "tokenizer.ggml.tokens", HR_GGUF_STRING, &tokens, &err), &err);
    HR_CHECK_EQ_INT(tokens->arr.count, 512);
    HR_CHECK(hr_gguf_str_eq(tokens->arr.items[1].str, "<s>"));
    HR_CHECK(hr_gguf_str_eq(tokens->arr.items[0].str, "<unk>"));
    HR_CHECK_OK(hr_gguf_get_arr(&g, "tokenizer.ggml.scores", HR_GGUF_FLOAT32, &scores, &err), &err);
    HR_CHECK_EQ_INT(scores->arr.count, 512);
    HR_CHECK(hr_gguf_arr_f32(scores, 0) == 0.0f);
    HR_CHECK_OK(hr_gguf_get_arr(&g, "tokenizer.ggml.token_type", -1, &types, &err), &err);
    HR_CHECK_EQ_INT(hr_gguf_arr_int(types, 0), 2);
    HR_CHECK_EQ_INT(hr_gguf_arr_int(types, 1), 3);

    const hr_gguf_tensor *k = hr_gguf_tensor_find(&g, "blk.0.attn_k.weight");
    HR_CHECK(k);
    HR_CHECK_EQ_INT(k->n_dims, 2);
    HR_CHECK_EQ_INT(k->ne[0], 64);
    HR_CHECK_EQ_INT(k->ne[1], 32);
    HR_CHECK_EQ_INT(k->ne[2], 1);
    HR_CHECK_EQ_INT(k->type, HR_TYPE_F32);
    HR_CHECK_EQ_INT(k->size_bytes, 64 * 32 * 4);
    HR_CHECK(k->data == g.base + g.data_offset + k->offset);
    HR_CHECK(k->data + k->size_bytes <= g.base + g.size_bytes);
    const hr_gguf_tensor *last = &g.tensors[g.n_tensors - 1];
    HR_CHECK_EQ_INT(last->data + last->size_bytes - g.base, g.size_bytes);
    HR_CHECK(!hr_gguf_tensor_find(&g, "blk.9.attn_k.weight"));
    HR_CHECK(!hr_gguf_find(&g, "llama.context"));

    /* Getter error paths. */
    HR_CHECK_EQ_INT(hr_gguf_get_u32(&g, "llama.rope.freq_base", &u32, &err), HR_ERR_NOT_FOUND);
    HR_CHECKF(strstr(err.msg, "llama.rope.freq_base"), "message: %s", err.msg);
    HR_CHECK_EQ_INT(hr_gguf_get_str(&g, "llama.context_length", &arch, &err), HR_ERR_FORMAT);
    HR_CHECKF(strstr(err.msg, "llama.context_length") && strstr(err.msg, "u32"), "message: %s",
              err.msg);
    HR_CHECK_EQ_INT(hr_gguf_get_u32(&g, "general.name", &u32, &err), HR_ERR_FORMAT);
    HR_CHECK_EQ_INT(hr_gguf_get_bool(&g, "llama.block_count", &(bool){0}, &err), HR_ERR_FORMAT);
    HR_CHECK_EQ_INT(hr_gguf_get_f32(&g, "llama.block_count", &eps, &err), HR_ERR_FORMAT);
    HR_CHECK_EQ_INT(hr_gguf_get_arr(&g, "tokenizer.ggml.tokens", HR_GGUF_FLOAT32, &tokens, &err),
                    HR_ERR_FORMAT);
    HR_CHECKF(strstr(err.msg, "array of string"), "message: %s", err.msg);
    HR_CHECK_EQ_INT(hr_gguf_get_arr(&g, "general.name", -1, &tokens, &err), HR_ERR_FORMAT);
    hr_gguf_close(&g);
    HR_CHECK(g.kvs == NULL && g.arena_ == NULL);
}

HR_TEST(gguf_reads_vocab_only_files) {
    /* Vocabulary-only files end right after the metadata, before the aligned data start. */
    static const char *const names[] = {"baichuan", "bert-bge", "deepseek-coder", "deepseek-llm",
                                        "falcon",   "gpt-2",    "gpt-neox",       "llama-spm",
                                        "mpt",      "phi-3",    "refact",         "starcoder"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", names[i]);
        HR_ASSET(path, rel);
        hr_gguf g;
        hr_error err;
        HR_CHECK_OK(hr_gguf_open(&g, path, &err), &err);
        const hr_gguf_value *tokens;
        hr_status s = hr_gguf_get_arr(&g, "tokenizer.ggml.tokens", HR_GGUF_STRING, &tokens, &err);
        uint64_t n_tensors = g.n_tensors;
        hr_gguf_close(&g);
        HR_CHECKF(s == HR_OK, "%s: %s", names[i], err.msg);
        HR_CHECK_EQ_INT(n_tensors, 0);
    }
}

HR_TEST(gguf_open_refuses_missing_and_empty_files) {
    hr_gguf g;
    hr_error err;
    HR_CHECK_EQ_INT(hr_gguf_open(&g, tmp_path("does-not-exist.gguf"), &err), HR_ERR_IO);
    const char *empty = tmp_path("empty.gguf");
    HR_CHECK_OK(hr_file_write_all(empty, "", 0, &err), &err);
    HR_CHECK_EQ_INT(hr_gguf_open(&g, empty, &err), HR_ERR_FORMAT);
    HR_CHECKF(strstr(err.msg, empty) && strstr(err.msg, "at byte 0"), "message: %s", err.msg);
}

/* ---- writer round trips ---- */

static void round_trip(hr_test_ctx *t, uint32_t alignment) {
    hr_error err;
    hr_gguf_writer *w;
    HR_CHECK_OK(hr_gguf_writer_new(&w, &err), &err);

    static const char *const strs[] = {"plain", "nul\0inside", ""};
    static const uint64_t str_lens[] = {5, 10, 0};
    static const float f32s[] = {1.5f, -2.0f, 1e30f};
    static const int32_t i32s[] = {-1, 0, INT32_MAX};
    static const uint8_t row0[] = {1, 2, 3}, row2[] = {255};
    static const uint8_t bools[] = {0, 1, 1};
    static const uint64_t u64s[] = {0, UINT64_MAX};
    static const double f64s[] = {-0.25, 1e300};
    hr_gguf_value rows[3] = {scalar_array(HR_GGUF_UINT8, row0, 3),
                             scalar_array(HR_GGUF_UINT8, NULL, 0),
                             scalar_array(HR_GGUF_UINT8, row2, 1)};
    hr_gguf_value nested = {.type = HR_GGUF_ARRAY,
                            .arr = {.elem_type = HR_GGUF_ARRAY, .count = 3, .items = rows}};
    hr_gguf_value inner_strs[2] = {{.type = HR_GGUF_STRING, .str = {"x\0y", 3}},
                                   {.type = HR_GGUF_STRING, .str = {"", 0}}};
    hr_gguf_value str_row = {.type = HR_GGUF_ARRAY,
                             .arr = {.elem_type = HR_GGUF_STRING, .count = 2, .items = inner_strs}};
    hr_gguf_value nested_strs = {
        .type = HR_GGUF_ARRAY, .arr = {.elem_type = HR_GGUF_ARRAY, .count = 1, .items = &str_row}};
    hr_gguf_kv copied[] = {
        make_kv("t.u8", (hr_gguf_value){.type = HR_GGUF_UINT8, .u = 200}),
        make_kv("t.i8", (hr_gguf_value){.type = HR_GGUF_INT8, .i = -128}),
        make_kv("t.u16", (hr_gguf_value){.type = HR_GGUF_UINT16, .u = 65535}),
        make_kv("t.i16", (hr_gguf_value){.type = HR_GGUF_INT16, .i = -32768}),
        make_kv("t.i64", (hr_gguf_value){.type = HR_GGUF_INT64, .i = INT64_MIN}),
        make_kv("t.f64", (hr_gguf_value){.type = HR_GGUF_FLOAT64, .f = 1e300}),
        make_kv("t.bool_false", (hr_gguf_value){.type = HR_GGUF_BOOL, .u = 0}),
        make_kv("t.arr_arr_u8", nested),
        make_kv("t.arr_arr_str", nested_strs),
        make_kv("t.arr_bool", scalar_array(HR_GGUF_BOOL, bools, 3)),
        make_kv("t.arr_u64", scalar_array(HR_GGUF_UINT64, u64s, 2)),
        make_kv("t.arr_f64", scalar_array(HR_GGUF_FLOAT64, f64s, 2)),
        make_kv("t.arr_empty", scalar_array(HR_GGUF_INT16, NULL, 0)),
    };
    enum { N_COPIED = sizeof copied / sizeof copied[0] };

    hr_status s = hr_gguf_writer_set_u32(w, "t.u32", 1, &err);
    if (s == HR_OK) s = hr_gguf_writer_set_u32(w, "t.reset", 9, &err);
    if (s == HR_OK && alignment)
        s = hr_gguf_writer_set_u32(w, "general.alignment", alignment, &err);
    if (s == HR_OK) s = hr_gguf_writer_set_i32(w, "t.i32", -123456, &err);
    if (s == HR_OK) s = hr_gguf_writer_set_u64(w, "t.u64", 1ull << 60, &err);
    if (s == HR_OK) s = hr_gguf_writer_set_f32(w, "t.f32", 3.25f, &err);
    if (s == HR_OK) s = hr_gguf_writer_set_bool(w, "t.bool", true, &err);
    if (s == HR_OK) s = hr_gguf_writer_set_str(w, "t.str", "h\xc3\xa9llo", &err);
    if (s == HR_OK) s = hr_gguf_writer_set_arr_str(w, "t.arr_str", strs, str_lens, 3, &err);
    if (s == HR_OK) s = hr_gguf_writer_set_arr_f32(w, "t.arr_f32", f32s, 3, &err);
    if (s == HR_OK) s = hr_gguf_writer_set_arr_i32(w, "t.arr_i32", i32s, 3, &err);
    for (int i = 0; i < N_COPIED && s == HR_OK; i++)
        s = hr_gguf_writer_copy_kv(w, &copied[i], &err);
    /* Re-setting replaces the value (even with another type) and keeps the first position. */
    if (s == HR_OK) s = hr_gguf_writer_set_u32(w, "t.u32", 4000000000u, &err);
    if (s == HR_OK) s = hr_gguf_writer_set_str(w, "t.reset", "replaced", &err);
    if (s == HR_OK) s = add_small_tensors(w, &err);
    const char *path = tmp_path(alignment ? "round-trip-aligned.gguf" : "round-trip.gguf");
    if (s == HR_OK) s = hr_gguf_writer_write(w, path, &err);
    hr_gguf_writer_free(w);
    HR_CHECKF(s == HR_OK, "writing: %s", err.msg);

    hr_gguf g;
    HR_CHECK_OK(hr_gguf_open(&g, path, &err), &err);
    const char *const order[] = {
        "t.u32",  "t.reset", "general.alignment", "t.i32",     "t.u64",    "t.f32",
        "t.bool", "t.str",   "t.arr_str",         "t.arr_f32", "t.arr_i32"};
    uint64_t k = 0;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if (!alignment && strcmp(order[i], "general.alignment") == 0) continue;
        HR_CHECKF(k < g.n_kv && hr_gguf_str_eq(g.kvs[k].key, order[i]), "kv %d is not %s", (int)k,
                  order[i]);
        k++;
    }
    for (int i = 0; i < N_COPIED; i++, k++) {
        HR_CHECKF(k < g.n_kv && str_is(g.kvs[k].key, copied[i].key.ptr, copied[i].key.len),
                  "kv %d is not %s", (int)k, copied[i].key.ptr);
        HR_CHECKF(value_eq(&g.kvs[k].value, &copied[i].value), "value of %s differs",
                  copied[i].key.ptr);
    }
    HR_CHECK_EQ_INT(g.n_kv, k);

    uint32_t u32 = 0;
    HR_CHECK_OK(hr_gguf_get_u32(&g, "t.u32", &u32, &err), &err);
    HR_CHECK(u32 == 4000000000u);
    hr_gguf_str str;
    HR_CHECK_OK(hr_gguf_get_str(&g, "t.reset", &str, &err), &err);
    HR_CHECK(hr_gguf_str_eq(str, "replaced"));
    HR_CHECK_OK(hr_gguf_get_str(&g, "t.str", &str, &err), &err);
    HR_CHECK(hr_gguf_str_eq(str, "h\xc3\xa9llo"));
    int64_t i64 = 0;
    HR_CHECK_OK(hr_gguf_get_i64(&g, "t.i32", &i64, &err), &err);
    HR_CHECK_EQ_INT(i64, -123456);
    uint64_t u64 = 0;
    HR_CHECK_OK(hr_gguf_get_u64(&g, "t.u64", &u64, &err), &err);
    HR_CHECK(u64 == 1ull << 60);
    float f = 0;
    HR_CHECK_OK(hr_gguf_get_f32(&g, "t.f32", &f, &err), &err);
    HR_CHECK(f == 3.25f);
    bool b = false;
    HR_CHECK_OK(hr_gguf_get_bool(&g, "t.bool", &b, &err), &err);
    HR_CHECK(b);
    const hr_gguf_value *arr;
    HR_CHECK_OK(hr_gguf_get_arr(&g, "t.arr_str", HR_GGUF_STRING, &arr, &err), &err);
    HR_CHECK_EQ_INT(arr->arr.count, 3);
    for (int i = 0; i < 3; i++) HR_CHECK(str_is(arr->arr.items[i].str, strs[i], str_lens[i]));
    HR_CHECK_OK(hr_gguf_get_arr(&g, "t.arr_f32", HR_GGUF_FLOAT32, &arr, &err), &err);
    for (int i = 0; i < 3; i++) HR_CHECK(hr_gguf_arr_f32(arr, (uint64_t)i) == f32s[i]);
    HR_CHECK_OK(hr_gguf_get_arr(&g, "t.arr_i32", HR_GGUF_INT32, &arr, &err), &err);
    for (int i = 0; i < 3; i++) HR_CHECK_EQ_INT(hr_gguf_arr_int(arr, (uint64_t)i), i32s[i]);

    uint64_t want_align = alignment ? alignment : 32;
    HR_CHECK_EQ_INT(g.alignment, want_align);
    HR_CHECK_EQ_INT(g.data_offset % want_align, 0);
    HR_CHECK_EQ_INT(g.n_tensors, N_SMALL_TENSORS);
    for (int i = 0; i < N_SMALL_TENSORS; i++) {
        const tensor_spec *sp = &small_tensors[i];
        const hr_gguf_tensor *tt = &g.tensors[i];
        HR_CHECK(hr_gguf_str_eq(tt->name, sp->name));
        HR_CHECK(hr_gguf_tensor_find(&g, sp->name) == tt);
        HR_CHECK_EQ_INT(tt->type, sp->type);
        HR_CHECK_EQ_INT(tt->n_dims, sp->n_dims);
        for (uint32_t d = 0; d < 4; d++) HR_CHECK_EQ_INT(tt->ne[d], d < sp->n_dims ? sp->ne[d] : 1);
        HR_CHECK_EQ_INT(tt->size_bytes, sp->size_bytes);
        HR_CHECK(memcmp(tt->data, sp->data, sp->size_bytes) == 0);
        HR_CHECKF((uint64_t)(tt->data - g.base) % want_align == 0, "tensor %s at byte %d", sp->name,
                  (int)(tt->data - g.base));
        /* The padding up to the next aligned byte is zeros, and the file ends there. */
        uint64_t end = (uint64_t)(tt->data - g.base) + tt->size_bytes;
        for (; end % want_align; end++) HR_CHECK(g.base[end] == 0);
        if (i == N_SMALL_TENSORS - 1) HR_CHECK_EQ_INT(end, g.size_bytes);
    }
    hr_gguf_close(&g);
}

HR_TEST(gguf_writer_round_trips_every_type) { round_trip(t, 0); }

HR_TEST(gguf_writer_honours_general_alignment_64) { round_trip(t, 64); }

HR_TEST(gguf_copy_kv_round_trips_stories260k) {
    HR_ASSET(path, "models/stories260K.gguf");
    hr_gguf src, out;
    hr_error err;
    HR_CHECK_OK(hr_gguf_open(&src, path, &err), &err);
    hr_gguf_writer *w;
    hr_status s = hr_gguf_writer_new(&w, &err);
    for (uint64_t i = 0; i < src.n_kv && s == HR_OK; i++)
        s = hr_gguf_writer_copy_kv(w, &src.kvs[i], &err);
    char name[128];
    for (uint64_t i = 0; i < src.n_tensors && s == HR_OK; i++) {
        const hr_gguf_tensor *tt = &src.tensors[i];
        snprintf(name, sizeof name, "%.*s", (int)tt->name.len, tt->name.ptr);
        s = hr_gguf_writer_add_tensor(w, name, tt->type, tt->n_dims, tt->ne, tt->data,
                                      tt->size_bytes, &err);
    }
    const char *copy = tmp_path("stories-copy.gguf");
    if (s == HR_OK) s = hr_gguf_writer_write(w, copy, &err);
    hr_gguf_writer_free(w);
    if (s != HR_OK) hr_gguf_close(&src);
    HR_CHECKF(s == HR_OK, "copying: %s", err.msg);

    s = hr_gguf_open(&out, copy, &err);
    if (s != HR_OK) hr_gguf_close(&src);
    HR_CHECKF(s == HR_OK, "re-reading: %s", err.msg);
    bool same = out.n_kv == src.n_kv && out.n_tensors == src.n_tensors;
    for (uint64_t i = 0; same && i < src.n_kv; i++)
        same = str_is(out.kvs[i].key, src.kvs[i].key.ptr, src.kvs[i].key.len) &&
               value_eq(&out.kvs[i].value, &src.kvs[i].value);
    for (uint64_t i = 0; same && i < src.n_tensors; i++) {
        const hr_gguf_tensor *a = &src.tensors[i], *b = &out.tensors[i];
        same = str_is(b->name, a->name.ptr, a->name.len) && a->type == b->type &&
               a->n_dims == b->n_dims && memcmp(a->ne, b->ne, sizeof a->ne) == 0 &&
               a->size_bytes == b->size_bytes && memcmp(a->data, b->data, a->size_bytes) == 0;
    }
    /* The reference converter used the same layout, so the files should be identical. */
    bool identical =
        out.size_bytes == src.size_bytes && memcmp(out.base, src.base, (size_t)src.size_bytes) == 0;
    hr_gguf_close(&out);
    hr_gguf_close(&src);
    HR_CHECK(same);
    HR_CHECK(identical);
}

HR_TEST(gguf_integer_getters_check_range) {
    hr_error err;
    hr_gguf_writer *w;
    HR_CHECK_OK(hr_gguf_writer_new(&w, &err), &err);
    hr_gguf_kv i64_small = make_kv("v.i64_7", (hr_gguf_value){.type = HR_GGUF_INT64, .i = 7});
    hr_gguf_kv u64_max =
        make_kv("v.u64_max", (hr_gguf_value){.type = HR_GGUF_UINT64, .u = UINT64_MAX});
    hr_gguf_kv f64_big = make_kv("v.f64_big", (hr_gguf_value){.type = HR_GGUF_FLOAT64, .f = 1e300});
    hr_gguf_kv f64_half = make_kv("v.f64_half", (hr_gguf_value){.type = HR_GGUF_FLOAT64, .f = 0.5});
    hr_status s = hr_gguf_writer_set_i32(w, "v.neg", -5, &err);
    if (s == HR_OK) s = hr_gguf_writer_set_u64(w, "v.big", 1ull << 40, &err);
    if (s == HR_OK) s = hr_gguf_writer_copy_kv(w, &i64_small, &err);
    if (s == HR_OK) s = hr_gguf_writer_copy_kv(w, &u64_max, &err);
    if (s == HR_OK) s = hr_gguf_writer_copy_kv(w, &f64_big, &err);
    if (s == HR_OK) s = hr_gguf_writer_copy_kv(w, &f64_half, &err);
    const char *path = tmp_path("getters.gguf");
    if (s == HR_OK) s = hr_gguf_writer_write(w, path, &err);
    hr_gguf_writer_free(w);
    HR_CHECKF(s == HR_OK, "writing: %s", err.msg);

    hr_gguf g;
    HR_CHECK_OK(hr_gguf_open(&g, path, &err), &err);
    uint32_t u32 = 0;
    uint64_t u64 = 0;
    int64_t i64 = 0;
    float f = 0;
    hr_status r[12];
    r[0] = hr_gguf_get_u32(&g, "v.neg", &u32, &err);
    bool neg_msg = strstr(err.msg, "-5") && strstr(err.msg, "v.neg");
    r[1] = hr_gguf_get_u64(&g, "v.neg", &u64, &err);
    r[2] = hr_gguf_get_i64(&g, "v.neg", &i64, &err);
    int64_t neg = i64;
    r[3] = hr_gguf_get_u32(&g, "v.big", &u32, &err);
    r[4] = hr_gguf_get_u64(&g, "v.big", &u64, &err);
    uint64_t big = u64;
    r[5] = hr_gguf_get_u32(&g, "v.i64_7", &u32, &err);
    uint32_t seven = u32;
    r[6] = hr_gguf_get_i64(&g, "v.u64_max", &i64, &err);
    r[7] = hr_gguf_get_u64(&g, "v.u64_max", &u64, &err);
    uint64_t max = u64;
    r[8] = hr_gguf_get_f32(&g, "v.f64_big", &f, &err);
    r[9] = hr_gguf_get_f32(&g, "v.f64_half", &f, &err);
    r[10] = hr_gguf_get_u32(&g, "v.f64_half", &u32, &err);
    r[11] = hr_gguf_get_i64(&g, "v.missing", &i64, &err);
    hr_gguf_close(&g);
    static const hr_status want[12] = {HR_ERR_FORMAT, HR_ERR_FORMAT,   HR_OK, HR_ERR_FORMAT, HR_OK,
                                       HR_OK,         HR_ERR_FORMAT,   HR_OK, HR_ERR_FORMAT, HR_OK,
                                       HR_ERR_FORMAT, HR_ERR_NOT_FOUND};
    for (int i = 0; i < 12; i++)
        HR_CHECKF(r[i] == want[i], "getter %d returned %s", i, hr_status_name(r[i]));
    HR_CHECK(neg_msg);
    HR_CHECK_EQ_INT(neg, -5);
    HR_CHECK(big == 1ull << 40);
    HR_CHECK_EQ_INT(seven, 7);
    HR_CHECK(max == UINT64_MAX);
    HR_CHECK(f == 0.5f);
}

HR_TEST(gguf_writer_refuses_bad_input) {
    hr_error err;
    hr_gguf_writer *w;
    HR_CHECK_OK(hr_gguf_writer_new(&w, &err), &err);
    static const float data[64];
    const uint64_t ne_ok[] = {8, 2}, ne_q8_bad[] = {33}, ne_zero[] = {8, 0};
    hr_status r[8];
    r[0] = hr_gguf_writer_add_tensor(w, "a", HR_TYPE_F32, 2, ne_ok, data, 63, &err);
    r[1] = hr_gguf_writer_add_tensor(w, "a", HR_TYPE_F32, 2, ne_ok, data, 64, &err);
    r[2] = hr_gguf_writer_add_tensor(w, "a", HR_TYPE_F32, 2, ne_ok, data, 64, &err);
    r[3] = hr_gguf_writer_add_tensor(w, "b", HR_TYPE_Q8_0, 1, ne_q8_bad, data, 34, &err);
    r[4] = hr_gguf_writer_add_tensor(w, "c", HR_TYPE_F32, 2, ne_zero, data, 0, &err);
    r[5] = hr_gguf_writer_add_tensor(w, "d", 99, 1, ne_ok, data, 32, &err);
    r[6] = hr_gguf_writer_set_u32(w, "", 1, &err);
    r[7] = hr_gguf_writer_set_u32(w, "general.alignment", 3, &err);
    hr_status bad_align = hr_gguf_writer_write(w, tmp_path("bad-align.gguf"), &err);
    bool align_msg = strstr(err.msg, "power of two") != NULL;
    hr_status s = hr_gguf_writer_set_u64(w, "general.alignment", 64, &err);
    hr_status wrong_type =
        s == HR_OK ? hr_gguf_writer_write(w, tmp_path("bad-align.gguf"), &err) : s;

    uint8_t leaf = 1;
    hr_gguf_value levels[HR_GGUF_MAX_ARRAY_DEPTH + 1];
    levels[0] = scalar_array(HR_GGUF_UINT8, &leaf, 1);
    for (int i = 1; i <= HR_GGUF_MAX_ARRAY_DEPTH; i++)
        levels[i] = (hr_gguf_value){
            .type = HR_GGUF_ARRAY,
            .arr = {.elem_type = HR_GGUF_ARRAY, .count = 1, .items = &levels[i - 1]}};
    hr_gguf_kv ok_depth = make_kv("deep.ok", levels[HR_GGUF_MAX_ARRAY_DEPTH - 1]);
    hr_gguf_kv too_deep = make_kv("deep.bad", levels[HR_GGUF_MAX_ARRAY_DEPTH]);
    hr_status depth_ok = hr_gguf_writer_copy_kv(w, &ok_depth, &err);
    hr_status depth_bad = hr_gguf_writer_copy_kv(w, &too_deep, &err);
    hr_gguf_writer_free(w);

    static const hr_status want[8] = {HR_ERR_INVALID, HR_OK,          HR_ERR_INVALID,
                                      HR_ERR_INVALID, HR_ERR_INVALID, HR_ERR_INVALID,
                                      HR_ERR_INVALID, HR_OK};
    for (int i = 0; i < 8; i++)
        HR_CHECKF(r[i] == want[i], "call %d returned %s", i, hr_status_name(r[i]));
    HR_CHECK_EQ_INT(bad_align, HR_ERR_INVALID);
    HR_CHECK(align_msg);
    HR_CHECK_EQ_INT(wrong_type, HR_ERR_INVALID);
    HR_CHECK_EQ_INT(depth_ok, HR_OK);
    HR_CHECK_EQ_INT(depth_bad, HR_ERR_INVALID);
}

/* ---- corruption ---- */

HR_TEST(gguf_refuses_every_truncation_of_a_written_file) {
    const char *path = tmp_path("small.gguf");
    write_small_file(t, path);
    if (t->failed) return;
    uint8_t *file;
    size_t size;
    load_file(t, path, &file, &size);
    if (t->failed) return;
    check_truncations(t, file, size, "small.gguf");
    free(file);
}

HR_TEST(gguf_refuses_every_truncation_of_stories260k) {
    HR_ASSET(path, "models/stories260K.gguf");
    uint8_t *file;
    size_t size;
    load_file(t, path, &file, &size);
    if (t->failed) return;
    check_truncations(t, file, size, "stories260K.gguf");
    free(file);
}

HR_TEST(gguf_survives_random_flips_of_a_written_file) {
    const char *path = tmp_path("small-flips.gguf");
    write_small_file(t, path);
    if (t->failed) return;
    uint8_t *file;
    size_t size;
    load_file(t, path, &file, &size);
    if (t->failed) return;
    check_flips(t, file, size, 4000, 0x9e3779b97f4a7c15ull, "small.gguf");
    free(file);
}

HR_TEST(gguf_survives_random_flips_of_stories260k) {
    HR_ASSET(path, "models/stories260K.gguf");
    uint8_t *file;
    size_t size;
    load_file(t, path, &file, &size);
    if (t->failed) return;
    check_flips(t, file, size, 2000, 0x2545f4914f6cdd1dull, "stories260K.gguf");
    free(file);
}

/* A byte builder for hand-made hostile files. */
typedef struct {
    uint8_t buf[4096];
    size_t len;
    bool overflow;
} gb;

static void gb_le(gb *b, uint64_t v, unsigned n) {
    if (b->len + n > sizeof b->buf) {
        b->overflow = true;
        return;
    }
    for (unsigned i = 0; i < n; i++) b->buf[b->len++] = (uint8_t)(v >> (8 * i));
}

static void gb_raw(gb *b, const void *p, size_t n) {
    if (b->len + n > sizeof b->buf) {
        b->overflow = true;
        return;
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
}

static void gb_zeros(gb *b, size_t n) {
    for (size_t i = 0; i < n; i++) gb_le(b, 0, 1);
}

static void gb_str(gb *b, const char *s) {
    gb_le(b, strlen(s), 8);
    gb_raw(b, s, strlen(s));
}

static void gb_header(gb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    gb_raw(b, "GGUF", 4);
    gb_le(b, version, 4);
    gb_le(b, n_tensors, 8);
    gb_le(b, n_kv, 8);
}

static void gb_kv_u32(gb *b, const char *key, uint32_t v) {
    gb_str(b, key);
    gb_le(b, HR_GGUF_UINT32, 4);
    gb_le(b, v, 4);
}

static void gb_tensor(gb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                      uint64_t offset) {
    gb_str(b, name);
    gb_le(b, n_dims, 4);
    for (uint32_t d = 0; d < n_dims; d++) gb_le(b, ne[d], 8);
    gb_le(b, type, 4);
    gb_le(b, offset, 8);
}

/* Zero padding to the data section, then data_bytes of data. */
static void gb_data(gb *b, size_t data_bytes) {
    gb_zeros(b, (32 - b->len % 32) % 32);
    for (size_t i = 0; i < data_bytes; i++) gb_le(b, 0xab, 1);
}

/* A file with one tensor "t" and no kvs. */
static void gb_one_tensor(gb *b, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                          uint64_t offset, size_t data_bytes) {
    gb_header(b, 3, 1, 0);
    gb_tensor(b, "t", n_dims, ne, type, offset);
    gb_data(b, data_bytes);
}

/* A file with one kv holding nested arrays `levels` deep around one u8. */
static void gb_nested(gb *b, int levels) {
    gb_header(b, 3, 0, 1);
    gb_str(b, "deep");
    gb_le(b, HR_GGUF_ARRAY, 4);
    for (int i = 1; i < levels; i++) {
        gb_le(b, HR_GGUF_ARRAY, 4);
        gb_le(b, 1, 8);
    }
    gb_le(b, HR_GGUF_UINT8, 4);
    gb_le(b, 1, 8);
    gb_le(b, 7, 1);
}

static const uint64_t ne8[] = {8};

static void h_control(gb *b) { gb_one_tensor(b, 1, ne8, HR_TYPE_F32, 0, 32); }
static void h_nested_at_limit(gb *b) { gb_nested(b, HR_GGUF_MAX_ARRAY_DEPTH); }
static void h_bad_magic(gb *b) {
    gb_raw(b, "GGML", 4);
    gb_le(b, 3, 4);
    gb_zeros(b, 16);
}
static void h_version1(gb *b) { gb_header(b, 1, 0, 0); }
static void h_version4(gb *b) { gb_header(b, 4, 0, 0); }
static void h_big_endian(gb *b) { gb_header(b, 0x03000000u, 0, 0); }
static void h_huge_kv_count(gb *b) { gb_header(b, 3, 0, 1ull << 62); }
static void h_huge_tensor_count(gb *b) { gb_header(b, 3, 1ull << 62, 0); }
static void h_huge_key_length(gb *b) {
    gb_header(b, 3, 0, 1);
    gb_le(b, 1ull << 63, 8);
    gb_raw(b, "abcdefgh", 8);
}
static void h_huge_string_value(gb *b) {
    gb_header(b, 3, 0, 1);
    gb_str(b, "k");
    gb_le(b, HR_GGUF_STRING, 4);
    gb_le(b, UINT64_MAX, 8);
    gb_raw(b, "abc", 3);
}
static void h_huge_array(gb *b, hr_gguf_type elem) {
    gb_header(b, 3, 0, 1);
    gb_str(b, "k");
    gb_le(b, HR_GGUF_ARRAY, 4);
    gb_le(b, elem, 4);
    gb_le(b, 1ull << 60, 8);
    gb_zeros(b, 16);
}
static void h_huge_array_u8(gb *b) { h_huge_array(b, HR_GGUF_UINT8); }
static void h_huge_array_u64(gb *b) { h_huge_array(b, HR_GGUF_UINT64); }
static void h_huge_array_str(gb *b) { h_huge_array(b, HR_GGUF_STRING); }
static void h_huge_array_arr(gb *b) { h_huge_array(b, HR_GGUF_ARRAY); }
static void h_bad_value_type(gb *b) {
    gb_header(b, 3, 0, 1);
    gb_str(b, "k");
    gb_le(b, 13, 4);
    gb_le(b, 0, 8);
}
static void h_bad_elem_type(gb *b) {
    gb_header(b, 3, 0, 1);
    gb_str(b, "k");
    gb_le(b, HR_GGUF_ARRAY, 4);
    gb_le(b, 42, 4);
    gb_le(b, 0, 8);
}
static void h_bool_2(gb *b) {
    gb_header(b, 3, 0, 1);
    gb_str(b, "k");
    gb_le(b, HR_GGUF_BOOL, 4);
    gb_le(b, 2, 1);
}
static void h_bool_array_5(gb *b) {
    gb_header(b, 3, 0, 1);
    gb_str(b, "k");
    gb_le(b, HR_GGUF_ARRAY, 4);
    gb_le(b, HR_GGUF_BOOL, 4);
    gb_le(b, 3, 8);
    gb_raw(b, "\x01\x00\x05", 3);
}
static void h_nested_too_deep(gb *b) { gb_nested(b, HR_GGUF_MAX_ARRAY_DEPTH + 1); }
static void h_duplicate_key(gb *b) {
    gb_header(b, 3, 0, 3);
    gb_kv_u32(b, "a.b", 1);
    gb_kv_u32(b, "a.c", 2);
    gb_kv_u32(b, "a.b", 3);
}
/* Keys in messages are shown printable and cut at 64 characters. */
static void h_duplicate_long_key(gb *b) {
    char key[101];
    memset(key, 'k', 100);
    key[0] = '\x01';
    key[100] = '\0';
    gb_header(b, 3, 0, 2);
    gb_kv_u32(b, key, 1);
    gb_kv_u32(b, key, 2);
}
static void h_alignment(gb *b, uint32_t v) {
    gb_header(b, 3, 0, 1);
    gb_kv_u32(b, "general.alignment", v);
}
static void h_alignment_0(gb *b) { h_alignment(b, 0); }
static void h_alignment_3(gb *b) { h_alignment(b, 3); }
static void h_alignment_u64(gb *b) {
    gb_header(b, 3, 0, 1);
    gb_str(b, "general.alignment");
    gb_le(b, HR_GGUF_UINT64, 4);
    gb_le(b, 32, 8);
}
static void h_n_dims_0(gb *b) { gb_one_tensor(b, 0, ne8, HR_TYPE_F32, 0, 32); }
static void h_n_dims_5(gb *b) {
    const uint64_t ne[] = {8, 1, 1, 1, 1};
    gb_one_tensor(b, 5, ne, HR_TYPE_F32, 0, 32);
}
static void h_ne_zero(gb *b) {
    const uint64_t ne[] = {8, 0};
    gb_one_tensor(b, 2, ne, HR_TYPE_F32, 0, 32);
}
static void h_ne_product_overflow(gb *b) {
    const uint64_t ne[] = {1ull << 32, 1ull << 32};
    gb_one_tensor(b, 2, ne, HR_TYPE_F32, 0, 32);
}
static void h_size_overflow(gb *b) {
    const uint64_t ne[] = {1ull << 62};
    gb_one_tensor(b, 1, ne, HR_TYPE_F64, 0, 32);
}
static void h_type_99(gb *b) { gb_one_tensor(b, 1, ne8, 99, 0, 32); }
static void h_type_unsupported(gb *b) { gb_one_tensor(b, 1, ne8, 16, 0, 32); }
static void h_block_multiple(gb *b) {
    const uint64_t ne[] = {33};
    gb_one_tensor(b, 1, ne, HR_TYPE_Q8_0, 0, 64);
}
static void h_unaligned_offset(gb *b) { gb_one_tensor(b, 1, ne8, HR_TYPE_F32, 4, 64); }
static void h_past_eof(gb *b) { gb_one_tensor(b, 1, ne8, HR_TYPE_F32, 0, 31); }
static void h_offset_past_eof(gb *b) { gb_one_tensor(b, 1, ne8, HR_TYPE_F32, 1ull << 63, 32); }
static void h_two_tensors(gb *b, const char *second, uint64_t off2) {
    const uint64_t ne16[] = {16};
    gb_header(b, 3, 2, 0);
    gb_tensor(b, "first", 1, ne16, HR_TYPE_F32, 0);
    gb_tensor(b, second, 1, ne8, HR_TYPE_F32, off2);
    gb_data(b, 128);
}
static void h_overlap_same(gb *b) { h_two_tensors(b, "second", 0); }
static void h_overlap_inside(gb *b) { h_two_tensors(b, "second", 32); }
static void h_duplicate_tensor(gb *b) { h_two_tensors(b, "first", 64); }
static void h_two_tensors_ok(gb *b) { h_two_tensors(b, "second", 64); }
static void h_huge_tensor_name(gb *b) {
    gb_header(b, 3, 1, 0);
    gb_le(b, 1ull << 62, 8);
    gb_zeros(b, 32);
}

typedef struct {
    const char *name;
    void (*build)(gb *b);
    hr_status status; /* HR_OK for the controls */
    const char *expect;
} hostile_case;

static const hostile_case hostile_cases[] = {
    {"control", h_control, HR_OK, NULL},
    {"two tensors control", h_two_tensors_ok, HR_OK, NULL},
    {"nesting at the limit", h_nested_at_limit, HR_OK, NULL},
    {"bad magic", h_bad_magic, HR_ERR_FORMAT, "not a GGUF file"},
    {"version 1", h_version1, HR_ERR_UNSUPPORTED, "version 1"},
    {"version 4", h_version4, HR_ERR_UNSUPPORTED, "version 4"},
    {"big-endian", h_big_endian, HR_ERR_UNSUPPORTED, "big-endian"},
    {"huge kv count", h_huge_kv_count, HR_ERR_FORMAT, "kv count 4611686018427387904"},
    {"huge tensor count", h_huge_tensor_count, HR_ERR_FORMAT, "tensor count"},
    {"huge key length", h_huge_key_length, HR_ERR_FORMAT, "key length 9223372036854775808"},
    {"huge string", h_huge_string_value, HR_ERR_FORMAT, "string length"},
    {"huge u8 array", h_huge_array_u8, HR_ERR_FORMAT, "array count 1152921504606846976 of u8"},
    {"huge u64 array", h_huge_array_u64, HR_ERR_FORMAT, "array count 1152921504606846976 of u64"},
    {"huge string array", h_huge_array_str, HR_ERR_FORMAT,
     "array count 1152921504606846976 of string"},
    {"huge array array", h_huge_array_arr, HR_ERR_FORMAT,
     "array count 1152921504606846976 of array"},
    {"value type 13", h_bad_value_type, HR_ERR_FORMAT, "value type 13"},
    {"element type 42", h_bad_elem_type, HR_ERR_FORMAT, "array element type 42"},
    {"bool 2", h_bool_2, HR_ERR_FORMAT, "bool value 2"},
    {"bool array 5", h_bool_array_5, HR_ERR_FORMAT, "bool value 5"},
    {"nesting too deep", h_nested_too_deep, HR_ERR_FORMAT, "nested more than 8"},
    {"duplicate key", h_duplicate_key, HR_ERR_FORMAT, "duplicate key"},
    {"duplicate long key", h_duplicate_long_key, HR_ERR_FORMAT, "kv 1 ('?kkkkkkkkkkkk"},
    {"long key cut", h_duplicate_long_key, HR_ERR_FORMAT, "kkk...') at byte 140: duplicate"},
    {"alignment 0", h_alignment_0, HR_ERR_FORMAT, "general.alignment 0 is not"},
    {"alignment 3", h_alignment_3, HR_ERR_FORMAT, "general.alignment 3 is not"},
    {"alignment u64", h_alignment_u64, HR_ERR_FORMAT, "general.alignment has type u64"},
    {"n_dims 0", h_n_dims_0, HR_ERR_FORMAT, "n_dims 0"},
    {"n_dims 5", h_n_dims_5, HR_ERR_FORMAT, "n_dims 5"},
    {"ne 0", h_ne_zero, HR_ERR_FORMAT, "ne[1] = 0"},
    {"ne product overflow", h_ne_product_overflow, HR_ERR_FORMAT, "more than 2^63-1 elements"},
    {"size overflow", h_size_overflow, HR_ERR_FORMAT, "more than 2^64-1 bytes"},
    {"type 99", h_type_99, HR_ERR_FORMAT, "tensor type 99"},
    {"type 16", h_type_unsupported, HR_ERR_UNSUPPORTED, "tensor type 16"},
    {"q8_0 block", h_block_multiple, HR_ERR_FORMAT, "q8_0 block size"},
    {"unaligned offset", h_unaligned_offset, HR_ERR_FORMAT, "offset 4 is not a multiple"},
    {"tensor past EOF", h_past_eof, HR_ERR_FORMAT, "runs past the end of the file"},
    {"offset past EOF", h_offset_past_eof, HR_ERR_FORMAT, "runs past the end of the file"},
    {"overlap at same offset", h_overlap_same, HR_ERR_FORMAT, "overlaps tensor 0 ('first')"},
    {"overlap inside", h_overlap_inside, HR_ERR_FORMAT, "overlaps tensor 0 ('first')"},
    {"duplicate tensor", h_duplicate_tensor, HR_ERR_FORMAT, "duplicate tensor name"},
    {"huge tensor name", h_huge_tensor_name, HR_ERR_FORMAT, "name length"},
};

HR_TEST(gguf_refuses_hostile_headers) {
    for (size_t i = 0; i < sizeof hostile_cases / sizeof hostile_cases[0]; i++) {
        const hostile_case *c = &hostile_cases[i];
        gb b = {.len = 0};
        c->build(&b);
        HR_CHECKF(!b.overflow, "%s: builder overflow", c->name);
        uint8_t *copy = malloc(b.len);
        HR_CHECK(copy);
        memcpy(copy, b.buf, b.len);
        hr_gguf g;
        hr_error err = {.msg = ""};
        hr_status s = hr_gguf_parse(&g, copy, b.len, &err);
        if (s == HR_OK) {
            walk_parsed(t, &g, copy, b.len);
            hr_gguf_close(&g);
        }
        free(copy);
        if (t->failed) return;
        HR_CHECKF(s == c->status, "%s: got %s (%s), expected %s", c->name, hr_status_name(s),
                  err.msg, hr_status_name(c->status));
        if (!c->expect) continue;
        HR_CHECKF(strstr(err.msg, c->expect) && strstr(err.msg, " at byte "),
                  "%s: message '%s' lacks '%s' or a byte offset", c->name, err.msg, c->expect);
    }
}
