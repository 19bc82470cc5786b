#include "model/forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/matmul.h"

hr_status hr_forward_state_new(hr_forward_state **out, const hr_model *m, int32_t n_ctx, hr_error *err) {
    *out = NULL;
    const hr_hparams *hp = &m->hp;
    if (n_ctx <= 0)
        return hr_fail(err, HR_ERR_RANGE, "context size %d must be positive", n_ctx);
    hr_forward_state *s = calloc(1, sizeof *s);
    if (!s) return hr_fail(err, HR_ERR_NOMEM, "out of memory for the forward state");
    s->n_ctx = n_ctx;
    size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    size_t q_dim = (size_t)hp->n_head * hp->head_dim;
    size_t cache = (size_t)hp->n_layer * (size_t)n_ctx * kv_dim;
    s->x = calloc((size_t)hp->n_embd, sizeof(float));
    s->xb = calloc(q_dim > (size_t)hp->n_embd ? q_dim : (size_t)hp->n_embd, sizeof(float));
    s->xb2 = calloc((size_t)hp->n_embd, sizeof(float));
    s->q = calloc(q_dim, sizeof(float));
    s->hb = calloc((size_t)hp->n_ff, sizeof(float));
    s->hb2 = calloc((size_t)hp->n_ff, sizeof(float));
    s->att = calloc((size_t)hp->n_head * (size_t)n_ctx, sizeof(float));
    s->logits = calloc((size_t)hp->n_vocab, sizeof(float));
    s->key_cache = calloc(cache, sizeof(float));
    s->value_cache = calloc(cache, sizeof(float));
    s->rope_inv_freq = calloc((size_t)hp->n_rot / 2 + 1, sizeof(float));
    if (!s->x || !s->xb || !s->xb2 || !s->q || !s->hb || !s->hb2 || !s->att || !s->logits ||
        !s->key_cache || !s->value_cache || !s->rope_inv_freq) {
        hr_forward_state_free(s);
        return hr_fail(err, HR_ERR_NOMEM, "out of memory for a %d-token KV cache (%zu MiB)", n_ctx,
                       cache * 2 * sizeof(float) >> 20);
    }
    /* theta_i = base^(-2i / n_rot), computed in f32 exactly as the reference does. */
    for (int32_t i = 0; i < hp->n_rot / 2; i++)
        s->rope_inv_freq[i] = 1.0f / powf(hp->rope_freq_base, (float)(2 * i) / (float)hp->n_rot);
    *out = s;
    return HR_OK;
}

void hr_forward_state_free(hr_forward_state *s) {
    if (!s) return;
    free(s->x);
    free(s->xb);
    free(s->xb2);
    free(s->q);
    free(s->hb);
    free(s->hb2);
    free(s->att);
    free(s->logits);
    free(s->key_cache);
    free(s->value_cache);
    free(s->rope_inv_freq);
    free(s);
}

static void rmsnorm(float *o, const float *x, const float *w, int32_t n, float eps) {
    float ss = 0.0f;
    for (int32_t i = 0; i < n; i++) ss += x[i] * x[i];
    ss /= (float)n;
    ss += eps;
    ss = 1.0f / sqrtf(ss);
    for (int32_t i = 0; i < n; i++) o[i] = w[i] * (ss * x[i]);
}

static void softmax(float *x, int32_t n) {
    float max = x[0];
    for (int32_t i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    float sum = 0.0f;
    for (int32_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (int32_t i = 0; i < n; i++) x[i] /= sum;
}

/* Rotates adjacent pairs (GGUF llama's "normal" RoPE order) of the first n_rot
 * dimensions of each head. */
static void rope(float *vec, int32_t n_heads, int32_t head_dim, int32_t n_rot, const float *inv_freq,
                 int32_t pos) {
    for (int32_t h = 0; h < n_heads; h++) {
        float *head = vec + (size_t)h * head_dim;
        for (int32_t i = 0; i < n_rot; i += 2) {
            float angle = (float)pos * inv_freq[i / 2];
            float c = cosf(angle), s = sinf(angle);
            float v0 = head[i], v1 = head[i + 1];
            head[i] = v0 * c - v1 * s;
            head[i + 1] = v0 * s + v1 * c;
        }
    }
}

const float *hr_forward(const hr_model *m, hr_forward_state *s, int32_t token, int32_t pos) {
    const hr_hparams *hp = &m->hp;
    if (token < 0 || token >= hp->n_vocab || pos < 0 || pos >= s->n_ctx) return NULL;
    int32_t dim = hp->n_embd, head_dim = hp->head_dim;
    int32_t kv_dim = hp->n_head_kv * head_dim;
    int32_t group = hp->n_head / hp->n_head_kv; /* query heads per KV head */
    float *x = s->x;
    hr_tensor_row_f32(&m->tok_embd, token, x);

    for (int32_t l = 0; l < hp->n_layer; l++) {
        const hr_layer *ly = &m->layers[l];
        size_t layer_off = (size_t)l * (size_t)s->n_ctx * (size_t)kv_dim;
        s->k = s->key_cache + layer_off + (size_t)pos * kv_dim;
        s->v = s->value_cache + layer_off + (size_t)pos * kv_dim;

        rmsnorm(s->xb, x, ly->attn_norm.data, dim, hp->rms_eps);
        hr_matvec(&ly->wq, s->xb, s->q);
        hr_matvec(&ly->wk, s->xb, s->k);
        hr_matvec(&ly->wv, s->xb, s->v);
        rope(s->q, hp->n_head, head_dim, hp->n_rot, s->rope_inv_freq, pos);
        rope(s->k, hp->n_head_kv, head_dim, hp->n_rot, s->rope_inv_freq, pos);

        /* Divided, not multiplied by a reciprocal: the reference rounds this way. */
        float score_div = sqrtf((float)head_dim);
        for (int32_t h = 0; h < hp->n_head; h++) {
            const float *q = s->q + (size_t)h * head_dim;
            float *att = s->att + (size_t)h * s->n_ctx;
            size_t kv_off = (size_t)(h / group) * head_dim;
            for (int32_t t = 0; t <= pos; t++) {
                const float *k = s->key_cache + layer_off + (size_t)t * kv_dim + kv_off;
                float score = 0.0f;
                for (int32_t i = 0; i < head_dim; i++) score += q[i] * k[i];
                att[t] = score / score_div;
            }
            softmax(att, pos + 1);
            float *out = s->xb + (size_t)h * head_dim;
            memset(out, 0, (size_t)head_dim * sizeof(float));
            for (int32_t t = 0; t <= pos; t++) {
                const float *v = s->value_cache + layer_off + (size_t)t * kv_dim + kv_off;
                for (int32_t i = 0; i < head_dim; i++) out[i] += att[t] * v[i];
            }
        }
        hr_matvec(&ly->wo, s->xb, s->xb2);
        for (int32_t i = 0; i < dim; i++) x[i] += s->xb2[i];

        rmsnorm(s->xb, x, ly->ffn_norm.data, dim, hp->rms_eps);
        hr_matvec(&ly->ffn_gate, s->xb, s->hb);
        hr_matvec(&ly->ffn_up, s->xb, s->hb2);
        for (int32_t i = 0; i < hp->n_ff; i++) {
            float g = s->hb[i];
            s->hb[i] = g * (1.0f / (1.0f + expf(-g))) * s->hb2[i];
        }
        hr_matvec(&ly->ffn_down, s->hb, s->xb2);
        for (int32_t i = 0; i < dim; i++) x[i] += s->xb2[i];
    }
    rmsnorm(x, x, m->output_norm.data, dim, hp->rms_eps);
    hr_matvec(&m->output, x, s->logits);
    return s->logits;
}
