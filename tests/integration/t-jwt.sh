#!/usr/bin/env bash
# JWTs and JWKS checked by an independent verifier (Debian's python3-jwt with /usr/bin/python3):
# a token signed by version N verifies, through the public /.well-known/jwks.json, until the
# minimum version passes N (the rotation's finish step after grace), and then no longer, by
# pyjwt nor by rekey's own verify; every algorithm (EdDSA, ES256, ES384, RS256, PS256) through
# the per-key JWKS; the cache headers; tampered tokens refused; who may issue.
. "$REKEY_TOP/tests/integration/lib.sh"

$PY -c 'import jwt, cryptography' 2>/dev/null || fail "python3-jwt and python3-cryptography are needed (scripts/deps)"
dir=$PWD

req() {
    local method=$1 path=$2 body=${3-} hdr=${4-root.hdr.secret}
    local args=(-s -D headers.txt -o resp.json -w '%{http_code}' -X "$method")
    [ -n "$hdr" ] && args+=(-H @"$hdr")
    [ -n "$body" ] && args+=(--data-binary "$body")
    STATUS=$(curl "${args[@]}" "$A$path")
}
# pyjwt PATH TOKEN ALG: verifies TOKEN with the JWKS at PATH (no token sent); prints the claims'
# sub, or "refused: <why>".
pyjwt() {
    $PY - "$A$1" "$2" "$3" <<'PY'
import sys, jwt
url, token, alg = sys.argv[1:]
try:
    key = jwt.PyJWKClient(url, cache_keys=False).get_signing_key_from_jwt(token)
    print(jwt.decode(token, key.key, algorithms=[alg])["sub"])
except Exception as e:
    print("refused: %s: %s" % (type(e).__name__, e))
PY
}
kill_server_at_exit

export REKEY_KEY_FILE="$dir/kf.key"
kf_init
cat >rekey.yaml <<EOF
$(kf_yaml)
secrets:
  - path: transit/keys/tok
    kind: transit
    key_type: ecdsa-p256
    every: 7d
    auto: true
    grace: 1h
EOF
: >server.log
start_server
wait_server_log "rotated transit/keys/tok v0 -> v1" 10

# ---- version 1 signs; the public JWKS verifies it ----
req POST /v1/rekey/jwt/tok '{"claims":{"sub":"gateway","scope":"api"},"ttl":"24h"}'
expect 200
T1=$(j 'd["data"]["token"]')
[ "$(j 'd["data"]["kid"]')" = tok:v1 ] || { cat resp.json; fail "kid"; }
[ "$(pyjwt /.well-known/jwks.json "$T1" ES256)" = gateway ] || fail "pyjwt refuses T1: $(pyjwt /.well-known/jwks.json "$T1" ES256)"
req GET /.well-known/jwks.json '' ''
expect 200
grep -qi '^cache-control: public, max-age=3600' headers.txt || { cat headers.txt; fail "JWKS cache headers (7d / 100, at most an hour)"; }
[ "$(j 'sorted(k["kid"] for k in d["keys"])')" = "['tok:v1']" ] || { cat resp.json; fail "JWKS"; }

# ---- a rotation: v2 signs, v1 still verifies during grace ----
req POST /v1/rekey/rotate/transit/keys/tok '{}'
expect 200
req GET /.well-known/jwks.json '' ''
[ "$(j 'sorted(k["kid"] for k in d["keys"])')" = "['tok:v1', 'tok:v2']" ] || { cat resp.json; fail "JWKS after rotation"; }
req POST /v1/rekey/jwt/tok '{"claims":{"sub":"second"},"ttl":"24h"}'
expect 200
T2=$(j 'd["data"]["token"]')
[ "$(j 'd["data"]["kid"]')" = tok:v2 ] || { cat resp.json; fail "kid v2"; }
[ "$(pyjwt /.well-known/jwks.json "$T1" ES256)" = gateway ] || fail "T1 refused during grace"
[ "$(pyjwt /.well-known/jwks.json "$T2" ES256)" = second ] || fail "T2 refused"
req POST /v1/rekey/jwt/tok/verify "{\"token\":\"$T1\"}"
expect 200
[ "$(j 'd["data"]["valid"], d["data"]["key_version"], d["data"]["claims"]["scope"]')" = "(True, 1, 'api')" ] ||
    { cat resp.json; fail "rekey verify T1"; }

# ---- grace passes (the clock two hours on): the finish step raises the minimum past v1 ----
stop_server
start_server REKEY_NOW=$(($(date +%s) + 7200))
wait_server_log "finished transit/keys/tok: retired v1" 10
req GET /v1/transit/keys/tok
[ "$(j 'd["data"]["min_decryption_version"]')" = 2 ] || { cat resp.json; fail "minimum not raised"; }
req GET /.well-known/jwks.json '' ''
[ "$(j 'sorted(k["kid"] for k in d["keys"])')" = "['tok:v2']" ] || { cat resp.json; fail "v1 still published"; }
case $(pyjwt /.well-known/jwks.json "$T1" ES256) in refused:*) ;; *) fail "T1 still verifies after the minimum passed v1" ;; esac
[ "$(pyjwt /.well-known/jwks.json "$T2" ES256)" = second ] || fail "T2 refused after the finish"
req POST /v1/rekey/jwt/tok/verify "{\"token\":\"$T1\"}"
expect 200
[ "$(j 'd["data"]["valid"]')" = False ] || { cat resp.json; fail "rekey still accepts T1"; }
expect_in resp.json "too old"
stop_server
start_server

# ---- every algorithm, through the per-key JWKS ----
for spec in ed:ed25519:EdDSA p384:ecdsa-p384:ES384 rsa:rsa-2048:RS256 rsa:rsa-2048:PS256; do
    IFS=: read -r name type alg <<<"$spec"
    req POST "/v1/transit/keys/$name" "{\"type\":\"$type\"}"
    expect 200
    req POST "/v1/rekey/jwt/$name" "{\"claims\":{\"sub\":\"$alg\"},\"ttl\":\"1h\",\"alg\":\"$alg\"}"
    expect 200
    tok=$(j 'd["data"]["token"]')
    [ "$(pyjwt "/v1/rekey/jwks/$name" "$tok" "$alg")" = "$alg" ] ||
        fail "$alg: $(pyjwt "/v1/rekey/jwks/$name" "$tok" "$alg")"
    # a changed claim is refused by both
    bad=$($PY -c 'import sys,base64,json; h,p,s=sys.argv[1].split("."); c=json.loads(base64.urlsafe_b64decode(p+"==")); c["sub"]="mallory"; print(h+"."+base64.urlsafe_b64encode(json.dumps(c).encode()).decode().rstrip("=")+"."+s)' "$tok")
    case $(pyjwt "/v1/rekey/jwks/$name" "$bad" "$alg") in refused:*) ;; *) fail "$alg: a forged token verifies" ;; esac
    req POST "/v1/rekey/jwt/$name/verify" "{\"token\":\"$bad\"}"
    [ "$(j 'd["data"]["valid"]')" = False ] || { cat resp.json; fail "$alg: rekey accepts a forged token"; }
done
req POST /v1/rekey/jwt/rsa '{"claims":{},"alg":"ES256"}'
expect 400
req POST /v1/transit/keys/aes '{"type":"aes256-gcm96"}'
expect 200
req POST /v1/rekey/jwt/aes '{"claims":{}}'
expect 400
req GET /v1/rekey/jwks/aes '' ''
expect 400
req GET /v1/rekey/jwks/missing '' ''
expect 404
# the whole document holds every signing key, and no encryption key
req GET /.well-known/jwks.json '' ''
expect 200
[ "$(j 'sorted({k["kid"].split(":")[0] for k in d["keys"]})')" = "['ed', 'p384', 'rsa', 'tok']" ] ||
    { cat resp.json; fail "the whole JWKS"; }
# issuing needs a token with update on rekey/jwt/NAME; the JWKS needs none
req POST /v1/rekey/jwt/tok '{"claims":{}}' ''
expect 403
req GET /v1/rekey/jwks/tok '' ''
expect 200
stop_server
echo "t-jwt: ok"
