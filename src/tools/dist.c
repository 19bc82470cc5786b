#include "tools/dist.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"

enum { MAX_FILE_VALUES = 1 << 20 };

/* Parses a whole number at *p, moving *p past it. */
static bool take_int(const char **p, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(*p, &end, 10);
    if (end == *p || errno != 0) return false;
    *p = end;
    *out = v;
    return true;
}

static hr_status in_range(const char *spec, int64_t v, int64_t min, int64_t max, hr_error *err) {
    if (v < min || v > max)
        return hr_fail(err, HR_ERR_RANGE, "'%s': %lld is outside %lld..%lld", spec, (long long)v, (long long)min,
                       (long long)max);
    return HR_OK;
}

static hr_status parse_file(const char *spec, int64_t min, int64_t max, hr_dist *d, hr_error *err) {
    char *text;
    size_t len;
    if (hr_file_read_all(spec + 1, &text, &len, err) != HR_OK) return err->status;
    hr_status st = HR_OK;
    size_t cap = 0;
    for (const char *p = text; st == HR_OK && *p;) {
        if (*p == '#') {
            p += strcspn(p, "\n");
        } else if (strchr(" \t\r\n,", *p)) {
            p++;
        } else {
            int64_t v;
            if (!take_int(&p, &v) || !strchr(" \t\r\n,#", *p ? *p : ' ')) {
                st = hr_fail(err, HR_ERR_FORMAT, "'%s': '%.*s' is not a whole number", spec,
                             (int)(strcspn(p, " \t\r\n,#") < 20 ? strcspn(p, " \t\r\n,#") : 20), p);
            } else if (in_range(spec, v, min, max, err) != HR_OK) {
                st = err->status;
            } else if (d->n_values == MAX_FILE_VALUES) {
                st = hr_fail(err, HR_ERR_RANGE, "'%s' holds more than %d lengths", spec, MAX_FILE_VALUES);
            } else {
                if (d->n_values == cap) {
                    cap = cap ? cap * 2 : 256;
                    int64_t *bigger = realloc(d->values, cap * sizeof *bigger);
                    if (!bigger) {
                        st = hr_fail(err, HR_ERR_NOMEM, "out of memory reading '%s'", spec);
                        break;
                    }
                    d->values = bigger;
                }
                d->values[d->n_values++] = v;
                if (d->n_values == 1 || v < d->lo) d->lo = v;
                if (d->n_values == 1 || v > d->hi) d->hi = v;
            }
        }
    }
    free(text);
    if (st == HR_OK && d->n_values == 0) st = hr_fail(err, HR_ERR_FORMAT, "'%s' holds no lengths", spec);
    return st;
}

hr_status hr_dist_parse(const char *spec, int64_t min, int64_t max, hr_dist *out, hr_error *err) {
    memset(out, 0, sizeof *out);
    hr_status st;
    if (spec[0] == '@') {
        out->kind = HR_DIST_FILE;
        st = parse_file(spec, min, max, out, err);
    } else {
        const char *p = spec;
        bool ok = take_int(&p, &out->lo);
        out->hi = out->lo;
        out->kind = HR_DIST_FIXED;
        if (ok && strncmp(p, "..", 2) == 0) {
            p += 2;
            out->kind = HR_DIST_UNIFORM;
            ok = take_int(&p, &out->hi);
        }
        if (!ok || *p != '\0') st = hr_fail(err, HR_ERR_FORMAT, "'%s' is not N, A..B or @FILE", spec);
        else if (out->lo > out->hi) st = hr_fail(err, HR_ERR_RANGE, "'%s': the range is empty", spec);
        else if ((st = in_range(spec, out->lo, min, max, err)) == HR_OK) st = in_range(spec, out->hi, min, max, err);
    }
    if (st != HR_OK) hr_dist_free(out);
    return st;
}

int64_t hr_dist_draw(hr_dist *d, hr_rng *rng) {
    switch (d->kind) {
    case HR_DIST_UNIFORM: return d->lo + (int64_t)(hr_rng_u64(rng) % (uint64_t)(d->hi - d->lo + 1));
    case HR_DIST_FILE: return d->values[d->next++ % d->n_values];
    case HR_DIST_FIXED: break;
    }
    return d->lo;
}

void hr_dist_describe(const hr_dist *d, const char *spec, char *buf, size_t cap) {
    if (d->kind == HR_DIST_FILE)
        snprintf(buf, cap, "%s (%zu values, %lld..%lld)", spec + 1, d->n_values, (long long)d->lo, (long long)d->hi);
    else if (d->kind == HR_DIST_UNIFORM) snprintf(buf, cap, "%lld..%lld", (long long)d->lo, (long long)d->hi);
    else snprintf(buf, cap, "%lld", (long long)d->lo);
}

void hr_dist_free(hr_dist *d) {
    free(d->values);
    d->values = NULL;
    d->n_values = 0;
}
