/* secrets.c: the per-entry families, from the statuses `rekey status` computes
 * (engine/schedule.h). See metrics.h and docs/metrics.md.
 *
 * Cost: one schedule_status_list per scrape (what `rekey status` reads: the current-version
 * record of each entry, and one listing of the rotation records and of the store's entries),
 * then about seven lines per entry. Each entry's label set `path="…",kind="…"` is escaped once
 * into one arena and copied into its lines. */
#include "metrics/metrics.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/schedule.h"

/* The label sets of st[0..n): ls->p + off[i] is entry i's, NUL-terminated. */
struct labelset {
    struct prom_buf arena;
    size_t *off;
    size_t *len;
};

static int
labels_build(struct labelset *ls, const struct secret_status *st, size_t n)
{
    memset(ls, 0, sizeof(*ls));
    if ((ls->off = calloc(n ? n : 1, sizeof(*ls->off))) == NULL ||
        (ls->len = calloc(n ? n : 1, sizeof(*ls->len))) == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        ls->off[i] = ls->arena.len;
        prom_puts(&ls->arena, "path=\"");
        prom_label_value(&ls->arena, st[i].secret->path);
        prom_puts(&ls->arena, "\",kind=\"");
        prom_label_value(&ls->arena, st[i].secret->kind);
        prom_put(&ls->arena, "\"", 1);
        ls->len[i] = ls->arena.len - ls->off[i];
        prom_put(&ls->arena, "", 1); /* the NUL */
    }
    return ls->arena.oom ? -1 : 0;
}

static void
labels_free(struct labelset *ls)
{
    prom_buf_free(&ls->arena);
    free(ls->off);
    free(ls->len);
}

/* `name{labels of entry i} ` */
static void
line_start(struct prom_buf *b, const char *name, size_t name_len, const struct labelset *ls,
           size_t i)
{
    if (prom_buf_reserve(b, name_len + ls->len[i] + 40) != 0)
        return;
    memcpy(b->p + b->len, name, name_len);
    b->len += name_len;
    b->p[b->len++] = '{';
    memcpy(b->p + b->len, ls->arena.p + ls->off[i], ls->len[i]);
    b->len += ls->len[i];
}

static void
line_i64(struct prom_buf *b, const char *name, size_t name_len, const struct labelset *ls, size_t i,
         int64_t v)
{
    line_start(b, name, name_len, ls, i);
    prom_put(b, "} ", 2);
    prom_i64(b, v);
    prom_put(b, "\n", 1);
}

#define NAME(s) s, sizeof(s) - 1

int
metrics_render_secrets(struct prom_buf *b, const struct secret_status *st, size_t n, int64_t now,
                       int64_t collect_us, struct rk_error *err)
{
    struct labelset ls;
    int r = 0;

    if (labels_build(&ls, st, n) != 0) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    /* All of it at once: growing a buffer of megabytes by doubling copies it and faults its
     * pages in again at each step. About eight lines per entry carry its labels, each with a
     * name of about 40 bytes and a value. */
    if (prom_buf_reserve(b, ls.arena.len * 8 + n * 8 * 64 + 16384) != 0) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    prom_family(b, "rekey_secrets", "gauge",
                "Entries rekey rotates (the configuration's and those defined in the store).");
    prom_sample_i64(b, "rekey_secrets", NULL, (int64_t)n);
    if (collect_us >= 0) {
        prom_family(b, "rekey_secrets_collect_duration_seconds", "gauge",
                    "Time this scrape took to read the entries' status from the store.");
        prom_sample_start(b, "rekey_secrets_collect_duration_seconds", NULL);
        prom_seconds_us(b, collect_us);
        prom_put(b, "\n", 1);
    }

    prom_family(b, "rekey_secret_version", "gauge",
                "The entry's current version (0: no value yet).");
    for (size_t i = 0; i < n; i++)
        line_i64(b, NAME("rekey_secret_version"), &ls, i, (int64_t)st[i].version);

    prom_family(b, "rekey_secret_last_rotation_timestamp_seconds", "gauge",
                "When the current version was made, in seconds since the epoch (absent: never).");
    for (size_t i = 0; i < n; i++)
        if (st[i].last_rotated > 0)
            line_i64(b, NAME("rekey_secret_last_rotation_timestamp_seconds"), &ls, i,
                     st[i].last_rotated);

    prom_family(b, "rekey_secret_next_rotation_timestamp_seconds", "gauge",
                "When the entry is due next by its own schedule (absent: not scheduled).");
    for (size_t i = 0; i < n; i++)
        if (st[i].next_due > 0)
            line_i64(b, NAME("rekey_secret_next_rotation_timestamp_seconds"), &ls, i,
                     st[i].next_due);

    prom_family(b, "rekey_secret_rotation_overdue", "gauge",
                "1 when the entry is past its due time beyond its tolerance (as rekey status "
                "says overdue), also while a failed or pending rotation holds it back.");
    for (size_t i = 0; i < n; i++)
        line_i64(b, NAME("rekey_secret_rotation_overdue"), &ls, i,
                 st[i].due_state == STATE_OVERDUE ? 1 : 0);

    prom_family(b, "rekey_secret_state", "gauge",
                "1 for the entry's state as rekey status shows it (ok, due, overdue, rotating, "
                "failed, action-required, not-implemented, pending); the other states are "
                "absent.");
    for (size_t i = 0; i < n; i++) {
        line_start(b, NAME("rekey_secret_state"), &ls, i);
        prom_puts(b, ",state=\"");
        prom_puts(b, secret_state_name(st[i].state));
        prom_put(b, "\"} 1\n", 5);
    }

    prom_family(b, "rekey_secret_consecutive_failures", "gauge",
                "Failed (or unavailable) rotation attempts since the last success.");
    for (size_t i = 0; i < n; i++)
        line_i64(b, NAME("rekey_secret_consecutive_failures"), &ls, i,
                 st[i].failures > 0 ? st[i].failures : 0);

    prom_family(b, "rekey_action_required", "gauge",
                "1 while a person must finish the entry's rotation (rekey done PATH).");
    for (size_t i = 0; i < n; i++)
        line_i64(b, NAME("rekey_action_required"), &ls, i,
                 st[i].state == STATE_ACTION_REQUIRED ? 1 : 0);

    prom_family(b, "rekey_secret_action_required_age_seconds", "gauge",
                "How long the entry has waited for a person (present only while it does).");
    for (size_t i = 0; i < n; i++) {
        int64_t age;
        if (st[i].state != STATE_ACTION_REQUIRED)
            continue;
        age = st[i].state_since > 0 && now > st[i].state_since ? now - st[i].state_since : 0;
        line_i64(b, NAME("rekey_secret_action_required_age_seconds"), &ls, i, age);
    }

    prom_family(b, "rekey_secret_expiry_timestamp_seconds", "gauge",
                "When the entry's current value expires (certificates, leases: the kinds that "
                "know), in seconds since the epoch.");
    for (size_t i = 0; i < n; i++)
        if (st[i].expires_at > 0)
            line_i64(b, NAME("rekey_secret_expiry_timestamp_seconds"), &ls, i, st[i].expires_at);

    if (b->oom)
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
out:
    labels_free(&ls);
    return r;
}

static int64_t
mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int
metrics_render_store(struct prom_buf *b, struct kv *kv, const struct inventory *inv, int64_t now,
                     struct rk_error *err)
{
    struct schedule_list sl;
    int64_t t0 = mono_us();
    int r;

    if ((r = schedule_status_list(kv, inv, now, &sl, err)) != 0)
        return r;
    r = metrics_render_secrets(b, sl.st, sl.n, now, mono_us() - t0, err);
    schedule_list_free(&sl);
    return r;
}
