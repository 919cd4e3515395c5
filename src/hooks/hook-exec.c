/* hook-exec.c: run a command with posix_spawn, no shell. The child gets a clean environment
 * (PATH, REKEY_PATH, REKEY_VERSION, REKEY_HOOK), its own process group, no inherited fds, and a
 * secret only on stdin. Its stdout and stderr are captured (bounded) and logged with secrets
 * masked. On timeout the whole process group gets SIGTERM, then SIGKILL, and is reaped. */
#include "hooks/hook.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/log.h"
#include "util/timeutil.h"

#define EXEC_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define KILL_GRACE_MS 2000 /* between SIGTERM and SIGKILL */
#define EXIT_DRAIN_MS 200  /* after the child exits, how long a grandchild may hold the pipes */
#define POLL_STEP_MS 20    /* exit polling when no pidfd is available */
#define OUT_INITIAL 4096

static int
exec_check(const struct hook_def *h, struct rk_error *err)
{
    struct rk_error e = {0};

    if (h->argv == NULL || h->argc == 0 || h->argv[0] == NULL || h->argv[0][0] == '\0')
        return rk_error_set(err, RK_ECONFIG, "command: a program and its arguments are required");
    for (size_t i = 0; i < h->argc; i++) {
        if (h->argv[i] == NULL)
            return rk_error_set(err, RK_ECONFIG, "command[%zu]: missing", i);
        if (hook_template_check(h->argv[i], &e) != 0)
            return rk_error_set(err, RK_ECONFIG, "command[%zu]: %s", i, e.msg);
        if (hook_template_has_secret(h->argv[i]))
            return rk_error_set(err, RK_ECONFIG,
                                "command[%zu]: a secret placeholder may not be "
                                "used in a command line (any user can read it in the process "
                                "list); use `stdin: new` or a file hook",
                                i);
    }
    if (h->workdir != NULL) {
        if (hook_template_check(h->workdir, &e) != 0)
            return rk_error_set(err, RK_ECONFIG, "workdir: %s", e.msg);
        if (hook_template_has_secret(h->workdir))
            return rk_error_set(err, RK_ECONFIG, "workdir: a secret placeholder is not allowed");
    }
    if (h->stdin_mode != HOOK_STDIN_NONE && h->stdin_mode != HOOK_STDIN_NEW &&
        h->stdin_mode != HOOK_STDIN_OLD)
        return rk_error_set(err, RK_ECONFIG, "stdin: expected none, new or old");
    return 0;
}

/* Moves fd above 2, so dup2 onto 0..2 in the child never meets itself. */
static int
fd_above_stdio(int fd)
{
    int nfd;

    if (fd < 0 || fd > 2)
        return fd;
    nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return nfd;
}

static int
pipe_cloexec(int p[2])
{
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    p[0] = fd_above_stdio(p[0]);
    p[1] = fd_above_stdio(p[1]);
    if (p[0] < 0 || p[1] < 0) {
        if (p[0] >= 0)
            close(p[0]);
        if (p[1] >= 0)
            close(p[1]);
        return -1;
    }
    return 0;
}

static void
close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Resolves a program name against the fixed PATH (not the server's, which the child never
 * sees either). Returns 0, or an errno value. */
static int
find_program(const char *prog, char *out, size_t outlen)
{
    const char *dir = EXEC_PATH;

    if (strchr(prog, '/') != NULL) {
        if (snprintf(out, outlen, "%s", prog) >= (int)outlen)
            return ENAMETOOLONG;
        /* Checked here too (not only by posix_spawn) for a clear message wherever exec errors
         * are not reported back; a relative name is resolved in the workdir, so left alone. */
        if (prog[0] == '/' && access(prog, X_OK) != 0)
            return errno;
        return 0;
    }
    while (*dir != '\0') {
        size_t dl = strcspn(dir, ":");
        struct stat st;

        if (snprintf(out, outlen, "%.*s/%s", (int)dl, dir, prog) < (int)outlen &&
            stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return 0;
        dir += dl;
        if (*dir == ':')
            dir++;
    }
    return ENOENT;
}

/* A bounded capture buffer in secure memory: the child may print the secret it was given.
 * Sizes are 2^k - 1 so that the secret's extra NUL byte keeps each block a power of two in the
 * buddy-allocated secure heap. When the heap cannot grow it, the rest is dropped as if the
 * output were too long: a hook must not fail because its log could not be kept. */
struct capture {
    const char *label;
    int fd;
    struct secret *buf;
    size_t len;
    int truncated, nogrow;
};

static void
capture_read(struct capture *c)
{
    unsigned char discard[4096];
    ssize_t n;

    if (!c->nogrow && (c->buf == NULL || c->len == c->buf->len) &&
        (c->buf == NULL || c->buf->len < HOOK_OUTPUT_MAX - 1)) {
        size_t cap = c->buf == NULL ? OUT_INITIAL - 1 : (c->buf->len + 1) * 2 - 1;
        struct secret *nb;

        if (cap > HOOK_OUTPUT_MAX - 1)
            cap = HOOK_OUTPUT_MAX - 1;
        if ((nb = secret_new(cap)) == NULL) {
            c->nogrow = 1;
        } else {
            if (c->buf != NULL)
                memcpy(nb->data, c->buf->data, c->len);
            secret_free(c->buf);
            c->buf = nb;
        }
    }
    if (c->buf != NULL && c->len < c->buf->len) {
        n = read(c->fd, c->buf->data + c->len, c->buf->len - c->len);
        if (n > 0)
            c->len += (size_t)n;
    } else {
        n = read(c->fd, discard, sizeof(discard));
        if (n > 0)
            c->truncated = 1;
        secure_wipe(discard, sizeof(discard));
    }
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
        close_fd(&c->fd);
}

static int
pidfd_for(pid_t pid)
{
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0)
        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
#else
    (void)pid;
    return -1;
#endif
}

/* 1 when the child has exited (left unreaped, so its pid and group id stay reserved). */
static int
child_exited(pid_t pid)
{
    siginfo_t si;

    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        return errno == ECHILD;
    return si.si_pid == pid;
}

/* Waits up to ms for the child to exit. Returns 1 when it has. */
static int
wait_exit(pid_t pid, int pidfd, int64_t ms)
{
    int64_t end = time_mono_ms() + ms;

    for (;;) {
        int64_t left;
        struct pollfd p = {pidfd, POLLIN, 0};

        if (child_exited(pid))
            return 1;
        left = end - time_mono_ms();
        if (left <= 0)
            return 0;
        if (pidfd >= 0)
            (void)poll(&p, 1, (int)left);
        else
            (void)poll(NULL, 0, (int)(left < POLL_STEP_MS ? left : POLL_STEP_MS));
    }
}

static int env_add(char **env, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
env_add(char **env, size_t *n, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    int r;

    va_start(ap, fmt);
    r = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (r < 0)
        return -1;
    env[(*n)++] = s;
    return 0;
}

/* The child's whole environment: nothing inherited, no secret. env has room for 5 entries. */
static int
build_env(const struct hook_def *h, const struct hook_ctx *ctx, char **env)
{
    size_t n = 0;

    if (env_add(env, &n, "PATH=%s", EXEC_PATH) != 0 ||
        env_add(env, &n, "REKEY_VERSION=%lld", (long long)ctx->version) != 0 ||
        env_add(env, &n, "REKEY_HOOK=%s", h->name != NULL ? h->name : "") != 0 ||
        (ctx->path != NULL && env_add(env, &n, "REKEY_PATH=%s", ctx->path) != 0))
        return -1;
    return 0;
}

static int
exec_run(const struct hook_def *h, const struct hook_ctx *ctx, int64_t timeout_ms,
         struct rk_error *err)
{
    char **argv = NULL, *workdir = NULL, *env[5] = {0}, prog[PATH_MAX];
    const struct secret *input = NULL;
    int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, pidfd = -1;
    struct capture cap[2] = {{"stdout", -1, NULL, 0, 0, 0}, {"stderr", -1, NULL, 0, 0, 0}};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int fa_ok = 0, attr_ok = 0, sigpipe_blocked = 0, sigpipe_was_pending = 0;
    sigset_t pipeset, oldmask, pending, all;
    size_t in_off = 0;
    pid_t pid = -1;
    int r = -RK_EINTERNAL, status = 0, e, timed_out = 0, exited = 0, fail = 0;
    int64_t deadline, exit_at = 0;

    if (h->argv == NULL || h->argc == 0 || h->argv[0] == NULL)
        return rk_error_set(err, RK_ECONFIG, "no command");
    if (h->stdin_mode == HOOK_STDIN_NEW || h->stdin_mode == HOOK_STDIN_OLD) {
        input = h->stdin_mode == HOOK_STDIN_NEW ? ctx->new_value : ctx->old_value;
        if (input == NULL)
            return rk_error_set(err, RK_EINVAL, "stdin: %s, but there is no %s value here",
                                h->stdin_mode == HOOK_STDIN_NEW ? "new" : "old",
                                h->stdin_mode == HOOK_STDIN_NEW ? "new" : "old");
    }

    /* argv may name {{path}} and {{version}} only: it is world-readable in /proc. */
    if ((argv = calloc(h->argc + 1, sizeof(*argv))) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < h->argc; i++) {
        if ((r = hook_template_render_public(h->argv[i], ctx, &argv[i], err)) != 0) {
            rk_error_prefix(err, "command[%zu]", i);
            goto out;
        }
    }
    if (h->workdir != NULL &&
        (r = hook_template_render_public(h->workdir, ctx, &workdir, err)) != 0) {
        rk_error_prefix(err, "workdir");
        goto out;
    }
    if ((e = find_program(argv[0], prog, sizeof(prog))) != 0) {
        r = rk_error_set(err, RK_EHOOK, "cannot run %s: %s", argv[0], strerror(e));
        goto out;
    }
    if (build_env(h, ctx, env) != 0) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }

    if ((input != NULL && pipe_cloexec(in_pipe) != 0) || pipe_cloexec(out_pipe) != 0 ||
        pipe_cloexec(err_pipe) != 0) {
        r = rk_error_set(err, RK_EHOOK, "pipe: %s", strerror(errno));
        goto out;
    }
    fa_ok = posix_spawn_file_actions_init(&fa) == 0;
    attr_ok = posix_spawnattr_init(&attr) == 0;
    if (!fa_ok || !attr_ok) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    e = 0;
    if (input != NULL)
        e = e ? e : posix_spawn_file_actions_adddup2(&fa, in_pipe[0], STDIN_FILENO);
    else
        e = e ? e : posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    e = e ? e : posix_spawn_file_actions_adddup2(&fa, out_pipe[1], STDOUT_FILENO);
    e = e ? e : posix_spawn_file_actions_adddup2(&fa, err_pipe[1], STDERR_FILENO);
#ifdef HAVE_POSIX_SPAWN_FILE_ACTIONS_ADDCLOSEFROM_NP
    e = e ? e : posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    if (workdir != NULL) {
#ifdef HAVE_POSIX_SPAWN_FILE_ACTIONS_ADDCHDIR_NP
        e = e ? e : posix_spawn_file_actions_addchdir_np(&fa, workdir);
#else
        r = rk_error_set(err, RK_ENOTIMPL, "workdir needs glibc 2.29 or later");
        goto out;
#endif
    }
    /* Its own process group (so a timeout can kill everything it started), default signal
     * dispositions and an empty mask, whatever this thread has blocked or ignored. */
    sigemptyset(&all);
    e = e ? e : posix_spawnattr_setsigmask(&attr, &all);
    sigfillset(&all);
    e = e ? e : posix_spawnattr_setsigdefault(&attr, &all);
    e = e ? e : posix_spawnattr_setpgroup(&attr, 0);
    e = e ? e
          : posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                POSIX_SPAWN_SETSIGDEF);
    if (e != 0) {
        r = rk_error_set(err, RK_EINTERNAL, "preparing the child: %s", strerror(e));
        goto out;
    }
    if ((e = posix_spawn(&pid, prog, &fa, &attr, argv, env)) != 0) {
        pid = -1;
        if (workdir != NULL)
            r = rk_error_set(err, RK_EHOOK, "cannot run %s in %s: %s", prog, workdir, strerror(e));
        else
            r = rk_error_set(err, RK_EHOOK, "cannot run %s: %s", prog, strerror(e));
        goto out;
    }
    deadline = time_mono_ms() + timeout_ms;
    close_fd(&in_pipe[0]);
    close_fd(&out_pipe[1]);
    close_fd(&err_pipe[1]);
    cap[0].fd = out_pipe[0];
    cap[1].fd = err_pipe[0];
    out_pipe[0] = err_pipe[0] = -1;
    pidfd = pidfd_for(pid);

    /* A child that exits without reading stdin must not kill us with SIGPIPE. */
    if (in_pipe[1] >= 0) {
        sigemptyset(&pipeset);
        sigaddset(&pipeset, SIGPIPE);
        sigpending(&pending);
        sigpipe_was_pending = sigismember(&pending, SIGPIPE);
        if (pthread_sigmask(SIG_BLOCK, &pipeset, &oldmask) == 0)
            sigpipe_blocked = 1;
        (void)fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
        if (input->len == 0)
            close_fd(&in_pipe[1]);
    }

    for (;;) {
        struct pollfd pfd[4];
        int np = 0, idx[2] = {-1, -1}, ip = -1, wait;
        int64_t now = time_mono_ms();

        if (!exited && child_exited(pid)) {
            exited = 1;
            exit_at = now;
            close_fd(&in_pipe[1]); /* nobody is left to read it */
        }
        if (exited && ((cap[0].fd < 0 && cap[1].fd < 0) || now - exit_at >= EXIT_DRAIN_MS))
            break;
        if (!exited && now >= deadline) {
            timed_out = 1;
            break;
        }
        wait = (int)(exited ? EXIT_DRAIN_MS - (now - exit_at) : deadline - now);
        for (int i = 0; i < 2; i++)
            if (cap[i].fd >= 0) {
                idx[i] = np;
                pfd[np++] = (struct pollfd){cap[i].fd, POLLIN, 0};
            }
        if (in_pipe[1] >= 0) {
            ip = np;
            pfd[np++] = (struct pollfd){in_pipe[1], POLLOUT, 0};
        }
        if (!exited && pidfd >= 0)
            pfd[np++] = (struct pollfd){pidfd, POLLIN, 0};
        else if (!exited && wait > POLL_STEP_MS)
            wait = POLL_STEP_MS;
        if (poll(pfd, (nfds_t)np, wait) < 0) {
            if (errno == EINTR)
                continue;
            fail = rk_error_set(err, RK_EINTERNAL, "poll: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (idx[i] < 0 || !(pfd[idx[i]].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            capture_read(&cap[i]);
        }
        if (ip >= 0 && (pfd[ip].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t n = write(in_pipe[1], input->data + in_off, input->len - in_off);
            if (n > 0)
                in_off += (size_t)n;
            if ((n < 0 && errno != EAGAIN && errno != EINTR) || in_off == input->len)
                close_fd(&in_pipe[1]); /* EOF tells the child the value is complete */
        }
    }

    if (timed_out || fail != 0) {
        kill(-pid, SIGTERM);
        (void)wait_exit(pid, pidfd, KILL_GRACE_MS);
        /* The leader is still unreaped, so its pid names the group: this cannot hit an
         * unrelated process. Clears whatever the hook left running. */
        kill(-pid, SIGKILL);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    pid = -1;
    for (int i = 0; i < 2; i++)
        hook_log_output(h, cap[i].label, cap[i].buf ? cap[i].buf->data : NULL, cap[i].len,
                        cap[i].truncated, ctx);
    if (fail != 0)
        r = fail;
    else if (timed_out)
        r = rk_error_set(err, RK_ETIMEOUT, "%s timed out after %lld ms (process group killed)",
                         argv[0], (long long)timeout_ms);
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        r = 0;
    else if (WIFEXITED(status) && WEXITSTATUS(status) == HOOK_EXIT_UNAVAILABLE)
        r = rk_error_set(err, RK_EUNAVAILABLE, "%s exited with status %d (EX_TEMPFAIL)", argv[0],
                         HOOK_EXIT_UNAVAILABLE);
    else if (WIFEXITED(status))
        r = rk_error_set(err, RK_EHOOK, "%s exited with status %d", argv[0], WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        r = rk_error_set(err, RK_EHOOK, "%s killed by signal %d", argv[0], WTERMSIG(status));
    else
        r = rk_error_set(err, RK_EHOOK, "%s ended with wait status %d", argv[0], status);

out:
    if (pid > 0) {
        kill(-pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    close_fd(&in_pipe[0]);
    close_fd(&in_pipe[1]);
    close_fd(&out_pipe[0]);
    close_fd(&out_pipe[1]);
    close_fd(&err_pipe[0]);
    close_fd(&err_pipe[1]);
    close_fd(&cap[0].fd);
    close_fd(&cap[1].fd);
    close_fd(&pidfd);
    if (sigpipe_blocked) {
        struct timespec zero = {0, 0};
        sigpending(&pending);
        if (!sigpipe_was_pending && sigismember(&pending, SIGPIPE))
            while (sigtimedwait(&pipeset, NULL, &zero) < 0 && errno == EINTR)
                ;
        pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
    }
    secret_free(cap[0].buf);
    secret_free(cap[1].buf);
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (attr_ok)
        posix_spawnattr_destroy(&attr);
    for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++)
        free(env[i]);
    if (argv != NULL)
        for (size_t i = 0; i < h->argc; i++)
            free(argv[i]);
    free(argv);
    free(workdir);
    return r;
}

static const struct inv_setting exec_settings[] = {
    {.name = "command",
     .type = IS_ARGV,
     .flags = IS_REQUIRED,
     .help = "a list: [program, arg, ...]",
     .offset = offsetof(struct hook_def, argv),
     .count_offset = offsetof(struct hook_def, argc)},
    {.name = "workdir",
     .type = IS_FILE,
     .help = "the directory the program runs in",
     .offset = offsetof(struct hook_def, workdir)},
    {.name = "stdin",
     .type = IS_ENUM,
     .def = "none",
     .flags = IS_INDEX, /* in the order of enum hook_stdin */
     .choices = "none|new|old",
     .help = "what the program reads on stdin: nothing, the new or the old value",
     .offset = offsetof(struct hook_def, stdin_mode)},
    {0},
};

const struct hook_ops hook_exec_ops = {
    .version = HOOK_OPS_VERSION,
    .type = HOOK_EXEC,
    .name = "exec",
    .check = exec_check,
    .run = exec_run,
    .settings = exec_settings,
};
