#include "tools/stats.h"

#include <stdlib.h>
#include <string.h>

void hr_samples_push(hr_samples *s, double value) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        double *bigger = realloc(s->v, cap * sizeof *bigger);
        if (!bigger) {
            s->oom = true;
            return;
        }
        s->v = bigger;
        s->cap = cap;
    }
    s->v[s->n++] = value;
}

void hr_samples_free(hr_samples *s) {
    free(s->v);
    memset(s, 0, sizeof *s);
}

double hr_percentile(const double *sorted, size_t n, double p) {
    if (n == 0) return 0;
    double rank = p / 100.0 * (double)(n - 1);
    if (rank <= 0) return sorted[0];
    size_t lo = (size_t)rank;
    if (lo + 1 >= n) return sorted[n - 1];
    double frac = rank - (double)lo;
    return sorted[lo] + (sorted[lo + 1] - sorted[lo]) * frac;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void hr_sort_doubles(double *v, size_t n) { qsort(v, n, sizeof *v, cmp_double); }

void hr_summarize(hr_samples *s, hr_summary *out) {
    memset(out, 0, sizeof *out);
    out->n = s->n;
    if (s->n == 0) return;
    hr_sort_doubles(s->v, s->n);
    double sum = 0;
    for (size_t i = 0; i < s->n; i++) sum += s->v[i];
    out->mean = sum / (double)s->n;
    out->p50 = hr_percentile(s->v, s->n, 50);
    out->p90 = hr_percentile(s->v, s->n, 90);
    out->p99 = hr_percentile(s->v, s->n, 99);
    out->max = s->v[s->n - 1];
}
