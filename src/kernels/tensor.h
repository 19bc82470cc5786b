/* kernels/tensor — a view of a weight matrix as the kernels see it: an element type,
 * a shape, and bytes that live elsewhere (in the model's memory map).
 *
 * Must not: own memory. */
#ifndef HR_KERNELS_TENSOR_H
#define HR_KERNELS_TENSOR_H

#include <stdint.h>

typedef struct {
    uint32_t type;     /* hr_type */
    int64_t ne[4];     /* ne[0]: elements per row (the input dimension of a matrix) */
    const void *data;  /* rows of hr_type_row_bytes(type, ne[0]) bytes each */
    uint64_t row_bytes;
    const char *name;  /* for error messages */
} hr_tensor;

#endif
