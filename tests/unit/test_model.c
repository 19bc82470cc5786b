/* Model loading and export: our converter's GGUF equals the reference converter's
 * tensor by tensor, and bad metadata is refused with a sentence that says what is wrong. */
#include <stdlib.h>

#include "formats/ggml_type.h"
#include "formats/gguf_write.h"
#include "forward_steps.h"
#include "model/export.h"
#include "test.h"

static bool same_str(hr_gguf_str a, hr_gguf_str b) { return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0; }

HR_TEST(convert_matches_reference_gguf_tensor_by_tensor) {
    HR_ASSET(bin, "models/stories260K.bin");
    HR_ASSET(tok, "models/tok512.bin");
    HR_ASSET(ref_path, "models/stories260K.gguf");
    char out[512];
    snprintf(out, sizeof out, "%s/converted.gguf", hr_test_tmpdir());
    hr_error err = {0};
    hr_model *m = NULL;
    HR_CHECK_OK(hr_model_load(&m, bin, tok, &err), &err);
    hr_status st = hr_model_write_gguf(m, HR_TYPE_F32, "stories260K", out, &err);
    hr_model_free(m);
    HR_CHECK_OK(st, &err);

    hr_gguf ours, ref;
    HR_CHECK_OK(hr_gguf_open(&ours, out, &err), &err);
    if (hr_gguf_open(&ref, ref_path, &err) != HR_OK) {
        hr_gguf_close(&ours);
        HR_CHECK_OK(err.status, &err);
    }
    char problem[512] = "";
    for (uint64_t i = 0; i < ref.n_tensors && !problem[0]; i++) {
        const hr_gguf_tensor *r = &ref.tensors[i];
        /* The reference writes a shared classifier twice; ours ties it to token_embd. */
        const char *name = hr_gguf_str_eq(r->name, "output.weight") ? "token_embd.weight" : NULL;
        char buf[128];
        if (!name) {
            snprintf(buf, sizeof buf, "%.*s", (int)r->name.len, r->name.ptr);
            name = buf;
        }
        const hr_gguf_tensor *o = hr_gguf_tensor_find(&ours, name);
        if (!o) snprintf(problem, sizeof problem, "tensor %s missing", name);
        else if (o->type != r->type || o->n_dims != r->n_dims || memcmp(o->ne, r->ne, sizeof o->ne) != 0)
            snprintf(problem, sizeof problem, "tensor %s: type or shape differs", name);
        else if (o->size_bytes != r->size_bytes || memcmp(o->data, r->data, r->size_bytes) != 0)
            snprintf(problem, sizeof problem, "tensor %s: data differs", name);
    }
    if (!problem[0] && ours.n_tensors != ref.n_tensors - 1)
        snprintf(problem, sizeof problem, "%llu tensors, reference has %llu (one of them the duplicate classifier)",
                 (unsigned long long)ours.n_tensors, (unsigned long long)ref.n_tensors);
    /* Metadata the reference sets must agree (names aside). */
    static const char *const keys[] = {"general.architecture", "llama.context_length", "llama.embedding_length",
                                       "llama.feed_forward_length", "llama.attention.head_count",
                                       "llama.attention.head_count_kv", "llama.block_count",
                                       "llama.rope.dimension_count", "llama.attention.layer_norm_rms_epsilon",
                                       "tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                                       "tokenizer.ggml.token_type", "tokenizer.ggml.unknown_token_id",
                                       "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0] && !problem[0]; k++) {
        const hr_gguf_kv *a = hr_gguf_find(&ours, keys[k]), *b = hr_gguf_find(&ref, keys[k]);
        if (!a || !b) {
            snprintf(problem, sizeof problem, "key %s missing (ours %p, ref %p)", keys[k], (void *)a, (void *)b);
            break;
        }
        const hr_gguf_value *va = &a->value, *vb = &b->value;
        bool same = va->type == vb->type;
        if (same && va->type == HR_GGUF_STRING) same = same_str(va->str, vb->str);
        else if (same && va->type == HR_GGUF_ARRAY) {
            same = va->arr.count == vb->arr.count && va->arr.elem_type == vb->arr.elem_type;
            for (uint64_t i = 0; same && i < va->arr.count; i++)
                same = va->arr.elem_type == HR_GGUF_STRING ? same_str(va->arr.items[i].str, vb->arr.items[i].str)
                       : va->arr.elem_type == HR_GGUF_FLOAT32 ? hr_gguf_arr_f32(va, i) == hr_gguf_arr_f32(vb, i)
                                                              : hr_gguf_arr_int(va, i) == hr_gguf_arr_int(vb, i);
        } else if (same) {
            same = va->u == vb->u;
        }
        if (!same) snprintf(problem, sizeof problem, "key %s differs from the reference", keys[k]);
    }
    hr_gguf_close(&ours);
    hr_gguf_close(&ref);
    HR_CHECKF(!problem[0], "%s", problem);
}

/* What a variant adds: RoPE scaling (a llama.rope.scaling.type with a factor, and/or a
 * rope_freqs tensor of n_freqs values) and/or one u32 key set to a value. */
typedef struct {
    const char *type;
    float factor;
    const float *freqs;
    int64_t n_freqs;
    const char *u32_key;
    uint32_t u32_value;
} variant_extras;

/* Writes the reference model's metadata and tensors to path, with key `drop` left out,
 * general.architecture replaced by arch (when not NULL) and rope added (when not NULL). */
static hr_status write_variant(const hr_gguf *ref, const char *path, const char *drop, const char *arch,
                               const variant_extras *rope, hr_error *err) {
    hr_gguf_writer *w;
    if (hr_gguf_writer_new(&w, err) != HR_OK) return err->status;
    hr_status st = HR_OK;
    for (uint64_t i = 0; i < ref->n_kv && st == HR_OK; i++)
        if (!drop || !hr_gguf_str_eq(ref->kvs[i].key, drop)) st = hr_gguf_writer_copy_kv(w, &ref->kvs[i], err);
    if (st == HR_OK && arch) st = hr_gguf_writer_set_str(w, "general.architecture", arch, err);
    if (st == HR_OK && rope && rope->type) st = hr_gguf_writer_set_str(w, "llama.rope.scaling.type", rope->type, err);
    if (st == HR_OK && rope && rope->type) st = hr_gguf_writer_set_f32(w, "llama.rope.scaling.factor", rope->factor, err);
    if (st == HR_OK && rope && rope->u32_key) st = hr_gguf_writer_set_u32(w, rope->u32_key, rope->u32_value, err);
    if (st == HR_OK && rope && rope->freqs) {
        uint64_t ne[4] = {(uint64_t)rope->n_freqs, 1, 1, 1};
        st = hr_gguf_writer_add_tensor(w, "rope_freqs.weight", HR_TYPE_F32, 1, ne, rope->freqs,
                                       (uint64_t)rope->n_freqs * sizeof(float), err);
    }
    for (uint64_t i = 0; i < ref->n_tensors && st == HR_OK; i++) {
        const hr_gguf_tensor *t = &ref->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        st = hr_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->size_bytes, err);
    }
    if (st == HR_OK) st = hr_gguf_writer_write(w, path, err);
    hr_gguf_writer_free(w);
    return st;
}

/* Writes a variant of the reference to path; msg says why when that fails. */
static hr_status make_variant(const char *ref_path, const char *drop, const char *arch, const variant_extras *rope,
                              const char *path, char *msg, size_t cap) {
    hr_error err = {0};
    hr_gguf ref;
    if (hr_gguf_open(&ref, ref_path, &err) != HR_OK) {
        snprintf(msg, cap, "%s", err.msg);
        return HR_ERR_IO;
    }
    hr_status st = write_variant(&ref, path, drop, arch, rope, &err);
    hr_gguf_close(&ref);
    if (st != HR_OK) snprintf(msg, cap, "writing the variant failed: %s", err.msg);
    return st == HR_OK ? HR_OK : HR_ERR_IO;
}

/* Makes a variant of the reference, loads it and returns the loader's message in msg. */
static hr_status load_variant_with(const char *ref_path, const char *drop, const char *arch, const variant_extras *extra,
                                   char *msg, size_t cap) {
    char path[512];
    snprintf(path, sizeof path, "%s/variant.gguf", hr_test_tmpdir());
    if (make_variant(ref_path, drop, arch, extra, path, msg, cap) != HR_OK) return HR_ERR_IO;
    hr_error err = {0};
    hr_model *m = NULL;
    hr_status st = hr_model_load(&m, path, NULL, &err);
    hr_model_free(m);
    snprintf(msg, cap, "%s", st == HR_OK ? "" : err.msg);
    return st;
}

static hr_status load_variant(const char *ref_path, const char *drop, const char *arch, char *msg, size_t cap) {
    return load_variant_with(ref_path, drop, arch, NULL, msg, cap);
}

HR_TEST(model_refuses_unsupported_architecture_naming_the_supported_ones) {
    HR_ASSET(ref, "models/stories260K.gguf");
    char msg[600];
    hr_status st = load_variant(ref, NULL, "mamba", msg, sizeof msg);
    HR_CHECK_EQ_INT(st, HR_ERR_UNSUPPORTED);
    HR_CHECKF(strstr(msg, "'mamba' is not supported (supported: llama)") != NULL, "message: %s", msg);
}

HR_TEST(model_refuses_missing_hyperparameter_naming_the_key) {
    HR_ASSET(ref, "models/stories260K.gguf");
    static const char *const required[] = {"llama.context_length", "llama.embedding_length", "llama.block_count",
                                           "llama.feed_forward_length", "llama.attention.head_count"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        char msg[600];
        hr_status st = load_variant(ref, required[i], NULL, msg, sizeof msg);
        HR_CHECK_EQ_INT(st, HR_ERR_FORMAT);
        HR_CHECKF(strstr(msg, required[i]) && strstr(msg, "lacks"), "dropping %s gave: %s", required[i], msg);
    }
}

/* Loads the reference with key set to value; the loader's message in msg. */
static hr_status load_with_u32(const char *ref, const char *key, uint32_t value, char *msg, size_t cap) {
    variant_extras set = {.u32_key = key, .u32_value = value};
    return load_variant_with(ref, NULL, NULL, &set, msg, cap);
}

/* A block_count far beyond the file's tensors is refused before anything is sized by it
 * (2^24 layers made the loader allocate and fill 5 GB first), and key or value lengths
 * other than embedding_length / head_count (which the forward pass would ignore). */
HR_TEST(model_refuses_hyperparameters_the_tensors_cannot_back) {
    HR_ASSET(ref, "models/stories260K.gguf");
    char msg[600];
    hr_status st = load_with_u32(ref, "llama.block_count", 1u << 24, msg, sizeof msg);
    HR_CHECK_EQ_INT(st, HR_ERR_FORMAT);
    HR_CHECKF(strstr(msg, "block_count 16777216 needs at least 150994946 tensors, but the file has 48"), "message: %s",
              msg);
    st = load_with_u32(ref, "llama.attention.key_length", 16, msg, sizeof msg);
    HR_CHECK_EQ_INT(st, HR_ERR_UNSUPPORTED);
    HR_CHECKF(strstr(msg, "llama.attention.key_length is 16, but headroom needs heads of embedding_length / "
                          "head_count = 8"),
              "message: %s", msg);
    st = load_with_u32(ref, "llama.attention.value_length", 4, msg, sizeof msg);
    HR_CHECK_EQ_INT(st, HR_ERR_UNSUPPORTED);
    st = load_with_u32(ref, "llama.attention.key_length", 8, msg, sizeof msg);
    HR_CHECKF(st == HR_OK, "key_length equal to the head size: %s", msg);
}

HR_TEST(model_loads_without_optional_keys_using_defaults) {
    HR_ASSET(ref, "models/stories260K.gguf");
    char msg[600];
    /* head_count_kv defaults to head_count, which does not match these k/v tensors. */
    hr_status st = load_variant(ref, "llama.attention.head_count_kv", NULL, msg, sizeof msg);
    HR_CHECK_EQ_INT(st, HR_ERR_FORMAT);
    HR_CHECKF(strstr(msg, "blk.0.attn_k.weight") && strstr(msg, "shape"), "message: %s", msg);
    st = load_variant(ref, "llama.rope.dimension_count", NULL, msg, sizeof msg);
    HR_CHECKF(st == HR_OK, "without rope.dimension_count: %s", msg);
}

HR_TEST(model_reports_hyperparameters_of_llama2c_checkpoint) {
    HR_ASSET(bin, "models/stories260K.bin");
    HR_ASSET(tok, "models/tok512.bin");
    hr_error err = {0};
    hr_model *m = NULL;
    HR_CHECK_OK(hr_model_load(&m, bin, tok, &err), &err);
    hr_hparams hp = m->hp;
    uint64_t bytes = hr_model_weight_bytes(m);
    hr_model_free(m);
    HR_CHECK_EQ_INT(hp.n_embd, 64);
    HR_CHECK_EQ_INT(hp.n_layer, 5);
    HR_CHECK_EQ_INT(hp.n_head, 8);
    HR_CHECK_EQ_INT(hp.n_head_kv, 4);
    HR_CHECK_EQ_INT(hp.n_ff, 172);
    HR_CHECK_EQ_INT(hp.n_vocab, 512);
    HR_CHECK_EQ_INT(hp.n_ctx_train, 512);
    /* all weights but the skipped RoPE tables, with the classifier shared */
    HR_CHECK_EQ_INT(bytes, (264128 - 4096) * 4);
}

/* A checkpoint alone in its directory gets the hint to pass --tokenizer; a --tokenizer
 * the user named and that cannot be read gets its own error, without the hint. */
HR_TEST(model_llama2c_without_tokenizer_says_how_to_fix) {
    HR_ASSET(bin, "models/stories260K.bin");
    hr_error err = {0};
    char *data;
    size_t len;
    HR_CHECK_OK(hr_file_read_all(bin, &data, &len, &err), &err);
    char alone[512];
    snprintf(alone, sizeof alone, "%s/alone.bin", hr_test_tmpdir());
    FILE *f = fopen(alone, "wb");
    HR_CHECK(f && fwrite(data, 1, len, f) == len && fclose(f) == 0);
    free(data);
    hr_model *m = NULL;
    hr_status st = hr_model_load(&m, alone, NULL, &err);
    HR_CHECK(m == NULL);
    HR_CHECK_EQ_INT(st, HR_ERR_IO);
    HR_CHECKF(strstr(err.msg, "pass --tokenizer") && strstr(err.msg, "tokenizer.bin"), "message: %s", err.msg);
    st = hr_model_load(&m, bin, "/nonexistent/tok.bin", &err);
    HR_CHECK(m == NULL);
    HR_CHECK_EQ_INT(st, HR_ERR_IO);
    HR_CHECKF(strstr(err.msg, "'/nonexistent/tok.bin'") && !strstr(err.msg, "pass --tokenizer"), "message: %s",
              err.msg);
}

/* The logits of 20 steps of the reference model with rope added; false (after
 * reporting) when the variant cannot be written, loaded or run. */
static bool rope_logits(hr_test_ctx *t, const char *ref, const variant_extras *rope, const char *name, float *logits,
                        size_t *n_vocab) {
    char path[512], msg[600];
    snprintf(path, sizeof path, "%s/%s.gguf", hr_test_tmpdir(), name);
    if (make_variant(ref, NULL, NULL, rope, path, msg, sizeof msg) != HR_OK) {
        hr_test_failf(t, __FILE__, __LINE__, "%s: %s", name, msg);
        return false;
    }
    hr_error err = {0};
    hr_model *m = NULL;
    hr_status st = hr_model_load(&m, path, NULL, &err);
    int32_t tokens[20];
    for (int i = 0; i < 20; i++) tokens[i] = 1 + i * 23 % 500;
    if (st == HR_OK) st = forward_steps(m, 1, HR_TYPE_F32, tokens, 20, logits, &err);
    if (m) *n_vocab = (size_t)m->hp.n_vocab;
    hr_model_free(m);
    if (st != HR_OK) hr_test_failf(t, __FILE__, __LINE__, "%s: %s", name, err.msg);
    return st == HR_OK;
}

/* Linear scaling by 2 and frequency factors of 2 divide every angle by 2 (both exact
 * in binary), so their logits are identical, and differ from the unscaled model's. */
HR_TEST(model_rope_linear_scaling_and_frequency_factors_apply) {
    HR_ASSET(ref, "models/stories260K.gguf");
    enum { STEPS = 20, VOCAB = 512 };
    static float plain[STEPS * VOCAB], linear[STEPS * VOCAB], factors[STEPS * VOCAB];
    float twos[64];
    for (int i = 0; i < 64; i++) twos[i] = 2.0f;
    size_t n_vocab = 0;
    variant_extras lin = {.type = "linear", .factor = 2.0f}, freq = {.freqs = twos, .n_freqs = 4};
    if (!rope_logits(t, ref, NULL, "plain", plain, &n_vocab) || !rope_logits(t, ref, &lin, "linear", linear, &n_vocab) ||
        !rope_logits(t, ref, &freq, "factors", factors, &n_vocab))
        return;
    HR_CHECK_EQ_INT(n_vocab, VOCAB);
    size_t bytes = sizeof plain;
    HR_CHECKF(memcmp(linear, factors, bytes) == 0, "linear x2 and frequency factors of 2 give different logits");
    HR_CHECKF(memcmp(linear, plain, bytes) != 0, "linear scaling x2 left every logit unchanged");
    /* The first step is position 0, where no rotation happens. */
    HR_CHECKF(memcmp(linear, plain, sizeof(float) * VOCAB) == 0, "position 0 changed under scaling");
}

HR_TEST(model_refuses_rope_scaling_it_cannot_apply) {
    HR_ASSET(ref, "models/stories260K.gguf");
    char path[512], msg[600];
    snprintf(path, sizeof path, "%s/yarn.gguf", hr_test_tmpdir());
    variant_extras yarn = {.type = "yarn", .factor = 4.0f};
    HR_CHECK(make_variant(ref, NULL, NULL, &yarn, path, msg, sizeof msg) == HR_OK);
    hr_error err = {0};
    hr_model *m = NULL;
    HR_CHECK_EQ_INT(hr_model_load(&m, path, NULL, &err), HR_ERR_UNSUPPORTED);
    HR_CHECKF(strstr(err.msg, "RoPE scaling 'yarn'") && strstr(err.msg, "llama.rope.scaling.type"), "message: %s",
              err.msg);
    float bad[4] = {1.0f, 0.0f, 1.0f, 1.0f};
    variant_extras zero = {.freqs = bad, .n_freqs = 4}, short_freqs = {.freqs = bad, .n_freqs = 3};
    snprintf(path, sizeof path, "%s/freqs.gguf", hr_test_tmpdir());
    HR_CHECK(make_variant(ref, NULL, NULL, &zero, path, msg, sizeof msg) == HR_OK);
    HR_CHECK_EQ_INT(hr_model_load(&m, path, NULL, &err), HR_ERR_FORMAT);
    HR_CHECKF(strstr(err.msg, "rope_freqs.weight[1]") != NULL, "message: %s", err.msg);
    HR_CHECK(make_variant(ref, NULL, NULL, &short_freqs, path, msg, sizeof msg) == HR_OK);
    HR_CHECK_EQ_INT(hr_model_load(&m, path, NULL, &err), HR_ERR_FORMAT);
    HR_CHECKF(strstr(err.msg, "rope_freqs.weight") && strstr(err.msg, "shape"), "message: %s", err.msg);
}
