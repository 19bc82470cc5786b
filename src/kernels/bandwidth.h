/* kernels/bandwidth — how fast this machine streams memory into the cores: the ceiling
 * for decoding (one token reads every weight once), printed by `headroom bench-model`
 * and bench_kernels next to what the matmuls reach.
 *
 * Owns: a 1 GiB buffer for the duration of one call (mapped, touched, unmapped).
 * Must not: be called on a hot path (it takes about a second). */
#ifndef HR_KERNELS_BANDWIDTH_H
#define HR_KERNELS_BANDWIDTH_H

#include "kernels/threadpool.h"

/* Best of a few streaming passes over 1 GiB, read by all of the pool's threads (pool may
 * be NULL: one thread), in GB/s (1e9 bytes). 0 when the buffer cannot be mapped. */
double hr_measure_read_bandwidth_gbs(hr_pool *pool);

#endif
