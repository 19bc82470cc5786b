/* cli/opts — table-driven option parsing for the tool commands (doctor, plan, probe,
 * bench): each option names its flag(s), its kind and where its value goes; values are
 * checked with the strict cli/args parsers, so every failure is one clear sentence and
 * a usage error.
 *
 * Must not: exit the process; callers return the status it gives. */
#ifndef HR_CLI_OPTS_H
#define HR_CLI_OPTS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    HR_OPT_TEXT,  /* const char ** */
    HR_OPT_INT,   /* int64_t *, within [min, max] */
    HR_OPT_SIZE,  /* uint64_t *: bytes with K, M, G, T */
    HR_OPT_FLOAT, /* double *, within [min, max] */
    HR_OPT_FLAG,  /* bool *, set to true; takes no value */
} hr_opt_kind;

typedef struct {
    const char *name;  /* "--ctx-size" */
    const char *alias; /* "-c", or NULL */
    hr_opt_kind kind;
    void *dest; /* NULL: accepted and checked, then ignored */
    double min, max;
    bool *given; /* set when the option appears; may be NULL */
} hr_opt;

/* Parses argv[1..argc) against opts. Arguments that are not options fill positional[]
 * (at most max_positional). Returns -1 to go on, 0 after printing help (-h, --help), or
 * 2 after printing a usage error. */
int hr_opts_parse(const char *cmd, const char *help, const hr_opt *opts, size_t n_opts, int argc, char **argv,
                  const char **positional, int max_positional);

#endif
