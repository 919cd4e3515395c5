#!/usr/bin/env bash
# `rekey server`: dev mode (health, seal status, the `vault kv` preflight, tokens, policies,
# seal and 503, throttling of bad tokens, SIGHUP, SIGTERM exit 0, temporary store removed) and
# a normal server on a store initialised with Shamir shares over the API (sys/init, unseal
# with hex and base64 shares, reset, wrong shares), a key-file server refusing sys/init, the
# non-loopback-without-TLS refusal and the body limit. Tokens travel in header files, never on
# a command line.
. "$REKEY_TOP/tests/integration/lib.sh"

ROOT="it-root-$$-$RANDOM$RANDOM"
printf 'X-Vault-Token: %s\n' "$ROOT" >root.hdr.secret

# j EXPR: a Python expression over the answer `d`; a tuple prints as (a, b) with bare strings.
j() {
    $PY -c 'import json,sys
d = json.load(open("resp.json")); v = eval(sys.argv[1])
print("(" + ", ".join(str(x) for x in v) + ")" if isinstance(v, tuple) else v)' "$1"
}
stop_server() {
    kill -TERM "$SERVER_PID"
    set +e
    wait "$SERVER_PID"
    local rc=$?
    set -e
    SERVER_PID=
    [ "$rc" -eq 0 ] || { cat server.log; fail "server exit code $rc after SIGTERM, want 0"; }
}
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true' EXIT

# ======================= dev mode =======================
cat >dev.yaml <<EOF
version: 1
secrets:
  - path: secret/app/key
    kind: generated
    format: "k-{hex:16}"
    field: key
    every: 30d
EOF
PORT=$(free_port)
A="http://127.0.0.1:$PORT"
"$REKEY" server -dev -config "$PWD/dev.yaml" -dev-listen-address "127.0.0.1:$PORT" \
    -dev-root-token-id "$ROOT" >server.log 2>&1 &
SERVER_PID=$!
wait_up
expect_in server.log "export VAULT_ADDR='$A'"
expect_in server.log "export VAULT_TOKEN='$ROOT'"
expect_in server.log "export REKEY_TOKEN='$ROOT'"
devdir=$(sed -n 's/.*temporary store in \(.*\) (removed at exit).*/\1/p' server.log)
[ -d "$devdir" ] || fail "dev store directory not found ($devdir)"

req GET /v1/sys/health "" ""
expect 200
jis 'd["initialized"], d["sealed"], d["standby"]' '(True, False, False)'
jis 'd["replication_dr_mode"]' disabled
req GET "/v1/sys/health?activecode=299" "" ""
expect 299
req GET /v1/sys/seal-status "" ""
expect 200
jis 'd["initialized"], d["sealed"], d["storage_type"], d["migration"]' '(True, False, sqlite, False)'
# The `vault kv` preflight: needs a token, says KV v2 at secret/.
req GET /v1/sys/internal/ui/mounts/secret/app/key "" ""
expect 403
req GET /v1/sys/internal/ui/mounts/secret/app/key
expect 200
jis 'd["data"]["type"], d["data"]["options"]["version"], d["data"]["path"]' '(kv, 2, secret/)'
req GET /v1/sys/internal/ui/mounts/nope
expect 403
req GET /v1/sys/mounts
expect 200
jis '"secret/" in d["data"] and d["data"]["secret/"]["options"]["version"]' 2

# Root token lookup: Vault's shape.
req GET /v1/auth/token/lookup-self
expect 200
jis 'd["data"]["id"], d["data"]["policies"], d["data"]["expire_time"], d["data"]["type"]' \
    "($ROOT, ['root'], None, service)"

# A policy, and a token holding it: allowed on its path, 403 on the neighbour.
req PUT /v1/sys/policies/acl/team-a '{"policy":"path \"secret/data/team-a/*\" { capabilities = [\"create\", \"read\", \"update\"] }"}'
expect 204
req PUT /v1/sys/policies/acl/broken '{"policy":"path \"x\" { capabilities = [\"fly\"] }"}'
expect 400
req GET /v1/sys/policies/acl/team-a
expect 200
jis '"secret/data/team-a/*" in d["data"]["policy"]' True
req LIST /v1/sys/policies/acl
expect 200
jis 'd["data"]["keys"]' "['default', 'root', 'team-a']"
req POST /v1/auth/token/create '{"policies":["team-a"],"ttl":"1h","meta":{"team":"a"}}'
expect 200
jis 'd["auth"]["policies"], d["auth"]["token_type"], d["auth"]["renewable"], d["auth"]["orphan"]' \
    "(['default', 'team-a'], service, True, False)"
jis '3590 <= d["auth"]["lease_duration"] <= 3600' True
TA=$(j 'd["auth"]["client_token"]')
TA_ACC=$(j 'd["auth"]["accessor"]')
case "$TA" in hvs.*) ;; *) fail "token without the hvs. prefix";; esac
hdr_for "$TA" ta.hdr.secret
req POST /v1/secret/data/team-a/db '{"data":{"password":"team-a-secret-Z9"}}' ta.hdr.secret
expect 200
req GET /v1/secret/data/team-a/db "" ta.hdr.secret
expect 200
jis 'd["data"]["data"]["password"]' team-a-secret-Z9
req GET /v1/secret/data/team-b/db "" ta.hdr.secret
expect 403
jis 'd' "{'errors': ['permission denied']}"
req POST /v1/sys/policies/acl/x '{"policy":""}' ta.hdr.secret
expect 403
req POST /v1/sys/capabilities-self '{"paths":["secret/data/team-a/x","secret/data/team-b/x"]}' ta.hdr.secret
expect 200
jis 'd["secret/data/team-a/x"], d["secret/data/team-b/x"]' "(['create', 'read', 'update'], ['deny'])"
req GET /v1/auth/token/lookup-self "" ta.hdr.secret
expect 200
jis 'd["data"]["id"] == "'"$TA"'" and d["data"]["meta"] == {"team": "a"} and d["data"]["num_uses"] == 0' True
# A child may only get its parent's policies.
req POST /v1/auth/token/create '{"policies":["root"]}' ta.hdr.secret
expect 403
req PUT /v1/sys/policies/acl/maker '{"policy":"path \"auth/token/create\" { capabilities = [\"update\"] }"}'
expect 204
req POST /v1/auth/token/create '{"policies":["team-a","maker"],"ttl":"1h"}'
expect 200
TM=$(j 'd["auth"]["client_token"]')
hdr_for "$TM" tm.hdr.secret
req POST /v1/auth/token/create '{"policies":["root"]}' tm.hdr.secret
expect 400
req POST /v1/auth/token/create '{"policies":["team-a"],"num_uses":2}' tm.hdr.secret
expect 200
TC=$(j 'd["auth"]["client_token"]')
hdr_for "$TC" tc.hdr.secret
req GET /v1/secret/data/team-a/db "" tc.hdr.secret
expect 200
req GET /v1/secret/data/team-a/db "" tc.hdr.secret
expect 200
req GET /v1/secret/data/team-a/db "" tc.hdr.secret
expect 403   # two uses spent
# Revoking a parent revokes its children.
req POST /v1/auth/token/create '{"policies":["team-a"]}' tm.hdr.secret
expect 200
TC2=$(j 'd["auth"]["client_token"]')
hdr_for "$TC2" tc2.hdr.secret
req GET /v1/auth/token/lookup-self "" tc2.hdr.secret
expect 200
req POST /v1/auth/token/revoke "{\"token\":\"$TM\"}"
expect 204
req GET /v1/auth/token/lookup-self "" tc2.hdr.secret
expect 403
req GET /v1/auth/token/lookup-self "" tm.hdr.secret
expect 403
# Renew and lookup by accessor; revoke-self.
req POST /v1/auth/token/renew-self '{"increment":"30m"}' ta.hdr.secret
expect 200
jis '1790 <= d["auth"]["lease_duration"] <= 1800' True
req POST /v1/auth/token/lookup-accessor "{\"accessor\":\"$TA_ACC\"}"
expect 200
jis 'd["data"]["id"], d["data"]["display_name"]' "(, token)"
req POST /v1/auth/token/revoke-self "" ta.hdr.secret
expect 204
req GET /v1/secret/data/team-a/db "" ta.hdr.secret
expect 403
# Only hashes on disk: no token in the dev store's files.
for t in "$ROOT" "$TA" "$TC"; do
    if grep -rlaF -- "$t" "$devdir" | grep -q .; then fail "a token is on disk in $devdir"; fi
done
expect_not_in server.log "$TA"
expect_not_in server.log "team-a-secret-Z9"

# Limits: a body over 1 MiB is refused with 413.
head -c 1200000 /dev/zero | tr '\0' 'a' >big.body
STATUS=$(curl -s -o resp.json -w '%{http_code}' -X POST -H @root.hdr.secret \
    --data-binary @big.body "$A/v1/secret/data/big")
expect 413

# SIGHUP reloads the configuration.
kill -HUP "$SERVER_PID"
for _ in $(seq 1 50); do grep -q "SIGHUP" server.log && break; sleep 0.1; done
expect_in server.log "SIGHUP: reloading"
req GET /v1/sys/health "" ""
expect 200

# Bad tokens: 403, then 429 once the burst is spent.
printf 'X-Vault-Token: hvs.not-a-real-token\n' >bad.hdr.secret
codes=""
for _ in $(seq 1 14); do
    STATUS=$(curl -s -o resp.json -w '%{http_code}' -H @bad.hdr.secret "$A/v1/auth/token/lookup-self")
    codes="$codes $STATUS"
done
case "$codes" in *403*429*) ;; *) fail "bad tokens: expected 403s then 429, got:$codes";; esac
expect_in server.log "auth failed"
expect_not_in server.log "hvs.not-a-real-token"

# A valid token works again once the bucket refills (1 failure per second).
sleep 2
req GET /v1/auth/token/lookup-self
expect 200

# Seal: needs sudo (team token refused), then reads answer 503; the dev store uses a key file,
# so shares cannot unseal it.
req POST /v1/auth/token/create '{"policies":["team-a"]}'
TB=$(j 'd["auth"]["client_token"]')
hdr_for "$TB" tb.hdr.secret
req PUT /v1/sys/seal "" tb.hdr.secret
expect 403
req PUT /v1/sys/seal
expect 204
req GET /v1/secret/data/team-a/db
expect 503
jis 'd["errors"]' "['Vault is sealed']"
req GET /v1/sys/health "" ""
expect 503
jis 'd["sealed"]' True
req GET "/v1/sys/health?sealedcode=200" "" ""
expect 200
req PUT /v1/sys/unseal '{"key":"00112233"}' ""
expect 400
expect_in resp.json "key file"

stop_server
expect_in server.log "SIGTERM: stopping"
[ ! -e "$devdir" ] || fail "the dev store $devdir was not removed"

# ======================= shares over the API =======================
cat >srv.yaml <<EOF
version: 1
$(store_yaml shares.db)
server:
  listen: "127.0.0.1:PORT"
secrets: []
EOF
PORT=$(free_port)
A="http://127.0.0.1:$PORT"
sed -i "s/PORT/$PORT/" srv.yaml
"$REKEY" server -config "$PWD/srv.yaml" >server.log 2>&1 &
SERVER_PID=$!
wait_up
req GET /v1/sys/health "" ""
expect 501
req GET /v1/sys/init "" ""
jis 'd["initialized"]' False
req GET /v1/sys/seal-status "" ""
jis 'd["initialized"], d["sealed"]' '(False, True)'
req PUT /v1/sys/init '{"secret_shares":3,"secret_threshold":2}' ""
expect 200
jis 'len(d["keys"]), len(d["keys_base64"])' '(3, 3)'
ROOT2=$(j 'd["root_token"]')
cp resp.json init.json.secret
K1=$($PY -c 'import json; print(json.load(open("init.json.secret"))["keys"][0])')
K2B=$($PY -c 'import json; print(json.load(open("init.json.secret"))["keys_base64"][1])')
K3=$($PY -c 'import json; print(json.load(open("init.json.secret"))["keys"][2])')
hdr_for "$ROOT2" root2.hdr.secret
req PUT /v1/sys/init '{"secret_shares":3,"secret_threshold":2}' ""
expect 400
req GET /v1/sys/seal-status "" ""
jis 'd["type"], d["initialized"], d["sealed"], d["t"], d["n"], d["progress"]' \
    '(shamir, True, True, 2, 3, 0)'
req GET /v1/auth/token/lookup-self "" root2.hdr.secret
expect 503
req PUT /v1/sys/unseal '{"key":"not a share!"}' ""
expect 400
req PUT /v1/sys/unseal "{\"key\":\"$K1\"}" ""
expect 200
jis 'd["sealed"], d["progress"], len(d["nonce"])' '(True, 1, 36)'
req PUT /v1/sys/unseal "{\"key\":\"$K1\"}" ""
expect 400   # the same share twice
req PUT /v1/sys/unseal '{"reset":true}' ""
expect 200
jis 'd["progress"], d["nonce"]' '(0, )'
req PUT /v1/sys/unseal "{\"key\":\"$K1\"}" ""
req PUT /v1/sys/unseal "{\"key\":\"$K2B\"}" ""
expect 200
jis 'd["sealed"], d["progress"]' '(False, 0)'
req GET /v1/auth/token/lookup-self "" root2.hdr.secret
expect 200
jis 'd["data"]["policies"]' "['root']"
req GET /v1/sys/health "" ""
expect 200
# Seal again, and a wrong share combination (a corrupted share) does not unseal.
req PUT /v1/sys/seal "" root2.hdr.secret
expect 204
BAD=$($PY -c 'import sys; k=sys.argv[1]; print(k[:4] + ("0" if k[4] != "0" else "1") + k[5:])' "$K3")
req PUT /v1/sys/unseal "{\"key\":\"$K1\"}" ""
req PUT /v1/sys/unseal "{\"key\":\"$BAD\"}" ""
expect 400
req GET /v1/sys/seal-status "" ""
jis 'd["sealed"], d["progress"]' '(True, 0)'
req PUT /v1/sys/unseal "{\"key\":\"$K3\"}" ""
req PUT /v1/sys/unseal "{\"key\":\"$K1\"}" ""
jis 'd["sealed"]' False
expect_not_in server.log "$K1"
expect_not_in server.log "$ROOT2"
stop_server

# A restarted server on that store starts sealed (no key file).
"$REKEY" server -config "$PWD/srv.yaml" >server.log 2>&1 &
SERVER_PID=$!
wait_up
req GET /v1/sys/seal-status "" ""
jis 'd["initialized"], d["sealed"]' '(True, True)'
stop_server

# ======================= key file server =======================
export REKEY_STORE=$(store_loc "$PWD/kf.db")
expect_exit 0 "$REKEY" operator init -key-file="$PWD/kf.key"
expect_in last.out "Initial Root Token: hvs."
ROOT3=$(sed -n 's/^Initial Root Token: //p' last.out)
hdr_for "$ROOT3" root3.hdr.secret
PORT=$(free_port)
A="http://127.0.0.1:$PORT"
sed "s/127.0.0.1:[0-9]*/127.0.0.1:$PORT/" srv.yaml >kf.yaml
REKEY_KEY_FILE="$PWD/kf.key" "$REKEY" server -config "$PWD/kf.yaml" >server.log 2>&1 &
SERVER_PID=$!
wait_up
req GET /v1/sys/health "" ""
expect 200
req GET /v1/auth/token/lookup-self "" root3.hdr.secret
expect 200
req PUT /v1/sys/init '{"secret_shares":3,"secret_threshold":2}' ""
expect 400
# The CLI on the store file beside the running server, i.e. another process writing it: each
# sees the other's writes at once, though the server keeps what it reads in its read cache.
export REKEY_KEY_FILE="$PWD/kf.key"
printf 'from-cli-1' | "$REKEY" kv put secret/shared/k v=- >/dev/null || fail "cli kv put"
for _ in 1 2; do # the second read comes from the server's cache
    req GET /v1/secret/data/shared/k "" root3.hdr.secret
    expect 200
    jis 'd["data"]["data"]["v"], d["data"]["metadata"]["version"]' '(from-cli-1, 1)'
done
printf 'from-cli-2' | "$REKEY" kv put secret/shared/k v=- >/dev/null || fail "cli kv put"
req GET /v1/secret/data/shared/k "" root3.hdr.secret
jis 'd["data"]["data"]["v"], d["data"]["metadata"]["version"]' '(from-cli-2, 2)'
req POST /v1/secret/data/shared/k '{"data":{"v":"from-api-3"}}' root3.hdr.secret
expect 200
[ "$("$REKEY" kv get -field=v secret/shared/k)" = from-api-3 ] || fail "the CLI missed the API's write"
printf 'from-cli-4' | "$REKEY" kv put secret/shared/k v=- >/dev/null || fail "cli kv put"
req GET /v1/secret/data/shared/k "" root3.hdr.secret
jis 'd["data"]["data"]["v"], d["data"]["metadata"]["version"]' '(from-cli-4, 4)'
unset REKEY_KEY_FILE
stop_server

# ======================= TLS, and SIGHUP reloading the certificate =======================
mkcert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=$1" -addext "subjectAltName=IP:127.0.0.1" \
        -keyout "$2.key" -out "$2.pem" 2>/dev/null || fail "openssl req"
    chmod 600 "$2.key"
}
mkcert rekey-test-one one
cp one.pem tls.pem
cp one.key tls.key
PORT=$(free_port)
A="https://127.0.0.1:$PORT"
cat >tls.yaml <<EOF
version: 1
$(store_yaml kf.db)
server:
  listen: "127.0.0.1:$PORT"
  tls_cert: $PWD/tls.pem
  tls_key: $PWD/tls.key
EOF
REKEY_STORE="$(store_loc "$PWD/kf.db")" REKEY_KEY_FILE="$PWD/kf.key" "$REKEY" server -config "$PWD/tls.yaml" \
    >server.log 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    curl -s -o /dev/null --cacert one.pem "$A/v1/sys/health" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat server.log; fail "the TLS server exited"; }
    sleep 0.1
done
STATUS=$(curl -s -o resp.json -w '%{http_code}' --cacert one.pem "$A/v1/sys/health")
expect 200
STATUS=$(curl -s -o resp.json -w '%{http_code}' --cacert one.pem -H @root3.hdr.secret \
    "$A/v1/auth/token/lookup-self")
expect 200
mkcert rekey-test-two two
cp two.pem tls.pem
cp two.key tls.key
kill -HUP "$SERVER_PID"
ok=
for _ in $(seq 1 50); do
    if curl -s -o /dev/null --cacert two.pem "$A/v1/sys/health"; then ok=1; break; fi
    sleep 0.1
done
[ -n "$ok" ] || { cat server.log; fail "the new certificate is not served after SIGHUP"; }
expect_not_in server.log "TLS reload failed"
if curl -s -o /dev/null --cacert one.pem "$A/v1/sys/health"; then
    fail "the old certificate is still served after SIGHUP"
fi
stop_server

unset REKEY_STORE
# ======================= refusals =======================
PORT=$(free_port)
sed "s/127.0.0.1:[0-9]*/0.0.0.0:$PORT/" srv.yaml >open.yaml
expect_exit 3 "$REKEY" server -config "$PWD/open.yaml"
expect_in last.err "refusing to serve plain HTTP"
expect_exit 2 "$REKEY" server -dev-root-token-id x
echo "t-server: ok"
