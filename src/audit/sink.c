/* sink.c: the audit file sink (see sink.h).
 *
 * Lock order: the queue mutex (mu) is never held across I/O; the leader of a batch alone holds
 * the file state (fd, last, end) and takes at most one flock at a time (never the old and the
 * new file, nor a file and "<path>.1", together), so two processes cannot deadlock.
 *
 * Test switch (util/testsw.h): REKEY_AUDIT_FAULT=write:N or fsync:N fails the Nth write or
 * fdatasync of this process's batches and every later one, as a full or broken disk would. */
#include "audit/sink.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/enc.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/testsw.h"
#include "util/timeutil.h"

#define HEADER_MAX 1024
#define GATHER_MIN_NS 20000L /* bounds of a leader's wait for more lines */
#define GATHER_MAX_NS 1000000L

struct sink_req {
    const char *time;
    const char *body;
    size_t blen;
    int result;
    char msg[RK_ERRMSG_MAX];
    int done;
    unsigned par; /* the condition variable (cvs) it sleeps on */
    struct sink_req *next;
};

struct audit_sink {
    char *path;
    pthread_mutex_t mu;
    /* Sleepers: the lines of the batch being written on cvs[!qpar], those queued behind it on
     * cvs[qpar], so that a batch wakes only its own writers (and one queued writer to lead the
     * next), never all of them (as in store/gcommit.c). */
    pthread_cond_t cvs[2];
    unsigned qpar;
    pthread_cond_t idle; /* audit_sink_stats and _check wait for the leader to go */
    int idle_waiters;
    struct sink_req *qhead, *qtail;
    size_t qlen;
    int leader;
    pthread_cond_t lcv; /* a gathering leader waits here for arrivals */
    int gathering;
    size_t expect;         /* the batch size the recent load suggests (>= 1) */
    int64_t last_batch_ns; /* how long the last batch took */
    atomic_int reopen;

    /* the leader's state */
    int fd;
    dev_t dev;
    ino_t ino;
    char last[AUDIT_HASH_HEX + 1]; /* the hash of the file's last line as this process knows it */
    int have_last;
    off_t end; /* the file's size after our last batch: when it is still that, last is good */
    char *buf;
    size_t cap;
    unsigned long long batches, lines, nwrites, nsyncs;
    int fault_kind; /* 0 none, 1 write, 2 fsync */
    unsigned long long fault_n;
};

int
audit_sink_new(const char *path, struct audit_sink **out, struct rk_error *err)
{
    struct audit_sink *s;
    const char *f;

    *out = NULL;
    if (path == NULL || *path == '\0')
        return rk_error_set(err, RK_EINVAL, "an audit file needs a path");
    if ((s = calloc(1, sizeof(*s))) == NULL || (s->path = strdup(path)) == NULL) {
        free(s);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cvs[0], NULL);
    pthread_cond_init(&s->cvs[1], NULL);
    pthread_cond_init(&s->idle, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->lcv, &ca);
        pthread_condattr_destroy(&ca);
    }
    s->expect = 1;
    s->fd = -1;
    if ((f = test_switch("REKEY_AUDIT_FAULT")) != NULL && *f != '\0') {
        const char *colon = strchr(f, ':');
        int64_t n = 0;
        if (colon != NULL && parse_int64(colon + 1, 1, INT64_MAX, &n) == 0) {
            if (strncmp(f, "write:", 6) == 0)
                s->fault_kind = 1;
            else if (strncmp(f, "fsync:", 6) == 0)
                s->fault_kind = 2;
            s->fault_n = (unsigned long long)n;
        }
    }
    *out = s;
    return 0;
}

void
audit_sink_free(struct audit_sink *s)
{
    if (s == NULL)
        return;
    if (s->batches > 0)
        log_debug("audit file %s: %llu lines in %llu batches", s->path, s->lines, s->batches);
    if (s->fd >= 0)
        close(s->fd);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cvs[0]);
    pthread_cond_destroy(&s->cvs[1]);
    pthread_cond_destroy(&s->idle);
    pthread_cond_destroy(&s->lcv);
    free(s->buf);
    free(s->path);
    free(s);
}

const char *
audit_sink_path(const struct audit_sink *s)
{
    return s->path;
}

void
audit_sink_reopen(struct audit_sink *s)
{
    atomic_store(&s->reopen, 1);
}

/* Waits (mu held) until no batch runs. */
static void
wait_idle(struct audit_sink *s)
{
    s->idle_waiters++;
    while (s->leader)
        pthread_cond_wait(&s->idle, &s->mu);
    s->idle_waiters--;
}

/* The leader's slot is free again (mu held): wake who waits for it, and one queued writer to
 * lead the next batch. */
static void
leader_done(struct audit_sink *s)
{
    s->leader = 0;
    if (s->idle_waiters > 0)
        pthread_cond_broadcast(&s->idle);
    if (s->qhead != NULL)
        pthread_cond_signal(&s->cvs[s->qpar]);
}

void
audit_sink_stats(struct audit_sink *s, unsigned long long *batches, unsigned long long *lines)
{
    pthread_mutex_lock(&s->mu);
    wait_idle(s); /* the counters belong to the leader */
    *batches = s->batches;
    *lines = s->lines;
    pthread_mutex_unlock(&s->mu);
}

/* ---- the file ---------------------------------------------------------------------------- */

static int
lock_fd(int fd, int how)
{
    while (flock(fd, how) != 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

/* The hash of fd's last line (size bytes long) into out. Returns 0, or -RK_EIO/-RK_ECORRUPT. */
static int
read_tail(int fd, off_t size, const char *path, char out[AUDIT_HASH_HEX + 1], struct rk_error *err)
{
    char tail[AUDIT_TAIL_LEN + 1];
    ssize_t n;

    if (size < (off_t)AUDIT_LINE_MIN + 1)
        return rk_error_set(err, RK_ECORRUPT,
                            "audit file %s: its last line is not a chain line (%lld bytes); "
                            "run rekey audit verify and move the file aside",
                            path, (long long)size);
    do
        n = pread(fd, tail, sizeof(tail), size - (off_t)sizeof(tail));
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(tail))
        return rk_error_set(err, RK_EIO, "audit file %s: reading its last line: %s", path,
                            n < 0 ? strerror(errno) : "short read");
    if (audit_tail_hash(tail, sizeof(tail), out) != 0)
        return rk_error_set(err, RK_ECORRUPT,
                            "audit file %s: its last line is not a complete chain line (a "
                            "write was cut short?); run rekey audit verify and move the file "
                            "aside",
                            path);
    return 0;
}

/* The last hash of "<path>.1" when it is a chain file, for a new file that continues it. */
static int
previous_file_hash(const char *path, char out[AUDIT_HASH_HEX + 1])
{
    char prev[4096 + 3];
    struct stat st;
    int fd, ok = 0;

    if ((size_t)snprintf(prev, sizeof(prev), "%s.1", path) >= sizeof(prev))
        return 0;
    if ((fd = open(prev, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
        return 0;
    if (lock_fd(fd, LOCK_SH) == 0) {
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
            read_tail(fd, st.st_size, prev, out, NULL) == 0)
            ok = 1;
        lock_fd(fd, LOCK_UN);
    }
    close(fd);
    return ok;
}

/* Opens (creating) the path into the sink's state, without a lock. */
static int
open_path(struct audit_sink *s, struct rk_error *err)
{
    struct stat st;
    int fd, created = 0;

    fd = open(s->path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        fd = open(s->path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0)
            created = 1;
        else if (errno == EEXIST) /* another process made it first */
            fd = open(s->path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0)
        return rk_error_set(err, RK_EIO, "audit file %s: %s", s->path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return rk_error_set(err, RK_EIO, "audit file %s: not a regular file", s->path);
    }
    if (created)
        (void)fs_sync_dir_of(s->path, NULL); /* the new name survives a crash */
    s->fd = fd;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->end = -1; /* unknown: read the tail under the lock */
    return 0;
}

/* 1 when the path no longer names the open file (renamed away, removed, replaced). */
static int
path_moved(struct audit_sink *s)
{
    struct stat st;

    if (stat(s->path, &st) != 0)
        return 1;
    return st.st_dev != s->dev || st.st_ino != s->ino;
}

static int
fault(struct audit_sink *s, int kind, unsigned long long count)
{
    if (s->fault_kind != kind || s->fault_n == 0 || count < s->fault_n)
        return 0;
    log_warn("REKEY_AUDIT_FAULT: injecting a failure into audit %s %llu",
             kind == 1 ? "write" : "fsync", count);
    return 1;
}

static int
grow(struct audit_sink *s, size_t need, struct rk_error *err)
{
    char *nb;
    size_t nc = s->cap ? s->cap : 16384;

    if (need <= s->cap)
        return 0;
    while (nc < need)
        nc *= 2;
    if ((nb = realloc(s->buf, nc)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "audit: out of memory");
    s->buf = nb;
    s->cap = nc;
    return 0;
}

/* The header record that starts a file: chained to prev (continued = 1) or to a random
 * anchor. */
static int
header_body(struct audit_sink *s, int continued, char *out, size_t outlen, size_t *blen)
{
    char host[256] = "";
    size_t o = 0;
    int n;

    (void)gethostname(host, sizeof(host) - 1);
    n = snprintf(out, outlen,
                 "\"type\":\"header\",\"version\":1,\"anchor\":%s,\"pid\":%ld,\"host\":\"",
                 continued ? "false" : "true", (long)getpid());
    if (n < 0 || (size_t)n >= outlen)
        return -RK_ELIMIT;
    o = (size_t)n;
    if (audit_json_escape(out, outlen, &o, host, strlen(host)) != 0 || o + 10 > outlen)
        return -RK_ELIMIT;
    memcpy(out + o, "\",\"file\":\"", 10);
    o += 10;
    if (audit_json_escape(out, outlen, &o, s->path, strlen(s->path)) != 0 || o + 1 > outlen)
        return -RK_ELIMIT;
    out[o++] = '"';
    *blen = o;
    return 0;
}

/* Makes the sink's fd the locked, current file, with s->last its last hash; *hdr is set when
 * the file is empty and a header must be written first (then s->last is what it chains to and
 * *continued says whether that is a real hash). Returns 0 with the lock held, or -RK_E*. */
static int
acquire(struct audit_sink *s, int *hdr, int *continued, struct rk_error *err)
{
    char carry[AUDIT_HASH_HEX + 1];
    int have_carry = 0, r;
    struct stat st;

    *hdr = 0;
    *continued = 0;
    for (int attempt = 0;; attempt++) {
        if (s->fd < 0 && (r = open_path(s, err)) != 0)
            return r;
        if (lock_fd(s->fd, LOCK_EX) != 0)
            return rk_error_set(err, RK_EIO, "audit file %s: lock: %s", s->path, strerror(errno));
        if (fstat(s->fd, &st) != 0) {
            lock_fd(s->fd, LOCK_UN);
            return rk_error_set(err, RK_EIO, "audit file %s: %s", s->path, strerror(errno));
        }
        if (attempt < 4 && (atomic_exchange(&s->reopen, 0) || path_moved(s))) {
            /* Rotated: remember where the old file's chain ends, then take the new file. */
            if (st.st_size > 0) {
                if (s->have_last && s->end == st.st_size)
                    memcpy(carry, s->last, sizeof(carry)), have_carry = 1;
                else if (read_tail(s->fd, st.st_size, s->path, carry, NULL) == 0)
                    have_carry = 1;
            }
            lock_fd(s->fd, LOCK_UN);
            close(s->fd);
            s->fd = -1;
            s->have_last = 0;
            continue;
        }
        break;
    }
    if (st.st_size == 0) {
        if (!have_carry) {
            /* Never hold two locks: let go of this file while reading "<path>.1". */
            lock_fd(s->fd, LOCK_UN);
            have_carry = previous_file_hash(s->path, carry);
            if (lock_fd(s->fd, LOCK_EX) != 0 || fstat(s->fd, &st) != 0)
                return rk_error_set(err, RK_EIO, "audit file %s: %s", s->path, strerror(errno));
        }
        if (st.st_size == 0) {
            *hdr = 1;
            if (have_carry) {
                memcpy(s->last, carry, sizeof(carry));
                *continued = 1;
            } else {
                unsigned char a[AUDIT_HASH_HEX / 2];
                if (RAND_bytes(a, sizeof(a)) != 1) {
                    lock_fd(s->fd, LOCK_UN);
                    return rk_error_set(err, RK_EINTERNAL, "the random generator failed");
                }
                hex_encode(a, sizeof(a), s->last);
            }
            s->end = 0;
            return 0;
        }
    }
    if (!(s->have_last && s->end == st.st_size)) {
        if ((r = read_tail(s->fd, st.st_size, s->path, s->last, err)) != 0) {
            lock_fd(s->fd, LOCK_UN);
            s->have_last = 0;
            return r;
        }
        s->have_last = 1;
    }
    s->end = st.st_size;
    return 0;
}

/* Writes a batch (the leader, without mu; batch may be NULL to write only a missing header).
 * Sets each request's result; returns the batch's, with the message in *errp. */
static int
run_batch(struct audit_sink *s, struct sink_req *batch, struct rk_error *errp)
{
    struct rk_error err = {0};
    char hbody[HEADER_MAX], htime[AUDIT_TIME_LEN + 1], hash[AUDIT_HASH_HEX + 1];
    size_t need = 0, len = 0, hlen = 0, nlines = 0;
    int r, hdr = 0, continued = 0, locked = 0;
    off_t start = 0;

    for (struct sink_req *q = batch; q != NULL; q = q->next)
        need += AUDIT_LINE_MIN + 1 + q->blen;
    need += AUDIT_LINE_MIN + 1 + HEADER_MAX;
    if ((r = grow(s, need, &err)) != 0)
        goto out;
    if ((r = acquire(s, &hdr, &continued, &err)) != 0)
        goto out;
    locked = 1;
    start = s->end;
    if (hdr) {
        if ((r = header_body(s, continued, hbody, sizeof(hbody), &hlen)) != 0) {
            rk_error_set(&err, RK_EINTERNAL, "audit: the header does not fit");
            goto out;
        }
        audit_time_format(time_now_us(), htime);
        if ((r = audit_line_seal(s->buf, s->cap, &len, s->last, htime, hbody, hlen, hash)) != 0)
            goto sealfail;
        memcpy(s->last, hash, sizeof(hash));
        nlines++;
    }
    for (struct sink_req *q = batch; q != NULL; q = q->next) {
        if ((r = audit_line_seal(s->buf, s->cap, &len, s->last, q->time, q->body, q->blen, hash)) !=
            0)
            goto sealfail;
        memcpy(s->last, hash, sizeof(hash));
        nlines++;
    }
    if (len == 0) { /* an empty batch (audit_sink_check) on a file that has its header */
        r = 0;
        goto out;
    }
    {
        size_t off = 0;
        s->nwrites++;
        if (fault(s, 1, s->nwrites)) {
            errno = ENOSPC;
            r = rk_error_set(&err, RK_EIO, "audit file %s: write: %s", s->path, strerror(errno));
            goto undo;
        }
        while (off < len) {
            ssize_t n = write(s->fd, s->buf + off, len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                r = rk_error_set(&err, RK_EIO, "audit file %s: write: %s", s->path,
                                 n < 0 ? strerror(errno) : "no progress");
                goto undo;
            }
            off += (size_t)n;
        }
        s->nsyncs++;
        if (fault(s, 2, s->nsyncs)) {
            r = rk_error_set(&err, RK_EIO, "audit file %s: fsync: %s", s->path, strerror(EIO));
            goto undo;
        }
        if (fdatasync(s->fd) != 0) {
            r = rk_error_set(&err, RK_EIO, "audit file %s: fsync: %s", s->path, strerror(errno));
            goto undo;
        }
    }
    s->end = start + (off_t)len;
    s->have_last = 1;
    s->batches++;
    s->lines += nlines;
    r = 0;
    goto out;
sealfail:
    r = rk_error_set(&err, r == -RK_ELIMIT ? RK_ELIMIT : RK_EINTERNAL,
                     "audit: sealing a line failed");
    s->have_last = 0;
    goto out;
undo:
    /* Nothing of a failed batch stays: the next writer must find a whole chain line last. */
    if (ftruncate(s->fd, start) != 0)
        log_error("audit file %s: cannot cut a failed write back: %s", s->path, strerror(errno));
    s->have_last = 0;
out:
    if (locked)
        lock_fd(s->fd, LOCK_UN);
    if (r != 0 && s->fd >= 0 && r != -RK_ECORRUPT) {
        /* Start from a fresh open next time (the directory may have come back, etc.). */
        close(s->fd);
        s->fd = -1;
        s->have_last = 0;
    }
    for (struct sink_req *q = batch; q != NULL; q = q->next) {
        q->result = r;
        if (r != 0)
            snprintf(q->msg, sizeof(q->msg), "%s", err.msg);
    }
    if (r != 0 && errp != NULL)
        *errp = err;
    return r;
}

static int64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The new leader waits (mu held) until the batch the recent load suggests is queued, at most
 * half the last batch's duration (bounded): right after a batch, the threads it woke are busy
 * with their requests, and the first one back would otherwise pay a whole fsync alone while
 * the rest queue behind it (as in store/gcommit.c). A single writer never waits. Returns 1
 * when the deadline cut the wait short. */
static int
gather(struct audit_sink *s)
{
    int64_t wait = s->last_batch_ns / 2, deadline;
    struct timespec ts;
    int cut = 0;

    if (s->qlen >= s->expect)
        return 0;
    if (wait < GATHER_MIN_NS)
        wait = GATHER_MIN_NS;
    if (wait > GATHER_MAX_NS)
        wait = GATHER_MAX_NS;
    deadline = mono_ns() + wait;
    ts.tv_sec = (time_t)(deadline / 1000000000);
    ts.tv_nsec = (long)(deadline % 1000000000);
    s->gathering = 1;
    while (s->qlen < s->expect)
        if (pthread_cond_timedwait(&s->lcv, &s->mu, &ts) != 0 && s->qlen < s->expect) {
            cut = 1;
            break;
        }
    s->gathering = 0;
    return cut;
}

int
audit_sink_append(struct audit_sink *s, const char *time, const char *body, size_t blen,
                  struct rk_error *err)
{
    struct sink_req me = {.time = time, .body = body, .blen = blen};

    pthread_mutex_lock(&s->mu);
    me.par = s->qpar;
    if (s->qtail != NULL)
        s->qtail->next = &me;
    else
        s->qhead = &me;
    s->qtail = &me;
    s->qlen++;
    if (s->gathering && s->qlen >= s->expect)
        pthread_cond_signal(&s->lcv);
    while (!me.done) {
        if (!s->leader) {
            struct sink_req *batch;
            unsigned bpar;
            size_t n;
            int64_t t0;
            int cut;

            s->leader = 1;
            cut = gather(s);
            batch = s->qhead;
            n = s->qlen;
            s->qhead = s->qtail = NULL;
            s->qlen = 0;
            bpar = s->qpar; /* the batch's writers sleep on cvs[bpar]; new ones on the other */
            s->qpar ^= 1;
            pthread_mutex_unlock(&s->mu);
            t0 = mono_ns();
            (void)run_batch(s, batch, NULL);
            pthread_mutex_lock(&s->mu);
            s->last_batch_ns = mono_ns() - t0;
            /* The estimate follows the load: up at once, down slowly, and down when a
             * wait came up short. */
            if (n > s->expect)
                s->expect = n;
            else if (cut && s->expect > 1)
                s->expect = (s->expect + n) / 2 > 0 ? (s->expect + n) / 2 : 1;
            for (struct sink_req *q = batch; q != NULL;) {
                struct sink_req *next = q->next; /* q may go once done is set */
                q->done = 1;
                q = next;
            }
            pthread_cond_broadcast(&s->cvs[bpar]);
            leader_done(s);
        } else {
            pthread_cond_wait(&s->cvs[me.par], &s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (me.result != 0)
        return rk_error_set(err, -me.result, "%s", me.msg);
    return 0;
}

int
audit_sink_check(struct audit_sink *s, struct rk_error *err)
{
    int r;

    /* An empty batch: opens the file and writes its header when it has none. */
    pthread_mutex_lock(&s->mu);
    wait_idle(s);
    s->leader = 1;
    pthread_mutex_unlock(&s->mu);
    r = run_batch(s, NULL, err);
    pthread_mutex_lock(&s->mu);
    leader_done(s);
    pthread_mutex_unlock(&s->mu);
    return r;
}
