/* events.c: see events.h. A fixed table of subscribers under a read-write lock: publishing takes
 * the read side (publishers never wait for each other), subscribing and unsubscribing the write
 * side, so unsubscribe returns only once no publisher is inside the subscriber. The union of the
 * masks is kept in an atomic word so that a publisher with nobody listening takes no lock. */
#include "util/events.h"

#include <pthread.h>
#include <stdatomic.h>

#include "util/timeutil.h"

struct sub {
    rk_event_fn fn;
    void *arg;
    unsigned mask;
};

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static struct sub subs[EVENTS_MAX_SUBSCRIBERS];
static _Atomic unsigned wanted;

static void
recompute_locked(void)
{
    unsigned m = 0;

    for (size_t i = 0; i < EVENTS_MAX_SUBSCRIBERS; i++)
        if (subs[i].fn != NULL)
            m |= subs[i].mask;
    atomic_store(&wanted, m);
}

int
events_subscribe(unsigned mask, rk_event_fn fn, void *arg)
{
    int id = -RK_ELIMIT;

    pthread_rwlock_wrlock(&lock);
    for (size_t i = 0; i < EVENTS_MAX_SUBSCRIBERS; i++)
        if (subs[i].fn == NULL) {
            subs[i] = (struct sub){fn, arg, mask};
            id = (int)i;
            break;
        }
    recompute_locked();
    pthread_rwlock_unlock(&lock);
    return id;
}

void
events_unsubscribe(int id)
{
    if (id < 0 || id >= EVENTS_MAX_SUBSCRIBERS)
        return;
    pthread_rwlock_wrlock(&lock);
    subs[id] = (struct sub){NULL, NULL, 0};
    recompute_locked();
    pthread_rwlock_unlock(&lock);
}

int
events_wanted(enum rk_event_type t)
{
    return (atomic_load_explicit(&wanted, memory_order_relaxed) & EV_MASK(t)) != 0;
}

int
events_publish(struct rk_event *ev, struct rk_error *err)
{
    int may_fail =
        ev->type == EV_API_REQUEST || ev->type == EV_API_RESPONSE || ev->type == EV_LOCAL_OP;
    int first = 0;

    if (!events_wanted(ev->type))
        return 0;
    if (ev->time_us == 0)
        ev->time_us = time_now_us();
    pthread_rwlock_rdlock(&lock);
    for (size_t i = 0; i < EVENTS_MAX_SUBSCRIBERS; i++) {
        struct rk_error e = {0};
        int r;

        if (subs[i].fn == NULL || !(subs[i].mask & EV_MASK(ev->type)))
            continue;
        r = subs[i].fn(subs[i].arg, ev, &e);
        if (r != 0 && may_fail && first == 0) {
            first = r;
            if (err != NULL)
                *err = e;
        }
    }
    pthread_rwlock_unlock(&lock);
    return first;
}
