/* barrier.h: the encryption barrier. Every value that passes through it is sealed with
 * AES-256-GCM under the active data key, a fresh 96-bit nonce, and the storage key as
 * associated data. The data keys form a keyring stored at "core/keyring", itself sealed by the
 * root key. Keys under "core/" that the barrier owns are not reachable through barrier_get.
 * The barrier also keeps the store's fingerprint key ("core/fpkey", util/enc.h): made at init
 * (or at the first unseal of an older store that can write), loaded at unseal, unchanged by
 * keyring rotation, so a value's fingerprint is the same for the life of the store.
 *
 * Value format (version 1): 0x01 | term (u32 big-endian) | nonce (12) | ciphertext | tag (16).
 * The keyring format has its own version; a store written by a newer format is refused with
 * -RK_EVERSION before anything is written. */
#ifndef REKEY_BARRIER_H
#define REKEY_BARRIER_H

#include <stddef.h>
#include <stdint.h>

#include "util/enc.h"
#include "util/err.h"
#include "util/secret.h"
#include "store/backend.h"

#define ROOT_KEY_LEN 32
#define BARRIER_FORMAT_VERSION 1

struct barrier;

/* Wraps an open backend (not owned: close it after barrier_free). The barrier starts sealed.
 * Returns 0, or -RK_EVERSION if the store was written by a newer format, -RK_ECORRUPT if its
 * format record does not parse, -RK_EIO. */
int barrier_open(struct backend *b, struct barrier **out, struct rk_error *err);

/* Wipes the keyring and frees; accepts NULL. */
void barrier_free(struct barrier *br);

/* 1 if the store has a keyring (operator init was run), else 0. */
int barrier_initialized(struct barrier *br);

/* Creates the first data key, seals the keyring with root_key (ROOT_KEY_LEN bytes), writes the
 * format record and the seal configuration (an opaque JSON string, e.g. shares and threshold),
 * and leaves the barrier unsealed. -RK_EEXISTS if already initialised. */
int barrier_init(struct barrier *br, const struct secret *root_key, const char *seal_config,
                 struct rk_error *err);

/* The seal configuration written at init, malloc'd (caller frees), or NULL if not initialised. */
char *barrier_seal_config(struct barrier *br);

/* Opens the keyring with root_key and loads the fingerprint key, making and storing one when the
 * store has none (a store from before keyed fingerprints; when that write fails the barrier
 * unseals all the same, without one). Returns 0, -RK_EBADKEY (wrong key: nothing changes),
 * -RK_ECORRUPT (also a damaged fingerprint key record), -RK_EVERSION, -RK_EIO. */
int barrier_unseal(struct barrier *br, const struct secret *root_key, struct rk_error *err);

/* Wipes the keyring from memory. */
void barrier_seal(struct barrier *br);

/* 1 when sealed. */
int barrier_sealed(struct barrier *br);

/* Adds a new data key and makes it active for new writes; old entries stay readable under their
 * term, and the fingerprint key is untouched. *term (may be NULL) gets the new term. Returns 0,
 * -RK_ESEALED, -RK_EIO. */
int barrier_rotate_keyring(struct barrier *br, uint32_t *term, struct rk_error *err);

/* A new reference to the store's fingerprint key (release it with fp_key_unref; it stays usable
 * after a seal, so take one per operation), or NULL when sealed or when the store has none. */
struct fp_key *barrier_fp_key(struct barrier *br);

/* 1 once after an unseal that made the fingerprint key for a store that had none (made before
 * keyed fingerprints, or its key record lost): the fingerprints stored so far are not this
 * key's (secrets/kv.h kv_fingerprints_migrate). Later calls, and after any other unseal, 0. */
int barrier_fp_key_take_new(struct barrier *br);

/* The store's fingerprint of data[0..len) into out (util/enc.h fingerprint). Returns 0, or as
 * barrier_no_fp_key; out is "" on failure. */
int barrier_fingerprint(struct barrier *br, const void *data, size_t len,
                        char out[FINGERPRINT_LEN + 1], struct rk_error *err);

/* The error for a NULL barrier_fp_key: -RK_ESEALED when sealed, else -RK_EIO (the store has no
 * fingerprint key: unsealed without write access). */
int barrier_no_fp_key(struct barrier *br, struct rk_error *err);

/* Bytes of the audit salt. */
#define AUDIT_SALT_LEN 32

/* The store's audit salt, the key of the audit log's HMACs (audit/audit.h), into *out
 * (AUDIT_SALT_LEN bytes; secret_free): read from "core/auditsalt", or on first use made and
 * stored (compared absent, so two processes agree on one). A record of its own, apart from the
 * fingerprint key, unchanged by keyring rotation. Returns 0, -RK_ESEALED, -RK_ECORRUPT,
 * -RK_EVERSION, -RK_ENOMEM, -RK_EIO (also: absent and the store cannot be written). */
int barrier_audit_salt(struct barrier *br, struct secret **out, struct rk_error *err);

/* The backend under the barrier (borrowed), e.g. for backend_trim. */
struct backend *barrier_backend(struct barrier *br);

/* The active term and the number of data keys (for status output). */
void barrier_keyring_info(struct barrier *br, uint32_t *active_term, size_t *nkeys);

/* Reads and decrypts key. *val is a secret (caller frees with secret_free); *mod_rev may be NULL.
 * Returns 0, -RK_ENOTFOUND, -RK_ESEALED, -RK_ECORRUPT (authentication failed), -RK_EIO. */
int barrier_get(struct barrier *br, const char *key, struct secret **val, int64_t *mod_rev,
                struct rk_error *err);

/* Lists keys under prefix (see backend list); values are not decrypted (val is NULL). */
int barrier_list(struct barrier *br, const char *prefix, const char *start_after, size_t limit,
                 store_list_cb cb, void *arg, struct rk_error *err);

/* Lists the keys under prefix (not "" nor under core/) with their values decrypted: cb gets each
 * value as a secret it borrows (wiped after cb returns); cb returns 0 to go on, > 0 to stop, < 0
 * an error that is returned. One pass of the backend, no read per key (a restart's reload).
 * Returns 0, -RK_EINVAL, -RK_ESEALED, -RK_ECORRUPT, -RK_EIO, or cb's error. */
typedef int (*barrier_value_cb)(void *arg, const char *key, const struct secret *val,
                                int64_t mod_rev);
int barrier_list_values(struct barrier *br, const char *prefix, barrier_value_cb cb, void *arg,
                        struct rk_error *err);

/* A transaction under construction: compares and plaintext writes, encrypted at commit. */
struct barrier_txn;

struct barrier_txn *barrier_txn_new(struct barrier *br);

/* Adds a compare (see struct store_cmp). Returns 0 or -RK_ENOMEM. */
int barrier_txn_cmp(struct barrier_txn *t, const char *key, int64_t mod_rev);

/* Adds an encrypted put (the plaintext is copied and wiped later) or a delete. 0 or -RK_ENOMEM. */
int barrier_txn_put(struct barrier_txn *t, const char *key, const void *val, size_t vlen);
int barrier_txn_del(struct barrier_txn *t, const char *key);

/* Number of operations added so far. */
size_t barrier_txn_count(const struct barrier_txn *t);

/* Encrypts and commits atomically. Returns 0 (*rev may be NULL), -RK_ECONFLICT, -RK_ESEALED,
 * -RK_EIO. The transaction is not freed. */
int barrier_txn_commit(struct barrier_txn *t, int64_t *rev, struct rk_error *err);

/* Wipes and frees; accepts NULL. */
void barrier_txn_free(struct barrier_txn *t);

/* Shorthands for one-key transactions. */
int barrier_put(struct barrier *br, const char *key, const void *val, size_t vlen,
                struct rk_error *err);
int barrier_del(struct barrier *br, const char *key, struct rk_error *err);

#endif
