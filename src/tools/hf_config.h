/* tools/hf_config — reads a Hugging Face config.json into a model shape: layers, heads,
 * KV heads, head size, vocabulary, max_position_embeddings, rope_scaling, sliding_window,
 * tied embeddings and torch_dtype (multimodal configs: the text_config inside).
 *
 * Must not: read weights or tokenizer files; only the shape matters for planning. */
#ifndef HR_TOOLS_HF_CONFIG_H
#define HR_TOOLS_HF_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "tools/capacity.h"

/* weight_type < 0: estimate weights at the config's torch_dtype (bf16 when absent). */
hr_status hr_hf_config_parse(const char *json, size_t len, const char *name, int weight_type, hr_model_shape *out,
                             hr_error *err);
hr_status hr_hf_config_load(const char *path, int weight_type, hr_model_shape *out, hr_error *err);

#endif
