#include "model/model.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/ggml_type.h"
#include "formats/llama2c.h"
#include "kernels/quant.h"

static const char SUPPORTED_ARCHS[] = "llama";

/* Makes a 2-D (or 1-D when rows == 1 and ne1 is 0) f32 view over llama2.c weights. */
static hr_tensor f32_view(const float *data, int64_t cols, int64_t rows, const char *name) {
    return (hr_tensor){.type = HR_TYPE_F32, .ne = {cols, rows, 1, 1}, .data = data,
                       .row_bytes = (uint64_t)cols * 4, .name = name};
}

static hr_status load_llama2c(hr_model *m, const char *tokenizer_path, hr_error *err) {
    hr_llama2c_config c;
    hr_llama2c_weights w;
    if (hr_llama2c_parse(m->bin.data, m->bin.size_bytes, &c, &w, err) != HR_OK) return err->status;
    hr_hparams *hp = &m->hp;
    snprintf(hp->arch, sizeof hp->arch, "llama");
    hp->n_ctx_train = c.seq_len;
    hp->n_embd = c.dim;
    hp->n_layer = c.n_layers;
    hp->n_ff = c.hidden_dim;
    hp->n_head = c.n_heads;
    hp->n_head_kv = c.n_kv_heads;
    hp->head_dim = c.dim / c.n_heads;
    hp->n_rot = hp->head_dim;
    hp->n_vocab = c.vocab_size;
    hp->rope_freq_base = 10000.0f; /* llama2.c's fixed RoPE base and norm epsilon */
    hp->rope_freq_scale = 1.0f;
    hp->rms_eps = 1e-5f;

    m->layers = calloc((size_t)c.n_layers, sizeof *m->layers);
    if (!m->layers) return hr_fail(err, HR_ERR_NOMEM, "out of memory for %d layers", c.n_layers);
    int64_t dim = c.dim, kv_dim = (int64_t)hp->head_dim * c.n_kv_heads, hid = c.hidden_dim;
    m->tok_embd = f32_view(w.token_embedding, dim, c.vocab_size, "token_embedding");
    m->output_norm = f32_view(w.rms_final, dim, 1, "rms_final");
    m->output = f32_view(w.wcls, dim, c.vocab_size, "wcls");
    for (int32_t l = 0; l < c.n_layers; l++) {
        hr_layer *ly = &m->layers[l];
        ly->attn_norm = f32_view(w.rms_att + l * dim, dim, 1, "rms_att");
        ly->wq = f32_view(w.wq + l * dim * dim, dim, dim, "wq");
        ly->wk = f32_view(w.wk + l * dim * kv_dim, dim, kv_dim, "wk");
        ly->wv = f32_view(w.wv + l * dim * kv_dim, dim, kv_dim, "wv");
        ly->wo = f32_view(w.wo + l * dim * dim, dim, dim, "wo");
        ly->ffn_norm = f32_view(w.rms_ffn + l * dim, dim, 1, "rms_ffn");
        ly->ffn_gate = f32_view(w.w1 + l * dim * hid, dim, hid, "w1");
        ly->ffn_down = f32_view(w.w2 + l * hid * dim, hid, dim, "w2");
        ly->ffn_up = f32_view(w.w3 + l * dim * hid, dim, hid, "w3");
    }

    char default_tok[1100];
    bool given = tokenizer_path != NULL;
    if (!given) {
        const char *slash = strrchr(m->path, '/');
        int dir_len = slash ? (int)(slash - m->path + 1) : 0;
        snprintf(default_tok, sizeof default_tok, "%.*stokenizer.bin", dir_len, m->path);
        tokenizer_path = default_tok;
    }
    hr_status st = hr_vocab_from_llama2c(&m->vocab, tokenizer_path, c.vocab_size, err);
    /* The hint is for a tokenizer looked for beside the model, not for one the user named. */
    if (st != HR_OK && !given)
        return hr_fail_wrap(err, "llama2.c checkpoints need their tokenizer.bin (pass --tokenizer)");
    return st;
}

/* Tensors of one llama layer (hr_llama_specs lists them); besides the layers a model has
 * token_embd and output_norm, and output unless tied to the embedding. */
enum { LAYER_TENSORS = 9 };

/* Reads "<arch>.<suffix>" as a positive int32. */
static hr_status arch_int(const hr_gguf *g, const char *arch, const char *suffix, int32_t *out,
                          bool required, hr_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (!required && !hr_gguf_find(g, key)) return HR_OK;
    uint32_t v;
    if (hr_gguf_get_u32(g, key, &v, err) != HR_OK)
        return err->status == HR_ERR_NOT_FOUND
                   ? hr_fail(err, HR_ERR_FORMAT, "model metadata lacks %s, which a %s model needs", key, arch)
                   : err->status;
    if (v == 0 || v > (1u << 24))
        return hr_fail(err, HR_ERR_FORMAT, "model metadata %s = %u is out of range (1..16777216)", key, v);
    *out = (int32_t)v;
    return HR_OK;
}

static hr_status arch_float(const hr_gguf *g, const char *arch, const char *suffix, float *out,
                            hr_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (!hr_gguf_find(g, key)) return HR_OK; /* optional: the default stays */
    if (hr_gguf_get_f32(g, key, out, err) != HR_OK) return err->status;
    if (!(*out > 0.0f) || *out > 1e12f)
        return hr_fail(err, HR_ERR_FORMAT, "model metadata %s = %g is out of range", key, (double)*out);
    return HR_OK;
}

/* Finds tensor name, checks its shape is {cols, rows} and its type is usable. */
static hr_status bind_tensor(const hr_gguf *g, const char *name, int64_t cols, int64_t rows,
                             bool need_f32, hr_tensor *out, hr_error *err) {
    const hr_gguf_tensor *t = hr_gguf_tensor_find(g, name);
    if (!t) return hr_fail(err, HR_ERR_FORMAT, "model lacks tensor '%s'", name);
    if (t->ne[0] != (uint64_t)cols || t->ne[1] != (uint64_t)rows || t->ne[2] != 1 || t->ne[3] != 1)
        return hr_fail(err, HR_ERR_FORMAT,
                       "tensor '%s' has shape [%llu, %llu, %llu, %llu]; the hyper-parameters imply [%lld, %lld]",
                       name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                       (unsigned long long)t->ne[2], (unsigned long long)t->ne[3], (long long)cols, (long long)rows);
    if (need_f32 ? t->type != HR_TYPE_F32 : !hr_quant_supported(t->type))
        return hr_fail(err, HR_ERR_UNSUPPORTED, "tensor '%s' has type %s, which headroom does not support here (%s)",
                       name, hr_type_name(t->type),
                       need_f32 ? "norm weights must be f32" : "weights: f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k");
    uint64_t row_bytes;
    if (!hr_type_row_bytes(t->type, t->ne[0], &row_bytes))
        return hr_fail(err, HR_ERR_FORMAT, "tensor '%s': %llu columns is not a whole number of %s blocks", name,
                       (unsigned long long)t->ne[0], hr_type_name(t->type));
    *out = (hr_tensor){.type = t->type, .ne = {cols, rows, 1, 1}, .data = t->data, .row_bytes = row_bytes,
                       .name = t->name.ptr};
    return HR_OK;
}

/* RoPE scaling the forward pass can apply: linear (positions divided by the factor) and
 * per-frequency divisors (a rope_freqs tensor, as Llama 3.1 GGUFs carry). Other kinds
 * change the rotation in ways the forward pass does not implement, so running them
 * would give wrong output without an error: they are refused. */
static hr_status rope_scaling(hr_model *m, hr_error *err) {
    const hr_gguf *g = &m->gguf;
    hr_hparams *hp = &m->hp;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", hp->arch);
    hr_gguf_str type = {.ptr = "none", .len = 4};
    if (hr_gguf_find(g, key) && hr_gguf_get_str(g, key, &type, err) != HR_OK) return err->status;
    float factor = 1.0f;
    if (hr_gguf_str_eq(type, "linear")) {
        if (arch_float(g, hp->arch, "rope.scaling.factor", &factor, err) != HR_OK) return err->status;
    } else if (!hr_gguf_str_eq(type, "none")) {
        return hr_fail(err, HR_ERR_UNSUPPORTED, "RoPE scaling '%.*s' (%s) is not supported (supported: none, linear)",
                       (int)(type.len > 32 ? 32 : type.len), type.ptr, key);
    }
    hp->rope_freq_scale = 1.0f / factor;
    if (!hr_gguf_tensor_find(g, "rope_freqs.weight")) return HR_OK;
    if (bind_tensor(g, "rope_freqs.weight", hp->n_rot / 2, 1, true, &m->rope_freqs, err) != HR_OK) return err->status;
    const float *f = m->rope_freqs.data;
    for (int32_t i = 0; i < hp->n_rot / 2; i++)
        if (!(f[i] > 0.0f) || f[i] > 1e12f)
            return hr_fail(err, HR_ERR_FORMAT, "rope_freqs.weight[%d] = %g is out of range (a positive divisor)", i,
                           (double)f[i]);
    return HR_OK;
}

static hr_status load_gguf(hr_model *m, hr_error *err) {
    const hr_gguf *g = &m->gguf;
    hr_gguf_str arch;
    if (hr_gguf_get_str(g, "general.architecture", &arch, err) != HR_OK) return err->status;
    if (!hr_gguf_str_eq(arch, "llama"))
        return hr_fail(err, HR_ERR_UNSUPPORTED, "architecture '%.*s' is not supported (supported: %s)",
                       (int)(arch.len > 64 ? 64 : arch.len), arch.ptr, SUPPORTED_ARCHS);
    hr_hparams *hp = &m->hp;
    snprintf(hp->arch, sizeof hp->arch, "%.*s", (int)arch.len, arch.ptr);
    const char *a = hp->arch;
    hp->rope_freq_base = 10000.0f;
    hp->rms_eps = 1e-5f;
    if (arch_int(g, a, "context_length", &hp->n_ctx_train, true, err) != HR_OK ||
        arch_int(g, a, "embedding_length", &hp->n_embd, true, err) != HR_OK ||
        arch_int(g, a, "block_count", &hp->n_layer, true, err) != HR_OK ||
        arch_int(g, a, "feed_forward_length", &hp->n_ff, true, err) != HR_OK ||
        arch_int(g, a, "attention.head_count", &hp->n_head, true, err) != HR_OK)
        return err->status;
    hp->n_head_kv = hp->n_head;
    if (arch_int(g, a, "attention.head_count_kv", &hp->n_head_kv, false, err) != HR_OK ||
        arch_float(g, a, "rope.freq_base", &hp->rope_freq_base, err) != HR_OK ||
        arch_float(g, a, "attention.layer_norm_rms_epsilon", &hp->rms_eps, err) != HR_OK)
        return err->status;
    if (hp->n_embd % hp->n_head != 0 || hp->n_head % hp->n_head_kv != 0)
        return hr_fail(err, HR_ERR_FORMAT, "embedding_length %d, head_count %d and head_count_kv %d do not divide evenly",
                       hp->n_embd, hp->n_head, hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;
    /* The forward pass sizes heads as embedding_length / head_count; a model whose keys or
     * values are another size (some families set key_length apart) would be computed
     * wrongly, so it is refused rather than run. */
    static const char *const head_keys[] = {"attention.key_length", "attention.value_length"};
    for (int i = 0; i < 2; i++) {
        int32_t len = hp->head_dim;
        if (arch_int(g, a, head_keys[i], &len, false, err) != HR_OK) return err->status;
        if (len != hp->head_dim)
            return hr_fail(err, HR_ERR_UNSUPPORTED,
                           "%s.%s is %d, but headroom needs heads of embedding_length / head_count = %d", a,
                           head_keys[i], len, hp->head_dim);
    }
    /* A block_count the tensors cannot back is refused before anything is sized by it. */
    uint64_t least_tensors = (uint64_t)hp->n_layer * LAYER_TENSORS + 2;
    if (least_tensors > g->n_tensors)
        return hr_fail(err, HR_ERR_FORMAT, "block_count %d needs at least %llu tensors, but the file has %llu",
                       hp->n_layer, (unsigned long long)least_tensors, (unsigned long long)g->n_tensors);
    hp->n_rot = hp->head_dim;
    if (arch_int(g, a, "rope.dimension_count", &hp->n_rot, false, err) != HR_OK) return err->status;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
        return hr_fail(err, HR_ERR_FORMAT, "rope.dimension_count %d must be even and at most the head size %d",
                       hp->n_rot, hp->head_dim);
    if (rope_scaling(m, err) != HR_OK) return err->status;
    if (hr_vocab_from_gguf(&m->vocab, g, err) != HR_OK) return hr_fail_wrap(err, "vocabulary");
    hp->n_vocab = m->vocab->n_tokens;

    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return hr_fail(err, HR_ERR_NOMEM, "out of memory for %d layers", hp->n_layer);
    /* Without output.weight the classifier is tied to the embedding. */
    bool tied = hr_gguf_tensor_find(g, "output.weight") == NULL;
    hr_tensor_spec *specs;
    size_t n_specs;
    if (hr_llama_specs(hp, tied, &specs, &n_specs, err) != HR_OK) return err->status;
    hr_status st = HR_OK;
    for (size_t i = 0; i < n_specs && st == HR_OK; i++) {
        char name[96];
        hr_tensor_spec_name(&specs[i], name, sizeof name);
        st = bind_tensor(g, name, specs[i].cols, specs[i].rows, specs[i].rows == 1, hr_model_tensor(m, &specs[i]), err);
    }
    free(specs);
    if (tied) m->output = m->tok_embd;
    return st;
}

hr_status hr_model_load(hr_model **out, const char *path, const char *tokenizer_path, hr_error *err) {
    *out = NULL;
    hr_model *m = calloc(1, sizeof *m);
    if (!m) return hr_fail(err, HR_ERR_NOMEM, "out of memory loading '%s'", path);
    snprintf(m->path, sizeof m->path, "%s", path);
    hr_mapped_file probe;
    hr_status st = hr_file_map(&probe, path, err);
    bool named = st != HR_OK; /* the file and GGUF readers' errors name the file already */
    if (st == HR_OK && probe.size_bytes >= 4 && memcmp(probe.data, "GGUF", 4) == 0) {
        hr_file_unmap(&probe);
        m->source = HR_MODEL_GGUF;
        st = hr_gguf_open(&m->gguf, path, err);
        named = st != HR_OK;
        if (st == HR_OK) st = load_gguf(m, err);
    } else if (st == HR_OK) {
        m->source = HR_MODEL_LLAMA2C;
        m->bin = probe;
        st = load_llama2c(m, tokenizer_path, err);
    }
    if (st != HR_OK) {
        if (!named) hr_fail_wrap(err, "loading '%s'", path);
        hr_model_free(m);
        return st;
    }
    *out = m;
    return HR_OK;
}

void hr_model_free(hr_model *m) {
    if (!m) return;
    hr_vocab_free(m->vocab);
    free(m->layers);
    if (m->source == HR_MODEL_GGUF) hr_gguf_close(&m->gguf);
    else hr_file_unmap(&m->bin);
    free(m);
}

hr_status hr_llama_specs(const hr_hparams *hp, bool tied, hr_tensor_spec **out, size_t *count, hr_error *err) {
    int64_t d = hp->n_embd, q_dim = (int64_t)hp->n_head * hp->head_dim;
    int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim, ff = hp->n_ff;
    const hr_tensor_spec per_layer[] = {
        {"attn_q", 0, d, q_dim},      {"attn_k", 0, d, kv_dim},  {"attn_v", 0, d, kv_dim},
        {"attn_output", 0, q_dim, d}, {"attn_norm", 0, d, 1},    {"ffn_gate", 0, d, ff},
        {"ffn_down", 0, ff, d},       {"ffn_up", 0, d, ff},      {"ffn_norm", 0, d, 1},
    };
    const size_t n_per = LAYER_TENSORS;
    _Static_assert(sizeof per_layer / sizeof per_layer[0] == LAYER_TENSORS, "LAYER_TENSORS counts per_layer");
    hr_tensor_spec *specs = malloc((3 + n_per * (size_t)hp->n_layer) * sizeof *specs);
    if (!specs) return hr_fail(err, HR_ERR_NOMEM, "out of memory listing %d layers", hp->n_layer);
    size_t n = 0;
    specs[n++] = (hr_tensor_spec){"token_embd", -1, d, hp->n_vocab};
    specs[n++] = (hr_tensor_spec){"output_norm", -1, d, 1};
    if (!tied) specs[n++] = (hr_tensor_spec){"output", -1, d, hp->n_vocab};
    for (int32_t l = 0; l < hp->n_layer; l++)
        for (size_t i = 0; i < n_per; i++) {
            specs[n] = per_layer[i];
            specs[n++].layer = l;
        }
    *out = specs;
    *count = n;
    return HR_OK;
}

void hr_tensor_spec_name(const hr_tensor_spec *spec, char *buf, size_t cap) {
    if (spec->layer < 0) snprintf(buf, cap, "%s.weight", spec->suffix);
    else snprintf(buf, cap, "blk.%d.%s.weight", spec->layer, spec->suffix);
}

hr_tensor *hr_model_tensor(hr_model *m, const hr_tensor_spec *spec) {
    static const struct {
        const char *suffix;
        size_t offset;
    } layer_fields[] = {
        {"attn_q", offsetof(hr_layer, wq)},          {"attn_k", offsetof(hr_layer, wk)},
        {"attn_v", offsetof(hr_layer, wv)},          {"attn_output", offsetof(hr_layer, wo)},
        {"attn_norm", offsetof(hr_layer, attn_norm)}, {"ffn_gate", offsetof(hr_layer, ffn_gate)},
        {"ffn_down", offsetof(hr_layer, ffn_down)},  {"ffn_up", offsetof(hr_layer, ffn_up)},
        {"ffn_norm", offsetof(hr_layer, ffn_norm)},
    };
    if (spec->layer < 0) {
        if (!strcmp(spec->suffix, "token_embd")) return &m->tok_embd;
        if (!strcmp(spec->suffix, "output_norm")) return &m->output_norm;
        if (!strcmp(spec->suffix, "output")) return &m->output;
        return NULL;
    }
    if (spec->layer >= m->hp.n_layer) return NULL;
    for (size_t i = 0; i < sizeof layer_fields / sizeof layer_fields[0]; i++)
        if (!strcmp(spec->suffix, layer_fields[i].suffix))
            return (hr_tensor *)((char *)&m->layers[spec->layer] + layer_fields[i].offset);
    return NULL;
}

uint64_t hr_model_weight_bytes(const hr_model *m) {
    hr_tensor_spec *specs;
    size_t n;
    if (hr_llama_specs(&m->hp, m->output.data == m->tok_embd.data, &specs, &n, NULL) != HR_OK) return 0;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const hr_tensor *t = hr_model_tensor((hr_model *)m, &specs[i]);
        total += t->row_bytes * (uint64_t)t->ne[1];
    }
    free(specs);
    return total;
}

hr_status hr_hparams_to_gguf(const hr_hparams *hp, hr_gguf_writer *w, hr_error *err) {
    struct {
        const char *suffix;
        int32_t value;
    } ints[] = {{"context_length", hp->n_ctx_train}, {"embedding_length", hp->n_embd},
                {"block_count", hp->n_layer},        {"feed_forward_length", hp->n_ff},
                {"attention.head_count", hp->n_head}, {"attention.head_count_kv", hp->n_head_kv},
                {"rope.dimension_count", hp->n_rot}};
    char key[128];
    if (hr_gguf_writer_set_str(w, "general.architecture", hp->arch, err) != HR_OK) return err->status;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        snprintf(key, sizeof key, "%s.%s", hp->arch, ints[i].suffix);
        if (hr_gguf_writer_set_u32(w, key, (uint32_t)ints[i].value, err) != HR_OK) return err->status;
    }
    snprintf(key, sizeof key, "%s.rope.freq_base", hp->arch);
    if (hr_gguf_writer_set_f32(w, key, hp->rope_freq_base, err) != HR_OK) return err->status;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", hp->arch);
    return hr_gguf_writer_set_f32(w, key, hp->rms_eps, err);
}
