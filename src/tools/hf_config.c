#include "tools/hf_config.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "formats/ggml_type.h"

/* A positive integer field; absent or null keeps *out unless required. */
static hr_status get_count(const json_t *obj, const char *key, bool required, int64_t *out, hr_error *err) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return required ? hr_fail(err, HR_ERR_FORMAT, "config.json lacks \"%s\", which planning needs", key) : HR_OK;
    if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > HR_SHAPE_MAX)
        return hr_fail(err, HR_ERR_FORMAT, "config.json \"%s\" must be an integer from 1 to %d", key, HR_SHAPE_MAX);
    *out = json_integer_value(v);
    return HR_OK;
}

static hr_status get_rope(const json_t *cfg, hr_rope_scaling *rope, hr_error *err) {
    const json_t *rs = json_object_get(cfg, "rope_scaling");
    if (!rs || json_is_null(rs)) return HR_OK;
    if (!json_is_object(rs))
        return hr_fail(err, HR_ERR_FORMAT, "config.json \"rope_scaling\" must be an object or null");
    const json_t *type = json_object_get(rs, "rope_type");
    if (!json_is_string(type)) type = json_object_get(rs, "type");
    if (!json_is_string(type)) return hr_fail(err, HR_ERR_FORMAT, "config.json \"rope_scaling\" has no \"rope_type\"");
    if (!strcmp(json_string_value(type), "default")) return HR_OK; /* the unscaled RoPE, spelled out */
    snprintf(rope->type, sizeof rope->type, "%s", json_string_value(type));
    const json_t *factor = json_object_get(rs, "factor");
    if (factor && (!json_is_number(factor) || !(json_number_value(factor) > 0) || json_number_value(factor) > 1e6))
        return hr_fail(err, HR_ERR_FORMAT, "config.json \"rope_scaling.factor\" must be a positive number");
    rope->factor = factor ? json_number_value(factor) : 0;
    return get_count(rs, "original_max_position_embeddings", false, &rope->original_ctx, err);
}

static uint32_t dtype_type(const json_t *cfg) {
    const char *dtype = json_string_value(json_object_get(cfg, "torch_dtype"));
    if (!dtype) dtype = json_string_value(json_object_get(cfg, "dtype"));
    if (dtype && !strcmp(dtype, "float32")) return HR_TYPE_F32;
    if (dtype && !strcmp(dtype, "float16")) return HR_TYPE_F16;
    return HR_TYPE_BF16;
}

static hr_status parse_shape(const json_t *cfg, hr_model_shape *s, hr_error *err) {
    const char *model_type = json_string_value(json_object_get(cfg, "model_type"));
    snprintf(s->arch, sizeof s->arch, "%s", model_type ? model_type : "unknown");
    snprintf(s->ctx_key, sizeof s->ctx_key, "max_position_embeddings");
    if (get_count(cfg, "num_hidden_layers", true, &s->n_layer, err) != HR_OK ||
        get_count(cfg, "hidden_size", true, &s->n_embd, err) != HR_OK ||
        get_count(cfg, "num_attention_heads", true, &s->n_head, err) != HR_OK ||
        get_count(cfg, "vocab_size", true, &s->n_vocab, err) != HR_OK ||
        get_count(cfg, "max_position_embeddings", true, &s->ctx_train, err) != HR_OK)
        return err->status;
    s->n_head_kv = s->n_head;
    s->head_dim = s->n_embd / s->n_head;
    s->n_ff = 4 * s->n_embd;
    if (get_count(cfg, "num_key_value_heads", false, &s->n_head_kv, err) != HR_OK ||
        get_count(cfg, "head_dim", false, &s->head_dim, err) != HR_OK ||
        get_count(cfg, "intermediate_size", false, &s->n_ff, err) != HR_OK ||
        get_count(cfg, "sliding_window", false, &s->sliding_window, err) != HR_OK ||
        get_rope(cfg, &s->rope, err) != HR_OK)
        return err->status;
    if (s->head_dim == 0)
        return hr_fail(err, HR_ERR_FORMAT, "config.json hidden_size %lld is smaller than num_attention_heads %lld",
                       (long long)s->n_embd, (long long)s->n_head);
    /* Qwen2 configs state a window but switch it off. */
    if (json_is_false(json_object_get(cfg, "use_sliding_window"))) s->sliding_window = 0;
    s->tied_embeddings = json_is_true(json_object_get(cfg, "tie_word_embeddings"));
    s->qkv_bias = json_is_true(json_object_get(cfg, "attention_bias")) || (model_type && !strcmp(model_type, "qwen2"));
    return HR_OK;
}

hr_status hr_hf_config_parse(const char *json, size_t len, const char *name, int weight_type, hr_model_shape *out,
                             hr_error *err) {
    memset(out, 0, sizeof *out);
    const char *slash = strrchr(name, '/');
    snprintf(out->name, sizeof out->name, "%s", slash ? slash + 1 : name);
    snprintf(out->source, sizeof out->source, "config.json");
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root)
        return hr_fail(err, HR_ERR_FORMAT, "%s: malformed JSON at line %d, column %d: %s", name, jerr.line, jerr.column,
                       jerr.text);
    hr_status st = json_is_object(root) ? HR_OK : hr_fail(err, HR_ERR_FORMAT, "not a JSON object");
    const json_t *cfg = root;
    /* Multimodal models keep the language model's shape in text_config. */
    if (st == HR_OK && !json_object_get(root, "num_hidden_layers") &&
        json_is_object(json_object_get(root, "text_config")))
        cfg = json_object_get(root, "text_config");
    if (st == HR_OK) st = parse_shape(cfg, out, err);
    if (st == HR_OK)
        st = hr_shape_estimate_weights(out, weight_type >= 0 ? (uint32_t)weight_type : dtype_type(root), err);
    json_decref(root);
    return st == HR_OK ? HR_OK : hr_fail_wrap(err, "%s", out->name);
}

hr_status hr_hf_config_load(const char *path, int weight_type, hr_model_shape *out, hr_error *err) {
    char *text;
    size_t len;
    if (hr_file_read_all(path, &text, &len, err) != HR_OK) return err->status;
    hr_status st = hr_hf_config_parse(text, len, path, weight_type, out, err);
    free(text);
    return st;
}
