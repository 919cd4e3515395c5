/* daemon-thread.c: the rotation daemon as a thread of a host process (`rekey server`): a
 * control pipe carries stop and re-plan (see daemon.h); the thread blocks every signal, the
 * host's main thread takes them. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/daemon.h"
#include "util/log.h"

struct daemon_thread {
    pthread_t tid;
    int rfd, wfd; /* the control pipe */
    struct kv *kv;
    struct inventory **inv;
    struct daemon_embed emb;
    struct daemon_opts opts;
    struct daemon_stats stats;
    struct rk_error err;
    int result;
};

static void *
thread_main(void *arg)
{
    struct daemon_thread *t = arg;

    t->result = daemon_run(t->kv, t->inv, &t->opts, &t->stats, &t->err);
    if (t->result != 0)
        log_error("scheduler stopped: %s", t->err.msg);
    return NULL;
}

static void
thread_send(struct daemon_thread *t, char msg)
{
    ssize_t n;

    if (t == NULL || t->wfd < 0)
        return;
    /* EAGAIN: the pipe is full of unread messages, which wake the thread anyway. */
    do
        n = write(t->wfd, &msg, 1);
    while (n < 0 && errno == EINTR);
}

int
daemon_thread_start(struct kv *kv, struct inventory **inv, void (*rdlock)(void *),
                    void (*unlock)(void *), void *lock_arg, const uint64_t *generation,
                    struct daemon_thread **out, struct rk_error *err)
{
    struct daemon_thread *t;
    sigset_t all, old;
    int fds[2], e;

    *out = NULL;
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        e = errno;
        free(t);
        return rk_error_set(err, RK_EINTERNAL, "scheduler: pipe: %s", strerror(e));
    }
    t->rfd = fds[0];
    t->wfd = fds[1];
    t->kv = kv;
    t->inv = inv;
    t->emb.control_fd = t->rfd;
    t->emb.rdlock = rdlock;
    t->emb.unlock = unlock;
    t->emb.lock_arg = lock_arg;
    t->emb.generation = generation;
    t->opts.embed = &t->emb;
    /* The thread never takes a signal: the host's main thread handles them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    e = pthread_create(&t->tid, NULL, thread_main, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        close(t->rfd);
        close(t->wfd);
        free(t);
        return rk_error_set(err, RK_EINTERNAL, "scheduler: starting its thread: %s", strerror(e));
    }
    *out = t;
    return 0;
}

void
daemon_thread_replan(struct daemon_thread *t)
{
    thread_send(t, DAEMON_MSG_REPLAN);
}

void
daemon_thread_request_stop(struct daemon_thread *t)
{
    thread_send(t, DAEMON_MSG_STOP);
}

int
daemon_thread_stop(struct daemon_thread *t, struct daemon_stats *stats)
{
    int r;

    if (t == NULL)
        return 0;
    thread_send(t, DAEMON_MSG_STOP);
    /* The end of the pipe also means stop, should the message not fit. */
    close(t->wfd);
    t->wfd = -1;
    pthread_join(t->tid, NULL);
    close(t->rfd);
    r = t->result;
    if (stats != NULL)
        *stats = t->stats;
    free(t);
    return r;
}
