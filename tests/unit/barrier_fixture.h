/* barrier_fixture.h: a fresh SQLite store with an initialised, unsealed barrier in a temporary
 * directory, for the unit tests of what is built on the barrier (test_kv.c, test_transit.c,
 * test_entries.c). Every fixture uses the same test root key (0x42 bytes), so a reopen unseals
 * what an earlier open wrote. Include it after cmocka.h. */
#ifndef REKEY_TEST_BARRIER_FIXTURE_H
#define REKEY_TEST_BARRIER_FIXTURE_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/backend.h"
#include "store/barrier.h"
#include "util/err.h"
#include "util/secret.h"

struct barrier_fx {
    char dir[64];
    char db[128];
    struct backend *b;
    struct barrier *br;
};

static inline struct secret *
barrier_fx_root(void)
{
    struct secret *root = secret_new(ROOT_KEY_LEN);

    assert_non_null(root);
    memset(root->data, 0x42, ROOT_KEY_LEN);
    return root;
}

/* Makes /tmp/rekey-test-NAME-XXXXXX with a new store and an initialised barrier in it. */
static inline void
barrier_fx_open(struct barrier_fx *f, const char *name)
{
    struct rk_error err = {0};
    struct secret *root = barrier_fx_root();

    snprintf(f->dir, sizeof(f->dir), "/tmp/rekey-test-%s-XXXXXX", name);
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof(f->db), "%s/store.db", f->dir);
    assert_int_equal(backend_open(f->db, &f->b, &err), 0);
    assert_int_equal(barrier_open(f->b, &f->br, &err), 0);
    assert_int_equal(barrier_init(f->br, root, "{}", &err), 0);
    secret_free(root);
}

/* Closes the barrier and the store, and opens and unseals them again, as a restart does. */
static inline void
barrier_fx_reopen(struct barrier_fx *f)
{
    struct rk_error err = {0};
    struct secret *root = barrier_fx_root();

    barrier_free(f->br);
    backend_close(f->b);
    assert_int_equal(backend_open(f->db, &f->b, &err), 0);
    assert_int_equal(barrier_open(f->b, &f->br, &err), 0);
    assert_int_equal(barrier_unseal(f->br, root, &err), 0);
    secret_free(root);
}

/* Closes the barrier and the store and removes the directory with its files. */
static inline void
barrier_fx_close(struct barrier_fx *f)
{
    char path[256];
    DIR *d;
    struct dirent *de;

    barrier_free(f->br);
    backend_close(f->b);
    if ((d = opendir(f->dir)) != NULL) {
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "%s/%s", f->dir, de->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(f->dir);
}

#endif
