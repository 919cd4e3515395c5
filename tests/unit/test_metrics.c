/* Unit tests for src/metrics: the Prometheus text format (numbers, label escaping, families),
 * histogram buckets, the counters fed by published events (util/events.h), the per-entry
 * families from statuses, and the same read from a real store (a version and a rotation
 * record written directly, as another process would). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/inventory.h"
#include "engine/rotstate.h"
#include "engine/schedule.h"
#include "metrics/metrics.h"
#include "metrics/prom.h"
#include "secrets/kv.h"
#include "store/backend.h"
#include "store/barrier.h"
#include "util/err.h"
#include "util/events.h"
#include "util/secret.h"
#include "util/timeutil.h"

/* The buffer's text, NUL-terminated (b keeps ownership). */
static const char *
text(struct prom_buf *b)
{
    prom_put(b, "", 1);
    assert_false(b->oom);
    b->len--;
    return b->p;
}

/* Fails unless the exposition t holds line (a whole line). */
static void
has_line(const char *t, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = t; (p = strstr(p, line)) != NULL; p++)
        if ((p == t || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return;
    fprintf(stderr, "--- exposition:\n%s--- missing line: %s\n", t, line);
    fail_msg("missing line: %s", line);
}

static void
lacks(const char *t, const char *s)
{
    if (strstr(t, s) != NULL) {
        fprintf(stderr, "--- exposition:\n%s--- unexpected: %s\n", t, s);
        fail_msg("unexpected: %s", s);
    }
}

/* Every line is a comment (# HELP / # TYPE) or `name[{labels}] value`, and a family's samples
 * come right after its TYPE line (what promtool checks, in a small way). */
static void
well_formed(const char *t)
{
    char family[128] = "";
    const char *p = t;

    while (*p != '\0') {
        const char *e = strchr(p, '\n');
        size_t n;
        assert_non_null(e); /* every line ends with a newline */
        n = (size_t)(e - p);
        if (strncmp(p, "# TYPE ", 7) == 0) {
            const char *sp = memchr(p + 7, ' ', n - 7);
            assert_non_null(sp);
            snprintf(family, sizeof(family), "%.*s", (int)(sp - p - 7), p + 7);
        } else if (strncmp(p, "# HELP ", 7) != 0) {
            size_t fl = strlen(family);
            assert_true(fl > 0);
            assert_int_equal(strncmp(p, family, fl), 0);
            assert_true(p[fl] == '{' || p[fl] == ' ' || p[fl] == '_');
            assert_non_null(memchr(p, ' ', n)); /* a value follows */
        }
        p = e + 1;
    }
}

static void
test_numbers(void **state)
{
    struct prom_buf b = {0};

    (void)state;
    prom_u64(&b, 0);
    prom_put(&b, " ", 1);
    prom_u64(&b, UINT64_MAX);
    prom_put(&b, " ", 1);
    prom_i64(&b, INT64_MIN);
    prom_put(&b, " ", 1);
    prom_seconds_us(&b, 250);
    prom_put(&b, " ", 1);
    prom_seconds_us(&b, 1500000);
    prom_put(&b, " ", 1);
    prom_seconds_us(&b, -1500000);
    prom_put(&b, " ", 1);
    prom_seconds_us(&b, 3000000);
    prom_put(&b, " ", 1);
    prom_seconds_us(&b, 1);
    assert_string_equal(text(&b), "0 18446744073709551615 -9223372036854775808 0.00025 1.5 -1.5 3 "
                                  "0.000001");
    prom_buf_free(&b);
}

static void
test_label_escaping(void **state)
{
    struct prom_buf b = {0};

    (void)state;
    prom_label_value(&b, "plain/path-1_x.y");
    assert_string_equal(text(&b), "plain/path-1_x.y");
    b.len = 0;
    prom_label_value(&b, "a\\b\"c\nd");
    assert_string_equal(text(&b), "a\\\\b\\\"c\\nd");
    b.len = 0;
    /* UTF-8 is kept; a tab or CR is allowed as it is. */
    prom_label_value(&b, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91\t\r");
    assert_string_equal(text(&b), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91\t\r");
    b.len = 0;
    /* Not UTF-8: a stray continuation byte, an overlong '/', a surrogate, a cut sequence and a
     * byte that never starts one each become U+FFFD per byte. */
    prom_label_value(&b, "a\x80z");
    assert_string_equal(text(&b), "a\xef\xbf\xbdz");
    b.len = 0;
    prom_label_value(&b, "\xc0\xaf");
    assert_string_equal(text(&b), "\xef\xbf\xbd\xef\xbf\xbd");
    b.len = 0;
    prom_label_value(&b, "\xed\xa0\x80");
    assert_string_equal(text(&b), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    b.len = 0;
    prom_label_value(&b, "x\xe2\x82");
    assert_string_equal(text(&b), "x\xef\xbf\xbd\xef\xbf\xbd");
    b.len = 0;
    prom_label_value(&b, "\xff");
    assert_string_equal(text(&b), "\xef\xbf\xbd");
    b.len = 0;
    prom_label_value(&b, NULL);
    prom_label_value(&b, "");
    assert_string_equal(text(&b), "");
    prom_buf_free(&b);
}

static void
test_family_and_samples(void **state)
{
    struct prom_buf b = {0};

    (void)state;
    prom_family(&b, "rekey_x_total", "counter", "What x counts.");
    prom_sample_i64(&b, "rekey_x_total", NULL, 3);
    prom_sample_i64(&b, "rekey_x_total", "a=\"b\"", -2);
    assert_string_equal(text(&b), "# HELP rekey_x_total What x counts.\n"
                                  "# TYPE rekey_x_total counter\n"
                                  "rekey_x_total 3\n"
                                  "rekey_x_total{a=\"b\"} -2\n");
    prom_buf_free(&b);
}

static const int64_t le_us[] = {1000, 10000, 100000};
static const char *const le_txt[] = {"0.001", "0.01", "0.1"};
static const struct prom_hist_spec spec = {3, le_us, le_txt};

static void
test_histogram_buckets(void **state)
{
    struct prom_hist h;
    struct prom_buf b = {0};

    (void)state;
    memset(&h, 0, sizeof(h));
    /* A bound is inclusive (le = less or equal); a negative duration counts as 0. */
    prom_hist_observe(&h, &spec, -5);
    prom_hist_observe(&h, &spec, 1000);
    prom_hist_observe(&h, &spec, 1001);
    prom_hist_observe(&h, &spec, 100000);
    prom_hist_observe(&h, &spec, 2500000);
    prom_hist_write(&b, "t_seconds", "r=\"kv\"", &h, &spec);
    assert_string_equal(text(&b), "t_seconds_bucket{r=\"kv\",le=\"0.001\"} 2\n"
                                  "t_seconds_bucket{r=\"kv\",le=\"0.01\"} 3\n"
                                  "t_seconds_bucket{r=\"kv\",le=\"0.1\"} 4\n"
                                  "t_seconds_bucket{r=\"kv\",le=\"+Inf\"} 5\n"
                                  "t_seconds_sum{r=\"kv\"} 2.602001\n"
                                  "t_seconds_count{r=\"kv\"} 5\n");
    b.len = 0;
    memset(&h, 0, sizeof(h));
    prom_hist_write(&b, "u_seconds", NULL, &h, &spec);
    assert_string_equal(text(&b), "u_seconds_bucket{le=\"0.001\"} 0\n"
                                  "u_seconds_bucket{le=\"0.01\"} 0\n"
                                  "u_seconds_bucket{le=\"0.1\"} 0\n"
                                  "u_seconds_bucket{le=\"+Inf\"} 0\n"
                                  "u_seconds_sum 0\n"
                                  "u_seconds_count 0\n");
    prom_buf_free(&b);
}

/* Before any event: the families are there, the counters at zero, no labelled sample. */
static void
test_server_zero(void **state)
{
    struct metrics *m = NULL;
    struct rk_error err = {0};
    struct prom_buf b = {0};
    struct metrics_seal seal = {1, 0};
    const char *t;

    (void)state;
    assert_int_equal(metrics_new(&m, &err), 0);
    metrics_render_build(&b);
    metrics_render_server(m, &seal, &b);
    t = text(&b);
    well_formed(t);
    has_line(t, "# TYPE rekey_http_requests_total counter");
    has_line(t, "# TYPE rekey_rotation_total counter");
    has_line(t, "rekey_rotation_duration_seconds_count 0");
    has_line(t, "rekey_rotation_duration_seconds_bucket{le=\"+Inf\"} 0");
    has_line(t, "rekey_initialized 1");
    has_line(t, "rekey_sealed 0");
    lacks(t, "rekey_http_requests_total{");
    lacks(t, "rekey_rotation_total{");
    assert_non_null(strstr(t, "rekey_build_info{version=\""));
    metrics_free(m);

    /* Without an instance (rekey metrics has none) and sealed. */
    b.len = 0;
    seal.sealed = 1;
    metrics_render_server(NULL, &seal, &b);
    t = text(&b);
    well_formed(t);
    has_line(t, "rekey_sealed 1");
    has_line(t, "rekey_rotation_duration_seconds_count 0");
    prom_buf_free(&b);
}

static void
publish(struct rk_event ev)
{
    assert_int_equal(events_publish(&ev, NULL), 0);
}

/* The counters move with published events, and only while subscribed. */
static void
test_counters_from_events(void **state)
{
    struct metrics *m = NULL;
    struct rk_error err = {0};
    struct prom_buf b = {0};
    const char *t;

    (void)state;
    assert_int_equal(metrics_new(&m, &err), 0);
    /* Not subscribed yet: not counted. */
    publish((struct rk_event){
        .type = EV_API_RESPONSE, .route = "kv", .status = 200, .duration_us = 300});
    assert_int_equal(metrics_subscribe(m, &err), 0);
    assert_int_equal(metrics_subscribe(m, &err), 0); /* idempotent */
    publish((struct rk_event){
        .type = EV_API_RESPONSE, .route = "kv", .status = 200, .duration_us = 300});
    publish((struct rk_event){
        .type = EV_API_RESPONSE, .route = "kv", .status = 200, .duration_us = 700});
    publish((struct rk_event){
        .type = EV_API_RESPONSE, .route = "sys", .status = 403, .duration_us = 20000});
    publish((struct rk_event){
        .type = EV_API_RESPONSE, .route = NULL, .status = 404, .duration_us = 50});
    /* A request event is not a response: not counted. */
    publish((struct rk_event){.type = EV_API_REQUEST, .route = "kv"});
    publish((struct rk_event){.type = EV_ROTATION_RESULT,
                              .operation = "rotate",
                              .path = "secret/a\"b",
                              .outcome = "ok",
                              .duration_us = 2000000});
    publish((struct rk_event){.type = EV_ROTATION_RESULT,
                              .operation = "rotate",
                              .path = "secret/a\"b",
                              .outcome = "failed",
                              .duration_us = 40000});
    publish((struct rk_event){.type = EV_ROTATION_RESULT,
                              .operation = "rotate",
                              .path = "secret/a\"b",
                              .outcome = "started"});
    publish((struct rk_event){.type = EV_ROTATION_RESULT,
                              .path = "secret/c",
                              .outcome = "rolled-back",
                              .duration_us = 1000});
    publish((struct rk_event){
        .type = EV_ROTATION_RESULT, .path = "secret/c", .outcome = "pending", .duration_us = 1000});
    publish((struct rk_event){
        .type = EV_ROTATION_RESULT, .path = "secret/c", .outcome = "odd", .duration_us = 1000});
    publish((struct rk_event){.type = EV_ROTATION_RESULT,
                              .operation = "rollback",
                              .path = "secret/c",
                              .outcome = "ok",
                              .duration_us = 1000});
    metrics_audit_failure();
    metrics_audit_failure();
    metrics_render_server(m, NULL, &b);
    t = text(&b);
    well_formed(t);
    has_line(t, "rekey_http_requests_total{route=\"kv\",code=\"200\"} 2");
    has_line(t, "rekey_http_requests_total{route=\"sys\",code=\"403\"} 1");
    has_line(t, "rekey_http_requests_total{route=\"none\",code=\"404\"} 1");
    has_line(t,
             "rekey_http_request_duration_seconds_bucket{route=\"kv\",code=\"200\",le=\"0.0005\"}"
             " 1");
    has_line(t, "rekey_http_request_duration_seconds_bucket{route=\"kv\",code=\"200\",le=\"0.001\"}"
                " 2");
    has_line(t, "rekey_http_request_duration_seconds_sum{route=\"kv\",code=\"200\"} 0.001");
    has_line(t, "rekey_http_request_duration_seconds_count{route=\"sys\",code=\"403\"} 1");
    has_line(t, "rekey_rotation_total{path=\"secret/a\\\"b\",result=\"ok\"} 1");
    has_line(t, "rekey_rotation_total{path=\"secret/a\\\"b\",result=\"failed\"} 1");
    has_line(t, "rekey_rotation_total{path=\"secret/a\\\"b\",result=\"rolled-back\"} 0");
    has_line(t, "rekey_rotation_total{path=\"secret/c\",result=\"ok\"} 0");
    has_line(t, "rekey_rotation_total{path=\"secret/c\",result=\"rolled-back\"} 1");
    has_line(t, "rekey_rotation_total{path=\"secret/c\",result=\"pending\"} 1");
    has_line(t, "rekey_rotation_total{path=\"secret/c\",result=\"other\"} 1");
    lacks(t, "result=\"started\"");
    lacks(t, "path=\"secret/a\\\"b\",result=\"pending\"");
    lacks(t, "path=\"secret/c\",result=\"failed\"");
    has_line(t, "rekey_operations_total{op=\"rotate\",result=\"ok\"} 1");
    has_line(t, "rekey_operations_total{op=\"rotate\",result=\"rolled-back\"} 1");
    has_line(t, "rekey_operations_total{op=\"rotate\",result=\"odd\"} 1");
    has_line(t, "rekey_operations_total{op=\"rollback\",result=\"ok\"} 1");
    has_line(t, "rekey_rotation_duration_seconds_count 5");
    has_line(t, "rekey_rotation_duration_seconds_bucket{le=\"0.01\"} 3");
    has_line(t, "rekey_rotation_duration_seconds_bucket{le=\"0.05\"} 4");
    has_line(t, "rekey_rotation_duration_seconds_bucket{le=\"2.5\"} 5");
    has_line(t, "rekey_rotation_duration_seconds_sum 2.043");
    assert_true(metrics_audit_failures() >= 2);
    metrics_free(m); /* unsubscribes */
    publish((struct rk_event){.type = EV_API_RESPONSE, .route = "kv", .status = 200});
    prom_buf_free(&b);
}

/* Past MET_REQ_MAX (route, status) pairs, requests count under route="other". */
static void
test_request_series_bounded(void **state)
{
    struct metrics *m = NULL;
    struct rk_error err = {0};
    struct prom_buf b = {0};
    const char *t;

    (void)state;
    assert_int_equal(metrics_new(&m, &err), 0);
    for (int code = 100; code < 100 + 200; code++)
        metrics_on_event(
            m, &(struct rk_event){.type = EV_API_RESPONSE, .route = "kv", .status = code}, &err);
    metrics_render_server(m, NULL, &b);
    t = text(&b);
    well_formed(t);
    has_line(t, "rekey_http_requests_total{route=\"kv\",code=\"100\"} 1");
    has_line(t, "rekey_http_requests_total{route=\"other\",code=\"0\"} 72");
    metrics_free(m);
    prom_buf_free(&b);
}

/* The per-entry families from statuses as schedule.c fills them. */
static void
test_secret_families(void **state)
{
    struct inv_secret s[4];
    struct secret_status st[4];
    struct prom_buf b = {0};
    struct rk_error err = {0};
    const int64_t now = 1800000000;
    const char *t;

    (void)state;
    memset(s, 0, sizeof(s));
    memset(st, 0, sizeof(st));
    s[0].path = "secret/ok";
    s[0].kind = "generated";
    s[1].path = "secret/fail\\ed\n";
    s[1].kind = "generated";
    s[2].path = "secret/person";
    s[2].kind = "manual";
    s[3].path = "secret/new";
    s[3].kind = "certificate";
    for (int i = 0; i < 4; i++)
        st[i].secret = &s[i];
    st[0] = (struct secret_status){.secret = &s[0],
                                   .version = 4,
                                   .last_rotated = now - 100,
                                   .next_due = now + 1000,
                                   .state = STATE_OK,
                                   .due_state = STATE_OK};
    /* A failed rotation past its due time: state failed, and overdue by its calendar. */
    st[1] = (struct secret_status){.secret = &s[1],
                                   .version = 2,
                                   .last_rotated = now - 9000,
                                   .next_due = now - 5000,
                                   .state = STATE_FAILED,
                                   .due_state = STATE_OVERDUE,
                                   .failures = 3,
                                   .state_since = now - 60};
    st[2] = (struct secret_status){.secret = &s[2],
                                   .version = 1,
                                   .last_rotated = now - 500,
                                   .next_due = now + 5000,
                                   .state = STATE_ACTION_REQUIRED,
                                   .due_state = STATE_OK,
                                   .state_since = now - 90000};
    st[3] = (struct secret_status){.secret = &s[3],
                                   .expires_at = now + 86400,
                                   .state = STATE_NOT_IMPLEMENTED,
                                   .due_state = STATE_NOT_IMPLEMENTED};
    assert_int_equal(metrics_render_secrets(&b, st, 4, now, 1500, &err), 0);
    t = text(&b);
    well_formed(t);
    has_line(t, "rekey_secrets 4");
    has_line(t, "rekey_secrets_collect_duration_seconds 0.0015");
    has_line(t, "rekey_secret_version{path=\"secret/ok\",kind=\"generated\"} 4");
    has_line(t, "rekey_secret_version{path=\"secret/new\",kind=\"certificate\"} 0");
    has_line(t, "rekey_secret_last_rotation_timestamp_seconds{path=\"secret/ok\",kind="
                "\"generated\"} 1799999900");
    lacks(t, "rekey_secret_last_rotation_timestamp_seconds{path=\"secret/new\"");
    lacks(t, "rekey_secret_next_rotation_timestamp_seconds{path=\"secret/new\"");
    has_line(t, "rekey_secret_next_rotation_timestamp_seconds{path=\"secret/fail\\\\ed\\n\","
                "kind=\"generated\"} 1799995000");
    has_line(t, "rekey_secret_rotation_overdue{path=\"secret/ok\",kind=\"generated\"} 0");
    has_line(t,
             "rekey_secret_rotation_overdue{path=\"secret/fail\\\\ed\\n\",kind=\"generated\"} 1");
    has_line(t, "rekey_secret_state{path=\"secret/ok\",kind=\"generated\",state=\"ok\"} 1");
    has_line(t, "rekey_secret_state{path=\"secret/fail\\\\ed\\n\",kind=\"generated\","
                "state=\"failed\"} 1");
    has_line(t, "rekey_secret_state{path=\"secret/person\",kind=\"manual\","
                "state=\"action-required\"} 1");
    has_line(t, "rekey_secret_state{path=\"secret/new\",kind=\"certificate\","
                "state=\"not-implemented\"} 1");
    lacks(t, "state=\"ok\"} 0");
    has_line(t, "rekey_secret_consecutive_failures{path=\"secret/fail\\\\ed\\n\","
                "kind=\"generated\"} 3");
    has_line(t, "rekey_secret_consecutive_failures{path=\"secret/ok\",kind=\"generated\"} 0");
    has_line(t, "rekey_action_required{path=\"secret/person\",kind=\"manual\"} 1");
    has_line(t, "rekey_action_required{path=\"secret/ok\",kind=\"generated\"} 0");
    has_line(t, "rekey_secret_action_required_age_seconds{path=\"secret/person\",kind=\"manual\"}"
                " 90000");
    lacks(t, "rekey_secret_action_required_age_seconds{path=\"secret/ok\"");
    has_line(t, "rekey_secret_expiry_timestamp_seconds{path=\"secret/new\",kind=\"certificate\"}"
                " 1800086400");
    lacks(t, "rekey_secret_expiry_timestamp_seconds{path=\"secret/ok\"");
    prom_buf_free(&b);

    /* No entries: the families and rekey_secrets 0. */
    assert_int_equal(metrics_render_secrets(&b, NULL, 0, now, -1, &err), 0);
    t = text(&b);
    well_formed(t);
    has_line(t, "rekey_secrets 0");
    lacks(t, "collect_duration");
    prom_buf_free(&b);
}

/* --- from a real store --- */

static const char config[] = "version: 1\n"
                             "secrets:\n"
                             "  - path: secret/m/auto\n"
                             "    kind: generated\n"
                             "    format: \"in-{hex:16}\"\n"
                             "    every: 1h\n"
                             "    auto: true\n";

struct fx {
    char dir[64];
    char db[128];
    struct backend *b;
    struct barrier *br;
    struct kv *kv;
    struct inventory *inv;
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct rk_error err = {0};
    struct secret *root;

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/rekey-test-metrics-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof(f->db), "%s/store.db", f->dir);
    assert_int_equal(backend_open(f->db, &f->b, &err), 0);
    assert_int_equal(barrier_open(f->b, &f->br, &err), 0);
    root = secret_new(ROOT_KEY_LEN);
    assert_non_null(root);
    memset(root->data, 0x42, ROOT_KEY_LEN);
    assert_int_equal(barrier_init(f->br, root, "{}", &err), 0);
    secret_free(root);
    assert_int_equal(kv_open(f->br, &f->kv, &err), 0);
    assert_int_equal(inventory_load_string("test.yaml", config, strlen(config), &f->inv, &err), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    char path[256];
    DIR *d;
    struct dirent *de;

    inventory_free(f->inv);
    kv_free(f->kv);
    barrier_free(f->br);
    backend_close(f->b);
    if ((d = opendir(f->dir)) != NULL) {
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "%s/%s", f->dir, de->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* A version written to the store (as a rotation by any process would) shows at the next render,
 * and a failed rotation record makes the entry failed with its failures; the overdue gauge
 * follows the entry's own schedule (every 1h, auto: overdue past due + 6 min). */
static void
test_from_store(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct prom_buf b = {0};
    struct secret *data = secret_from_str("{\"value\":\"v-not-printed\"}");
    struct kv_put_opts po = KV_PUT_OPTS_INIT;
    struct barrier_txn *tx;
    struct rot_state rs;
    uint64_t ver = 0;
    int64_t t0, now;
    const char *t;
    char line[256];

    if (metrics_render_store(&b, f->kv, f->inv, time_now(), &err) != 0) {
        print_message("metrics_render_store: %s\n", err.msg);
        fail();
    }
    t = text(&b);
    has_line(t, "rekey_secret_version{path=\"secret/m/auto\",kind=\"generated\"} 0");
    lacks(t, "rekey_secret_last_rotation_timestamp_seconds{");
    prom_buf_free(&b);

    assert_non_null(data);
    t0 = time_now();
    assert_int_equal(kv_put(f->kv, "secret/m/auto", data, &po, &ver, &err), 0);
    secret_free(data);
    assert_int_equal(metrics_render_store(&b, f->kv, f->inv, t0 + 3600 + 360 - 1, &err), 0);
    t = text(&b);
    well_formed(t);
    has_line(t, "rekey_secret_version{path=\"secret/m/auto\",kind=\"generated\"} 1");
    /* Past due (the daemon will act) but within the tolerance. */
    has_line(t, "rekey_secret_state{path=\"secret/m/auto\",kind=\"generated\",state=\"due\"} 1");
    has_line(t, "rekey_secret_rotation_overdue{path=\"secret/m/auto\",kind=\"generated\"} 0");
    /* The version's own time, not the scrape's. */
    assert_non_null(
        strstr(t, "rekey_secret_last_rotation_timestamp_seconds{path=\"secret/m/auto\""));
    prom_buf_free(&b);

    /* Overdue at the moment its tolerance ends (the version may be a second older than t0). */
    now = t0 + 3600 + 360 + 2;
    assert_int_equal(metrics_render_store(&b, f->kv, f->inv, now, &err), 0);
    t = text(&b);
    has_line(t, "rekey_secret_rotation_overdue{path=\"secret/m/auto\",kind=\"generated\"} 1");
    has_line(t,
             "rekey_secret_state{path=\"secret/m/auto\",kind=\"generated\",state=\"overdue\"} 1");
    prom_buf_free(&b);

    /* A failed rotation record: state failed, failures counted, still overdue. */
    memset(&rs, 0, sizeof(rs));
    rs.state = ROT_FAILED;
    rs.since = now;
    rs.failures = 2;
    snprintf(rs.message, sizeof(rs.message), "apply hook failed");
    assert_non_null(tx = barrier_txn_new(f->br));
    assert_int_equal(rotstate_put(tx, "secret/m/auto", &rs), 0);
    assert_int_equal(barrier_txn_commit(tx, NULL, &err), 0);
    barrier_txn_free(tx);
    assert_int_equal(metrics_render_store(&b, f->kv, f->inv, now, &err), 0);
    t = text(&b);
    has_line(t, "rekey_secret_state{path=\"secret/m/auto\",kind=\"generated\",state=\"failed\"} 1");
    has_line(t, "rekey_secret_consecutive_failures{path=\"secret/m/auto\",kind=\"generated\"} 2");
    has_line(t, "rekey_secret_rotation_overdue{path=\"secret/m/auto\",kind=\"generated\"} 1");
    lacks(t, "v-not-printed");
    snprintf(line, sizeof(line), "rekey_secrets 1");
    has_line(t, line);
    prom_buf_free(&b);

    /* Sealed: the store's error, nothing appended. */
    barrier_seal(f->br);
    assert_int_equal(metrics_render_store(&b, f->kv, f->inv, now, &err), -RK_ESEALED);
    assert_int_equal(b.len, 0);
    prom_buf_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_family_and_samples),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_server_zero),
        cmocka_unit_test(test_counters_from_events),
        cmocka_unit_test(test_request_series_bounded),
        cmocka_unit_test(test_secret_families),
        cmocka_unit_test_setup_teardown(test_from_store, setup, teardown),
    };
    secure_heap_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
