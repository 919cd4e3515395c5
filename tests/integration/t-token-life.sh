#!/usr/bin/env bash
# Token lifetimes against `rekey server -dev` (issue 11: findings 2, 9 and part of 10):
# a 100-year renewal is capped by the system maximum (768h by default, server.max_lease_ttl when
# set, with a file:line:col error for a bad value); a child stops working when its parent expires,
# without the parent being presented again (capped at creation and renewal, and revoked by the
# sweeper when the parent was renewed to expire first); a ttl, increment or explicit_max_ttl of
# 2^63-1 seconds answers 400; a parent made with no_default_policy cannot hand `default` on; the
# dev root token comes from $VAULT_DEV_ROOT_TOKEN_ID / $REKEY_DEV_ROOT_TOKEN_ID and is gone from
# the server's environment; the server runs with NoNewPrivs. Tokens travel in header files.
. "$REKEY_TOP/tests/integration/lib.sh"

ROOT="it-root-$$-$RANDOM$RANDOM"
printf 'X-Vault-Token: %s\n' "$ROOT" >root.hdr.secret

# token BODY HEADER-FILE OUT-HEADER-FILE: creates a token, its header in OUT-HEADER-FILE.
token() {
    req POST /v1/auth/token/create "$1" "$2"
    expect 200
    hdr_for "$(j 'd["auth"]["client_token"]')" "$3"
}
stop_server() {
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || { cat server.log; fail "server exit code $? after SIGTERM"; }
    SERVER_PID=
}
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true' EXIT

# ============ a dev server whose root token comes from $VAULT_DEV_ROOT_TOKEN_ID ============
PORT=$(free_port)
A="http://127.0.0.1:$PORT"
# The variable is given to the server alone (never on its command line), from a file.
printf '%s' "$ROOT" >root.id.secret
printf 'version: 1\n' >empty.yaml
VAULT_DEV_ROOT_TOKEN_ID=$(cat root.id.secret) \
    "$REKEY" server -dev -config "$PWD/empty.yaml" -dev-listen-address "127.0.0.1:$PORT" \
    >server.log 2>&1 &
SERVER_PID=$!
wait_up
req GET /v1/auth/token/lookup-self
expect 200
jis 'd["data"]["policies"]' "['root']"
# The token is wiped from the server's environment (hooks, its children, never inherit it).
if grep -qaF -- "$ROOT" "/proc/$SERVER_PID/environ"; then fail "root token id left in environ"; fi
# PR_SET_NO_NEW_PRIVS is set at start (checked only where the test shell does not set it).
if grep -q '^NoNewPrivs:[[:space:]]*1' /proc/self/status; then
    echo "skip (the test runs with NoNewPrivs already): the server's flag proves nothing here"
else
    grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$SERVER_PID/status" ||
        { grep NoNewPrivs "/proc/$SERVER_PID/status"; fail "the server runs without NoNewPrivs"; }
fi

# A policy for the tokens below: read one secret, create child tokens.
req PUT /v1/sys/policies/acl/p '{"policy":"path \"secret/data/app\" { capabilities = [\"read\"] }\npath \"auth/token/create\" { capabilities = [\"update\"] }"}'
expect 204
req POST /v1/secret/data/app '{"data":{"k":"v1"}}'
expect 200

# --- Finding 2: a 100-year renewal is capped by the system maximum (768h by default). ---
token '{"policies":["p"],"ttl":"10s"}' root.hdr.secret t10.hdr.secret
req POST /v1/auth/token/renew-self '{"increment":"876000h"}' t10.hdr.secret
expect 200
jis '768*3600 - 5 <= d["auth"]["lease_duration"] <= 768*3600' True
jis 'any("capped" in w for w in d["warnings"])' True
req GET /v1/auth/token/lookup-self "" t10.hdr.secret
expect 200
jis 'd["data"]["ttl"] <= 768*3600' True
# A ttl above the maximum at creation: capped too (Vault's rule), with Vault's warning.
req POST /v1/auth/token/create '{"policies":["p"],"ttl":"876000h"}'
expect 200
jis '768*3600 - 5 <= d["auth"]["lease_duration"] <= 768*3600' True

# --- Finding 9: 2^63-1 seconds is refused with 400 (it overflowed before), as are strings. ---
for body in '{"ttl":9223372036854775807}' '{"ttl":"9223372036854775807s"}' \
    '{"explicit_max_ttl":9223372036854775807}' '{"period":"9223372036854775807"}' \
    '{"ttl":"106752d"}'; do
    req POST /v1/auth/token/create "$body"
    expect 400
done
req POST /v1/auth/token/renew-self '{"increment":9223372036854775807}' t10.hdr.secret
expect 400
req POST /v1/auth/token/renew-self '{"increment":"9223372036854775807s"}' t10.hdr.secret
expect 400
# The largest accepted value is capped, not refused.
req POST /v1/auth/token/renew-self '{"increment":9223372036}' t10.hdr.secret
expect 200
kill -0 "$SERVER_PID" || fail "the server died"

# sleep_until T0 SECONDS: sleeps until SECONDS after T0 (a `date +%s.%N`), if that is still ahead
# (a loaded machine may already have spent part of a short ttl on the requests in between).
sleep_until() {
    local left
    left=$(echo "$2 - ($(date +%s.%N) - $1)" | bc)
    case $left in -* | 0) ;; *) sleep "$left" ;; esac
}

# --- Finding 2: the child of an 8-second parent, renewed to an hour, stops with the parent. ---
t0=$(date +%s.%N)
token '{"policies":["p"],"ttl":"8s"}' root.hdr.secret par.hdr.secret
token '{"policies":["p"],"ttl":"1h"}' par.hdr.secret kid.hdr.secret
jis 'd["auth"]["lease_duration"] <= 8' True
req POST /v1/auth/token/renew-self '{"increment":"1h"}' kid.hdr.secret
expect 200
jis 'd["auth"]["lease_duration"] <= 8' True
req GET /v1/secret/data/app "" kid.hdr.secret
expect 200
sleep_until "$t0" 8.3
# The parent is NOT presented again: the child must fail on its own.
req GET /v1/secret/data/app "" kid.hdr.secret
expect 403

# A parent renewed to expire BEFORE its child (both had an hour): at the parent's expiry the
# sweeper revokes the child, which nobody presents meanwhile, nor the parent.
token '{"policies":["p"],"ttl":"1h"}' root.hdr.secret par2.hdr.secret
token '{"policies":["p"],"ttl":"1h"}' par2.hdr.secret kid2.hdr.secret
KID2_ACC=$(j 'd["auth"]["accessor"]')
req GET /v1/secret/data/app "" kid2.hdr.secret
expect 200
sweeps=$(grep -c "token sweeper: revoked" server.log || true)
t0=$(date +%s.%N)
req POST /v1/auth/token/renew-self '{"increment":"2s"}' par2.hdr.secret
expect 200
jis 'd["auth"]["lease_duration"] <= 2' True
sleep_until "$t0" 3.3
[ "$(grep -c "token sweeper: revoked" server.log)" -gt "$sweeps" ] ||
    { cat server.log; fail "the sweeper revoked nothing at the parent's expiry"; }
# The child's own expiry is an hour away: its accessor is gone only because it was revoked.
req POST /v1/auth/token/lookup-accessor "{\"accessor\":\"$KID2_ACC\"}"
expect 400
req GET /v1/secret/data/app "" kid2.hdr.secret
expect 403

# --- Finding 10: a parent made with no_default_policy cannot hand `default` to a child. ---
token '{"policies":["p"],"no_default_policy":true,"ttl":"1h"}' root.hdr.secret nd.hdr.secret
jis 'd["auth"]["policies"]' "['p']"
req POST /v1/auth/token/create '{}' nd.hdr.secret
expect 200
jis 'd["auth"]["policies"]' "['p']"
req POST /v1/auth/token/create '{"policies":["p"]}' nd.hdr.secret
expect 200
jis 'd["auth"]["policies"]' "['p']"
req POST /v1/auth/token/create '{"policies":["default"]}' nd.hdr.secret
expect 400
req POST /v1/auth/token/create '{"policies":["p","Default"]}' nd.hdr.secret
expect 400
# A parent holding `default` still passes it on (Vault's rule is unchanged there).
token '{"policies":["p"],"ttl":"1h"}' root.hdr.secret wd.hdr.secret
req POST /v1/auth/token/create '{"policies":["p"]}' wd.hdr.secret
expect 200
jis 'd["auth"]["policies"]' "['default', 'p']"
stop_server

# ======= server.max_lease_ttl from the configuration; root token from $REKEY_DEV_… =======
cat >life.yaml <<'EOF'
version: 1
server:
  max_lease_ttl: 1h
EOF
PORT=$(free_port)
A="http://127.0.0.1:$PORT"
REKEY_DEV_ROOT_TOKEN_ID=$(cat root.id.secret) \
    "$REKEY" server -dev -config "$PWD/life.yaml" -dev-listen-address "127.0.0.1:$PORT" \
    >server.log 2>&1 &
SERVER_PID=$!
wait_up
req POST /v1/auth/token/create '{"ttl":"10h"}'
expect 200
jis '3595 <= d["auth"]["lease_duration"] <= 3600' True
jis 'd["warnings"][0]' 'TTL of "10h" exceeded the effective max_ttl of "1h"; TTL value is capped accordingly'
hdr_for "$(j 'd["auth"]["client_token"]')" c1h.hdr.secret
req POST /v1/auth/token/renew-self '{"increment":"876000h"}' c1h.hdr.secret
expect 200
jis '3590 <= d["auth"]["lease_duration"] <= 3600' True
stop_server

# A bad value is refused at start with file:line:column.
printf 'version: 1\nserver:\n  max_lease_ttl: forever\n' >bad.yaml
expect_exit 3 "$REKEY" server -dev -config "$PWD/bad.yaml" -dev-listen-address "127.0.0.1:$PORT"
expect_in last.err "bad.yaml:3:18"
expect_in last.err "server.max_lease_ttl"
printf 'version: 1\nserver:\n  max_lease_ttl: 0s\n' >bad.yaml
expect_exit 3 "$REKEY" server -dev -config "$PWD/bad.yaml" -dev-listen-address "127.0.0.1:$PORT"
expect_in last.err "bad.yaml:3:18: server.max_lease_ttl"

# `rekey server --help` says the flag is visible to other users and names the variables.
"$REKEY" server --help >help.out 2>&1 || true
expect_in help.out "VAULT_DEV_ROOT_TOKEN_ID"
expect_in help.out "visible to"
echo "t-token-life: ok"
