/* kvjson.h: the JSON shapes of the KV v2 and rekey routes, as pure functions (no I/O, no
 * store), so they can be unit-tested and fuzzed on their own.
 *
 * Decoders take the request body already parsed by http_request_json (an object) and fill a
 * plain struct; strings and objects they return are borrowed from the body. Unknown fields are
 * ignored, as Vault does. Like Vault's field decoding (mapstructure's weak mode), an integer
 * field also accepts an integral real or a decimal string ("5"), and a boolean field also
 * accepts the strings of Go's strconv.ParseBool ("true", "1", "t", "F", …). Any other type is
 * refused with -RK_EINVAL and a message naming the field, what was expected and what was
 * given, e.g. `invalid "max_versions": expected an integer, got array`. Messages never quote a
 * value from the body (a body may hold secrets).
 *
 * Encoders return a new JSON value (caller owns the reference), or NULL when out of memory.
 * Times are RFC 3339 in UTC with microseconds when not whole ("" for none, as Vault);
 * durations are rendered the way Go's time.Duration prints them ("0s", "1h0m0s"), which is
 * what Vault sends. */
#ifndef REKEY_API_KVJSON_H
#define REKEY_API_KVJSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/rotation.h"
#include "engine/schedule.h"
#include "secrets/kv.h"
#include "util/err.h"
#include "util/secret.h"

#define KVJSON_VERSIONS_MAX 4096 /* versions named in one delete/undelete/destroy request */

/* ---- decoders ---- */

/* POST/PUT/PATCH secret/data/:path — {"data": {…}, "options": {"cas": N, "reason": "…"}}.
 * options.reason is rekey's (kept in the version's metadata; Vault ignores it). */
struct kvjson_write {
    json_t *data;       /* borrowed: the "data" object */
    int64_t cas;        /* -1 when no cas was given */
    const char *reason; /* borrowed, or NULL */
};

/* Returns 0, or -RK_EINVAL: "no data provided" (Vault's message) when "data" is missing or null,
 * a type error when "data" is not an object or "options" not an object, "error parsing
 * check-and-set parameter" (Vault's) for a cas that is not a non-negative integer. */
int kvjson_decode_write(const json_t *body, struct kvjson_write *out, struct rk_error *err);

/* Serialises a data object into a secret (compact JSON text; the temporary text is wiped).
 * Returns 0 with *out owned by the caller (secret_free), -RK_EINVAL (not an object),
 * -RK_ENOMEM. */
int kvjson_data_text(const json_t *data, struct secret **out, struct rk_error *err);

/* Parses a stored data text (kv_get's canonical JSON) back into an object, for a response.
 * Returns 0 with *out (json_decref; the server wipes jansson's blocks when freed), or
 * -RK_ECORRUPT. */
int kvjson_data_parse(const struct secret *text, json_t **out, struct rk_error *err);

/* secret/{delete,undelete,destroy}/:path — {"versions": [1, 2]}. Also accepts, as Vault's
 * comma-int-slice type does, a single integer, a string "1,2", or an array of decimal strings.
 * *versions is malloc'd (free it), *n >= 1. Returns 0, or -RK_EINVAL ("no version number
 * provided" when missing or empty, as Vault; a type error; more than KVJSON_VERSIONS_MAX),
 * -RK_ENOMEM. */
int kvjson_decode_versions(const json_t *body, uint64_t **versions, size_t *n,
                           struct rk_error *err);

/* POST/PUT secret/metadata/:path — max_versions, cas_required, delete_version_after (a
 * duration string such as "768h" or "0s", or an integer of seconds), custom_metadata (an object
 * of string values, at most KV_CUSTOM_MAX_KEYS keys of KV_CUSTOM_KEY_MAX bytes and values of
 * KV_CUSTOM_VALUE_MAX bytes, as Vault's limits). Only the fields present set their has_* flag;
 * custom_metadata is borrowed from body. A null custom_metadata is "not given". Returns 0 or
 * -RK_EINVAL. */
int kvjson_decode_meta_settings(const json_t *body, struct kv_meta_settings *s,
                                struct rk_error *err);

/* The mount configuration (secret/config). */
struct kvjson_config {
    uint32_t max_versions; /* 0 = the engine's default (KV_DEFAULT_MAX_VERSIONS) */
    int cas_required;
    int64_t delete_version_after; /* seconds, 0 = never */
};

/* POST secret/config: the fields present in body replace those in *cfg (so load the stored
 * config first). Returns 0 or -RK_EINVAL (*cfg unchanged on error). */
int kvjson_decode_config(const json_t *body, struct kvjson_config *cfg, struct rk_error *err);

/* The config as stored in the barrier: {"max_versions":N,"cas_required":b,
 * "delete_version_after":secs}. kvjson_config_load accepts text[0..len) (not NUL-terminated)
 * and returns 0 or -RK_ECORRUPT; kvjson_config_dump returns a malloc'd string or NULL. */
int kvjson_config_load(const char *text, size_t len, struct kvjson_config *cfg,
                       struct rk_error *err);
char *kvjson_config_dump(const struct kvjson_config *cfg);

/* POST rekey/rotate/:path — {"reason": "…", "dry_run": bool}. *reason is borrowed or NULL.
 * Returns 0 or -RK_EINVAL (wrong types, reason longer than KV_REASON_MAX-1 bytes). */
int kvjson_decode_rotate(const json_t *body, const char **reason, int *dry_run,
                         struct rk_error *err);

/* POST rekey/rollback/:path — {"to_version": N (0 or absent = the previous version),
 * "reason": "…", "dry_run": bool}. Returns 0 or -RK_EINVAL. */
int kvjson_decode_rollback(const json_t *body, uint64_t *to_version, const char **reason,
                           int *dry_run, struct rk_error *err);

/* Parses a ?version= query value (NULL or "" = 0, the current version): a decimal integer
 * >= 0. Returns 0 or -RK_EINVAL. */
int kvjson_parse_version_query(const char *q, uint64_t *version, struct rk_error *err);

/* ---- encoders ---- */

/* Formats secs as Go's time.Duration.String() for whole seconds: "0s", "45s", "1m30s",
 * "1h0m0s", "2160h0m0s" into out (>= 32 bytes). Negative values get a leading '-'. */
void kvjson_duration_go(int64_t secs, char *out, size_t outlen);

/* Parses a duration as Vault does for delete_version_after: a JSON integer of seconds, or a
 * string: a number of seconds ("3600") or units h, m, s (and rekey's d, w), also Go's
 * multi-unit form ("1h0m0s"). Returns 0 or -RK_EINVAL. */
int kvjson_duration_value(const json_t *v, const char *field, int64_t *secs, struct rk_error *err);

/* The whole body of a 200 answer to GET secret/data/:path, as text, in one buffer: the
 * envelope (api_envelope_head and _tail of api/envelope.h) around {"data": <text>, "metadata":
 * <kvjson_version_meta>}, the same bytes json_dumps would give for those values (compact, in
 * that key order). text is kv's canonical JSON object text and is spliced as it is (it was encoded
 * by jansson when written and is authenticated by the barrier; parsing it again to print it again
 * is most of a read's JSON cost). Returns a malloc'd NUL-terminated buffer of *len bytes, holding
 * the secret: the caller wipes it (freezero(buf, *len + 1)); or NULL when out of memory or when
 * text does not look like an object (the caller answers 500 / falls back). */
char *kvjson_read_response(const struct secret *text, const struct kv_version_meta *vm,
                           const json_t *custom, size_t *len);

/* The metadata object of a data read or write: {"created_time", "custom_metadata" (null when
 * the map is empty or custom is NULL, as Vault), "deletion_time" ("" when not deleted),
 * "destroyed", "version"}. */
json_t *kvjson_version_meta(const struct kv_version_meta *vm, const json_t *custom);

/* The data of GET secret/metadata/:path: cas_required, created_time, current_version (= Vault's
 * meaning: meta->latest_version), custom_metadata (null when empty), delete_version_after (Go
 * duration), max_versions, oldest_version, updated_time, versions {"N": {created_time,
 * deletion_time, destroyed}}. rekey adds, and Vault clients ignore: "current_stage_version"
 * (the version reads return) and per version "stage" and "fingerprint". */
json_t *kvjson_metadata(const struct kv_meta *m);

/* {"keys": [names…]} from a NULL-terminated array. */
json_t *kvjson_keys(char *const *names);

/* The data of GET secret/config: {"cas_required", "delete_version_after", "max_versions"}. */
json_t *kvjson_config_encode(const struct kvjson_config *cfg);

/* One secret's status, the shape of `rekey status --json`: {"path", "kind", "version",
 * "fingerprint" (or null), "last_rotated" (or null), "next_due" (or null), "state", "auto",
 * "detail", "needs_input"}. needs_input: the next rotation needs a value from a person (the
 * entry's rotator flags, rotator_flags), never while a candidate is pending (a rotation takes it
 * up again); a client prompts only when it is true. */
json_t *kvjson_status(const struct secret_status *st);

/* One history event: {"time", "op", "result", "from_version", "to_version", "author",
 * "reason", "message", "duration_ms"}. */
json_t *kvjson_event(const struct rot_event *ev);

/* The outcome of a rotation or rollback: {"path", "old_version", "new_version",
 * "old_fingerprint", "new_fingerprint", "rolled_back", "message"}. */
json_t *kvjson_rotate_result(const char *path, const struct rotate_result *res);

#endif
