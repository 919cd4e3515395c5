/* sink.c: the audit file sink (see sink.h).
 *
 * Threads: each sink has one flusher thread (started by the first line) that writes the queue as
 * batches; appends only queue a copy of their line and wait (audit_sink_append) or return
 * (audit_sink_append_async). The queue mutex (mu) is never held across I/O or a completion; the
 * flusher (or audit_sink_check, while busy) alone holds the file state (fd, last, end) and takes
 * at most one flock at a time (never the old and the new file, nor a file and "<path>.1",
 * together), so two processes cannot deadlock.
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

/* One queued line: a copy of its time and body, and who hears of its result. */
struct sink_req {
    struct sink_req *next;
    audit_sink_done_fn fn; /* an asynchronous line's completion, or NULL: a waiter */
    void *arg;             /* fn's argument, or the struct waiter of a blocking append */
    char time[AUDIT_TIME_LEN + 1];
    size_t blen;
    char body[];
};

/* A blocking append's wait (on its stack). */
struct waiter {
    pthread_cond_t cv; /* its own: a batch wakes its writers only */
    int done;
    int result;
    char msg[RK_ERRMSG_MAX];
};

struct audit_sink {
    char *path;
    pthread_mutex_t mu;
    pthread_cond_t work; /* the flusher waits here for lines (or for the check to end) */
    pthread_cond_t idle; /* audit_sink_stats and _check wait for the batch in progress */
    struct sink_req *qhead, *qtail;
    int busy;    /* a batch (or a check) is using the file state */
    int started; /* the flusher thread runs */
    int stop;
    pthread_t flusher;
    atomic_int reopen;

    /* the file state: the flusher's (or a check's, while busy) */
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
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->idle, NULL);
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
    /* The flusher writes what is queued (every completion runs), then ends. */
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    if (s->started)
        pthread_join(s->flusher, NULL);
    if (s->batches > 0)
        log_debug("audit file %s: %llu lines in %llu batches", s->path, s->lines, s->batches);
    if (s->fd >= 0)
        close(s->fd);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->idle);
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
    while (s->busy)
        pthread_cond_wait(&s->idle, &s->mu);
}

void
audit_sink_stats(struct audit_sink *s, unsigned long long *batches, unsigned long long *lines)
{
    pthread_mutex_lock(&s->mu);
    while (s->busy || s->qhead != NULL) /* the counters belong to the flusher */
        pthread_cond_wait(&s->idle, &s->mu);
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

/* Writes a batch (the flusher or a check, busy, without mu; batch may be NULL to write only a
 * missing header). Returns the batch's result, with the message in *errp. */
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
    if (r != 0 && errp != NULL)
        *errp = err;
    return r;
}

/* Ends a batch (mu held): the blocking appends of it learn their result; the asynchronous
 * lines are handed back in *async for their completions (run without mu). */
static void
batch_done(struct sink_req *batch, int r, const struct rk_error *err, struct sink_req **async)
{
    *async = NULL;
    for (struct sink_req *q = batch, *next; q != NULL; q = next) {
        next = q->next;
        if (q->fn != NULL) {
            q->next = *async;
            *async = q;
            continue;
        }
        struct waiter *w = q->arg;
        w->result = r;
        if (r != 0)
            snprintf(w->msg, sizeof(w->msg), "%s", err->msg);
        w->done = 1;
        pthread_cond_signal(&w->cv);
        free(q);
    }
}

/* The flusher: writes whatever is queued as one batch (one write, one fdatasync), then the
 * next; lines queued during a batch's fsync make up the next one, so the batches grow with the
 * load without anyone waiting to gather them. */
static void *
flusher_main(void *arg)
{
    struct audit_sink *s = arg;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        struct sink_req *batch, *async;
        struct rk_error err = {0};
        int r;

        while ((s->qhead == NULL || s->busy) && !(s->stop && s->qhead == NULL && !s->busy))
            pthread_cond_wait(&s->work, &s->mu);
        if (s->qhead == NULL)
            break; /* stopping, and nothing is left */
        batch = s->qhead;
        s->qhead = s->qtail = NULL;
        s->busy = 1;
        pthread_mutex_unlock(&s->mu);
        r = run_batch(s, batch, &err);
        pthread_mutex_lock(&s->mu);
        s->busy = 0;
        batch_done(batch, r, &err, &async);
        pthread_cond_broadcast(&s->idle);
        if (async != NULL) {
            pthread_mutex_unlock(&s->mu);
            for (struct sink_req *q = async, *next; q != NULL; q = next) {
                next = q->next;
                q->fn(q->arg, r, r != 0 ? err.msg : "");
                free(q);
            }
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Queues a copy of the line, starting the flusher on first use. */
static int
enqueue(struct audit_sink *s, const char *time, const char *body, size_t blen,
        audit_sink_done_fn fn, void *arg, struct rk_error *err)
{
    struct sink_req *q = malloc(sizeof(*q) + blen + 1);

    if (q == NULL)
        return rk_error_set(err, RK_ENOMEM, "audit: out of memory");
    q->next = NULL;
    q->fn = fn;
    q->arg = arg;
    snprintf(q->time, sizeof(q->time), "%s", time);
    q->blen = blen;
    memcpy(q->body, body, blen);
    q->body[blen] = '\0';
    if (!s->started) {
        if (pthread_create(&s->flusher, NULL, flusher_main, s) != 0) {
            free(q);
            return rk_error_set(err, RK_EINTERNAL, "audit: cannot start the flusher thread");
        }
        s->started = 1;
    }
    if (s->qtail != NULL)
        s->qtail->next = q;
    else
        s->qhead = q;
    s->qtail = q;
    pthread_cond_signal(&s->work);
    return 0;
}

int
audit_sink_append(struct audit_sink *s, const char *time, const char *body, size_t blen,
                  struct rk_error *err)
{
    struct waiter w = {.done = 0};
    int r;

    pthread_cond_init(&w.cv, NULL);
    pthread_mutex_lock(&s->mu);
    if ((r = enqueue(s, time, body, blen, NULL, &w, err)) == 0)
        while (!w.done)
            pthread_cond_wait(&w.cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    pthread_cond_destroy(&w.cv);
    if (r != 0)
        return r;
    if (w.result != 0)
        return rk_error_set(err, -w.result, "%s", w.msg);
    return 0;
}

int
audit_sink_append_async(struct audit_sink *s, const char *time, const char *body, size_t blen,
                        audit_sink_done_fn fn, void *arg, struct rk_error *err)
{
    int r;

    pthread_mutex_lock(&s->mu);
    r = enqueue(s, time, body, blen, fn, arg, err);
    pthread_mutex_unlock(&s->mu);
    return r;
}

int
audit_sink_check(struct audit_sink *s, struct rk_error *err)
{
    int r;

    /* An empty batch: opens the file and writes its header when it has none. */
    pthread_mutex_lock(&s->mu);
    wait_idle(s);
    s->busy = 1;
    pthread_mutex_unlock(&s->mu);
    r = run_batch(s, NULL, err);
    pthread_mutex_lock(&s->mu);
    s->busy = 0;
    pthread_cond_broadcast(&s->idle);
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    return r;
}
