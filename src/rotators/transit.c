/* transit.c: kind "transit": a transit keyring (secrets/transit.h) rotated by the engine. A
 * keyring is versions, not current/previous: every version at or above the keyring's
 * min_decryption_version verifies (and decrypts); the latest signs (and encrypts).
 *
 * The engine's steps, for an entry whose keyring is `name` (default: the path's last segment,
 * so transit/keys/jwt-signing is the key jwt-signing of /v1/transit/keys/jwt-signing):
 *   create   generates a key with no lock held (seconds for rsa-4096) and adds it as a pending
 *            version: published in the keyring and the JWKS before it signs anything, never
 *            used to sign or encrypt yet. A pending version left by a crash before the engine
 *            recorded it is taken up instead of making another. The entry's version (what
 *            `rekey kv get` shows) holds public data only: key (the PEM public key, or the kid
 *            for aes256-gcm96), kid, key_version, key_type.
 *   test     signs a random message with the new version and verifies it with its published
 *            public key (aes256-gcm96: encrypts and decrypts).
 *   promote  makes it the latest version (it signs from now on).
 *   unapply  (an undone rotation) marks it failed: never used, never published again.
 *   retire   after `grace`: raises min_decryption_version past the previous version, so
 *            tokens it signed stop verifying (retire_previous, the default for signing keys;
 *            never for aes256-gcm96, whose old ciphertexts would become unreadable).
 * Rollback is refused (ROT_F_NO_ROLLBACK): lower the minimum version instead.
 * status says when the entry is due from the keyring itself: its latest version's time plus
 * `every` (a rotation through the API counts), and shows latest and minimum versions. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rotators/rotator.h"
#include "rotators/transit.h"
#include "secrets/kv.h"
#include "secrets/transit.h"
#include "util/parse.h"
#include "util/testsw.h"

#include <signal.h>

static const struct inv_setting transit_settings[] = {
    {.name = "key_type",
     .type = IS_ENUM,
     .flags = IS_REQUIRED,
     .choices = "rsa-4096|ed25519|ecdsa-p256|ecdsa-p384|rsa-2048|rsa-3072|aes256-gcm96",
     .help = "the key's algorithm"},
    {.name = "exportable",
     .type = IS_BOOL,
     .def = "false",
     .help = "whether the private key may be exported (when rekey creates the keyring)"},
    {.name = "name",
     .type = IS_STRING,
     .help = "the keyring's name under transit/keys/ (default: the path's last segment)"},
    {.name = "retire_previous",
     .type = IS_BOOL,
     .help = "after grace, raise min_decryption_version past the previous version (default: "
             "true for signing keys, false for aes256-gcm96)"},
    {0},
};

/* The keyring's name and type of an entry (checked at load). */
static int
entry_key(const struct inv_secret *s, const char **name, enum transit_type *type,
          struct rk_error *err)
{
    *name = inv_param(s, "name");
    if (*name == NULL)
        return rk_error_set(err, RK_ECONFIG, "%s: no keyring name", s->path);
    if (transit_type_parse(inv_param(s, "key_type"), type) != 0)
        return rk_error_set(err, RK_ECONFIG, "key_type: expected one of %s",
                            transit_settings[0].choices);
    return 0;
}

static int
rt_defaults(struct inv_secret *s, struct rk_error *err)
{
    enum transit_type type;
    const char *slash;

    if (inv_param(s, "name") == NULL) {
        slash = strrchr(s->path, '/');
        if (inv_param_set(s, "name", slash != NULL ? slash + 1 : s->path) != 0)
            return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    if (inv_param(s, "retire_previous") == NULL &&
        transit_type_parse(inv_param(s, "key_type"), &type) == 0 &&
        inv_param_set(s, "retire_previous", transit_type_signs(type) ? "true" : "false") != 0)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    return 0;
}

static int
rt_check(const struct inv_secret *s, struct rk_error *err)
{
    const char *name = inv_param(s, "name");
    struct rk_error e2 = {0};

    if (name != NULL && transit_name_check(name, &e2) != 0)
        return rk_error_set(err, RK_ECONFIG, "name: %s", e2.msg);
    return 0;
}

static void
rt_lint(const struct inv_secret *s, const struct inventory *inv, inv_lint_report_fn report,
        void *arg)
{
    const char *rp = inv_param(s, "retire_previous");

    (void)inv;
    if (rp != NULL && strcmp(rp, "true") == 0 && s->grace == 0)
        report(arg, "warning",
               "grace is 0: tokens signed by the previous version stop verifying as soon as a "
               "rotation ends; set grace to the longest lifetime of a token it signs");
}

static unsigned
rt_flags(const struct inv_secret *s)
{
    (void)s;
    return ROT_F_NO_ROLLBACK;
}

/* The engine's transit over the entry's store. */
static int
open_transit(struct kv *kv, struct transit **t, struct rk_error *err)
{
    if (kv == NULL)
        return rk_error_set(err, RK_EINTERNAL, "the transit kind needs the store");
    return transit_open(kv_barrier(kv), t, err);
}

/* A version number from the fields of a version of the entry (its key_version field). */
static uint64_t
fields_version(const struct rot_fields *f)
{
    const struct secret *v = f != NULL ? rot_fields_get(f, "key_version") : NULL;
    int64_t n = 0;

    if (v == NULL || parse_int64((const char *)v->data, 1, INT64_MAX, &n) != 0)
        return 0;
    return (uint64_t)n;
}

/* REKEY_CRASH_AT=transit-pending (a test switch): dies after the pending version is stored and
 * before the engine records its candidate, the window a crash leaves an orphan in. */
static void
crash_point(const char *name)
{
    const char *at = test_switch("REKEY_CRASH_AT");

    if (at != NULL && strcmp(at, name) == 0)
        raise(SIGKILL);
}

static int
put_str(struct rot_fields *out, const char *name, const char *v, struct rk_error *err)
{
    return rot_fields_put(out, name, v, strlen(v), 0, err);
}

static int
rt_create(struct rot_ctx *c, struct rot_fields *out, struct rk_error *err)
{
    const struct inv_secret *s = c->secret;
    struct transit *t = NULL;
    struct transit_newkey *k = NULL;
    enum transit_type type;
    struct transit_info *info = NULL;
    const char *name;
    const char *exp = inv_param(s, "exportable");
    char num[24], kid[TRANSIT_NAME_MAX + 32], *pub = NULL;
    uint64_t ver = 0;
    int r, exists, created = 0;

    if ((r = entry_key(s, &name, &type, err)) != 0 || (r = open_transit(c->kv, &t, err)) != 0)
        return r;
    if ((exists = transit_exists(t, name, err)) < 0) {
        r = exists;
        goto out;
    }
    if (exists) {
        if ((r = transit_info_get(t, name, &info, err)) != 0)
            goto out;
        if (info->type != type) {
            r = rk_error_set(err, RK_EINVAL, "transit key %s is %s, the entry says %s", name,
                             transit_type_name(info->type), transit_type_name(type));
            goto out;
        }
        /* A pending version a crash left behind is this rotation's candidate. */
        if ((r = transit_pending_version(t, name, &ver, err)) != 0)
            goto out;
    }
    if (ver == 0) {
        struct transit_create_opts o = {
            .type = type, .exportable = exp != NULL && strcmp(exp, "true") == 0, .pending = 1};
        /* Seconds for rsa-4096: no lock is held here (the engine's rotation lock is a store
         * record that only keeps a second rotation of this path away). */
        if ((r = transit_keygen(type, &k, err)) != 0)
            goto out;
        if (!exists && (r = transit_create(t, name, &o, k, &created, err)) != 0)
            goto out;
        if (created)
            ver = 1;
        else if ((r = transit_add_version(t, name, k, 1, &ver, err)) != 0)
            goto out;
        crash_point("transit-pending");
    }
    snprintf(num, sizeof(num), "%" PRIu64, ver);
    snprintf(kid, sizeof(kid), "%s:v%" PRIu64, name, ver);
    if (transit_type_signs(type) && (r = transit_public_pem(t, name, ver, &pub, err)) != 0)
        goto out;
    if ((r = put_str(out, rotator_field(s), pub != NULL ? pub : kid, err)) != 0 ||
        (r = put_str(out, "kid", kid, err)) != 0 ||
        (r = put_str(out, "key_version", num, err)) != 0 ||
        (r = put_str(out, "key_type", transit_type_name(type), err)) != 0)
        goto out;
    r = 0;
out:
    free(pub);
    transit_info_free(info);
    transit_newkey_free(k);
    transit_close(t);
    return r;
}

/* The keyring version of the candidate, and the engine's transit. */
static int
candidate(struct rot_ctx *c, struct transit **t, const char **name, uint64_t *ver,
          struct rk_error *err)
{
    enum transit_type type;
    int r;

    if ((r = entry_key(c->secret, name, &type, err)) != 0)
        return r;
    if ((*ver = fields_version(c->new_fields)) == 0)
        return rk_error_set(err, RK_EINVAL, "%s: the candidate names no key version",
                            c->secret->path);
    return open_transit(c->kv, t, err);
}

static int
rt_test(struct rot_ctx *c, struct rk_error *err)
{
    struct transit *t = NULL;
    const char *name;
    uint64_t ver;
    int r;

    if ((r = candidate(c, &t, &name, &ver, err)) == 0)
        r = transit_self_test(t, name, ver, err);
    transit_close(t);
    /* A self-test that fails is the key's fault, never an outage. */
    return r == -RK_EUNAVAILABLE || r == -RK_ETIMEOUT ? -RK_EREJECTED : r;
}

static int
rt_promote(struct rot_ctx *c, struct rk_error *err)
{
    struct transit *t = NULL;
    const char *name;
    uint64_t ver;
    int r;

    if ((r = candidate(c, &t, &name, &ver, err)) == 0)
        r = transit_promote(t, name, ver, err);
    transit_close(t);
    return r;
}

static int
rt_unapply(struct rot_ctx *c, struct rk_error *err)
{
    struct transit *t = NULL;
    const char *name;
    uint64_t ver;
    int r;

    if ((r = candidate(c, &t, &name, &ver, err)) == 0)
        r = transit_fail_version(t, name, ver, err);
    transit_close(t);
    return r == -RK_ENOTFOUND ? 0 : r;
}

static int
rt_retire(struct rot_ctx *c, struct rk_error *err)
{
    const char *rp = inv_param(c->secret, "retire_previous"), *name;
    struct transit *t = NULL;
    enum transit_type type;
    uint64_t old = fields_version(c->old_fields), now = 0;
    int r;

    if (rp == NULL || strcmp(rp, "true") != 0 || old == 0)
        return 0;
    if ((r = entry_key(c->secret, &name, &type, err)) != 0 ||
        (r = open_transit(c->kv, &t, err)) != 0)
        return r;
    r = transit_raise_min(t, name, old + 1, &now, err);
    transit_close(t);
    return r == -RK_ENOTFOUND ? 0 : r;
}

static int
rt_status(const struct inv_secret *s, const struct rot_status_in *in, struct rot_due *out,
          struct rk_error *err)
{
    struct transit *t = NULL;
    struct transit_info *info = NULL;
    enum transit_type type;
    const char *name;
    int64_t last = in->last_rotated;
    size_t published = 0;
    int r;

    if ((r = entry_key(s, &name, &type, err)) != 0 || (r = open_transit(in->kv, &t, err)) != 0)
        return r;
    r = transit_info_get(t, name, &info, err);
    transit_close(t);
    if (r == -RK_ENOTFOUND) {
        rk_error_clear(err);
        snprintf(out->detail, sizeof(out->detail), "no keyring %s yet", name);
        return 0;
    }
    if (r != 0)
        return r;
    for (size_t i = 0; i < info->nversions; i++) {
        const struct transit_version_info *v = &info->versions[i];
        if (v->state != TRANSIT_V_FAILED && v->version >= info->min_decryption_version)
            published++;
        /* A version made through the API is a rotation too. */
        if (v->version == info->latest_version && v->created_us / 1000000 > last)
            last = v->created_us / 1000000;
    }
    if (s->every > 0 && last > 0)
        out->next_due = last + s->every;
    snprintf(out->detail, sizeof(out->detail),
             "latest v%" PRIu64 ", min decryption v%" PRIu64 ", %zu version%s usable",
             info->latest_version, info->min_decryption_version, published,
             published == 1 ? "" : "s");
    transit_info_free(info);
    return 0;
}

const struct rotator_ops rotator_transit = {
    .version = ROTATOR_OPS_VERSION,
    .kind = "transit",
    .flags_for = rt_flags,
    .check = rt_check,
    .create = rt_create,
    .test = rt_test,
    .promote = rt_promote,
    .unapply = rt_unapply,
    .retire = rt_retire,
    .status = rt_status,
    .settings = transit_settings,
    .default_field = "key",
    .fixed_field = 1,
    .defaults = rt_defaults,
    .lint = rt_lint,
};

json_t *
transit_schedule_entry(const char *key_type, int exportable, int64_t period)
{
    char every[32];

    snprintf(every, sizeof(every), "%" PRId64 "s", period);
    return json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:s}", "kind", rotator_transit.kind,
                     "key_type", key_type, "every", every, "auto", 1, "exportable",
                     exportable ? "true" : "false", "retire_previous", "false", "description",
                     "auto_rotate_period of the transit key");
}
