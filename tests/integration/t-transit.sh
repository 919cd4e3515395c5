#!/usr/bin/env bash
# Transit keyrings end to end: the example's jwt-signing entry (rsa-4096) rotated by the CLI and
# shown by status and kv get (public data only); then a `rekey server` whose scheduler rotates a
# configured key at once, Vault's transit API over curl with the vault CLI's grammar (strings
# for numbers and booleans, auto_rotate_period=168h making a store entry, manual rotate, raising
# the minimum version), sign/verify (batch, hash in the URL, PSS/PKCS#1 v1.5, jws marshaling)
# with signatures checked by the openssl CLI against the published public keys,
# encrypt/decrypt/rewrap, deletion; and kill -9 during an automatic rotation at each step, after
# which the restarted server leaves a consistent keyring.
. "$REKEY_TOP/tests/integration/lib.sh"

dir=$PWD

# ---- the example's entry: rsa-4096, through the engine, from the CLI ----
init_store
EX="$REKEY_TOP/examples/ai-gateway.yaml"
expect_exit 0 "$REKEY" -c "$EX" rotate transit/keys/jwt-signing
expect_in last.out "rotated v0 -> v1"
expect_exit 0 "$REKEY" -c "$EX" status
grep -E '^transit/keys/jwt-signing .* ok$' last.out >/dev/null || fail "jwt-signing not ok: $(cat last.out)"
expect_in last.out "latest v1, min decryption v1"
expect_exit 0 "$REKEY" kv get -format=json transit/keys/jwt-signing
expect_in last.out "BEGIN PUBLIC KEY"
expect_in last.out '"kid": "jwt-signing:v1"'
expect_not_in last.out "PRIVATE"
expect_exit 2 "$REKEY" -c "$EX" rollback transit/keys/jwt-signing
expect_in last.err "cannot be rolled back"
expect_exit 0 "$REKEY" -c "$EX" lint

# ---- a server ----
kill_server_at_exit

export REKEY_KEY_FILE="$dir/kf.key"
kf_init
cat >rekey.yaml <<EOF
$(kf_yaml)
secrets:
  - path: transit/keys/gw
    kind: transit
    key_type: ed25519
    every: 7d
    auto: true
    grace: 1h
EOF
: >server.log
start_server
wait_server_log "rotated transit/keys/gw v0 -> v1" 10
req GET /v1/transit/keys/gw
expect 200
[ "$(j 'd["data"]["latest_version"], d["data"]["type"], list(d["data"]["keys"])')" = "(1, 'ed25519', ['1'])" ] ||
    { cat resp.json; fail "the scheduler's key"; }
# The configuration rotates it: a period of its own is refused.
req POST /v1/transit/keys/gw/config '{"auto_rotate_period":"168h"}'
expect 400
expect_in resp.json "configuration"

# ---- vault write transit/keys/api-key type=ecdsa-p256 ; .../config auto_rotate_period=168h ----
req POST /v1/transit/keys/api-key '{"type":"ecdsa-p256","exportable":"false"}'
expect 200
[ "$(j 'd["data"]["latest_version"]')" = 1 ] || { cat resp.json; fail "create"; }
req POST /v1/transit/keys/api-key/config '{"auto_rotate_period":"30m"}'
expect 400
expect_in resp.json "at least an hour"
req POST /v1/transit/keys/api-key/config '{"auto_rotate_period":"168h","deletion_allowed":"true"}'
expect 200
[ "$(j 'd["data"]["auto_rotate_period"], d["data"]["deletion_allowed"]')" = "(604800, True)" ] ||
    { cat resp.json; fail "config"; }
req GET /v1/rekey/entries/transit/keys/api-key
expect 200
[ "$(j 'd["data"]["kind"], d["data"]["every"], d["data"]["auto"], d["data"]["retire_previous"]')" = \
  "('transit', '604800s', True, 'false')" ] || { cat resp.json; fail "the store entry"; }
wait_server_log "transit/keys/api-key: defined in the store" 5
req GET /v1/rekey/status/transit/keys/api-key
expect 200
expect_in resp.json "latest v1, min decryption v1"
# rotate by hand, twice; raise the minimum; the keys map follows
req POST /v1/transit/sign/api-key '{"input":"aGVsbG8="}'
expect 200
SIG1=$(j 'd["data"]["signature"]')
case $SIG1 in vault:v1:*) ;; *) fail "signature $SIG1" ;; esac
req POST /v1/transit/keys/api-key/rotate
expect 200
req POST /v1/transit/keys/api-key/rotate
expect 200
[ "$(j 'd["data"]["latest_version"], sorted(d["data"]["keys"])')" = "(3, ['1', '2', '3'])" ] ||
    { cat resp.json; fail "rotate"; }
req POST /v1/transit/verify/api-key "{\"input\":\"aGVsbG8=\",\"signature\":\"$SIG1\"}"
expect 200
[ "$(j 'd["data"]["valid"]')" = True ] || { cat resp.json; fail "v1 does not verify"; }
req POST /v1/transit/keys/api-key/config '{"min_decryption_version":"4"}'
expect 400
req POST /v1/transit/keys/api-key/config '{"min_decryption_version":"2"}'
expect 200
[ "$(j 'sorted(d["data"]["keys"]), d["data"]["min_decryption_version"]')" = "(['2', '3'], 2)" ] ||
    { cat resp.json; fail "min_decryption_version"; }
req POST /v1/transit/verify/api-key "{\"input\":\"aGVsbG8=\",\"signature\":\"$SIG1\"}"
expect 400
expect_in resp.json "too old"
# auto_rotate_period=0: the store entry goes
req POST /v1/transit/keys/api-key/config '{"auto_rotate_period":0}'
expect 200
req GET /v1/rekey/entries/transit/keys/api-key
expect 404

# ---- signatures checked by the openssl CLI with the published public key ----
printf 'the message' >msg.bin
MSG=$(base64 -w0 msg.bin)
ossl_check() { # ossl_check KEY SIG-FIELD-FILE openssl-args...
    local key=$1; shift
    req GET "/v1/transit/keys/$key"
    $PY -c 'import json; d=json.load(open("resp.json"))["data"]; print(d["keys"][str(d["latest_version"])]["public_key"])' >pub.txt
    if [ "$key" = ed ]; then # Vault shows ed25519 as the raw 32 bytes: make an SPKI PEM
        $PY -c 'import base64; open("pub.der","wb").write(bytes.fromhex("302a300506032b6570032100") + base64.b64decode(open("pub.txt").read()))'
        openssl pkey -pubin -inform DER -in pub.der -out pub.pem 2>/dev/null
    else
        cp pub.txt pub.pem
    fi
    "$@" >ossl.out 2>&1 || { cat ossl.out; fail "openssl does not verify the $key signature"; }
}
sig_of() { $PY -c 'import json,base64; s=json.load(open("resp.json"))["data"]["signature"]; open("sig.bin","wb").write(base64.b64decode(s.split(":",2)[2]))'; }
req POST /v1/transit/keys/ed '{"type":"ed25519"}'
expect 200
req POST /v1/transit/sign/ed "{\"input\":\"$MSG\"}"
expect 200
sig_of
ossl_check ed openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in msg.bin -sigfile sig.bin
req POST /v1/transit/sign/api-key/sha2-384 "{\"input\":\"$MSG\"}"
expect 200
sig_of
ossl_check api-key openssl dgst -sha384 -verify pub.pem -signature sig.bin msg.bin
req POST /v1/transit/keys/rsa '{"type":"rsa-2048"}'
expect 200
req POST /v1/transit/sign/rsa "{\"input\":\"$MSG\",\"signature_algorithm\":\"pkcs1v15\"}"
expect 200
sig_of
ossl_check rsa openssl dgst -sha256 -verify pub.pem -signature sig.bin msg.bin
req POST /v1/transit/sign/rsa "{\"input\":\"$MSG\"}"
expect 200
sig_of
ossl_check rsa openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:auto \
    -verify pub.pem -signature sig.bin msg.bin
# jws marshaling: r||s in base64url; batch input with references
req POST /v1/transit/sign/api-key "{\"marshaling_algorithm\":\"jws\",\"batch_input\":[{\"input\":\"$MSG\",\"reference\":\"a\"},{\"input\":\"%%%\"}]}"
expect 200
[ "$(j '[("signature" in r, r.get("reference"), "error" in r) for r in d["data"]["batch_results"]]')" = \
  "[(True, 'a', False), (False, None, True)]" ] || { cat resp.json; fail "batch sign"; }
JWS=$(j 'd["data"]["batch_results"][0]["signature"]')
case $JWS in *+* | */* | *=) fail "a jws signature is not base64url: $JWS" ;; esac
req POST /v1/transit/verify/api-key "{\"marshaling_algorithm\":\"jws\",\"batch_input\":[{\"input\":\"$MSG\",\"signature\":\"$JWS\"},{\"input\":\"aGVsbG8=\",\"signature\":\"$JWS\"}]}"
expect 200
[ "$(j '[r.get("valid") for r in d["data"]["batch_results"]]')" = "[True, False]" ] ||
    { cat resp.json; fail "batch verify"; }
# an encryption key does not sign; a missing key
req POST /v1/transit/sign/nope "{\"input\":\"$MSG\"}"
expect 400

# ---- encrypt, decrypt, rewrap (Vault's upsert makes the key) ----
req POST /v1/transit/encrypt/data "{\"plaintext\":\"$MSG\"}"
expect 200
CT=$(j 'd["data"]["ciphertext"]')
req POST /v1/transit/decrypt/data "{\"ciphertext\":\"$CT\"}"
expect 200
[ "$(j 'd["data"]["plaintext"]')" = "$MSG" ] || fail "decrypt"
req POST /v1/transit/keys/data/rotate
expect 200
req POST /v1/transit/rewrap/data "{\"ciphertext\":\"$CT\"}"
expect 200
case $(j 'd["data"]["ciphertext"]') in vault:v2:*) ;; *) cat resp.json; fail "rewrap" ;; esac
req POST /v1/transit/sign/data "{\"input\":\"$MSG\"}"
expect 400
# export only when exportable
req GET /v1/transit/export/encryption-key/data
expect 403
# list and delete
req LIST /v1/transit/keys
expect 200
[ "$(j 'sorted(d["data"]["keys"])')" = "['api-key', 'data', 'ed', 'gw', 'rsa']" ] || { cat resp.json; fail "LIST"; }
req DELETE /v1/transit/keys/ed
expect 400
expect_in resp.json "deletion is not allowed"
req DELETE /v1/transit/keys/api-key
expect 204
req GET /v1/transit/keys/api-key
expect 404
# no private material in the store's plaintext or the log
expect_not_in server.log "PRIVATE"
stop_server

# ---- kill -9 during an automatic rotation, at each step; the restart recovers ----
# The keyring must end consistent: no pending version, latest = the entry's current key_version,
# versions numbered without a gap, every usable version in the JWKS, and the entry ok.
check_keyring() {
    req GET /v1/transit/keys/gw
    expect 200
    cp resp.json key.json
    "$REKEY" kv get -format=json transit/keys/gw >kv.json
    req GET /v1/rekey/jwks/gw
    expect 200
    $PY - "$1" <<'PY' || fail "keyring inconsistent after a crash at $1"
import json, sys
k = json.load(open("key.json"))["data"]
kv = json.load(open("kv.json"))
data = kv.get("data", kv)
data = data.get("data", data)
jwks = json.load(open("resp.json"))
assert k["pending_versions"] == [], ("pending left", k["pending_versions"])
assert str(k["latest_version"]) == data["key_version"], (k["latest_version"], data["key_version"])
kids = sorted(x["kid"] for x in jwks["keys"])
want = sorted("gw:v%s" % v for v in k["keys"])
assert kids == want, (kids, want)
assert str(k["latest_version"]) in k["keys"]
PY
}
later=$(($(date +%s) + 8 * 86400))
for step in transit-pending create apply test promote reload; do
    # a week later: due, so the scheduler rotates at once, and dies at the step
    : >crash.log
    env REKEY_NOW=$later REKEY_CRASH_AT=$step REKEY_KEY_FILE="$dir/kf.key" \
        "$REKEY" server -config "$dir/rekey.yaml" >crash.log 2>&1 &
    SERVER_PID=$!
    set +e; wait "$SERVER_PID" 2>/dev/null; rc=$?; set -e
    SERVER_PID=
    [ "$rc" -eq 137 ] || { cat crash.log; fail "the server was not killed at $step (exit $rc)"; }
    later=$((later + 8 * 86400))
    start_server REKEY_NOW=$later
    wait_server_log "scheduler started" 5
    for _ in $(seq 1 50); do
        req GET /v1/rekey/status/transit/keys/gw
        [ "$(j 'd["data"]["state"]')" = ok ] && break
        sleep 0.2
    done
    [ "$(j 'd["data"]["state"]')" = ok ] || { cat resp.json; cat server.log; fail "not ok after $step"; }
    check_keyring "$step"
    stop_server
    later=$((later + 8 * 86400))
done
assert_no_plaintext "PRIVATE KEY"
echo "t-transit: ok"
