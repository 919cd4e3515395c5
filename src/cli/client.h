/* client.h: the CLI's client mode, a small libcurl client for a running `rekey server`.
 *
 * When REKEY_ADDR (or VAULT_ADDR) is set, the commands that support it act through the server's
 * HTTP API instead of a local store. The token comes from REKEY_TOKEN, else VAULT_TOKEN, else the
 * file ~/.vault-token (as the vault CLI does); it only ever travels in the X-Vault-Token header,
 * never on a command line or in a URL. TLS is verified; REKEY_CACERT / VAULT_CACERT (a PEM file)
 * and REKEY_CAPATH / VAULT_CAPATH (a directory) name the CAs, REKEY_SKIP_VERIFY /
 * VAULT_SKIP_VERIFY turns verification off. REKEY_CLIENT_TIMEOUT / VAULT_CLIENT_TIMEOUT (seconds,
 * default 60) bounds a request; rotations get at least ROTATION_TIMEOUT_S, since the server
 * answers only once the hooks have run. Redirects are not followed (the token would go along). */
#ifndef REKEY_CLI_CLIENT_H
#define REKEY_CLI_CLIENT_H

#include <jansson.h>

#include "util/err.h"
#include "util/secret.h"

#define CLIENT_DEFAULT_TIMEOUT_S 60
#define CLIENT_ROTATION_TIMEOUT_S 900
#define CLIENT_RESPONSE_MAX (16 * 1024 * 1024)

struct rk_client;

/* The server address from REKEY_ADDR, else VAULT_ADDR, or NULL when neither is set (or both are
 * empty): the CLI then works on a local store. */
const char *client_addr_env(void);

/* Creates a client for client_addr_env() with the token, CA and timeout settings of the
 * environment. A missing token is not an error here (sys/init, sys/unseal need none); requests
 * that need one are answered "permission denied" by the server. Returns 0, -RK_EINVAL (no
 * address, or not http:// or https://), -RK_ENOMEM; *out is freed with client_free. */
int client_open(struct rk_client **out, struct rk_error *err);

/* Frees c and wipes its token; accepts NULL. */
void client_free(struct rk_client *c);

/* The base address, without a trailing '/' ("http://127.0.0.1:8200"). */
const char *client_addr(const struct rk_client *c);

/* Raises the request timeout of c to at least secs (for rotations that wait for hooks). */
void client_min_timeout(struct rk_client *c, long secs);

/* Sends METHOD (GET, PUT, POST, LIST, DELETE) to path (from "/v1/…", already encoded with
 * client_path_escape where it holds a secret path) with body as JSON (NULL: no body). Returns 0
 * for a 2xx answer, else a negative RK_E* matching the HTTP status (400 -RK_EINVAL,
 * 403 -RK_EPERM, 404 -RK_ENOTFOUND, 409 -RK_EBUSY, 413 -RK_ELIMIT, 429 -RK_EBUSY,
 * 501 -RK_ENOTIMPL, 502 -RK_EHOOK, 503 -RK_ESEALED, 504 -RK_ETIMEOUT, other -RK_EIO) with the
 * server's {"errors":[…]} as the message, or -RK_EIO when the server cannot be reached
 * ("cannot reach rekey at ADDR: …"). *resp (may be NULL) gets the parsed answer when it is JSON
 * (also on an HTTP error; NULL for an empty body); the caller json_decrefs it. *status (may be
 * NULL) gets the HTTP status, 0 when no answer came. The request and answer buffers are wiped. */
int client_request(struct rk_client *c, const char *method, const char *path, json_t *body,
                   long *status, json_t **resp, struct rk_error *err);

/* Appends path (a secret path, '/' kept) percent-encoded to buf at *len (buf has cap bytes):
 * everything but ALPHA DIGIT - . _ ~ / is encoded. Returns 0 or -RK_ELIMIT. */
int client_path_escape(const char *path, char *buf, size_t cap, size_t *len);

/* Maps a KV path of the CLI ("secret/foo/bar") to the part after the mount ("foo/bar").
 * The server has one KV v2 mount, "secret"; any other first segment answers -RK_EINVAL with a
 * message. list: "secret" alone is allowed (the mount's root, *rest = ""). */
int client_kv_subpath(const char *path, int list, const char **rest, struct rk_error *err);

/* The "data" member of a Vault envelope (borrowed), or NULL. */
json_t *client_data(json_t *resp);

struct kv_meta;
struct kv_version_meta;

/* GET /v1/secret/metadata/<path after secret/> as a struct kv_meta, versions ascending (rekey's
 * "stage", "fingerprint" and, when the server sends them, "author" and "reason" included).
 * Returns 0 with *out (kv_meta_free), or a negative RK_E* (-RK_ENOTFOUND: no such secret). */
int client_kv_metadata(struct rk_client *c, const char *path, struct kv_meta **out,
                       struct rk_error *err);

/* Fills vm from the metadata object of a KV data read or write ({"created_time",
 * "deletion_time", "destroyed", "version"}), then its stage, fingerprint, author and reason from
 * m's entry for that version when m has one. */
void client_version_meta(const json_t *md, const struct kv_meta *m, struct kv_version_meta *vm);

/* POST /v1/rekey/<route>[/<path>] (rotate, rollback, revoke, recover, done) with body (may be
 * NULL), allowing CLIENT_ROTATION_TIMEOUT_S. Returns as client_request; *data (may be NULL) gets
 * the answer's "data" (a new reference, or NULL), also when the rotation failed: it then holds
 * the steps taken and the result. */
int client_rekey_post(struct rk_client *c, const char *route, const char *path, json_t *body,
                      json_t **data, struct rk_error *err);

/* Prints the "steps" of a rotation answer as the local command's progress lines. */
void client_print_steps(const json_t *data);

/* Parses an RFC 3339 time of an answer ("" or null: 0) into microseconds. */
int64_t client_time_us(const json_t *v);

#endif
