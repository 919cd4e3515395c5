/* faulty.c: fault injection for the store: a wrapper backend that fails the Nth call of a kind,
 * and an SQLite VFS shim that fails the Nth fsync. Both are inert unless REKEY_FAULT asks. */
#include "store/faulty.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

/* ---- the spec ------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    enum fault_kind kind;
} fault_names[] = {
    {"txn", FAULT_TXN},   {"put", FAULT_PUT}, {"del", FAULT_DEL},     {"get", FAULT_GET},
    {"list", FAULT_LIST}, {"any", FAULT_ANY}, {"fsync", FAULT_FSYNC},
};

int
fault_spec_parse(const char *s, struct fault_spec *out, struct rk_error *err)
{
    const char *colon;
    char *end;
    unsigned long long n;

    out->kind = FAULT_NONE;
    out->nth = 0;
    if (s == NULL || s[0] == '\0')
        return 0;
    if ((colon = strchr(s, ':')) == NULL)
        goto bad;
    errno = 0;
    n = strtoull(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || n == 0 || colon[1] == '-')
        goto bad;
    for (size_t i = 0; i < sizeof(fault_names) / sizeof(fault_names[0]); i++) {
        if (strlen(fault_names[i].name) == (size_t)(colon - s) &&
            strncmp(s, fault_names[i].name, (size_t)(colon - s)) == 0) {
            out->kind = fault_names[i].kind;
            out->nth = n;
            return 0;
        }
    }
bad:
    return rk_error_set(err, RK_EINVAL,
                        "REKEY_FAULT must be KIND:N with KIND txn, put, del, get, list, any or "
                        "fsync and N >= 1");
}

/* ---- the wrapper backend -------------------------------------------------------------------- */

struct faulty_backend {
    struct backend base;
    struct backend *inner;
    struct fault_spec spec;
    atomic_uint_fast64_t count;
};

/* Counts a call of kind k; returns -RK_EIO if it is the one to fail. */
static int
fault_hit(struct faulty_backend *fb, enum fault_kind k, const char *what, struct rk_error *err)
{
    enum fault_kind s = fb->spec.kind;
    uint64_t n;

    if (s != FAULT_ANY && s != k && !(s == FAULT_TXN && (k == FAULT_PUT || k == FAULT_DEL)))
        return 0;
    n = atomic_fetch_add(&fb->count, 1) + 1;
    if (n != fb->spec.nth)
        return 0;
    log_warn("REKEY_FAULT: injecting a failure into %s call %" PRIu64, what, n);
    return rk_error_set(err, RK_EIO, "injected fault: %s call %" PRIu64 " failed", what, n);
}

static int
fb_open(const char *location, struct backend **out, struct rk_error *err)
{
    (void)location;
    *out = NULL;
    return rk_error_set(err, RK_EINVAL,
                        "the faulty backend only wraps another one: set REKEY_FAULT and use "
                        "backend_open");
}

static void
fb_close(struct backend *b)
{
    struct faulty_backend *fb = (struct faulty_backend *)b;

    if (fb == NULL)
        return;
    if (fb->inner != NULL)
        fb->inner->ops->close(fb->inner);
    free(fb);
}

static int
fb_get(struct backend *b, const char *key, unsigned char **val, size_t *vlen, int64_t *mod_rev,
       struct rk_error *err)
{
    struct faulty_backend *fb = (struct faulty_backend *)b;
    int r;

    if ((r = fault_hit(fb, FAULT_GET, "get", err)) != 0) {
        *val = NULL;
        *vlen = 0;
        return r;
    }
    return fb->inner->ops->get(fb->inner, key, val, vlen, mod_rev, err);
}

static int
fb_put(struct backend *b, const char *key, const void *val, size_t vlen, int64_t *rev,
       struct rk_error *err)
{
    struct faulty_backend *fb = (struct faulty_backend *)b;
    int r;

    if ((r = fault_hit(fb, FAULT_PUT, "put", err)) != 0)
        return r;
    return fb->inner->ops->put(fb->inner, key, val, vlen, rev, err);
}

static int
fb_del(struct backend *b, const char *key, int64_t *rev, struct rk_error *err)
{
    struct faulty_backend *fb = (struct faulty_backend *)b;
    int r;

    if ((r = fault_hit(fb, FAULT_DEL, "del", err)) != 0)
        return r;
    return fb->inner->ops->del(fb->inner, key, rev, err);
}

static int
fb_list(struct backend *b, const char *prefix, const char *start_after, size_t limit, int keys_only,
        store_list_cb cb, void *arg, struct rk_error *err)
{
    struct faulty_backend *fb = (struct faulty_backend *)b;
    int r;

    if ((r = fault_hit(fb, FAULT_LIST, "list", err)) != 0)
        return r;
    return fb->inner->ops->list(fb->inner, prefix, start_after, limit, keys_only, cb, arg, err);
}

static int
fb_txn(struct backend *b, const struct store_cmp *cmps, size_t ncmps, const struct store_op *ops,
       size_t nops, int64_t *rev, struct rk_error *err)
{
    struct faulty_backend *fb = (struct faulty_backend *)b;
    int r;

    if ((r = fault_hit(fb, FAULT_TXN, "txn", err)) != 0)
        return r;
    return fb->inner->ops->txn(fb->inner, cmps, ncmps, ops, nops, rev, err);
}

const struct backend_ops faulty_backend_ops = {
    .version = BACKEND_OPS_VERSION,
    .name = "faulty",
    .open = fb_open,
    .close = fb_close,
    .get = fb_get,
    .put = fb_put,
    .del = fb_del,
    .list = fb_list,
    .txn = fb_txn,
};

int
faulty_wrap(struct backend *inner, const struct fault_spec *spec, struct backend **out,
            struct rk_error *err)
{
    struct faulty_backend *fb;

    *out = NULL;
    if (spec->kind == FAULT_NONE || spec->kind == FAULT_FSYNC || spec->nth == 0) {
        inner->ops->close(inner);
        return rk_error_set(err, RK_EINVAL, "fault kind cannot be injected by the wrapper");
    }
    if ((fb = calloc(1, sizeof(*fb))) == NULL) {
        inner->ops->close(inner);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    fb->base.ops = &faulty_backend_ops;
    fb->inner = inner;
    fb->spec = *spec;
    atomic_init(&fb->count, 0);
    *out = &fb->base;
    return 0;
}

/* ---- the SQLite VFS shim -------------------------------------------------------------------- */

struct faulty_vfs {
    sqlite3_vfs vfs; /* first: SQLite hands us back this pointer */
    sqlite3_vfs *root;
    char name[48];
    uint64_t nth;
    atomic_int armed;
    atomic_uint_fast64_t count;
};

/* Our file object: the header, then the real file of the root VFS. */
struct ffile {
    sqlite3_file base;
    struct faulty_vfs *fv;
    sqlite3_file *real;
};

#define REAL(f) (((struct ffile *)(f))->real)

static int
ff_close(sqlite3_file *f)
{
    sqlite3_file *r = REAL(f);
    return r->pMethods != NULL ? r->pMethods->xClose(r) : SQLITE_OK;
}
static int
ff_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}
static int
ff_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}
static int
ff_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int
ff_sync(sqlite3_file *f, int flags)
{
    struct faulty_vfs *fv = ((struct ffile *)f)->fv;

    if (atomic_load(&fv->armed)) {
        uint64_t n = atomic_fetch_add(&fv->count, 1) + 1;
        if (n == fv->nth) {
            log_warn("REKEY_FAULT: injecting a failure into fsync %" PRIu64, n);
            return SQLITE_IOERR_FSYNC;
        }
    }
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int
ff_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int
ff_lock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int
ff_unlock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int
ff_check_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int
ff_file_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int
ff_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int
ff_device_chars(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int
ff_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}
static int
ff_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}
static void
ff_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int
ff_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int
ff_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, amt, pp);
}
static int
ff_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods ff_methods = {
    .iVersion = 3,
    .xClose = ff_close,
    .xRead = ff_read,
    .xWrite = ff_write,
    .xTruncate = ff_truncate,
    .xSync = ff_sync,
    .xFileSize = ff_file_size,
    .xLock = ff_lock,
    .xUnlock = ff_unlock,
    .xCheckReservedLock = ff_check_reserved,
    .xFileControl = ff_file_control,
    .xSectorSize = ff_sector_size,
    .xDeviceCharacteristics = ff_device_chars,
    .xShmMap = ff_shm_map,
    .xShmLock = ff_shm_lock,
    .xShmBarrier = ff_shm_barrier,
    .xShmUnmap = ff_shm_unmap,
    .xFetch = ff_fetch,
    .xUnfetch = ff_unfetch,
};

static int
fv_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    struct faulty_vfs *fv = (struct faulty_vfs *)vfs;
    struct ffile *ff = (struct ffile *)f;
    int rc;

    ff->fv = fv;
    ff->real = (sqlite3_file *)(ff + 1);
    rc = fv->root->xOpen(fv->root, name, ff->real, flags, out_flags);
    /* SQLite calls xClose only when pMethods is set; mirror the root's choice. */
    ff->base.pMethods = ff->real->pMethods != NULL ? &ff_methods : NULL;
    return rc;
}
static int
fv_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    sqlite3_vfs *root = ((struct faulty_vfs *)vfs)->root;
    return root->xDelete(root, name, sync_dir);
}
static int
fv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    sqlite3_vfs *root = ((struct faulty_vfs *)vfs)->root;
    return root->xAccess(root, name, flags, out);
}
static int
fv_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    sqlite3_vfs *root = ((struct faulty_vfs *)vfs)->root;
    return root->xFullPathname(root, name, n, out);
}
static void *
fv_dlopen(sqlite3_vfs *vfs, const char *name)
{
    sqlite3_vfs *root = ((struct faulty_vfs *)vfs)->root;
    return root->xDlOpen(root, name);
}
static void
fv_dlerror(sqlite3_vfs *vfs, int n, char *msg)
{
    sqlite3_vfs *root = ((struct faulty_vfs *)vfs)->root;
    root->xDlError(root, n, msg);
}
static void (*fv_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    sqlite3_vfs *root = ((struct faulty_vfs *)vfs)->root;
    return root->xDlSym(root, h, sym);
}
static void
fv_dlclose(sqlite3_vfs *vfs, void *h)
{
    sqlite3_vfs *root = ((struct faulty_vfs *)vfs)->root;
    root->xDlClose(root, h);
}
static int
fv_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    sqlite3_vfs *root = ((struct faulty_vfs *)vfs)->root;
    return root->xRandomness(root, n, out);
}
static int
fv_sleep(sqlite3_vfs *vfs, int us)
{
    sqlite3_vfs *root = ((struct faulty_vfs *)vfs)->root;
    return root->xSleep(root, us);
}
static int
fv_current_time(sqlite3_vfs *vfs, double *out)
{
    sqlite3_vfs *root = ((struct faulty_vfs *)vfs)->root;
    return root->xCurrentTime(root, out);
}
static int
fv_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    sqlite3_vfs *root = ((struct faulty_vfs *)vfs)->root;
    return root->xGetLastError(root, n, out);
}
static int
fv_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    sqlite3_vfs *root = ((struct faulty_vfs *)vfs)->root;
    return root->xCurrentTimeInt64(root, out);
}

static atomic_uint vfs_seq;

int
faulty_vfs_new(uint64_t nth, struct faulty_vfs **out, const char **name, struct rk_error *err)
{
    struct faulty_vfs *fv;
    sqlite3_vfs *root;
    int rc;

    *out = NULL;
    *name = NULL;
    if ((root = sqlite3_vfs_find(NULL)) == NULL)
        return rk_error_set(err, RK_EINTERNAL, "SQLite has no default VFS");
    if ((fv = calloc(1, sizeof(*fv))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    fv->root = root;
    fv->nth = nth;
    atomic_init(&fv->armed, 0);
    atomic_init(&fv->count, 0);
    /* A name per store, so every store counts its own fsyncs. */
    snprintf(fv->name, sizeof(fv->name), "rekey-faulty-%u", atomic_fetch_add(&vfs_seq, 1));
    fv->vfs.iVersion = root->iVersion < 2 ? root->iVersion : 2;
    fv->vfs.szOsFile = (int)sizeof(struct ffile) + root->szOsFile;
    fv->vfs.mxPathname = root->mxPathname;
    fv->vfs.zName = fv->name;
    fv->vfs.pAppData = NULL;
    fv->vfs.xOpen = fv_open;
    fv->vfs.xDelete = fv_delete;
    fv->vfs.xAccess = fv_access;
    fv->vfs.xFullPathname = fv_full_pathname;
    fv->vfs.xDlOpen = fv_dlopen;
    fv->vfs.xDlError = fv_dlerror;
    fv->vfs.xDlSym = fv_dlsym;
    fv->vfs.xDlClose = fv_dlclose;
    fv->vfs.xRandomness = fv_randomness;
    fv->vfs.xSleep = fv_sleep;
    fv->vfs.xCurrentTime = fv_current_time;
    fv->vfs.xGetLastError = fv_last_error;
    fv->vfs.xCurrentTimeInt64 = fv_current_time64;
    if ((rc = sqlite3_vfs_register(&fv->vfs, 0)) != SQLITE_OK) {
        free(fv);
        return rk_error_set(err, RK_EINTERNAL, "registering the fault VFS: %s", sqlite3_errstr(rc));
    }
    *out = fv;
    *name = fv->name;
    return 0;
}

void
faulty_vfs_arm(struct faulty_vfs *fv)
{
    if (fv != NULL)
        atomic_store(&fv->armed, 1);
}

void
faulty_vfs_free(struct faulty_vfs *fv)
{
    if (fv == NULL)
        return;
    sqlite3_vfs_unregister(&fv->vfs);
    free(fv);
}
