#include "formats/llama2c.h"

#include <string.h>

enum { HEADER_BYTES = 7 * 4 };

bool hr_llama2c_sniff(const uint8_t *data, size_t size) {
    return size >= HEADER_BYTES && memcmp(data, "GGUF", 4) != 0;
}

hr_status hr_llama2c_parse(const uint8_t *data, size_t size, hr_llama2c_config *cfg,
                           hr_llama2c_weights *w, hr_error *err) {
    if (size < HEADER_BYTES)
        return hr_fail(err, HR_ERR_FORMAT, "llama2.c checkpoint: %zu bytes is too short for the 28-byte header", size);
    int32_t h[7];
    memcpy(h, data, sizeof h);
    static const char *const names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    /* Generous bounds that still keep every product below 2^63. */
    static const int32_t limits[7] = {65536, 262144, 1024, 1024, 1024, 1 << 22, 1 << 24};
    for (int i = 0; i < 7; i++) {
        int32_t v = i == 5 && h[i] < 0 && h[i] != INT32_MIN ? -h[i] : h[i];
        if (v <= 0 || v > limits[i])
            return hr_fail(err, HR_ERR_FORMAT, "llama2.c checkpoint: header field %s at byte %d is %d (expected 1..%d)",
                           names[i], i * 4, h[i], limits[i]);
    }
    memset(cfg, 0, sizeof *cfg);
    cfg->dim = h[0];
    cfg->hidden_dim = h[1];
    cfg->n_layers = h[2];
    cfg->n_heads = h[3];
    cfg->n_kv_heads = h[4];
    cfg->shared_classifier = h[5] > 0;
    cfg->vocab_size = h[5] > 0 ? h[5] : -h[5];
    cfg->seq_len = h[6];
    if (cfg->dim % cfg->n_heads != 0 || cfg->n_heads % cfg->n_kv_heads != 0)
        return hr_fail(err, HR_ERR_FORMAT,
                       "llama2.c checkpoint: dim %d, n_heads %d and n_kv_heads %d do not divide evenly",
                       cfg->dim, cfg->n_heads, cfg->n_kv_heads);
    if (((cfg->dim / cfg->n_heads) & 1) != 0)
        return hr_fail(err, HR_ERR_FORMAT, "llama2.c checkpoint: head size %d is odd; RoPE needs pairs",
                       cfg->dim / cfg->n_heads);

    int64_t dim = cfg->dim, hidden = cfg->hidden_dim, L = cfg->n_layers, V = cfg->vocab_size;
    int64_t head = dim / cfg->n_heads, kv_dim = head * cfg->n_kv_heads;
    /* Element counts in file order; freq_cis_real/imag are legacy RoPE tables we skip. */
    int64_t counts[] = {V * dim, L * dim, L * dim * dim, L * dim * kv_dim, L * dim * kv_dim, L * dim * dim,
                        L * dim, L * dim * hidden, L * hidden * dim, L * dim * hidden, dim,
                        cfg->seq_len * head / 2, cfg->seq_len * head / 2, cfg->shared_classifier ? 0 : V * dim};
    const float **targets[] = {&w->token_embedding, &w->rms_att, &w->wq, &w->wk, &w->wv, &w->wo,
                               &w->rms_ffn, &w->w1, &w->w2, &w->w3, &w->rms_final, NULL, NULL, &w->wcls};
    static const char *const tensor_names[] = {"token_embedding", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn",
                                               "w1", "w2", "w3", "rms_final", "freq_cis_real", "freq_cis_imag", "wcls"};
    size_t pos = HEADER_BYTES;
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        uint64_t bytes = (uint64_t)counts[i] * 4;
        if (bytes > size - pos)
            return hr_fail(err, HR_ERR_FORMAT,
                           "llama2.c checkpoint: %s at byte %zu needs %llu bytes but the file has %zu left",
                           tensor_names[i], pos, (unsigned long long)bytes, size - pos);
        if (targets[i]) *targets[i] = (const float *)(const void *)(data + pos);
        pos += bytes;
    }
    if (cfg->shared_classifier) w->wcls = w->token_embedding;
    if (pos != size)
        return hr_fail(err, HR_ERR_FORMAT,
                       "llama2.c checkpoint: %zu bytes left over after the weights (the header says %s classifier)",
                       size - pos, cfg->shared_classifier ? "a shared" : "an unshared");
    return HR_OK;
}
