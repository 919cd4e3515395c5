/* Unit tests for src/secrets/kv: versions, stages, check-and-set, pruning, deletes, listing,
 * metadata, keyed fingerprints and the migration of unkeyed ones, concurrency (racing
 * create-only writes), that nothing reaches the disk in plaintext, and that kv_data_prepare's
 * fast path for canonical data agrees with the jansson path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secrets/kv.h"
#include "secrets/kvmeta.h"
#include "store/backend.h"
#include "store/barrier.h"
#include "util/enc.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/secret.h"
#include "util/timeutil.h"

#include "barrier_fixture.h"
#include "test_rng.h"

struct fx {
    struct barrier_fx s;
    struct kv *kv;
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct rk_error err = {0};

    assert_non_null(f);
    barrier_fx_open(&f->s, "kv");
    assert_int_equal(kv_open(f->s.br, &f->kv, &err), 0);
    *state = f;
    return 0;
}

/* Closes and opens the store again, as a restart does (unsealed with the same root key). */
static void
reopen(struct fx *f)
{
    struct rk_error err = {0};

    kv_free(f->kv);
    barrier_fx_reopen(&f->s);
    assert_int_equal(kv_open(f->s.br, &f->kv, &err), 0);
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    kv_free(f->kv);
    barrier_fx_close(&f->s);
    free(f);
    return 0;
}

/* Puts a JSON text; returns the rc, version in *v. */
static int
put_json(struct kv *kv, const char *path, const char *json, const struct kv_put_opts *o,
         uint64_t *v, struct rk_error *err)
{
    struct secret *s = secret_from_str(json);
    int r;

    assert_non_null(s);
    r = kv_put(kv, path, s, o, v, err);
    secret_free(s);
    return r;
}

static void
expect_data(struct kv *kv, const char *path, uint64_t version, const char *json)
{
    struct secret *d = NULL;
    struct rk_error err = {0};

    assert_int_equal(kv_get(kv, path, version, &d, NULL, &err), 0);
    assert_string_equal((const char *)d->data, json);
    secret_free(d);
}

static enum kv_stage
stage_of(struct kv *kv, const char *path, uint64_t version)
{
    struct kv_meta *m = NULL;
    struct kv_version_meta *vm;
    struct rk_error err = {0};
    enum kv_stage st;

    assert_int_equal(kv_metadata_get(kv, path, &m, &err), 0);
    vm = kv_meta_find(m, version);
    assert_non_null(vm);
    st = vm->stage;
    kv_meta_free(m);
    return st;
}

static void
test_put_get(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct kv_version_meta vm;
    struct secret *d = NULL;
    uint64_t v = 0;
    const char *p = "secret/ai-gateway/litellm/master-key";

    assert_int_equal(put_json(f->kv, p, "{\"key\": \"sk-litellm-one\"}", NULL, &v, &err), 0);
    assert_int_equal(v, 1);
    assert_int_equal(put_json(f->kv, p, "{\"key\":\"sk-litellm-two\",\"a\":\"b\"}", NULL, &v, &err),
                     0);
    assert_int_equal(v, 2);
    /* Stored canonical: sorted keys, compact. */
    expect_data(f->kv, p, 0, "{\"a\":\"b\",\"key\":\"sk-litellm-two\"}");
    expect_data(f->kv, p, 1, "{\"key\":\"sk-litellm-one\"}");
    expect_data(f->kv, p, 2, "{\"a\":\"b\",\"key\":\"sk-litellm-two\"}");
    assert_int_equal(kv_get(f->kv, p, 1, &d, &vm, &err), 0);
    assert_int_equal(vm.version, 1);
    assert_int_equal(vm.stage, KV_STAGE_PREVIOUS);
    assert_true(vm.created_us > 0);
    assert_int_equal(vm.deletion_us, 0);
    secret_free(d);
    d = NULL;
    assert_int_equal(kv_get(f->kv, p, 3, &d, &vm, &err), -RK_ENOTFOUND);
    assert_null(d);
    assert_int_equal(vm.version, 0);
    assert_int_equal(kv_get(f->kv, "secret/nothing", 0, &d, NULL, &err), -RK_ENOTFOUND);
    assert_int_equal(kv_get(f->kv, "/bad//path", 0, &d, NULL, &err), -RK_EINVAL);
    /* Bad data is refused and the message does not quote it. */
    assert_int_equal(put_json(f->kv, p, "{\"key\": sk-oops-secret}", NULL, &v, &err), -RK_EINVAL);
    assert_null(strstr(err.msg, "oops"));
    assert_int_equal(put_json(f->kv, p, "[\"x\"]", NULL, &v, &err), -RK_EINVAL);
}

static void
test_get_field(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct secret *val = NULL;
    const char *p = "secret/ai-gateway/providers/openai";

    assert_int_equal(
        put_json(f->kv, p, "{\"api_key\":\"sk-proj-abc_DEF-1\",\"n\":3}", NULL, NULL, &err), 0);
    assert_int_equal(kv_get_field(f->kv, p, 0, "api_key", &val, &err), 0);
    assert_string_equal((const char *)val->data, "sk-proj-abc_DEF-1");
    secret_free(val);
    assert_int_equal(kv_get_field(f->kv, p, 0, "missing", &val, &err), -RK_ENOTFOUND);
    assert_int_equal(kv_get_field(f->kv, p, 0, "n", &val, &err), -RK_EINVAL);
}

static void
test_stages_sequence(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct kv_meta *m = NULL;
    const char *p = "secret/ai-gateway/redis/auth";
    char buf[64];

    for (int i = 1; i <= 4; i++) {
        snprintf(buf, sizeof(buf), "{\"password\":\"pw%d\"}", i);
        assert_int_equal(put_json(f->kv, p, buf, NULL, NULL, &err), 0);
    }
    assert_int_equal(stage_of(f->kv, p, 4), KV_STAGE_CURRENT);
    assert_int_equal(stage_of(f->kv, p, 3), KV_STAGE_PREVIOUS);
    assert_int_equal(stage_of(f->kv, p, 2), KV_STAGE_RETIRED);
    assert_int_equal(stage_of(f->kv, p, 1), KV_STAGE_RETIRED);
    assert_int_equal(kv_metadata_get(f->kv, p, &m, &err), 0);
    assert_int_equal(m->current_version, 4);
    assert_int_equal(m->latest_version, 4);
    assert_int_equal(m->oldest_version, 1);
    kv_meta_free(m);
}

static void
test_pending_promote(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct kv_put_opts o = KV_PUT_OPTS_INIT;
    struct kv_meta *m = NULL;
    struct barrier_txn *t;
    struct secret *val, *data = NULL;
    char fp[FINGERPRINT_LEN + 1];
    uint64_t v = 0;
    int64_t rev = 0;
    const char *p = "secret/ai-gateway/litellm/master-key";

    assert_int_equal(put_json(f->kv, p, "{\"key\":\"old\"}", NULL, NULL, &err), 0);
    o.stage = KV_STAGE_PENDING;
    o.author = "rotation";
    o.reason = "scheduled";
    assert_int_equal(put_json(f->kv, p, "{\"key\":\"new\"}", &o, &v, &err), 0);
    assert_int_equal(v, 2);
    /* Pending does not change what readers get. */
    expect_data(f->kv, p, 0, "{\"key\":\"old\"}");
    assert_int_equal(stage_of(f->kv, p, 2), KV_STAGE_PENDING);
    assert_int_equal(stage_of(f->kv, p, 1), KV_STAGE_CURRENT);

    /* Promote through the transactional API, with a journal record in the same txn. */
    t = barrier_txn_new(kv_barrier(f->kv));
    assert_non_null(t);
    assert_int_equal(kv_set_stage(f->kv, t, p, 2, KV_STAGE_CURRENT, &err), 0);
    assert_int_equal(barrier_txn_put(t, "engine/journal/1", "promote", 7), 0);
    assert_int_equal(barrier_txn_commit(t, NULL, &err), 0);
    barrier_txn_free(t);
    expect_data(f->kv, p, 0, "{\"key\":\"new\"}");
    assert_int_equal(stage_of(f->kv, p, 1), KV_STAGE_PREVIOUS);

    /* Rollback: old becomes current again, the new one failed. */
    assert_int_equal(kv_meta_load(f->kv, p, &m, &rev, &err), 0);
    assert_true(rev > 0);
    assert_int_equal(kv_meta_set_current(m, 1, KV_STAGE_FAILED, &err), 0);
    assert_int_equal(kv_meta_set_stage(m, 1, KV_STAGE_RETIRED, &err), -RK_EINVAL);
    t = barrier_txn_new(kv_barrier(f->kv));
    assert_int_equal(kv_stage_put(f->kv, t, p, m, rev, 0, NULL, &err), 0);
    assert_int_equal(barrier_txn_commit(t, NULL, &err), 0);
    barrier_txn_free(t);
    expect_data(f->kv, p, 0, "{\"key\":\"old\"}");
    assert_int_equal(stage_of(f->kv, p, 2), KV_STAGE_FAILED);

    /* A stale mod_rev conflicts and writes nothing (the journal put too). */
    assert_int_equal(kv_meta_promote(m, 2, &err), 0);
    t = barrier_txn_new(kv_barrier(f->kv));
    assert_int_equal(kv_stage_put(f->kv, t, p, m, rev, 0, NULL, &err), 0);
    assert_int_equal(barrier_txn_put(t, "engine/journal/2", "x", 1), 0);
    assert_int_equal(barrier_txn_commit(t, NULL, &err), -RK_ECONFLICT);
    barrier_txn_free(t);
    kv_meta_free(m);
    m = NULL;
    expect_data(f->kv, p, 0, "{\"key\":\"old\"}");

    /* The engine's path: a pending version with its data, added in the caller's txn. */
    assert_int_equal(kv_meta_load(f->kv, p, &m, &rev, &err), 0);
    val = secret_from_str("sk-litellm-0123456789abcdef");
    assert_int_equal(kv_data_single(f->kv, "key", val, &data, fp, &err), 0);
    assert_string_equal((const char *)data->data, "{\"key\":\"sk-litellm-0123456789abcdef\"}");
    assert_int_equal(kv_meta_add_version(m, KV_STAGE_PENDING, "engine", "rotate", fp, &v, &err), 0);
    assert_int_equal(v, 3);
    t = barrier_txn_new(kv_barrier(f->kv));
    assert_int_equal(kv_stage_put(f->kv, t, p, m, rev, v, data, &err), 0);
    assert_int_equal(barrier_txn_commit(t, NULL, &err), 0);
    barrier_txn_free(t);
    kv_meta_free(m);
    secret_free(data);
    expect_data(f->kv, p, 3, "{\"key\":\"sk-litellm-0123456789abcdef\"}");
    expect_data(f->kv, p, 0, "{\"key\":\"old\"}");
    {
        struct kv_version_meta vm;
        char want[FINGERPRINT_LEN + 1];
        assert_int_equal(barrier_fingerprint(f->s.br, val->data, val->len, want, &err), 0);
        assert_int_equal(kv_get(f->kv, p, 3, NULL, &vm, &err), 0);
        assert_string_equal(vm.fingerprint, want);
        assert_string_equal(vm.author, "engine");
        assert_string_equal(vm.reason, "rotate");
        assert_int_equal(vm.stage, KV_STAGE_PENDING);
    }
    secret_free(val);
}

/* The "kv/data/<path>@cur" record (format 2: 0x02 | version u64 | created i64 | deletion i64 |
 * destroyed u8 | stage u8 | author_len u16 | reason_len u16 | fp_len u8 | custom_len u32 |
 * author | reason | fingerprint | custom | data), read straight from the barrier. */
struct cur_rec {
    uint64_t version;
    int64_t deletion_us;
    int destroyed;
    char custom[256];
    char data[128];
};

static uint64_t
be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static int
read_cur(struct fx *f, const char *path, struct cur_rec *c)
{
    char key[256];
    struct secret *raw = NULL;
    struct rk_error err = {0};
    size_t off, cl;
    int r;

    snprintf(key, sizeof(key), "kv/data/%s@cur", path);
    memset(c, 0, sizeof(*c));
    if ((r = barrier_get(f->s.br, key, &raw, NULL, &err)) != 0)
        return r;
    assert_true(raw->len >= 36);
    assert_int_equal(raw->data[0], 2);
    c->version = be64(raw->data + 1);
    c->deletion_us = (int64_t)be64(raw->data + 17);
    c->destroyed = raw->data[25];
    cl = (size_t)raw->data[32] << 24 | (size_t)raw->data[33] << 16 | (size_t)raw->data[34] << 8 |
         raw->data[35];
    off = 36 + ((size_t)raw->data[27] << 8 | raw->data[28]) +
          ((size_t)raw->data[29] << 8 | raw->data[30]) + raw->data[31];
    assert_true(cl < sizeof(c->custom) && off + cl <= raw->len);
    memcpy(c->custom, raw->data + off, cl);
    off += cl;
    assert_true(raw->len - off < sizeof(c->data));
    memcpy(c->data, raw->data + off, raw->len - off);
    secret_free(raw);
    return 0;
}

/* Overwrites path's record with a format 1 one (as a rekey before custom_metadata moved into
 * the record wrote it) for version v holding data. */
static void
write_cur_v1(struct fx *f, const char *path, uint64_t v, const char *data)
{
    unsigned char rec[32 + 128];
    size_t dl = strlen(data);
    char key[256];
    struct rk_error err = {0};
    struct barrier_txn *t;

    assert_true(dl <= 128);
    memset(rec, 0, sizeof(rec));
    rec[0] = 1;
    for (int i = 0; i < 8; i++)
        rec[1 + i] = (unsigned char)(v >> (8 * (7 - i)));
    rec[16] = 1; /* created_us = 1 */
    rec[26] = KV_STAGE_CURRENT;
    memcpy(rec + 32, data, dl);
    snprintf(key, sizeof(key), "kv/data/%s@cur", path);
    t = barrier_txn_new(f->s.br);
    assert_non_null(t);
    assert_int_equal(barrier_txn_put(t, key, rec, 32 + dl), 0);
    assert_int_equal(barrier_txn_commit(t, NULL, &err), 0);
    barrier_txn_free(t);
}

/* Sets path's custom_metadata from a JSON object text. */
static void
set_custom(struct kv *kv, const char *path, const char *json)
{
    struct kv_meta_settings s;
    struct rk_error err = {0};
    json_t *c = json_loads(json, 0, NULL);

    assert_non_null(c);
    memset(&s, 0, sizeof(s));
    s.has_custom_metadata = 1;
    s.custom_metadata = c;
    assert_int_equal(kv_metadata_put(kv, path, &s, &err), 0);
    json_decref(c);
}

/* kv_get_current of path: asserts rc, and the data and custom_metadata (NULL = none) on 0. */
static void
expect_current(struct kv *kv, const char *path, int rc, uint64_t version, const char *data,
               const char *custom)
{
    struct rk_error err = {0};
    struct kv_version_meta vm;
    struct secret *d = NULL;
    json_t *c = NULL, *want;

    assert_int_equal(kv_get_current(kv, path, &d, &vm, &c, &err), rc);
    assert_int_equal(vm.version, version);
    if (rc == 0) {
        assert_non_null(d);
        assert_int_equal(d->len, strlen(data));
        assert_memory_equal(d->data, data, d->len);
    } else {
        assert_null(d);
    }
    if (custom == NULL) {
        assert_null(c);
    } else {
        want = json_loads(custom, 0, NULL);
        assert_non_null(want);
        assert_non_null(c);
        assert_true(json_equal(c, want));
        json_decref(want);
    }
    json_decref(c);
    secret_free(d);
}

static void
test_get_current(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct kv_put_opts o = KV_PUT_OPTS_INIT;
    struct kv_version_meta wvm, vm;
    struct cur_rec c;
    const uint64_t two = 2;
    const char *p = "secret/cur/custom";

    expect_current(f->kv, p, -RK_ENOTFOUND, 0, NULL, NULL);
    /* kv_put reports the version it wrote, as a read afterwards sees it. */
    memset(&wvm, 0xff, sizeof(wvm));
    o.author = "alice";
    o.reason = "first";
    o.out_vm = &wvm;
    assert_int_equal(put_json(f->kv, p, "{\"a\":\"1\"}", &o, NULL, &err), 0);
    assert_int_equal(kv_get(f->kv, p, 0, NULL, &vm, &err), 0);
    assert_int_equal(wvm.version, 1);
    assert_int_equal(wvm.created_us, vm.created_us);
    assert_int_equal(wvm.deletion_us, 0);
    assert_int_equal(wvm.destroyed, 0);
    assert_string_equal(wvm.fingerprint, vm.fingerprint);
    assert_string_equal(wvm.reason, "first");
    assert_string_equal(wvm.author, "alice");
    assert_int_equal(wvm.stage, KV_STAGE_CURRENT);
    expect_current(f->kv, p, 0, 1, "{\"a\":\"1\"}", NULL);

    /* kv_metadata_put rewrites the record with the new custom_metadata; data writes keep it. */
    set_custom(f->kv, p, "{\"team\":\"ml\",\"env\":\"prod\"}");
    assert_int_equal(read_cur(f, p, &c), 0);
    assert_string_equal(c.custom, "{\"env\":\"prod\",\"team\":\"ml\"}");
    expect_current(f->kv, p, 0, 1, "{\"a\":\"1\"}", "{\"env\":\"prod\",\"team\":\"ml\"}");
    assert_int_equal(put_json(f->kv, p, "{\"a\":\"2\"}", NULL, NULL, &err), 0);
    expect_current(f->kv, p, 0, 2, "{\"a\":\"2\"}", "{\"env\":\"prod\",\"team\":\"ml\"}");
    set_custom(f->kv, p, "{\"team\":\"infra\"}");
    expect_current(f->kv, p, 0, 2, "{\"a\":\"2\"}", "{\"team\":\"infra\"}");

    /* A deleted current version: not found, with its metadata and the custom_metadata. */
    assert_int_equal(kv_delete_versions(f->kv, p, &two, 1, &err), 0);
    expect_current(f->kv, p, -RK_ENOTFOUND, 2, NULL, "{\"team\":\"infra\"}");
    assert_int_equal(kv_undelete_versions(f->kv, p, &two, 1, &err), 0);

    /* An emptied map reads as none, and the record holds none. */
    set_custom(f->kv, p, "{}");
    assert_int_equal(read_cur(f, p, &c), 0);
    assert_string_equal(c.custom, "");
    assert_string_equal(c.data, "{\"a\":\"2\"}");
    expect_current(f->kv, p, 0, 2, "{\"a\":\"2\"}", NULL);

    /* custom may be NULL: then it is kv_get of version 0. */
    assert_int_equal(kv_get_current(f->kv, p, NULL, &vm, NULL, &err), 0);
    assert_int_equal(vm.version, 2);
}

/* A store written by a rekey whose record lacks custom_metadata (format 1): kv_get still reads
 * the record alone, kv_get_current falls back to the metadata and the data key. The old record
 * here deliberately holds other data, so each test sees which path answered. */
static void
test_get_current_old_record(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct kv_version_meta vm;
    struct cur_rec c;
    const char *p = "secret/cur/old";

    assert_int_equal(put_json(f->kv, p, "{\"a\":\"1\"}", NULL, NULL, &err), 0);
    set_custom(f->kv, p, "{\"owner\":\"bob\"}");
    write_cur_v1(f, p, 1, "{\"a\":\"record\"}");
    expect_data(f->kv, p, 0, "{\"a\":\"record\"}");
    assert_int_equal(kv_get(f->kv, p, 0, NULL, &vm, &err), 0);
    assert_int_equal(vm.created_us, 1);
    expect_current(f->kv, p, 0, 1, "{\"a\":\"1\"}", "{\"owner\":\"bob\"}");

    /* No custom_metadata: the fallback gives NULL too. */
    set_custom(f->kv, p, "{}");
    write_cur_v1(f, p, 1, "{\"a\":\"record\"}");
    expect_current(f->kv, p, 0, 1, "{\"a\":\"1\"}", NULL);

    /* The next metadata write replaces the old record with a new one. */
    set_custom(f->kv, p, "{\"owner\":\"carol\"}");
    assert_int_equal(read_cur(f, p, &c), 0);
    assert_string_equal(c.custom, "{\"owner\":\"carol\"}");
    assert_string_equal(c.data, "{\"a\":\"1\"}");
    expect_current(f->kv, p, 0, 1, "{\"a\":\"1\"}", "{\"owner\":\"carol\"}");
}

static void
test_cur_record(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct kv_put_opts o = KV_PUT_OPTS_INIT;
    struct barrier_txn *t;
    struct secret *d = NULL;
    struct cur_rec c;
    const uint64_t two = 2;
    const char *p = "secret/cur/test";

    assert_int_equal(put_json(f->kv, p, "{\"a\":\"1\"}", NULL, NULL, &err), 0);
    assert_int_equal(read_cur(f, p, &c), 0);
    assert_int_equal(c.version, 1);
    assert_string_equal(c.data, "{\"a\":\"1\"}");

    /* A pending version leaves it alone. */
    o.stage = KV_STAGE_PENDING;
    assert_int_equal(put_json(f->kv, p, "{\"a\":\"2\"}", &o, NULL, &err), 0);
    assert_int_equal(read_cur(f, p, &c), 0);
    assert_int_equal(c.version, 1);
    assert_string_equal(c.data, "{\"a\":\"1\"}");

    /* Promote: the record follows, with the promoted version's data read from the store. */
    t = barrier_txn_new(kv_barrier(f->kv));
    assert_non_null(t);
    assert_int_equal(kv_set_stage(f->kv, t, p, 2, KV_STAGE_CURRENT, &err), 0);
    assert_int_equal(barrier_txn_commit(t, NULL, &err), 0);
    barrier_txn_free(t);
    assert_int_equal(read_cur(f, p, &c), 0);
    assert_int_equal(c.version, 2);
    assert_int_equal(c.deletion_us, 0);
    assert_string_equal(c.data, "{\"a\":\"2\"}");
    expect_data(f->kv, p, 0, "{\"a\":\"2\"}");

    /* Deleting the current version marks the record deleted; reads say not found. */
    assert_int_equal(kv_delete_versions(f->kv, p, &two, 1, &err), 0);
    assert_int_equal(read_cur(f, p, &c), 0);
    assert_int_equal(c.version, 2);
    assert_true(c.deletion_us > 0);
    assert_int_equal(kv_get(f->kv, p, 0, &d, NULL, &err), -RK_ENOTFOUND);
    assert_null(d);
    assert_int_equal(kv_undelete_versions(f->kv, p, &two, 1, &err), 0);
    assert_int_equal(read_cur(f, p, &c), 0);
    assert_int_equal(c.deletion_us, 0);
    expect_data(f->kv, p, 0, "{\"a\":\"2\"}");

    /* Destroying it leaves a record without data. */
    assert_int_equal(kv_destroy_versions(f->kv, p, &two, 1, &err), 0);
    assert_int_equal(read_cur(f, p, &c), 0);
    assert_int_equal(c.version, 2);
    assert_int_equal(c.destroyed, 1);
    assert_string_equal(c.data, "");
    assert_int_equal(kv_get(f->kv, p, 0, &d, NULL, &err), -RK_ENOTFOUND);
    assert_null(d);

    /* A new current version after that, then the whole path goes. */
    assert_int_equal(put_json(f->kv, p, "{\"a\":\"3\"}", NULL, NULL, &err), 0);
    assert_int_equal(read_cur(f, p, &c), 0);
    assert_int_equal(c.version, 3);
    assert_string_equal(c.data, "{\"a\":\"3\"}");
    assert_int_equal(kv_delete_metadata(f->kv, p, &err), 0);
    assert_int_equal(read_cur(f, p, &c), -RK_ENOTFOUND);
    assert_int_equal(kv_get(f->kv, p, 0, &d, NULL, &err), -RK_ENOTFOUND);
    assert_null(d);
}

static void
test_cas(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct kv_put_opts o = KV_PUT_OPTS_INIT;
    struct kv_meta_settings s = {0};
    uint64_t v = 0;
    const char *p = "secret/cas";

    o.cas = 0;
    assert_int_equal(put_json(f->kv, p, "{\"a\":\"1\"}", &o, &v, &err), 0);
    assert_int_equal(put_json(f->kv, p, "{\"a\":\"2\"}", &o, &v, &err), -RK_ECONFLICT);
    assert_string_equal(err.msg, "check-and-set parameter did not match the current version");
    o.cas = 1;
    assert_int_equal(put_json(f->kv, p, "{\"a\":\"2\"}", &o, &v, &err), 0);
    assert_int_equal(v, 2);
    assert_int_equal(put_json(f->kv, p, "{\"a\":\"3\"}", &o, &v, &err), -RK_ECONFLICT);
    expect_data(f->kv, p, 0, "{\"a\":\"2\"}");

    s.has_cas_required = 1;
    s.cas_required = 1;
    assert_int_equal(kv_metadata_put(f->kv, p, &s, &err), 0);
    assert_int_equal(put_json(f->kv, p, "{\"a\":\"3\"}", NULL, &v, &err), -RK_EINVAL);
    assert_string_equal(err.msg, "check-and-set parameter required for this call");
    o.cas = 2;
    assert_int_equal(put_json(f->kv, p, "{\"a\":\"3\"}", &o, &v, &err), 0);
    assert_int_equal(v, 3);
}

static void
test_patch(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct secret *patch;
    uint64_t v = 0;
    const char *p = "database/static/app";

    patch = secret_from_str("{\"password\":\"p2\",\"old\":null}");
    assert_int_equal(kv_patch(f->kv, p, patch, NULL, &v, &err), -RK_ENOTFOUND);
    assert_int_equal(put_json(f->kv, p, "{\"username\":\"app\",\"password\":\"p1\",\"old\":\"x\"}",
                              NULL, NULL, &err),
                     0);
    assert_int_equal(kv_patch(f->kv, p, patch, NULL, &v, &err), 0);
    assert_int_equal(v, 2);
    expect_data(f->kv, p, 0, "{\"password\":\"p2\",\"username\":\"app\"}");
    assert_int_equal(stage_of(f->kv, p, 1), KV_STAGE_PREVIOUS);
    secret_free(patch);
}

static void
test_max_versions(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct kv_meta_settings s = {0};
    struct kv_put_opts pend = KV_PUT_OPTS_INIT;
    struct kv_meta *m = NULL;
    struct secret *d = NULL;
    const char *p = "secret/pruned";
    char buf[64];
    uint64_t v;

    s.has_max_versions = 1;
    s.max_versions = 3;
    assert_int_equal(kv_metadata_put(f->kv, p, &s, &err), 0);
    for (int i = 1; i <= 5; i++) {
        snprintf(buf, sizeof(buf), "{\"v\":\"%d\"}", i);
        assert_int_equal(put_json(f->kv, p, buf, NULL, NULL, &err), 0);
    }
    assert_int_equal(kv_metadata_get(f->kv, p, &m, &err), 0);
    assert_int_equal(m->nversions, 3);
    assert_int_equal(m->oldest_version, 3);
    assert_int_equal(m->latest_version, 5);
    kv_meta_free(m);
    assert_int_equal(kv_get(f->kv, p, 2, &d, NULL, &err), -RK_ENOTFOUND);
    expect_data(f->kv, p, 3, "{\"v\":\"3\"}");

    /* Three pending candidates on top of current 5 and previous 4: nothing of those is dropped,
     * even though that leaves more than max_versions. */
    pend.stage = KV_STAGE_PENDING;
    for (int i = 6; i <= 8; i++) {
        snprintf(buf, sizeof(buf), "{\"v\":\"%d\"}", i);
        assert_int_equal(put_json(f->kv, p, buf, &pend, &v, &err), 0);
    }
    assert_int_equal(kv_metadata_get(f->kv, p, &m, &err), 0);
    assert_int_equal(m->nversions, 5);
    assert_null(kv_meta_find(m, 3));
    for (uint64_t i = 4; i <= 8; i++)
        assert_non_null(kv_meta_find(m, i));
    assert_int_equal(m->current_version, 5);
    kv_meta_free(m);
    expect_data(f->kv, p, 0, "{\"v\":\"5\"}");
    expect_data(f->kv, p, 4, "{\"v\":\"4\"}");

    /* Lowering max_versions prunes at once, still keeping current and previous. */
    s.max_versions = 1;
    assert_int_equal(put_json(f->kv, "secret/pruned2", "{\"v\":\"1\"}", NULL, NULL, &err), 0);
    assert_int_equal(put_json(f->kv, "secret/pruned2", "{\"v\":\"2\"}", NULL, NULL, &err), 0);
    assert_int_equal(put_json(f->kv, "secret/pruned2", "{\"v\":\"3\"}", NULL, NULL, &err), 0);
    assert_int_equal(kv_metadata_put(f->kv, "secret/pruned2", &s, &err), 0);
    assert_int_equal(kv_metadata_get(f->kv, "secret/pruned2", &m, &err), 0);
    assert_int_equal(m->nversions, 2);
    assert_int_equal(m->versions[0].version, 2);
    assert_int_equal(m->versions[1].version, 3);
    kv_meta_free(m);
}

static void
test_delete_undelete_destroy(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct kv_version_meta vm;
    struct kv_meta *m = NULL;
    struct secret *d = NULL;
    const char *p = "secret/del";
    uint64_t one = 1, two = 2;
    char **names = NULL;
    size_t n = 0;

    assert_int_equal(put_json(f->kv, p, "{\"a\":\"1\"}", NULL, NULL, &err), 0);
    assert_int_equal(put_json(f->kv, p, "{\"a\":\"2\"}", NULL, NULL, &err), 0);
    /* n == 0: the latest version. */
    assert_int_equal(kv_delete_versions(f->kv, p, NULL, 0, &err), 0);
    assert_int_equal(kv_get(f->kv, p, 0, &d, &vm, &err), -RK_ENOTFOUND);
    assert_null(d);
    assert_int_equal(vm.version, 2);
    assert_true(vm.deletion_us > 0);
    assert_false(vm.destroyed);
    expect_data(f->kv, p, 1, "{\"a\":\"1\"}");
    assert_int_equal(kv_undelete_versions(f->kv, p, &two, 1, &err), 0);
    expect_data(f->kv, p, 0, "{\"a\":\"2\"}");

    assert_int_equal(kv_destroy_versions(f->kv, p, &one, 1, &err), 0);
    assert_int_equal(kv_get(f->kv, p, 1, &d, &vm, &err), -RK_ENOTFOUND);
    assert_int_equal(vm.version, 1);
    assert_true(vm.destroyed);
    assert_int_equal(kv_undelete_versions(f->kv, p, &one, 1, &err), 0);
    assert_int_equal(kv_get(f->kv, p, 1, &d, &vm, &err), -RK_ENOTFOUND);
    {
        /* The data key is really gone from the store. */
        struct secret *raw = NULL;
        assert_int_equal(barrier_get(f->s.br, "kv/data/secret/del@1", &raw, NULL, &err),
                         -RK_ENOTFOUND);
        assert_int_equal(barrier_get(f->s.br, "kv/data/secret/del@2", &raw, NULL, &err), 0);
        secret_free(raw);
    }
    assert_int_equal(kv_read(f->kv, p, 1, &d, &m, &vm, &err), -RK_ENOTFOUND);
    assert_non_null(m);
    assert_int_equal(m->latest_version, 2);
    kv_meta_free(m);

    assert_int_equal(kv_delete_metadata(f->kv, p, &err), 0);
    assert_int_equal(kv_metadata_get(f->kv, p, &m, &err), -RK_ENOTFOUND);
    assert_int_equal(kv_delete_metadata(f->kv, p, &err), -RK_ENOTFOUND);
    assert_int_equal(kv_list_names(f->kv, "secret", &names, &n, &err), 0);
    assert_int_equal(n, 0);
    kv_names_free(names);
    {
        struct secret *raw = NULL;
        assert_int_equal(barrier_get(f->s.br, "kv/data/secret/del@2", &raw, NULL, &err),
                         -RK_ENOTFOUND);
    }
}

static void
test_delete_version_after(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct kv_meta_settings s = {0};
    struct kv_version_meta vm;
    const char *p = "secret/short-lived";

    s.has_delete_version_after = 1;
    s.delete_version_after = 3600;
    assert_int_equal(kv_metadata_put(f->kv, p, &s, &err), 0);
    assert_int_equal(put_json(f->kv, p, "{\"a\":\"1\"}", NULL, NULL, &err), 0);
    assert_int_equal(kv_get(f->kv, p, 0, NULL, &vm, &err), 0);
    assert_true(vm.deletion_us - vm.created_us == 3600LL * 1000000);
}

static int
add_meta_only(struct kv *kv, struct barrier_txn *t, const char *path)
{
    struct kv_meta *m = kv_meta_new();
    struct rk_error err = {0};
    int r;

    assert_non_null(m);
    r = kv_stage_put(kv, t, path, m, 0, 0, NULL, &err);
    kv_meta_free(m);
    return r;
}

/* This process's CPU time in ms. */
static int64_t
cpu_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
test_list(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct barrier_txn *t;
    char **names = NULL;
    char path[128];
    size_t n = 0;
    int64_t t0, dt;

    assert_int_equal(
        put_json(f->kv, "secret/ai-gateway/litellm/master-key", "{\"k\":\"v\"}", NULL, NULL, &err),
        0);
    assert_int_equal(
        put_json(f->kv, "secret/ai-gateway/providers/openai", "{\"k\":\"v\"}", NULL, NULL, &err),
        0);
    assert_int_equal(
        put_json(f->kv, "secret/ai-gateway/providers/xai", "{\"k\":\"v\"}", NULL, NULL, &err), 0);
    assert_int_equal(
        put_json(f->kv, "secret/ai-gateway/redis/auth", "{\"k\":\"v\"}", NULL, NULL, &err), 0);
    assert_int_equal(put_json(f->kv, "secret/ai-gateway/top", "{\"k\":\"v\"}", NULL, NULL, &err),
                     0);
    /* A sibling that sorts right after the folder's skip point. */
    assert_int_equal(put_json(f->kv, "secret/ai-gateway/redis0", "{\"k\":\"v\"}", NULL, NULL, &err),
                     0);

    /* 20,000 keys under one folder, written 200 per transaction (a transaction's plaintexts
     * sit in the 1 MiB secure heap until commit). */
    for (int i = 0; i < 20000; i += 200) {
        t = barrier_txn_new(f->s.br);
        assert_non_null(t);
        for (int j = i; j < i + 200; j++) {
            snprintf(path, sizeof(path), "secret/ai-gateway/providers/bulk/k%05d", j);
            assert_int_equal(add_meta_only(f->kv, t, path), 0);
        }
        assert_int_equal(barrier_txn_commit(t, NULL, &err), 0);
        barrier_txn_free(t);
    }

    t0 = cpu_ms(); /* CPU time: the suite runs tests side by side */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(kv_list_names(f->kv, "secret/ai-gateway/", &names, &n, &err), 0);
        if (i < 9)
            kv_names_free(names);
    }
    dt = cpu_ms() - t0;
    print_message("10 listings of a 6-child folder above 20,000 keys: %lld ms\n", (long long)dt);
    assert_true(dt < 50); /* < 5 ms each */
    assert_int_equal(n, 5);
    assert_string_equal(names[0], "litellm/");
    assert_string_equal(names[1], "providers/");
    assert_string_equal(names[2], "redis/");
    assert_string_equal(names[3], "redis0");
    assert_string_equal(names[4], "top");
    assert_null(names[5]);
    kv_names_free(names);

    assert_int_equal(kv_list_names(f->kv, "secret/ai-gateway/providers", &names, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(names[0], "bulk/");
    assert_string_equal(names[1], "openai");
    assert_string_equal(names[2], "xai");
    kv_names_free(names);

    assert_int_equal(kv_list_names(f->kv, "", &names, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "secret/");
    kv_names_free(names);

    assert_int_equal(kv_list_names(f->kv, "secret/ai-gateway/providers/bulk", &names, &n, &err), 0);
    assert_int_equal(n, 20000);
    assert_string_equal(names[0], "k00000");
    assert_string_equal(names[19999], "k19999");
    kv_names_free(names);

    assert_int_equal(kv_list_names(f->kv, "nothing/here", &names, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(names[0]);
    kv_names_free(names);
    assert_int_equal(kv_list_names(f->kv, "bad//prefix", &names, &n, &err), -RK_EINVAL);
}

static void
test_metadata_fields(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct kv_meta_settings s = {0};
    struct kv_meta *m = NULL, *m2 = NULL;
    json_t *custom = json_pack("{s:s,s:s}", "owner", "platform", "runbook", "rotate-openai");
    char *enc = NULL;
    size_t len = 0;
    const char *p = "secret/ai-gateway/providers/anthropic";

    assert_non_null(custom);
    s.has_custom_metadata = 1;
    s.custom_metadata = custom;
    s.has_max_versions = 1;
    s.max_versions = 7;
    s.has_delete_version_after = 1;
    s.delete_version_after = 0;
    assert_int_equal(kv_metadata_put(f->kv, p, &s, &err), 0);
    assert_int_equal(put_json(f->kv, p, "{\"api_key\":\"sk-ant-api03-x_y\"}", NULL, NULL, &err), 0);
    assert_int_equal(kv_metadata_get(f->kv, p, &m, &err), 0);
    assert_int_equal(m->max_versions, 7);
    assert_int_equal(m->cas_required, 0);
    assert_string_equal(json_string_value(json_object_get(m->custom_metadata, "owner")),
                        "platform");
    assert_true(m->created_us > 0 && m->updated_us >= m->created_us);
    assert_int_equal(m->nversions, 1);

    /* Encode/decode round trip keeps every field (times to the microsecond). */
    assert_int_equal(kv_meta_encode(m, &enc, &len, &err), 0);
    assert_non_null(strstr(enc, "\"created_time\":\""));
    assert_non_null(strstr(enc, "\"deletion_time\":\"\""));
    assert_int_equal(kv_meta_decode(enc, len, &m2, &err), 0);
    assert_int_equal(m2->created_us, m->created_us);
    assert_int_equal(m2->updated_us, m->updated_us);
    assert_int_equal(m2->versions[0].created_us, m->versions[0].created_us);
    assert_string_equal(m2->versions[0].fingerprint, m->versions[0].fingerprint);
    assert_true(json_equal(m2->custom_metadata, m->custom_metadata));
    kv_meta_free(m2);
    free(enc);
    kv_meta_free(m);

    /* Vault's limits on custom_metadata. */
    json_object_set_new(custom, "big", json_string(""));
    {
        char big[600];
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        json_object_set_new(custom, "big", json_string(big));
    }
    assert_int_equal(kv_metadata_put(f->kv, p, &s, &err), -RK_EINVAL);
    json_decref(custom);
    s.has_custom_metadata = 0;
    s.has_max_versions = 0;
    s.has_cas_required = 1;
    s.cas_required = 1;
    assert_int_equal(kv_metadata_put(f->kv, p, &s, &err), 0);
    assert_int_equal(kv_metadata_get(f->kv, p, &m, &err), 0);
    assert_int_equal(m->max_versions, 7); /* unchanged: only the flagged fields change */
    assert_int_equal(m->cas_required, 1);
    assert_int_equal(json_object_size(m->custom_metadata), 2);
    kv_meta_free(m);
}

static void
test_decode_rejects(void **state)
{
    static const char *bad[] = {
        "",
        "[]",
        "{\"format\":2}",
        "{\"format\":1}",
        /* two current versions */
        "{\"format\":1,\"created_time\":\"2026-11-27T04:05:06Z\",\"updated_time\":\"2026-11-27T04:"
        "05:06Z\",\"current_version\":2,\"latest_version\":2,\"oldest_version\":1,\"max_versions\":"
        "0,\"cas_required\":false,\"delete_version_after\":0,\"custom_metadata\":{},\"versions\":[{"
        "\"version\":1,\"created_time\":\"2026-11-27T04:05:06Z\",\"deletion_time\":\"\","
        "\"destroyed\":false,\"stage\":\"current\",\"author\":\"\",\"reason\":\"\","
        "\"fingerprint\":\"sha256:000000000000\"},{\"version\":2,\"created_time\":\"2026-11-27T04:"
        "05:06Z\",\"deletion_time\":\"\",\"destroyed\":false,\"stage\":\"current\",\"author\":\"\","
        "\"reason\":\"\",\"fingerprint\":\"sha256:000000000000\"}]}",
    };
    static const char good[] =
        "{\"format\":1,\"created_time\":\"2026-11-27T04:05:06Z\",\"updated_time\":\"2026-11-27T04:"
        "05:06.5Z\",\"current_version\":1,\"latest_version\":2,\"oldest_version\":1,"
        "\"max_versions\":0,\"cas_required\":true,\"delete_version_after\":60,\"custom_metadata\":"
        "{\"a\":\"b\"},\"versions\":[{\"version\":1,\"created_time\":\"2026-11-27T04:05:06Z\","
        "\"deletion_time\":\"\",\"destroyed\":false,\"stage\":\"current\",\"author\":\"me\","
        "\"reason\":\"\",\"fingerprint\":\"sha256:000000000000\"},{\"version\":2,\"created_time\":"
        "\"2026-11-27T04:05:06Z\",\"deletion_time\":\"2026-11-27T04:06:06Z\",\"destroyed\":false,"
        "\"stage\":\"pending\",\"author\":\"\",\"reason\":\"\",\"fingerprint\":\"sha256:"
        "000000000000\"}]}";
    struct kv_meta *m = NULL;
    struct rk_error err = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = kv_meta_decode(bad[i], strlen(bad[i]), &m, &err);
        assert_true(r == -RK_ECORRUPT || r == -RK_EVERSION);
        assert_null(m);
    }
    assert_int_equal(kv_meta_decode(good, strlen(good), &m, &err), 0);
    assert_int_equal(m->current_version, 1);
    assert_int_equal(m->cas_required, 1);
    assert_int_equal(m->delete_version_after, 60);
    assert_int_equal(m->versions[1].stage, KV_STAGE_PENDING);
    assert_int_equal(m->versions[1].deletion_us - m->versions[1].created_us, 60000000);
    assert_int_equal(m->updated_us % 1000000, 500000);
    kv_meta_free(m);
}

static int
is_fp(const char *s)
{
    if (strlen(s) != FINGERPRINT_LEN || strncmp(s, "hmac:", 5) != 0)
        return 0;
    for (int i = 5; i < FINGERPRINT_LEN; i++)
        if (!strchr("0123456789abcdef", s[i]))
            return 0;
    return 1;
}

static void
test_fingerprint(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct kv_version_meta vm;
    char want[FINGERPRINT_LEN + 1];
    const char *canon = "{\"password\":\"pw\",\"username\":\"u\"}";

    assert_int_equal(put_json(f->kv, "secret/fp1", "{\"key\":\"sk-value\"}", NULL, NULL, &err), 0);
    assert_int_equal(kv_get(f->kv, "secret/fp1", 0, NULL, &vm, &err), 0);
    assert_true(is_fp(vm.fingerprint));
    assert_int_equal(barrier_fingerprint(f->s.br, "sk-value", 8, want, &err), 0);
    assert_string_equal(vm.fingerprint, want);

    assert_int_equal(put_json(f->kv, "secret/fp2", "{\"username\":\"u\", \"password\":\"pw\"}",
                              NULL, NULL, &err),
                     0);
    assert_int_equal(kv_get(f->kv, "secret/fp2", 0, NULL, &vm, &err), 0);
    assert_true(is_fp(vm.fingerprint));
    assert_int_equal(barrier_fingerprint(f->s.br, canon, strlen(canon), want, &err), 0);
    assert_string_equal(vm.fingerprint, want);
}

struct thr {
    struct kv *kv;
    int id;
    uint64_t versions[25];
    int rc;
};

static void *
put_thread(void *arg)
{
    struct thr *t = arg;
    struct rk_error err = {0};
    char buf[64];

    for (int i = 0; i < 25; i++) {
        struct secret *s;
        snprintf(buf, sizeof(buf), "{\"t\":\"%d-%d\"}", t->id, i);
        s = secret_from_str(buf);
        t->rc = kv_put(t->kv, "secret/contended", s, NULL, &t->versions[i], &err);
        secret_free(s);
        if (t->rc != 0)
            break;
    }
    return NULL;
}

static void
test_concurrent_puts(void **state)
{
    struct fx *f = *state;
    struct thr th[4];
    pthread_t tid[4];
    unsigned char seen[101] = {0};
    struct kv_meta_settings s = {0};
    struct kv_meta *m = NULL;
    struct rk_error err = {0};

    s.has_max_versions = 1;
    s.max_versions = 200;
    assert_int_equal(kv_metadata_put(f->kv, "secret/contended", &s, &err), 0);
    for (int i = 0; i < 4; i++) {
        th[i].kv = f->kv;
        th[i].id = i;
        th[i].rc = -1;
        assert_int_equal(pthread_create(&tid[i], NULL, put_thread, &th[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(tid[i], NULL);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(th[i].rc, 0);
        for (int j = 0; j < 25; j++) {
            uint64_t v = th[i].versions[j];
            assert_true(v >= 1 && v <= 100);
            assert_false(seen[v]);
            seen[v] = 1;
        }
    }
    assert_int_equal(kv_metadata_get(f->kv, "secret/contended", &m, &err), 0);
    assert_int_equal(m->latest_version, 100);
    assert_int_equal(m->nversions, 100);
    assert_int_equal(m->current_version, 100);
    kv_meta_free(m);
}

/* ---- create-only writes: check-and-set 0 in the store's transaction ---- */

#define RACERS 16

struct racer {
    struct kv *kv;
    pthread_barrier_t *go;
    int id, rc;
    char msg[RK_ERRMSG_MAX];
};

static void *
create_thread(void *arg)
{
    struct racer *t = arg;
    struct kv_put_opts o = KV_PUT_OPTS_INIT;
    struct kv_meta_settings s = {0};
    struct rk_error err = {0};
    struct secret *d;
    char buf[64];

    s.has_max_versions = 1;
    s.max_versions = 7;
    o.cas = 0; /* what the API sets for a write only `create` allows */
    o.new_path = &s;
    snprintf(buf, sizeof(buf), "{\"k\":\"racer-%d\"}", t->id);
    d = secret_from_str(buf);
    pthread_barrier_wait(t->go);
    t->rc = kv_put(t->kv, "secret/race/new", d, &o, NULL, &err);
    snprintf(t->msg, sizeof(t->msg), "%s", err.msg);
    secret_free(d);
    return NULL;
}

/* 16 writers race to create one path as check-and-set 0: exactly one version is written, the
 * others get the failed check-and-set (never a retry that adds a version), and the settings for
 * a new path come with the winner's write. */
static void
test_create_only_race(void **state)
{
    struct fx *f = *state;
    struct racer th[RACERS];
    pthread_t tid[RACERS];
    pthread_barrier_t go;
    struct kv_meta *m = NULL;
    struct rk_error err = {0};
    int won = 0;

    assert_int_equal(pthread_barrier_init(&go, NULL, RACERS), 0);
    for (int i = 0; i < RACERS; i++) {
        th[i] = (struct racer){f->kv, &go, i, -1, ""};
        assert_int_equal(pthread_create(&tid[i], NULL, create_thread, &th[i]), 0);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(tid[i], NULL);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < RACERS; i++) {
        if (th[i].rc == 0) {
            won++;
            continue;
        }
        assert_int_equal(th[i].rc, -RK_ECONFLICT);
        assert_string_equal(th[i].msg, "check-and-set parameter did not match the current version");
    }
    assert_int_equal(won, 1);
    assert_int_equal(kv_metadata_get(f->kv, "secret/race/new", &m, &err), 0);
    assert_int_equal(m->nversions, 1);
    assert_int_equal(m->latest_version, 1);
    assert_int_equal(m->max_versions, 7);
    kv_meta_free(m);

    /* new_path applies only when the write creates the path. */
    {
        struct kv_put_opts o = KV_PUT_OPTS_INIT;
        struct kv_meta_settings s = {0};
        s.has_max_versions = 1;
        s.max_versions = 3;
        o.new_path = &s;
        assert_int_equal(put_json(f->kv, "secret/race/new", "{\"k\":\"x\"}", &o, NULL, &err), 0);
        assert_int_equal(kv_metadata_get(f->kv, "secret/race/new", &m, &err), 0);
        assert_int_equal(m->max_versions, 7);
        assert_int_equal(m->nversions, 2);
        kv_meta_free(m);
    }
}

/* ---- keyed fingerprints ---- */

static void
kv_fp(struct fx *f, const char *value, char out[FINGERPRINT_LEN + 1])
{
    struct secret *v = secret_from_str(value);
    struct rk_error err = {0};

    assert_non_null(v);
    assert_int_equal(kv_fingerprint(f->kv, v, out, &err), 0);
    secret_free(v);
}

static void
fp_of_version(struct fx *f, const char *path, uint64_t version, char out[KV_FP_SIZE])
{
    struct kv_meta *m = NULL;
    struct kv_version_meta *vm;
    struct rk_error err = {0};

    assert_int_equal(kv_metadata_get(f->kv, path, &m, &err), 0);
    assert_non_null(vm = kv_meta_find(m, version));
    memcpy(out, vm->fingerprint, KV_FP_SIZE);
    kv_meta_free(m);
}

/* What a version shows is kv_fingerprint of its value: never the plain SHA-256 ("hunter2" gives
 * f52fbd32b2b3…), the same after keyring rotations and a restart. */
static void
test_fingerprint_keyed(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct kv_version_meta vm;
    char a[FINGERPRINT_LEN + 1], b[FINGERPRINT_LEN + 1], got[KV_FP_SIZE];
    uint32_t term = 0;

    assert_int_equal(
        put_json(f->kv, "secret/fpk/one", "{\"password\":\"hunter2\"}", NULL, NULL, &err), 0);
    kv_fp(f, "hunter2", a);
    assert_true(is_fp(a));
    assert_string_not_equal(a, "hmac:f52fbd32b2b3");
    fp_of_version(f, "secret/fpk/one", 1, got);
    assert_string_equal(got, a);
    assert_int_equal(kv_get(f->kv, "secret/fpk/one", 0, NULL, &vm, &err), 0);
    assert_string_equal(vm.fingerprint, a);

    assert_int_equal(barrier_rotate_keyring(f->s.br, &term, &err), 0);
    assert_int_equal(put_json(f->kv, "secret/fpk/two", "{\"other\":\"hunter2\"}", NULL, NULL, &err),
                     0);
    fp_of_version(f, "secret/fpk/two", 1, got);
    assert_string_equal(got, a);
    reopen(f);
    kv_fp(f, "hunter2", b);
    assert_string_equal(a, b);
    fp_of_version(f, "secret/fpk/one", 1, got);
    assert_string_equal(got, a);
    assert_int_equal(kv_get(f->kv, "secret/fpk/two", 0, NULL, &vm, &err), 0);
    assert_string_equal(vm.fingerprint, a);
}

/* Rewrites path's stored metadata and "@cur" record as a rekey before keyed fingerprints wrote
 * them: every fingerprint "sha256:" + 12 hex (the compact unkeyed form). */
static void
make_unkeyed(struct fx *f, const char *path)
{
    struct kv_meta *m = NULL;
    struct rk_error err = {0};
    unsigned char *enc = NULL, rec[64 + 128];
    size_t enclen = 0, dl = 0;
    struct secret *data = NULL;
    char key[256];
    const char *old = "sha256:f52fbd32b2b3";

    assert_int_equal(kv_meta_load(f->kv, path, &m, NULL, &err), 0);
    for (size_t i = 0; i < m->nversions; i++)
        snprintf(m->versions[i].fingerprint, sizeof(m->versions[i].fingerprint), "%s", old);
    assert_int_equal(kv_meta_encode_bin(m, &enc, &enclen, &err), 0);
    snprintf(key, sizeof(key), "kv/data/%s@meta", path);
    assert_int_equal(barrier_put(f->s.br, key, enc, enclen, &err), 0);
    free(enc);
    /* The current version's record, format 2 with a 19-byte fingerprint and no custom. */
    if (m->current_version != 0 && kv_get(f->kv, path, 0, &data, NULL, &err) == 0) {
        dl = data->len;
        assert_true(dl <= 128);
        memset(rec, 0, sizeof(rec));
        rec[0] = 2;
        for (int i = 0; i < 8; i++)
            rec[1 + i] = (unsigned char)(m->current_version >> (8 * (7 - i)));
        rec[16] = 1; /* created_us = 1 */
        rec[26] = KV_STAGE_CURRENT;
        rec[31] = (unsigned char)strlen(old);
        memcpy(rec + 36, old, strlen(old));
        memcpy(rec + 36 + strlen(old), data->data, dl);
        snprintf(key, sizeof(key), "kv/data/%s@cur", path);
        assert_int_equal(barrier_put(f->s.br, key, rec, 36 + strlen(old) + dl, &err), 0);
        secret_free(data);
    }
    kv_meta_free(m);
}

static void
assert_no_unkeyed(struct fx *f, const char *path)
{
    struct kv_meta *m = NULL;
    struct kv_version_meta vm;
    struct rk_error err = {0};

    assert_int_equal(kv_metadata_get(f->kv, path, &m, &err), 0);
    for (size_t i = 0; i < m->nversions; i++)
        assert_null(strstr(m->versions[i].fingerprint, "sha256"));
    kv_meta_free(m);
    memset(&vm, 0, sizeof(vm));
    (void)kv_get(f->kv, path, 0, NULL, &vm, &err);
    assert_null(strstr(vm.fingerprint, "sha256"));
}

/* A store from before keyed fingerprints: no fingerprint key, unkeyed fingerprints in the
 * metadata and the "@cur" records. The unseal makes a key; reads never show an unkeyed
 * fingerprint; a write recomputes its path's; kv_fingerprints_migrate does every other path
 * once, keeping updated_time, and is a no-op after that. */
static void
test_fingerprint_migration(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct kv_meta *m = NULL;
    struct kv_version_meta vm;
    const uint64_t one = 1;
    char want[FINGERPRINT_LEN + 1], got[KV_FP_SIZE];
    int64_t updated;
    size_t n = 99;

    assert_int_equal(put_json(f->kv, "secret/mig/a", "{\"k\":\"one\"}", NULL, NULL, &err), 0);
    assert_int_equal(put_json(f->kv, "secret/mig/a", "{\"k\":\"two\"}", NULL, NULL, &err), 0);
    assert_int_equal(put_json(f->kv, "secret/mig/b", "{\"k\":\"b1\"}", NULL, NULL, &err), 0);
    assert_int_equal(
        put_json(f->kv, "secret/mig/b", "{\"k\":\"b2\",\"u\":\"x\"}", NULL, NULL, &err), 0);
    assert_int_equal(kv_destroy_versions(f->kv, "secret/mig/b", &one, 1, &err), 0);
    assert_int_equal(put_json(f->kv, "secret/mig/c", "{\"k\":\"c1\"}", NULL, NULL, &err), 0);
    make_unkeyed(f, "secret/mig/a");
    make_unkeyed(f, "secret/mig/b");
    make_unkeyed(f, "secret/mig/c");
    assert_int_equal(f->s.b->ops->del(f->s.b, "core/fpkey", NULL, &err), 0);
    reopen(f);

    /* Read as they are: the unkeyed fingerprints are blank, never shown. */
    expect_data(f->kv, "secret/mig/a", 1, "{\"k\":\"one\"}");
    expect_data(f->kv, "secret/mig/a", 0, "{\"k\":\"two\"}");
    fp_of_version(f, "secret/mig/a", 1, got);
    assert_string_equal(got, "");
    assert_int_equal(kv_get(f->kv, "secret/mig/a", 0, NULL, &vm, &err), 0);
    assert_string_equal(vm.fingerprint, "");
    assert_no_unkeyed(f, "secret/mig/a");
    assert_no_unkeyed(f, "secret/mig/b");
    assert_no_unkeyed(f, "secret/mig/c");

    /* A write recomputes the old versions of its path with the new key. */
    assert_int_equal(put_json(f->kv, "secret/mig/c", "{\"k\":\"c2\"}", NULL, NULL, &err), 0);
    kv_fp(f, "c1", want);
    fp_of_version(f, "secret/mig/c", 1, got);
    assert_string_equal(got, want);

    /* The migration after the unseal that made the key recomputes every path. */
    assert_int_equal(kv_metadata_get(f->kv, "secret/mig/a", &m, &err), 0);
    updated = m->updated_us;
    kv_meta_free(m);
    assert_int_equal(kv_fingerprints_migrate(f->kv, &n, &err), 0);
    assert_int_equal(n, 3);
    kv_fp(f, "one", want);
    fp_of_version(f, "secret/mig/a", 1, got);
    assert_string_equal(got, want);
    kv_fp(f, "two", want);
    fp_of_version(f, "secret/mig/a", 2, got);
    assert_string_equal(got, want);
    assert_int_equal(kv_get(f->kv, "secret/mig/a", 0, NULL, &vm, &err), 0);
    assert_string_equal(vm.fingerprint, want);
    assert_int_equal(kv_metadata_get(f->kv, "secret/mig/a", &m, &err), 0);
    assert_int_equal(m->updated_us, updated);
    kv_meta_free(m);
    fp_of_version(f, "secret/mig/b", 1, got);
    assert_string_equal(got, ""); /* destroyed: nothing to recompute from */
    kv_fp(f, "{\"k\":\"b2\",\"u\":\"x\"}", want);
    fp_of_version(f, "secret/mig/b", 2, got);
    assert_string_equal(got, want);

    /* Once: not again, nor after an unseal that found the key. */
    assert_int_equal(kv_fingerprints_migrate(f->kv, &n, &err), 0);
    assert_int_equal(n, 0);
    reopen(f);
    assert_int_equal(kv_fingerprints_migrate(f->kv, &n, &err), 0);
    assert_int_equal(n, 0);
    kv_fp(f, "two", want);
    fp_of_version(f, "secret/mig/a", 2, got);
    assert_string_equal(got, want);

    /* The key record lost: the unseal makes another key, and the migration recomputes every
     * path's fingerprints under it. */
    assert_int_equal(f->s.b->ops->del(f->s.b, "core/fpkey", NULL, &err), 0);
    reopen(f);
    assert_int_equal(kv_fingerprints_migrate(f->kv, &n, &err), 0);
    assert_int_equal(n, 3);
    kv_fp(f, "two", got);
    assert_string_not_equal(got, want);
    kv_fp(f, "c2", want);
    fp_of_version(f, "secret/mig/c", 2, got);
    assert_string_equal(got, want);
    assert_int_equal(kv_get(f->kv, "secret/mig/c", 0, NULL, &vm, &err), 0);
    assert_string_equal(vm.fingerprint, want);
    assert_int_equal(kv_fingerprints_migrate(f->kv, &n, &err), 0);
    assert_int_equal(n, 0);
}

static int
file_contains(const char *path, const char *needle)
{
    char *buf = NULL;
    size_t len = 0;
    struct rk_error err = {0};
    int found;

    if (fs_read_all(path, 256 << 20, &buf, &len, &err) != 0)
        return 0;
    found = memmem(buf, len, needle, strlen(needle)) != NULL;
    free(buf);
    return found;
}

static void
test_no_plaintext_on_disk(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    char path[256];
    const char *needle = "sk-ant-api03-PLAINTEXTCANARY_42";
    char json[128];

    snprintf(json, sizeof(json), "{\"api_key\":\"%s\"}", needle);
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            put_json(f->kv, "secret/ai-gateway/providers/anthropic", json, NULL, NULL, &err), 0);
    /* Also the metadata's author is encrypted. */
    {
        struct kv_put_opts o = KV_PUT_OPTS_INIT;
        o.author = "AUTHORCANARY";
        assert_int_equal(put_json(f->kv, "secret/x", "{\"a\":\"b\"}", &o, NULL, &err), 0);
    }
    assert_false(file_contains(f->s.db, needle));
    assert_false(file_contains(f->s.db, "AUTHORCANARY"));
    snprintf(path, sizeof(path), "%s-wal", f->s.db);
    assert_false(file_contains(path, needle));
    assert_false(file_contains(path, "AUTHORCANARY"));
    snprintf(path, sizeof(path), "%s-journal", f->s.db);
    assert_false(file_contains(path, needle));
    /* The test can fail: the key (not the value) is plain, and is found. */
    assert_true(file_contains(f->s.db, "kv/meta/secret/ai-gateway/providers/anthropic") ||
                (snprintf(path, sizeof(path), "%s-wal", f->s.db) > 0 &&
                 file_contains(path, "kv/meta/secret/ai-gateway/providers/anthropic")));
}

/* Writes path as a store of the first layout had it: JSON metadata in "kv/meta/<path>", the data
 * keys, and no "@meta" record. */
static void
write_layout1(struct fx *f, const char *path, const char *json_meta, const char *v1, const char *v2)
{
    struct barrier_txn *t = barrier_txn_new(f->s.br);
    struct rk_error err = {0};
    char key[256];

    assert_non_null(t);
    snprintf(key, sizeof(key), "kv/meta/%s", path);
    assert_int_equal(barrier_txn_put(t, key, json_meta, strlen(json_meta)), 0);
    snprintf(key, sizeof(key), "kv/data/%s@1", path);
    assert_int_equal(barrier_txn_put(t, key, v1, strlen(v1)), 0);
    snprintf(key, sizeof(key), "kv/data/%s@2", path);
    assert_int_equal(barrier_txn_put(t, key, v2, strlen(v2)), 0);
    assert_int_equal(barrier_txn_commit(t, NULL, &err), 0);
    barrier_txn_free(t);
}

static int
names_has(char **names, size_t n, const char *want)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], want) == 0)
            return 1;
    return 0;
}

/* A store written by the first layout reads as before; the first write moves the metadata into
 * "@meta" (binary) and leaves a marker; listing and deleting work in both layouts. */
static void
test_layout1_store(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct kv_meta *m = NULL;
    struct secret *raw = NULL;
    char **names = NULL;
    size_t n = 0;
    uint64_t v = 0;
    const char *meta1 =
        "{\"format\":1,\"created_time\":\"2026-01-01T00:00:00Z\",\"updated_time\":"
        "\"2026-01-02T00:00:00Z\",\"current_version\":2,\"latest_version\":2,"
        "\"oldest_version\":1,\"max_versions\":0,\"cas_required\":false,"
        "\"delete_version_after\":0,\"custom_metadata\":{\"team\":\"gw\"},\"versions\":["
        "{\"version\":1,\"created_time\":\"2026-01-01T00:00:00Z\",\"deletion_time\":\"\","
        "\"destroyed\":false,\"stage\":\"previous\",\"author\":\"ops\",\"reason\":\"\","
        "\"fingerprint\":\"sha256:000000000001\"},"
        "{\"version\":2,\"created_time\":\"2026-01-02T00:00:00Z\",\"deletion_time\":\"\","
        "\"destroyed\":false,\"stage\":\"current\",\"author\":\"ops\",\"reason\":\"r\","
        "\"fingerprint\":\"sha256:000000000002\"}]}";

    write_layout1(f, "secret/old/a", meta1, "{\"k\":\"one\"}", "{\"k\":\"two\"}");
    write_layout1(f, "secret/old/b", meta1, "{\"k\":\"b1\"}", "{\"k\":\"b2\"}");

    /* reads */
    expect_data(f->kv, "secret/old/a", 0, "{\"k\":\"two\"}");
    expect_data(f->kv, "secret/old/a", 1, "{\"k\":\"one\"}");
    assert_int_equal(kv_metadata_get(f->kv, "secret/old/a", &m, &err), 0);
    assert_int_equal(m->current_version, 2);
    assert_string_equal(m->versions[0].author, "ops");
    assert_string_equal(m->versions[0].fingerprint, ""); /* unkeyed: never shown */
    assert_string_equal(json_string_value(json_object_get(m->custom_metadata, "team")), "gw");
    kv_meta_free(m);
    m = NULL;
    assert_int_equal(kv_list_names(f->kv, "secret/old", &names, &n, &err), 0);
    assert_int_equal(n, 2);
    kv_names_free(names);
    assert_int_equal(barrier_get(f->s.br, "kv/data/secret/old/a@meta", &raw, NULL, &err),
                     -RK_ENOTFOUND);

    /* the first write moves the metadata */
    assert_int_equal(put_json(f->kv, "secret/old/a", "{\"k\":\"three\"}", NULL, &v, &err), 0);
    assert_int_equal(v, 3);
    assert_int_equal(barrier_get(f->s.br, "kv/data/secret/old/a@meta", &raw, NULL, &err), 0);
    assert_true(raw->len > 0 && raw->data[0] == 0x02);
    secret_free(raw);
    raw = NULL;
    assert_int_equal(barrier_get(f->s.br, "kv/meta/secret/old/a", &raw, NULL, &err), 0);
    assert_true(raw->len == 1 && raw->data[0] == 'P');
    secret_free(raw);
    raw = NULL;
    expect_data(f->kv, "secret/old/a", 0, "{\"k\":\"three\"}");
    expect_data(f->kv, "secret/old/a", 1, "{\"k\":\"one\"}");
    assert_int_equal(stage_of(f->kv, "secret/old/a", 2), KV_STAGE_PREVIOUS);
    assert_int_equal(kv_metadata_get(f->kv, "secret/old/a", &m, &err), 0);
    assert_int_equal(m->nversions, 3);
    {
        char want[FINGERPRINT_LEN + 1];
        kv_fp(f, "one", want); /* recomputed by the write */
        assert_string_equal(m->versions[0].fingerprint, want);
    }
    assert_string_equal(json_string_value(json_object_get(m->custom_metadata, "team")), "gw");
    kv_meta_free(m);
    m = NULL;

    /* a new path in the new layout, listed next to the old ones */
    assert_int_equal(put_json(f->kv, "secret/old/c", "{\"k\":\"c\"}", NULL, NULL, &err), 0);
    assert_int_equal(kv_list_names(f->kv, "secret/old", &names, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_true(names_has(names, n, "a") && names_has(names, n, "b") && names_has(names, n, "c"));
    kv_names_free(names);

    /* deleting the metadata removes every key of a path, in either layout */
    assert_int_equal(kv_delete_metadata(f->kv, "secret/old/a", &err), 0);
    assert_int_equal(kv_delete_metadata(f->kv, "secret/old/b", &err), 0);
    assert_int_equal(kv_list_names(f->kv, "secret/old", &names, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "c");
    kv_names_free(names);
    assert_int_equal(barrier_get(f->s.br, "kv/data/secret/old/b@1", &raw, NULL, &err),
                     -RK_ENOTFOUND);
    assert_int_equal(barrier_get(f->s.br, "kv/data/secret/old/a@meta", &raw, NULL, &err),
                     -RK_ENOTFOUND);
    assert_int_equal(barrier_get(f->s.br, "kv/data/secret/old/a@3", &raw, NULL, &err),
                     -RK_ENOTFOUND);
    assert_int_equal(kv_get(f->kv, "secret/old/a", 0, NULL, NULL, &err), -RK_ENOTFOUND);
}

static void
test_stage_names(void **state)
{
    enum kv_stage st;

    (void)state;
    for (int i = KV_STAGE_PENDING; i <= KV_STAGE_FAILED; i++) {
        assert_int_equal(kv_stage_parse(kv_stage_name((enum kv_stage)i), &st), 0);
        assert_int_equal(st, i);
    }
    assert_int_equal(kv_stage_parse("bogus", &st), -RK_EINVAL);
}

/* ---- kv_data_prepare: the fast path for canonical input against the jansson path ---- */

/* A fixed fingerprint key for the tests that run without a store. */
static const struct fp_key *
test_key(void)
{
    static struct fp_key *k;
    static const unsigned char raw[FP_KEY_LEN] = "test_kv fingerprint key........";

    if (k == NULL)
        assert_int_equal(fp_key_new(raw, sizeof(raw), &k), 0);
    return k;
}

/* Runs kv_data_prepare and kv_data_prepare_slow on in and asserts identical results: return
 * code, error, output bytes, fingerprint (and the same bytes without a fingerprint). Returns the
 * return code; *same is set if the output equals the input. */
static int
prepare_both(const struct secret *in, int *same)
{
    struct secret *a = NULL, *b = NULL, *c = NULL;
    struct rk_error ea = {0}, eb = {0}, ec = {0};
    char fa[FINGERPRINT_LEN + 1] = "", fb[FINGERPRINT_LEN + 1] = "";
    int ra, rb, rc;

    ra = kv_data_prepare_key(test_key(), in, &a, fa, &ea);
    rb = kv_data_prepare_slow(test_key(), in, &b, fb, &eb);
    rc = kv_data_prepare(NULL, in, &c, NULL, &ec);
    assert_int_equal(ra, rb);
    assert_int_equal(ra, rc);
    assert_int_equal(ea.code, eb.code);
    assert_string_equal(ea.msg, eb.msg);
    assert_string_equal(ea.msg, ec.msg);
    if (ra == 0) {
        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(c);
        assert_true(secret_equal(a, b));
        assert_true(secret_equal(a, c));
        assert_int_equal(a->data[a->len], 0);
        assert_string_equal(fa, fb);
    } else {
        assert_null(a);
        assert_null(b);
        assert_null(c);
    }
    if (same != NULL)
        *same = ra == 0 && in != NULL && secret_equal(a, in);
    secret_free(a);
    secret_free(b);
    secret_free(c);
    return ra;
}

static int
prepare_both_buf(const void *buf, size_t len, int *same)
{
    struct secret *in = secret_from(buf, len);
    int r;

    assert_non_null(in);
    r = prepare_both(in, same);
    secret_free(in);
    return r;
}

struct text {
    const char *s;
    size_t len;
};

#define T(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }

static void
test_data_prepare_fast(void **state)
{
    /* Already canonical: the output is the input. */
    static const struct text canon[] = {
        T("{}"),
        T("{\"a\":\"b\"}"),
        T("{\"a\":\"\"}"),
        T("{\"\":\"x\"}"),
        T("{\"\":\"\"}"),
        T("{\"\":\"x\",\"a\":\"b\"}"),
        T("{\"a\":\"b\",\"c\":\"d\"}"),
        T("{\"a\":\"b\",\"ab\":\"c\",\"b\":\"a\"}"),
        T("{\" \":\"1\",\"!\":\"2\",\"A\":\"3\",\"a\":\"4\",\"~\":\"5\"}"),
        T("{\"a/b\":\"c/d\",\"url\":\"https://x.example/p?q=1&r=2#f\"}"),
        T("{\"key\":\" !#$%&'()*+,-./0123456789:;<=>?@AZ[]^_`az{|}~\"}"),
        T("{\"a\":\"b\",\"key\":\"sk-litellm-two\"}"),
        T("{\"password\":\"pw\",\"username\":\"u\"}"),
    };
    /* Everything else; both paths must agree whatever they make of it (some, such as an escaped
     * '"', are canonical too, but only the jansson path can tell). */
    static const struct text other[] = {
        T(""),
        T("{"),
        T("}"),
        T("{}}"),
        T("{}x"),
        T("{ }"),
        T(" {}"),
        T("{}\n"),
        T("{\"a\": \"b\"}"),
        T("{\"a\" :\"b\"}"),
        T("{\"a\":\"b\" }"),
        T("{\n\"a\":\"b\"}"),
        T("{\"a\":\"b\",\t\"c\":\"d\"}"),
        T("{\"c\":\"d\",\"a\":\"b\"}"),
        T("{\"ab\":\"b\",\"a\":\"c\"}"),
        T("{\"a\":\"b\",\"\":\"x\"}"),
        T("{\"~\":\"1\",\"a\":\"2\"}"),
        T("{\"a\":\"b\",\"a\":\"c\"}"),
        T("{\"a\":\"b\",\"a\":\"b\"}"),
        T("{\"\":\"x\",\"\":\"y\"}"),
        T("{\"a\":\"b\",\"b\":\"c\",\"b\":\"d\"}"),
        T("{\"a\":\"b\\\"c\"}"),
        T("{\"a\":\"{}\",\"b\":\"\\\"\"}"),
        T("{\"a\":\"b\\\\c\"}"),
        T("{\"a\\\"\":\"b\"}"),
        T("{\"a\":\"\\u0041\"}"),
        T("{\"a\":\"\\/\"}"),
        T("{\"a\":\"\\n\"}"),
        T("{\"a\":\"\\u00e9\"}"),
        T("{\"a\":\"\\ud83d\\ude00\"}"),
        T("{\"a\":\"\\x\"}"),
        T("{\"a\":\"\\\"}"),
        T("{\"a\":\"\x7f\"}"),
        T("{\"\x7f\":\"a\"}"),
        T("{\"a\":\"\xc3\xa9\"}"),
        T("{\"\xc3\xa9\":\"a\"}"),
        T("{\"a\":\"\xff\"}"),
        T("{\"a\":\"\xc3\"}"),
        T("{\"a\":\"\xed\xa0\x80\"}"),
        T("{\"a\":\"\t\"}"),
        T("{\"a\":\"\n\"}"),
        T("{\"a\":\"\x01\"}"),
        T("{\"a\x1f\":\"b\"}"),
        T("{\"a\":\"\0\"}"),
        T("{\"\0\":\"a\"}"),
        T("{\"a\":\"b\"}\0"),
        T("\0{\"a\":\"b\"}"),
        T("{\"a\":1}"),
        T("{\"a\":-1.5e3}"),
        T("{\"a\":true}"),
        T("{\"a\":false}"),
        T("{\"a\":null}"),
        T("{\"a\":[]}"),
        T("{\"a\":[\"b\"]}"),
        T("{\"a\":{}}"),
        T("{\"a\":{\"b\":\"c\"}}"),
        T("{\"a\":\"b\",\"c\":1}"),
        T("{\"a\":1,\"c\":\"d\"}"),
        T("{\"a\":\"b\",}"),
        T("{,\"a\":\"b\"}"),
        T("{,}"),
        T("{\"a\":\"b\",,\"c\":\"d\"}"),
        T("{\"a\":\"b\"\"c\":\"d\"}"),
        T("{\"a\"::\"b\"}"),
        T("{\"a\"}"),
        T("{\"a\":}"),
        T("{:\"b\"}"),
        T("{\"a\":\"}"),
        T("{\"a\":\"b\""),
        T("{\"a\":\"b"),
        T("{\"a\":"),
        T("{\"a\""),
        T("{\""),
        T("{\"a\":\"b\";\"c\":\"d\"}"),
        T("{'a':'b'}"),
        T("{a:\"b\"}"),
        T("{\"a\":b}"),
        T("[\"a\"]"),
        T("[]"),
        T("\"a\""),
        T("1"),
        T("null"),
        T("{\"key\": \"sk-litellm-one\"}"),
        T("{\"key\":\"sk-litellm-two\",\"a\":\"b\"}"),
        T("{\"username\":\"u\", \"password\":\"pw\"}"),
    };
    struct secret none = {NULL, 0}, *in;
    char want[FINGERPRINT_LEN + 1], got[FINGERPRINT_LEN + 1];
    struct rk_error err = {0};
    struct secret *out = NULL;
    unsigned char *big;
    char msg[128];
    int same;

    (void)state;
    for (size_t i = 0; i < sizeof(canon) / sizeof(canon[0]); i++) {
        assert_int_equal(prepare_both_buf(canon[i].s, canon[i].len, &same), 0);
        assert_true(same);
    }
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        (void)prepare_both_buf(other[i].s, other[i].len, NULL);
    }
    assert_int_equal(prepare_both(NULL, NULL), -RK_EINVAL);
    assert_int_equal(prepare_both(&none, NULL), -RK_EINVAL);

    /* The fingerprint rule: a single string field by its value, else the whole text. */
    in = secret_from_str("{\"k\":\"sk-value\"}");
    assert_non_null(in);
    assert_int_equal(kv_data_prepare_key(test_key(), in, &out, got, &err), 0);
    assert_int_equal(fingerprint(test_key(), "sk-value", 8, want), 0);
    assert_string_equal(got, want);
    secret_free(out);
    secret_free(in);
    in = secret_from_str("{}");
    assert_non_null(in);
    assert_int_equal(kv_data_prepare_key(test_key(), in, &out, got, &err), 0);
    assert_int_equal(fingerprint(test_key(), "{}", 2, want), 0);
    assert_string_equal(got, want);
    secret_free(out);
    secret_free(in);

    /* The size limit: exactly KV_DATA_MAX bytes is taken as it is; one more is refused with the
     * message of the jansson path, which does not quote the data. */
    big = malloc(KV_DATA_MAX + 2);
    assert_non_null(big);
    memset(big, 'x', KV_DATA_MAX + 1);
    memcpy(big, "{\"k\":\"", 6);
    memcpy(big + KV_DATA_MAX - 2, "\"}", 2);
    assert_int_equal(prepare_both_buf(big, KV_DATA_MAX, &same), 0);
    assert_true(same);
    memcpy(big + KV_DATA_MAX - 2, "x\"}", 3);
    assert_int_equal(prepare_both_buf(big, KV_DATA_MAX + 1, &same), -RK_EINVAL);
    in = secret_from(big, KV_DATA_MAX + 1);
    assert_non_null(in);
    assert_int_equal(kv_data_prepare_key(test_key(), in, &out, got, &err), -RK_EINVAL);
    assert_null(out);
    snprintf(msg, sizeof(msg), "secret data is %d bytes long; the limit is %d", KV_DATA_MAX + 1,
             KV_DATA_MAX);
    assert_string_equal(err.msg, msg);
    assert_null(strstr(err.msg, "xx"));
    secret_free(in);
    free(big);
}

/* A random field name or value: raw bytes, escaped when rendered. */
struct field {
    unsigned char b[16];
    size_t len;
};

/* jansson's JSON_SORT_KEYS order. */
static int
field_cmp(const void *x, const void *y)
{
    const struct field *a = x, *b = y;
    int c = memcmp(a->b, b->b, a->len < b->len ? a->len : b->len);

    if (c != 0)
        return c;
    return (a->len > b->len) - (a->len < b->len);
}

/* Mostly bytes from a small alphabet (so names share prefixes and repeat), often any printable
 * byte (with '"' and '\\'), rarely a control byte, DEL, UTF-8 or a stray byte >= 0x80. */
static void
random_field(struct field *f, size_t max)
{
    static const char common[] = "abAB~/ ";
    size_t n = rng() % (max + 1);

    f->len = 0;
    while (f->len < n) {
        uint64_t r = rng() % 64;

        if (r < 44)
            f->b[f->len++] = (unsigned char)common[rng() % (sizeof(common) - 1)];
        else if (r < 60)
            f->b[f->len++] = (unsigned char)(0x20 + rng() % 95);
        else if (r == 60)
            f->b[f->len++] = (unsigned char)(rng() % 0x20);
        else if (r == 61)
            f->b[f->len++] = 0x7f;
        else if (r == 62)
            f->b[f->len++] = (unsigned char)(0x80 + rng() % 0x80);
        else if (f->len + 2 <= n) {
            f->b[f->len++] = 0xc3;
            f->b[f->len++] = 0xa9;
        }
    }
}

static size_t
render_field(char *o, const struct field *f)
{
    size_t n = 0;

    o[n++] = '"';
    for (size_t i = 0; i < f->len; i++) {
        unsigned char c = f->b[i];

        if (c == '"' || c == '\\') {
            o[n++] = '\\';
            o[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(o + n, 7, "\\u%04x", c);
        } else {
            o[n++] = (char)c;
        }
    }
    o[n++] = '"';
    return n;
}

static void
test_data_prepare_random(void **state)
{
    struct field keys[6], vals[6];
    char buf[2048];
    size_t n, nm;
    int same, ok = 0, canonical = 0;

    (void)state;
    rng_state = 0x6b76646174610001ULL;
    for (int iter = 0; iter < 20000; iter++) {
        nm = rng() % 7;
        for (size_t i = 0; i < nm; i++) {
            random_field(&keys[i], rng() % 3 == 0 ? 2 : 8);
            random_field(&vals[i], 16);
        }
        if (rng() % 4 != 0)
            qsort(keys, nm, sizeof(keys[0]), field_cmp);
        n = 0;
        buf[n++] = '{';
        for (size_t i = 0; i < nm; i++) {
            if (i > 0)
                buf[n++] = ',';
            if (rng() % 32 == 0)
                buf[n++] = ' ';
            n += render_field(buf + n, &keys[i]);
            buf[n++] = ':';
            switch (rng() % 32) {
            case 0: n += (size_t)snprintf(buf + n, 8, "%d", (int)(rng() % 1000)); break;
            case 1: n += (size_t)snprintf(buf + n, 8, "{}"); break;
            case 2: n += (size_t)snprintf(buf + n, 8, "true"); break;
            default: n += render_field(buf + n, &vals[i]); break;
            }
        }
        buf[n++] = '}';
        switch (rng() % 16) {
        case 0: buf[rng() % n] = (char)(rng() % 256); break;
        case 1: n = rng() % n; break;
        case 2: buf[n++] = ' '; break;
        default: break;
        }
        assert_true(n < sizeof(buf));
        if (prepare_both_buf(buf, n, &same) == 0)
            ok++;
        canonical += same;
    }
    /* The mix reaches both paths, and both outcomes of each. */
    assert_true(ok > 5000);
    assert_true(canonical > 2000);
    assert_true(ok - canonical > 2000);
    assert_true(20000 - ok > 2000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stages_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_promote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cur_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_current, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_current_old_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_undelete_destroy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_version_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_fields, setup, teardown),
        cmocka_unit_test(test_decode_rejects),
        cmocka_unit_test_setup_teardown(test_fingerprint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_puts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_only_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fingerprint_keyed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fingerprint_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_plaintext_on_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout1_store, setup, teardown),
        cmocka_unit_test(test_stage_names),
        cmocka_unit_test(test_data_prepare_fast),
        cmocka_unit_test(test_data_prepare_random),
    };

    secure_heap_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
