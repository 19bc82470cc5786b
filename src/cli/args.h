/* cli/args — strict parsing of command-line values: whole numbers within a range,
 * finite floats, sizes with K/M/G suffixes; each failure prints one clear sentence.
 *
 * Must not: exit the process; callers return the usage status. */
#ifndef HR_CLI_ARGS_H
#define HR_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>

/* Each returns true on success; on failure prints "headroom CMD: --flag: ..." to stderr. */
bool hr_arg_int(const char *cmd, const char *flag, const char *text, int64_t min, int64_t max, int64_t *out);
bool hr_arg_float(const char *cmd, const char *flag, const char *text, double min, double max, double *out);
/* A byte count: digits with an optional K, M, G (powers of 1024; KiB/MiB/GiB too). */
bool hr_arg_size(const char *cmd, const char *flag, const char *text, uint64_t *out);
bool hr_arg_u64(const char *cmd, const char *flag, const char *text, uint64_t *out);

/* For a flag that takes a value: returns argv[++*i], or NULL after printing that the
 * value is missing. */
const char *hr_arg_value(const char *cmd, int argc, char **argv, int *i);

#endif
