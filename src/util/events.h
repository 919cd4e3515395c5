/* events.h: the one subscription point for what rekey does. The rotation engine publishes each
 * step and outcome of a rotation; the API publishes each request (before its handler runs) and
 * each response; the CLI publishes the operations it runs on a local store. Subscribers (the
 * audit log, the metrics) register once at start and see every event without the engine, the
 * router or a command knowing they exist.
 *
 * An event never holds a secret value or a token: values appear as fingerprints, tokens as
 * accessors. Strings are borrowed for the duration of the call; a subscriber copies what it
 * keeps. Subscribers run synchronously in the publishing thread, in registration order, and
 * must be thread-safe. */
#ifndef REKEY_EVENTS_H
#define REKEY_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

enum rk_event_type {
    EV_ROTATION_STEP = 1, /* a step of a rotation began or ended (step, outcome) */
    EV_ROTATION_RESULT,   /* a rotation, rollback, revoke, finish or done ended (outcome) */
    EV_API_REQUEST,       /* a request was authenticated and is about to be handled */
    EV_API_RESPONSE,      /* a request was answered (status) */
    EV_LOCAL_OP,          /* a CLI operation on a local store (kv put/get, operator, …) */
};

#define EV_MASK(t) (1u << (t))
#define EV_MASK_ALL 0xffffffffu

struct rk_event {
    enum rk_event_type type;
    int64_t time_us;        /* wall clock */
    const char *request_id; /* API requests; NULL otherwise */
    const char *operation;  /* rotate, rollback, revoke, finish, done, recover; read, create,
                             * update, delete, list (API, as Vault names them); kv-put … */
    const char *path;       /* the secret's or the request's path */
    const char *step;       /* rotation steps: create, apply, test, promote, reload, finish, undo */
    const char *outcome;    /* ok, failed, rolled-back, unavailable, started */
    uint64_t from_version, to_version;
    const char *fingerprint;     /* of the new value, when there is one */
    const char *actor;           /* author, token display name or local user */
    const char *accessor;        /* the token's accessor (API); never the token */
    const char *const *policies; /* the token's policies, NULL-terminated; may be NULL */
    const char *reason;
    const char *remote_addr; /* API: the client address after trusted proxies */
    int status;              /* API responses: the HTTP status */
    int64_t duration_us;     /* results and responses */
    const char *message;     /* what happened, for people (a step's progress); never a secret */
    const char *error;       /* a failure's message; never a secret */
    const char *route;       /* API: the route family (kv, sys, token, rekey…), for metrics */
};

/* Called for each event whose type is in the subscriber's mask. A non-zero return from an
 * EV_API_REQUEST or EV_LOCAL_OP subscriber fails the operation before it runs (the audit log
 * could not record it); from an EV_API_RESPONSE subscriber it turns the answer into a 500 (as
 * Vault does when no audit device can record a response); other types ignore the return. */
typedef int (*rk_event_fn)(void *arg, const struct rk_event *ev, struct rk_error *err);

#define EVENTS_MAX_SUBSCRIBERS 16

/* Registers fn for the types in mask. Returns an id (>= 0) for events_unsubscribe, or
 * -RK_ELIMIT when EVENTS_MAX_SUBSCRIBERS are registered. Thread-safe. */
int events_subscribe(unsigned mask, rk_event_fn fn, void *arg);

/* Removes a subscriber; after it returns, fn is not running and will not be called again. */
void events_unsubscribe(int id);

/* Delivers ev to every subscriber of its type (ev->time_us is filled when 0). Returns 0, or the
 * first subscriber's error (with its message in err) for the types that may fail (requests,
 * responses and local operations). With no
 * subscriber the cost is one atomic load. */
int events_publish(struct rk_event *ev, struct rk_error *err);

/* 1 when some subscriber takes events of type t (to skip building an event nobody reads). */
int events_wanted(enum rk_event_type t);

#endif
