/* Unit tests for src/store/barrier over the real SQLite backend: init, seal and unseal, wrong
 * keys, encryption at rest, AAD binding, keyring rotation, format versions, transactions,
 * reserved keys, the fingerprint key (core/fpkey), concurrent use and a rough speed figure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/backend.h"
#include "store/barrier.h"
#include "store/faulty.h"
#include "util/err.h"
#include "util/secret.h"

#define SEAL_CONFIG "{\"shares\":5,\"threshold\":3}"

struct fixture {
    char dir[64];
    char path[128];
    struct backend *b;
    struct barrier *br;
    struct secret *root;
};

static int
rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static struct secret *
new_root(void)
{
    struct secret *k = secret_new(ROOT_KEY_LEN);
    assert_non_null(k);
    assert_int_equal(RAND_bytes(k->data, ROOT_KEY_LEN), 1);
    return k;
}

static void
open_store(struct fixture *fx)
{
    struct rk_error err = {0};
    int r = backend_open(fx->path, &fx->b, &err);

    if (r != 0)
        fail_msg("backend_open: %d %s", r, err.msg);
    r = barrier_open(fx->b, &fx->br, &err);
    if (r != 0)
        fail_msg("barrier_open: %d %s", r, err.msg);
}

static void
close_store(struct fixture *fx)
{
    barrier_free(fx->br);
    backend_close(fx->b);
    fx->br = NULL;
    fx->b = NULL;
}

/* Opens a fresh store and initialises it with a random root key (left unsealed). */
static int
setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    struct rk_error err = {0};

    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/rekey-test-barrier-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(fx->path, sizeof(fx->path), "%s/store.db", fx->dir);
    unsetenv("REKEY_FAULT");
    open_store(fx);
    fx->root = new_root();
    if (barrier_init(fx->br, fx->root, SEAL_CONFIG, &err) != 0) {
        fprintf(stderr, "barrier_init: %s\n", err.msg);
        return -1;
    }
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *fx = *state;

    close_store(fx);
    secret_free(fx->root);
    nftw(fx->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static void
put_ok(struct barrier *br, const char *key, const char *val)
{
    struct rk_error err = {0};
    int r = barrier_put(br, key, val, strlen(val), &err);

    if (r != 0)
        fail_msg("barrier_put(%s): %d %s", key, r, err.msg);
}

static void
get_is(struct barrier *br, const char *key, const char *want)
{
    struct rk_error err = {0};
    struct secret *v = NULL;
    int r = barrier_get(br, key, &v, NULL, &err);

    if (r != 0)
        fail_msg("barrier_get(%s): %d %s", key, r, err.msg);
    assert_int_equal(v->len, strlen(want));
    assert_memory_equal(v->data, want, v->len);
    secret_free(v);
}

static int
get_code(struct barrier *br, const char *key, struct rk_error *err)
{
    struct secret *v = NULL;
    int r = barrier_get(br, key, &v, NULL, err);

    if (r != 0)
        assert_null(v);
    secret_free(v);
    return r;
}

static unsigned char *
raw_get(struct backend *b, const char *key, size_t *len)
{
    struct rk_error err = {0};
    unsigned char *v = NULL;
    int r = b->ops->get(b, key, &v, len, NULL, &err);

    if (r != 0)
        fail_msg("backend get(%s): %d %s", key, r, err.msg);
    return v;
}

static void
raw_put(struct backend *b, const char *key, const void *val, size_t len)
{
    struct rk_error err = {0};
    int r = b->ops->put(b, key, val, len, NULL, &err);

    if (r != 0)
        fail_msg("backend put(%s): %d %s", key, r, err.msg);
}

static void
raw_put_str(struct backend *b, const char *key, const char *val)
{
    raw_put(b, key, val, strlen(val));
}

static uint32_t
raw_term(struct backend *b, const char *key)
{
    size_t len = 0;
    unsigned char *v = raw_get(b, key, &len);
    uint32_t t;

    assert_true(len >= 33);
    assert_int_equal(v[0], 1);
    t = (uint32_t)v[1] << 24 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 8 | v[4];
    free(v);
    return t;
}

/* A digest of every key, value and revision in the backend. */
static int
snap_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    EVP_MD_CTX *c = arg;
    EVP_DigestUpdate(c, key, strlen(key) + 1);
    EVP_DigestUpdate(c, val, vlen);
    EVP_DigestUpdate(c, &mod_rev, sizeof(mod_rev));
    return 0;
}

static void
snapshot(struct backend *b, unsigned char out[32])
{
    struct rk_error err = {0};
    EVP_MD_CTX *c = EVP_MD_CTX_new();

    assert_non_null(c);
    assert_int_equal(EVP_DigestInit_ex(c, EVP_sha256(), NULL), 1);
    assert_int_equal(b->ops->list(b, "", NULL, 0, 0, snap_cb, c, &err), 0);
    assert_int_equal(EVP_DigestFinal_ex(c, out, NULL), 1);
    EVP_MD_CTX_free(c);
}

/* ---- lifecycle ---- */

static void
test_init_unseal_seal(void **state)
{
    struct fixture *fx = *state;
    struct rk_error err = {0};
    uint32_t term = 99;
    size_t nkeys = 99;
    char *cfg;

    assert_true(barrier_initialized(fx->br));
    assert_false(barrier_sealed(fx->br));
    barrier_keyring_info(fx->br, &term, &nkeys);
    assert_int_equal(term, 1);
    assert_int_equal(nkeys, 1);
    cfg = barrier_seal_config(fx->br);
    assert_non_null(cfg);
    assert_string_equal(cfg, SEAL_CONFIG);
    free(cfg);

    put_ok(fx->br, "kv/a", "hello");
    put_ok(fx->br, "kv/empty", "");
    get_is(fx->br, "kv/a", "hello");
    get_is(fx->br, "kv/empty", "");
    {
        struct secret *v = NULL;
        int64_t rev = 0;
        assert_int_equal(barrier_get(fx->br, "kv/a", &v, &rev, &err), 0);
        assert_true(rev > 0);
        assert_int_equal(v->data[v->len], 0); /* NUL-terminated for convenience */
        secret_free(v);
    }
    assert_int_equal(get_code(fx->br, "kv/missing", &err), -RK_ENOTFOUND);

    /* A second init is refused and changes nothing. */
    {
        struct secret *other = new_root();
        unsigned char before[32], after[32];
        snapshot(fx->b, before);
        assert_int_equal(barrier_init(fx->br, other, "{}", &err), -RK_EEXISTS);
        snapshot(fx->b, after);
        assert_memory_equal(before, after, 32);
        secret_free(other);
    }

    barrier_seal(fx->br);
    assert_true(barrier_sealed(fx->br));
    barrier_keyring_info(fx->br, &term, &nkeys);
    assert_int_equal(term, 0);
    assert_int_equal(nkeys, 0);
    assert_int_equal(get_code(fx->br, "kv/a", &err), -RK_ESEALED);
    /* Sealed: even a missing key answers "sealed", not "not found". */
    assert_int_equal(get_code(fx->br, "kv/missing", &err), -RK_ESEALED);
    assert_int_equal(barrier_put(fx->br, "kv/b", "x", 1, &err), -RK_ESEALED);
    assert_int_equal(barrier_del(fx->br, "kv/a", &err), -RK_ESEALED);
    assert_int_equal(barrier_rotate_keyring(fx->br, NULL, &err), -RK_ESEALED);
    {
        struct barrier_txn *t = barrier_txn_new(fx->br);
        assert_int_equal(barrier_txn_put(t, "kv/c", "y", 1), 0);
        assert_int_equal(barrier_txn_commit(t, NULL, &err), -RK_ESEALED);
        barrier_txn_free(t);
    }
    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), 0);
    get_is(fx->br, "kv/a", "hello");
    assert_int_equal(get_code(fx->br, "kv/b", &err), -RK_ENOTFOUND);

    /* Persistence: a new process starts sealed and unseals with the same key. */
    close_store(fx);
    open_store(fx);
    assert_true(barrier_initialized(fx->br));
    assert_true(barrier_sealed(fx->br));
    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), 0);
    get_is(fx->br, "kv/a", "hello");

    assert_int_equal(barrier_del(fx->br, "kv/a", &err), 0);
    assert_int_equal(get_code(fx->br, "kv/a", &err), -RK_ENOTFOUND);
}

static void
test_uninitialised(void **state)
{
    struct fixture *fx = *state;
    struct rk_error err = {0};
    struct backend *b = NULL;
    struct barrier *br = NULL;
    char path[160];
    (void)fx;

    snprintf(path, sizeof(path), "%s/fresh.db", fx->dir);
    assert_int_equal(backend_open(path, &b, &err), 0);
    assert_int_equal(barrier_open(b, &br, &err), 0);
    assert_false(barrier_initialized(br));
    assert_true(barrier_sealed(br));
    assert_null(barrier_seal_config(br));
    assert_int_equal(barrier_unseal(br, fx->root, &err), -RK_ENOTFOUND);
    assert_int_equal(get_code(br, "kv/a", &err), -RK_ESEALED);
    /* A short root key is refused before anything is written. */
    {
        struct secret *shortkey = secret_new(16);
        assert_int_equal(barrier_init(br, shortkey, NULL, &err), -RK_EINVAL);
        assert_false(barrier_initialized(br));
        secret_free(shortkey);
    }
    /* NULL seal config is stored as an empty object. */
    assert_int_equal(barrier_init(br, fx->root, NULL, &err), 0);
    {
        char *cfg = barrier_seal_config(br);
        assert_string_equal(cfg, "{}");
        free(cfg);
    }
    barrier_free(br);
    backend_close(b);
}

static void
test_wrong_key(void **state)
{
    struct fixture *fx = *state;
    struct secret *wrong = new_root(), *shortkey = secret_new(31);
    unsigned char before[32], after[32];
    struct rk_error err = {0};

    put_ok(fx->br, "kv/a", "hello");
    barrier_seal(fx->br);
    snapshot(fx->b, before);

    assert_int_equal(barrier_unseal(fx->br, wrong, &err), -RK_EBADKEY);
    assert_string_equal(err.msg, "the root key does not open this store (wrong share or key file)");
    assert_true(barrier_sealed(fx->br));
    assert_int_equal(barrier_unseal(fx->br, shortkey, &err), -RK_EINVAL);
    assert_true(barrier_sealed(fx->br));
    snapshot(fx->b, after);
    assert_memory_equal(before, after, 32);

    /* A wrong key while unsealed leaves the barrier unsealed and working. */
    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), 0);
    assert_int_equal(barrier_unseal(fx->br, wrong, &err), -RK_EBADKEY);
    assert_false(barrier_sealed(fx->br));
    get_is(fx->br, "kv/a", "hello");

    /* One flipped bit in the root key is as wrong as a random one. */
    barrier_seal(fx->br);
    fx->root->data[7] ^= 0x01;
    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), -RK_EBADKEY);
    fx->root->data[7] ^= 0x01;
    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), 0);
    snapshot(fx->b, after);
    assert_memory_equal(before, after, 32);

    secret_free(wrong);
    secret_free(shortkey);
}

/* ---- at rest ---- */

static int
file_contains(const char *path, const void *needle, size_t nlen)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long sz;
    int found = 0;

    if (f == NULL)
        return 0; /* no such file: nothing in it */
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    sz = ftell(f);
    assert_true(sz >= 0);
    rewind(f);
    buf = malloc((size_t)sz + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    found = memmem(buf, (size_t)sz, needle, nlen) != NULL;
    free(buf);
    return found;
}

static int
store_contains(struct fixture *fx, const void *needle, size_t nlen)
{
    static const char *const sfx[] = {"", "-wal", "-journal"};
    char p[200];

    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", fx->path, sfx[i]);
        if (file_contains(p, needle, nlen))
            return 1;
    }
    return 0;
}

static void
test_encrypted_at_rest(void **state)
{
    struct fixture *fx = *state;
    const char *marker = "sk-proj-PLAINTEXT-MARKER-4f1c9a7e";
    char key[64];

    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "kv/provider/marker-key-%02d", i);
        put_ok(fx->br, key, marker);
    }
    /* While open (WAL) and after close (checkpointed into the main file). */
    assert_false(store_contains(fx, marker, strlen(marker)));
    assert_false(store_contains(fx, "PLAINTEXT-MARKER", 16));
    close_store(fx);
    assert_false(store_contains(fx, marker, strlen(marker)));
    assert_false(store_contains(fx, fx->root->data, fx->root->len));
    /* The search works on this file: storage keys are not secret and are found. */
    assert_true(store_contains(fx, "kv/provider/marker-key-07", 25));
    assert_true(store_contains(fx, "core/keyring", 12));
    open_store(fx);
}

/* ---- tampering ---- */

static void
test_aad_binding(void **state)
{
    struct fixture *fx = *state;
    struct rk_error err = {0};
    unsigned char *v;
    size_t len = 0;

    put_ok(fx->br, "kv/a", "value-of-a");
    put_ok(fx->br, "kv/b", "value-of-b");

    /* a's ciphertext moved under b: authentic bytes, wrong place. */
    v = raw_get(fx->b, "kv/a", &len);
    raw_put(fx->b, "kv/b", v, len);
    assert_int_equal(get_code(fx->br, "kv/b", &err), -RK_ECORRUPT);
    assert_non_null(strstr(err.msg, "kv/b"));
    assert_null(strstr(err.msg, "value-of"));
    get_is(fx->br, "kv/a", "value-of-a");

    /* One flipped bit anywhere after the header (nonce, ciphertext, tag). */
    for (size_t pos = 5; pos < len; pos += 3) {
        v[pos] ^= 0x40;
        raw_put(fx->b, "kv/c", v, len);
        v[pos] ^= 0x40;
        assert_int_equal(get_code(fx->br, "kv/c", &err), -RK_ECORRUPT);
    }
    /* Truncated. */
    raw_put(fx->b, "kv/c", v, 20);
    assert_int_equal(get_code(fx->br, "kv/c", &err), -RK_ECORRUPT);
    raw_put(fx->b, "kv/c", v, 0);
    assert_int_equal(get_code(fx->br, "kv/c", &err), -RK_ECORRUPT);
    /* A newer value format. */
    v[0] = 2;
    raw_put(fx->b, "kv/c", v, len);
    assert_int_equal(get_code(fx->br, "kv/c", &err), -RK_EVERSION);
    assert_non_null(strstr(err.msg, "upgrade rekey"));
    v[0] = 1;
    /* Unknown terms: one from the future, and 0 (the root key's). */
    v[4] = 77;
    raw_put(fx->b, "kv/c", v, len);
    assert_int_equal(get_code(fx->br, "kv/c", &err), -RK_ECORRUPT);
    assert_non_null(strstr(err.msg, "term 77"));
    v[4] = 0;
    raw_put(fx->b, "kv/c", v, len);
    assert_int_equal(get_code(fx->br, "kv/c", &err), -RK_ECORRUPT);
    free(v);

    /* The sealed keyring copied to a user key is not readable as a value. */
    v = raw_get(fx->b, "core/keyring", &len);
    raw_put(fx->b, "kv/d", v, len);
    assert_int_equal(get_code(fx->br, "kv/d", &err), -RK_ECORRUPT);
    free(v);
}

/* ---- keyring rotation ---- */

static void
test_rotate(void **state)
{
    struct fixture *fx = *state;
    struct rk_error err = {0};
    uint32_t term = 0, active = 0;
    size_t nkeys = 0;

    put_ok(fx->br, "kv/old", "written under term 1");
    assert_int_equal(raw_term(fx->b, "kv/old"), 1);
    assert_int_equal(barrier_rotate_keyring(fx->br, &term, &err), 0);
    assert_int_equal(term, 2);
    barrier_keyring_info(fx->br, &active, &nkeys);
    assert_int_equal(active, 2);
    assert_int_equal(nkeys, 2);
    put_ok(fx->br, "kv/new", "written under term 2");
    assert_int_equal(raw_term(fx->b, "kv/new"), 2);
    get_is(fx->br, "kv/old", "written under term 1");
    get_is(fx->br, "kv/new", "written under term 2");
    assert_int_equal(barrier_rotate_keyring(fx->br, &term, &err), 0);
    assert_int_equal(term, 3);

    /* Survives seal/unseal and a restart. */
    barrier_seal(fx->br);
    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), 0);
    close_store(fx);
    open_store(fx);
    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), 0);
    barrier_keyring_info(fx->br, &active, &nkeys);
    assert_int_equal(active, 3);
    assert_int_equal(nkeys, 3);
    get_is(fx->br, "kv/old", "written under term 1");
    get_is(fx->br, "kv/new", "written under term 2");
    put_ok(fx->br, "kv/newer", "term 3");
    assert_int_equal(raw_term(fx->b, "kv/newer"), 3);
    /* Rewriting an old value moves it to the active term. */
    put_ok(fx->br, "kv/old", "rewritten");
    assert_int_equal(raw_term(fx->b, "kv/old"), 3);
}

static void
test_rotate_two_servers(void **state)
{
    struct fixture *fx = *state;
    struct barrier *other = NULL;
    struct rk_error err = {0};
    uint32_t term = 0, active = 0;

    /* A second barrier on the same store stands for another server sharing it. */
    assert_int_equal(barrier_open(fx->b, &other, &err), 0);
    assert_int_equal(barrier_unseal(other, fx->root, &err), 0);

    assert_int_equal(barrier_rotate_keyring(fx->br, &term, &err), 0);
    assert_int_equal(term, 2);
    put_ok(fx->br, "kv/x", "from server one, term 2");
    /* The other server has never seen term 2: it reloads the keyring and reads. */
    barrier_keyring_info(other, &active, NULL);
    assert_int_equal(active, 1);
    get_is(other, "kv/x", "from server one, term 2");
    barrier_keyring_info(other, &active, NULL);
    assert_int_equal(active, 2);

    /* Both rotate from a stale view: the compare on the keyring's revision catches it, the
     * loser reloads and appends after the winner's key; no key is lost. */
    assert_int_equal(barrier_rotate_keyring(fx->br, &term, &err), 0);
    assert_int_equal(term, 3);
    put_ok(fx->br, "kv/y", "term 3");
    assert_int_equal(barrier_rotate_keyring(other, &term, &err), 0);
    assert_int_equal(term, 4);
    put_ok(other, "kv/z", "term 4");
    get_is(fx->br, "kv/z", "term 4");
    get_is(other, "kv/y", "term 3");
    get_is(fx->br, "kv/x", "from server one, term 2");
    barrier_free(other);
}

/* ---- format records ---- */

static void
reopen_expect(struct fixture *fx, int code, const char *msg)
{
    struct barrier *br = NULL;
    struct rk_error err = {0};

    assert_int_equal(barrier_open(fx->b, &br, &err), code);
    if (code == 0)
        assert_non_null(br);
    else
        assert_null(br);
    barrier_free(br);
    if (msg != NULL && strstr(err.msg, msg) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, msg);
}

static void
test_format_versions(void **state)
{
    struct fixture *fx = *state;
    size_t len = 0;
    unsigned char *v = raw_get(fx->b, "core/format", &len);

    assert_memory_equal(v, "{\"format\":1}", len);
    free(v);
    raw_put_str(fx->b, "core/format", "{\"format\":2}");
    reopen_expect(fx, -RK_EVERSION,
                  "store was written by format 2; this rekey reads up to 1: upgrade rekey");
    raw_put_str(fx->b, "core/format", "{\"format\": 1, \"note\": \"extra fields are fine\"}");
    reopen_expect(fx, 0, NULL);
    raw_put_str(fx->b, "core/format", "garbage");
    reopen_expect(fx, -RK_ECORRUPT, "core/format");
    raw_put_str(fx->b, "core/format", "{\"format\":\"1\"}");
    reopen_expect(fx, -RK_ECORRUPT, NULL);
    raw_put_str(fx->b, "core/format", "{\"format\":0}");
    reopen_expect(fx, -RK_ECORRUPT, NULL);
    {
        struct rk_error err = {0};
        assert_int_equal(fx->b->ops->del(fx->b, "core/format", NULL, &err), 0);
    }
    reopen_expect(fx, -RK_ECORRUPT, "no core/format");
}

/* Seals plaintext as the barrier would: 0x01 | term 0 | nonce | ct | tag, AAD core/keyring. */
static void
seal_keyring_blob(const struct secret *root, const unsigned char *pt, size_t ptlen,
                  unsigned char fmt, struct backend *b)
{
    unsigned char buf[512];
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0;

    assert_true(ptlen + 33 <= sizeof(buf));
    memset(buf, 0, 5);
    buf[0] = fmt;
    assert_int_equal(RAND_bytes(buf + 5, 12), 1);
    assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, root->data, buf + 5), 1);
    assert_int_equal(EVP_EncryptUpdate(c, NULL, &n, (const unsigned char *)"core/keyring", 12), 1);
    assert_int_equal(EVP_EncryptUpdate(c, buf + 17, &n, pt, (int)ptlen), 1);
    assert_int_equal(EVP_EncryptFinal_ex(c, buf + 17 + n, &n), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, buf + 17 + ptlen), 1);
    EVP_CIPHER_CTX_free(c);
    raw_put(b, "core/keyring", buf, ptlen + 33);
}

static void
test_keyring_versions(void **state)
{
    struct fixture *fx = *state;
    struct rk_error err = {0};
    /* version 2 of the keyring plaintext: refused as newer, not as a wrong key. */
    unsigned char kr[1 + 4 + 4 + 44] = {2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1};

    barrier_seal(fx->br);
    /* The hand-made keyring replaces the data key core/fpkey is sealed under: drop the record
     * (the unseal that opens the keyring makes a new one, as for a store from before it). */
    assert_int_equal(fx->b->ops->del(fx->b, "core/fpkey", NULL, &err), 0);
    seal_keyring_blob(fx->root, kr, sizeof(kr), 1, fx->b);
    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), -RK_EVERSION);
    assert_true(barrier_sealed(fx->br));
    /* The same, well-formed as version 1, opens: this is the documented layout. */
    kr[0] = 1;
    seal_keyring_blob(fx->root, kr, sizeof(kr), 1, fx->b);
    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), 0);
    barrier_seal(fx->br);
    /* Inconsistent count, or an active term without a key: corrupt. */
    kr[8] = 2;
    seal_keyring_blob(fx->root, kr, sizeof(kr), 1, fx->b);
    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), -RK_ECORRUPT);
    kr[8] = 1;
    kr[4] = 9;
    seal_keyring_blob(fx->root, kr, sizeof(kr), 1, fx->b);
    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), -RK_ECORRUPT);
    kr[4] = 1;
    /* A newer envelope around the keyring. */
    seal_keyring_blob(fx->root, kr, sizeof(kr), 3, fx->b);
    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), -RK_EVERSION);
    assert_true(barrier_sealed(fx->br));
}

/* ---- the fingerprint key ---- */

static void
fp_of(struct barrier *br, const char *value, char out[FINGERPRINT_LEN + 1])
{
    struct rk_error err = {0};
    int r = barrier_fingerprint(br, value, strlen(value), out, &err);

    if (r != 0)
        fail_msg("barrier_fingerprint: %d %s", r, err.msg);
    assert_true(fingerprint_valid(out));
}

/* Keyed per store, kept in core/fpkey: the same across seal, restart and keyring rotation
 * (also seen by a second server), another in another store, never the plain SHA-256. */
static void
test_fingerprint_key(void **state)
{
    struct fixture *fx = *state, fx2 = {0};
    struct rk_error err = {0};
    struct barrier *other = NULL;
    struct secret *v = NULL;
    struct fp_key *k;
    char a[FINGERPRINT_LEN + 1], b[FINGERPRINT_LEN + 1];
    uint32_t term = 0;

    fp_of(fx->br, "hunter2", a);
    assert_string_not_equal(a, "hmac:f52fbd32b2b3"); /* SHA-256("hunter2") starts f52fbd32b2b3 */
    assert_false(barrier_fp_key_take_new(fx->br));   /* made by init: nothing stored before */
    assert_true(raw_term(fx->b, "core/fpkey") == 1);
    /* Not reachable through the barrier's own calls. */
    assert_int_equal(barrier_get(fx->br, "core/fpkey", &v, NULL, &err), -RK_EPERM);

    /* A reference outlives a seal; a sealed barrier gives none. */
    k = barrier_fp_key(fx->br);
    assert_non_null(k);
    barrier_seal(fx->br);
    assert_null(barrier_fp_key(fx->br));
    assert_int_equal(barrier_fingerprint(fx->br, "x", 1, b, &err), -RK_ESEALED);
    assert_int_equal(fingerprint(k, "hunter2", 7, b), 0);
    assert_string_equal(a, b);
    fp_key_unref(k);

    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), 0);
    fp_of(fx->br, "hunter2", b);
    assert_string_equal(a, b);
    assert_int_equal(barrier_rotate_keyring(fx->br, &term, &err), 0);
    assert_int_equal(barrier_rotate_keyring(fx->br, &term, &err), 0);
    assert_int_equal(term, 3);
    fp_of(fx->br, "hunter2", b);
    assert_string_equal(a, b);
    close_store(fx);
    open_store(fx);
    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), 0);
    fp_of(fx->br, "hunter2", b);
    assert_string_equal(a, b);
    assert_true(raw_term(fx->b, "core/fpkey") == 1); /* rotation left the record alone */
    assert_int_equal(barrier_open(fx->b, &other, &err), 0);
    assert_int_equal(barrier_unseal(other, fx->root, &err), 0);
    fp_of(other, "hunter2", b);
    assert_string_equal(a, b);
    barrier_free(other);

    /* Another store (even with the same root key): another fingerprint. */
    snprintf(fx2.path, sizeof(fx2.path), "%s/other.db", fx->dir);
    open_store(&fx2);
    assert_int_equal(barrier_init(fx2.br, fx->root, SEAL_CONFIG, &err), 0);
    fp_of(fx2.br, "hunter2", b);
    assert_string_not_equal(a, b);
    close_store(&fx2);
}

/* A store from before keyed fingerprints (no core/fpkey) gets its key at the first unseal that
 * can write; one that cannot write unseals without it and says so; a damaged record fails. */
static void
test_fingerprint_key_migration(void **state)
{
    struct fixture *fx = *state;
    struct rk_error err = {0};
    struct backend *fb = NULL;
    struct barrier *br = NULL;
    struct fault_spec spec = {FAULT_TXN, 1};
    char a[FINGERPRINT_LEN + 1], b[FINGERPRINT_LEN + 1];
    size_t len = 0;
    unsigned char *rec;
    uint32_t term = 0;

    fp_of(fx->br, "hunter2", a);
    assert_int_equal(barrier_rotate_keyring(fx->br, &term, &err), 0);
    close_store(fx);
    open_store(fx);
    assert_int_equal(fx->b->ops->del(fx->b, "core/fpkey", NULL, &err), 0);

    /* Without write access: unsealed, readable, but no fingerprints. */
    assert_int_equal(faulty_wrap(fx->b, &spec, &fb, &err), 0);
    fx->b = fb;
    assert_int_equal(barrier_open(fx->b, &br, &err), 0);
    barrier_free(fx->br);
    fx->br = br;
    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), 0);
    assert_false(barrier_sealed(fx->br));
    assert_null(barrier_fp_key(fx->br));
    assert_int_equal(barrier_fingerprint(fx->br, "x", 1, b, &err), -RK_EIO);
    assert_non_null(strstr(err.msg, "no fingerprint key"));
    assert_string_equal(b, "");
    assert_false(barrier_fp_key_take_new(fx->br));

    /* The next unseal writes one, sealed under the active term; it is new, so fingerprints
     * differ from the deleted key's, and it stays from then on. */
    barrier_seal(fx->br);
    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), 0);
    fp_of(fx->br, "hunter2", b);
    assert_string_not_equal(a, b);
    assert_true(raw_term(fx->b, "core/fpkey") == 2);
    /* That unseal, and only it, says the stored fingerprints are not this key's; once. */
    assert_true(barrier_fp_key_take_new(fx->br));
    assert_false(barrier_fp_key_take_new(fx->br));
    barrier_seal(fx->br);
    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), 0);
    assert_false(barrier_fp_key_take_new(fx->br));
    fp_of(fx->br, "hunter2", a);
    assert_string_equal(a, b);

    /* A damaged record: the unseal fails and leaves the barrier sealed. */
    barrier_seal(fx->br);
    rec = raw_get(fx->b, "core/fpkey", &len);
    rec[len - 1] ^= 1;
    raw_put(fx->b, "core/fpkey", rec, len);
    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), -RK_ECORRUPT);
    assert_non_null(strstr(err.msg, "core/fpkey"));
    assert_true(barrier_sealed(fx->br));
    free(rec);
}

/* ---- transactions and reserved keys ---- */

static void
test_txn(void **state)
{
    struct fixture *fx = *state;
    struct rk_error err = {0};
    struct barrier_txn *t;
    struct secret *v = NULL;
    int64_t rev_a = 0, rev = 0;

    put_ok(fx->br, "kv/a", "a1");
    put_ok(fx->br, "kv/c", "c1");
    assert_int_equal(barrier_get(fx->br, "kv/a", &v, &rev_a, &err), 0);
    secret_free(v);

    t = barrier_txn_new(fx->br);
    assert_non_null(t);
    assert_int_equal(barrier_txn_cmp(t, "kv/a", rev_a), 0);
    assert_int_equal(barrier_txn_cmp(t, "kv/b", 0), 0);
    assert_int_equal(barrier_txn_put(t, "kv/a", "a2", 2), 0);
    assert_int_equal(barrier_txn_put(t, "kv/b", "b1", 2), 0);
    assert_int_equal(barrier_txn_del(t, "kv/c"), 0);
    assert_int_equal(barrier_txn_count(t), 5);
    assert_int_equal(barrier_txn_commit(t, &rev, &err), 0);
    assert_true(rev > rev_a);
    /* Committing the same transaction again: its compares no longer hold. */
    assert_int_equal(barrier_txn_commit(t, NULL, &err), -RK_ECONFLICT);
    barrier_txn_free(t);
    get_is(fx->br, "kv/a", "a2");
    get_is(fx->br, "kv/b", "b1");
    assert_int_equal(get_code(fx->br, "kv/c", &err), -RK_ENOTFOUND);

    /* A stale compare: nothing at all is written. */
    t = barrier_txn_new(fx->br);
    assert_int_equal(barrier_txn_cmp(t, "kv/a", rev_a), 0);
    assert_int_equal(barrier_txn_put(t, "kv/a", "a3", 2), 0);
    assert_int_equal(barrier_txn_put(t, "kv/d", "d1", 2), 0);
    assert_int_equal(barrier_txn_commit(t, NULL, &err), -RK_ECONFLICT);
    barrier_txn_free(t);
    get_is(fx->br, "kv/a", "a2");
    assert_int_equal(get_code(fx->br, "kv/d", &err), -RK_ENOTFOUND);

    /* The plaintext is copied at put: the caller's buffer may change before commit. */
    {
        char buf[8] = "before";
        t = barrier_txn_new(fx->br);
        assert_int_equal(barrier_txn_put(t, "kv/e", buf, 6), 0);
        memcpy(buf, "AFTER!", 6);
        assert_int_equal(barrier_txn_commit(t, NULL, &err), 0);
        barrier_txn_free(t);
        get_is(fx->br, "kv/e", "before");
    }
    barrier_txn_free(NULL);
}

static int
collect_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    char *out = arg;
    (void)vlen;
    assert_null(val);
    assert_true(mod_rev > 0);
    strncat(out, key, 1023 - strlen(out));
    strncat(out, ",", 1023 - strlen(out));
    return 0;
}

static void
test_reserved_and_list(void **state)
{
    struct fixture *fx = *state;
    struct rk_error err = {0};
    struct barrier_txn *t;
    char out[1024];

    assert_int_equal(get_code(fx->br, "core/keyring", &err), -RK_EPERM);
    assert_int_equal(get_code(fx->br, "core/format", &err), -RK_EPERM);
    assert_int_equal(barrier_put(fx->br, "core/keyring", "x", 1, &err), -RK_EPERM);
    assert_int_equal(barrier_del(fx->br, "core/seal", &err), -RK_EPERM);
    assert_int_equal(get_code(fx->br, "", &err), -RK_EINVAL);
    t = barrier_txn_new(fx->br);
    assert_int_equal(barrier_txn_put(t, "kv/ok", "x", 1), 0);
    assert_int_equal(barrier_txn_put(t, "core/format", "{\"format\":9}", 12), 0);
    assert_int_equal(barrier_txn_commit(t, NULL, &err), -RK_EPERM);
    barrier_txn_free(t);
    assert_int_equal(get_code(fx->br, "kv/ok", &err), -RK_ENOTFOUND);
    t = barrier_txn_new(fx->br);
    assert_int_equal(barrier_txn_cmp(t, "core/keyring", 0), 0);
    assert_int_equal(barrier_txn_commit(t, NULL, &err), -RK_EPERM);
    barrier_txn_free(t);

    put_ok(fx->br, "a/1", "x");
    put_ok(fx->br, "cor", "x");
    put_ok(fx->br, "core", "x");
    put_ok(fx->br, "kv/1", "x");
    put_ok(fx->br, "kv/2", "x");
    put_ok(fx->br, "kv/3", "x");
    out[0] = '\0';
    assert_int_equal(barrier_list(fx->br, "", NULL, 0, collect_cb, out, &err), 0);
    assert_string_equal(out, "a/1,cor,core,kv/1,kv/2,kv/3,");
    /* The barrier's own keys do not use up a limit. */
    out[0] = '\0';
    assert_int_equal(barrier_list(fx->br, "", "core", 2, collect_cb, out, &err), 0);
    assert_string_equal(out, "kv/1,kv/2,");
    out[0] = '\0';
    assert_int_equal(barrier_list(fx->br, "co", NULL, 0, collect_cb, out, &err), 0);
    assert_string_equal(out, "cor,core,");
    out[0] = '\0';
    assert_int_equal(barrier_list(fx->br, "kv/", "kv/1", 1, collect_cb, out, &err), 0);
    assert_string_equal(out, "kv/2,");
    assert_int_equal(barrier_list(fx->br, "core/", NULL, 0, collect_cb, out, &err), -RK_EPERM);
    barrier_seal(fx->br);
    assert_int_equal(barrier_list(fx->br, "kv/", NULL, 0, collect_cb, out, &err), -RK_ESEALED);
}

/* ---- threads ---- */

struct reader_arg {
    struct barrier *br;
    int n, failures;
};

static void *
reader(void *p)
{
    struct reader_arg *a = p;
    char key[32];

    for (int i = 0; i < a->n; i++) {
        struct rk_error err = {0};
        struct secret *v = NULL;
        snprintf(key, sizeof(key), "kv/t/%d", i % 16);
        if (barrier_get(a->br, key, &v, NULL, &err) != 0 || v->len != 6 ||
            memcmp(v->data, "value-", 6) != 0)
            a->failures++;
        secret_free(v);
    }
    return NULL;
}

static void *
writer(void *p)
{
    struct reader_arg *a = p;
    char key[32];

    for (int i = 0; i < a->n; i++) {
        struct rk_error err = {0};
        snprintf(key, sizeof(key), "kv/w/%d", i);
        if (barrier_put(a->br, key, "written", 7, &err) != 0)
            a->failures++;
        if (i == a->n / 2 && barrier_rotate_keyring(a->br, NULL, &err) != 0)
            a->failures++;
    }
    return NULL;
}

static void
test_threads(void **state)
{
    struct fixture *fx = *state;
    struct reader_arg ra[4], wa;
    pthread_t th[5];
    char key[32];

    for (int i = 0; i < 16; i++) {
        snprintf(key, sizeof(key), "kv/t/%d", i);
        put_ok(fx->br, key, "value-");
    }
    for (int i = 0; i < 4; i++) {
        ra[i] = (struct reader_arg){fx->br, 20000, 0};
        assert_int_equal(pthread_create(&th[i], NULL, reader, &ra[i]), 0);
    }
    wa = (struct reader_arg){fx->br, 100, 0};
    assert_int_equal(pthread_create(&th[4], NULL, writer, &wa), 0);
    for (int i = 0; i < 5; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ra[i].failures, 0);
    assert_int_equal(wa.failures, 0);
    for (int i = 0; i < 100; i += 33) {
        snprintf(key, sizeof(key), "kv/w/%d", i);
        get_is(fx->br, key, "written");
    }
}

/* ---- seal and rotation as seen by a thread with cached cipher contexts ---- */

struct step_arg {
    struct barrier *br;
    pthread_barrier_t sync;
    int rget[4], rput[4]; /* results per phase */
    int value_ok[4];
};

/* Thread A: one get and one put per phase, so its cached decryption and encryption contexts
 * exist before the main thread (B) seals, unseals and rotates between the phases. */
static void *
stepper(void *p)
{
    struct step_arg *a = p;
    char key[32];

    for (int phase = 0; phase < 4; phase++) {
        struct rk_error err = {0};
        struct secret *v = NULL;

        pthread_barrier_wait(&a->sync); /* B has done this phase's change */
        a->rget[phase] = barrier_get(a->br, "kv/step", &v, NULL, &err);
        a->value_ok[phase] = v != NULL && v->len == 5 && memcmp(v->data, "first", 5) == 0;
        secret_free(v);
        snprintf(key, sizeof(key), "kv/step/%d", phase);
        a->rput[phase] = barrier_put(a->br, key, "x", 1, &err);
        pthread_barrier_wait(&a->sync); /* A is done with this phase */
    }
    return NULL;
}

static void
test_seal_other_thread(void **state)
{
    struct fixture *fx = *state;
    struct rk_error err = {0};
    struct step_arg a;
    pthread_t th;

    memset(&a, 0, sizeof(a));
    a.br = fx->br;
    put_ok(fx->br, "kv/step", "first");
    assert_int_equal(pthread_barrier_init(&a.sync, NULL, 2), 0);
    assert_int_equal(pthread_create(&th, NULL, stepper, &a), 0);
    /* phase 0: unsealed, A caches its contexts */
    pthread_barrier_wait(&a.sync);
    pthread_barrier_wait(&a.sync);
    /* phase 1: sealed from this thread */
    barrier_seal(fx->br);
    pthread_barrier_wait(&a.sync);
    pthread_barrier_wait(&a.sync);
    /* phase 2: unsealed again */
    assert_int_equal(barrier_unseal(fx->br, fx->root, &err), 0);
    pthread_barrier_wait(&a.sync);
    pthread_barrier_wait(&a.sync);
    /* phase 3: after a rotation A's cached contexts belong to an old generation */
    assert_int_equal(barrier_rotate_keyring(fx->br, NULL, &err), 0);
    pthread_barrier_wait(&a.sync);
    pthread_barrier_wait(&a.sync);
    pthread_join(th, NULL);
    pthread_barrier_destroy(&a.sync);

    assert_int_equal(a.rget[0], 0);
    assert_true(a.value_ok[0]);
    assert_int_equal(a.rput[0], 0);
    assert_int_equal(a.rget[1], -RK_ESEALED);
    assert_int_equal(a.rput[1], -RK_ESEALED);
    assert_int_equal(a.rget[2], 0);
    assert_true(a.value_ok[2]);
    assert_int_equal(a.rput[2], 0);
    assert_int_equal(a.rget[3], 0);
    assert_true(a.value_ok[3]);
    assert_int_equal(a.rput[3], 0);
    /* A's write after the rotation used the new key; the earlier ones read back. */
    assert_int_equal(raw_term(fx->b, "kv/step/2"), 1);
    assert_int_equal(raw_term(fx->b, "kv/step/3"), 2);
    get_is(fx->br, "kv/step/0", "x");
    get_is(fx->br, "kv/step/3", "x");
    assert_int_equal(barrier_get(fx->br, "kv/step/1", &(struct secret *){NULL}, NULL, &err),
                     -RK_ENOTFOUND);
}

/* A get on the same thread before and after a rotation, and a value written under each term. */
static void
test_get_after_rotate(void **state)
{
    struct fixture *fx = *state;
    struct rk_error err = {0};

    put_ok(fx->br, "kv/r/a", "term one");
    get_is(fx->br, "kv/r/a", "term one"); /* caches this thread's context for term 1 */
    assert_int_equal(barrier_rotate_keyring(fx->br, NULL, &err), 0);
    get_is(fx->br, "kv/r/a", "term one");
    put_ok(fx->br, "kv/r/b", "term two");
    assert_int_equal(raw_term(fx->b, "kv/r/b"), 2);
    get_is(fx->br, "kv/r/b", "term two");
    get_is(fx->br, "kv/r/a", "term one");
    put_ok(fx->br, "kv/r/a", "rewritten");
    assert_int_equal(raw_term(fx->b, "kv/r/a"), 2);
    get_is(fx->br, "kv/r/a", "rewritten");
}

/* ---- speed (printed, not asserted: sanitizer and valgrind builds run this too) ---- */

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
test_speed(void **state)
{
    struct fixture *fx = *state;
    char val[101], key[32];
    double t0, dt;
    int n = 0;

    memset(val, 'v', 100);
    val[100] = '\0';
    for (int i = 0; i < 64; i++) {
        snprintf(key, sizeof(key), "kv/speed/%d", i);
        put_ok(fx->br, key, val);
    }
    t0 = now_s();
    do {
        for (int i = 0; i < 1000; i++, n++) {
            struct rk_error err = {0};
            struct secret *v = NULL;
            snprintf(key, sizeof(key), "kv/speed/%d", n & 63);
            assert_int_equal(barrier_get(fx->br, key, &v, NULL, &err), 0);
            secret_free(v);
        }
        dt = now_s() - t0;
    } while (dt < 0.5);
    printf("# barrier_get (sqlite, 100-byte values): %.0f per second on one thread\n", n / dt);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_init_unseal_seal),
        T(test_uninitialised),
        T(test_wrong_key),
        T(test_encrypted_at_rest),
        T(test_aad_binding),
        T(test_rotate),
        T(test_rotate_two_servers),
        T(test_format_versions),
        T(test_keyring_versions),
        T(test_fingerprint_key),
        T(test_fingerprint_key_migration),
        T(test_txn),
        T(test_reserved_and_list),
        T(test_threads),
        T(test_seal_other_thread),
        T(test_get_after_rotate),
        T(test_speed),
    };
#undef T
    secure_heap_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
