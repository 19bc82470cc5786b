/* kernels/cpu — which SIMD level the kernels run at. The best level is detected once
 * from CPUID, with XGETBV confirming that the operating system saves the wider
 * registers (a CPU with AVX-512 under an OS that does not preserve ZMM state must not
 * use it). HEADROOM_SIMD=scalar|avx2|avx512 lowers the level, for tests and benchmarks;
 * asking for more than the machine has gives what it has.
 *
 * Levels: avx512 = AVX-512 F/BW/VL/VNNI/VBMI (Ice Lake, Zen 4 and later; Skylake-SP
 * and Cascade Lake, without VBMI, run the avx2 kernels), avx2 = AVX2 + FMA + F16C,
 * scalar = portable C.
 * Must not: run any wide instruction itself (this file is compiled for the baseline). */
#ifndef HR_KERNELS_CPU_H
#define HR_KERNELS_CPU_H

#include <stdbool.h>

typedef enum {
    HR_SIMD_SCALAR = 0,
    HR_SIMD_AVX2 = 1,
    HR_SIMD_AVX512 = 2,
} hr_simd_level;

/* The best level this CPU and OS support (HEADROOM_SIMD not applied). */
hr_simd_level hr_simd_detected(void);
/* The level the kernels use: the detected one, lowered by HEADROOM_SIMD when set. */
hr_simd_level hr_simd_active(void);
/* Makes the kernels use min(want, detected) from now on and returns it. Not for use
 * while kernels are running on other threads (tests and benchmarks switch between runs). */
hr_simd_level hr_simd_set(hr_simd_level want);
/* "scalar", "avx2", "avx512". */
const char *hr_simd_name(hr_simd_level level);
/* Parses a level name (as above, case-insensitive); false when it names none. */
bool hr_simd_parse(const char *name, hr_simd_level *out);

#endif
