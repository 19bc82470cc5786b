#include "cli/opts.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"

static const hr_opt *find(const hr_opt *opts, size_t n, const char *arg) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(arg, opts[i].name) || (opts[i].alias && !strcmp(arg, opts[i].alias))) return &opts[i];
    return NULL;
}

/* A bound from the table as int64_t: doubles at or past the edge of int64_t (INT64_MAX
 * rounds up to 2^63) stand for the edge itself. */
static int64_t int_bound(double v) { return v >= 0x1p63 ? INT64_MAX : v <= -0x1p63 ? INT64_MIN : (int64_t)v; }

/* Checks the value of one option and stores it. */
static bool take(const char *cmd, const hr_opt *o, const char *flag, const char *v) {
    int64_t n;
    uint64_t u;
    double d;
    switch (o->kind) {
    case HR_OPT_TEXT:
        if (o->dest) *(const char **)o->dest = v;
        return true;
    case HR_OPT_INT:
        if (!hr_arg_int(cmd, flag, v, int_bound(o->min), int_bound(o->max), &n)) return false;
        if (o->dest) *(int64_t *)o->dest = n;
        return true;
    case HR_OPT_SIZE:
        if (!hr_arg_size(cmd, flag, v, &u)) return false;
        if (o->dest) *(uint64_t *)o->dest = u;
        return true;
    case HR_OPT_FLOAT:
        if (!hr_arg_float(cmd, flag, v, o->min, o->max, &d)) return false;
        if (o->dest) *(double *)o->dest = d;
        return true;
    case HR_OPT_FLAG: break;
    }
    return false;
}

int hr_opts_parse(const char *cmd, const char *help, const hr_opt *opts, size_t n_opts, int argc, char **argv,
                  const char **positional, int max_positional) {
    int n_positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(help, stdout);
            return 0;
        }
        const hr_opt *o = find(opts, n_opts, a);
        if (!o && a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "headroom %s: unknown option '%s' (see headroom %s --help)\n", cmd, a, cmd);
            return 2;
        }
        if (!o) {
            if (n_positional == max_positional) {
                fprintf(stderr, "headroom %s: unexpected argument '%s' (see headroom %s --help)\n", cmd, a, cmd);
                return 2;
            }
            positional[n_positional++] = a;
            continue;
        }
        if (o->given) *o->given = true;
        if (o->kind == HR_OPT_FLAG) {
            if (o->dest) *(bool *)o->dest = true;
            continue;
        }
        const char *v = hr_arg_value(cmd, argc, argv, &i);
        if (!v || !take(cmd, o, a, v)) return 2;
    }
    return -1;
}
