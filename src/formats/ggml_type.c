#include "formats/ggml_type.h"

#include <stdio.h>
#include <strings.h>

/* Block geometry from the GGUF specification's type table. */
static const hr_type_info type_table[HR_TYPE_COUNT_] = {
    [HR_TYPE_F32] = {"f32", 1, 4},
    [HR_TYPE_F16] = {"f16", 1, 2},
    [HR_TYPE_Q4_0] = {"q4_0", 32, 18},
    [HR_TYPE_Q4_1] = {"q4_1", 32, 20},
    [HR_TYPE_Q5_0] = {"q5_0", 32, 22},
    [HR_TYPE_Q5_1] = {"q5_1", 32, 24},
    [HR_TYPE_Q8_0] = {"q8_0", 32, 34},
    [HR_TYPE_Q8_1] = {"q8_1", 32, 36},
    [HR_TYPE_Q2_K] = {"q2_k", 256, 84},
    [HR_TYPE_Q3_K] = {"q3_k", 256, 110},
    [HR_TYPE_Q4_K] = {"q4_k", 256, 144},
    [HR_TYPE_Q5_K] = {"q5_k", 256, 176},
    [HR_TYPE_Q6_K] = {"q6_k", 256, 210},
    [HR_TYPE_Q8_K] = {"q8_k", 256, 292},
    [HR_TYPE_I8] = {"i8", 1, 1},
    [HR_TYPE_I16] = {"i16", 1, 2},
    [HR_TYPE_I32] = {"i32", 1, 4},
    [HR_TYPE_I64] = {"i64", 1, 8},
    [HR_TYPE_F64] = {"f64", 1, 8},
    [HR_TYPE_BF16] = {"bf16", 1, 2},
};

const hr_type_info *hr_type_get(uint32_t type) {
    if (type >= HR_TYPE_COUNT_ || !type_table[type].name) return NULL;
    return &type_table[type];
}

const char *hr_type_name(uint32_t type) {
    const hr_type_info *info = hr_type_get(type);
    if (info) return info->name;
    static _Thread_local char buf[32];
    snprintf(buf, sizeof buf, "type#%u", type);
    return buf;
}

hr_status hr_type_from_name(const char *name, hr_type *out, hr_error *err) {
    for (uint32_t i = 0; i < HR_TYPE_COUNT_; i++) {
        if (type_table[i].name && strcasecmp(type_table[i].name, name) == 0) {
            *out = (hr_type)i;
            return HR_OK;
        }
    }
    return hr_fail(err, HR_ERR_INVALID,
                   "unknown tensor type '%s' (known: f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k, ...)",
                   name);
}

bool hr_type_row_bytes(uint32_t type, uint64_t n, uint64_t *out_bytes) {
    const hr_type_info *info = hr_type_get(type);
    if (!info || n % info->block_elems != 0) return false;
    uint64_t blocks = n / info->block_elems;
    if (blocks > UINT64_MAX / info->block_bytes) return false;
    *out_bytes = blocks * info->block_bytes;
    return true;
}
