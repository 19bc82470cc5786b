#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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
