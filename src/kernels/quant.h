/* kernels/quant — the arithmetic of every weight format headroom reads: half-precision
 * conversions, and per type a row dequantizer, a row quantizer (f32 -> type, following
 * each format's definition), and a scalar reference dot product against f32.
 *
 * The scalar functions here are the reference that fast paths are tested against.
 * Must not: allocate, or depend on the CPU (no intrinsics here). */
#ifndef HR_KERNELS_QUANT_H
#define HR_KERNELS_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "formats/ggml_type.h"

float hr_fp16_to_f32(uint16_t h);
uint16_t hr_f32_to_fp16(float f);   /* round to nearest even; overflow to inf */
float hr_bf16_to_f32(uint16_t h);
uint16_t hr_f32_to_bf16(float f);   /* round to nearest even; NaN stays NaN */

/* Types with dequantize/quantize/dot support: f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k. */
bool hr_quant_supported(uint32_t type);
/* True when type is supported and n >= 0 is a whole number of its blocks. */
bool hr_quant_row_ok(uint32_t type, int64_t n);

/* n must be a multiple of the type's block size (callers validate shapes at load).
 * A row failing hr_quant_row_ok is not touched, and its dot product is NaN.
 * Quantizers clamp scales to the largest finite fp16, so finite inputs of any
 * magnitude never dequantize to inf or NaN (huge values are clipped instead). */
void hr_quant_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);
void hr_quant_quantize_row(uint32_t type, const float *src, void *dst, int64_t n);
/* A q8_0 block's scale from the largest magnitude of its values: stores d = amax / 127
 * as fp16 at b (clamped to the largest finite half) and returns 1 / d as stored (0 for a
 * zero scale), the factor quants are rounded against. Vector quantizers use it so that
 * they write the reference's bytes. */
float hr_quant_q8_0_scale(float amax, uint8_t *b);
/* sum_i row[i] * x[i], accumulated in f32 in index order for f32/f16/bf16 (so that
 * results are reproducible against simple reference implementations). */
float hr_quant_dot_ref(uint32_t type, const void *row, const float *x, int64_t n);

/* The integer form of one q4_k, q5_k or q6_k block, for integer dot products against
 * 8-bit activations: element e is d * scale[e / 16] * q[e] - dmin * min[e / 16].
 * (q4_k/q5_k repeat each 32-element scale and min twice; q6_k's stored offset of 32
 * becomes min = 32 * scale with dmin = d.) Returns false for any other type. */
typedef struct {
    uint8_t q[256];
    int16_t scale[16], min[16];
    float d, dmin;
} hr_quant_k_ints;
bool hr_quant_k_unpack(uint32_t type, const void *block, hr_quant_k_ints *out);

#endif
