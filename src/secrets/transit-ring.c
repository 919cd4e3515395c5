/* transit-ring.c: a transit keyring's policy record, parsed and encoded (see transit.h for the
 * record; transit-int.h for the structures). Memory only: no storage, no cryptography. */
#include "secrets/transit-int.h"

#include <inttypes.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "util/parse.h"
#include "util/timeutil.h"

static const char *const vstate_names[] = {"active", "pending", "failed"};

void
ring_free(struct tk_ring *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nv; i++) {
        free(r->v[i].pub);
        EVP_PKEY_free(r->v[i].pubkey);
        EVP_PKEY_free(r->v[i].privkey);
        secret_free(r->v[i].aes);
    }
    free(r->v);
    free(r->name);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void
ring_unref(struct tk_ring *r)
{
    if (r != NULL && atomic_fetch_sub(&r->refs, 1) == 1)
        ring_free(r);
}

struct tk_ring *
ring_new(const char *name)
{
    struct tk_ring *r = calloc(1, sizeof(*r));

    if (r == NULL || (r->name = strdup(name)) == NULL) {
        free(r);
        return NULL;
    }
    atomic_init(&r->refs, 1);
    pthread_mutex_init(&r->mu, NULL);
    r->min_dec = 1;
    return r;
}

struct tk_ver *
ring_find(const struct tk_ring *r, uint64_t version)
{
    size_t lo = 0, hi = r->nv;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->v[mid].version == version)
            return &r->v[mid];
        if (r->v[mid].version < version)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static uint64_t
ring_next_version(const struct tk_ring *r)
{
    return r->nv > 0 ? r->v[r->nv - 1].version + 1 : 1;
}

/* Parses a policy record. */
int
ring_parse(const char *name, const struct secret *text, struct tk_ring **out, struct rk_error *err)
{
    json_error_t jerr;
    json_t *j = json_loadb((const char *)text->data, text->len, 0, &jerr), *vs, *v;
    struct tk_ring *r = NULL;
    const char *type = NULL;
    json_int_t latest = 0, mind = 1, mine = 0, period = 0;
    int del = 0, exp = 0, rc = -RK_ECORRUPT;
    size_t i;

    *out = NULL;
    if (j == NULL ||
        json_unpack(j, "{s:s, s:I, s:I, s:I, s:b, s:b, s:I, s:o}", "type", &type, "latest_version",
                    &latest, "min_decryption_version", &mind, "min_encryption_version", &mine,
                    "deletion_allowed", &del, "exportable", &exp, "auto_rotate_period", &period,
                    "versions", &vs) != 0 ||
        !json_is_array(vs))
        goto bad;
    if ((r = ring_new(name)) == NULL) {
        rc = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    if (transit_type_parse(type, &r->type) != 0 || latest < 0 || mind < 1 || mine < 0 || period < 0)
        goto bad;
    r->latest = (uint64_t)latest;
    r->min_dec = (uint64_t)mind;
    r->min_enc = (uint64_t)mine;
    r->deletion_allowed = del;
    r->exportable = exp;
    r->auto_rotate_period = period;
    if ((r->v = calloc(json_array_size(vs) + 1, sizeof(*r->v))) == NULL) {
        rc = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    json_array_foreach(vs, i, v)
    {
        struct tk_ver *tv = &r->v[r->nv];
        json_int_t ver = 0, created = 0;
        const char *state = NULL, *pub = NULL;
        if (json_unpack(v, "{s:I, s:I, s:s, s?s}", "version", &ver, "created_us", &created, "state",
                        &state, "public_key", &pub) != 0 ||
            ver <= 0 || (r->nv > 0 && (uint64_t)ver <= r->v[r->nv - 1].version))
            goto bad;
        tv->version = (uint64_t)ver;
        tv->created_us = created;
        tv->state = TRANSIT_V_FAILED + 1;
        for (unsigned s = 0; s < 3; s++)
            if (strcmp(state, vstate_names[s]) == 0)
                tv->state = (enum transit_vstate)s;
        if (tv->state > TRANSIT_V_FAILED)
            goto bad;
        r->nv++;
        if (pub != NULL && (tv->pub = base64_decode(pub, strlen(pub), &tv->publen)) == NULL)
            goto bad;
        if (pub == NULL && transit_type_signs(r->type))
            goto bad;
    }
    *out = r;
    r = NULL;
    rc = 0;
    goto out;
bad:
    rc = rk_error_set(err, RK_ECORRUPT, "the transit key %s does not parse", name);
out:
    ring_free(r);
    json_decref(j);
    return rc;
}

char *
ring_encode(const struct tk_ring *r)
{
    json_t *vs = json_array(), *j;
    char *text;

    if (vs == NULL)
        return NULL;
    for (size_t i = 0; i < r->nv; i++) {
        const struct tk_ver *v = &r->v[i];
        json_t *o = json_pack("{s:I, s:I, s:s}", "version", (json_int_t)v->version, "created_us",
                              (json_int_t)v->created_us, "state", vstate_names[v->state]);
        if (o != NULL && v->pub != NULL) {
            char *b = base64_encode(v->pub, v->publen);
            if (b == NULL || json_object_set_new(o, "public_key", json_string(b)) != 0) {
                json_decref(o);
                o = NULL;
            }
            free(b);
        }
        if (o == NULL || json_array_append_new(vs, o) != 0) {
            json_decref(vs);
            return NULL;
        }
    }
    j = json_pack("{s:s, s:I, s:I, s:I, s:b, s:b, s:I, s:o}", "type", transit_type_name(r->type),
                  "latest_version", (json_int_t)r->latest, "min_decryption_version",
                  (json_int_t)r->min_dec, "min_encryption_version", (json_int_t)r->min_enc,
                  "deletion_allowed", r->deletion_allowed, "exportable", r->exportable,
                  "auto_rotate_period", (json_int_t)r->auto_rotate_period, "versions", vs);
    if (j == NULL)
        return NULL;
    text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return text;
}

/* Appends a version of key to r (memory only). */
int
ring_append(struct tk_ring *r, const struct transit_newkey *key, enum transit_vstate state,
            uint64_t *version, struct rk_error *err)
{
    struct tk_ver *nv, *v;

    if (key->type != r->type)
        return rk_error_set(err, RK_EINVAL, "the new key is %s, key %s is %s",
                            transit_type_name(key->type), r->name, transit_type_name(r->type));
    if (r->nv >= TRANSIT_MAX_VERSIONS)
        return rk_error_set(err, RK_ELIMIT, "key %s has %d versions already", r->name,
                            TRANSIT_MAX_VERSIONS);
    if ((nv = realloc(r->v, (r->nv + 1) * sizeof(*nv))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    r->v = nv;
    v = &r->v[r->nv];
    memset(v, 0, sizeof(*v));
    v->version = ring_next_version(r);
    v->created_us = time_now_us();
    v->state = state;
    if (key->pub != NULL) {
        if ((v->pub = malloc(key->publen)) == NULL)
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        memcpy(v->pub, key->pub, key->publen);
        v->publen = key->publen;
    }
    r->nv++;
    if (state == TRANSIT_V_ACTIVE)
        r->latest = v->version;
    *version = v->version;
    return 0;
}
