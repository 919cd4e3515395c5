#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/secret.h"

int
fs_sync_dir_of(const char *path, struct rk_error *err)
{
    char tmp[PATH_MAX];
    int fd, r = 0;

    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return rk_error_set(err, RK_EINVAL, "path too long: %s", path);
    fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return rk_error_set(err, RK_EIO, "opening directory of %s: %s", path, strerror(errno));
    if (fsync(fd) != 0)
        r = rk_error_set(err, RK_EIO, "fsync of directory of %s: %s", path, strerror(errno));
    close(fd);
    return r;
}

int
fs_write_atomic(const char *path, const void *buf, size_t len, mode_t mode, struct rk_error *err)
{
    char tmp[PATH_MAX];
    const unsigned char *p = buf;
    int fd, r = -RK_EIO;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
        return rk_error_set(err, RK_EINVAL, "path too long: %s", path);
    fd = mkstemp(tmp);
    if (fd < 0)
        return rk_error_set(err, RK_EIO, "creating a temporary file beside %s: %s", path,
                            strerror(errno));
    if (fchmod(fd, mode) != 0) {
        rk_error_set(err, RK_EIO, "chmod %s: %s", tmp, strerror(errno));
        goto out;
    }
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rk_error_set(err, RK_EIO, "writing %s: %s", tmp, strerror(errno));
            goto out;
        }
        p += w;
        len -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        rk_error_set(err, RK_EIO, "fsync %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rk_error_set(err, RK_EIO, "closing %s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rk_error_set(err, RK_EIO, "renaming %s to %s: %s", tmp, path, strerror(errno));
        goto out;
    }
    tmp[0] = '\0';
    r = fs_sync_dir_of(path, err);
out:
    if (fd >= 0)
        close(fd);
    if (tmp[0] != '\0')
        unlink(tmp);
    return r;
}

int
fs_read_all(const char *path, size_t maxlen, char **out, size_t *outlen, struct rk_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf = NULL;
    size_t cap, n = 0;

    if (fd < 0)
        return rk_error_set(err, errno == ENOENT ? RK_ENOTFOUND : RK_EIO, "opening %s: %s", path,
                            strerror(errno));
    cap = (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) ? (size_t)st.st_size + 1
                                                                         : 4096;
    if (cap > maxlen + 1)
        cap = maxlen + 1;
    buf = malloc(cap + 1);
    if (buf == NULL) {
        close(fd);
        return rk_error_set(err, RK_ENOMEM, "out of memory reading %s", path);
    }
    for (;;) {
        ssize_t rd;
        if (n == cap) {
            char *nb;
            if (cap > maxlen) {
                freezero(buf, cap + 1);
                close(fd);
                return rk_error_set(err, RK_ELIMIT, "%s is larger than %zu bytes", path, maxlen);
            }
            nb = malloc(cap * 2 + 1);
            if (nb == NULL) {
                freezero(buf, cap + 1);
                close(fd);
                return rk_error_set(err, RK_ENOMEM, "out of memory reading %s", path);
            }
            memcpy(nb, buf, n);
            freezero(buf, cap + 1);
            buf = nb;
            cap *= 2;
        }
        rd = read(fd, buf + n, cap - n);
        if (rd < 0 && errno == EINTR)
            continue;
        if (rd < 0) {
            freezero(buf, cap + 1);
            close(fd);
            return rk_error_set(err, RK_EIO, "reading %s: %s", path, strerror(errno));
        }
        if (rd == 0)
            break;
        n += (size_t)rd;
    }
    close(fd);
    if (n > maxlen) {
        freezero(buf, cap + 1);
        return rk_error_set(err, RK_ELIMIT, "%s is larger than %zu bytes", path, maxlen);
    }
    buf[n] = '\0';
    *out = buf;
    if (outlen != NULL)
        *outlen = n;
    return 0;
}
