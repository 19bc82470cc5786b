/* model/model — a loaded llama-family model: hyper-parameters and limits, weight views,
 * and its vocabulary, from a GGUF file or a llama2.c checkpoint.
 *
 * Owns: the file mapping(s), the layer table and the vocabulary. Weights stay in the
 * map; nothing is copied.
 * Must not: run the network (forward.c does) or hold per-sequence state. */
#ifndef HR_MODEL_MODEL_H
#define HR_MODEL_MODEL_H

#include <stdint.h>

#include "base/error.h"
#include "base/file.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "kernels/tensor.h"
#include "tokenizer/vocab.h"

typedef struct {
    char arch[32];
    int32_t n_ctx_train; /* <arch>.context_length: the trained window */
    int32_t n_embd, n_layer, n_ff, n_head, n_head_kv, head_dim, n_rot, n_vocab;
    float rope_freq_base;
    float rope_freq_scale; /* 1 / <arch>.rope.scaling.factor for linear scaling, else 1 */
    float rms_eps;
} hr_hparams;

typedef struct {
    hr_tensor attn_norm, wq, wk, wv, wo;
    hr_tensor ffn_norm, ffn_gate, ffn_down, ffn_up;
} hr_layer;

typedef enum { HR_MODEL_GGUF, HR_MODEL_LLAMA2C } hr_model_source;

typedef struct {
    hr_model_source source;
    hr_hparams hp;
    hr_tensor tok_embd, output_norm, output;
    hr_tensor rope_freqs; /* optional (data NULL): per-frequency divisors, n_rot / 2 f32 (Llama 3.1 style) */
    hr_layer *layers;
    hr_vocab *vocab;
    hr_gguf gguf;           /* HR_MODEL_GGUF */
    hr_mapped_file bin;     /* HR_MODEL_LLAMA2C */
    char path[1024];
} hr_model;

/* One weight of a llama model: its GGUF name is "<suffix>.weight" (layer < 0) or
 * "blk.<layer>.<suffix>.weight"; rows == 1 marks a norm vector. */
typedef struct {
    const char *suffix;
    int32_t layer;
    int64_t cols, rows;
} hr_tensor_spec;

/* Every weight of a llama model with these hyper-parameters, in GGUF file order
 * (output left out when tied). *out is malloc'd; the caller frees it. */
hr_status hr_llama_specs(const hr_hparams *hp, bool tied, hr_tensor_spec **out, size_t *count, hr_error *err);
/* The model's view for a spec (NULL for an unknown suffix). */
hr_tensor *hr_model_tensor(hr_model *m, const hr_tensor_spec *spec);
void hr_tensor_spec_name(const hr_tensor_spec *spec, char *buf, size_t cap);

/* Loads path, detected by content: GGUF, or a llama2.c checkpoint whose tokenizer is
 * tokenizer_path (NULL: "tokenizer.bin" beside the checkpoint). */
hr_status hr_model_load(hr_model **out, const char *path, const char *tokenizer_path, hr_error *err);
void hr_model_free(hr_model *m);

/* Total bytes of all weights (what one decoded token reads). */
uint64_t hr_model_weight_bytes(const hr_model *m);

/* Writes general.architecture and the <arch>.* hyper-parameter keys a loader needs. */
hr_status hr_hparams_to_gguf(const hr_hparams *hp, hr_gguf_writer *w, hr_error *err);

#endif
