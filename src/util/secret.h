/* secret.h: secret byte strings kept in OpenSSL's secure heap and wiped when freed. */
#ifndef REKEY_SECRET_H
#define REKEY_SECRET_H

#include <stddef.h>

struct secret {
    unsigned char *data; /* NUL-terminated for convenience (data[len] == 0) */
    size_t len;
};

/* Initialises OpenSSL's secure heap (mlocked). Safe to call more than once; failure to obtain
 * the heap (e.g. no mlock rights) falls back to the normal heap with cleansing. Returns 0. */
int secure_heap_init(void);

/* Disables core dumps and ptrace attach for this process (PR_SET_DUMPABLE 0, RLIMIT_CORE 0). */
void process_harden(void);

/* Returns a new zeroed secret of len bytes, or NULL on allocation failure. */
struct secret *secret_new(size_t len);

/* Returns a copy of buf[0..len) as a secret, or NULL. */
struct secret *secret_from(const void *buf, size_t len);

/* Returns a copy of the NUL-terminated string s as a secret, or NULL. */
struct secret *secret_from_str(const char *s);

/* Wipes and frees s; accepts NULL. */
void secret_free(struct secret *s);

/* Constant-time equality of two secrets (lengths are compared first, not in constant time). */
int secret_equal(const struct secret *a, const struct secret *b);

/* Wipes len bytes at p (OPENSSL_cleanse). */
void secure_wipe(void *p, size_t len);

/* free() after wiping len bytes; accepts NULL. */
void freezero(void *p, size_t len);

/* free() after wiping the whole malloc block at p (malloc_usable_size); accepts NULL. For
 * allocators handed to libraries whose blocks may hold secrets. */
void free_wiped(void *p);

/* realloc() that wipes the block it leaves behind. */
void *realloc_wiped(void *p, size_t n);

/* Makes jansson wipe every block it frees (its values may hold secrets). Blocks stay ordinary
 * malloc blocks, so a string from json_dumps may still be released with free or freezero. */
void json_wipe_on_free(void);

#endif
