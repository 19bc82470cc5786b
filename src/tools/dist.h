/* tools/dist — length distributions for the load generator: a fixed "N", a uniform
 * "A..B", or "@FILE" of lengths (whitespace-separated, '#' comments) replayed in order
 * and cycled, so a recorded trace replays as recorded.
 *
 * Owns: the values read from a file (hr_dist_free releases them).
 * Must not: draw from anything but the hr_rng it is given (runs are reproducible). */
#ifndef HR_TOOLS_DIST_H
#define HR_TOOLS_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/rng.h"

typedef enum { HR_DIST_FIXED, HR_DIST_UNIFORM, HR_DIST_FILE } hr_dist_kind;

typedef struct {
    hr_dist_kind kind;
    int64_t lo, hi;  /* FIXED: lo == hi; FILE: the smallest and largest value */
    int64_t *values; /* FILE */
    size_t n_values, next;
} hr_dist;

/* Every value must lie in [min, max]; errors name the spec and the offending value. */
hr_status hr_dist_parse(const char *spec, int64_t min, int64_t max, hr_dist *out, hr_error *err);
int64_t hr_dist_draw(hr_dist *d, hr_rng *rng);
/* "64", "16..128", "trace.txt (200 values, 3..900)". */
void hr_dist_describe(const hr_dist *d, const char *spec, char *buf, size_t cap);
void hr_dist_free(hr_dist *d);

#endif
