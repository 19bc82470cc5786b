/* tools/prom — reads sample values out of Prometheus text exposition (what a server's
 * /metrics answers), for `doctor --url` and `bench --soak`.
 *
 * Must not: allocate; it scans the text in place. */
#ifndef HR_TOOLS_PROM_H
#define HR_TOOLS_PROM_H

#include <stdbool.h>

/* The value of the sample whose series is exactly `series` (a metric name, with its
 * labels as the server writes them: `name{outcome="ok"}`). False when absent. */
bool hr_prom_value(const char *text, const char *series, double *out);

#endif
