#include "engine/rotstate.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/barrier.h"
#include "util/parse.h"

static const char *const names[ROT_NSTATES] = {"idle", "running", "failed", "action-required",
                                               "pending"};

const char *
rot_run_state_name(enum rot_run_state s)
{
    return (unsigned)s < ROT_NSTATES ? names[s] : "unknown";
}

static void
state_key(char *buf, size_t len, const char *path)
{
    snprintf(buf, len, "rot/state/%s", path);
}

int
rotstate_get(struct barrier *br, const char *path, struct rot_state *st, struct rk_error *err)
{
    char key[PATH_MAX_LEN + 32];
    struct secret *v = NULL;
    json_t *j;
    json_error_t jerr;
    const char *state = NULL, *msg = "", *action = "";
    json_int_t since = 0, next = 0;
    int failures = 0, r;

    memset(st, 0, sizeof(*st));
    state_key(key, sizeof(key), path);
    if ((r = barrier_get(br, key, &v, NULL, err)) != 0)
        return r;
    j = json_loadb((const char *)v->data, v->len, 0, &jerr);
    secret_free(v);
    if (j == NULL || json_unpack(j, "{s:s, s:I, s:i, s:I, s:s, s?s}", "state", &state, "since",
                                 &since, "failures", &failures, "next_retry", &next, "message",
                                 &msg, "action", &action) != 0) {
        json_decref(j);
        return rk_error_set(err, RK_ECORRUPT, "rotation record of %s does not parse", path);
    }
    for (int i = 0; i < ROT_NSTATES; i++)
        if (strcmp(state, names[i]) == 0)
            st->state = (enum rot_run_state)i;
    st->since = since;
    st->failures = failures;
    st->next_retry = next;
    snprintf(st->message, sizeof(st->message), "%s", msg);
    snprintf(st->action, sizeof(st->action), "%s", action);
    json_decref(j);
    return 0;
}

int
rotstate_put(struct barrier_txn *t, const char *path, const struct rot_state *st)
{
    char key[PATH_MAX_LEN + 32];
    char *text;
    json_t *j;
    int r;

    state_key(key, sizeof(key), path);
    if (st->state == ROT_IDLE)
        return barrier_txn_del(t, key);
    j = json_pack("{s:s, s:I, s:i, s:I, s:s}", "state", rot_run_state_name(st->state), "since",
                  (json_int_t)st->since, "failures", st->failures, "next_retry",
                  (json_int_t)st->next_retry, "message", st->message);
    if (j != NULL && st->action[0] != '\0' &&
        json_object_set_new(j, "action", json_string(st->action)) != 0) {
        json_decref(j);
        j = NULL;
    }
    if (j == NULL)
        return -RK_ENOMEM;
    text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (text == NULL)
        return -RK_ENOMEM;
    r = barrier_txn_put(t, key, text, strlen(text));
    free(text);
    return r;
}
