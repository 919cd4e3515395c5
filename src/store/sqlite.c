/* sqlite.c: the embedded SQLite backend.
 *
 * Layout: one table kv(key, value, mod_rev) WITHOUT ROWID and a meta table holding the global
 * revision and the schema version; PRAGMA application_id marks the file as a rekey store.
 * Journal: WAL, synchronous=FULL (a commit is durable when it returns), secure_delete=ON (old
 * ciphertext does not linger in free pages).
 *
 * Reads use one connection per thread (a pthread key), so readers never queue behind the writer
 * or each other; their statements are prepared once. Writes go through group commit (gcommit.h):
 * the leader runs its whole batch as ONE SQLite transaction (each caller's transaction inside its
 * own SAVEPOINT, so a failed compare rolls back only that one) and commits once (one fsync). */
#include "store/sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/log.h"
#include "util/parse.h"
#include "store/faulty.h"
#include "store/gcommit.h"
#include "store/sqcache.h"
#include "store/sqlite_mutex.h"

#define SQ_APPLICATION_ID 0x726b7931 /* "rky1" */
#define SQ_SCHEMA_VERSION 1
#define SQ_BUSY_TIMEOUT_MS 10000
#define SQ_CACHE_MIB_DEFAULT 64 /* the read cache's budget; $REKEY_STORE_CACHE (MiB) overrides */
#define SQ_CACHE_MIB_MAX 65536

struct sq_backend;

/* One reader connection, owned by one thread. */
struct sq_reader {
    sqlite3 *db;
    sqlite3_stmt *get;
    sqlite3_stmt *list_ge; /* key >= ?1 */
    sqlite3_stmt *list_gt; /* key > ?1 */
    sqlite3_stmt *rev;     /* the global revision (read cache validation) */
    int listing;           /* > 0 while a list on this connection is between its steps */
    struct sq_backend *sb;
    struct sq_reader *prev, *next;
};

enum {
    W_BEGIN,
    W_COMMIT,
    W_ROLLBACK,
    W_SAVEPOINT,
    W_RELEASE,
    W_ROLLBACK_TO,
    W_GET_REV,
    W_SET_REV,
    W_CMP,
    W_PUT,
    W_DEL,
    W_NSTMT
};

static const char *const wsql[W_NSTMT] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_SAVEPOINT] = "SAVEPOINT caller",
    [W_RELEASE] = "RELEASE caller",
    [W_ROLLBACK_TO] = "ROLLBACK TO caller",
    [W_GET_REV] = "SELECT value FROM meta WHERE name = 'revision'",
    [W_SET_REV] = "UPDATE meta SET value = ?1 WHERE name = 'revision'",
    [W_CMP] = "SELECT mod_rev FROM kv WHERE key = ?1",
    [W_PUT] = ("INSERT INTO kv(key, value, mod_rev) VALUES (?1, ?2, ?3) "
               "ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev"),
    [W_DEL] = "DELETE FROM kv WHERE key = ?1",
};

struct sq_backend {
    struct backend base;
    char *path;
    struct faulty_vfs *fvfs;
    const char *vfs_name; /* NULL = default VFS */

    /* writer: used only by the current group-commit leader */
    sqlite3 *wdb;
    sqlite3_stmt *w[W_NSTMT];

    struct gcommit gc;

    /* readers */
    pthread_key_t rkey;
    int rkey_ok;
    pthread_mutex_t rlock;
    struct sq_reader *readers;

    /* The shared read cache (sqcache.h; NULL: none) and what keeps it true to the file when
     * other processes write it too. shm maps the head of the WAL index (read only). known is the
     * WAL-index state (shm_state) at which the cache was last found to hold nothing but this
     * process's own commits; own_rev is the revision of the latest commit the cache follows.
     * vlock serialises validation (cache_validate) with the publication of a commit. */
    struct sqcache *cache;
    const void *shm;
    int shm_fd; /* the WAL index's descriptor behind shm, -1 when none (kept open: cache_setup) */
    pthread_mutex_t vlock;
    _Atomic uint64_t known;
    int64_t own_rev; /* under vlock */
};

static uint64_t run_batch(void *arg, struct gc_req *batch);

static const char *const list_ge_sql =
    "SELECT key, value, mod_rev FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT ?3";
static const char *const list_gt_sql =
    "SELECT key, value, mod_rev FROM kv WHERE key > ?1 AND key < ?2 ORDER BY key LIMIT ?3";

static int
sq_is_corrupt_rc(int rc)
{
    rc &= 0xff;
    return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB;
}

/* Maps an SQLite failure to an RK code and message. */
static int
sq_fail(struct rk_error *err, sqlite3 *db, int rc, const char *path, const char *what)
{
    if (sq_is_corrupt_rc(rc))
        return rk_error_set(err, RK_ECORRUPT, "store file %s is corrupted or not a rekey store",
                            path);
    if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
        return rk_error_set(err, RK_EBUSY, "store %s: %s: locked by another process (%s)", path,
                            what, db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    return rk_error_set(err, RK_EIO, "store %s: %s: %s", path, what,
                        db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static int
bind_blob(sqlite3_stmt *st, int idx, const void *val, size_t vlen)
{
    /* sqlite3_bind_blob with a NULL pointer binds SQL NULL; an empty value is an empty blob. */
    if (vlen == 0)
        return sqlite3_bind_zeroblob(st, idx, 0);
    return sqlite3_bind_blob64(st, idx, val, vlen, SQLITE_STATIC);
}

/* Executes a statement with no result rows (or ignores them) on db. */
static int
exec_sql(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* ---- file checks ---------------------------------------------------------------------------- */

static uint32_t
be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Creates path with mode 0600 if missing, and refuses an existing file that cannot be an intact
 * SQLite database: wrong magic, shorter than its header says (truncated). SQLite itself would
 * only notice when a missing page is read. */
static int
check_or_create_file(const char *path, struct rk_error *err)
{
    unsigned char hdr[100];
    struct stat st, wst;
    char walpath[PATH_MAX];
    int fd = -1, r = -RK_EINTERNAL;
    ssize_t n;

    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        if (errno == ENOENT)
            return rk_error_set(err, RK_ENOTFOUND, "store %s: directory does not exist", path);
        if (errno == EISDIR)
            return rk_error_set(err, RK_EINVAL, "store %s is a directory, not a file", path);
        if (errno == EACCES || errno == EPERM)
            return rk_error_set(err, RK_EPERM, "store %s: %s", path, strerror(errno));
        return rk_error_set(err, RK_EIO, "store %s: %s", path, strerror(errno));
    }
    if (fstat(fd, &st) != 0) {
        r = rk_error_set(err, RK_EIO, "store %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        r = rk_error_set(err, RK_EINVAL, "store %s is not a regular file", path);
        goto out;
    }
    if (st.st_size == 0) {
        r = 0; /* new (or never written) store: SQLite initialises it */
        goto out;
    }
    n = pread(fd, hdr, sizeof(hdr), 0);
    if (n < 0) {
        r = rk_error_set(err, RK_EIO, "store %s: %s", path, strerror(errno));
        goto out;
    }
    if ((size_t)n < sizeof(hdr) || memcmp(hdr, "SQLite format 3", 16) != 0) {
        r = rk_error_set(err, RK_ECORRUPT, "store file %s is corrupted or not a rekey store", path);
        goto out;
    }
    {
        uint32_t psz = (uint32_t)hdr[16] << 8 | hdr[17];
        uint32_t change = be32(hdr + 24), npages = be32(hdr + 28), valid_for = be32(hdr + 92);
        int wal_nonempty;

        if (psz == 1)
            psz = 65536;
        if (psz < 512 || (psz & (psz - 1)) != 0 || st.st_size % psz != 0) {
            r = rk_error_set(err, RK_ECORRUPT,
                             "store file %s is corrupted or not a rekey store (truncated)", path);
            goto out;
        }
        /* With a WAL present the file may legitimately lag behind the header during recovery. */
        snprintf(walpath, sizeof(walpath), "%s-wal", path);
        wal_nonempty = stat(walpath, &wst) == 0 && wst.st_size > 0;
        if (!wal_nonempty && change == valid_for && npages > 0 &&
            (uint64_t)npages * psz > (uint64_t)st.st_size) {
            r = rk_error_set(err, RK_ECORRUPT,
                             "store file %s is corrupted or not a rekey store (truncated: %u "
                             "pages expected, %lld present)",
                             path, npages, (long long)(st.st_size / psz));
            goto out;
        }
    }
    r = 0;
out:
    if (fd >= 0)
        close(fd);
    return r;
}

/* ---- connections ---------------------------------------------------------------------------- */

static int
open_conn(struct sq_backend *sb, sqlite3 **out, struct rk_error *err)
{
    sqlite3 *db = NULL;
    int rc;

    rc = sqlite3_open_v2(sb->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, sb->vfs_name);
    if (rc != SQLITE_OK) {
        int r = sq_fail(err, db, rc, sb->path, "open");
        sqlite3_close_v2(db);
        return r;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, SQ_BUSY_TIMEOUT_MS);
    *out = db;
    return 0;
}

static void
reader_close(struct sq_reader *rd)
{
    if (rd == NULL)
        return;
    sqlite3_finalize(rd->get);
    sqlite3_finalize(rd->list_ge);
    sqlite3_finalize(rd->list_gt);
    sqlite3_finalize(rd->rev);
    sqlite3_close_v2(rd->db);
    free(rd);
}

/* Thread exit: drop this thread's reader. */
static void
reader_destroy(void *p)
{
    struct sq_reader *rd = p;
    struct sq_backend *sb = rd->sb;

    pthread_mutex_lock(&sb->rlock);
    if (rd->prev != NULL)
        rd->prev->next = rd->next;
    else
        sb->readers = rd->next;
    if (rd->next != NULL)
        rd->next->prev = rd->prev;
    pthread_mutex_unlock(&sb->rlock);
    reader_close(rd);
}

static int
reader_get(struct sq_backend *sb, struct sq_reader **out, struct rk_error *err)
{
    struct sq_reader *rd = pthread_getspecific(sb->rkey);
    int rc, r;

    if (rd != NULL) {
        *out = rd;
        return 0;
    }
    if ((rd = calloc(1, sizeof(*rd))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    rd->sb = sb;
    if ((r = open_conn(sb, &rd->db, err)) != 0)
        goto fail;
    /* No mmap: every time a checkpoint grows the file, each reader with a mapping remaps it
     * (munmap of every mapped page, TLB shootdowns, faults to map them again), which cost
     * writers more than it saved readers; a page missing from the connection's cache is one
     * pread from the OS page cache instead. */
    exec_sql(rd->db, "PRAGMA query_only = ON; PRAGMA mmap_size = 0;"
                     "PRAGMA cache_size = -16384;");
    if ((rc = sqlite3_prepare_v3(rd->db, "SELECT value, mod_rev FROM kv WHERE key = ?1", -1,
                                 SQLITE_PREPARE_PERSISTENT, &rd->get, NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v3(rd->db, list_ge_sql, -1, SQLITE_PREPARE_PERSISTENT, &rd->list_ge,
                                 NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v3(rd->db, list_gt_sql, -1, SQLITE_PREPARE_PERSISTENT, &rd->list_gt,
                                 NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v3(rd->db, wsql[W_GET_REV], -1, SQLITE_PREPARE_PERSISTENT, &rd->rev,
                                 NULL)) != SQLITE_OK) {
        r = sq_fail(err, rd->db, rc, sb->path, "preparing reads");
        goto fail;
    }
    if (pthread_setspecific(sb->rkey, rd) != 0) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory (thread-local reader)");
        goto fail;
    }
    pthread_mutex_lock(&sb->rlock);
    rd->next = sb->readers;
    if (sb->readers != NULL)
        sb->readers->prev = rd;
    sb->readers = rd;
    pthread_mutex_unlock(&sb->rlock);
    *out = rd;
    return 0;
fail:
    reader_close(rd);
    return r;
}

/* ---- the read cache's coherence ------------------------------------------------------------
 *
 * Within this process the writer publishes each commit to the cache (run_batch). Another process
 * writing the same file (the CLI beside a running server) is seen through the WAL index, the
 * "-shm" file every connection to the database shares (https://www.sqlite.org/walformat.html):
 * it begins with two copies of a 48-byte header, the second written first, and every commit
 * changes their iChange and mxFrame. While the header is the one last validated, nothing has
 * been committed since, and the cache can answer. When it has changed, cache_validate reads the
 * revision row: if it is the revision of this process's latest commit, all the new commits were
 * this process's own (already published); if not, another process wrote, and the cache is
 * emptied. The writer also compares, in its write transaction, the revision it starts from with
 * own_rev, and empties the cache when another process committed in between. */
#define SQ_SHM_MAP 4096u
#define SQ_WALINDEX_VERSION 3007000u

/* The WAL-index state as one nonzero number, or 0 while a header write is in flight. */
static uint64_t
shm_state(const struct sq_backend *sb)
{
    const volatile uint32_t *h = sb->shm;
    uint32_t change0 = h[2], frames0 = h[4], change1, frames1;

    atomic_thread_fence(memory_order_acquire);
    change1 = h[12 + 2];
    frames1 = h[12 + 4];
    if (change0 != change1 || frames0 != frames1)
        return 0;
    return (uint64_t)change0 << 32 | (frames0 & 0x7fffffffu) | 0x80000000u;
}

/* The revision row as the calling thread's reader sees it now: 0 or a negative RK_E*. */
static int
read_revision(struct sq_reader *rd, int64_t *rev)
{
    int rc = sqlite3_step(rd->rev);

    if (rc == SQLITE_ROW)
        *rev = sqlite3_column_int64(rd->rev, 0);
    sqlite3_reset(rd->rev);
    return rc == SQLITE_ROW ? 0 : -RK_EIO;
}

/* Called when the WAL index is at state, not the known one. Returns 1 when the cache may be
 * used (it follows state now), 0 when not this time (another thread is validating or a commit
 * is being published: read from SQLite). */
static int
cache_validate(struct sq_backend *sb, struct sq_reader *rd, uint64_t state)
{
    int64_t rev = 0;
    int ok = 0;

    if (pthread_mutex_trylock(&sb->vlock) != 0)
        return 0;
    if (atomic_load(&sb->known) != state) {
        /* state was read before this read transaction began: the revision is at least as new
         * as state, so a foreign commit up to state cannot go unseen. */
        if (read_revision(rd, &rev) != 0)
            goto out;
        if (rev != sb->own_rev) {
            sqcache_clear(sb->cache);
            sb->own_rev = rev;
        }
        atomic_store(&sb->known, state);
    }
    ok = 1;
out:
    pthread_mutex_unlock(&sb->vlock);
    return ok;
}

/* Sets up the read cache once the writer has the database open in WAL mode (which created and
 * initialised the WAL index). Without a WAL index it can check (another SQLite, a VFS without
 * shared memory), there is no cache, which costs speed only. */
static void
cache_setup(struct sq_backend *sb)
{
    const char *dbfile = sqlite3_db_filename(sb->wdb, "main"), *env = getenv("REKEY_STORE_CACHE");
    int64_t mib = SQ_CACHE_MIB_DEFAULT, rev = 0;
    char shmpath[PATH_MAX];
    struct stat st;
    void *m;
    int fd, rc;

    if (env != NULL && env[0] != '\0' && parse_int64(env, 0, SQ_CACHE_MIB_MAX, &mib) != 0) {
        log_warn("REKEY_STORE_CACHE=%s is not a size in MiB from 0 to %d; using %d", env,
                 SQ_CACHE_MIB_MAX, SQ_CACHE_MIB_DEFAULT);
        mib = SQ_CACHE_MIB_DEFAULT;
    }
    if (mib == 0 || dbfile == NULL || dbfile[0] == '\0')
        return;
    if ((size_t)snprintf(shmpath, sizeof(shmpath), "%s-shm", dbfile) >= sizeof(shmpath))
        return;
    if ((fd = open(shmpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
        return;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)SQ_SHM_MAP) {
        close(fd);
        return;
    }
    m = mmap(NULL, SQ_SHM_MAP, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        close(fd);
        return;
    }
    /* The descriptor stays open until SQLite has closed the store (sq_close): closing any
     * descriptor of a file drops every POSIX lock the process holds on it, SQLite's own on the
     * WAL index included. Without its shared lock there, the next process to open the store
     * believes it is the first, truncates the WAL index and rebuilds it under this process's
     * readers (whose mapping then faults with SIGBUS, or reads a rebuilt index). */
    sb->shm_fd = fd;
    sb->shm = m;
    {
        const volatile uint32_t *h = sb->shm;
        const volatile unsigned char *b = sb->shm;

        if (h[0] != SQ_WALINDEX_VERSION || b[12] != 1) {
            log_debug("store %s: unexpected WAL index; no read cache", sb->path);
            return;
        }
    }
    /* own_rev starts at the revision now: nothing is cached yet, so the cache follows it. */
    rc = sqlite3_step(sb->w[W_GET_REV]);
    if (rc == SQLITE_ROW)
        rev = sqlite3_column_int64(sb->w[W_GET_REV], 0);
    sqlite3_reset(sb->w[W_GET_REV]);
    if (rc != SQLITE_ROW)
        return;
    sb->own_rev = rev;
    atomic_init(&sb->known, 0);
    sb->cache = sqcache_new((size_t)mib << 20);
}

/* Creates the schema in a new file, or checks that an existing one is a rekey store. */
static int
init_schema(struct sq_backend *sb, struct rk_error *err)
{
    sqlite3 *db = sb->wdb;
    sqlite3_stmt *st = NULL;
    int rc, r = -RK_EINTERNAL;
    int64_t ntables = 0, appid = 0, schema = 0;

    if ((rc = exec_sql(db, "BEGIN IMMEDIATE")) != SQLITE_OK)
        return sq_fail(err, db, rc, sb->path, "reading the schema");
    rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        ntables = sqlite3_column_int64(st, 0), rc = SQLITE_OK;
    sqlite3_finalize(st), st = NULL;
    if (rc != SQLITE_OK) {
        r = sq_fail(err, db, rc, sb->path, "reading the schema");
        goto out;
    }
    rc = sqlite3_prepare_v2(db, "PRAGMA application_id", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        appid = sqlite3_column_int64(st, 0), rc = SQLITE_OK;
    sqlite3_finalize(st), st = NULL;
    if (rc != SQLITE_OK) {
        r = sq_fail(err, db, rc, sb->path, "reading the schema");
        goto out;
    }
    if (ntables == 0 && appid == 0) {
        char sql[512];
        snprintf(sql, sizeof(sql),
                 "CREATE TABLE kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL,"
                 " mod_rev INTEGER NOT NULL) WITHOUT ROWID;"
                 "CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL)"
                 " WITHOUT ROWID;"
                 "INSERT INTO meta(name, value) VALUES ('revision', 0), ('schema', %d);"
                 "PRAGMA application_id = %d;",
                 SQ_SCHEMA_VERSION, SQ_APPLICATION_ID);
        if ((rc = exec_sql(db, sql)) != SQLITE_OK) {
            r = sq_fail(err, db, rc, sb->path, "creating the schema");
            goto out;
        }
        if ((rc = exec_sql(db, "COMMIT")) != SQLITE_OK) {
            r = sq_fail(err, db, rc, sb->path, "creating the schema");
            goto out;
        }
        r = fs_sync_dir_of(sb->path, err);
        goto out;
    }
    if (appid != SQ_APPLICATION_ID) {
        r = rk_error_set(err, RK_ECORRUPT, "store file %s is corrupted or not a rekey store",
                         sb->path);
        goto out;
    }
    rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE name = 'schema'", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        schema = sqlite3_column_int64(st, 0), rc = SQLITE_OK;
    else if (rc == SQLITE_DONE)
        rc = SQLITE_CORRUPT;
    sqlite3_finalize(st), st = NULL;
    if (rc != SQLITE_OK) {
        r = sq_fail(err, db, rc, sb->path, "reading the schema version");
        goto out;
    }
    if (schema > SQ_SCHEMA_VERSION) {
        r = rk_error_set(err, RK_EVERSION,
                         "store %s has schema version %lld; this rekey reads up to %d", sb->path,
                         (long long)schema, SQ_SCHEMA_VERSION);
        goto out;
    }
    r = 0;
out:
    if (!sqlite3_get_autocommit(db))
        exec_sql(db, "ROLLBACK");
    return r;
}

/* A damaged page is otherwise only noticed by the first read that happens to touch it; reads
 * touch few pages (a plain KV read is one key), so a damaged store could answer some reads and
 * fail others. PRAGMA quick_check at open (about 1 ms per MB here) refuses it up front. The check
 * is bounded in time so a very large store does not make every open slow: past the budget it
 * stops, having checked the pages it reached. */
#define SQ_CHECK_BUDGET_NS 40000000L

static int
check_progress(void *arg)
{
    return gcommit_mono_ns() > *(const int64_t *)arg; /* nonzero interrupts the statement */
}

static int
quick_check(struct sq_backend *sb, struct rk_error *err)
{
    sqlite3_stmt *st = NULL;
    int64_t deadline = gcommit_mono_ns() + SQ_CHECK_BUDGET_NS;
    int rc, bad = 0;

    sqlite3_progress_handler(sb->wdb, 10000, check_progress, &deadline);
    rc = sqlite3_prepare_v2(sb->wdb, "PRAGMA quick_check(1)", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            if (t == NULL || strcmp((const char *)t, "ok") != 0)
                bad = 1;
        }
    }
    sqlite3_finalize(st);
    sqlite3_progress_handler(sb->wdb, 0, NULL, NULL);
    if (bad || sq_is_corrupt_rc(rc))
        return rk_error_set(err, RK_ECORRUPT, "store file %s is corrupted or not a rekey store",
                            sb->path);
    if (rc != SQLITE_DONE && (rc & 0xff) != SQLITE_INTERRUPT)
        return sq_fail(err, sb->wdb, rc, sb->path, "checking the store");
    return 0;
}

static void
sq_close(struct backend *b)
{
    struct sq_backend *sb = (struct sq_backend *)b;
    struct sq_reader *rd, *next;

    if (sb == NULL)
        return;
    if (sb->rkey_ok)
        pthread_key_delete(sb->rkey);
    sqcache_free(sb->cache);
    if (sb->shm != NULL)
        munmap((void *)sb->shm, SQ_SHM_MAP);
    pthread_mutex_destroy(&sb->vlock);
    for (rd = sb->readers; rd != NULL; rd = next) {
        next = rd->next;
        reader_close(rd);
    }
    for (int i = 0; i < W_NSTMT; i++)
        sqlite3_finalize(sb->w[i]);
    /* The writer closes last so that its close checkpoints the WAL into the main file. */
    sqlite3_close_v2(sb->wdb);
    if (sb->shm_fd >= 0)
        close(sb->shm_fd); /* after SQLite: it may drop this process's locks (cache_setup) */
    faulty_vfs_free(sb->fvfs);
    gcommit_destroy(&sb->gc);
    pthread_mutex_destroy(&sb->rlock);
    free(sb->path);
    free(sb);
}

/* SQLite's memory statistics take a global mutex on every allocation, which readers on several
 * threads would fight over; and its mutexes become adaptive ones (sqlite_mutex.c). Only possible
 * before SQLite initialises; harmless if too late. */
static void
sq_global_init(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite_mutex_install();
    sqlite3_initialize();
}

static pthread_once_t sq_once = PTHREAD_ONCE_INIT;

int
sqlite_backend_open_ex(const char *path, uint64_t fail_fsync_nth, struct backend **out,
                       struct rk_error *err)
{
    struct sq_backend *sb = NULL;
    sqlite3_stmt *st = NULL;
    int rc, r = -RK_EINTERNAL;

    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return rk_error_set(err, RK_EINVAL, "store path is empty");
    pthread_once(&sq_once, sq_global_init);
    if (sqlite3_threadsafe() == 0)
        return rk_error_set(err, RK_EINTERNAL, "SQLite was built without thread support");
    if ((r = check_or_create_file(path, err)) != 0)
        return r;
    if ((sb = calloc(1, sizeof(*sb))) == NULL || (sb->path = strdup(path)) == NULL) {
        free(sb);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    sb->base.ops = &sqlite_backend_ops;
    sb->shm_fd = -1;
    gcommit_init(&sb->gc, run_batch, sb);
    pthread_mutex_init(&sb->rlock, NULL);
    pthread_mutex_init(&sb->vlock, NULL);
    if (fail_fsync_nth > 0 && (r = faulty_vfs_new(fail_fsync_nth, &sb->fvfs, &sb->vfs_name, err)))
        goto out;
    if ((r = open_conn(sb, &sb->wdb, err)) != 0)
        goto out;

    /* journal_mode answers with the mode in force; anything but "wal" is a failure. */
    rc = sqlite3_prepare_v2(sb->wdb, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *mode = sqlite3_column_text(st, 0);
        rc = mode != NULL && strcmp((const char *)mode, "wal") == 0 ? SQLITE_OK : SQLITE_CANTOPEN;
    }
    sqlite3_finalize(st), st = NULL;
    if (rc != SQLITE_OK) {
        r = sq_fail(err, sb->wdb, rc, path, "enabling WAL");
        goto out;
    }
    /* A large writer cache: the group-commit leader otherwise re-reads (pread) the B-tree pages
     * of every batch it applies. */
    if ((rc = exec_sql(sb->wdb, "PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;"
                                "PRAGMA cache_size = -65536;")) != SQLITE_OK) {
        r = sq_fail(err, sb->wdb, rc, path, "setting pragmas");
        goto out;
    }
    if ((r = init_schema(sb, err)) != 0 || (r = quick_check(sb, err)) != 0)
        goto out;
    for (int i = 0; i < W_NSTMT; i++) {
        rc = sqlite3_prepare_v3(sb->wdb, wsql[i], -1, SQLITE_PREPARE_PERSISTENT, &sb->w[i], NULL);
        if (rc != SQLITE_OK) {
            r = sq_fail(err, sb->wdb, rc, path, "preparing statements");
            goto out;
        }
    }
    if (pthread_key_create(&sb->rkey, reader_destroy) != 0) {
        r = rk_error_set(err, RK_ENOMEM, "out of thread-local keys");
        goto out;
    }
    sb->rkey_ok = 1;
    cache_setup(sb);
    if (sb->fvfs != NULL)
        faulty_vfs_arm(sb->fvfs);
    *out = &sb->base;
    sb = NULL;
    r = 0;
out:
    sq_close(sb ? &sb->base : NULL);
    return r;
}

static int
sq_open(const char *location, struct backend **out, struct rk_error *err)
{
    return sqlite_backend_open_ex(location, 0, out, err);
}

void
sqlite_backend_stats(struct backend *b, uint64_t *commits, uint64_t *txns)
{
    struct sq_backend *sb = (struct sq_backend *)b;

    *commits = *txns = 0;
    if (b != NULL && b->ops == &sqlite_backend_ops)
        gcommit_stats(&sb->gc, commits, txns);
}

void
sqlite_backend_cache_stats(struct backend *b, struct sqcache_stats *st)
{
    struct sq_backend *sb = (struct sq_backend *)b;

    sqcache_get_stats(b != NULL && b->ops == &sqlite_backend_ops ? sb->cache : NULL, st);
}

/* ---- reads ---------------------------------------------------------------------------------- */

static int
sq_get(struct backend *b, const char *key, unsigned char **val, size_t *vlen, int64_t *mod_rev,
       struct rk_error *err)
{
    struct sq_backend *sb = (struct sq_backend *)b;
    struct sq_reader *rd;
    sqlite3_stmt *st;
    uint64_t token = 1, state;
    int64_t rev = 0;
    int rc, r;

    *val = NULL;
    *vlen = 0;
    if ((r = gcommit_key_ok(key, err)) != 0 || (r = reader_get(sb, &rd, err)) != 0)
        return r;
    /* The cache answers when nothing was committed since it was last validated and no commit is
     * being published; the token is taken before the SQLite read that may fill it. Not inside a
     * list's callback: this connection's reads are then in the list's read transaction, whose
     * snapshot may be older than the cache, and must neither validate nor fill it. */
    if (sb->cache != NULL && rd->listing == 0 && (state = shm_state(sb)) != 0 &&
        (state == atomic_load(&sb->known) || cache_validate(sb, rd, state)) &&
        ((token = sqcache_token(sb->cache)) & 1) == 0) {
        int hit = sqcache_lookup(sb->cache, key, val, vlen, &rev);

        if (hit < 0)
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        if (hit > 0) {
            if (mod_rev != NULL)
                *mod_rev = rev;
            return 0;
        }
    }
    st = rd->get;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int n = sqlite3_column_bytes(st, 0);
        const void *p = sqlite3_column_blob(st, 0);

        if ((*val = malloc(n > 0 ? (size_t)n : 1)) == NULL) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        if (n > 0)
            memcpy(*val, p, (size_t)n);
        *vlen = (size_t)n;
        rev = sqlite3_column_int64(st, 1);
        if (mod_rev != NULL)
            *mod_rev = rev;
        if ((token & 1) == 0)
            sqcache_fill(sb->cache, token, key, *val, *vlen, rev);
        r = 0;
    } else if (rc == SQLITE_DONE) {
        r = rk_error_set(err, RK_ENOTFOUND, "no such key");
    } else {
        r = sq_fail(err, rd->db, rc, sb->path, "get");
    }
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

/* The smallest string greater than every string starting with prefix: prefix with its last
 * byte below 0xff incremented and the rest cut. Returns 0 when there is none (prefix empty or
 * all 0xff). */
static size_t
prefix_successor(const char *prefix, char *buf, size_t bufsz)
{
    size_t n = strlen(prefix);

    if (n >= bufsz)
        return 0;
    memcpy(buf, prefix, n);
    while (n > 0) {
        unsigned char c = (unsigned char)buf[n - 1];
        if (c != 0xff) {
            buf[n - 1] = (char)(c + 1);
            buf[n] = '\0';
            return n;
        }
        n--;
    }
    return 0;
}

static int
sq_list(struct backend *b, const char *prefix, const char *start_after, size_t limit, int keys_only,
        store_list_cb cb, void *arg, struct rk_error *err)
{
    struct sq_backend *sb = (struct sq_backend *)b;
    struct sq_reader *rd;
    sqlite3_stmt *st, *tmp = NULL;
    char upper[STORE_KEY_MAX + 2];
    const char *lower;
    size_t plen, nup;
    int strict, rc, r;

    if (prefix == NULL)
        prefix = "";
    plen = strnlen(prefix, STORE_KEY_MAX + 1);
    if (plen > STORE_KEY_MAX)
        return rk_error_set(err, RK_EINVAL, "list prefix longer than %d bytes", STORE_KEY_MAX);
    if ((r = reader_get(sb, &rd, err)) != 0)
        return r;
    /* The lower bound is the larger of "prefix" (inclusive) and start_after (exclusive). */
    if (start_after != NULL && strcmp(start_after, prefix) >= 0) {
        lower = start_after;
        strict = 1;
    } else {
        lower = prefix;
        strict = 0;
    }
    st = strict ? rd->list_gt : rd->list_ge;
    if (sqlite3_stmt_busy(st)) {
        /* A callback lists again on this thread: the cached statement is in use. */
        rc = sqlite3_prepare_v2(rd->db, strict ? list_gt_sql : list_ge_sql, -1, &tmp, NULL);
        if (rc != SQLITE_OK)
            return sq_fail(err, rd->db, rc, sb->path, "list");
        st = tmp;
    }
    nup = prefix_successor(prefix, upper, sizeof(upper));
    sqlite3_bind_text(st, 1, lower, -1, SQLITE_STATIC);
    if (nup > 0)
        sqlite3_bind_text(st, 2, upper, (int)nup, SQLITE_STATIC);
    else
        /* No upper bound: every TEXT value sorts below every BLOB in SQLite. */
        sqlite3_bind_zeroblob(st, 2, 0);
    sqlite3_bind_int64(st, 3, limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit);
    r = 0;
    rd->listing++;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        const unsigned char *v = NULL;
        size_t vl = 0;

        if (k == NULL || strncmp(k, prefix, plen) != 0)
            continue;
        if (!keys_only) {
            vl = (size_t)sqlite3_column_bytes(st, 1);
            v = sqlite3_column_blob(st, 1);
            if (v == NULL)
                v = (const unsigned char *)"";
        }
        r = cb(arg, k, v, vl, sqlite3_column_int64(st, 2));
        if (r != 0)
            break;
    }
    if (r > 0)
        r = 0; /* stopped early by the callback */
    else if (r == 0 && rc != SQLITE_DONE)
        r = sq_fail(err, rd->db, rc, sb->path, "list");
    if (tmp != NULL) {
        sqlite3_finalize(tmp);
    } else {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    rd->listing--;
    return r;
}

/* ---- writes: group commit ------------------------------------------------------------------- */

static int
wstep(struct sq_backend *sb, int which)
{
    sqlite3_stmt *st = sb->w[which];
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

static void
req_fail(struct gc_req *q, struct sq_backend *sb, int rc, const char *what)
{
    q->result = sq_is_corrupt_rc(rc) ? -RK_ECORRUPT : -RK_EIO;
    if (q->result == -RK_ECORRUPT)
        snprintf(q->msg, sizeof(q->msg),
                 "store file %s is corrupted or not a rekey store (%s: %s); restore it from a "
                 "backup",
                 sb->path, what, sqlite3_errstr(rc));
    else
        snprintf(q->msg, sizeof(q->msg), "store %s: %s: %s", sb->path, what, sqlite3_errstr(rc));
}

/* Applies one caller's transaction at revision rev inside the open SQLite transaction.
 * Returns SQLITE_OK with q->result set (0, -RK_ECONFLICT, -RK_ENOTFOUND), or an SQLite error. */
static int
apply_req(struct sq_backend *sb, struct gc_req *q, int64_t rev)
{
    sqlite3_stmt *st;
    int rc;

    for (size_t i = 0; i < q->ncmps; i++) {
        int64_t cur = 0;

        st = sb->w[W_CMP];
        sqlite3_bind_text(st, 1, q->cmps[i].key, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            cur = sqlite3_column_int64(st, 0), rc = SQLITE_OK;
        else if (rc == SQLITE_DONE)
            rc = SQLITE_OK;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_OK)
            return rc;
        if (cur != q->cmps[i].mod_rev) {
            q->result = -RK_ECONFLICT;
            snprintf(q->msg, sizeof(q->msg), "compare failed on %s (mod_rev %lld, expected %lld)",
                     q->cmps[i].key, (long long)cur, (long long)q->cmps[i].mod_rev);
            return SQLITE_OK;
        }
    }
    for (size_t i = 0; i < q->nops; i++) {
        const struct store_op *op = &q->ops[i];

        if (op->kind == STORE_PUT) {
            st = sb->w[W_PUT];
            sqlite3_bind_text(st, 1, op->key, -1, SQLITE_STATIC);
            bind_blob(st, 2, op->val, op->vlen);
            sqlite3_bind_int64(st, 3, rev);
        } else {
            st = sb->w[W_DEL];
            sqlite3_bind_text(st, 1, op->key, -1, SQLITE_STATIC);
        }
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_DONE)
            return rc;
        if (op->kind == STORE_DELETE && q->must_exist && sqlite3_changes(sb->wdb) == 0) {
            q->result = -RK_ENOTFOUND;
            snprintf(q->msg, sizeof(q->msg), "no such key");
            return SQLITE_OK;
        }
    }
    q->result = 0;
    q->rev = rev;
    return SQLITE_OK;
}

/* After a failed commit (e.g. its fsync failed) the batch's frames may sit in the WAL file past
 * the last valid commit, complete with a valid commit record: SQLite ignores them while running,
 * but recovery after a crash would bring the failed transactions back. Checkpointing everything
 * and truncating the WAL removes them. Best effort, with a short wait: a reader in another
 * process can keep the WAL alive, and then the next commit overwrites those frames instead. */
static void
scrub_wal(struct sq_backend *sb)
{
    int rc;

    sqlite3_busy_timeout(sb->wdb, 200);
    rc = sqlite3_wal_checkpoint_v2(sb->wdb, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    sqlite3_busy_timeout(sb->wdb, SQ_BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK)
        log_warn("store %s: could not truncate the WAL after a failed commit: %s", sb->path,
                 sqlite3_errstr(rc));
}

/* The publication of a commit to the read cache: from just before COMMIT (when the commit can
 * become visible to other connections) until the cache holds what it wrote, readers do not use
 * the cache and fills of earlier reads are refused (sqcache.h). start is the revision the write
 * transaction began from: if it is not the last one this process committed or validated,
 * another process committed in between, and what the cache holds may be stale. */
static void
publish_begin(struct sq_backend *sb, int64_t start)
{
    pthread_mutex_lock(&sb->vlock);
    sqcache_publish_begin(sb->cache);
    if (start != sb->own_rev) {
        sqcache_clear(sb->cache);
        sb->own_rev = start;
    }
}

/* batch: the committed batch, whose successful writes are published at revision rev; NULL when
 * the commit failed and nothing changed. */
static void
publish_end(struct sq_backend *sb, const struct gc_req *batch, int64_t rev)
{
    for (const struct gc_req *q = batch; q != NULL; q = q->next) {
        if (q->result != 0)
            continue;
        for (size_t i = 0; i < q->nops; i++) {
            const struct store_op *op = &q->ops[i];

            if (op->kind == STORE_PUT)
                sqcache_refresh(sb->cache, op->key, op->val, op->vlen, q->rev);
            else
                sqcache_drop(sb->cache, op->key);
        }
    }
    if (batch != NULL)
        sb->own_rev = rev;
    sqcache_publish_end(sb->cache);
    pthread_mutex_unlock(&sb->vlock);
}

/* Runs a batch of queued transactions as one SQLite transaction (gc_run_fn). Called by the
 * leader without any gcommit lock. Sets result, rev and msg of every request. Returns the number
 * committed. */
static uint64_t
run_batch(void *arg, struct gc_req *batch)
{
    struct sq_backend *sb = arg;
    struct gc_req *q;
    sqlite3_stmt *st;
    int64_t rev = 0, start;
    uint64_t nok = 0;
    int rc, commit_failed = 0, publishing = 0;

    if ((rc = wstep(sb, W_BEGIN)) != SQLITE_DONE) {
        for (q = batch; q != NULL; q = q->next)
            req_fail(q, sb, rc, "beginning a transaction");
        return 0;
    }
    st = sb->w[W_GET_REV];
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rev = sqlite3_column_int64(st, 0), rc = SQLITE_OK;
    else if (rc == SQLITE_DONE)
        rc = SQLITE_CORRUPT; /* the revision row is missing */
    sqlite3_reset(st);
    if (rc != SQLITE_OK)
        goto fail_all;
    start = rev;
    for (q = batch; q != NULL; q = q->next) {
        if (q->nops == 0 && q->ncmps == 0) {
            q->result = 0;
            q->rev = rev;
            continue;
        }
        if ((rc = wstep(sb, W_SAVEPOINT)) != SQLITE_DONE)
            goto fail_all;
        rc = apply_req(sb, q, rev + 1);
        if (rc != SQLITE_OK) {
            if (sqlite3_get_autocommit(sb->wdb))
                goto fail_all; /* SQLite rolled the whole transaction back */
            req_fail(q, sb, rc, "writing");
        }
        if (rc == SQLITE_OK && q->result == 0 && q->nops > 0) {
            rev++;
        } else if (rc == SQLITE_OK && q->result == 0) {
            q->rev = rev; /* compares only: nothing written, no new revision */
        } else if ((rc = wstep(sb, W_ROLLBACK_TO)) != SQLITE_DONE) {
            goto fail_all;
        }
        if ((rc = wstep(sb, W_RELEASE)) != SQLITE_DONE)
            goto fail_all;
    }
    if (rev != start) {
        st = sb->w[W_SET_REV];
        sqlite3_bind_int64(st, 1, rev);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            goto fail_all;
    }
    if (sb->cache != NULL) {
        publish_begin(sb, start);
        publishing = 1;
    }
    if ((rc = wstep(sb, W_COMMIT)) != SQLITE_DONE) {
        commit_failed = 1;
        goto fail_all;
    }
    for (q = batch; q != NULL; q = q->next)
        if (q->result == 0)
            nok++;
    if (publishing)
        publish_end(sb, batch, rev);
    return nok;

fail_all:
    if (!sqlite3_get_autocommit(sb->wdb))
        wstep(sb, W_ROLLBACK);
    if (publishing)
        publish_end(sb, NULL, 0); /* rolled back: the cache keeps the state before it */
    if (commit_failed)
        scrub_wal(sb);
    for (q = batch; q != NULL; q = q->next)
        req_fail(q, sb, rc, "committing");
    return 0;
}

static int
sq_txn(struct backend *b, const struct store_cmp *cmps, size_t ncmps, const struct store_op *ops,
       size_t nops, int64_t *rev, struct rk_error *err)
{
    return gcommit_txn(&((struct sq_backend *)b)->gc, cmps, ncmps, ops, nops, rev, err);
}

static int
sq_put(struct backend *b, const char *key, const void *val, size_t vlen, int64_t *rev,
       struct rk_error *err)
{
    return gcommit_put(&((struct sq_backend *)b)->gc, key, val, vlen, rev, err);
}

static int
sq_del(struct backend *b, const char *key, int64_t *rev, struct rk_error *err)
{
    return gcommit_del(&((struct sq_backend *)b)->gc, key, rev, err);
}

/* Gives the calling thread's read connection's page cache back to the heap, and the writer's
 * when no commit is running (connections are opened NOMUTEX: only their own thread, or the
 * group-commit leader for the writer, may touch them). The next reads refill the cache. */
static void
sq_trim(struct backend *b)
{
    struct sq_backend *sb = (struct sq_backend *)b;
    struct sq_reader *rd = sb->rkey_ok ? pthread_getspecific(sb->rkey) : NULL;

    if (rd != NULL)
        sqlite3_db_release_memory(rd->db);
    if (sb->cache != NULL)
        sqcache_clear(sb->cache);
    if (gcommit_try_pause(&sb->gc)) { /* no commit starts while the writer's cache is released */
        sqlite3_db_release_memory(sb->wdb);
        gcommit_resume(&sb->gc);
    }
}

const struct backend_ops sqlite_backend_ops = {
    .version = BACKEND_OPS_VERSION,
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .get = sq_get,
    .put = sq_put,
    .del = sq_del,
    .list = sq_list,
    .txn = sq_txn,
    .trim = sq_trim,
};
