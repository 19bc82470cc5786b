/* base/file — read-only memory maps of whole files, and whole-file reads.
 *
 * Owns: the mapping's lifetime (hr_file_map / hr_file_unmap).
 * Must not: interpret the bytes. Format parsers live in formats/. */
#ifndef HR_BASE_FILE_H
#define HR_BASE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct {
    const uint8_t *data; /* NULL for an empty file */
    size_t size_bytes;
    char path[1024];
} hr_mapped_file;

/* Maps path read-only and private. Release with hr_file_unmap. */
hr_status hr_file_map(hr_mapped_file *out, const char *path, hr_error *err);
void hr_file_unmap(hr_mapped_file *file);

/* Reads a whole file into a malloc'd buffer (caller frees), NUL-terminated for
 * convenience; size_bytes excludes the terminator. */
hr_status hr_file_read_all(const char *path, char **out, size_t *size_bytes, hr_error *err);

/* Writes size_bytes to path atomically (temporary file + rename). */
hr_status hr_file_write_all(const char *path, const void *data, size_t size_bytes, hr_error *err);

#endif
