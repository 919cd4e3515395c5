#include "util/secret.h"

#include <jansson.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

static int heap_ready;

int
secure_heap_init(void)
{
    if (!heap_ready) {
        /* 1 MiB, minimum block 32: enough for keyrings and the values in flight. */
        if (CRYPTO_secure_malloc_initialized() || CRYPTO_secure_malloc_init(1 << 20, 32) == 1)
            heap_ready = 1;
    }
    return 0;
}

void
process_harden(void)
{
    struct rlimit rl = {0, 0};

    (void)setrlimit(RLIMIT_CORE, &rl);
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

struct secret *
secret_new(size_t len)
{
    struct secret *s = OPENSSL_zalloc(sizeof(*s));

    if (s == NULL)
        return NULL;
    /* The secure heap is small and shared: fall back to the normal heap when it is full. */
    s->data = OPENSSL_secure_zalloc(len + 1);
    if (s->data == NULL)
        s->data = OPENSSL_zalloc(len + 1);
    if (s->data == NULL) {
        OPENSSL_free(s);
        return NULL;
    }
    s->len = len;
    return s;
}

struct secret *
secret_from(const void *buf, size_t len)
{
    struct secret *s = secret_new(len);

    if (s != NULL && len > 0)
        memcpy(s->data, buf, len);
    return s;
}

struct secret *
secret_from_str(const char *str)
{
    return secret_from(str, strlen(str));
}

void
secret_free(struct secret *s)
{
    if (s == NULL)
        return;
    if (s->data != NULL)
        OPENSSL_secure_clear_free(s->data, s->len + 1);
    OPENSSL_free(s);
}

int
secret_equal(const struct secret *a, const struct secret *b)
{
    if (a == NULL || b == NULL || a->len != b->len)
        return 0;
    return CRYPTO_memcmp(a->data, b->data, a->len) == 0;
}

void
secure_wipe(void *p, size_t len)
{
    if (p != NULL && len > 0)
        OPENSSL_cleanse(p, len);
}

void
freezero(void *p, size_t len)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, len);
    free(p);
}

void
free_wiped(void *p)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, malloc_usable_size(p));
        free(p);
    }
}

void *
realloc_wiped(void *p, size_t n)
{
    size_t old;
    void *q;

    if (p == NULL)
        return malloc(n);
    old = malloc_usable_size(p);
    if ((q = malloc(n > 0 ? n : 1)) == NULL)
        return NULL; /* p is left as it was, as realloc does */
    memcpy(q, p, old < n ? old : n);
    free_wiped(p);
    return q;
}

void
json_wipe_on_free(void)
{
    json_set_alloc_funcs(malloc, free_wiped);
}
