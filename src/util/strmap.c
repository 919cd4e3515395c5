/* strmap.c: see strmap.h. The table's size is a power of two, at most 3/4 full. */
#include "util/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/enc.h"

struct slot {
    const char *key; /* NULL: empty */
    uint64_t hash;
    size_t val;
};

struct strmap {
    struct slot *t;
    size_t cap, n; /* cap: 0 or a power of two */
};

static uint64_t
hash_of(const char *key)
{
    size_t len;

    return str_hash(key, SIZE_MAX - 1, &len);
}

int
strmap_new(struct strmap **out)
{
    *out = calloc(1, sizeof(**out));
    return *out != NULL ? 0 : -RK_ENOMEM;
}

void
strmap_free(struct strmap *m)
{
    if (m == NULL)
        return;
    free(m->t);
    free(m);
}

size_t
strmap_size(const struct strmap *m)
{
    return m->n;
}

/* The slot holding key, or the empty slot where it would go. cap must be > 0. */
static size_t
find(const struct strmap *m, const char *key, uint64_t h)
{
    size_t mask = m->cap - 1, i = (size_t)h & mask;

    while (m->t[i].key != NULL && !(m->t[i].hash == h && strcmp(m->t[i].key, key) == 0))
        i = (i + 1) & mask;
    return i;
}

static int
grow(struct strmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    struct slot *old = m->t, *nt;
    size_t ocap = m->cap;

    if (ncap < m->cap || ncap > SIZE_MAX / sizeof(*nt) || (nt = calloc(ncap, sizeof(*nt))) == NULL)
        return -RK_ENOMEM;
    m->t = nt;
    m->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].key != NULL)
            m->t[find(m, old[i].key, old[i].hash)] = old[i];
    free(old);
    return 0;
}

int
strmap_get(const struct strmap *m, const char *key, size_t *val)
{
    size_t i;

    if (m->n == 0)
        return -RK_ENOTFOUND;
    i = find(m, key, hash_of(key));
    if (m->t[i].key == NULL)
        return -RK_ENOTFOUND;
    *val = m->t[i].val;
    return 0;
}

int
strmap_put(struct strmap *m, const char *key, size_t val)
{
    uint64_t h = hash_of(key);
    size_t i;

    if ((m->n + 1) * 4 > m->cap * 3 && grow(m) != 0)
        return -RK_ENOMEM;
    i = find(m, key, h);
    if (m->t[i].key == NULL)
        m->n++;
    m->t[i] = (struct slot){key, h, val};
    return 0;
}

int
strmap_del(struct strmap *m, const char *key)
{
    size_t mask, i, j;

    if (m->n == 0)
        return -RK_ENOTFOUND;
    mask = m->cap - 1;
    i = find(m, key, hash_of(key));
    if (m->t[i].key == NULL)
        return -RK_ENOTFOUND;
    /* Backward shift: move later members of the run into the hole when their home slot is not
     * between the hole and them (cyclically), so no tombstones are needed. */
    for (j = (i + 1) & mask; m->t[j].key != NULL; j = (j + 1) & mask) {
        size_t home = (size_t)m->t[j].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->t[i] = m->t[j];
            i = j;
        }
    }
    m->t[i].key = NULL;
    m->n--;
    return 0;
}
