/* base/file — read-only memory maps of whole files, and whole-file reads.
 *
 * Owns: the mapping's lifetime (hr_file_map / hr_file_unmap).
 * Must not: interpret the bytes. Format parsers live in formats/. */
#ifndef HR_BASE_FILE_H
#define HR_BASE_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/error.h"

typedef struct {
    const uint8_t *data; /* NULL for an empty file */
    size_t size_bytes;
    char path[1024];
} hr_mapped_file;

/* Maps path read-only and private. Release with hr_file_unmap. */
hr_status hr_file_map(hr_mapped_file *out, const char *path, hr_error *err);
void hr_file_unmap(hr_mapped_file *file);

/* Whole reads stop here: a text input larger than this is a mistake, not a prompt. */
#define HR_FILE_READ_MAX_BYTES (1 << 30)

/* Reads a whole file (or a pipe; not a directory or a device) into a malloc'd buffer
 * (caller frees), NUL-terminated for convenience; size_bytes excludes the terminator. */
hr_status hr_file_read_all(const char *path, char **out, size_t *size_bytes, hr_error *err);
/* The same for an open stream (stdin); name is how errors call it. */
hr_status hr_file_read_stream(FILE *f, const char *name, char **out, size_t *size_bytes, hr_error *err);

/* The file a writer of path must replace: path itself, or where a symbolic link points,
 * so the link stays. Refuses an existing path that is not a regular file (a device, a
 * FIFO, a directory), which a temporary file renamed over it would destroy. */
hr_status hr_file_output_path(const char *path, char *resolved, size_t cap, hr_error *err);

/* Fails, before any work is done, where a later write of path would: the checks of
 * hr_file_output_path, and a directory this process cannot write in. */
hr_status hr_file_check_writable(const char *path, hr_error *err);

/* Writes size_bytes to path atomically (temporary file + rename over hr_file_output_path). */
hr_status hr_file_write_all(const char *path, const void *data, size_t size_bytes, hr_error *err);

#endif
