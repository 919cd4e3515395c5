#include "cli/unseal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/barrier.h"
#include "util/enc.h"
#include "util/fsutil.h"

int
keyfile_read(const char *path, struct secret **key, struct rk_error *err)
{
    struct stat st;
    char *buf = NULL;
    size_t n = 0;
    struct secret *k = NULL;
    int r;

    if (stat(path, &st) != 0)
        return rk_error_set(err, errno == ENOENT ? RK_ENOTFOUND : RK_EIO, "key file %s: %s", path,
                            strerror(errno));
    if ((st.st_mode & 077) != 0)
        return rk_error_set(err, RK_EPERM,
                            "key file %s is readable by others (mode %03o); run: chmod 600 %s",
                            path, (unsigned)(st.st_mode & 0777), path);
    if ((r = fs_read_all(path, 256, &buf, &n, err)) != 0)
        return r;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    r = rk_error_set(err, RK_EBADKEY,
                     "key file %s does not hold a root key (expected %d hex characters)", path,
                     2 * ROOT_KEY_LEN);
    if (n == 2 * ROOT_KEY_LEN && (k = secret_new(ROOT_KEY_LEN)) != NULL &&
        hex_decode(buf, n, k->data, ROOT_KEY_LEN) == 0) {
        *key = k;
        k = NULL;
        r = 0;
        rk_error_clear(err);
    }
    secret_free(k);
    freezero(buf, n + 1);
    return r;
}

int
keyfile_write(const char *path, const struct secret *key, struct rk_error *err)
{
    char hex[2 * ROOT_KEY_LEN + 2];
    int fd, r = 0;
    size_t len = 2 * key->len + 1;

    if (key->len != ROOT_KEY_LEN)
        return rk_error_set(err, RK_EINTERNAL, "root key has the wrong length");
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return rk_error_set(err, errno == EEXIST ? RK_EEXISTS : RK_EIO, "creating key file %s: %s",
                            path, strerror(errno));
    hex_encode(key->data, key->len, hex);
    hex[len - 1] = '\n';
    if (write(fd, hex, len) != (ssize_t)len || fsync(fd) != 0)
        r = rk_error_set(err, RK_EIO, "writing key file %s: %s", path, strerror(errno));
    secure_wipe(hex, sizeof(hex));
    if (close(fd) != 0 && r == 0)
        r = rk_error_set(err, RK_EIO, "closing key file %s: %s", path, strerror(errno));
    if (r == 0)
        r = fs_sync_dir_of(path, err);
    if (r != 0)
        unlink(path);
    return r;
}

int
seal_config_parse(const char *json, char *type, size_t typelen, int *shares, int *threshold,
                  struct rk_error *err)
{
    json_error_t jerr;
    json_t *root = json_loads(json, 0, &jerr);
    const char *t = NULL;
    int s = 0, th = 0;

    if (root == NULL ||
        json_unpack(root, "{s:s, s?i, s?i}", "type", &t, "shares", &s, "threshold", &th) != 0) {
        json_decref(root);
        return rk_error_set(err, RK_ECORRUPT, "the store's seal configuration does not parse");
    }
    snprintf(type, typelen, "%s", t);
    *shares = s;
    *threshold = th;
    json_decref(root);
    return 0;
}
