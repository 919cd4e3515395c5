/* Unit tests for secrets/transit.c, transit-crypto.c and transit-jwt.c: known answers for every
 * algorithm (Ed25519 RFC 8032 vectors signed with an imported key; ECDSA P-256 and P-384
 * signatures of RFC 6979 verified; RSA PKCS#1 v1.5 signed byte for byte and RSA-PSS verified
 * against signatures made by python-cryptography; an AES-256-GCM ciphertext of Vault's shape
 * decrypted), the keyring's rules (versions, minimums, pending/failed versions, export,
 * deletion), concurrent writers, and JWTs: a token signed by version N verifies until the
 * minimum passes N. No test prints a key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secrets/jwt.h"
#include "secrets/transit.h"
#include "store/backend.h"
#include "store/barrier.h"
#include "util/enc.h"
#include "util/err.h"
#include "util/secret.h"

#include "barrier_fixture.h"

/* Made with python3-cryptography (see the file header). */
static const char P256_DER[] =
    "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420c9afa9d845ba75166b"
    "5c215767b1d6934e50c3db36e89b127b8a622b120f6721a1440342000460fed4ba255a9d31c961eb74c6356d68"
    "c049b8923b61fa6ce669622e60f29fb67903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4"
    "462299";

static const char P384_DER[] =
    "3081b6020100301006072a8648ce3d020106052b8104002204819e30819b02010104306b9d3dad2e1b8c1c05b1"
    "9875b6659f4de23c3b667bf297ba9aa47740787137d896d5724e4c70a825f872c9ea60d2edf5a16403620004ec"
    "3a4e415b4e19a4568618029f427fa5da9a8bc4ae92e02e06aae5286b300c64def8f0ea9055866064a254515480"
    "bc138015d9b72d7d57244ea8ef9ac0c621896708a59367f9dfb9f54ca84b3f1c9db1288b231c3ae0d4fe7344fd"
    "2533264720";

static const char RSA_DER[] =
    "308204bc020100300d06092a864886f70d0101010500048204a6308204a20201000282010100c306c8d8ae95e8"
    "03d9a24a1525b0da2c1d347edd1800b690513f08141ca5b183c51fff09804b771775d6a334382a507377561c16"
    "b6e85f639fa0e1e892ae8307506f958dfb89be87eb7adc9135a7b7f5809f56455eb7cf2c170eb30f390f2d2fc1"
    "2075be3a98d848e7e0717d32eb80218d21fcdf87d716cfb0806ce2546dc27ed6f689e62df8c1bb4482fb9eefce"
    "82e5bb191ec53458cdf0dbb334337ccbbed705e1e8e63d64d8d46acb55cb4d6496a3568ac35cc3d647afe39d31"
    "c24a0a986c0b89081ec3313419821a68a7ea52c3cf46cf82bb7f3ef3b8aa727a82948695ba0eec159ba20581ca"
    "4b09ff56e91bbd2bb236f3fb0e372bb8dee867f2593f065f020301000102820100145c4ef7a0327248849e16d1"
    "e25f764788bd04499cc9e64566d607c7e1bdc2ac9915e01063de7d0e6bf4fe90e31437d5f62d7d3d39d744ae27"
    "ea29eb97f4b4253d5688ec8bc833a6090588a5784e8c3c0b33975422b159e5a67a98630c77f325bb29e260fbc9"
    "1d3b6f49d54f56d3934aed6b10f55d3f2d587d7acae34e212f5ed38e8e422af322ad3e74a8f1642168f4ea3430"
    "39bd13cd6946e8662ec61d446455f4dd695ef0ad73a60c31a018eeee9bd2dcfcd6bc2651fb4f7a6d2c49e424ac"
    "cdd4dc3b7ee610c9efb18eea66b57f8b12850a681f9059a5f78c0823768b626aa7925c924b1f3143b006959cff"
    "7415fc74340bd053e2169c96ea006c6294f24102818100fef539229beff25544dc4cef073949aad43a3702970a"
    "4b0209d336a36f5818281259715099b691edaa55927fc2b7982bca6e10cf193304b17bdcccdcba8ca9512fb647"
    "01d61ffe498105abc62c579445f0f7375e6279e537de3d8986a5778704714a3810ec81771e7d91d6f06823dc39"
    "08fa46ebc63d3fcb534178e1338e2b0f02818100c3d2da0daf053b7108092f05a030c2290c6523411b44176f11"
    "de4da9eeeb36acc4a4b3d0be51b1f94106f2f3be32496b980e0aa41442cc66247ccbe9dc6729f6525e9ce18ac1"
    "26d8978317946144a944435b70a94ad937464f29a74b27bfec95a9b78fb12f230b8941bf7c73c8b108a9d7b05d"
    "92ff26341d87d0440fc33cafb102818000b541a15cf97f9cc9022b9c86529c67c30b1e57fd7f63d1efa10c87cb"
    "a95cf7cf853c11533bf48fca674e6ed86596209901513ea1fd48480de60113a3d8fc2763908805f348477680cb"
    "393ce5a6a09cc91c86a4d6752c33c984363b8f7e137be9aca1173af0e919c6937f1b4fceb9afd6dc8b11e08d0e"
    "fe4b8ee4fd0b1d9bf502818062e01d2fd99697bbebe5cf3354fe299b5661deda29ed48b3d15ee0f213ebfa3064"
    "1e11992defcc2061e0235e4543d8e495e349262e00c87a2ea440c5f57eb5a66552d67ddf74c5ab895d2cd3c405"
    "4a3e68904c237ee28cd158795cba4af8d2798337673b7ce48217acf605dde490d72203014f4e40bcc685bea4bf"
    "290258ab11028180285f763901f23dab8cad66d50e96d75d78b48e680c09fb51b28c01c93d5806de9cbef963dd"
    "f3683e9e550fe5771d612e86773247aacd3059a13f95957048196c580415a4bbf0c94deb23e25d3c4a35688fbe"
    "3cdd0f5698670f5ca9507297f408633842fc34a847f28363d22946a1bd237bad987df81fc4c25824d2f2f8f4f4"
    "4b";

static const char RSA_PKCS1_ABC[] =
    "1f10000f2f407c59c1f91e18de204eebe08dc2efb99f85ae44fd39c65f52734940a01d0c5e0443715eaf93bede"
    "07047bf7caf3cba910a63c3d80a6ab34e66b17e5a0c32a7fbd5282a113fb2f9e7c78e06470b50d7d6eaeda53b6"
    "6ec0a85c8b4ebd5a7ef56e1f0b2955c95930bf31430c3601864904b6f64e0352cf8dc54481b5874ae1e108da0b"
    "c57c90be1fa0aec4694b3b0ce4022d28637ca7252809d1fd7431133308b446550fcbd665a9408eac1489ca7ee1"
    "eb67180663306f0b1ed54c6cd871574c639887979f17e644fbdf74a7715a6c54f2cb5a5017b16714a3d18e32b5"
    "d228ead6c3510595c9fff0304118077bafa45ff30c3f6229c1e3a8de552b67";

static const char RSA_PSS_ABC[] =
    "4d0840bdbfb8cbec183ea2da97bfee602807e446a93457d82a0e5545867eff07e91e8b71890e255ab55a8f7516"
    "e43c8823ebd1688e7d953f161e488cf76599139cb16cd1b229569ac0aa4dd02945324ba6c38b2e9549afcb53b5"
    "39ed0974e1be2989a586869e5d5cf4de57b730f486981f7d28c90381228465a8016cea1e26a11554988ccfbd83"
    "5b03f79cafa06075663e4aac0e0abde6585e6c8cb71cd84f726600c98213c6328718977a8b2b883c2158d079f7"
    "cfcec142ee2dc8aac0bafd986659e2fbf54edc0a6146a9d0eb0c411212f06921af0df673e4dbf21b766ffde2b5"
    "6f660a9f1356441f8aa0d34d75fae734ed30c87449db11b88fd4be78be48ed";

static const char AES_CT[] =
    "vault:v1:BwcHBwcHBwcHBwcHewLDfB56vpetvXHy7yaau8cz9f+lWWYbralvAqnNyz7A54g=";

/* RFC 8032, 7.1, TEST 1 and TEST 2. */
static const char ED_SK1[] = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char ED_PK1[] = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
static const char ED_SIG1[] =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590"
    "a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
static const char ED_SK2[] = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
static const char ED_SIG2[] =
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e"
    "15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00";

/* RFC 6979, A.2.5 and A.2.6: message "sample", SHA-256. */
static const char P256_R[] = "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716";
static const char P256_S[] = "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8";
static const char P384_R[] =
    "21b13d1e013c7fa1392d03c5f99af8b30c570c6f98d4ea8e354b63a21d3daa33bde1e888e6"
    "3355d92fa2b3c36d8fb2cd";
static const char P384_S[] =
    "f3aa443fb107745bf4bd77cb3891674632068a10ca67e3d45db2266fa7d1feebefdc63eccd"
    "1ac42ec0cb8668a4fa0ab0";

struct fx {
    struct barrier_fx s;
    struct transit *t;
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct rk_error err = {0};

    assert_non_null(f);
    barrier_fx_open(&f->s, "transit");
    assert_int_equal(transit_open(f->s.br, &f->t, &err), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    transit_close(f->t);
    barrier_fx_close(&f->s);
    free(f);
    return 0;
}

static size_t
unhex(const char *hex, unsigned char *out, size_t cap)
{
    size_t n = strlen(hex) / 2;

    assert_true(n <= cap);
    assert_int_equal(hex_decode(hex, strlen(hex), out, n), 0);
    return n;
}

/* Creates key name of type from hex material (or generated when hex is NULL). */
static void
make_key(struct fx *f, const char *name, enum transit_type type, const char *hex, int exportable)
{
    struct transit_create_opts o = {.type = type, .exportable = exportable};
    struct transit_newkey *k = NULL;
    struct rk_error err = {0};
    unsigned char raw[2048];
    int created = 0;

    if (hex != NULL)
        assert_int_equal(transit_newkey_import(type, raw, unhex(hex, raw, sizeof(raw)), &k, &err),
                         0);
    else
        assert_int_equal(transit_keygen(type, &k, &err), 0);
    if (transit_create(f->t, name, &o, k, &created, &err) != 0)
        fail_msg("create %s: %s", name, err.msg);
    assert_int_equal(created, 1);
    transit_newkey_free(k);
}

static void
rotate(struct fx *f, const char *name, enum transit_type type, int pending, uint64_t *v)
{
    struct transit_newkey *k = NULL;
    struct rk_error err = {0};

    assert_int_equal(transit_keygen(type, &k, &err), 0);
    if (transit_add_version(f->t, name, k, pending, v, &err) != 0)
        fail_msg("rotate %s: %s", name, err.msg);
    transit_newkey_free(k);
}

/* ---- known answers ---- */

static void
test_ed25519_rfc8032(void **state)
{
    struct fx *f = *state;
    struct transit_sign_opts o = {0};
    struct rk_error err = {0};
    unsigned char want[64], pk[32], *sig = NULL, msg = 0x72, *raw = NULL;
    size_t siglen = 0, rawlen = 0;
    uint64_t v = 0;
    char *pub = NULL, *text = NULL;
    int valid = 0;

    make_key(f, "ed1", TRANSIT_ED25519, ED_SK1, 0);
    /* TEST 1: the empty message */
    assert_int_equal(
        transit_sign(f->t, "ed1", &o, (const unsigned char *)"", 0, &sig, &siglen, &v, &err), 0);
    assert_int_equal(v, 1);
    assert_int_equal(siglen, 64);
    unhex(ED_SIG1, want, sizeof(want));
    assert_memory_equal(sig, want, 64);
    /* the public key as Vault shows it: base64 of the 32 raw bytes */
    assert_int_equal(transit_public_key(f->t, "ed1", 1, &pub, &err), 0);
    unhex(ED_PK1, pk, sizeof(pk));
    raw = base64_decode(pub, strlen(pub), &rawlen);
    assert_non_null(raw);
    assert_int_equal(rawlen, 32);
    assert_memory_equal(raw, pk, 32);
    free(raw);
    free(pub);
    /* vault:v1: text round trip and verify */
    assert_int_equal(transit_sig_format(v, sig, siglen, TRANSIT_MARSHAL_ASN1, &text), 0);
    assert_true(strncmp(text, "vault:v1:", 9) == 0);
    assert_int_equal(transit_sig_parse(text, TRANSIT_MARSHAL_ASN1, &v, &raw, &rawlen, &err), 0);
    assert_int_equal(v, 1);
    assert_int_equal(
        transit_verify(f->t, "ed1", &o, v, (const unsigned char *)"", 0, raw, rawlen, &valid, &err),
        0);
    assert_true(valid);
    assert_int_equal(transit_verify(f->t, "ed1", &o, v, (const unsigned char *)"x", 1, raw, rawlen,
                                    &valid, &err),
                     0);
    assert_false(valid);
    free(raw);
    free(text);
    free(sig);
    /* TEST 2: one byte 0x72 */
    make_key(f, "ed2", TRANSIT_ED25519, ED_SK2, 0);
    assert_int_equal(transit_sign(f->t, "ed2", &o, &msg, 1, &sig, &siglen, &v, &err), 0);
    unhex(ED_SIG2, want, sizeof(want));
    assert_memory_equal(sig, want, 64);
    free(sig);
    /* ed25519 takes no prehashed input */
    o.prehashed = 1;
    assert_int_equal(transit_sign(f->t, "ed2", &o, &msg, 1, &sig, &siglen, &v, &err), -RK_EINVAL);
}

static void
ecdsa_rfc6979(struct fx *f, const char *name, enum transit_type type, const char *der,
              const char *rhex, const char *shex)
{
    struct transit_sign_opts o = {.marshal = TRANSIT_MARSHAL_JWS};
    struct rk_error err = {0};
    unsigned char sig[96], *mine = NULL;
    size_t n = unhex(rhex, sig, sizeof(sig)), minelen = 0;
    uint64_t v = 0;
    int valid = 0;

    make_key(f, name, type, der, 0);
    unhex(shex, sig + n, sizeof(sig) - n);
    assert_int_equal(transit_verify(f->t, name, &o, 1, (const unsigned char *)"sample", 6, sig,
                                    2 * n, &valid, &err),
                     0);
    assert_true(valid);
    sig[5] ^= 0x10;
    assert_int_equal(transit_verify(f->t, name, &o, 1, (const unsigned char *)"sample", 6, sig,
                                    2 * n, &valid, &err),
                     0);
    assert_false(valid);
    /* our own signatures, in both marshalings */
    for (int m = 0; m < 2; m++) {
        o.marshal = m ? TRANSIT_MARSHAL_JWS : TRANSIT_MARSHAL_ASN1;
        assert_int_equal(transit_sign(f->t, name, &o, (const unsigned char *)"sample", 6, &mine,
                                      &minelen, &v, &err),
                         0);
        if (m)
            assert_int_equal(minelen, 2 * n);
        else
            assert_int_equal(mine[0], 0x30); /* DER SEQUENCE */
        assert_int_equal(transit_verify(f->t, name, &o, 1, (const unsigned char *)"sample", 6, mine,
                                        minelen, &valid, &err),
                         0);
        assert_true(valid);
        free(mine);
    }
}

static void
test_ecdsa_rfc6979(void **state)
{
    struct fx *f = *state;

    ecdsa_rfc6979(f, "p256", TRANSIT_ECDSA_P256, P256_DER, P256_R, P256_S);
    ecdsa_rfc6979(f, "p384", TRANSIT_ECDSA_P384, P384_DER, P384_R, P384_S);
}

static void
test_rsa_known(void **state)
{
    struct fx *f = *state;
    struct transit_sign_opts o = {.pad = TRANSIT_PAD_PKCS1V15, .salt_len = TRANSIT_SALT_AUTO};
    struct rk_error err = {0};
    unsigned char want[256], *sig = NULL, dig[32];
    size_t siglen = 0;
    uint64_t v = 0;
    int valid = 0;

    make_key(f, "rsa", TRANSIT_RSA_2048, RSA_DER, 0);
    /* PKCS#1 v1.5 is deterministic: the same bytes as python-cryptography */
    assert_int_equal(
        transit_sign(f->t, "rsa", &o, (const unsigned char *)"abc", 3, &sig, &siglen, &v, &err), 0);
    assert_int_equal(siglen, 256);
    unhex(RSA_PKCS1_ABC, want, sizeof(want));
    assert_memory_equal(sig, want, 256);
    free(sig);
    /* prehashed: the same signature from SHA-256("abc") */
    assert_int_equal(
        hex_decode("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 64, dig, 32),
        0);
    o.prehashed = 1;
    assert_int_equal(transit_sign(f->t, "rsa", &o, dig, 32, &sig, &siglen, &v, &err), 0);
    assert_memory_equal(sig, want, 256);
    free(sig);
    /* PSS by python-cryptography (salt 32) verifies with "auto" and "hash" salts */
    o.prehashed = 0;
    o.pad = TRANSIT_PAD_PSS;
    unhex(RSA_PSS_ABC, want, sizeof(want));
    assert_int_equal(transit_verify(f->t, "rsa", &o, 1, (const unsigned char *)"abc", 3, want, 256,
                                    &valid, &err),
                     0);
    assert_true(valid);
    o.salt_len = TRANSIT_SALT_HASH;
    assert_int_equal(transit_verify(f->t, "rsa", &o, 1, (const unsigned char *)"abc", 3, want, 256,
                                    &valid, &err),
                     0);
    assert_true(valid);
    /* our PSS signatures verify; sha2-512 too */
    o.hash = "sha2-512";
    assert_int_equal(
        transit_sign(f->t, "rsa", &o, (const unsigned char *)"abc", 3, &sig, &siglen, &v, &err), 0);
    assert_int_equal(transit_verify(f->t, "rsa", &o, 1, (const unsigned char *)"abc", 3, sig,
                                    siglen, &valid, &err),
                     0);
    assert_true(valid);
    free(sig);
    o.hash = "md5";
    assert_int_equal(
        transit_sign(f->t, "rsa", &o, (const unsigned char *)"abc", 3, &sig, &siglen, &v, &err),
        -RK_EINVAL);
}

static void
test_aes_known(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct secret *pt = NULL;
    uint64_t v = 0;
    char *ct = NULL, *ct2 = NULL;
    unsigned char *sig = NULL;
    size_t siglen;
    struct transit_sign_opts o = {0};
    char hex[65];
    unsigned char raw[32];

    for (int i = 0; i < 32; i++)
        raw[i] = (unsigned char)i;
    hex_encode(raw, 32, hex);
    make_key(f, "aes", TRANSIT_AES256_GCM96, hex, 0);
    assert_int_equal(transit_decrypt(f->t, "aes", AES_CT, &pt, &v, &err), 0);
    assert_int_equal(v, 1);
    assert_int_equal(pt->len, 19);
    assert_memory_equal(pt->data, "the quick brown fox", 19);
    secret_free(pt);
    /* our ciphertexts: random nonces, so two differ, and both decrypt */
    assert_int_equal(transit_encrypt(f->t, "aes", 0, (const unsigned char *)"hi", 2, &ct, &v, &err),
                     0);
    assert_int_equal(
        transit_encrypt(f->t, "aes", 0, (const unsigned char *)"hi", 2, &ct2, &v, &err), 0);
    assert_string_not_equal(ct, ct2);
    assert_int_equal(transit_decrypt(f->t, "aes", ct2, &pt, NULL, &err), 0);
    assert_memory_equal(pt->data, "hi", 2);
    secret_free(pt);
    /* a changed byte does not authenticate */
    ct[strlen(ct) - 3] = ct[strlen(ct) - 3] == 'A' ? 'B' : 'A';
    assert_int_equal(transit_decrypt(f->t, "aes", ct, &pt, NULL, &err), -RK_EINVAL);
    assert_non_null(strstr(err.msg, "authentication"));
    free(ct);
    free(ct2);
    /* an encryption key does not sign */
    assert_int_equal(
        transit_sign(f->t, "aes", &o, (const unsigned char *)"x", 1, &sig, &siglen, &v, &err),
        -RK_EINVAL);
    assert_int_equal(transit_decrypt(f->t, "aes", "vault:v1:!!", &pt, NULL, &err), -RK_EINVAL);
    assert_int_equal(transit_decrypt(f->t, "aes", "nope", &pt, NULL, &err), -RK_EINVAL);
}

/* Every type: generate, sign or encrypt, self-test, public encodings. */
static void
test_every_type(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};

    for (int ty = 0; ty < TRANSIT_NTYPES; ty++) {
        enum transit_type type = (enum transit_type)ty;
        char name[32];
        json_t *keys;

        if (type == TRANSIT_RSA_3072 || type == TRANSIT_RSA_4096)
            continue; /* slow to generate; rsa-2048 covers the code, t-transit one rsa-4096 */
        keys = json_array();
        snprintf(name, sizeof(name), "k-%s", transit_type_name(type));
        make_key(f, name, type, NULL, 1);
        assert_int_equal(transit_self_test(f->t, name, 1, &err), 0);
        if (transit_type_signs(type)) {
            char *pem = NULL;
            assert_int_equal(transit_public_pem(f->t, name, 1, &pem, &err), 0);
            assert_non_null(strstr(pem, "BEGIN PUBLIC KEY"));
            free(pem);
            assert_int_equal(jwt_jwks_add(f->t, name, keys, NULL, &err), 0);
            assert_int_equal(json_array_size(keys), 1);
            assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 0), "kid")),
                                strcat(name, ":v1"));
        } else {
            assert_int_equal(jwt_jwks_add(f->t, name, keys, NULL, &err), -RK_EINVAL);
        }
        json_decref(keys);
    }
}

/* ---- keyring rules ---- */

static void
test_versions_and_minimums(void **state)
{
    struct fx *f = *state;
    struct transit_sign_opts o = {0};
    struct transit_config c;
    struct transit_info *info = NULL;
    struct rk_error err = {0};
    unsigned char *s1 = NULL, *s2 = NULL;
    size_t l1 = 0, l2 = 0;
    uint64_t v = 0;
    int valid = 0;
    struct secret *exp = NULL;
    struct transit_newkey *k = NULL;
    int created = 1;
    struct transit_create_opts co = {.type = TRANSIT_ED25519};

    make_key(f, "ring", TRANSIT_ED25519, NULL, 0);
    /* create of an existing key changes nothing */
    assert_int_equal(transit_keygen(TRANSIT_ED25519, &k, &err), 0);
    assert_int_equal(transit_create(f->t, "ring", &co, k, &created, &err), 0);
    assert_int_equal(created, 0);
    /* a key of another type cannot join the ring */
    transit_newkey_free(k);
    assert_int_equal(transit_keygen(TRANSIT_ECDSA_P256, &k, &err), 0);
    assert_int_equal(transit_add_version(f->t, "ring", k, 0, &v, &err), -RK_EINVAL);
    transit_newkey_free(k);

    assert_int_equal(
        transit_sign(f->t, "ring", &o, (const unsigned char *)"m", 1, &s1, &l1, &v, &err), 0);
    assert_int_equal(v, 1);
    rotate(f, "ring", TRANSIT_ED25519, 0, &v);
    assert_int_equal(v, 2);
    assert_int_equal(
        transit_sign(f->t, "ring", &o, (const unsigned char *)"m", 1, &s2, &l2, &v, &err), 0);
    assert_int_equal(v, 2);
    /* version 1 still verifies; a signature does not verify under the other version */
    assert_int_equal(
        transit_verify(f->t, "ring", &o, 1, (const unsigned char *)"m", 1, s1, l1, &valid, &err),
        0);
    assert_true(valid);
    assert_int_equal(
        transit_verify(f->t, "ring", &o, 2, (const unsigned char *)"m", 1, s1, l1, &valid, &err),
        0);
    assert_false(valid);
    /* Vault's config rules */
    memset(&c, 0, sizeof(c));
    c.set_min_decryption = 1;
    c.min_decryption_version = 3;
    assert_int_equal(transit_configure(f->t, "ring", &c, &err), -RK_EINVAL);
    assert_non_null(strstr(err.msg, "latest key version is 2"));
    c.min_decryption_version = 2;
    c.set_min_encryption = 1;
    c.min_encryption_version = 1;
    assert_int_equal(transit_configure(f->t, "ring", &c, &err), -RK_EINVAL);
    c.min_encryption_version = 2;
    assert_int_equal(transit_configure(f->t, "ring", &c, &err), 0);
    /* version 1 no longer verifies: too old */
    assert_int_equal(
        transit_verify(f->t, "ring", &o, 1, (const unsigned char *)"m", 1, s1, l1, &valid, &err),
        -RK_EINVAL);
    assert_non_null(strstr(err.msg, "too old"));
    /* nor signs */
    free(s1);
    o.key_version = 1;
    assert_int_equal(
        transit_sign(f->t, "ring", &o, (const unsigned char *)"m", 1, &s1, &l1, &v, &err),
        -RK_EINVAL);
    o.key_version = 3;
    assert_int_equal(
        transit_sign(f->t, "ring", &o, (const unsigned char *)"m", 1, &s1, &l1, &v, &err),
        -RK_EINVAL);
    /* the minimum goes back down when asked (Vault allows it) */
    memset(&c, 0, sizeof(c));
    c.set_min_encryption = c.set_min_decryption = 1;
    c.min_decryption_version = 0; /* means 1 */
    assert_int_equal(transit_configure(f->t, "ring", &c, &err), 0);
    assert_int_equal(transit_info_get(f->t, "ring", &info, &err), 0);
    assert_int_equal(info->min_decryption_version, 1);
    assert_int_equal(info->latest_version, 2);
    assert_int_equal(info->nversions, 2);
    transit_info_free(info);
    /* auto_rotate_period: 0 or at least an hour */
    memset(&c, 0, sizeof(c));
    c.set_auto_rotate = 1;
    c.auto_rotate_period = 600;
    assert_int_equal(transit_configure(f->t, "ring", &c, &err), -RK_EINVAL);
    c.auto_rotate_period = 3600;
    assert_int_equal(transit_configure(f->t, "ring", &c, &err), 0);
    /* raise_min never lowers, stops at latest */
    assert_int_equal(transit_raise_min(f->t, "ring", 9, &v, &err), 0);
    assert_int_equal(v, 2);
    assert_int_equal(transit_raise_min(f->t, "ring", 1, &v, &err), 0);
    assert_int_equal(v, 2);
    /* export: not exportable; then exportable, which cannot be undone */
    assert_int_equal(transit_export(f->t, "ring", 2, &exp, &err), -RK_EPERM);
    memset(&c, 0, sizeof(c));
    c.set_exportable = 1;
    c.exportable = 1;
    assert_int_equal(transit_configure(f->t, "ring", &c, &err), 0);
    c.exportable = 0;
    assert_int_equal(transit_configure(f->t, "ring", &c, &err), -RK_EINVAL);
    assert_int_equal(transit_export(f->t, "ring", 2, &exp, &err), 0);
    assert_int_equal(exp->len, 88); /* base64 of 64 bytes */
    secret_free(exp);
    /* deletion only when allowed */
    assert_int_equal(transit_delete(f->t, "ring", &err), -RK_EINVAL);
    memset(&c, 0, sizeof(c));
    c.set_deletion_allowed = c.deletion_allowed = 1;
    assert_int_equal(transit_configure(f->t, "ring", &c, &err), 0);
    assert_int_equal(transit_delete(f->t, "ring", &err), 0);
    assert_int_equal(transit_exists(f->t, "ring", &err), 0);
    assert_int_equal(transit_delete(f->t, "ring", &err), -RK_ENOTFOUND);
    free(s2);
    /* names */
    assert_int_equal(transit_name_check("a/b", &err), -RK_EINVAL);
    assert_int_equal(transit_name_check("..", &err), -RK_EINVAL);
    assert_int_equal(transit_name_check("Jwt-Signing_1.x@y", &err), 0);
}

static int
count_keys(struct fx *f, const char *name)
{
    struct rk_error err = {0};
    json_t *keys = json_array();
    int n;

    assert_int_equal(jwt_jwks_add(f->t, name, keys, NULL, &err), 0);
    n = (int)json_array_size(keys);
    json_decref(keys);
    return n;
}

static void
test_pending_and_failed(void **state)
{
    struct fx *f = *state;
    struct transit_sign_opts o = {0};
    struct transit_info *info = NULL;
    struct rk_error err = {0};
    unsigned char *sig = NULL;
    size_t siglen = 0;
    uint64_t v = 0, p = 0;

    make_key(f, "pk", TRANSIT_ECDSA_P256, NULL, 0);
    rotate(f, "pk", TRANSIT_ECDSA_P256, 1, &v);
    assert_int_equal(v, 2);
    /* published, not signing */
    assert_int_equal(count_keys(f, "pk"), 2);
    assert_int_equal(
        transit_sign(f->t, "pk", &o, (const unsigned char *)"m", 1, &sig, &siglen, &v, &err), 0);
    assert_int_equal(v, 1);
    free(sig);
    o.key_version = 2;
    assert_int_equal(
        transit_sign(f->t, "pk", &o, (const unsigned char *)"m", 1, &sig, &siglen, &v, &err),
        -RK_EINVAL);
    assert_int_equal(transit_pending_version(f->t, "pk", &p, &err), 0);
    assert_int_equal(p, 2);
    assert_int_equal(transit_self_test(f->t, "pk", 2, &err), 0);
    /* promote (twice: idempotent) */
    assert_int_equal(transit_promote(f->t, "pk", 2, &err), 0);
    assert_int_equal(transit_promote(f->t, "pk", 2, &err), 0);
    o.key_version = 0;
    assert_int_equal(
        transit_sign(f->t, "pk", &o, (const unsigned char *)"m", 1, &sig, &siglen, &v, &err), 0);
    assert_int_equal(v, 2);
    free(sig);
    /* an undone version: never latest again, never published, number not reused */
    assert_int_equal(transit_fail_version(f->t, "pk", 2, &err), 0);
    assert_int_equal(transit_fail_version(f->t, "pk", 2, &err), 0);
    assert_int_equal(transit_info_get(f->t, "pk", &info, &err), 0);
    assert_int_equal(info->latest_version, 1);
    transit_info_free(info);
    assert_int_equal(count_keys(f, "pk"), 1);
    assert_int_equal(transit_promote(f->t, "pk", 2, &err), -RK_EINVAL);
    assert_int_equal(transit_self_test(f->t, "pk", 2, &err), -RK_EINVAL);
    rotate(f, "pk", TRANSIT_ECDSA_P256, 0, &v);
    assert_int_equal(v, 3);
    assert_int_equal(transit_pending_version(f->t, "pk", &p, &err), 0);
    assert_int_equal(p, 0);
    /* a brand-new pending key has no signing version until promoted */
    {
        struct transit_create_opts co = {.type = TRANSIT_ED25519, .pending = 1};
        struct transit_newkey *k = NULL;
        int created = 0;
        assert_int_equal(transit_keygen(TRANSIT_ED25519, &k, &err), 0);
        assert_int_equal(transit_create(f->t, "fresh", &co, k, &created, &err), 0);
        transit_newkey_free(k);
        assert_int_equal(
            transit_sign(f->t, "fresh", &o, (const unsigned char *)"m", 1, &sig, &siglen, &v, &err),
            -RK_EINVAL);
        assert_int_equal(count_keys(f, "fresh"), 1);
        assert_int_equal(transit_promote(f->t, "fresh", 1, &err), 0);
        assert_int_equal(
            transit_sign(f->t, "fresh", &o, (const unsigned char *)"m", 1, &sig, &siglen, &v, &err),
            0);
        free(sig);
    }
}

struct racer {
    struct fx *f;
    int n;
};

static void *
race(void *arg)
{
    struct racer *r = arg;

    for (int i = 0; i < r->n; i++)
        rotate(r->f, "race", TRANSIT_AES256_GCM96, 0, NULL);
    return NULL;
}

static void
test_concurrent_rotations(void **state)
{
    struct fx *f = *state;
    struct racer r = {f, 20};
    struct transit_info *info = NULL;
    struct rk_error err = {0};
    struct transit *t2 = NULL;
    pthread_t th[3];

    make_key(f, "race", TRANSIT_AES256_GCM96, NULL, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race, &r), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(transit_info_get(f->t, "race", &info, &err), 0);
    assert_int_equal(info->nversions, 61);
    assert_int_equal(info->latest_version, 61);
    for (size_t i = 0; i < info->nversions; i++)
        assert_int_equal(info->versions[i].version, i + 1);
    transit_info_free(info);
    /* one engine per barrier */
    assert_int_equal(transit_open(f->s.br, &t2, &err), 0);
    assert_ptr_equal(t2, f->t);
    transit_close(t2);
}

/* ---- JWT ---- */

static void
test_jwt_lifecycle(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct jwt_result res;
    json_t *claims = json_pack("{s:s, s:I}", "sub", "gateway", "exp", (json_int_t)4000000000);
    char *t1 = NULL, *t2 = NULL, *bad;
    uint64_t v = 0;

    make_key(f, "jwt", TRANSIT_ED25519, NULL, 0);
    assert_int_equal(jwt_issue(f->t, "jwt", claims, NULL, &t1, &v, &err), 0);
    assert_int_equal(v, 1);
    assert_int_equal(jwt_verify(f->t, "jwt", t1, 1700000000, 0, &res, &err), 0);
    assert_true(res.valid);
    assert_int_equal(res.version, 1);
    assert_string_equal(json_string_value(json_object_get(res.header, "kid")), "jwt:v1");
    assert_string_equal(json_string_value(json_object_get(res.header, "alg")), "EdDSA");
    assert_string_equal(json_string_value(json_object_get(res.claims, "sub")), "gateway");
    jwt_result_clear(&res);
    /* expired */
    assert_int_equal(jwt_verify(f->t, "jwt", t1, 4000000000, 0, &res, &err), 0);
    assert_false(res.valid);
    assert_non_null(strstr(res.reason, "expired"));
    jwt_result_clear(&res);
    /* a token of version 1 verifies after a rotation until the minimum passes 1 */
    rotate(f, "jwt", TRANSIT_ED25519, 0, &v);
    assert_int_equal(jwt_issue(f->t, "jwt", claims, NULL, &t2, &v, &err), 0);
    assert_int_equal(v, 2);
    assert_int_equal(jwt_verify(f->t, "jwt", t1, 1700000000, 0, &res, &err), 0);
    assert_true(res.valid);
    jwt_result_clear(&res);
    assert_int_equal(count_keys(f, "jwt"), 2);
    assert_int_equal(transit_raise_min(f->t, "jwt", 2, &v, &err), 0);
    assert_int_equal(jwt_verify(f->t, "jwt", t1, 1700000000, 0, &res, &err), 0);
    assert_false(res.valid);
    assert_non_null(strstr(res.reason, "too old"));
    jwt_result_clear(&res);
    assert_int_equal(count_keys(f, "jwt"), 1);
    assert_int_equal(jwt_verify(f->t, "jwt", t2, 1700000000, 0, &res, &err), 0);
    assert_true(res.valid);
    jwt_result_clear(&res);
    /* tampering: a changed signature byte, a kid of another key, garbage, alg none */
    bad = strdup(t2);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(jwt_verify(f->t, "jwt", bad, 1700000000, 0, &res, &err), 0);
    assert_false(res.valid);
    jwt_result_clear(&res);
    free(bad);
    make_key(f, "other", TRANSIT_ED25519, NULL, 0);
    assert_int_equal(jwt_verify(f->t, "other", t2, 1700000000, 0, &res, &err), 0);
    assert_false(res.valid);
    assert_non_null(strstr(res.reason, "kid"));
    jwt_result_clear(&res);
    assert_int_equal(jwt_verify(f->t, "jwt", "a.b", 1700000000, 0, &res, &err), 0);
    assert_false(res.valid);
    jwt_result_clear(&res);
    /* {"alg":"none","kid":"jwt:v2"} . {} . "" */
    assert_int_equal(jwt_verify(f->t, "jwt", "eyJhbGciOiJub25lIiwia2lkIjoiand0OnYyIn0.e30.",
                                1700000000, 0, &res, &err),
                     0);
    assert_false(res.valid);
    assert_non_null(strstr(res.reason, "algorithm"));
    jwt_result_clear(&res);
    /* RSA: RS256 by default, PS256 when asked, ES256 refused */
    make_key(f, "rs", TRANSIT_RSA_2048, RSA_DER, 0);
    free(t1);
    assert_int_equal(jwt_issue(f->t, "rs", claims, "PS256", &t1, &v, &err), 0);
    assert_int_equal(jwt_verify(f->t, "rs", t1, 1700000000, 0, &res, &err), 0);
    assert_true(res.valid);
    assert_string_equal(json_string_value(json_object_get(res.header, "alg")), "PS256");
    jwt_result_clear(&res);
    free(t1);
    assert_int_equal(jwt_issue(f->t, "rs", claims, "ES256", &t1, &v, &err), -RK_EINVAL);
    assert_int_equal(jwt_verify(f->t, "missing", t2, 1700000000, 0, &res, &err), -RK_ENOTFOUND);
    json_decref(claims);
    free(t2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ed25519_rfc8032, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ecdsa_rfc6979, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rsa_known, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aes_known, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_versions_and_minimums, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_and_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_rotations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jwt_lifecycle, setup, teardown),
    };
    secure_heap_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
