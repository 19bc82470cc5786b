#include "engine/sampler.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

hr_sampling hr_sampling_default(void) {
    return (hr_sampling){.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                         .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0};
}

hr_status hr_sampling_validate(const hr_sampling *p, hr_error *err) {
    if (!(p->temperature >= 0.0f && p->temperature <= 100.0f))
        return hr_fail(err, HR_ERR_RANGE, "temperature %g is out of range (0..100; 0 is greedy)", (double)p->temperature);
    if (!(p->top_p >= 0.0f && p->top_p <= 1.0f))
        return hr_fail(err, HR_ERR_RANGE, "top_p %g is out of range (0..1)", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return hr_fail(err, HR_ERR_RANGE, "min_p %g is out of range (0..1)", (double)p->min_p);
    if (p->top_k < 0) return hr_fail(err, HR_ERR_RANGE, "top_k %d must not be negative (0 is off)", p->top_k);
    if (!(p->repeat_penalty > 0.0f && p->repeat_penalty <= 10.0f))
        return hr_fail(err, HR_ERR_RANGE, "repeat_penalty %g is out of range (above 0, at most 10; 1 is off)",
                       (double)p->repeat_penalty);
    if (p->repeat_last_n < 0)
        return hr_fail(err, HR_ERR_RANGE, "repeat_last_n %d must not be negative", p->repeat_last_n);
    return HR_OK;
}

hr_status hr_sampler_new(hr_sampler **out, const hr_sampling *params, int32_t n_vocab, hr_error *err) {
    *out = NULL;
    if (hr_sampling_validate(params, err) != HR_OK) return err->status;
    hr_sampler *s = calloc(1, sizeof *s);
    if (!s) return hr_fail(err, HR_ERR_NOMEM, "out of memory for a sampler");
    s->params = *params;
    s->n_vocab = n_vocab;
    s->probs = malloc((size_t)n_vocab * sizeof *s->probs);
    s->order = malloc((size_t)n_vocab * sizeof *s->order);
    if (!s->probs || !s->order) {
        hr_sampler_free(s);
        return hr_fail(err, HR_ERR_NOMEM, "out of memory for a sampler over %d tokens", n_vocab);
    }
    hr_rng_seed(&s->rng, params->seed);
    *out = s;
    return HR_OK;
}

void hr_sampler_free(hr_sampler *s) {
    if (!s) return;
    free(s->probs);
    free(s->order);
    free(s);
}

/* The first index of the largest value (NaN never wins a comparison; a NaN first value
 * wins by default). Two passes over data in cache: the largest value in 16 independent
 * lanes, then the first block of 16 that holds it. One pass carrying (value, index) is a
 * chain of dependent compares, about 20 us for a 32000-token vocabulary, which every
 * sequence pays every step while the other threads wait. */
int32_t hr_argmax(const float *logits, int32_t n) {
    if (n <= 1 || isnan(logits[0])) return 0;
    float lane[16];
    for (int j = 0; j < 16; j++) lane[j] = logits[0];
    int32_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) lane[j] = logits[i + j] > lane[j] ? logits[i + j] : lane[j];
    for (; i < n; i++) lane[0] = logits[i] > lane[0] ? logits[i] : lane[0];
    float best = lane[0];
    for (int j = 1; j < 16; j++) best = lane[j] > best ? lane[j] : best;
    for (i = 0; i + 16 <= n; i += 16) {
        int hit = 0;
        for (int j = 0; j < 16; j++) hit |= logits[i + j] == best;
        if (hit) break;
    }
    while (logits[i] != best) i++;
    return i;
}

/* Sorts ids by descending probability (ties: lower id first) — a heap sort on the
 * candidate prefix, since qsort would need a context pointer. */
static int before(const float *p, int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); }

static void sift_down(int32_t *ids, size_t n, size_t i, const float *p) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, worst = i;
        /* a min-heap on "before": the root is the candidate that sorts last */
        if (l < n && before(p, ids[worst], ids[l])) worst = l;
        if (r < n && before(p, ids[worst], ids[r])) worst = r;
        if (worst == i) return;
        int32_t tmp = ids[i];
        ids[i] = ids[worst];
        ids[worst] = tmp;
        i = worst;
    }
}

static void sort_by_prob(int32_t *ids, size_t n, const float *p) {
    for (size_t i = n / 2; i-- > 0;) sift_down(ids, n, i, p);
    for (size_t end = n; end > 1; end--) {
        int32_t tmp = ids[0];
        ids[0] = ids[end - 1];
        ids[end - 1] = tmp;
        sift_down(ids, end - 1, 0, p);
    }
}

int32_t hr_sampler_pick(hr_sampler *s, float *logits, const int32_t *recent, size_t n_recent) {
    const hr_sampling *p = &s->params;
    int32_t n = s->n_vocab;
    if (p->repeat_penalty != 1.0f) {
        size_t from = n_recent > (size_t)p->repeat_last_n ? n_recent - (size_t)p->repeat_last_n : 0;
        /* Each distinct recent token is penalised once, even if it repeats. */
        for (size_t i = from; i < n_recent; i++) {
            int32_t id = recent[i];
            if (id < 0 || id >= n) continue;
            bool seen = false;
            for (size_t j = from; j < i && !seen; j++) seen = recent[j] == id;
            if (seen) continue;
            logits[id] = logits[id] > 0 ? logits[id] / p->repeat_penalty : logits[id] * p->repeat_penalty;
        }
    }
    if (p->temperature <= 0.0f) return hr_argmax(logits, n);

    float max = logits[hr_argmax(logits, n)];
    float sum = 0.0f;
    for (int32_t i = 0; i < n; i++) {
        s->probs[i] = expf((logits[i] - max) / p->temperature);
        sum += s->probs[i];
    }
    for (int32_t i = 0; i < n; i++) s->probs[i] /= sum;

    /* min-p and top-k shrink the candidate set before sorting it, which keeps a
     * 150k-token vocabulary cheap. */
    float floor_p = p->min_p > 0.0f ? p->min_p * s->probs[hr_argmax(s->probs, n)] : 0.0f;
    size_t count = 0;
    for (int32_t i = 0; i < n; i++)
        if (s->probs[i] >= floor_p && s->probs[i] > 0.0f) s->order[count++] = i;
    if (count == 0) return hr_argmax(logits, n);
    /* Only top-k and top-p depend on the order; without them the draw needs no sort. */
    if ((p->top_k > 0 && (size_t)p->top_k < count) || p->top_p < 1.0f) sort_by_prob(s->order, count, s->probs);
    if (p->top_k > 0 && (size_t)p->top_k < count) count = (size_t)p->top_k;
    if (p->top_p < 1.0f) {
        float cumulative = 0.0f;
        for (size_t i = 0; i < count; i++) {
            cumulative += s->probs[s->order[i]];
            if (cumulative >= p->top_p) {
                count = i + 1;
                break;
            }
        }
    }
    float total = 0.0f;
    for (size_t i = 0; i < count; i++) total += s->probs[s->order[i]];
    float r = hr_rng_f32(&s->rng) * total;
    for (size_t i = 0; i < count; i++) {
        r -= s->probs[s->order[i]];
        if (r < 0.0f) return s->order[i];
    }
    return s->order[count - 1];
}
