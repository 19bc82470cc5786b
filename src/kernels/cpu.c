#include "kernels/cpu.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

static hr_simd_level detect(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return HR_SIMD_SCALAR;
    bool osxsave = c >> 27 & 1, avx = c >> 28 & 1, fma = c >> 12 & 1, f16c = c >> 29 & 1;
    if (!osxsave || !avx || !fma || !f16c) return HR_SIMD_SCALAR;
    uint64_t xcr0 = xgetbv0();
    /* Bits 1-2: SSE and upper-YMM state; 5-7: opmask, upper-ZMM0-15 and ZMM16-31. */
    if ((xcr0 & 0x6) != 0x6) return HR_SIMD_SCALAR;
    if (__get_cpuid_max(0, NULL) < 7) return HR_SIMD_SCALAR;
    __cpuid_count(7, 0, a, b, c, d);
    bool avx2 = b >> 5 & 1;
    if (!avx2) return HR_SIMD_SCALAR;
    bool f = b >> 16 & 1, bw = b >> 30 & 1, vl = b >> 31 & 1, vbmi = c >> 1 & 1, vnni = c >> 11 & 1;
    if (f && bw && vl && vbmi && vnni && (xcr0 & 0xE0) == 0xE0) return HR_SIMD_AVX512;
    return HR_SIMD_AVX2;
}
#else
static hr_simd_level detect(void) { return HR_SIMD_SCALAR; }
#endif

/* -1 until first use; racing first calls compute the same values. */
static atomic_int detected_level = -1, active_level = -1;

hr_simd_level hr_simd_detected(void) {
    int v = atomic_load_explicit(&detected_level, memory_order_relaxed);
    if (v < 0) {
        v = (int)detect();
        atomic_store_explicit(&detected_level, v, memory_order_relaxed);
    }
    return (hr_simd_level)v;
}

hr_simd_level hr_simd_active(void) {
    int v = atomic_load_explicit(&active_level, memory_order_relaxed);
    if (v < 0) {
        hr_simd_level want = hr_simd_detected(), forced;
        if (hr_simd_parse(getenv("HEADROOM_SIMD"), &forced)) want = forced;
        return hr_simd_set(want);
    }
    return (hr_simd_level)v;
}

hr_simd_level hr_simd_set(hr_simd_level want) {
    hr_simd_level best = hr_simd_detected();
    hr_simd_level level = want < best ? want : best;
    atomic_store_explicit(&active_level, (int)level, memory_order_relaxed);
    return level;
}

static const char *const level_names[] = {"scalar", "avx2", "avx512"};

const char *hr_simd_name(hr_simd_level level) {
    return level >= HR_SIMD_SCALAR && level <= HR_SIMD_AVX512 ? level_names[level] : "unknown";
}

bool hr_simd_parse(const char *name, hr_simd_level *out) {
    if (!name) return false;
    for (int i = HR_SIMD_SCALAR; i <= HR_SIMD_AVX512; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (hr_simd_level)i;
            return true;
        }
    }
    return false;
}
