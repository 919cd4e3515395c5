/* sqlite_mutex.c: SQLite's mutexes, as glibc adaptive mutexes.
 *
 * Every SQLite read transaction in WAL mode takes and releases a read mark in the shared
 * wal-index under one mutex per database file and process (the unix VFS's shm mutex), so
 * readers on several threads meet there hundreds of thousands of times a second. SQLite's own
 * pthread mutexes put a waiter to sleep at once (a futex wait, two context switches) although
 * the holder leaves within a microsecond: measured here, 2 reader threads then did about 1.15x
 * of what 1 did. An adaptive mutex spins briefly before sleeping. This is SQLite's documented
 * SQLITE_CONFIG_MUTEX hook; the semantics (recursive or not, static mutexes) are SQLite's. */
#include "store/sqlite_mutex.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>

struct sqlite3_mutex {
    pthread_mutex_t m;
    int is_static;
};

#define NSTATIC (SQLITE_MUTEX_STATIC_VFS3 - SQLITE_MUTEX_STATIC_MAIN + 1)

static struct sqlite3_mutex statics[NSTATIC];

static void
mx_init_one(struct sqlite3_mutex *x, int recursive)
{
    pthread_mutexattr_t a;

    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, recursive ? PTHREAD_MUTEX_RECURSIVE : PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&x->m, &a);
    pthread_mutexattr_destroy(&a);
}

static int
mx_init(void)
{
    for (int i = 0; i < NSTATIC; i++) {
        mx_init_one(&statics[i], 0);
        statics[i].is_static = 1;
    }
    return SQLITE_OK;
}

static int
mx_end(void)
{
    for (int i = 0; i < NSTATIC; i++)
        pthread_mutex_destroy(&statics[i].m);
    return SQLITE_OK;
}

static sqlite3_mutex *
mx_alloc(int type)
{
    struct sqlite3_mutex *x;

    if (type >= SQLITE_MUTEX_STATIC_MAIN && type <= SQLITE_MUTEX_STATIC_VFS3)
        return &statics[type - SQLITE_MUTEX_STATIC_MAIN];
    if (type != SQLITE_MUTEX_FAST && type != SQLITE_MUTEX_RECURSIVE)
        return NULL;
    if ((x = calloc(1, sizeof(*x))) == NULL)
        return NULL;
    mx_init_one(x, type == SQLITE_MUTEX_RECURSIVE);
    return x;
}

static void
mx_free(sqlite3_mutex *x)
{
    if (x == NULL || x->is_static)
        return;
    pthread_mutex_destroy(&x->m);
    free(x);
}

static void
mx_enter(sqlite3_mutex *x)
{
    pthread_mutex_lock(&x->m);
}

static int
mx_try(sqlite3_mutex *x)
{
    return pthread_mutex_trylock(&x->m) == 0 ? SQLITE_OK : SQLITE_BUSY;
}

static void
mx_leave(sqlite3_mutex *x)
{
    pthread_mutex_unlock(&x->m);
}

/* Only used by SQLite's assert()s (debug builds); "can't tell" is the documented answer. */
static int
mx_held(sqlite3_mutex *x)
{
    (void)x;
    return 1;
}

int
sqlite_mutex_install(void)
{
    static const sqlite3_mutex_methods methods = {
        mx_init, mx_end, mx_alloc, mx_free, mx_enter, mx_try, mx_leave, mx_held, mx_held,
    };

    return sqlite3_config(SQLITE_CONFIG_MUTEX, &methods) == SQLITE_OK ? 0 : -1;
}
