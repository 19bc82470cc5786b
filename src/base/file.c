#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

hr_status hr_file_map(hr_mapped_file *out, const char *path, hr_error *err) {
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return hr_fail(err, HR_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return hr_fail(err, HR_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return hr_fail(err, HR_ERR_IO, "'%s' is not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return hr_fail(err, HR_ERR_IO, "cannot map '%s': %s", path, strerror(e));
        }
        out->data = p;
        out->size_bytes = (size_t)st.st_size;
    }
    close(fd); /* the mapping keeps the file alive */
    return HR_OK;
}

void hr_file_unmap(hr_mapped_file *file) {
    if (file->data) munmap((void *)file->data, file->size_bytes);
    file->data = NULL;
    file->size_bytes = 0;
}

hr_status hr_file_read_all(const char *path, char **out, size_t *size_bytes, hr_error *err) {
    *out = NULL;
    *size_bytes = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return hr_fail(err, HR_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return hr_fail(err, HR_ERR_NOMEM, "out of memory reading '%s'", path);
    }
    for (;;) {
        if (len + 1 >= cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                fclose(f);
                return hr_fail(err, HR_ERR_NOMEM, "out of memory reading '%s'", path);
            }
            buf = bigger;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return hr_fail(err, HR_ERR_IO, "read error on '%s'", path);
    }
    buf[len] = '\0';
    *out = buf;
    *size_bytes = len;
    return HR_OK;
}

hr_status hr_file_write_all(const char *path, const void *data, size_t size_bytes, hr_error *err) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return hr_fail(err, HR_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    size_t n = size_bytes ? fwrite(data, 1, size_bytes, f) : 0;
    int bad = (n != size_bytes) | (fclose(f) != 0);
    if (bad) {
        unlink(tmp);
        return hr_fail(err, HR_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return hr_fail(err, HR_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(e));
    }
    return HR_OK;
}
