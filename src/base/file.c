#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Opens path for reading without blocking on a FIFO that has no writer yet (what it is
 * is checked first), then makes reads block again. -1 with err filled on failure. */
static int open_to_read(const char *path, struct stat *st, hr_error *err) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        hr_fail(err, HR_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, st) != 0) {
        hr_fail(err, HR_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

hr_status hr_file_map(hr_mapped_file *out, const char *path, hr_error *err) {
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", path);
    struct stat st;
    int fd = open_to_read(path, &st, err);
    if (fd < 0) return err->status;
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

hr_status hr_file_read_stream(FILE *f, const char *name, char **out, size_t *size_bytes, hr_error *err) {
    *out = NULL;
    *size_bytes = 0;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) return hr_fail(err, HR_ERR_NOMEM, "out of memory reading %s", name);
    for (;;) {
        if (len + 1 >= cap) {
            char *bigger = cap < HR_FILE_READ_MAX_BYTES ? realloc(buf, cap * 2) : NULL;
            if (!bigger) {
                free(buf);
                return cap < HR_FILE_READ_MAX_BYTES
                           ? hr_fail(err, HR_ERR_NOMEM, "out of memory reading %s", name)
                           : hr_fail(err, HR_ERR_RANGE, "%s is larger than %d MiB", name, HR_FILE_READ_MAX_BYTES >> 20);
            }
            buf = bigger;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) break;
    }
    if (ferror(f)) {
        free(buf);
        return hr_fail(err, HR_ERR_IO, "read error on %s", name);
    }
    buf[len] = '\0';
    *out = buf;
    *size_bytes = len;
    return HR_OK;
}

hr_status hr_file_read_all(const char *path, char **out, size_t *size_bytes, hr_error *err) {
    *out = NULL;
    *size_bytes = 0;
    struct stat st;
    int fd = open_to_read(path, &st, err);
    if (fd < 0) return err->status;
    /* Files and pipes; not directories, nor devices such as /dev/zero that never end. */
    if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode)) {
        close(fd);
        return hr_fail(err, HR_ERR_IO, "'%s' is not a file%s", path, S_ISDIR(st.st_mode) ? " (a directory)" : "");
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return hr_fail(err, HR_ERR_NOMEM, "out of memory reading '%s'", path);
    }
    char name[1100];
    snprintf(name, sizeof name, "'%s'", path);
    hr_status s = hr_file_read_stream(f, name, out, size_bytes, err);
    fclose(f);
    return s;
}

hr_status hr_file_output_path(const char *path, char *resolved, size_t cap, hr_error *err) {
    if (!*path) return hr_fail(err, HR_ERR_INVALID, "the output path is empty");
    char at[1024];
    if ((size_t)snprintf(at, sizeof at, "%s", path) >= sizeof at)
        return hr_fail(err, HR_ERR_INVALID, "output path '%.200s...' is too long", path);
    /* Follow links (a few, not a cycle) to the file they name, which may not exist yet. */
    for (int hops = 0;; hops++) {
        struct stat st;
        if (lstat(at, &st) != 0) {
            if (errno != ENOENT) return hr_fail(err, HR_ERR_IO, "cannot write '%s': %s", at, strerror(errno));
            break;
        }
        if (!S_ISLNK(st.st_mode)) {
            if (!S_ISREG(st.st_mode))
                return hr_fail(err, HR_ERR_IO, "'%s' exists and is not a regular file; refusing to replace it", at);
            break;
        }
        char link[1024];
        ssize_t n = readlink(at, link, sizeof link - 1);
        if (hops == 8 || n <= 0 || (size_t)n >= sizeof link - 1)
            return hr_fail(err, HR_ERR_IO, "cannot write '%s': a link that does not resolve", path);
        link[n] = '\0';
        const char *slash = strrchr(at, '/');
        char next[1024];
        int len = link[0] == '/' || !slash ? snprintf(next, sizeof next, "%s", link)
                                           : snprintf(next, sizeof next, "%.*s/%s", (int)(slash - at), at, link);
        if (len < 0 || (size_t)len >= sizeof next)
            return hr_fail(err, HR_ERR_INVALID, "output path '%.200s...' is too long", next);
        memcpy(at, next, (size_t)len + 1);
    }
    if ((size_t)snprintf(resolved, cap, "%s", at) >= cap)
        return hr_fail(err, HR_ERR_INVALID, "output path '%.200s...' is too long", at);
    return HR_OK;
}

hr_status hr_file_check_writable(const char *path, hr_error *err) {
    char target[1024];
    if (hr_file_output_path(path, target, sizeof target, err) != HR_OK) return err->status;
    char *slash = strrchr(target, '/');
    if (slash == target) slash[1] = '\0'; /* a file in / */
    else if (slash) *slash = '\0';
    const char *dir = slash ? target : ".";
    if (access(dir, W_OK) != 0) return hr_fail(err, HR_ERR_IO, "cannot write '%s': %s: %s", path, dir, strerror(errno));
    return HR_OK;
}

hr_status hr_file_write_all(const char *path, const void *data, size_t size_bytes, hr_error *err) {
    char target[1024], tmp[1100];
    if (hr_file_output_path(path, target, sizeof target, err) != HR_OK) return err->status;
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", target, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return hr_fail(err, HR_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    size_t n = size_bytes ? fwrite(data, 1, size_bytes, f) : 0;
    int bad = (n != size_bytes) | (fclose(f) != 0);
    if (bad) {
        unlink(tmp);
        return hr_fail(err, HR_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    }
    if (rename(tmp, target) != 0) {
        int e = errno;
        unlink(tmp);
        return hr_fail(err, HR_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, target, strerror(e));
    }
    return HR_OK;
}
