/* formats/llama2c — reads llama2.c checkpoints (the legacy ".bin" layout: a 7 x int32
 * header, then f32 weights in a fixed order) in place.
 *
 * Owns: nothing; the weights point into the caller's buffer (normally a memory map).
 * Must not: build a model (model/ does) or read the tokenizer (tokenizer/vocab does). */
#ifndef HR_FORMATS_LLAMA2C_H
#define HR_FORMATS_LLAMA2C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    bool shared_classifier; /* a positive vocab_size in the header */
} hr_llama2c_config;

/* Each pointer covers all layers, layer-major, rows of the output dimension. */
typedef struct {
    const float *token_embedding; /* vocab x dim */
    const float *rms_att, *rms_ffn; /* layers x dim */
    const float *wq, *wk, *wv, *wo;
    const float *w1, *w2, *w3;
    const float *rms_final;       /* dim */
    const float *wcls;            /* vocab x dim; the embedding when shared */
} hr_llama2c_weights;

/* True when data starts like a llama2.c checkpoint rather than another format. */
bool hr_llama2c_sniff(const uint8_t *data, size_t size);
hr_status hr_llama2c_parse(const uint8_t *data, size_t size, hr_llama2c_config *cfg,
                           hr_llama2c_weights *w, hr_error *err);

#endif
