/* tools/capacity — the length and memory arithmetic behind `doctor` and `plan`: a
 * model's shape (from GGUF metadata, a llama2.c header, a Hugging Face config.json or a
 * built-in preset), the effective length after RoPE scaling, KV bytes per token, weight
 * bytes, what `serve` would make of its flags (context, pool, window), and one row of
 * the capacity table.
 *
 * Owns: the preset table; hr_model_shape is plain data (no heap).
 * Must not: load weights, allocate a KV pool, talk to a server, or print. Commands
 * format these numbers. */
#ifndef HR_TOOLS_CAPACITY_H
#define HR_TOOLS_CAPACITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "engine/engine.h"
#include "formats/gguf.h"
#include "model/model.h"

/* Every count in a shape (layers, heads, sizes, vocabulary, context) is at most this, so
 * products of two stay far from overflow: real models are orders of magnitude below. */
#define HR_SHAPE_MAX (1 << 24)

/* Byte counts saturate instead of wrapping: an absurd setup (a 2^32-token context, an
 * exabyte pool) must read as too big, never wrap around to something that "fits". */
static inline uint64_t hr_sat_mul_u64(uint64_t a, uint64_t b) {
    uint64_t p;
    return __builtin_mul_overflow(a, b, &p) ? UINT64_MAX : p;
}
static inline uint64_t hr_sat_add_u64(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

typedef struct {
    char type[32];        /* "" when the model has none; else linear, yarn, llama3, dynamic, ... */
    double factor;        /* 0 when not stated */
    int64_t original_ctx; /* the context the positions were trained at; 0 when not stated */
} hr_rope_scaling;

typedef struct {
    char name[128];  /* preset name, or the file's base name */
    char source[48]; /* "GGUF metadata", "config.json", "preset", "llama2.c header" */
    char arch[32];
    int64_t n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim, n_vocab;
    int64_t ctx_train; /* the trained context */
    char ctx_key[96];  /* where ctx_train was read, e.g. "llama.context_length" */
    hr_rope_scaling rope;
    int64_t sliding_window; /* attention span in tokens; 0 when the model has none */
    bool tied_embeddings;   /* the classifier reuses the embedding matrix */
    bool qkv_bias;          /* Qwen2-style biases on Q, K and V */
    uint64_t weight_bytes;  /* exact (from tensor infos) or estimated from n_params */
    uint64_t n_params;
    bool weights_exact;   /* weight_bytes summed from the file rather than estimated */
    uint32_t weight_type; /* the element type an estimate assumed (hr_type) */
} hr_model_shape;

/* Reads the shape from GGUF metadata and tensor infos (no weight is touched): any
 * architecture that uses the standard <arch>.* keys. */
hr_status hr_shape_from_gguf(const hr_gguf *g, const char *name, hr_model_shape *out, hr_error *err);
/* The shape of a loaded model whose metadata is not GGUF (a llama2.c checkpoint). */
void hr_shape_from_hparams(const hr_hparams *hp, const char *name, uint64_t weight_bytes, hr_model_shape *out);

/* Built-in shapes of popular models (real layer counts, heads, vocabularies, contexts). */
size_t hr_preset_count(void);
/* Name and a one-line description of preset i (i < hr_preset_count()). */
const char *hr_preset_name(size_t i);
const char *hr_preset_about(size_t i);
/* Fills out with the preset; weights estimated at weight_type. HR_ERR_NOT_FOUND names
 * the known presets. */
hr_status hr_shape_preset(const char *name, uint32_t weight_type, hr_model_shape *out, hr_error *err);

/* Parameters implied by a llama-family shape (embeddings, attention, SwiGLU, norms,
 * biases when qkv_bias). */
uint64_t hr_shape_param_count(const hr_model_shape *s);
/* Sets weight_type, n_params and an estimated weight_bytes (not for exact shapes). */
hr_status hr_shape_estimate_weights(hr_model_shape *s, uint32_t weight_type, hr_error *err);

/* The longest sequence the positions support: the trained context, or with RoPE
 * scaling the original context times the factor when that is longer (llama3-style
 * scaling already states its extended context, so it is not multiplied). */
int64_t hr_shape_effective_ctx(const hr_model_shape *s);

/* KV bytes one token takes (K and V, every layer) at type: 2 x layers x kv heads x head
 * size x element size (q8_0: 34 bytes per 32 values). 0 when a head is not a whole number
 * of the type's blocks (the engine refuses such a KV type). */
uint64_t hr_shape_kv_bytes_per_token(const hr_model_shape *s, uint32_t kv_type);

/* What `headroom serve` builds from its flags, computed the way hr_engine_new does:
 * the context (--ctx-size, capped at the trained context), the pool (from --kv-mem, else
 * context x parallel rounded up to blocks) and the window (the smaller of the two). */
typedef struct {
    int64_t ctx;     /* per-sequence context after the cap */
    bool ctx_capped; /* --ctx-size was above the trained context */
    int64_t block_tokens, n_blocks, pool_tokens, window, parallel;
    uint64_t bytes_per_token, block_bytes, pool_bytes;
} hr_pool_plan;

hr_status hr_pool_plan_compute(const hr_model_shape *s, const hr_engine_config *cfg, hr_pool_plan *out, hr_error *err);

/* One row of the capacity table for a context target. */
typedef struct {
    int64_t ctx;
    uint64_t kv_bytes_per_seq;
    int64_t max_new_tokens; /* ctx - prompt tokens; negative when the prompt does not fit */
    int64_t seqs_fit;       /* full-length sequences whose KV fits in mem beside the weights */
    uint64_t total_bytes;   /* weights + KV for `parallel` full-length sequences */
    bool fits;              /* total_bytes <= mem */
} hr_capacity_row;

void hr_capacity_row_compute(const hr_model_shape *s, uint32_t kv_type, int64_t ctx, int64_t prompt_tokens,
                             int64_t parallel, uint64_t mem_bytes, hr_capacity_row *out);

/* Context targets for the table: powers of two from a quarter of the trained context
 * (at least 128, at most 4096) up to the effective context, which is always the last row. */
size_t hr_capacity_targets(const hr_model_shape *s, int64_t *out, size_t cap);

/* "llama, 32 layers, 32 heads, 8 KV heads, head size 128, hidden 4096, vocabulary 128256". */
void hr_shape_describe(const hr_model_shape *s, char *buf, size_t cap);
/* "none", or "yarn x4 of 32768 -> 131072 positions". */
void hr_rope_describe(const hr_model_shape *s, char *buf, size_t cap);

/* "1280 B at f32 = 2 x 5 layers x 4 KV heads x 8 values x 4 B" (the formula, with numbers). */
void hr_kv_formula(const hr_model_shape *s, uint32_t kv_type, char *buf, size_t cap);
/* "f32 1280 B, f16 640 B, q8_0 unusable (...)": bytes per token for every KV type. */
void hr_kv_by_type(const hr_model_shape *s, char *buf, size_t cap);
/* "8.03 billion" or "0.293 million". */
void hr_format_count(uint64_t n, char *buf, size_t cap);

/* MemAvailable from /proc/meminfo, in bytes. */
hr_status hr_mem_available(uint64_t *out, hr_error *err);

/* "1.50 GiB", "640 B": binary units, three significant digits. */
void hr_format_bytes(uint64_t bytes, char *buf, size_t cap);

#endif
