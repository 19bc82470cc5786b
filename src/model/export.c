#include "model/export.h"

#include <stdio.h>
#include <stdlib.h>

#include "formats/ggml_type.h"
#include "kernels/quant.h"
#include "model/model.h"

static hr_status keep(hr_export *x, void *buf, hr_error *err) {
    if (x->count == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 64;
        void **bigger = realloc(x->buffers, cap * sizeof *bigger);
        if (!bigger) {
            free(buf);
            return hr_fail(err, HR_ERR_NOMEM, "out of memory tracking export buffers");
        }
        x->buffers = bigger;
        x->cap = cap;
    }
    x->buffers[x->count++] = buf;
    return HR_OK;
}

hr_status hr_export_tensor(hr_export *x, hr_gguf_writer *w, const char *name, const float *src, int64_t cols,
                           int64_t rows, uint32_t type, bool take_src, hr_error *err) {
    /* An f32 source is written as it is, so a handed-over one must live until the write;
     * any other is converted right away and can go. */
    if (take_src && type == HR_TYPE_F32 && keep(x, (void *)src, err) != HR_OK) return err->status;
    uint64_t row_bytes;
    bool supported = hr_quant_supported(type);
    if (!supported || !hr_type_row_bytes(type, (uint64_t)cols, &row_bytes)) {
        if (take_src && type != HR_TYPE_F32) free((void *)src);
        if (!supported)
            return hr_fail(err, HR_ERR_UNSUPPORTED, "tensor '%s': headroom does not write %s tensors", name,
                           hr_type_name(type));
        return hr_fail(err, HR_ERR_INVALID, "tensor '%s': %lld columns cannot be stored as %s (block of %u)", name,
                       (long long)cols, hr_type_name(type),
                       hr_type_get(type) ? hr_type_get(type)->block_elems : 0);
    }
    uint64_t ne[2] = {(uint64_t)cols, (uint64_t)rows};
    uint32_t n_dims = rows == 1 ? 1 : 2;
    if (type == HR_TYPE_F32) return hr_gguf_writer_add_tensor(w, name, type, n_dims, ne, src, row_bytes * rows, err);
    uint8_t *dst = malloc(row_bytes * (uint64_t)rows);
    if (dst)
        for (int64_t r = 0; r < rows; r++)
            hr_quant_quantize_row(type, src + r * cols, dst + (uint64_t)r * row_bytes, cols);
    if (take_src) free((void *)src);
    if (!dst) return hr_fail(err, HR_ERR_NOMEM, "out of memory converting tensor '%s'", name);
    if (keep(x, dst, err) != HR_OK) return err->status;
    return hr_gguf_writer_add_tensor(w, name, type, n_dims, ne, dst, row_bytes * (uint64_t)rows, err);
}

void hr_export_free(hr_export *x) {
    for (size_t i = 0; i < x->count; i++) free(x->buffers[i]);
    free(x->buffers);
    x->buffers = NULL;
    x->count = x->cap = 0;
}

hr_status hr_model_write_gguf(hr_model *m, uint32_t type, const char *name, const char *out_path, hr_error *err) {
    hr_gguf_writer *w = NULL;
    hr_export x = {0};
    hr_tensor_spec *specs = NULL;
    size_t n_specs = 0;
    if (hr_gguf_writer_new(&w, err) != HR_OK) return err->status;
    hr_status st = hr_hparams_to_gguf(&m->hp, w, err);
    if (st == HR_OK) st = hr_gguf_writer_set_str(w, "general.name", name, err);
    if (st == HR_OK) st = hr_vocab_to_gguf(m->vocab, w, err);
    if (st == HR_OK) st = hr_llama_specs(&m->hp, m->output.data == m->tok_embd.data, &specs, &n_specs, err);
    for (size_t i = 0; i < n_specs && st == HR_OK; i++) {
        char tname[96];
        hr_tensor_spec_name(&specs[i], tname, sizeof tname);
        const hr_tensor *t = hr_model_tensor(m, &specs[i]);
        st = hr_export_tensor(&x, w, tname, t->data, t->ne[0], t->ne[1], specs[i].rows == 1 ? HR_TYPE_F32 : type,
                              false, err);
    }
    if (st == HR_OK) st = hr_gguf_writer_write(w, out_path, err);
    free(specs);
    hr_export_free(&x);
    hr_gguf_writer_free(w);
    return st;
}
