/* base/clock — the monotonic clock every timing in headroom reads (latencies, tokens/s).
 *
 * Must not: be used for dates; it has no epoch a person would recognise. */
#ifndef HR_BASE_CLOCK_H
#define HR_BASE_CLOCK_H

double hr_now_s(void);
double hr_now_ms(void);

#endif
