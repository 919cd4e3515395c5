/* secret-input.c: reading a secret value from a person (see secret-input.h for the rules).
 *
 * The terminal: the signals that end or stop the process stay blocked while the echo is off,
 * and the only place they can arrive is ppoll, which unblocks them while it waits for a byte.
 * So a signal is never lost between a check and a blocking read: it interrupts the wait, the
 * handler notes it, and the reader restores the terminal before the signal takes effect (as
 * readpassphrase(3) does, without its race). */
#include "cli/secret-input.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli/cli.h"
#include "rotators/rotator.h"
#include "util/parse.h"
#include "util/secret.h"

/* ---- the terminal ---- */

static const int tty_signals[] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGTSTP, SIGTTIN, SIGTTOU};
#define NTTY_SIGNALS (sizeof(tty_signals) / sizeof(tty_signals[0]))

static volatile sig_atomic_t tty_caught;

static void
tty_on_signal(int sig)
{
    tty_caught = sig;
}

static int
is_stop_signal(int sig)
{
    return sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

struct tty {
    int fd;
    struct termios saved, quiet;
    int quiet_on;                            /* the terminal has `quiet` now */
    struct sigaction catch_sa;               /* tty_on_signal */
    struct sigaction old_sa[NTTY_SIGNALS];   /* the caller's handlers */
    sigset_t old_mask, wait_mask, block_set; /* wait_mask: old_mask without our signals */
    int fatal;                               /* a signal that ends the process, once restored */
};

/* Writes msg to the terminal; errors are ignored (the read that follows reports them). */
static void
tty_say(const struct tty *t, const char *msg)
{
    size_t len = strlen(msg), off = 0;

    while (off < len) {
        ssize_t w = write(t->fd, msg + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) { /* the fd is non-blocking: wait as a blocking write would */
            struct pollfd pfd = {.fd = t->fd, .events = POLLOUT};
            if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
                break;
            continue;
        }
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

/* Opens /dev/tty, blocks and catches the signals, turns the echo off. The descriptor is
 * non-blocking: Ctrl-C flushes the terminal's input queue, so a byte that ppoll saw may be gone
 * by the read, and a blocking read would then sleep with the signal blocked, forever. */
static int
tty_open(struct tty *t, struct rk_error *err)
{
    memset(t, 0, sizeof(*t));
    if ((t->fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK)) < 0)
        return rk_error_set(err, RK_EINVAL, "no terminal to type the value at");
    if (tcgetattr(t->fd, &t->saved) != 0) {
        close(t->fd);
        t->fd = -1;
        return rk_error_set(err, RK_EINVAL, "no terminal to type the value at");
    }
    sigemptyset(&t->block_set);
    for (size_t i = 0; i < NTTY_SIGNALS; i++)
        sigaddset(&t->block_set, tty_signals[i]);
    sigprocmask(SIG_BLOCK, &t->block_set, &t->old_mask);
    t->wait_mask = t->old_mask;
    for (size_t i = 0; i < NTTY_SIGNALS; i++)
        sigdelset(&t->wait_mask, tty_signals[i]);
    tty_caught = 0;
    memset(&t->catch_sa, 0, sizeof(t->catch_sa));
    t->catch_sa.sa_handler = tty_on_signal;
    sigemptyset(&t->catch_sa.sa_mask);
    t->catch_sa.sa_flags = 0; /* no SA_RESTART: ppoll returns EINTR */
    for (size_t i = 0; i < NTTY_SIGNALS; i++)
        sigaction(tty_signals[i], &t->catch_sa, &t->old_sa[i]);

    /* Echo off, and no canonical mode: its line buffer holds 4,095 bytes and drops the rest.
     * ISIG stays on, so Ctrl-C, Ctrl-\ and Ctrl-Z still send their signals (caught above). */
    t->quiet = t->saved;
    t->quiet.c_lflag &= (tcflag_t) ~(ECHO | ECHOE | ECHOK | ECHONL | ICANON);
    t->quiet.c_lflag |= ISIG;
    t->quiet.c_cc[VMIN] = 1;
    t->quiet.c_cc[VTIME] = 0;
    /* TCSAFLUSH: what was typed before the prompt (and maybe echoed) is not taken as the value. */
    if (tcsetattr(t->fd, TCSAFLUSH, &t->quiet) != 0)
        return rk_error_set(err, RK_EIO, "turning off the terminal's echo: %s", strerror(errno));
    t->quiet_on = 1;
    return 0;
}

/* Puts the terminal, the handlers and the signal mask back. Returns the signal that must now
 * end the process (0: none). */
static int
tty_close(struct tty *t)
{
    if (t->fd < 0)
        return 0;
    /* TCSAFLUSH: what was typed and not read (the rest of a refused line) does not reach the
     * shell, which would echo it or run it. */
    if (t->quiet_on)
        (void)tcsetattr(t->fd, TCSAFLUSH, &t->saved);
    t->quiet_on = 0;
    close(t->fd);
    t->fd = -1;
    for (size_t i = 0; i < NTTY_SIGNALS; i++)
        sigaction(tty_signals[i], &t->old_sa[i], NULL);
    sigprocmask(SIG_SETMASK, &t->old_mask, NULL);
    return t->fatal;
}

/* A stop signal arrived: restores the terminal, stops as the signal asks, and on SIGCONT takes
 * the terminal back. */
static void
tty_stop(struct tty *t, int sig)
{
    struct sigaction dfl;
    sigset_t one;

    (void)tcsetattr(t->fd, TCSAFLUSH, &t->saved);
    t->quiet_on = 0;
    tty_say(t, "\n");
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    sigemptyset(&one);
    sigaddset(&one, sig);
    raise(sig);                           /* pending: the signal is blocked */
    sigprocmask(SIG_UNBLOCK, &one, NULL); /* delivered: the process stops here */
    sigprocmask(SIG_BLOCK, &one, NULL);   /* continued */
    sigaction(sig, &t->catch_sa, NULL);
    if (tcsetattr(t->fd, TCSAFLUSH, &t->quiet) == 0)
        t->quiet_on = 1;
}

/* Removes the last character (all bytes of a UTF-8 sequence) of buf[0..*n), wiping it. */
static void
erase_char(struct secret *buf, size_t *n)
{
    while (*n > 0) {
        unsigned char c = buf->data[--(*n)];
        buf->data[*n] = 0;
        if ((c & 0xc0) != 0x80) /* not a continuation byte: the character's first byte */
            break;
    }
}

/* Shows prompt and reads one line into buf (at most max bytes) with the echo off; *n gets its
 * length. A stop signal restores the terminal, stops, and starts the line again. */
static int
tty_read_line(struct tty *t, const char *prompt, struct secret *buf, size_t max, size_t *n,
              struct rk_error *err)
{
    struct pollfd pfd = {.fd = t->fd, .events = POLLIN};
    size_t over = 0; /* bytes past max: read to the end of the line and dropped */
    int r = 0;

restart:
    secure_wipe(buf->data, buf->len);
    *n = 0;
    over = 0;
    tty_say(t, prompt);
    for (;;) {
        unsigned char ch;
        ssize_t rd;
        int sig;

        if (ppoll(&pfd, 1, NULL, &t->wait_mask) < 0) {
            if (errno != EINTR)
                return rk_error_set(err, RK_EIO, "waiting for the terminal: %s", strerror(errno));
            sig = tty_caught;
            tty_caught = 0;
            if (sig == 0)
                continue;
            if (is_stop_signal(sig)) {
                tty_stop(t, sig);
                goto restart;
            }
            t->fatal = sig;
            r = rk_error_set(err, RK_ECANCELED, "interrupted (signal %d); nothing was read", sig);
            break;
        }
        rd = read(t->fd, &ch, 1);
        if (rd < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (rd < 0) {
            r = rk_error_set(err, RK_EIO, "reading the terminal: %s", strerror(errno));
            break;
        }
        if (rd == 0 || (ch == t->saved.c_cc[VEOF] && ch != 0)) {
            if (*n == 0 && over == 0) /* end of input (Ctrl-D) before anything: no value */
                r = rk_error_set(err, RK_ECANCELED, "no value was entered");
            break;
        }
        if (ch == '\n' || ch == '\r')
            break;
        if ((ch == t->saved.c_cc[VERASE] && ch != 0) || ch == 0x7f || ch == '\b') {
            if (over > 0)
                over--;
            else
                erase_char(buf, n);
            ch = 0;
            continue;
        }
        if (ch == t->saved.c_cc[VKILL] && ch != 0) {
            secure_wipe(buf->data, *n);
            *n = 0;
            over = 0;
            continue;
        }
        if (*n >= max) {
            over++;
            ch = 0;
            continue;
        }
        buf->data[(*n)++] = ch;
        ch = 0;
    }
    tty_say(t, "\n");
    if (r == 0 && over > 0)
        r = rk_error_set(err, RK_ELIMIT,
                         "the value typed is longer than %zu bytes (%zu more); nothing was kept",
                         max, over);
    if (r != 0) {
        secure_wipe(buf->data, buf->len);
        *n = 0;
    }
    return r;
}

int
cli_read_secret(const char *prompt, const char *confirm, size_t max, struct secret **out,
                struct rk_error *err)
{
    struct secret *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    struct tty t;
    int r, fatal;

    *out = NULL;
    if (max == 0)
        max = CLI_SECRET_MAX;
    if ((r = tty_open(&t, err)) != 0)
        goto out;
    if ((a = secret_new(max)) == NULL || (confirm != NULL && (b = secret_new(max)) == NULL)) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    if ((r = tty_read_line(&t, prompt, a, max, &na, err)) != 0)
        goto out;
    if (confirm != NULL && (r = tty_read_line(&t, confirm, b, max, &nb, err)) != 0)
        goto out;
    if (confirm != NULL && (na != nb || CRYPTO_memcmp(a->data, b->data, na) != 0)) {
        r = rk_error_set(err, RK_EINVAL, "the two values typed differ; nothing was kept");
        goto out;
    }
    if ((*out = secret_from(a->data, na)) == NULL)
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
out:
    fatal = tty_close(&t);
    secret_free(a);
    secret_free(b);
    if (fatal != 0) {
        secret_free(*out);
        *out = NULL;
        fflush(NULL);
        raise(fatal); /* the caller's disposition: by default the process ends here */
        r = rk_error_set(err, RK_ECANCELED, "interrupted (signal %d); nothing was read", fatal);
    }
    return r;
}

/* ---- stdin and files ---- */

int
cli_read_secret_fd(int fd, const char *what, size_t max, unsigned flags, struct secret **out,
                   struct rk_error *err)
{
    struct secret *buf = NULL;
    size_t n = 0, nl = 0;
    int r = 0;

    *out = NULL;
    if (max == 0)
        max = CLI_SECRET_MAX;
    if (isatty(fd))
        return rk_error_set(err, RK_EINVAL,
                            "%s is a terminal and the value would be echoed as it is typed", what);
    /* Room for the value, a "\r\n", and one byte more to notice an overlong one. */
    if ((buf = secret_new(max + 3)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    for (;;) {
        ssize_t rd = read(fd, buf->data + n, buf->len - n);
        if (rd < 0 && errno == EINTR)
            continue;
        if (rd < 0) {
            r = rk_error_set(err, RK_EIO, "reading the value from %s: %s", what, strerror(errno));
            goto out;
        }
        if (rd == 0)
            break;
        n += (size_t)rd;
        if (n == buf->len)
            break;
    }
    if (n > 0 && buf->data[n - 1] == '\n')
        nl = 1;
    if (n > nl && buf->data[n - nl - 1] == '\r')
        nl++;
    if (n - nl > max) {
        r = rk_error_set(err, RK_ELIMIT,
                         "the value on %s is longer than %zu bytes; nothing was kept", what, max);
        goto out;
    }
    if ((flags & CLI_SECRET_STRIP_NL) != 0)
        n -= nl;
    if ((*out = secret_from(buf->data, n)) == NULL)
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
out:
    secret_free(buf);
    return r;
}

int
cli_read_secret_file(const char *path, size_t max, unsigned flags, struct secret **out,
                     struct rk_error *err)
{
    int fd, r;

    *out = NULL;
    if ((fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC)) < 0)
        return rk_error_set(err, errno == ENOENT ? RK_ENOTFOUND : RK_EIO, "opening %s: %s", path,
                            strerror(errno));
    r = cli_read_secret_fd(fd, path, max, flags, out, err);
    close(fd);
    return r;
}

/* ---- a manual kind's new value ---- */

/* Says where a person gets the value (the entry's kind's input hint: a provider's console),
 * before the prompt asks for it. Nothing for an entry not in the loaded inventory. */
static void
prompt_hint(struct cli_ctx *ctx, const char *path)
{
    const struct inv_secret *s = ctx->inv != NULL ? inventory_find(ctx->inv, path) : NULL;
    const struct rotator_ops *ops = s != NULL ? rotator_kind(s->kind) : NULL;
    char hint[256];

    if (ops != NULL && ops->input_hint != NULL && ops->input_hint(s, hint, sizeof(hint)) == 0)
        fprintf(stderr, "%s: %s\n", cli_esc(path), cli_esc(hint));
}

int
cli_read_value(struct cli_ctx *ctx, const char *path, int from_stdin, const char *from_file,
               int prompt, struct secret **out)
{
    char first[PATH_MAX_LEN + 64], again[PATH_MAX_LEN + 64];
    int r;

    *out = NULL;
    if (from_stdin) {
        if (isatty(STDIN_FILENO))
            return rk_error_set(&ctx->err, RK_EINVAL,
                                "--from-stdin: stdin is a terminal and the value would be echoed; "
                                "pipe it in, or leave out --from-stdin to be prompted for %s",
                                path);
        if ((r = cli_read_secret_fd(STDIN_FILENO, "stdin", CLI_SECRET_MAX, 0, out, &ctx->err)) != 0)
            return rk_error_prefix(&ctx->err, "%s", path);
        return 0;
    }
    if (from_file != NULL) {
        if ((r = cli_read_secret_file(from_file, CLI_SECRET_MAX, 0, out, &ctx->err)) != 0)
            return rk_error_prefix(&ctx->err, "%s: --from-file", path);
        return 0;
    }
    if (!prompt || !isatty(STDIN_FILENO))
        return 0;
    prompt_hint(ctx, path);
    snprintf(first, sizeof(first), "New value for %s (not echoed): ", path);
    snprintf(again, sizeof(again), "Repeat the new value for %s: ", path);
    if ((r = cli_read_secret(first, again, CLI_SECRET_MAX, out, &ctx->err)) != 0)
        return rk_error_prefix(&ctx->err, "%s", path);
    return 0;
}
