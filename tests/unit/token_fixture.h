/* token_fixture.h: a fresh SQLite store with an initialised, unsealed barrier (random root key)
 * in a temporary directory, for the unit tests of src/api/token (test_token.c,
 * test_token_cache.c), with helpers to create a token that fails the test on error and to run
 * worker threads. Include it after cmocka.h. */
#ifndef REKEY_TEST_TOKEN_FIXTURE_H
#define REKEY_TEST_TOKEN_FIXTURE_H

#include <ftw.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/token.h"
#include "store/backend.h"
#include "store/barrier.h"
#include "util/err.h"
#include "util/secret.h"

struct token_fx {
    char dir[64];
    char path[128];
    struct backend *b;
    struct barrier *br;
    struct token_cache *c; /* NULL unless the test file makes one; freed by token_fx_close */
};

static inline int
token_fx_rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

/* Makes /tmp/rekey-test-NAME-XXXXXX with a new store and an initialised, unsealed barrier in
 * it; fails the test on error. Free with token_fx_close. */
static inline struct token_fx *
token_fx_open(const char *name)
{
    struct token_fx *fx = calloc(1, sizeof(*fx));
    struct rk_error err = {0};
    struct secret *root = secret_new(ROOT_KEY_LEN);

    assert_non_null(fx);
    assert_non_null(root);
    assert_int_equal(RAND_bytes(root->data, ROOT_KEY_LEN), 1);
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/rekey-test-%s-XXXXXX", name);
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/store.db", fx->dir);
    if (backend_open(fx->path, &fx->b, &err) != 0 || barrier_open(fx->b, &fx->br, &err) != 0 ||
        barrier_init(fx->br, root, "{\"type\":\"keyfile\"}", &err) != 0)
        fail_msg("store: %s", err.msg);
    secret_free(root);
    return fx;
}

/* Frees the cache, the barrier and the store, removes the directory with its files, frees fx. */
static inline void
token_fx_close(struct token_fx *fx)
{
    token_cache_free(fx->c);
    barrier_free(fx->br);
    backend_close(fx->b);
    nftw(fx->dir, token_fx_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
}

/* A cmocka teardown: token_fx_close of the state. */
static inline int
token_fx_teardown(void **state)
{
    token_fx_close(*state);
    return 0;
}

/* token_create with o; fails the test on error. Returns the token (caller frees with
 * secret_free); *ti (may be NULL) gets its record. */
static inline struct secret *
token_fx_create(struct token_fx *fx, const struct token_create_opts *o, struct token_info *ti)
{
    struct secret *tok = NULL;
    struct rk_error err = {0};
    int r = token_create(fx->br, o, &tok, ti, &err);

    if (r != 0)
        fail_msg("token_create: %d %s", r, err.msg);
    return tok;
}

/* What one thread of token_fx_threads works with: the fixture, a token's text, and a count the
 * thread keeps (what it counts is the test's). */
struct token_fx_worker {
    struct token_fx *fx;
    const char *tok;
    int count;
};

/* Runs fn in n threads at once (n <= 16), the i-th on w[i] = {fx, tok, 0}, and waits for them
 * all; the test reads the counts in w afterwards. */
static inline void
token_fx_threads(struct token_fx *fx, const struct secret *tok, int n, void *(*fn)(void *),
                 struct token_fx_worker *w)
{
    pthread_t th[16];

    assert_true(n > 0 && n <= 16);
    for (int i = 0; i < n; i++) {
        w[i] = (struct token_fx_worker){fx, (const char *)tok->data, 0};
        assert_int_equal(pthread_create(&th[i], NULL, fn, &w[i]), 0);
    }
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
}

#endif
