/* routes-transit.c: Vault's transit API on the mount "transit/" (secrets/transit.h has the
 * model; docs/transit.md what is supported and how it differs from Vault).
 *
 *   LIST            transit/keys                         list
 *   POST/PUT        transit/keys/:name                   create (create, or update when it
 *                                                        exists, as Vault's existence check)
 *   GET             transit/keys/:name                   read
 *   DELETE          transit/keys/:name                   delete (only when deletion_allowed)
 *   POST            transit/keys/:name/rotate            update
 *   POST            transit/keys/:name/config            update
 *   POST            transit/sign/:name[/:hash]           update
 *   POST            transit/verify/:name[/:hash]         update
 *   POST            transit/encrypt/:name                update (create when the key is missing:
 *                                                        Vault's upsert makes an aes256-gcm96 key)
 *   POST            transit/decrypt/:name, rewrap/:name  update
 *   GET             transit/export/:type/:name[/:ver]    read (exportable keys only)
 * ACL paths are the request paths without /v1/. Key names are case-sensitive, as in Vault
 * (ROUTE_PARAM_NAME). Vault's weak field decoding is kept: booleans and integers may come as
 * strings ("true", "2"), auto_rotate_period as a duration ("168h") or seconds, so the vault
 * CLI's `vault write transit/keys/k/config auto_rotate_period=168h` works.
 *
 * Key generation (seconds for rsa-4096) happens in the request's thread with no lock held:
 * neither the app's lock nor any store lock (transit.h: the key is made first, then stored
 * with a compare-and-swap).
 *
 * auto_rotate_period: a period set through config makes a store-defined entry
 * transit/keys/:name (engine/entries.h) of kind transit with every = the period, auto: true
 * and retire_previous: false (Vault's auto-rotation never raises the minimum version), so the
 * daemon rotates the key like an inventory entry; 0 deletes that entry. A key the
 * configuration (YAML) names keeps the configuration's schedule: setting a period on it is
 * refused. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/app.h"
#include "api/envelope.h"
#include "api/http.h"
#include "api/policy.h"
#include "api/router.h"
#include "api/routes-transit.h"
#include "api/token.h"
#include "engine/entries.h"
#include "engine/inventory.h"
#include "rotators/transit.h"
#include "secrets/transit.h"
#include "util/enc.h"
#include "util/parse.h"
#include "util/timeutil.h"

#define ACL_MAX (TRANSIT_NAME_MAX + 64)
#define BATCH_MAX 1000 /* items in one batch_input */

/* ---- the engine of the app's store ---- */

/* One transit engine per store, opened at the first request and kept for the process's life,
 * so its cache outlives a request (transit_open alone would free it with the last close). */
static pthread_mutex_t pin_mu = PTHREAD_MUTEX_INITIALIZER;
static struct barrier *pin_br;
static struct transit *pin_t;

struct transit *
api_transit(struct api_app *app)
{
    struct rk_error err = {0};
    struct transit *t = NULL;

    pthread_mutex_lock(&pin_mu);
    if (pin_t == NULL || pin_br != app->br) {
        /* another store in this process (tests): the old pin goes */
        transit_close(pin_t);
        pin_t = NULL;
        if (transit_open(app->br, &pin_t, &err) == 0)
            pin_br = app->br;
    }
    if (pin_t != NULL)
        (void)transit_open(app->br, &t, &err); /* the caller's reference */
    pthread_mutex_unlock(&pin_mu);
    return t;
}

/* ---- Vault's weak field decoding ---- */

static int
bad_type(struct rk_error *err, const char *key, const char *want, const json_t *v)
{
    static const char *const names[] = {"object", "array", "string", "number",
                                        "number", "bool",  "bool",   "null"};
    return rk_error_set(err, RK_EINVAL, "invalid \"%s\": expected %s, got %s", key, want,
                        names[json_typeof(v)]);
}

/* A boolean field: *set 1 and *out when present. */
static int
get_bool(const json_t *body, const char *key, int *set, int *out, struct rk_error *err)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    const json_t *v = json_object_get(body, key);

    *set = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    *set = 1;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_string(v))
        for (size_t i = 0; i < 6; i++) {
            if (strcmp(json_string_value(v), yes[i]) == 0)
                return (*out = 1, 0);
            if (strcmp(json_string_value(v), no[i]) == 0)
                return (*out = 0, 0);
        }
    return bad_type(err, key, "a boolean", v);
}

/* A non-negative integer field. */
static int
get_uint(const json_t *body, const char *key, int *set, uint64_t *out, struct rk_error *err)
{
    const json_t *v = json_object_get(body, key);
    int64_t n;

    *set = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    *set = 1;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) && parse_int64(json_string_value(v), 0, INT64_MAX, &n) == 0) {
        *out = (uint64_t)n;
        return 0;
    }
    return bad_type(err, key, "a non-negative integer", v);
}

/* A duration field: "168h", "1h30m", "0", or a number of seconds. */
static int
get_duration(const json_t *body, const char *key, int *set, int64_t *out, struct rk_error *err)
{
    const json_t *v = json_object_get(body, key);
    struct rk_error e2 = {0};

    *set = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    *set = 1;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "0") == 0 || strcmp(s, "0s") == 0 || strcmp(s, "") == 0) {
            *out = 0;
            return 0;
        }
        if (duration_parse(s, strlen(s), out, &e2) == 0)
            return 0;
    }
    return bad_type(err, key, "a duration (168h, 3600)", v);
}

/* A string field (borrowed), NULL when absent. */
static int
get_str(const json_t *body, const char *key, const char **out, struct rk_error *err)
{
    const json_t *v = json_object_get(body, key);

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return bad_type(err, key, "a string", v);
    *out = json_string_value(v);
    return 0;
}

/* ---- requests ---- */

/* The parts of the route's parameter: name and what follows it ("" or "rotate", "config", a
 * hash algorithm). */
struct tr_req {
    char name[TRANSIT_NAME_MAX + 1];
    const char *rest;
    char acl[ACL_MAX + TRANSIT_NAME_MAX];
};

/* Splits the parameter of route family (e.g. "sign"); answers 400 on a bad name. */
static int
tr_parse(struct http_request *req, const char *family, struct tr_req *tr)
{
    const char *p = http_request_param(req), *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    struct rk_error err = {0};

    if (n == 0 || n > TRANSIT_NAME_MAX) {
        (void)http_respond_error(req, 400, "missing or invalid key name");
        return -RK_EINVAL;
    }
    memcpy(tr->name, p, n);
    tr->name[n] = '\0';
    if (transit_name_check(tr->name, &err) != 0) {
        (void)http_respond_error(req, 400, "%s", err.msg);
        return -RK_EINVAL;
    }
    tr->rest = slash ? slash + 1 : "";
    snprintf(tr->acl, sizeof(tr->acl), "transit/%s/%s", family, p);
    return 0;
}

static int
respond_data(struct http_request *req, unsigned status, json_t *data)
{
    if (data == NULL)
        return http_respond_error(req, 500, "out of memory");
    return http_respond_json(req, status, api_envelope(data, NULL));
}

/* Unsealed, authorised for cap on acl, and the body (for writes). Returns 0 or -1 having
 * answered. */
static int
tr_begin(struct http_request *req, struct api_app *app, const char *acl, unsigned cap,
         json_t **body)
{
    struct token_info ti = {0};

    if (api_require_unsealed(req, app) != 0)
        return -1;
    if (api_authorize(req, app, acl, cap, &ti) != 0)
        return -1;
    token_info_clear(&ti);
    if (body != NULL && http_request_json(req, body) != 0)
        return -1;
    return 0;
}

/* ---- key shapes ---- */

/* Vault's name of a key type inside the keys map ("P-256" for ECDSA). */
static const char *
vault_key_name(enum transit_type type)
{
    switch (type) {
    case TRANSIT_ECDSA_P256: return "P-256";
    case TRANSIT_ECDSA_P384: return "P-384";
    default: return transit_type_name(type);
    }
}

/* The read shape of key name. */
static json_t *
key_json(struct transit *t, const char *name, const struct transit_info *i, struct rk_error *err)
{
    json_t *keys = json_object(), *pending = json_array(), *d;
    int signs = transit_type_signs(i->type);

    if (keys == NULL || pending == NULL)
        goto fail;
    for (size_t k = 0; k < i->nversions; k++) {
        const struct transit_version_info *v = &i->versions[k];
        char num[24], when[40];
        json_t *e;
        if (v->state == TRANSIT_V_FAILED || v->version < i->min_decryption_version)
            continue;
        snprintf(num, sizeof(num), "%" PRIu64, v->version);
        if (v->state == TRANSIT_V_PENDING &&
            json_array_append_new(pending, json_integer((json_int_t)v->version)) != 0)
            goto fail;
        if (!signs) {
            e = json_integer(v->created_us / 1000000);
        } else {
            char *pub = NULL;
            time_format_rfc3339(v->created_us, when, sizeof(when));
            if (transit_public_key(t, name, v->version, &pub, err) != 0)
                goto fail;
            e = json_pack("{s:s, s:s, s:s}", "creation_time", when, "name", vault_key_name(i->type),
                          "public_key", pub);
            free(pub);
        }
        if (e == NULL || json_object_set_new(keys, num, e) != 0)
            goto fail;
    }
    d = json_pack("{s:s, s:s, s:I, s:I, s:I, s:i, s:b, s:b, s:b, s:I, s:b, s:b, s:b, s:b, s:b, "
                  "s:b, s:b, s:o, s:o}",
                  "name", name, "type", transit_type_name(i->type), "latest_version",
                  (json_int_t)i->latest_version, "min_decryption_version",
                  (json_int_t)i->min_decryption_version, "min_encryption_version",
                  (json_int_t)i->min_encryption_version, "min_available_version", 0,
                  "deletion_allowed", i->deletion_allowed, "exportable", i->exportable,
                  "allow_plaintext_backup", 0, "auto_rotate_period",
                  (json_int_t)i->auto_rotate_period, "derived", 0, "imported_key", 0,
                  "supports_encryption", !signs, "supports_decryption", !signs,
                  "supports_derivation", !signs, "supports_signing", signs, "convergent_encryption",
                  0, "keys", keys, "pending_versions", pending);
    return d;
fail:
    json_decref(keys);
    json_decref(pending);
    if (err->code == 0)
        rk_error_set(err, RK_ENOMEM, "out of memory");
    return NULL;
}

static int
respond_key(struct http_request *req, struct transit *t, const char *name)
{
    struct transit_info *i = NULL;
    struct rk_error err = {0};
    json_t *d;
    int r;

    if ((r = transit_info_get(t, name, &i, &err)) != 0)
        return api_respond_rk(req, r, &err);
    d = key_json(t, name, i, &err);
    transit_info_free(i);
    if (d == NULL)
        return api_respond_rk(req, -err.code, &err);
    return respond_data(req, 200, d);
}

/* ---- the schedule of a key (auto_rotate_period) ---- */

/* Creates, updates or deletes the store entry that rotates key name every period seconds. */
static int
sync_entry(struct http_request *req, struct api_app *app, struct transit *t, const char *name,
           int64_t period, struct rk_error *err)
{
    struct transit_info *i = NULL;
    char path[ACL_MAX];
    json_t *def = NULL;
    int r;

    snprintf(path, sizeof(path), "transit/keys/%s", name);
    (void)req;
    api_app_rdlock(app);
    if (app->inv == NULL) {
        api_app_unlock(app);
        return rk_error_set(err, RK_ESEALED, "Vault is sealed");
    }
    if (inventory_find(app->inv, path) != NULL) {
        api_app_unlock(app);
        return rk_error_set(err, RK_EINVAL,
                            "%s is rotated by the configuration (its every and auto); change it "
                            "there",
                            path);
    }
    if (period == 0) {
        r = engine_entry_delete(app->kv, path, err);
        api_app_unlock(app);
        if (r == -RK_ENOTFOUND) {
            rk_error_clear(err);
            r = 0;
        }
        return r;
    }
    if ((r = transit_info_get(t, name, &i, err)) == 0) {
        def = transit_schedule_entry(transit_type_name(i->type), i->exportable, period);
        r = def != NULL ? engine_entry_put(app->kv, app->inv, path, def, NULL, err)
                        : rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    api_app_unlock(app);
    json_decref(def);
    transit_info_free(i);
    return r;
}

/* ---- transit/keys ---- */

static int
collect_name(void *arg, const char *name)
{
    return json_array_append_new(arg, json_string(name)) == 0 ? 0 : -RK_ENOMEM;
}

static int
keys_list(struct http_request *req, struct api_app *app, struct transit *t)
{
    struct rk_error err = {0};
    json_t *keys;
    int r;

    if (tr_begin(req, app, "transit/keys", CAP_LIST, NULL) != 0)
        return 0;
    if ((keys = json_array()) == NULL)
        return respond_data(req, 200, NULL);
    if ((r = transit_list(t, collect_name, keys, &err)) != 0) {
        json_decref(keys);
        return api_respond_rk(req, r, &err);
    }
    if (json_array_size(keys) == 0) {
        json_decref(keys);
        return http_respond_error(req, 404, NULL);
    }
    return respond_data(req, 200, json_pack("{s:o}", "keys", keys));
}

static int
key_create(struct http_request *req, struct api_app *app, struct transit *t, struct tr_req *tr,
           int exists, const json_t *body)
{
    struct transit_create_opts o = {.type = TRANSIT_AES256_GCM96};
    struct transit_newkey *k = NULL;
    struct rk_error err = {0};
    const char *type = NULL;
    int set, r, created = 0;

    if ((r = get_str(body, "type", &type, &err)) != 0 ||
        (r = get_bool(body, "exportable", &set, &o.exportable, &err)) != 0 ||
        (r = get_duration(body, "auto_rotate_period", &set, &o.auto_rotate_period, &err)) != 0)
        goto bad;
    if (type != NULL && transit_type_parse(type, &o.type) != 0) {
        r = rk_error_set(&err, RK_EINVAL, "unknown key type %.40s", type);
        goto bad;
    }
    if (json_is_true(json_object_get(body, "derived")) ||
        json_is_true(json_object_get(body, "convergent_encryption"))) {
        r = rk_error_set(&err, RK_EINVAL, "derived keys are not supported");
        goto bad;
    }
    if (o.auto_rotate_period != 0 && o.auto_rotate_period < TRANSIT_AUTO_ROTATE_MIN) {
        r = rk_error_set(&err, RK_EINVAL,
                         "auto rotate period must be 0 to disable or at least an hour");
        goto bad;
    }
    if (!exists) {
        /* With no lock held: seconds for rsa-4096. */
        if ((r = transit_keygen(o.type, &k, &err)) != 0 ||
            (r = transit_create(t, tr->name, &o, k, &created, &err)) != 0)
            goto fail;
        if (created && o.auto_rotate_period > 0 &&
            (r = sync_entry(req, app, t, tr->name, o.auto_rotate_period, &err)) != 0)
            goto fail;
    }
    transit_newkey_free(k);
    return respond_key(req, t, tr->name);
bad:
    transit_newkey_free(k);
    return http_respond_error(req, 400, "%s", err.msg);
fail:
    transit_newkey_free(k);
    return api_respond_rk(req, r, &err);
}

static int
key_rotate(struct http_request *req, struct transit *t, struct tr_req *tr)
{
    struct transit_info *i = NULL;
    struct transit_newkey *k = NULL;
    struct rk_error err = {0};
    int r;

    if ((r = transit_info_get(t, tr->name, &i, &err)) == 0 &&
        (r = transit_keygen(i->type, &k, &err)) == 0)
        r = transit_add_version(t, tr->name, k, 0, NULL, &err);
    transit_info_free(i);
    transit_newkey_free(k);
    if (r != 0)
        return api_respond_rk(req, r, &err);
    return respond_key(req, t, tr->name);
}

static int
key_config(struct http_request *req, struct api_app *app, struct transit *t, struct tr_req *tr,
           const json_t *body)
{
    struct transit_config c;
    struct rk_error err = {0};
    int r;

    memset(&c, 0, sizeof(c));
    if ((r = get_uint(body, "min_decryption_version", &c.set_min_decryption,
                      &c.min_decryption_version, &err)) != 0 ||
        (r = get_uint(body, "min_encryption_version", &c.set_min_encryption,
                      &c.min_encryption_version, &err)) != 0 ||
        (r = get_bool(body, "deletion_allowed", &c.set_deletion_allowed, &c.deletion_allowed,
                      &err)) != 0 ||
        (r = get_bool(body, "exportable", &c.set_exportable, &c.exportable, &err)) != 0 ||
        (r = get_duration(body, "auto_rotate_period", &c.set_auto_rotate, &c.auto_rotate_period,
                          &err)) != 0)
        return http_respond_error(req, 400, "%s", err.msg);
    if (c.set_auto_rotate && c.auto_rotate_period != 0 &&
        c.auto_rotate_period < TRANSIT_AUTO_ROTATE_MIN)
        return http_respond_error(req, 400,
                                  "auto rotate period must be 0 to disable or at least an hour");
    /* The schedule first: a key the configuration rotates refuses a period of its own. */
    if (c.set_auto_rotate && (r = transit_exists(t, tr->name, &err)) == 1 &&
        (r = sync_entry(req, app, t, tr->name, c.auto_rotate_period, &err)) != 0)
        return api_respond_rk(req, r, &err);
    if ((r = transit_configure(t, tr->name, &c, &err)) != 0)
        return api_respond_rk(req, r, &err);
    return respond_key(req, t, tr->name);
}

static int
h_keys(struct http_request *req, void *vapp, struct rk_error *unused)
{
    struct api_app *app = vapp;
    unsigned m = http_request_method(req), cap;
    struct transit *t;
    struct tr_req tr;
    struct rk_error err = {0};
    json_t *body = NULL;
    int r, exists = 1;

    (void)unused;
    if ((t = api_transit(app)) == NULL)
        return http_respond_error(req, 500, "out of memory");
    if (http_request_param(req)[0] == '\0') {
        if (m == HTTP_LIST)
            keys_list(req, app, t);
        else
            http_respond_error(req, 405, "use LIST to list the keys");
        goto out;
    }
    if (tr_parse(req, "keys", &tr) != 0)
        goto out;
    /* The capability of the method on the request's path, checked before anything else is
     * told (even that a sub-path does not exist); a write of a new key needs create. */
    cap = m == HTTP_GET      ? CAP_READ
          : m == HTTP_LIST   ? CAP_LIST
          : m == HTTP_DELETE ? CAP_DELETE
                             : CAP_UPDATE;
    if ((m & HTTP_WRITE) && tr.rest[0] == '\0') {
        if ((exists = transit_exists(t, tr.name, &err)) < 0) {
            api_respond_rk(req, exists, &err);
            goto out;
        }
        cap = exists ? CAP_UPDATE : CAP_CREATE;
    }
    if (tr_begin(req, app, tr.acl, cap, (m & HTTP_WRITE) ? &body : NULL) != 0)
        goto out;
    if (strcmp(tr.rest, "rotate") == 0 && (m & HTTP_WRITE))
        key_rotate(req, t, &tr);
    else if (strcmp(tr.rest, "config") == 0 && (m & HTTP_WRITE))
        key_config(req, app, t, &tr, body);
    else if (tr.rest[0] != '\0')
        http_respond_error(req, 404, NULL);
    else if (m & HTTP_WRITE)
        key_create(req, app, t, &tr, exists, body);
    else if (m == HTTP_DELETE) {
        if ((r = transit_delete(t, tr.name, &err)) != 0) {
            api_respond_rk(req, r, &err);
            goto out;
        }
        /* Its schedule goes with it (a store entry; the configuration's stays). */
        (void)sync_entry(req, app, t, tr.name, 0, &err);
        http_respond_no_content(req);
    } else if (m == HTTP_GET) {
        respond_key(req, t, tr.name);
    } else {
        http_respond_error(req, 405, NULL);
    }
out:
    json_decref(body);
    transit_close(t);
    return 0;
}

/* ---- sign and verify ---- */

/* The signing options of a request (the hash may also come from the URL). */
static int
sign_opts(const json_t *body, const char *url_hash, struct transit_sign_opts *o,
          struct rk_error *err)
{
    const char *hash = NULL, *sa = NULL, *ma = NULL;
    const json_t *salt = json_object_get(body, "salt_length");
    uint64_t kv = 0;
    int set, r;

    memset(o, 0, sizeof(*o));
    o->salt_len = TRANSIT_SALT_AUTO;
    if ((r = get_str(body, "hash_algorithm", &hash, err)) != 0 ||
        (r = get_str(body, "signature_algorithm", &sa, err)) != 0 ||
        (r = get_str(body, "marshaling_algorithm", &ma, err)) != 0 ||
        (r = get_bool(body, "prehashed", &set, &o->prehashed, err)) != 0 ||
        (r = get_uint(body, "key_version", &set, &kv, err)) != 0)
        return r;
    o->hash = url_hash != NULL && url_hash[0] != '\0' ? url_hash : hash;
    o->key_version = kv;
    if (sa != NULL && strcmp(sa, "pss") != 0 && strcmp(sa, "pkcs1v15") != 0)
        return rk_error_set(err, RK_EINVAL, "unsupported signature algorithm %.20s", sa);
    o->pad = sa != NULL && strcmp(sa, "pkcs1v15") == 0 ? TRANSIT_PAD_PKCS1V15 : TRANSIT_PAD_PSS;
    if (ma != NULL && strcmp(ma, "asn1") != 0 && strcmp(ma, "jws") != 0)
        return rk_error_set(err, RK_EINVAL, "unsupported marshaling algorithm %.20s", ma);
    o->marshal = ma != NULL && strcmp(ma, "jws") == 0 ? TRANSIT_MARSHAL_JWS : TRANSIT_MARSHAL_ASN1;
    if (salt != NULL && !json_is_null(salt)) {
        int64_t n;
        if (json_is_string(salt) && strcmp(json_string_value(salt), "auto") == 0)
            o->salt_len = TRANSIT_SALT_AUTO;
        else if (json_is_string(salt) && strcmp(json_string_value(salt), "hash") == 0)
            o->salt_len = TRANSIT_SALT_HASH;
        else if (json_is_integer(salt) && json_integer_value(salt) >= 0 &&
                 json_integer_value(salt) < 1024)
            o->salt_len = (int)json_integer_value(salt);
        else if (json_is_string(salt) && parse_int64(json_string_value(salt), 0, 1023, &n) == 0)
            o->salt_len = (int)n;
        else
            return rk_error_set(err, RK_EINVAL, "invalid salt_length");
    }
    return 0;
}

/* The base64 input of an item (Vault requires base64). *raw malloc'd. */
static int
item_input(const json_t *item, const char *key, unsigned char **raw, size_t *len,
           struct rk_error *err)
{
    const char *in = NULL;
    int r;

    *raw = NULL;
    if ((r = get_str(item, key, &in, err)) != 0)
        return r;
    if (in == NULL)
        in = "";
    if ((*raw = base64_decode(in, strlen(in), len)) == NULL)
        return rk_error_set(err, RK_EINVAL, "unable to decode %s as base64", key);
    return 0;
}

/* One sign: the result object ({"signature","key_version"} or {"error"}). */
static json_t *
sign_one(struct transit *t, const char *name, const struct transit_sign_opts *o, const json_t *item,
         int *failed, struct rk_error *err)
{
    unsigned char *in = NULL, *sig = NULL;
    size_t inlen = 0, siglen = 0;
    uint64_t v = 0;
    char *text = NULL;
    json_t *res;
    int r;

    if ((r = item_input(item, "input", &in, &inlen, err)) == 0 &&
        (r = transit_sign(t, name, o, in, inlen, &sig, &siglen, &v, err)) == 0 &&
        transit_sig_format(v, sig, siglen, o->marshal, &text) != 0)
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
    free(in);
    free(sig);
    if (r != 0) {
        *failed = r;
        return json_pack("{s:s}", "error", r == -RK_ENOTFOUND ? "signing key not found" : err->msg);
    }
    res = json_pack("{s:s, s:I}", "signature", text, "key_version", (json_int_t)v);
    free(text);
    return res;
}

static json_t *
verify_one(struct transit *t, const char *name, const struct transit_sign_opts *o,
           const json_t *item, int *failed, struct rk_error *err)
{
    unsigned char *in = NULL, *sig = NULL;
    size_t inlen = 0, siglen = 0;
    const char *text = NULL;
    uint64_t v = 0;
    int r, valid = 0;

    if ((r = item_input(item, "input", &in, &inlen, err)) == 0 &&
        (r = get_str(item, "signature", &text, err)) == 0) {
        if (text == NULL)
            r = rk_error_set(err, RK_EINVAL, "signature must be given (hmac is not supported)");
        else if ((r = transit_sig_parse(text, o->marshal, &v, &sig, &siglen, err)) == 0)
            r = transit_verify(t, name, o, v, in, inlen, sig, siglen, &valid, err);
    }
    free(in);
    free(sig);
    if (r != 0) {
        *failed = r;
        return json_pack("{s:s}", "error",
                         r == -RK_ENOTFOUND ? "signature verification key not found" : err->msg);
    }
    return json_pack("{s:b}", "valid", valid);
}

typedef json_t *(*item_fn)(struct transit *t, const char *name, const struct transit_sign_opts *o,
                           const json_t *item, int *failed, struct rk_error *err);

/* Runs fn over batch_input, or once over the body. A single request that fails is answered as
 * Vault does (400, or what the code maps to); a batch answers 200 with an error per item. */
static int
run_items(struct http_request *req, struct transit *t, const char *name,
          const struct transit_sign_opts *o, const json_t *body, item_fn fn)
{
    const json_t *batch = json_object_get(body, "batch_input"), *item;
    struct rk_error err = {0};
    json_t *results, *one;
    int failed = 0;
    size_t i;

    if (batch == NULL || json_is_null(batch)) {
        one = fn(t, name, o, body, &failed, &err);
        if (one == NULL)
            return http_respond_error(req, 500, "out of memory");
        if (failed) {
            json_decref(one);
            if (failed == -RK_ENOTFOUND || failed == -RK_EINVAL)
                return http_respond_error(req, 400, "%s",
                                          failed == -RK_ENOTFOUND ? "key not found" : err.msg);
            return api_respond_rk(req, failed, &err);
        }
        return respond_data(req, 200, one);
    }
    if (!json_is_array(batch) || json_array_size(batch) == 0 || json_array_size(batch) > BATCH_MAX)
        return http_respond_error(req, 400, "batch_input must be an array of 1 to %d items",
                                  BATCH_MAX);
    if ((results = json_array()) == NULL)
        return http_respond_error(req, 500, "out of memory");
    json_array_foreach(batch, i, item)
    {
        const json_t *ref = json_object_get(item, "reference");
        failed = 0;
        rk_error_clear(&err);
        one = json_is_object(item) ? fn(t, name, o, item, &failed, &err)
                                   : json_pack("{s:s}", "error", "a batch item is not an object");
        if (one != NULL && json_is_string(ref))
            json_object_set(one, "reference", (json_t *)(uintptr_t)ref);
        if (one == NULL || json_array_append_new(results, one) != 0) {
            json_decref(results);
            return http_respond_error(req, 500, "out of memory");
        }
    }
    return respond_data(req, 200, json_pack("{s:o}", "batch_results", results));
}

static int
sign_or_verify(struct http_request *req, struct api_app *app, const char *family, item_fn fn)
{
    struct transit_sign_opts o;
    struct rk_error err = {0};
    struct transit *t;
    struct tr_req tr;
    json_t *body = NULL;

    if (tr_parse(req, family, &tr) != 0 || tr_begin(req, app, tr.acl, CAP_UPDATE, &body) != 0)
        return 0;
    if (sign_opts(body, tr.rest, &o, &err) != 0) {
        json_decref(body);
        return http_respond_error(req, 400, "%s", err.msg);
    }
    if ((t = api_transit(app)) == NULL) {
        json_decref(body);
        return http_respond_error(req, 500, "out of memory");
    }
    run_items(req, t, tr.name, &o, body, fn);
    transit_close(t);
    json_decref(body);
    return 0;
}

static int
h_sign(struct http_request *req, void *vapp, struct rk_error *unused)
{
    (void)unused;
    return sign_or_verify(req, vapp, "sign", sign_one);
}

static int
h_verify(struct http_request *req, void *vapp, struct rk_error *unused)
{
    (void)unused;
    return sign_or_verify(req, vapp, "verify", verify_one);
}

/* ---- encrypt, decrypt, rewrap (aes256-gcm96) ---- */

static json_t *
encrypt_one(struct transit *t, const char *name, const struct transit_sign_opts *o,
            const json_t *item, int *failed, struct rk_error *err)
{
    unsigned char *pt = NULL;
    size_t len = 0;
    uint64_t v = 0;
    char *ct = NULL;
    json_t *res;
    int r;

    if ((r = item_input(item, "plaintext", &pt, &len, err)) == 0)
        r = transit_encrypt(t, name, o->key_version, pt, len, &ct, &v, err);
    if (pt != NULL)
        freezero(pt, len);
    if (r != 0) {
        *failed = r;
        return json_pack("{s:s}", "error",
                         r == -RK_ENOTFOUND ? "encryption key not found" : err->msg);
    }
    res = json_pack("{s:s, s:I}", "ciphertext", ct, "key_version", (json_int_t)v);
    free(ct);
    return res;
}

static json_t *
decrypt_one(struct transit *t, const char *name, const struct transit_sign_opts *o,
            const json_t *item, int *failed, struct rk_error *err)
{
    struct secret *pt = NULL;
    const char *ct = NULL;
    char *b64;
    json_t *res;
    int r;

    (void)o;
    if ((r = get_str(item, "ciphertext", &ct, err)) == 0)
        r = transit_decrypt(t, name, ct != NULL ? ct : "", &pt, NULL, err);
    if (r != 0) {
        *failed = r;
        return json_pack("{s:s}", "error",
                         r == -RK_ENOTFOUND ? "encryption key not found" : err->msg);
    }
    b64 = base64_encode(pt->data, pt->len);
    secret_free(pt);
    if (b64 == NULL)
        return NULL;
    res = json_pack("{s:s}", "plaintext", b64);
    freezero(b64, strlen(b64));
    return res;
}

static json_t *
rewrap_one(struct transit *t, const char *name, const struct transit_sign_opts *o,
           const json_t *item, int *failed, struct rk_error *err)
{
    struct secret *pt = NULL;
    const char *ct = NULL;
    char *out = NULL;
    uint64_t v = 0;
    json_t *res;
    int r;

    if ((r = get_str(item, "ciphertext", &ct, err)) == 0 &&
        (r = transit_decrypt(t, name, ct != NULL ? ct : "", &pt, NULL, err)) == 0)
        r = transit_encrypt(t, name, o->key_version, pt->data, pt->len, &out, &v, err);
    secret_free(pt);
    if (r != 0) {
        *failed = r;
        return json_pack("{s:s}", "error",
                         r == -RK_ENOTFOUND ? "encryption key not found" : err->msg);
    }
    res = json_pack("{s:s, s:I}", "ciphertext", out, "key_version", (json_int_t)v);
    free(out);
    return res;
}

static int
crypt_common(struct http_request *req, struct api_app *app, const char *family, item_fn fn)
{
    struct transit_sign_opts o;
    struct rk_error err = {0};
    struct transit *t;
    struct tr_req tr;
    json_t *body = NULL;
    uint64_t kv = 0;
    int set, exists = 1;

    memset(&o, 0, sizeof(o));
    if (tr_parse(req, family, &tr) != 0)
        return 0;
    if ((t = api_transit(app)) == NULL)
        return http_respond_error(req, 500, "out of memory");
    /* Vault's upsert: encrypting with a missing key creates it, with create on the path. */
    if (fn == encrypt_one && (exists = transit_exists(t, tr.name, &err)) < 0) {
        api_respond_rk(req, exists, &err);
        goto out;
    }
    if (tr_begin(req, app, tr.acl, exists ? CAP_UPDATE : CAP_CREATE, &body) != 0)
        goto out;
    if (tr.rest[0] != '\0') {
        http_respond_error(req, 404, NULL);
        goto out;
    }
    if (get_uint(body, "key_version", &set, &kv, &err) != 0) {
        http_respond_error(req, 400, "%s", err.msg);
        goto out;
    }
    o.key_version = kv;
    if (!exists) {
        struct transit_create_opts co = {.type = TRANSIT_AES256_GCM96};
        struct transit_newkey *k = NULL;
        const char *type = NULL;
        int r;
        if ((r = get_str(body, "type", &type, &err)) == 0 && type != NULL &&
            (transit_type_parse(type, &co.type) != 0 || co.type != TRANSIT_AES256_GCM96))
            r = rk_error_set(&err, RK_EINVAL, "key type %.40s cannot encrypt", type);
        if (r == 0 && (r = transit_keygen(co.type, &k, &err)) == 0)
            r = transit_create(t, tr.name, &co, k, NULL, &err);
        transit_newkey_free(k);
        if (r != 0) {
            api_respond_rk(req, r, &err);
            goto out;
        }
    }
    run_items(req, t, tr.name, &o, body, fn);
out:
    json_decref(body);
    transit_close(t);
    return 0;
}

static int
h_encrypt(struct http_request *req, void *vapp, struct rk_error *unused)
{
    (void)unused;
    return crypt_common(req, vapp, "encrypt", encrypt_one);
}

static int
h_decrypt(struct http_request *req, void *vapp, struct rk_error *unused)
{
    (void)unused;
    return crypt_common(req, vapp, "decrypt", decrypt_one);
}

static int
h_rewrap(struct http_request *req, void *vapp, struct rk_error *unused)
{
    (void)unused;
    return crypt_common(req, vapp, "rewrap", rewrap_one);
}

/* ---- transit/export/:type/:name[/:version] ---- */

static int
h_export(struct http_request *req, void *vapp, struct rk_error *unused)
{
    struct api_app *app = vapp;
    const char *p = http_request_param(req), *slash;
    char type[32], name[TRANSIT_NAME_MAX + 1], acl[ACL_MAX + TRANSIT_NAME_MAX];
    struct transit_info *i = NULL;
    struct rk_error err = {0};
    struct transit *t = NULL;
    json_t *keys = NULL;
    int64_t only = 0;
    size_t n;
    int r;

    (void)unused;
    if ((slash = strchr(p, '/')) == NULL || (size_t)(slash - p) >= sizeof(type))
        return http_respond_error(req, 400, "expected transit/export/<type>/<name>");
    memcpy(type, p, (size_t)(slash - p));
    type[slash - p] = '\0';
    p = slash + 1;
    n = (slash = strchr(p, '/')) ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n > TRANSIT_NAME_MAX)
        return http_respond_error(req, 400, "missing or invalid key name");
    memcpy(name, p, n);
    name[n] = '\0';
    if (transit_name_check(name, &err) != 0)
        return http_respond_error(req, 400, "%s", err.msg);
    if (slash != NULL && strcmp(slash + 1, "latest") != 0 &&
        parse_int64(slash + 1, 1, INT64_MAX, &only) != 0)
        return http_respond_error(req, 400, "invalid version");
    if (strcmp(type, "signing-key") != 0 && strcmp(type, "encryption-key") != 0)
        return http_respond_error(req, 400, "invalid export type: %.32s", type);
    snprintf(acl, sizeof(acl), "transit/export/%s", http_request_param(req));
    if (tr_begin(req, app, acl, CAP_READ, NULL) != 0)
        return 0;
    if ((t = api_transit(app)) == NULL)
        return http_respond_error(req, 500, "out of memory");
    if ((r = transit_info_get(t, name, &i, &err)) != 0) {
        api_respond_rk(req, r, &err);
        goto out;
    }
    if ((strcmp(type, "signing-key") == 0) != transit_type_signs(i->type)) {
        http_respond_error(req, 400, "%s: key %s is %s", type, name, transit_type_name(i->type));
        goto out;
    }
    if (slash != NULL && only == 0)
        only = (int64_t)i->latest_version;
    if ((keys = json_object()) == NULL) {
        http_respond_error(req, 500, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < i->nversions; k++) {
        const struct transit_version_info *v = &i->versions[k];
        struct secret *s = NULL;
        char num[24];
        if (v->state != TRANSIT_V_ACTIVE || v->version < i->min_decryption_version ||
            (only != 0 && v->version != (uint64_t)only))
            continue;
        if ((r = transit_export(t, name, v->version, &s, &err)) != 0) {
            api_respond_rk(req, r, &err);
            goto out;
        }
        snprintf(num, sizeof(num), "%" PRIu64, v->version);
        r = json_object_set_new(keys, num, json_stringn((const char *)s->data, s->len));
        secret_free(s);
        if (r != 0) {
            http_respond_error(req, 500, "out of memory");
            goto out;
        }
    }
    if (json_object_size(keys) == 0) {
        http_respond_error(req, 404, NULL);
        goto out;
    }
    respond_data(req, 200,
                 json_pack("{s:s, s:s, s:O}", "name", name, "type", transit_type_name(i->type),
                           "keys", keys));
out:
    json_decref(keys); /* jansson wipes the key texts on free (json_wipe_on_free) */
    transit_info_free(i);
    transit_close(t);
    return 0;
}

const struct route routes_transit[] = {
    {HTTP_GET | HTTP_LIST | HTTP_WRITE | HTTP_DELETE, "/v1/transit/keys/", h_keys,
     ROUTE_PARAM_NAME},
    {HTTP_WRITE, "/v1/transit/sign/", h_sign, ROUTE_PARAM_NAME},
    {HTTP_WRITE, "/v1/transit/verify/", h_verify, ROUTE_PARAM_NAME},
    {HTTP_WRITE, "/v1/transit/encrypt/", h_encrypt, ROUTE_PARAM_NAME},
    {HTTP_WRITE, "/v1/transit/decrypt/", h_decrypt, ROUTE_PARAM_NAME},
    {HTTP_WRITE, "/v1/transit/rewrap/", h_rewrap, ROUTE_PARAM_NAME},
    {HTTP_GET, "/v1/transit/export/", h_export, ROUTE_PARAM_PATH},
};
const size_t routes_transit_count = sizeof(routes_transit) / sizeof(routes_transit[0]);
