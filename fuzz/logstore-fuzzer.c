/* libFuzzer target: the log store's file format and its recovery (src/store/logstore.c). The
 * input is the start of a store file; the rest of the file is zeros up to a whole number of
 * the chunks a store file grows by (a real file's preallocated tail, which would not fit in an
 * input). If it opens, every key is listed with its value and read back with get, one put is
 * made, the store is closed and opened again, and the second open must show the same keys plus
 * the put. An open that fails must fail with -RK_ECORRUPT or -RK_EVERSION and leave the file's
 * bytes alone.
 *
 * The seeds in fuzz/corpus/logstore/ are the first bytes (up to the end of the records) of small
 * stores written by the backend: one put; puts, overwrites, deletes and a multi-op txn; a
 * compacted store (SNAP records) with a txn after it; and two with a damaged tail. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/backend.h"
#include "store/logstore.h"
#include "util/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PUT_KEY "fuzz/put"
#define PUT_VAL "fuzz-value"

static char dir[64], path[128], loc[160], shm[160], compact[160];
static uint64_t chunk; /* the size of a new store file: files grow by whole ones */

struct ent {
    char *key;
    unsigned char *val;
    size_t vlen;
    int64_t mod_rev;
};

struct ents {
    struct ent *e;
    size_t n, cap;
};

static void
ents_free(struct ents *es)
{
    for (size_t i = 0; i < es->n; i++) {
        free(es->e[i].key);
        free(es->e[i].val);
    }
    free(es->e);
    memset(es, 0, sizeof(*es));
}

/* A list callback: keeps a copy of every entry; the keys must ascend. */
static int
collect_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    struct ents *es = arg;
    struct ent *x;

    if (es->n > 0 && strcmp(es->e[es->n - 1].key, key) >= 0)
        abort(); /* not ascending */
    if (mod_rev <= 0 || (val == NULL && vlen > 0))
        abort();
    if (es->n == es->cap) {
        size_t cap = es->cap ? es->cap * 2 : 16;
        struct ent *ne = realloc(es->e, cap * sizeof(*ne));

        if (ne == NULL)
            return -RK_ENOMEM;
        es->e = ne;
        es->cap = cap;
    }
    x = &es->e[es->n];
    x->key = strdup(key);
    x->val = malloc(vlen > 0 ? vlen : 1);
    if (x->key == NULL || x->val == NULL) {
        free(x->key);
        free(x->val);
        return -RK_ENOMEM;
    }
    if (vlen > 0)
        memcpy(x->val, val, vlen);
    x->vlen = vlen;
    x->mod_rev = mod_rev;
    es->n++;
    return 0;
}

static void
cleanup(void)
{
    unlink(path);
    unlink(shm);
    unlink(compact);
    rmdir(dir);
}

/* Writes the store file: data, then zeros (a hole) up to a whole number of chunks. */
static void
write_store(const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t done = 0;

    if (fd < 0)
        abort();
    while (done < size) {
        ssize_t k = write(fd, data + done, size - done);

        if (k <= 0)
            abort();
        done += (size_t)k;
    }
    if (size > 0 && ftruncate(fd, (off_t)((size + chunk - 1) / chunk * chunk)) != 0)
        abort();
    close(fd);
}

/* Whether the store file still holds data followed by zeros only, as write_store left it. */
static int
file_is(const uint8_t *data, size_t size)
{
    static const unsigned char zeros[65536];
    static unsigned char buf[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    uint64_t off = 0;
    ssize_t k;
    int same = 1;

    if (fd < 0)
        abort();
    /* memcmp, not a byte loop: the coverage instrumentation makes a loop over the zeros of a
     * whole chunk cost milliseconds */
    while (same && (k = read(fd, buf, sizeof(buf))) > 0) {
        size_t n = (size_t)k, d = off < size ? size - (size_t)off : 0;

        if (d > n)
            d = n;
        same = memcmp(buf, data + off, d) == 0 && memcmp(buf + d, zeros, n - d) == 0;
        off += n;
    }
    close(fd);
    return same && off >= size;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct backend *b = NULL;
    struct rk_error err = {0};
    struct stat st;

    (void)argc, (void)argv;
    log_set_level(LOG_ERROR); /* the repair warnings would drown libFuzzer's output */
    unsetenv("REKEY_FAULT");
    /* tmpfs when there is one: every put fdatasyncs */
    snprintf(dir, sizeof(dir), "%s/rekey-logstore-fuzz-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(path, sizeof(path), "%s/store.log", dir);
    snprintf(loc, sizeof(loc), "log:%s", path);
    snprintf(shm, sizeof(shm), "%s-shm", path);
    snprintf(compact, sizeof(compact), "%s.compact", path);
    atexit(cleanup);

    if (backend_open(loc, &b, &err) != 0)
        abort();
    backend_close(b);
    if (stat(path, &st) != 0 || st.st_size <= 0)
        abort();
    chunk = (uint64_t)st.st_size;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct backend *b = NULL;
    struct rk_error err = {0};
    struct ents first = {0}, again = {0};
    int64_t rev = 0, max_rev = 0;
    size_t put_at;
    int r;

    /* Every input starts from nothing but its own bytes (the side file keeps the published
     * end, which would otherwise carry over from the previous input). */
    unlink(shm);
    unlink(compact);
    write_store(data, size);

    r = backend_open(loc, &b, &err);
    if (r != 0) {
        if (b != NULL || (r != -RK_ECORRUPT && r != -RK_EVERSION))
            abort();
        if (!file_is(data, size))
            abort(); /* a failed open changed the file */
        return 0;
    }
    if (strcmp(b->ops->name, "log") != 0)
        abort();

    /* list everything, then read each key back */
    if (b->ops->list(b, "", NULL, 0, 0, collect_cb, &first, &err) != 0)
        abort();
    {
        struct logstore_stats st;

        logstore_backend_stats(b, &st);
        if (st.keys != first.n)
            abort();
    }
    for (size_t i = 0; i < first.n; i++) {
        unsigned char *v = NULL;
        size_t vl = 0;
        int64_t mr = 0;

        if (b->ops->get(b, first.e[i].key, &v, &vl, &mr, &err) != 0)
            abort();
        if (vl != first.e[i].vlen || memcmp(v, first.e[i].val, vl) != 0 || mr != first.e[i].mod_rev)
            abort();
        free(v);
        if (mr > max_rev)
            max_rev = mr;
    }

    /* one write: it must land, at a revision after every one the file holds */
    if (b->ops->put(b, PUT_KEY, PUT_VAL, strlen(PUT_VAL), &rev, &err) != 0)
        abort();
    if (rev <= max_rev)
        abort();
    backend_close(b);

    /* the store reopens with the same content plus the put */
    b = NULL;
    if (backend_open(loc, &b, &err) != 0)
        abort();
    if (b->ops->list(b, "", NULL, 0, 0, collect_cb, &again, &err) != 0)
        abort();
    for (put_at = 0; put_at < first.n && strcmp(first.e[put_at].key, PUT_KEY) < 0; put_at++)
        ;
    {
        int replaced = put_at < first.n && strcmp(first.e[put_at].key, PUT_KEY) == 0;
        size_t want = first.n + (replaced ? 0 : 1);

        if (again.n != want)
            abort();
        for (size_t i = 0, j = 0; i < again.n; i++) {
            const struct ent *x = &again.e[i];

            if (i == put_at) {
                if (strcmp(x->key, PUT_KEY) != 0 || x->vlen != strlen(PUT_VAL) ||
                    memcmp(x->val, PUT_VAL, x->vlen) != 0 || x->mod_rev != rev)
                    abort();
                if (replaced)
                    j++;
                continue;
            }
            if (strcmp(x->key, first.e[j].key) != 0 || x->vlen != first.e[j].vlen ||
                memcmp(x->val, first.e[j].val, x->vlen) != 0 || x->mod_rev != first.e[j].mod_rev)
                abort();
            j++;
        }
    }
    backend_close(b);
    ents_free(&first);
    ents_free(&again);
    return 0;
}
