#include "tools/capacity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/ggml_type.h"
#include "kv/kv_cache.h"

/* ---- presets: the shapes published in each model's config.json ---- */

typedef struct {
    const char *name, *about, *arch;
    int64_t n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim, n_vocab, ctx;
    const char *rope_type;
    double rope_factor;
    int64_t rope_original, sliding_window;
    bool tied, qkv_bias;
} preset;

static const preset PRESETS[] = {
    {"llama-2-7b", "Llama 2 7B: 4K context, full multi-head attention", "llama", 32, 4096, 11008, 32, 32, 128, 32000,
     4096, NULL, 0, 0, 0, false, false},
    {"llama-3-8b", "Llama 3 8B: 8K context, GQA 32/8", "llama", 32, 4096, 14336, 32, 8, 128, 128256, 8192, NULL, 0, 0,
     0, false, false},
    {"llama-3.1-8b", "Llama 3.1 8B: 128K context by llama3 RoPE scaling x8 of 8K", "llama", 32, 4096, 14336, 32, 8, 128,
     128256, 131072, "llama3", 8.0, 8192, 0, false, false},
    {"llama-3.2-1b", "Llama 3.2 1B: 128K context by llama3 RoPE scaling x32 of 8K, tied embeddings", "llama", 16, 2048,
     8192, 32, 8, 64, 128256, 131072, "llama3", 32.0, 8192, 0, true, false},
    {"mistral-7b", "Mistral 7B v0.1: 32K positions, 4K sliding window", "llama", 32, 4096, 14336, 32, 8, 128, 32000,
     32768, NULL, 0, 0, 4096, false, false},
    {"mistral-7b-v0.3", "Mistral 7B v0.3: 32K context, no sliding window, 32768 vocabulary", "llama", 32, 4096, 14336,
     32, 8, 128, 32768, 32768, NULL, 0, 0, 0, false, false},
    {"qwen2.5-7b", "Qwen2.5 7B Instruct: 32K context (YaRN x4 reaches 128K), GQA 28/4, QKV bias", "qwen2", 28, 3584,
     18944, 28, 4, 128, 152064, 32768, NULL, 0, 0, 0, false, true},
    {"tinyllama-1.1b", "TinyLlama 1.1B: 2K context, GQA 32/4", "llama", 22, 2048, 5632, 32, 4, 64, 32000, 2048, NULL, 0,
     0, 0, false, false},
};

enum { N_PRESETS = sizeof PRESETS / sizeof PRESETS[0] };

size_t hr_preset_count(void) { return N_PRESETS; }
const char *hr_preset_name(size_t i) { return i < N_PRESETS ? PRESETS[i].name : NULL; }
const char *hr_preset_about(size_t i) { return i < N_PRESETS ? PRESETS[i].about : NULL; }

hr_status hr_shape_preset(const char *name, uint32_t weight_type, hr_model_shape *out, hr_error *err) {
    const preset *p = NULL;
    for (size_t i = 0; i < N_PRESETS && !p; i++)
        if (!strcmp(PRESETS[i].name, name)) p = &PRESETS[i];
    if (!p) {
        char known[512] = "";
        for (size_t i = 0; i < N_PRESETS; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", PRESETS[i].name);
        return hr_fail(err, HR_ERR_NOT_FOUND, "unknown preset '%s' (known: %s)", name, known);
    }
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", p->name);
    snprintf(out->source, sizeof out->source, "preset");
    snprintf(out->arch, sizeof out->arch, "%s", p->arch);
    snprintf(out->ctx_key, sizeof out->ctx_key, "max_position_embeddings");
    out->n_layer = p->n_layer;
    out->n_embd = p->n_embd;
    out->n_ff = p->n_ff;
    out->n_head = p->n_head;
    out->n_head_kv = p->n_head_kv;
    out->head_dim = p->head_dim;
    out->n_vocab = p->n_vocab;
    out->ctx_train = p->ctx;
    if (p->rope_type) snprintf(out->rope.type, sizeof out->rope.type, "%s", p->rope_type);
    out->rope.factor = p->rope_factor;
    out->rope.original_ctx = p->rope_original;
    out->sliding_window = p->sliding_window;
    out->tied_embeddings = p->tied;
    out->qkv_bias = p->qkv_bias;
    return hr_shape_estimate_weights(out, weight_type, err);
}

/* ---- shapes from files ---- */

static void base_name(const char *path, char *out, size_t cap) {
    const char *slash = strrchr(path, '/');
    snprintf(out, cap, "%s", slash ? slash + 1 : path);
}

/* "<arch>.<suffix>" as a positive integer; absent keys leave *out alone unless required. */
static hr_status meta_int(const hr_gguf *g, const char *arch, const char *suffix, bool required, int64_t *out,
                          hr_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (!hr_gguf_find(g, key)) {
        if (required) return hr_fail(err, HR_ERR_FORMAT, "GGUF metadata lacks %s", key);
        return HR_OK;
    }
    uint64_t v;
    if (hr_gguf_get_u64(g, key, &v, err) != HR_OK) return err->status;
    if (v == 0 || v > HR_SHAPE_MAX)
        return hr_fail(err, HR_ERR_FORMAT, "GGUF metadata %s = %llu is out of range (1..%d)", key,
                       (unsigned long long)v, HR_SHAPE_MAX);
    *out = (int64_t)v;
    return HR_OK;
}

static hr_status meta_rope(const hr_gguf *g, const char *arch, hr_rope_scaling *rope, hr_error *err) {
    char key[128];
    hr_gguf_str type;
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (hr_gguf_find(g, key)) {
        if (hr_gguf_get_str(g, key, &type, err) != HR_OK) return err->status;
        if (!hr_gguf_str_eq(type, "none"))
            snprintf(rope->type, sizeof rope->type, "%.*s", (int)(type.len < 31 ? type.len : 31), type.ptr);
    }
    float factor;
    snprintf(key, sizeof key, "%s.rope.scaling.factor", arch);
    if (hr_gguf_find(g, key)) {
        if (hr_gguf_get_f32(g, key, &factor, err) != HR_OK) return err->status;
        rope->factor = factor;
    }
    /* Older files state linear scaling as a bare factor. */
    snprintf(key, sizeof key, "%s.rope.scale_linear", arch);
    if (!rope->type[0] && hr_gguf_find(g, key)) {
        if (hr_gguf_get_f32(g, key, &factor, err) != HR_OK) return err->status;
        snprintf(rope->type, sizeof rope->type, "linear");
        rope->factor = factor;
    }
    if (rope->type[0] && !(rope->factor > 0 && rope->factor < 1e6))
        return hr_fail(err, HR_ERR_FORMAT, "GGUF metadata: RoPE scaling '%s' has factor %g", rope->type, rope->factor);
    return meta_int(g, arch, "rope.scaling.original_context_length", false, &rope->original_ctx, err);
}

hr_status hr_shape_from_gguf(const hr_gguf *g, const char *name, hr_model_shape *out, hr_error *err) {
    memset(out, 0, sizeof *out);
    base_name(name, out->name, sizeof out->name);
    snprintf(out->source, sizeof out->source, "GGUF metadata");
    hr_gguf_str arch;
    if (hr_gguf_get_str(g, "general.architecture", &arch, err) != HR_OK) return err->status;
    if (arch.len == 0 || arch.len >= sizeof out->arch)
        return hr_fail(err, HR_ERR_FORMAT, "general.architecture has %llu bytes", (unsigned long long)arch.len);
    snprintf(out->arch, sizeof out->arch, "%.*s", (int)arch.len, arch.ptr);
    const char *a = out->arch;
    snprintf(out->ctx_key, sizeof out->ctx_key, "%s.context_length", a);
    if (meta_int(g, a, "context_length", true, &out->ctx_train, err) != HR_OK ||
        meta_int(g, a, "block_count", true, &out->n_layer, err) != HR_OK ||
        meta_int(g, a, "embedding_length", true, &out->n_embd, err) != HR_OK ||
        meta_int(g, a, "attention.head_count", true, &out->n_head, err) != HR_OK ||
        meta_int(g, a, "feed_forward_length", false, &out->n_ff, err) != HR_OK)
        return err->status;
    out->n_head_kv = out->n_head;
    out->head_dim = out->n_embd / out->n_head;
    if (meta_int(g, a, "attention.head_count_kv", false, &out->n_head_kv, err) != HR_OK ||
        meta_int(g, a, "attention.key_length", false, &out->head_dim, err) != HR_OK ||
        meta_int(g, a, "attention.sliding_window", false, &out->sliding_window, err) != HR_OK ||
        meta_int(g, a, "vocab_size", false, &out->n_vocab, err) != HR_OK || meta_rope(g, a, &out->rope, err) != HR_OK)
        return err->status;
    if (out->head_dim == 0)
        return hr_fail(err, HR_ERR_FORMAT, "%s.embedding_length %lld is smaller than the head count %lld", a,
                       (long long)out->n_embd, (long long)out->n_head);
    const hr_gguf_value *tokens;
    if (!out->n_vocab && hr_gguf_get_arr(g, "tokenizer.ggml.tokens", HR_GGUF_STRING, &tokens, err) == HR_OK)
        out->n_vocab = (int64_t)tokens->arr.count;
    out->tied_embeddings = hr_gguf_tensor_find(g, "output.weight") == NULL;
    out->weights_exact = true;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const hr_gguf_tensor *t = &g->tensors[i];
        out->weight_bytes += t->size_bytes;
        out->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    }
    return HR_OK;
}

void hr_shape_from_hparams(const hr_hparams *hp, const char *name, uint64_t weight_bytes, hr_model_shape *out) {
    memset(out, 0, sizeof *out);
    base_name(name, out->name, sizeof out->name);
    snprintf(out->source, sizeof out->source, "llama2.c header");
    snprintf(out->arch, sizeof out->arch, "%s", hp->arch);
    snprintf(out->ctx_key, sizeof out->ctx_key, "seq_len");
    out->n_layer = hp->n_layer;
    out->n_embd = hp->n_embd;
    out->n_ff = hp->n_ff;
    out->n_head = hp->n_head;
    out->n_head_kv = hp->n_head_kv;
    out->head_dim = hp->head_dim;
    out->n_vocab = hp->n_vocab;
    out->ctx_train = hp->n_ctx_train;
    out->weight_bytes = weight_bytes;
    out->weights_exact = true;
    out->n_params = hr_shape_param_count(out);
}

/* ---- arithmetic ---- */

uint64_t hr_shape_param_count(const hr_model_shape *s) {
    uint64_t d = (uint64_t)s->n_embd, q = (uint64_t)s->n_head * (uint64_t)s->head_dim;
    uint64_t kv = (uint64_t)s->n_head_kv * (uint64_t)s->head_dim, ff = (uint64_t)s->n_ff, v = (uint64_t)s->n_vocab;
    uint64_t layer = hr_sat_add_u64(hr_sat_add_u64(hr_sat_mul_u64(2 * d, q), hr_sat_mul_u64(2 * d, kv)),
                                    hr_sat_add_u64(hr_sat_mul_u64(3 * d, ff), 2 * d + (s->qkv_bias ? q + 2 * kv : 0)));
    return hr_sat_add_u64(hr_sat_add_u64(hr_sat_mul_u64(v * d, s->tied_embeddings ? 1 : 2),
                                         hr_sat_mul_u64((uint64_t)s->n_layer, layer)),
                          d);
}

hr_status hr_shape_estimate_weights(hr_model_shape *s, uint32_t weight_type, hr_error *err) {
    const hr_type_info *ti = hr_type_get(weight_type);
    if (!ti) return hr_fail(err, HR_ERR_INVALID, "weight type %u is not a tensor type", weight_type);
    s->weight_type = weight_type;
    s->n_params = hr_shape_param_count(s);
    s->weight_bytes = hr_sat_mul_u64(s->n_params / ti->block_elems + (s->n_params % ti->block_elems != 0), ti->block_bytes);
    s->weights_exact = false;
    return HR_OK;
}

int64_t hr_shape_effective_ctx(const hr_model_shape *s) {
    if (!s->rope.type[0] || !strcmp(s->rope.type, "llama3") || s->rope.factor <= 1.0) return s->ctx_train;
    int64_t original = s->rope.original_ctx > 0 ? s->rope.original_ctx : s->ctx_train;
    int64_t scaled = (int64_t)((double)original * s->rope.factor);
    return scaled > s->ctx_train ? scaled : s->ctx_train;
}

uint64_t hr_shape_kv_bytes_per_token(const hr_model_shape *s, uint32_t kv_type) {
    uint64_t head_bytes;
    if (s->n_layer <= 0 || s->n_head_kv <= 0 || s->head_dim <= 0) return 0;
    /* Attention reads K and V one head at a time, so a head must be whole blocks (and a
     * row of heads is then as many bytes as the engine's hr_kv_bytes_per_token counts). */
    if (!hr_type_row_bytes(kv_type, (uint64_t)s->head_dim, &head_bytes)) return 0;
    return hr_sat_mul_u64(hr_sat_mul_u64(head_bytes, (uint64_t)s->n_head_kv), 2 * (uint64_t)s->n_layer);
}

hr_status hr_pool_plan_compute(const hr_model_shape *s, const hr_engine_config *cfg, hr_pool_plan *out, hr_error *err) {
    memset(out, 0, sizeof *out);
    out->ctx = cfg->ctx_size;
    if (out->ctx <= 0 || out->ctx > s->ctx_train) {
        out->ctx_capped = out->ctx > s->ctx_train;
        out->ctx = s->ctx_train;
    }
    out->parallel = cfg->parallel > 0 ? cfg->parallel : 1;
    out->block_tokens = cfg->block_tokens > 0 ? cfg->block_tokens : 16;
    out->bytes_per_token = hr_shape_kv_bytes_per_token(s, cfg->kv_type);
    if (out->bytes_per_token == 0)
        return hr_fail(err, HR_ERR_UNSUPPORTED,
                       "KV type %s needs the head size (%lld) to be a multiple of its block of "
                       "%u values",
                       hr_type_name(cfg->kv_type), (long long)s->head_dim,
                       hr_type_get(cfg->kv_type) ? hr_type_get(cfg->kv_type)->block_elems : 0);
    out->block_bytes = hr_sat_mul_u64(out->bytes_per_token, (uint64_t)out->block_tokens);
    uint64_t blocks = cfg->kv_mem_bytes ? cfg->kv_mem_bytes / out->block_bytes
                                        : hr_sat_mul_u64((uint64_t)((out->ctx + out->block_tokens - 1) / out->block_tokens),
                                                         (uint64_t)out->parallel);
    /* A count of blocks no pool could hold: far past any memory, and still exact in int64. */
    out->n_blocks = blocks > (uint64_t)INT32_MAX ? INT32_MAX : (int64_t)blocks;
    if (out->n_blocks == 0)
        return hr_fail(
            err, HR_ERR_RANGE, "--kv-mem %llu bytes holds no block (one block of %lld tokens takes %llu bytes)",
            (unsigned long long)cfg->kv_mem_bytes, (long long)out->block_tokens, (unsigned long long)out->block_bytes);
    out->pool_tokens = out->n_blocks * out->block_tokens;
    out->pool_bytes = hr_sat_mul_u64((uint64_t)out->n_blocks, out->block_bytes);
    out->window = out->pool_tokens < out->ctx ? out->pool_tokens : out->ctx;
    return HR_OK;
}

void hr_capacity_row_compute(const hr_model_shape *s, uint32_t kv_type, int64_t ctx, int64_t prompt_tokens,
                             int64_t parallel, uint64_t mem_bytes, hr_capacity_row *out) {
    out->ctx = ctx;
    out->kv_bytes_per_seq = hr_sat_mul_u64(hr_shape_kv_bytes_per_token(s, kv_type), (uint64_t)ctx);
    out->max_new_tokens = ctx - prompt_tokens;
    uint64_t spare = mem_bytes > s->weight_bytes ? mem_bytes - s->weight_bytes : 0;
    out->seqs_fit = out->kv_bytes_per_seq ? (int64_t)(spare / out->kv_bytes_per_seq) : 0;
    out->total_bytes = hr_sat_add_u64(s->weight_bytes, hr_sat_mul_u64(out->kv_bytes_per_seq, (uint64_t)parallel));
    out->fits = out->total_bytes <= mem_bytes;
}

size_t hr_capacity_targets(const hr_model_shape *s, int64_t *out, size_t cap) {
    int64_t top = hr_shape_effective_ctx(s);
    int64_t start = s->ctx_train / 4 < 4096 ? s->ctx_train / 4 : 4096, t = 128;
    while (t < start) t *= 2;
    size_t n = 0;
    for (; t < top && n + 1 < cap; t *= 2) out[n++] = t;
    if (n < cap) out[n++] = top;
    return n;
}

void hr_shape_describe(const hr_model_shape *s, char *buf, size_t cap) {
    snprintf(buf, cap, "%s, %lld layers, %lld heads, %lld KV heads, head size %lld, hidden %lld, vocabulary %lld",
             s->arch, (long long)s->n_layer, (long long)s->n_head, (long long)s->n_head_kv, (long long)s->head_dim,
             (long long)s->n_embd, (long long)s->n_vocab);
}

void hr_rope_describe(const hr_model_shape *s, char *buf, size_t cap) {
    if (!s->rope.type[0]) {
        snprintf(buf, cap, "none");
        return;
    }
    char original[48] = "";
    if (s->rope.original_ctx > 0) snprintf(original, sizeof original, " of %lld", (long long)s->rope.original_ctx);
    snprintf(buf, cap, "%s x%g%s -> %lld positions", s->rope.type, s->rope.factor, original,
             (long long)hr_shape_effective_ctx(s));
}

void hr_kv_formula(const hr_model_shape *s, uint32_t kv_type, char *buf, size_t cap) {
    const hr_type_info *ti = hr_type_get(kv_type);
    char elem[32] = "?";
    if (ti && ti->block_elems == 1) snprintf(elem, sizeof elem, "%u B", ti->block_bytes);
    else if (ti) snprintf(elem, sizeof elem, "%u/%u B", ti->block_bytes, ti->block_elems);
    snprintf(buf, cap, "%llu B at %s = 2 x %lld layers x %lld KV heads x %lld values x %s",
             (unsigned long long)hr_shape_kv_bytes_per_token(s, kv_type), hr_type_name(kv_type), (long long)s->n_layer,
             (long long)s->n_head_kv, (long long)s->head_dim, elem);
}

void hr_kv_by_type(const hr_model_shape *s, char *buf, size_t cap) {
    static const uint32_t types[] = {HR_TYPE_F32, HR_TYPE_F16, HR_TYPE_Q8_0};
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof types / sizeof types[0] && n < cap; i++) {
        uint64_t per = hr_shape_kv_bytes_per_token(s, types[i]);
        int k = per ? snprintf(buf + n, cap - n, "%s%s %llu B", i ? ", " : "", hr_type_name(types[i]),
                               (unsigned long long)per)
                    : snprintf(buf + n, cap - n, "%s%s unusable (a head of %lld values is not whole %u-value blocks)",
                               i ? ", " : "", hr_type_name(types[i]), (long long)s->head_dim,
                               hr_type_get(types[i])->block_elems);
        n += k > 0 ? (size_t)k : 0;
    }
}

void hr_format_count(uint64_t n, char *buf, size_t cap) {
    bool billions = n >= 1000000000;
    snprintf(buf, cap, "%.3g %s", (double)n / (billions ? 1e9 : 1e6), billions ? "billion" : "million");
}

hr_status hr_mem_available(uint64_t *out, hr_error *err) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return hr_fail(err, HR_ERR_IO, "cannot read /proc/meminfo to learn the available memory; pass --mem");
    char line[256];
    unsigned long long kib = 0;
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) found = sscanf(line, "MemAvailable: %llu kB", &kib) == 1;
    fclose(f);
    if (!found) return hr_fail(err, HR_ERR_FORMAT, "/proc/meminfo has no MemAvailable line; pass --mem");
    *out = (uint64_t)kib * 1024;
    return HR_OK;
}

void hr_format_bytes(uint64_t bytes, char *buf, size_t cap) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (bytes < 1024) {
        snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
        return;
    }
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, v >= 100 ? "%.0f %s" : v >= 10 ? "%.1f %s" : "%.2f %s", v, units[u]);
}
