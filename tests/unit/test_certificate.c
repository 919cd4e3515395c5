/* test_certificate: the internal CA (secrets/pki.c) and kind certificate (rotators/certificate.c):
 * CA creation and its refusals, issuance for every key type with the configured extensions, the
 * checks of an issued certificate (key match, chain, names, validity) each failing on its own
 * fault, name validation, and the due time from notAfter - renew_before. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rotators/rotator.h"
#include "secrets/pki.h"
#include "store/backend.h"
#include "store/barrier.h"
#include "util/err.h"
#include "util/secret.h"
#include "util/timeutil.h"

struct fx {
    char dir[64];
    char db[128];
    struct backend *b;
    struct barrier *br;
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct rk_error err = {0};
    struct secret *root;

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/rekey-test-cert-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof(f->db), "%s/store.db", f->dir);
    assert_int_equal(backend_open(f->db, &f->b, &err), 0);
    assert_int_equal(barrier_open(f->b, &f->br, &err), 0);
    root = secret_new(ROOT_KEY_LEN);
    assert_non_null(root);
    memset(root->data, 0x42, ROOT_KEY_LEN);
    assert_int_equal(barrier_init(f->br, root, "{}", &err), 0);
    secret_free(root);
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

static void
make_ca(struct fx *f)
{
    struct pki_ca_opts o;
    struct rk_error err = {0};

    memset(&o, 0, sizeof(o));
    assert_int_equal(pki_ca_init(f->br, &o, &err), 0);
}

static const char *const NAMES[] = {"web.test", "www.web.test", "127.0.0.1", "::1"};

static void
issue(struct fx *f, enum pki_key_type t, struct pki_issued *out)
{
    struct pki_issue_req req = {
        .common_name = "web.test", .alt_names = NAMES, .nalt = 4, .key_type = t, .ttl = 90 * 86400};
    struct rk_error err = {0};

    if (pki_issue(f->br, &req, out, &err) != 0)
        fail_msg("issue %s: %s", pki_key_type_name(t), err.msg);
}

static X509 *
parse(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

    BIO_free(b);
    assert_non_null(x);
    return x;
}

static int
check(const struct pki_issued *is, const struct secret *key, const char *ca, int64_t now,
      struct rk_error *err)
{
    return pki_check(is->certificate, strlen(is->certificate), key, ca, strlen(ca), "web.test",
                     NAMES, 4, now, err);
}

static void
test_no_ca(void **state)
{
    struct fx *f = *state;
    struct pki_issued is;
    struct pki_issue_req req = {.common_name = "web.test", .ttl = 60};
    struct rk_error err = {0};
    char *pem = NULL;

    assert_int_equal(pki_issue(f->br, &req, &is, &err), -RK_ENOTFOUND);
    assert_non_null(strstr(err.msg, "rekey pki init-ca"));
    assert_int_equal(pki_ca_pem(f->br, &pem, &err), -RK_ENOTFOUND);
    assert_null(pem);
}

static void
test_ca_init(void **state)
{
    struct fx *f = *state;
    struct pki_ca_opts o;
    struct rk_error err = {0};
    char *pem1 = NULL, *pem2 = NULL;
    X509 *x;

    make_ca(f);
    assert_int_equal(pki_ca_pem(f->br, &pem1, &err), 0);
    x = parse(pem1);
    assert_int_equal(X509_check_ca(x), 1);
    X509_free(x);
    memset(&o, 0, sizeof(o));
    assert_int_equal(pki_ca_init(f->br, &o, &err), -RK_EEXISTS);
    o.replace = 1;
    o.key_type = PKI_KEY_ED25519;
    o.common_name = "second CA";
    assert_int_equal(pki_ca_init(f->br, &o, &err), 0);
    assert_int_equal(pki_ca_pem(f->br, &pem2, &err), 0);
    assert_string_not_equal(pem1, pem2);
    free(pem1);
    free(pem2);
}

static void
test_import_refuses_leaf(void **state)
{
    struct fx *f = *state;
    struct pki_issued is;
    struct pki_ca_opts o;
    struct rk_error err = {0};

    make_ca(f);
    issue(f, PKI_KEY_ECDSA_P256, &is);
    memset(&o, 0, sizeof(o));
    o.replace = 1;
    o.cert_pem = is.certificate;
    o.key_pem = is.private_key;
    assert_int_equal(pki_ca_init(f->br, &o, &err), -RK_EINVAL);
    assert_non_null(strstr(err.msg, "not a CA"));
    assert_null(strstr(err.msg, "PRIVATE"));
    pki_issued_clear(&is);
}

static void
test_issue_every_type(void **state)
{
    struct fx *f = *state;
    static const enum pki_key_type types[] = {PKI_KEY_ECDSA_P256, PKI_KEY_RSA_2048,
                                              PKI_KEY_RSA_3072, PKI_KEY_ED25519};
    struct rk_error err = {0};

    make_ca(f);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        struct pki_issued is;
        X509 *x;
        int64_t now = time_now();
        ASN1_TIME *nb;
        int day, sec;
        EXTENDED_KEY_USAGE *eku;

        issue(f, types[i], &is);
        assert_int_equal(check(&is, is.private_key, is.ca, 0, &err), 0);
        assert_int_equal(strlen(is.serial), 32); /* 128 bits, top byte 0x40..0x7f */
        assert_true(is.not_after > now + 89 * 86400 && is.not_after <= now + 90 * 86400 + 5);
        /* chain = leaf then CA */
        assert_memory_equal(is.chain, is.certificate, strlen(is.certificate));
        assert_string_equal(is.chain + strlen(is.certificate), is.ca);
        x = parse(is.certificate);
        assert_int_equal(X509_check_ca(x), 0);
        assert_non_null(X509_get0_subject_key_id(x));
        assert_non_null(X509_get0_authority_key_id(x));
        assert_true(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE);
        eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
        assert_non_null(eku);
        assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_server_auth);
        EXTENDED_KEY_USAGE_free(eku);
        /* notBefore one minute back */
        nb = ASN1_TIME_set(NULL, (time_t)now);
        assert_int_equal(ASN1_TIME_diff(&day, &sec, X509_get0_notBefore(x), nb), 1);
        assert_true(day == 0 && sec >= 59 && sec <= 62);
        ASN1_TIME_free(nb);
        X509_free(x);
        pki_issued_clear(&is);
    }
}

static void
test_checks_fail(void **state)
{
    struct fx *f = *state;
    struct pki_issued a, b;
    struct pki_ca_opts o;
    struct rk_error err = {0};
    char *newca = NULL;
    static const char *const more[] = {"other.test"};

    make_ca(f);
    issue(f, PKI_KEY_ECDSA_P256, &a);
    issue(f, PKI_KEY_ECDSA_P256, &b);
    assert_string_not_equal(a.serial, b.serial);
    /* another certificate's key */
    assert_int_equal(check(&a, b.private_key, a.ca, 0, &err), -RK_EREJECTED);
    assert_non_null(strstr(err.msg, "does not match"));
    /* expired, and not yet valid */
    assert_int_equal(check(&a, a.private_key, a.ca, a.not_after + 10, &err), -RK_EREJECTED);
    assert_non_null(strstr(err.msg, "expired"));
    assert_int_equal(check(&a, a.private_key, a.ca, time_now() - 3600, &err), -RK_EREJECTED);
    /* a name it does not cover */
    assert_int_equal(pki_check(a.certificate, strlen(a.certificate), a.private_key, a.ca,
                               strlen(a.ca), "web.test", more, 1, 0, &err),
                     -RK_EREJECTED);
    assert_non_null(strstr(err.msg, "other.test"));
    /* another issuer */
    memset(&o, 0, sizeof(o));
    o.replace = 1;
    assert_int_equal(pki_ca_init(f->br, &o, &err), 0);
    assert_int_equal(pki_ca_pem(f->br, &newca, &err), 0);
    assert_int_equal(check(&a, a.private_key, newca, 0, &err), -RK_EREJECTED);
    assert_non_null(strstr(err.msg, "chain"));
    /* garbage */
    assert_int_equal(
        pki_check("x", 1, a.private_key, a.ca, strlen(a.ca), "web.test", NULL, 0, 0, &err),
        -RK_EREJECTED);
    free(newca);
    pki_issued_clear(&a);
    pki_issued_clear(&b);
}

static void
test_bad_names(void **state)
{
    static const char *const bad[] = {"a b", "a,b",         "",   ".x.test", "x..test", "x.test.",
                                      "*",   "ümlaut.test", "a/b"};
    static const char *const good[] = {"*.web.test", "10.0.0.1", "2001:db8::1", "a-b.test"};
    struct pki_issue_req req = {.common_name = "web.test", .ttl = 60};
    struct rk_error err = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        req.alt_names = &bad[i];
        req.nalt = 1;
        if (pki_issue_check(&req, &err) != -RK_EINVAL)
            fail_msg("name '%s' was accepted", bad[i]);
    }
    req.alt_names = good;
    req.nalt = 4;
    assert_int_equal(pki_issue_check(&req, &err), 0);
    req.common_name = NULL;
    assert_int_equal(pki_issue_check(&req, &err), -RK_EINVAL);
}

/* ---- the rotator ---- */

static const char *cur_cert;

static int
read_cur(void *arg, const char *field, struct secret **out, struct rk_error *err)
{
    (void)arg;
    if (cur_cert == NULL || strcmp(field, "certificate") != 0)
        return rk_error_set(err, RK_ENOTFOUND, "none");
    *out = secret_from_str(cur_cert);
    return 0;
}

static void
test_rotator_status(void **state)
{
    struct fx *f = *state;
    const struct rotator_ops *ops = rotator_find("certificate");
    struct inv_secret s;
    struct rot_status_in in;
    struct rot_due due;
    struct pki_issued is;
    struct rk_error err = {0};

    assert_non_null(ops);
    assert_non_null(ops->create);
    assert_non_null(ops->test);
    assert_non_null(ops->status);
    make_ca(f);
    issue(f, PKI_KEY_ECDSA_P256, &is);
    memset(&s, 0, sizeof(s));
    s.path = "pki/web";
    assert_int_equal(inv_param_set(&s, "renew_before", "30d"), 0);
    assert_int_equal(inv_param_set(&s, "ttl", "90d"), 0);
    memset(&in, 0, sizeof(in));
    in.now = time_now();
    in.read_current = read_cur;
    memset(&due, 0, sizeof(due));
    cur_cert = NULL; /* never issued: the engine's rule stays */
    assert_int_equal(ops->status(&s, &in, &due, &err), 0);
    assert_int_equal(due.next_due, 0);
    cur_cert = is.certificate;
    assert_int_equal(ops->status(&s, &in, &due, &err), 0);
    assert_int_equal(due.expires_at, is.not_after);
    assert_int_equal(due.next_due, is.not_after - 30 * 86400);
    assert_int_equal(due.period, 60 * 86400);
    assert_non_null(strstr(due.detail, is.serial));
    pki_issued_clear(&is);
    for (size_t i = 0; i < s.nparams; i++) {
        free(s.params[i].key);
        free(s.params[i].value);
    }
    free(s.params);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_init, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_refuses_leaf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issue_every_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checks_fail, setup, teardown),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test_setup_teardown(test_rotator_status, setup, teardown),
    };
    secure_heap_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
