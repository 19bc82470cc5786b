#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool hr_arg_int(const char *cmd, const char *flag, const char *text, int64_t min, int64_t max, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "headroom %s: %s: '%s' is not a whole number from %lld to %lld\n", cmd, flag, text,
                (long long)min, (long long)max);
        return false;
    }
    *out = v;
    return true;
}

bool hr_arg_float(const char *cmd, const char *flag, const char *text, double min, double max, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(v) || v < min || v > max) {
        fprintf(stderr, "headroom %s: %s: '%s' is not a number from %g to %g\n", cmd, flag, text, min, max);
        return false;
    }
    *out = v;
    return true;
}

bool hr_arg_u64(const char *cmd, const char *flag, const char *text, uint64_t *out) {
    int64_t v;
    if (!hr_arg_int(cmd, flag, text, 0, INT64_MAX, &v)) return false;
    *out = (uint64_t)v;
    return true;
}

const char *hr_arg_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "headroom %s: %s needs a value (see headroom %s --help)\n", cmd, argv[*i], cmd);
        return NULL;
    }
    return argv[++*i];
}

bool hr_arg_size(const char *cmd, const char *flag, const char *text, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    static const struct {
        const char *suffix;
        int shift;
    } units[] = {{"", 0}, {"K", 10}, {"KiB", 10}, {"M", 20}, {"MiB", 20}, {"G", 30}, {"GiB", 30}, {"T", 40}, {"TiB", 40}};
    if (errno == 0 && end != text && text[0] >= '0' && text[0] <= '9') /* strtoull takes " -1" as 2^64 - 1 */
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strcasecmp(end, units[i].suffix) == 0 && v <= (UINT64_MAX >> units[i].shift)) {
                *out = (uint64_t)v << units[i].shift;
                return true;
            }
    fprintf(stderr, "headroom %s: %s: '%s' is not a size (bytes, or a number with K, M, G or T)\n", cmd, flag, text);
    return false;
}
