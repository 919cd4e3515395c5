/* backend.c: the backend registry and backend_open (location parsing, fault injection). */
#include "store/backend.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/etcd.h"
#include "store/faulty.h"
#include "store/logstore.h"
#include "store/sqlite.h"
#include "util/testsw.h"

/* One row per backend kind. A row with ops == NULL is a known scheme not implemented yet. */
static const struct {
    const char *scheme;
    const struct backend_ops *ops;
} registry[] = {
    {"sqlite", &sqlite_backend_ops},
    {"log", &log_backend_ops},
    {"etcd", &etcd_backend_ops},
};

#define NREGISTRY (sizeof(registry) / sizeof(registry[0]))

const struct backend_ops *
backend_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < NREGISTRY; i++)
        if (registry[i].ops != NULL && strcmp(registry[i].scheme, name) == 0)
            return registry[i].ops;
    if (strcmp(name, faulty_backend_ops.name) == 0)
        return &faulty_backend_ops;
    return NULL;
}

/* Whether path is an existing log store file (it starts with the log's magic). */
static int
is_log_file(const char *path)
{
    char magic[8];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return 0;
    n = read(fd, magic, sizeof(magic));
    close(fd);
    return n == (ssize_t)sizeof(magic) && memcmp(magic, "rekeylog", sizeof(magic)) == 0;
}

int
backend_open(const char *location, struct backend **out, struct rk_error *err)
{
    const struct backend_ops *ops = &sqlite_backend_ops;
    const char *rest = location;
    struct fault_spec spec;
    struct backend *b = NULL;
    int r;

    *out = NULL;
    if (location == NULL || location[0] == '\0')
        return rk_error_set(err, RK_EINVAL, "store location is empty");
    /* Read once, here: the fault applies to this store for its whole life. */
    if ((r = fault_spec_parse(test_switch("REKEY_FAULT"), &spec, err)) != 0)
        return r;

    /* "scheme:rest" when scheme is a known one; anything else is a path (paths may hold ':'). */
    for (size_t i = 0; i < NREGISTRY; i++) {
        size_t n = strlen(registry[i].scheme);

        if (strncmp(location, registry[i].scheme, n) != 0 || location[n] != ':')
            continue;
        if (registry[i].ops == NULL)
            /* The location is not echoed: an etcd URL may carry credentials. */
            return rk_error_set(err, RK_ENOTIMPL,
                                "the %s storage backend is not implemented yet; use sqlite:PATH",
                                registry[i].scheme);
        ops = registry[i].ops;
        rest = location + n + 1;
        break;
    }
    if (rest[0] == '\0')
        return rk_error_set(err, RK_EINVAL, "store location %s has no path", location);

    if (rest == location && is_log_file(rest))
        ops = &log_backend_ops; /* a plain path names either kind of store file */
    if (ops == &sqlite_backend_ops)
        r = sqlite_backend_open_ex(rest, spec.kind == FAULT_FSYNC ? spec.nth : 0, &b, err);
    else if (ops == &log_backend_ops)
        r = logstore_open_ex(rest, spec.kind == FAULT_FSYNC ? spec.nth : 0, &b, err);
    else if (spec.kind == FAULT_FSYNC)
        return rk_error_set(err, RK_EINVAL, "REKEY_FAULT=fsync:N needs the sqlite or log backend");
    else
        r = ops->open(rest, &b, err);
    if (r != 0)
        return r;
    if (spec.kind != FAULT_NONE && spec.kind != FAULT_FSYNC)
        return faulty_wrap(b, &spec, out, err);
    *out = b;
    return 0;
}

void
backend_close(struct backend *b)
{
    if (b != NULL)
        b->ops->close(b);
}

void
backend_trim(struct backend *b)
{
    if (b != NULL && b->ops->trim != NULL)
        b->ops->trim(b);
}
