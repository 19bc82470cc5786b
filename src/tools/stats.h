/* tools/stats — latency samples and their summary (p50, p90, p99, max, mean).
 *
 * Owns: a sample array's heap buffer (hr_samples_free releases it).
 * Must not: print; commands format the summary. */
#ifndef HR_TOOLS_STATS_H
#define HR_TOOLS_STATS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    double *v;
    size_t n, cap;
    bool oom; /* a push failed; the samples kept are still valid */
} hr_samples;

void hr_samples_push(hr_samples *s, double value);
void hr_samples_free(hr_samples *s);

typedef struct {
    size_t n;
    double p50, p90, p99, max, mean; /* 0 when n == 0 */
} hr_summary;

/* The p-th percentile (0..100) of sorted values, interpolating linearly between the
 * two closest ranks, so that p50 of {1, 2} is 1.5 and p100 is the maximum. */
double hr_percentile(const double *sorted, size_t n, double p);
/* Sorts v[0..n) in place, ascending. */
void hr_sort_doubles(double *v, size_t n);
/* Sorts the samples in place and summarizes them. */
void hr_summarize(hr_samples *s, hr_summary *out);

#endif
