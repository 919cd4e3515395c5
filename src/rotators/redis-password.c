/* redis-password.c: kind "redis-password": the password of a Redis ACL user, changed with no
 * downtime, because an ACL user may hold several passwords at once (Redis 6 and later):
 *   apply    ACL SETUSER user >new on every node (`address`, or `addresses`: the primary and
 *            its replicas; ACLs are per node, not replicated), then `persist`
 *   test     a fresh connection to every node: AUTH user new, then PING
 *   promote, reload: the engine and the entry's hooks; the consumers switch over while both
 *            passwords work
 *   retire   after `grace`: ACL SETUSER user <old on every node, then `persist`
 *   unapply  a refused candidate: ACL SETUSER user <new on every node, then `persist`
 * `persist: acl-save | config-rewrite | none` runs ACL SAVE or CONFIG REWRITE after each change
 * so a restart of Redis keeps it. rekey connects as its own admin user (`admin_username`,
 * password read from the secret `admin_password_path` through the contract's narrow reader,
 * only once a node answers, so a Redis that is down reads as down).
 *
 * Outcomes: no answer (refused connection, timeout, LOADING, BUSY, MASTERDOWN, TRYAGAIN,
 * CLUSTERDOWN) is -RK_EUNAVAILABLE: the candidate waits and is tried again; any other error
 * (WRONGPASS, NOPERM, ERR …) is -RK_EREJECTED: the engine undoes the candidate on every node.
 * apply stops at the first node that fails; unapply and retire try every node.
 *
 * No value reaches a command line or a log. Every command is built as RESP bulk strings (each
 * argument length-prefixed, so a value is never parsed as part of a command) in the secure
 * heap and written to the socket from there, then wiped; hiredis only parses the replies, so no
 * copy of a password is left in its output buffer. An error reply is shown through
 * redis_error_text, which drops the quoted arguments Redis repeats. A password is removed only
 * when ACL GETUSER lists its SHA-256 (so running a step twice is harmless), never when it is
 * the user's only password, and a retire never removes the previous value from a node that
 * lacks the current one, nor when the previous value is current again (a rollback). */
#include "rotators/redis-password.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "util/enc.h"
#include "util/log.h"
#include "rotators/rotator.h"

#define RD_ARGS_MAX 16
#define RD_NAME_MAX 128 /* bytes of a user name */

/* The format of a new password is kind generated's (rotators/generated.c): its check and
 * create are reused through its row, so the syntax and the entropy rules are one. */
extern const struct rotator_ops rotator_generated;

/* ---- RESP, addresses, error text (redis-password.h) ---- */

int
redis_resp_command(size_t argc, const void *const *argv, const size_t *lens, struct secret **out,
                   struct rk_error *err)
{
    struct secret *buf;
    size_t total, at = 0;
    int n;

    *out = NULL;
    if (argc < 1 || argc > RD_ARGS_MAX)
        return rk_error_set(err, RK_EINVAL, "a Redis command takes 1 to %d arguments", RD_ARGS_MAX);
    /* "*N\r\n" and, per argument, "$L\r\n" + bytes + "\r\n": 24 bytes cover any header. */
    total = 24;
    for (size_t i = 0; i < argc; i++) {
        if (argv[i] == NULL && lens[i] != 0)
            return rk_error_set(err, RK_EINVAL, "argument %zu of a Redis command is missing", i);
        if (lens[i] > SIZE_MAX / 2 - total - 32)
            return rk_error_set(err, RK_EINVAL, "argument %zu of a Redis command is too long", i);
        total += 24 + lens[i] + 2;
    }
    if ((buf = secret_new(total)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    n = snprintf((char *)buf->data, total - at, "*%zu\r\n", argc);
    at += (size_t)n;
    for (size_t i = 0; i < argc; i++) {
        n = snprintf((char *)buf->data + at, total - at, "$%zu\r\n", lens[i]);
        at += (size_t)n;
        if (lens[i] > 0)
            memcpy(buf->data + at, argv[i], lens[i]);
        at += lens[i];
        buf->data[at++] = '\r';
        buf->data[at++] = '\n';
    }
    /* The unused tail of the block is zero (secret_new); len says what is sent. */
    buf->len = at;
    *out = buf;
    return 0;
}

int
redis_address_parse(const char *text, size_t len, char *host, size_t hostlen, int *port,
                    struct rk_error *err)
{
    const char *h = text, *p = NULL, *end = text + len;
    size_t hl;
    long v = 6379;

    if (len > 0 && text[0] == '[') {
        const char *close = memchr(text, ']', len);
        if (close == NULL)
            return rk_error_set(err, RK_ECONFIG, "'%.*s': an IPv6 address needs its ']'",
                                (int)(len > 80 ? 80 : len), text);
        h = text + 1;
        hl = (size_t)(close - h);
        if (close + 1 < end) {
            if (close[1] != ':')
                return rk_error_set(err, RK_ECONFIG, "'%.*s': expected ':PORT' after ']'",
                                    (int)(len > 80 ? 80 : len), text);
            p = close + 2;
        }
    } else {
        const char *colon = memchr(text, ':', len);
        if (colon != NULL && memchr(colon + 1, ':', (size_t)(end - colon - 1)) != NULL)
            return rk_error_set(err, RK_ECONFIG,
                                "'%.*s': write an IPv6 address in brackets: [ADDR]:PORT",
                                (int)(len > 80 ? 80 : len), text);
        hl = colon != NULL ? (size_t)(colon - text) : len;
        if (colon != NULL)
            p = colon + 1;
    }
    if (hl == 0 || hl >= hostlen || hl >= REDIS_HOST_MAX)
        return rk_error_set(err, RK_ECONFIG, "'%.*s': expected host:port, e.g. 10.0.0.5:6379",
                            (int)(len > 80 ? 80 : len), text);
    for (size_t i = 0; i < hl; i++) {
        char ch = h[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-' || ch == '_' || (ch == ':' && h != text)))
            return rk_error_set(err, RK_ECONFIG,
                                "'%.*s': the host may hold only letters, digits, '.', '-' and "
                                "'_' (an IPv6 address goes in brackets)",
                                (int)(len > 80 ? 80 : len), text);
    }
    if (p != NULL) {
        v = 0;
        if (p == end || end - p > 5)
            v = -1;
        for (const char *q = p; v >= 0 && q < end; q++)
            v = *q >= '0' && *q <= '9' ? v * 10 + (*q - '0') : -1;
        if (v < 1 || v > 65535)
            return rk_error_set(err, RK_ECONFIG, "'%.*s': the port must be 1..65535",
                                (int)(len > 80 ? 80 : len), text);
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)v;
    return 0;
}

/* 1 when value (non-empty) occurs in msg[0..len). */
static int
occurs(const char *msg, size_t len, const struct secret *value)
{
    return value != NULL && value->len > 0 && value->len <= len &&
           memmem(msg, len, value->data, value->len) != NULL;
}

void
redis_error_text(const char *msg, size_t len, const struct secret *const *hide, size_t nhide,
                 char *buf, size_t buflen)
{
    size_t at = 0, word;
    int quoted = 0;

    if (buflen == 0)
        return;
    buf[0] = '\0';
    if (msg == NULL)
        return;
    word = 0;
    while (word < len && msg[word] != ' ')
        word++;
    for (size_t i = 0; i < nhide; i++)
        if (occurs(msg, len, hide[i])) {
            snprintf(buf, buflen, "%.*s (the rest of the message is withheld: it quotes a value)",
                     (int)(word > 32 ? 32 : word), msg);
            for (char *q = buf; *q != '\0'; q++)
                if (*q < 0x20 || *q > 0x7e)
                    *q = '?';
            return;
        }
    for (size_t i = 0; i < len && at + 4 < buflen; i++) {
        unsigned char ch = (unsigned char)msg[i];
        if (ch == '\'') {
            quoted = !quoted;
            if (quoted) {
                /* "'" + U+2026 (3 bytes) + "'" */
                if (at + 6 >= buflen)
                    break;
                memcpy(buf + at, "'\xe2\x80\xa6'", 5);
                at += 5;
            }
            continue;
        }
        if (quoted)
            continue;
        buf[at++] = ch >= 0x20 && ch <= 0x7e ? (char)ch : '?';
    }
    buf[at] = '\0';
}

/* ---- the entry's settings ---- */

enum rd_persist { RD_PERSIST_NONE = 0, RD_PERSIST_ACL_SAVE, RD_PERSIST_CONFIG_REWRITE };

struct rd_node {
    char host[REDIS_HOST_MAX];
    int port;
    char label[REDIS_HOST_MAX + 16]; /* "host:port" or "[v6]:port", for messages */
};

struct rd_conf {
    const char *path; /* the entry's */
    struct rd_node nodes[REDIS_NODES_MAX];
    size_t nnodes;
    const char *user, *admin_user, *admin_path, *admin_field;
    enum rd_persist persist;
    int timeout_s;
};

/* A user name as Redis's ACL file can hold it: printable ASCII without spaces. */
static int
name_ok(const char *s)
{
    size_t n = 0;

    for (; s[n] != '\0'; n++)
        if ((unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
            return 0;
    return n > 0 && n <= RD_NAME_MAX;
}

static int
add_node(struct rd_conf *cf, const char *text, size_t len, const char *key, struct rk_error *err)
{
    struct rd_node *n;

    while (len > 0 && text[0] == ' ')
        text++, len--;
    while (len > 0 && text[len - 1] == ' ')
        len--;
    if (cf->nnodes == REDIS_NODES_MAX)
        return rk_error_set(err, RK_ECONFIG, "%s: at most %d nodes", key, REDIS_NODES_MAX);
    n = &cf->nodes[cf->nnodes];
    if (redis_address_parse(text, len, n->host, sizeof(n->host), &n->port, err) != 0)
        return rk_error_prefix(err, "%s", key);
    snprintf(n->label, sizeof(n->label), strchr(n->host, ':') ? "[%s]:%d" : "%s:%d", n->host,
             n->port);
    for (size_t i = 0; i < cf->nnodes; i++)
        if (strcmp(cf->nodes[i].label, n->label) == 0)
            return rk_error_set(err, RK_ECONFIG, "%s: %s is listed twice", key, n->label);
    cf->nnodes++;
    return 0;
}

/* Reads the entry's settings (filled with their defaults at load) into *cf, checked. Returns 0
 * or -RK_ECONFIG naming the setting. */
static int
rd_conf_load(const struct inv_secret *s, struct rd_conf *cf, struct rk_error *err)
{
    const char *one = inv_param(s, "address"), *list = inv_param(s, "addresses");
    const char *persist = inv_param(s, "persist");
    int64_t t = 5;
    int r;

    memset(cf, 0, sizeof(*cf));
    cf->path = s->path;
    if (one != NULL && list != NULL)
        return rk_error_set(err, RK_ECONFIG,
                            "address: set address (one node) or addresses (every node), not "
                            "both");
    if (one == NULL && list == NULL)
        return rk_error_set(err, RK_ECONFIG,
                            "missing required key 'address' (host:port; or addresses: the "
                            "host:port of every node, primary and replicas)");
    if (one != NULL && (r = add_node(cf, one, strlen(one), "address", err)) != 0)
        return r;
    for (const char *p = list; p != NULL && *p != '\0';) {
        size_t n = strcspn(p, ",");
        if ((r = add_node(cf, p, n, "addresses", err)) != 0)
            return r;
        p += n;
        if (*p == ',')
            p++;
    }
    if (cf->nnodes == 0)
        return rk_error_set(err, RK_ECONFIG, "addresses: the list is empty");
    cf->user = inv_param(s, "username");
    cf->admin_user = inv_param(s, "admin_username");
    cf->admin_path = inv_param(s, "admin_password_path");
    cf->admin_field = inv_param(s, "admin_password_field");
    if (cf->user == NULL || !name_ok(cf->user))
        return rk_error_set(err, RK_ECONFIG, "username: 1..%d printable characters without spaces",
                            RD_NAME_MAX);
    if (cf->admin_user == NULL || !name_ok(cf->admin_user))
        return rk_error_set(err, RK_ECONFIG,
                            "admin_username: 1..%d printable characters without spaces",
                            RD_NAME_MAX);
    if (cf->admin_field == NULL || cf->admin_field[0] == '\0')
        cf->admin_field = "password";
    /* rekey authenticating as the user it rotates, with a password kept elsewhere, would remove
     * that password at the first retire and lock itself out. Its own path is fine: rekey then
     * authenticates with the current value, which every step leaves in place. */
    if (cf->admin_path != NULL && strcmp(cf->user, cf->admin_user) == 0 &&
        strcmp(cf->admin_path, s->path) != 0)
        return rk_error_set(err, RK_ECONFIG,
                            "admin_username: rekey would authenticate as %s, the user it "
                            "rotates, with the password in %s, and remove that password at the "
                            "first retire; give rekey its own ACL user, or set "
                            "admin_password_path to this entry's path",
                            cf->user, cf->admin_path);
    if (persist == NULL || strcmp(persist, "none") == 0)
        cf->persist = RD_PERSIST_NONE;
    else if (strcmp(persist, "acl-save") == 0)
        cf->persist = RD_PERSIST_ACL_SAVE;
    else if (strcmp(persist, "config-rewrite") == 0)
        cf->persist = RD_PERSIST_CONFIG_REWRITE;
    else
        return rk_error_set(err, RK_ECONFIG, "persist: expected acl-save|config-rewrite|none");
    if (inv_param_duration(s, "timeout", 5, &t) != 0 || t < 1 || t > 300)
        return rk_error_set(err, RK_ECONFIG, "timeout: expected 1s..300s");
    cf->timeout_s = (int)t;
    return 0;
}

static int
redis_check(const struct inv_secret *s, struct rk_error *err)
{
    struct rd_conf cf;
    int r;

    if ((r = rd_conf_load(s, &cf, err)) != 0)
        return r;
    return rotator_generated.check(s, err);
}

static void
redis_lint(const struct inv_secret *s, const struct inventory *inv, inv_lint_report_fn report,
           void *arg)
{
    const char *persist = inv_param(s, "persist");

    (void)inv;
    if (inv_param(s, "admin_password_path") == NULL)
        report(arg, "warning",
               "no admin_password_path: rekey connects to Redis without authenticating; give "
               "rekey its own ACL user (admin_username) and store its password in rekey");
    if (persist == NULL || strcmp(persist, "none") == 0)
        report(arg, "warning",
               "persist: none: a restart of Redis forgets the new password (and brings the old "
               "one back) unless its ACL file or config is saved by other means; set persist: "
               "acl-save or config-rewrite");
}

/* ---- one node ---- */

struct rd_sess {
    const struct rd_conf *cf;
    const struct rd_node *n;
    redisContext *c;
    const struct secret *hide[3]; /* values an error reply must not show */
};

static int
rd_fail_io(struct rd_sess *s, const char *what, struct rk_error *err)
{
    int proto = s->c->err == REDIS_ERR_PROTOCOL;

    /* A protocol error: something that is not Redis answers there; trying again will not
     * help. Anything else (reset, EOF, timeout) is a node that did not answer. */
    return rk_error_set(err, proto ? RK_EREJECTED : RK_EUNAVAILABLE, "redis %s: %s: %s%s",
                        s->n->label, what, proto ? "not a Redis reply: " : "no answer: ",
                        s->c->errstr[0] ? s->c->errstr : "connection lost");
}

/* An error reply: LOADING, BUSY… are a node that cannot answer now; the rest refuse. */
static int
rd_fail_reply(struct rd_sess *s, const char *what, const redisReply *rep, struct rk_error *err)
{
    static const char *const later[] = {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"};
    char text[200];
    size_t word = strcspn(rep->str != NULL ? rep->str : "", " ");
    int code = RK_EREJECTED;

    for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++)
        if (strlen(later[i]) == word && strncmp(rep->str, later[i], word) == 0)
            code = RK_EUNAVAILABLE;
    redis_error_text(rep->str, rep->len, s->hide, 3, text, sizeof(text));
    return rk_error_set(err, code, "redis %s: %s: %s", s->n->label, what, text);
}

/* Sends one command (argv as RESP bulk strings, from the secure heap) and reads its reply
 * into *out (freeReplyObject). An error reply is turned into the outcome (rd_fail_reply) and
 * *out is NULL. Returns 0, -RK_EUNAVAILABLE, -RK_EREJECTED or -RK_ENOMEM. */
static int
rd_call(struct rd_sess *s, const char *what, size_t argc, const void *const *argv,
        const size_t *lens, redisReply **out, struct rk_error *err)
{
    struct secret *cmd = NULL;
    void *rep = NULL;
    size_t off = 0;
    int r;

    *out = NULL;
    if ((r = redis_resp_command(argc, argv, lens, &cmd, err)) != 0)
        return r;
    while (off < cmd->len) {
        ssize_t w = send(s->c->fd, cmd->data + off, cmd->len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            secret_free(cmd);
            return rk_error_set(err, RK_EUNAVAILABLE, "redis %s: %s: sending: %s", s->n->label,
                                what, e == EAGAIN || e == EWOULDBLOCK ? "timed out" : strerror(e));
        }
        off += (size_t)w;
    }
    secret_free(cmd);
    /* Nothing is queued in hiredis's own output buffer, so this only reads. */
    if (redisGetReply(s->c, &rep) != REDIS_OK || rep == NULL)
        return rd_fail_io(s, what, err);
    if (((redisReply *)rep)->type == REDIS_REPLY_ERROR) {
        r = rd_fail_reply(s, what, rep, err);
        freeReplyObject(rep);
        return r;
    }
    *out = rep;
    return 0;
}

/* A command whose answer must be +OK. */
static int
rd_call_ok(struct rd_sess *s, const char *what, size_t argc, const void *const *argv,
           const size_t *lens, struct rk_error *err)
{
    redisReply *rep = NULL;
    int r = rd_call(s, what, argc, argv, lens, &rep, err);

    if (r == 0 &&
        !(rep->type == REDIS_REPLY_STATUS && rep->str != NULL && strcasecmp(rep->str, "OK") == 0))
        r = rk_error_set(err, RK_EREJECTED, "redis %s: %s: unexpected answer (type %d)",
                         s->n->label, what, rep->type);
    if (rep != NULL)
        freeReplyObject(rep);
    return r;
}

static void
rd_close(struct rd_sess *s)
{
    if (s->c != NULL)
        redisFree(s->c);
    s->c = NULL;
}

/* Connects to node n with the entry's timeout for the connection and for every reply. */
static int
rd_connect(const struct rd_conf *cf, const struct rd_node *n, struct rd_sess *s,
           struct rk_error *err)
{
    struct timeval tv = {.tv_sec = cf->timeout_s, .tv_usec = 0};
    int r;

    s->cf = cf;
    s->n = n;
    s->c = redisConnectWithTimeout(n->host, n->port, tv);
    if (s->c == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if (s->c->err != 0) {
        r = rk_error_set(err, RK_EUNAVAILABLE, "redis %s: cannot connect: %s", n->label,
                         s->c->errstr[0] ? s->c->errstr : "connection failed");
        rd_close(s);
        return r;
    }
    if (redisSetTimeout(s->c, tv) != REDIS_OK) {
        r = rk_error_set(err, RK_EUNAVAILABLE, "redis %s: setting the timeout: %s", n->label,
                         s->c->errstr);
        rd_close(s);
        return r;
    }
    return 0;
}

/* AUTH user password on an open session. */
static int
rd_auth(struct rd_sess *s, const char *user, const struct secret *pw, const char *what,
        struct rk_error *err)
{
    const void *argv[] = {"AUTH", user, pw->data};
    const size_t lens[] = {4, strlen(user), pw->len};

    return rd_call_ok(s, what, 3, argv, lens, err);
}

/* The state of one node's run of a step: the admin password is read once, after the first
 * node answers. */
struct rd_job {
    struct rot_ctx *rc;
    struct rd_conf cf;
    struct secret *admin_pw;
    int admin_read;
};

static int
rd_job_init(struct rot_ctx *c, struct rd_job *j, struct rk_error *err)
{
    memset(j, 0, sizeof(*j));
    j->rc = c;
    return rd_conf_load(c->secret, &j->cf, err);
}

static void
rd_job_clear(struct rd_job *j)
{
    secret_free(j->admin_pw);
    j->admin_pw = NULL;
}

/* Connects to node n and authenticates as rekey's admin user. */
static int
rd_open_admin(struct rd_job *j, const struct rd_node *n, struct rd_sess *s, struct rk_error *err)
{
    int r;

    if ((r = rd_connect(&j->cf, n, s, err)) != 0)
        return r;
    if (!j->admin_read && j->cf.admin_path != NULL) {
        r = j->rc->read_secret(j->rc->read_arg, j->cf.admin_path, j->cf.admin_field, &j->admin_pw,
                               err);
        if (r != 0) {
            rd_close(s);
            if (r == -RK_ENOTFOUND || r == -RK_EINVAL) {
                struct rk_error e = *err;
                return rk_error_set(err, RK_EREJECTED,
                                    "%s; rekey's Redis admin password goes there: rekey kv put "
                                    "%s %s=-",
                                    e.msg, j->cf.admin_path, j->cf.admin_field);
            }
            return r;
        }
    }
    j->admin_read = 1;
    s->hide[2] = j->admin_pw;
    if (j->admin_pw != NULL &&
        (r = rd_auth(s, j->cf.admin_user, j->admin_pw, "AUTH as the admin user", err)) != 0) {
        rd_close(s);
        return r;
    }
    return 0;
}

/* ---- ACL GETUSER ---- */

struct rd_user {
    redisReply *rep;             /* the answer; passwords point into it */
    const redisReply *passwords; /* array of hex SHA-256, or NULL */
    int nopass;
};

static const redisReply *
rd_map_get(const redisReply *map, const char *key)
{
    if (map == NULL || map->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < map->elements; i += 2) {
        const redisReply *k = map->element[i];
        if ((k->type == REDIS_REPLY_STRING || k->type == REDIS_REPLY_STATUS) && k->str != NULL &&
            strcmp(k->str, key) == 0)
            return map->element[i + 1];
    }
    return NULL;
}

/* ACL GETUSER: -RK_ENOTFOUND (no such user; err not set) or the passwords and flags. */
static int
rd_user_get(struct rd_sess *s, const char *user, struct rd_user *u, struct rk_error *err)
{
    const void *argv[] = {"ACL", "GETUSER", user};
    const size_t lens[] = {3, 7, strlen(user)};
    const redisReply *flags;
    int r;

    memset(u, 0, sizeof(*u));
    if ((r = rd_call(s, "ACL GETUSER", 3, argv, lens, &u->rep, err)) != 0)
        return r;
    if (u->rep->type == REDIS_REPLY_NIL) {
        freeReplyObject(u->rep);
        u->rep = NULL;
        return -RK_ENOTFOUND;
    }
    flags = rd_map_get(u->rep, "flags");
    u->passwords = rd_map_get(u->rep, "passwords");
    if (u->passwords == NULL || u->passwords->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(u->rep);
        u->rep = NULL;
        return rk_error_set(err, RK_EREJECTED,
                            "redis %s: ACL GETUSER %s: the answer lists no passwords (Redis 6 "
                            "or later is needed)",
                            s->n->label, user);
    }
    for (size_t i = 0; flags != NULL && flags->type == REDIS_REPLY_ARRAY && i < flags->elements;
         i++)
        if (flags->element[i]->str != NULL && strcmp(flags->element[i]->str, "nopass") == 0)
            u->nopass = 1;
    return 0;
}

static void
rd_user_free(struct rd_user *u)
{
    if (u->rep != NULL)
        freeReplyObject(u->rep);
    memset(u, 0, sizeof(*u));
}

/* 1 when the user has password pw (its SHA-256 is listed), else 0. */
static int
rd_user_has(const struct rd_user *u, const struct secret *pw)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    int found = 0;

    if (pw == NULL || EVP_Digest(pw->data, pw->len, md, &mdlen, EVP_sha256(), NULL) != 1)
        return 0;
    hex_encode(md, mdlen, hex);
    for (size_t i = 0; i < u->passwords->elements; i++) {
        const redisReply *e = u->passwords->element[i];
        if (e->str != NULL && e->len == 2 * (size_t)mdlen &&
            CRYPTO_memcmp(e->str, hex, e->len) == 0)
            found = 1;
    }
    secure_wipe(md, sizeof(md));
    secure_wipe(hex, sizeof(hex));
    return found;
}

/* ACL SETUSER user <op>pw, where op is '>' (add) or '<' (remove). The argument is built in the
 * secure heap and wiped. */
static int
rd_setuser(struct rd_sess *s, const char *user, char op, const struct secret *pw,
           struct rk_error *err)
{
    struct secret *arg = secret_new(pw->len + 1);
    const void *argv[4];
    size_t lens[4];
    int r;

    if (arg == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    arg->data[0] = (unsigned char)op;
    memcpy(arg->data + 1, pw->data, pw->len);
    argv[0] = "ACL", lens[0] = 3;
    argv[1] = "SETUSER", lens[1] = 7;
    argv[2] = user, lens[2] = strlen(user);
    argv[3] = arg->data, lens[3] = arg->len;
    r = rd_call_ok(
        s, op == '>' ? "ACL SETUSER (adding a password)" : "ACL SETUSER (removing a password)", 4,
        argv, lens, err);
    secret_free(arg);
    return r;
}

/* ACL SAVE or CONFIG REWRITE, as the entry's `persist` says. */
static int
rd_persist(struct rd_sess *s, struct rk_error *err)
{
    const void *argv[2];
    size_t lens[2];

    switch (s->cf->persist) {
    case RD_PERSIST_NONE: return 0;
    case RD_PERSIST_ACL_SAVE:
        argv[0] = "ACL", lens[0] = 3;
        argv[1] = "SAVE", lens[1] = 4;
        return rd_call_ok(s, "ACL SAVE (persist: acl-save)", 2, argv, lens, err);
    case RD_PERSIST_CONFIG_REWRITE:
        argv[0] = "CONFIG", lens[0] = 6;
        argv[1] = "REWRITE", lens[1] = 7;
        return rd_call_ok(s, "CONFIG REWRITE (persist: config-rewrite)", 2, argv, lens, err);
    }
    return 0;
}

/* Removes password pw of the user on node n (unapply, retire). keep: a password that must stay
 * set on the node for the removal to go ahead (the current value at retire), or NULL. */
static int
rd_remove_on(struct rd_job *j, const struct rd_node *n, const struct secret *pw,
             const struct secret *keep, const char *which, struct rk_error *err)
{
    struct rd_sess s = {0};
    struct rd_user u = {0};
    int r;

    s.hide[0] = pw;
    s.hide[1] = keep;
    if ((r = rd_open_admin(j, n, &s, err)) != 0)
        return r;
    r = rd_user_get(&s, j->cf.user, &u, err);
    if (r == -RK_ENOTFOUND) {
        /* No such user: nothing to remove. */
        r = 0;
        goto out;
    }
    if (r != 0 || !rd_user_has(&u, pw))
        goto out;
    if (keep != NULL && !rd_user_has(&u, keep)) {
        r = rk_error_set(err, RK_EREJECTED,
                         "redis %s: the current password of user %s is not set there; the %s "
                         "one is kept so the user is not locked out ('rekey rotate %s' sets a "
                         "new one everywhere)",
                         n->label, j->cf.user, which, j->cf.path);
        goto out;
    }
    if (u.passwords->elements < 2) {
        r = rk_error_set(err, RK_EREJECTED,
                         "redis %s: the %s password is the only one user %s has; it is kept so "
                         "the user is not locked out",
                         n->label, which, j->cf.user);
        goto out;
    }
    if ((r = rd_setuser(&s, j->cf.user, '<', pw, err)) != 0)
        goto out;
    log_info("%s: redis %s: removed the %s password of user %s", j->cf.path, n->label, which,
             j->cf.user);
    r = rd_persist(&s, err);
out:
    rd_user_free(&u);
    rd_close(&s);
    return r;
}

/* ---- the steps ---- */

static int
redis_create(struct rot_ctx *c, struct rot_fields *out, struct rk_error *err)
{
    return rotator_generated.create(c, out, err);
}

static int
redis_apply(struct rot_ctx *c, struct rk_error *err)
{
    struct rd_job j;
    int r;

    if (c->new_value == NULL)
        return rk_error_set(err, RK_EINTERNAL, "%s: no candidate to apply", c->secret->path);
    if ((r = rd_job_init(c, &j, err)) != 0)
        return r;
    for (size_t i = 0; i < j.cf.nnodes && r == 0; i++) {
        const struct rd_node *n = &j.cf.nodes[i];
        struct rd_sess s = {0};
        struct rd_user u = {0};

        s.hide[0] = c->new_value;
        s.hide[1] = c->old_value;
        if ((r = rd_open_admin(&j, n, &s, err)) != 0)
            break;
        r = rd_user_get(&s, j.cf.user, &u, err);
        if (r == -RK_ENOTFOUND)
            r = rk_error_set(err, RK_EREJECTED,
                             "redis %s: there is no ACL user %s; create it first (rekey changes "
                             "its passwords, it does not make users)",
                             n->label, j.cf.user);
        else if (r == 0 && u.nopass)
            /* A password would end the password-less logins its clients rely on now. */
            r = rk_error_set(err, RK_EREJECTED,
                             "redis %s: user %s has nopass (any password works); give it a "
                             "password first and store that in rekey (rekey kv put %s %s=-)",
                             n->label, j.cf.user, j.cf.path, rotator_field(c->secret));
        else if (r == 0 && !rd_user_has(&u, c->new_value)) {
            if ((r = rd_setuser(&s, j.cf.user, '>', c->new_value, err)) == 0)
                log_info("%s: redis %s: added the new password (v%llu) to user %s", j.cf.path,
                         n->label, (unsigned long long)c->new_version, j.cf.user);
        }
        if (r == 0)
            r = rd_persist(&s, err);
        rd_user_free(&u);
        rd_close(&s);
    }
    rd_job_clear(&j);
    return r;
}

static int
redis_unapply(struct rot_ctx *c, struct rk_error *err)
{
    struct rd_job j;
    struct rk_error e2;
    int r, first = 0;

    if (c->new_value == NULL)
        return 0;
    if ((r = rd_job_init(c, &j, err)) != 0)
        return r;
    /* Every node, also past one that fails: each that took the candidate gives it up. */
    for (size_t i = 0; i < j.cf.nnodes; i++) {
        rk_error_clear(&e2);
        r = rd_remove_on(&j, &j.cf.nodes[i], c->new_value, NULL, "refused new", &e2);
        if (r != 0) {
            log_error("%s: undo: %s", j.cf.path, e2.msg);
            if (first == 0) {
                first = r;
                rk_error_set(err, -r, "%s", e2.msg);
            }
        }
    }
    rd_job_clear(&j);
    return first;
}

static int
redis_test(struct rot_ctx *c, struct rk_error *err)
{
    struct rd_conf cf;
    int r;

    if (c->new_value == NULL)
        return rk_error_set(err, RK_EINTERNAL, "%s: no candidate to test", c->secret->path);
    if ((r = rd_conf_load(c->secret, &cf, err)) != 0)
        return r;
    for (size_t i = 0; i < cf.nnodes && r == 0; i++) {
        struct rd_sess s = {0};
        const void *argv[] = {"PING"};
        const size_t lens[] = {4};
        redisReply *rep = NULL;

        s.hide[0] = c->new_value;
        s.hide[1] = c->old_value;
        /* A fresh connection, as a consumer makes after its reload. */
        if ((r = rd_connect(&cf, &cf.nodes[i], &s, err)) != 0)
            break;
        r = rd_auth(&s, cf.user, c->new_value, "AUTH with the new password", err);
        if (r == 0) {
            r = rd_call(&s, "PING after AUTH", 1, argv, lens, &rep, err);
            /* AUTH passed, which is the proof; a user without +ping answers NOPERM. */
            if (r == -RK_EREJECTED && strstr(err->msg, "NOPERM") != NULL) {
                rk_error_clear(err);
                r = 0;
            }
        }
        if (rep != NULL)
            freeReplyObject(rep);
        rd_close(&s);
    }
    return r;
}

static int
redis_retire(struct rot_ctx *c, struct rk_error *err)
{
    struct rd_job j;
    struct secret *cur = NULL;
    struct rk_error e2;
    int r, first = 0;

    if (c->old_value == NULL)
        return 0; /* the version has no password (written by hand): nothing to remove */
    r = c->read_secret(c->read_arg, c->secret->path, rotator_field(c->secret), &cur, err);
    if (r == -RK_ENOTFOUND)
        rk_error_clear(err);
    else if (r != 0)
        return r;
    if (cur != NULL && secret_equal(cur, c->old_value)) {
        /* A rollback made the previous value current again. */
        log_info("%s: the previous password is current again; nothing to retire", c->secret->path);
        secret_free(cur);
        return 0;
    }
    if ((r = rd_job_init(c, &j, err)) != 0) {
        secret_free(cur);
        return r;
    }
    for (size_t i = 0; i < j.cf.nnodes; i++) {
        rk_error_clear(&e2);
        r = rd_remove_on(&j, &j.cf.nodes[i], c->old_value, cur, "previous", &e2);
        if (r != 0 && first == 0) {
            first = r;
            rk_error_set(err, -r, "%s", e2.msg);
        }
    }
    rd_job_clear(&j);
    secret_free(cur);
    return first;
}

static const struct inv_setting redis_password_settings[] = {
    {.name = "address", .type = IS_STRING, .help = "host:port of the one node"},
    {.name = "addresses",
     .type = IS_LIST,
     .help = "host:port of every node (primary and replicas), changed together"},
    {.name = "username", .type = IS_STRING, .def = "default", .help = "the ACL user"},
    {.name = "admin_username",
     .type = IS_STRING,
     .def = "default",
     .help = "the ACL user rekey connects as (needs +acl, and +config for config-rewrite)"},
    {.name = "admin_password_path",
     .type = IS_SECRET_PATH,
     .help = "the secret in rekey holding the admin user's password"},
    {.name = "admin_password_field",
     .type = IS_STRING,
     .def = "password",
     .help = "the field of admin_password_path"},
    {.name = "persist",
     .type = IS_ENUM,
     .def = "none",
     .choices = "acl-save|config-rewrite|none",
     .help = "how each change survives a restart of Redis"},
    {.name = "timeout",
     .type = IS_DURATION,
     .def = "5s",
     .max = 300,
     .help = "to connect and for each answer"},
    {.name = "format",
     .type = IS_STRING,
     .def = "{hex:64}",
     .help = "the new password, as kind generated's format",
     .offset = offsetof(struct inv_secret, format)},
    {0},
};

const struct rotator_ops rotator_redis_password = {
    .version = ROTATOR_OPS_VERSION,
    .kind = "redis-password",
    .check = redis_check,
    .create = redis_create,
    .apply = redis_apply,
    .unapply = redis_unapply,
    .test = redis_test,
    .retire = redis_retire,
    .lint = redis_lint,
    .settings = redis_password_settings,
    .default_field = "password",
};
