#include "base/clock.h"

#include <time.h>

double hr_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double hr_now_ms(void) { return hr_now_s() * 1e3; }
