/* formats/ggml_type — the tensor element types GGUF files use: their ids, names and
 * block geometry (elements per block, bytes per block). These are facts of the file
 * format, so they live here; the arithmetic on them lives in kernels/.
 *
 * Must not: dequantize or compute anything. */
#ifndef HR_FORMATS_GGML_TYPE_H
#define HR_FORMATS_GGML_TYPE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

/* Ids as GGUF stores them in tensor infos. */
typedef enum {
    HR_TYPE_F32 = 0,
    HR_TYPE_F16 = 1,
    HR_TYPE_Q4_0 = 2,
    HR_TYPE_Q4_1 = 3,
    HR_TYPE_Q5_0 = 6,
    HR_TYPE_Q5_1 = 7,
    HR_TYPE_Q8_0 = 8,
    HR_TYPE_Q8_1 = 9,
    HR_TYPE_Q2_K = 10,
    HR_TYPE_Q3_K = 11,
    HR_TYPE_Q4_K = 12,
    HR_TYPE_Q5_K = 13,
    HR_TYPE_Q6_K = 14,
    HR_TYPE_Q8_K = 15,
    HR_TYPE_I8 = 24,
    HR_TYPE_I16 = 25,
    HR_TYPE_I32 = 26,
    HR_TYPE_I64 = 27,
    HR_TYPE_F64 = 28,
    HR_TYPE_BF16 = 30,
    HR_TYPE_COUNT_ = 40, /* ids at or above this are never valid */
} hr_type;

typedef struct {
    const char *name;        /* "q8_0"; NULL for an id that names no type */
    uint32_t block_elems;    /* elements per block (1 for plain types) */
    uint32_t block_bytes;    /* bytes per block */
} hr_type_info;

/* Geometry of a type id, or NULL when the id is not a known type. */
const hr_type_info *hr_type_get(uint32_t type);
/* "q8_0", or "type#N" (static buffer) for an unknown id. */
const char *hr_type_name(uint32_t type);
/* Looks a type up by name ("f16", "Q8_0"), case-insensitively. */
hr_status hr_type_from_name(const char *name, hr_type *out, hr_error *err);
/* Bytes taken by one row of n elements; false when n is not a whole number of blocks
 * or the size would overflow. */
bool hr_type_row_bytes(uint32_t type, uint64_t n, uint64_t *out_bytes);

#endif
