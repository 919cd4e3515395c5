/* barrier-json.h: records behind the barrier that hold one JSON object (the database engine's
 * configs, roles and static roles). Their text may hold a secret (a password): it is read into
 * and written from the secure heap or wiped. */
#ifndef REKEY_STORE_BARRIER_JSON_H
#define REKEY_STORE_BARRIER_JSON_H

#include <jansson.h>

#include "store/barrier.h"

/* Reads key and parses it into *out (a new reference to an object). Returns 0, the errors of
 * barrier_get (-RK_ENOTFOUND when there is no such record), or -RK_ECORRUPT when the record is
 * not one JSON object (err names the key, never its text). */
int barrier_get_json(struct barrier *br, const char *key, json_t **out, struct rk_error *err);

/* Writes j as compact JSON at key (the text wiped after). Returns 0, -RK_ENOMEM or the errors of
 * barrier_put. */
int barrier_put_json(struct barrier *br, const char *key, const json_t *j, struct rk_error *err);

#endif
