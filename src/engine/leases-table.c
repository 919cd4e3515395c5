/* leases-table.c: the lease manager's in-memory table (leases-int.h; the layout: leases.c). */
#include "engine/leases-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- interned strings ---- */

uint32_t
lt_itab_find(const struct itab *t, const char *s)
{
    if (t->nb == 0)
        return NONE;
    for (uint32_t k = t->buckets[lt_hash(s) & (t->nb - 1)]; k != NONE; k = t->v[k].next)
        if (strcmp(t->v[k].s, s) == 0)
            return k;
    return NONE;
}

/* Interns s (a reference taken). Returns its index or NONE (out of memory). */
uint32_t
lt_itab_ref(struct itab *t, const char *s)
{
    uint32_t k = lt_itab_find(t, s), b;

    if (k != NONE) {
        t->v[k].refs++;
        return k;
    }
    if (t->nb == 0 || t->n - t->nfree >= t->nb) {
        uint32_t nb = t->nb ? t->nb * 2 : 64, *nbk = malloc(nb * sizeof(*nbk));
        if (nbk == NULL)
            return NONE;
        memset(nbk, 0xff, nb * sizeof(*nbk));
        for (uint32_t i = 0; i < t->n; i++)
            if (t->v[i].s != NULL) {
                b = lt_hash(t->v[i].s) & (nb - 1);
                t->v[i].next = nbk[b];
                nbk[b] = i;
            }
        free(t->buckets);
        t->buckets = nbk;
        t->nb = nb;
    }
    if (t->nfree > 0) {
        k = t->freev[--t->nfree];
    } else {
        if (t->n == t->cap) {
            uint32_t cap = t->cap ? t->cap * 2 : 64;
            struct istr *nv = realloc(t->v, cap * sizeof(*nv));
            uint32_t *nf;
            if (nv == NULL)
                return NONE;
            t->v = nv;
            if ((nf = realloc(t->freev, cap * sizeof(*nf))) == NULL)
                return NONE;
            t->freev = nf;
            t->cap = cap;
        }
        k = t->n++;
    }
    if ((t->v[k].s = strdup(s)) == NULL) {
        t->freev[t->nfree++] = k;
        return NONE;
    }
    t->v[k].refs = 1;
    b = lt_hash(s) & (t->nb - 1);
    t->v[k].next = t->buckets[b];
    t->buckets[b] = k;
    return k;
}

void
lt_itab_unref(struct itab *t, uint32_t k)
{
    uint32_t *pp;

    if (k == NONE || --t->v[k].refs > 0)
        return;
    for (pp = &t->buckets[lt_hash(t->v[k].s) & (t->nb - 1)]; *pp != NONE; pp = &t->v[*pp].next)
        if (*pp == k) {
            *pp = t->v[k].next;
            break;
        }
    free(t->v[k].s);
    t->v[k].s = NULL;
    t->freev[t->nfree++] = k;
}

void
lt_itab_free(struct itab *t)
{
    for (uint32_t i = 0; i < t->n; i++)
        free(t->v[i].s);
    free(t->v);
    free(t->freev);
    free(t->buckets);
}

/* The class of id (its prefix before the last '/'), db and role: "prefix<SEP>db<SEP>role". */
int
lt_cls_key(const char *id, const char *db, const char *role, char *out, size_t len)
{
    const char *slash = strrchr(id, '/');
    int n;

    if (slash == NULL || strchr(id, SEP) != NULL || strchr(db, SEP) != NULL ||
        strchr(role, SEP) != NULL || strlen(slash + 1) == 0 || strlen(slash + 1) >= TAIL_MAX)
        return -RK_EINVAL;
    n = snprintf(out, len, "%.*s%c%s%c%s", (int)(slash - id), id, SEP, db, SEP, role);
    return n > 0 && (size_t)n < len ? 0 : -RK_EINVAL;
}

/* The id of slot k into out (LEASE_ID_MAX + 1 bytes). */
void
lt_id(const struct leases *m, uint32_t k, char *out)
{
    const char *c = m->cls.v[m->v[k].cls].s, *sep = strchr(c, SEP);

    snprintf(out, LEASE_ID_MAX + 1, "%.*s/%s", (int)(sep - c), c, m->v[k].tail);
}

/* What memory holds of slot k (no username, no last_error). */
void
lt_fill(const struct leases *m, uint32_t k, struct lease_info *i)
{
    const struct lease *l = &m->v[k];
    const char *c = m->cls.v[l->cls].s, *s1 = strchr(c, SEP), *s2 = strchr(s1 + 1, SEP);

    memset(i, 0, sizeof(*i));
    lt_id(m, k, i->id);
    snprintf(i->db, sizeof(i->db), "%.*s", (int)(s2 - s1 - 1), s1 + 1);
    snprintf(i->role, sizeof(i->role), "%s", s2 + 1);
    if (l->acc != NONE)
        snprintf(i->accessor, sizeof(i->accessor), "%s", m->acc.v[l->acc].s);
    i->issued = absol(l->issued);
    i->expires = absol(l->expires);
    i->max_expires = absol(l->max_expires);
    i->last_renewal = absol(l->renewed);
    i->failures = l->failures;
    i->irrevocable = (l->flags & F_IRREVOCABLE) != 0;
    i->pending = (l->flags & F_PENDING) != 0;
}

/* ---- the table ---- */

uint32_t
lt_find(const struct leases *m, const char *id)
{
    const char *slash = strrchr(id, '/');
    size_t plen;

    if (slash == NULL || strlen(slash + 1) >= TAIL_MAX)
        return NONE;
    plen = (size_t)(slash - id);
    for (uint32_t k = m->buckets[lt_hash(slash + 1) & (m->nbuckets - 1)]; k != NONE;
         k = m->v[k].next) {
        const char *c = m->cls.v[m->v[k].cls].s;
        if (strcmp(m->v[k].tail, slash + 1) == 0 && strncmp(c, id, plen) == 0 && c[plen] == SEP)
            return k;
    }
    return NONE;
}

static int
grow_buckets(struct leases *m)
{
    uint32_t nb = m->nbuckets * 2, *b = malloc(nb * sizeof(*b));

    if (b == NULL)
        return -RK_ENOMEM;
    memset(b, 0xff, nb * sizeof(*b));
    for (uint32_t i = 0; i < m->nbuckets; i++)
        for (uint32_t k = m->buckets[i], nx; k != NONE; k = nx) {
            size_t h = lt_hash(m->v[k].tail) & (nb - 1);
            nx = m->v[k].next;
            m->v[k].next = b[h];
            b[h] = k;
        }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
    return 0;
}

/* ---- the heap (of slot indexes, by due) ---- */

static void
heap_set(struct leases *m, uint32_t pos, uint32_t k)
{
    m->heap[pos] = k;
    m->v[k].hpos = pos;
}

static void
heap_up(struct leases *m, uint32_t pos)
{
    uint32_t k = m->heap[pos];

    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (m->v[m->heap[parent]].due <= m->v[k].due)
            break;
        heap_set(m, pos, m->heap[parent]);
        pos = parent;
    }
    heap_set(m, pos, k);
}

static void
heap_down(struct leases *m, uint32_t pos)
{
    uint32_t k = m->heap[pos];

    for (;;) {
        uint32_t c = 2 * pos + 1;
        if (c >= m->nheap)
            break;
        if (c + 1 < m->nheap && m->v[m->heap[c + 1]].due < m->v[m->heap[c]].due)
            c++;
        if (m->v[m->heap[c]].due >= m->v[k].due)
            break;
        heap_set(m, pos, m->heap[c]);
        pos = c;
    }
    heap_set(m, pos, k);
}

void
lt_unschedule(struct leases *m, uint32_t k)
{
    uint32_t pos = m->v[k].hpos, last;

    if (pos == NONE)
        return;
    m->v[k].hpos = NONE;
    last = m->heap[--m->nheap];
    if (pos < m->nheap) {
        heap_set(m, pos, last);
        heap_up(m, pos);
        heap_down(m, m->v[last].hpos);
    }
}

/* Puts slot k in the heap at due (unix seconds). */
int
lt_schedule(struct leases *m, uint32_t k, int64_t due)
{
    m->v[k].due = rel(due);
    if (m->v[k].hpos != NONE) {
        heap_up(m, m->v[k].hpos);
        heap_down(m, m->v[k].hpos);
    } else {
        if (m->nheap == m->capheap) {
            uint32_t cap = m->capheap ? m->capheap * 2 : 1024, *h;
            if ((h = realloc(m->heap, cap * sizeof(*h))) == NULL)
                return -RK_ENOMEM;
            m->heap = h;
            m->capheap = cap;
        }
        m->heap[m->nheap] = k;
        m->v[k].hpos = m->nheap++;
        heap_up(m, m->nheap - 1);
    }
    if (m->v[k].hpos == 0)
        pthread_cond_signal(&m->cv);
    return 0;
}

/* A new slot holding i (not yet in the table). Returns the index or NONE (ENOMEM/EINVAL). */
uint32_t
lt_slot_new(struct leases *m, const struct lease_info *i)
{
    char ck[LEASE_ID_MAX + 2 * LEASE_NAME_MAX + 4];
    const char *slash = strrchr(i->id, '/');
    struct lease *l;
    uint32_t k;

    if (lt_cls_key(i->id, i->db, i->role, ck, sizeof(ck)) != 0)
        return NONE;
    if (m->freehead != NONE) {
        k = m->freehead;
        m->freehead = m->v[k].next;
    } else {
        if (m->nv == m->capv) {
            uint32_t cap = m->capv ? m->capv * 2 : 1024;
            struct lease *nv = realloc(m->v, (size_t)cap * sizeof(*nv));
            if (nv == NULL)
                return NONE;
            m->v = nv;
            m->capv = cap;
        }
        k = m->nv++;
    }
    l = &m->v[k];
    memset(l, 0, sizeof(*l));
    l->hpos = NONE;
    l->next = NONE;
    snprintf(l->tail, sizeof(l->tail), "%s", slash + 1);
    l->acc = NONE;
    if ((l->cls = lt_itab_ref(&m->cls, ck)) == NONE ||
        (i->accessor[0] != '\0' && (l->acc = lt_itab_ref(&m->acc, i->accessor)) == NONE)) {
        lt_itab_unref(&m->cls, l->cls);
        l->cls = NONE;
        l->next = m->freehead;
        m->freehead = k;
        return NONE;
    }
    l->issued = rel(i->issued);
    l->expires = rel(i->expires);
    l->max_expires = rel(i->max_expires);
    l->renewed = rel(i->last_renewal);
    l->failures = (uint8_t)(i->failures > 255 ? 255 : i->failures);
    l->flags = (uint8_t)((i->irrevocable ? F_IRREVOCABLE : 0) | (i->pending ? F_PENDING : 0));
    return k;
}

int
lt_insert(struct leases *m, uint32_t k)
{
    size_t b;

    if (m->n + 1 > m->nbuckets && grow_buckets(m) != 0)
        return -RK_ENOMEM;
    b = lt_hash(m->v[k].tail) & (m->nbuckets - 1);
    m->v[k].next = m->buckets[b];
    m->buckets[b] = k;
    m->n++;
    if (m->v[k].flags & F_IRREVOCABLE)
        m->nirrevocable++;
    return 0;
}

/* Takes slot k out of the table and the heap and frees it. */
void
lt_remove(struct leases *m, uint32_t k)
{
    uint32_t *pp = &m->buckets[lt_hash(m->v[k].tail) & (m->nbuckets - 1)];

    lt_unschedule(m, k);
    for (; *pp != NONE; pp = &m->v[*pp].next)
        if (*pp == k) {
            *pp = m->v[k].next;
            break;
        }
    m->n--;
    if (m->v[k].flags & F_IRREVOCABLE)
        m->nirrevocable--;
    lt_itab_unref(&m->cls, m->v[k].cls);
    lt_itab_unref(&m->acc, m->v[k].acc);
    m->v[k].cls = NONE;
    m->v[k].flags = 0;
    m->v[k].next = m->freehead;
    m->freehead = k;
}

/* Frees a slot never inserted. */
void
lt_drop(struct leases *m, uint32_t k)
{
    lt_itab_unref(&m->cls, m->v[k].cls);
    lt_itab_unref(&m->acc, m->v[k].acc);
    m->v[k].cls = NONE;
    m->v[k].next = m->freehead;
    m->freehead = k;
}
