#!/usr/bin/env bash
# The Vault KV v2 API and rekey's own /v1/rekey/ routes of `rekey server -dev`, driven by curl:
# write, read, versions, check-and-set, patch, list, metadata, delete/undelete/destroy, config,
# error shapes (bad JSON, wrong types, unknown routes, methods, path traversal), the rekey
# routes (status, dry run, a real rotation of a generated key, history, rollback), and 16
# concurrent writers with the same cas. The token is passed to curl in a header file, never
# on a command line.
. "$REKEY_TOP/tests/integration/lib.sh"

TOKEN="it-root-$$-$RANDOM"
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
A="http://127.0.0.1:$PORT"
printf 'X-Vault-Token: %s\n' "$TOKEN" >auth.hdr.secret
chmod 600 auth.hdr.secret

cat >rekey.yaml <<EOF
version: 1
$(store_yaml rekey.db)
hooks:
  master-env:
    type: file
    path: $PWD/master.env.secret
    template: "LITELLM_MASTER_KEY={{new}}\n"
    mode: "0600"
secrets:
  - path: secret/ai-gateway/litellm/master-key
    kind: generated
    format: "sk-litellm-{hex:48}"
    field: key
    every: 30d
    auto: false # the server's scheduler would rotate an auto secret with no value at once
    grace: 24h
    reload: [master-env]
  - path: secret/ai-gateway/providers/openai
    kind: manual
    field: api_key
    every: 90d
EOF
export REKEY_CONFIG="$PWD/rekey.yaml"

REKEY_DEV_ROOT_TOKEN_ID=$TOKEN "$REKEY" server -dev -dev-listen-address "127.0.0.1:$PORT" \
    >banner.secret 2>server.log &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    curl -s -o /dev/null "$A/v1/sys/health" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat server.log; fail "the server exited"; }
    sleep 0.1
done

# req METHOD PATH [BODY [CURL ARGS…]]: body of the answer in ./resp.json, status in $STATUS.
req() {
    local method=$1 path=$2 body=${3-}
    shift 2
    [ $# -gt 0 ] && shift
    local args=(-s -o resp.json -w '%{http_code}' -X "$method" -H @auth.hdr.secret)
    [ -n "$body" ] && args+=(--data-binary "$body")
    STATUS=$(curl "${args[@]}" "$@" "$A$path")
}
# expect CODE: the last status is CODE.
expect() {
    [ "$STATUS" = "$1" ] || { cat resp.json; echo; fail "expected HTTP $1, got $STATUS"; }
}
# j EXPR: evaluates a Python expression over the answer `d` and prints it.
# jis EXPR WANT: the expression's value is WANT.

# --- write, read, versions ---
req POST /v1/secret/data/app/db '{"data":{"password":"pw-one-Q7","port":5432,"tags":["a"]}}'
expect 200
jis 'd["data"]["version"]' 1
jis 'd["data"]["destroyed"]' False
jis 'd["data"]["deletion_time"]' ''
jis 'd["data"]["custom_metadata"]' None
jis 'd["lease_id"] == "" and d["wrap_info"] is None and len(d["request_id"]) == 36' True
req GET /v1/secret/data/app/db
expect 200
jis 'd["data"]["data"]["password"]' pw-one-Q7
jis 'd["data"]["data"]["port"]' 5432
jis 'd["data"]["data"]["tags"]' "['a']"
jis 'd["data"]["metadata"]["version"]' 1
req PUT /v1/secret/data/app/db '{"data":{"password":"pw-two-Q7"},"options":{"cas":1}}'
expect 200
jis 'd["data"]["version"]' 2
req GET '/v1/secret/data/app/db?version=1'
expect 200
jis 'd["data"]["data"]["password"]' pw-one-Q7
req GET /v1/secret/data/app/db
jis 'd["data"]["data"]["password"]' pw-two-Q7
req GET '/v1/secret/data/app/db?version=99'
expect 404
jis 'd' "{'errors': []}"
req GET '/v1/secret/data/app/db?version=x'
expect 400
req GET /v1/secret/data/app/none
expect 404
jis 'd' "{'errors': []}"

# --- check-and-set ---
req POST /v1/secret/data/app/db '{"data":{"password":"x"},"options":{"cas":1}}'
expect 400
jis 'd["errors"]' "['check-and-set parameter did not match the current version']"
req POST /v1/secret/data/app/new '{"data":{"k":"v"},"options":{"cas":0}}'
expect 200
req POST /v1/secret/data/app/new '{"data":{"k":"v"},"options":{"cas":0}}'
expect 400

# --- patch ---
req PATCH /v1/secret/data/app/db '{"data":{"user":"app","port":null}}' \
    -H 'Content-Type: application/merge-patch+json'
expect 200
jis 'd["data"]["version"]' 3
req GET /v1/secret/data/app/db
jis 'sorted(d["data"]["data"])' "['password', 'user']"
req PATCH /v1/secret/data/app/db '{"data":{"a":"b"}}' -H 'Content-Type: application/json'
expect 415
req PATCH /v1/secret/data/app/missing '{"data":{"a":"b"}}' \
    -H 'Content-Type: application/merge-patch+json'
expect 404

# --- list ---
req POST /v1/secret/data/app/sub/one '{"data":{"k":"v"}}'
expect 200
req LIST /v1/secret/metadata/app
expect 200
jis 'd["data"]["keys"]' "['db', 'new', 'sub/']"
req GET '/v1/secret/metadata/app/?list=true'
expect 200
jis 'd["data"]["keys"]' "['db', 'new', 'sub/']"
req LIST /v1/secret/metadata
expect 200
jis 'd["data"]["keys"]' "['app/']"
req LIST /v1/secret/metadata/nothing/here
expect 404
jis 'd' "{'errors': []}"

# --- metadata ---
req POST /v1/secret/metadata/app/db \
    '{"max_versions":5,"delete_version_after":"0s","custom_metadata":{"owner":"platform"}}'
expect 204
req GET /v1/secret/metadata/app/db
expect 200
jis 'd["data"]["current_version"]' 3
jis 'd["data"]["max_versions"]' 5
jis 'd["data"]["delete_version_after"]' 0s
jis 'd["data"]["custom_metadata"]' "{'owner': 'platform'}"
jis 'sorted(d["data"]["versions"])' "['1', '2', '3']"
jis '[k for k in sorted(d["data"]["versions"]["1"]) if k in ("created_time", "deletion_time", "destroyed")]' "['created_time', 'deletion_time', 'destroyed']"
req GET /v1/secret/data/app/db
jis 'd["data"]["metadata"]["custom_metadata"]' "{'owner': 'platform'}"
req POST /v1/secret/metadata/app/db '{"max_versions":"many"}'
expect 400
jis 'd["errors"][0]' 'invalid "max_versions": expected an integer, got string'

# --- delete, undelete, destroy ---
req DELETE /v1/secret/data/app/db
expect 204
req GET /v1/secret/data/app/db
expect 404
jis 'd["data"]["data"]' None
jis 'd["data"]["metadata"]["version"]' 3
jis 'd["data"]["metadata"]["deletion_time"] != ""' True
req POST /v1/secret/undelete/app/db '{"versions":[3]}'
expect 204
req GET /v1/secret/data/app/db
expect 200
req POST /v1/secret/delete/app/db '{"versions":[1,2]}'
expect 204
req GET '/v1/secret/data/app/db?version=1'
expect 404
req PUT /v1/secret/destroy/app/db '{"versions":[1]}'
expect 204
req GET /v1/secret/metadata/app/db
jis 'd["data"]["versions"]["1"]["destroyed"]' True
req POST /v1/secret/undelete/app/db '{"versions":[1,2]}'
expect 204
req GET '/v1/secret/data/app/db?version=1'
expect 404
jis 'd["data"]["metadata"]["destroyed"]' True
req GET '/v1/secret/data/app/db?version=2'
expect 200
req POST /v1/secret/delete/app/db '{}'
expect 400
jis 'd["errors"]' "['no version number provided']"
req DELETE /v1/secret/metadata/app/new
expect 204
req GET /v1/secret/metadata/app/new
expect 404

# --- mount config ---
req GET /v1/secret/config
expect 200
jis 'd["data"]' "{'cas_required': False, 'delete_version_after': '0s', 'max_versions': 0}"
req POST /v1/secret/config '{"max_versions":3,"cas_required":true,"delete_version_after":"1h"}'
expect 204
req GET /v1/secret/config
jis 'd["data"]' "{'cas_required': True, 'delete_version_after': '1h0m0s', 'max_versions': 3}"
req POST /v1/secret/data/app/cfg '{"data":{"k":"v"}}'
expect 400
jis 'd["errors"]' "['check-and-set parameter required for this call']"
req POST /v1/secret/data/app/cfg '{"data":{"k":"v"},"options":{"cas":0}}'
expect 200
req GET /v1/secret/metadata/app/cfg
jis 'd["data"]["max_versions"]' 3
jis 'd["data"]["delete_version_after"]' 1h0m0s
req POST /v1/secret/config '{"cas_required":false,"max_versions":0,"delete_version_after":0}'
expect 204

# --- error shapes ---
req POST /v1/secret/data/app/bad '{"data":'
expect 400
jis 'd["errors"][0].startswith("failed to parse JSON input")' True
req POST /v1/secret/data/app/bad '{"data":"sk-not-an-object"}'
expect 400
jis 'd["errors"]' "['invalid \"data\": expected an object, got string']"
req POST /v1/secret/data/app/bad '{"nodata":{}}'
expect 400
jis 'd["errors"]' "['no data provided']"
req POST /v1/secret/data/app/bad '{"data":{"k":"v"},"options":{"cas":"x"}}'
expect 400
jis 'd["errors"]' "['error parsing check-and-set parameter']"
req GET /v1/secret/data/app/bad
expect 404
req GET /v1/no/such/route
expect 404
jis 'd' "{'errors': []}"
req PATCH /v1/secret/metadata/app/db '{}'
expect 405
req DELETE /v1/secret/config
expect 405
req GET /v1/secret/data/
expect 400
STATUS=$(curl -s -o resp.json -w '%{http_code}' "$A/v1/secret/data/app/db")
expect 403
jis 'd' "{'errors': ['permission denied']}"
# Traversal: refused before routing; nothing is written.
for p in '/v1/secret/data/../x' '/v1/secret/data/app/../../x' '/v1/secret/data/%2e%2e/x' \
    '/v1/secret/data/app/%2E%2E/x' '/v1/secret/data/a%2fb' '/v1/secret/data/./x'; do
    STATUS=$(curl -s --path-as-is -o resp.json -w '%{http_code}' -X POST -H @auth.hdr.secret \
        --data-binary '{"data":{"k":"v"}}' "$A$p")
    case $STATUS in 400 | 404) ;; *) cat resp.json; fail "traversal $p gave $STATUS" ;; esac
done
req LIST /v1/secret/metadata
jis 'd["data"]["keys"]' "['app/']"
req GET /v1/secret/data/x
expect 404

# --- 16 concurrent writers with the same cas: exactly one wins ---
req POST /v1/secret/data/race/one '{"data":{"n":"0"}}'
expect 200
for i in $(seq 1 16); do
    curl -s -o "race.$i.json" -w '%{http_code}\n' -X POST -H @auth.hdr.secret \
        --data-binary "{\"data\":{\"n\":\"$i\"},\"options\":{\"cas\":1}}" \
        "$A/v1/secret/data/race/one" >"race.$i.code" &
done
wait_writers() { local p; for p in $(jobs -p); do [ "$p" = "$SERVER_PID" ] || wait "$p"; done; }
wait_writers
ok=$(cat race.*.code | grep -c '^200$' || true)
conflict=$(cat race.*.code | grep -c '^400$' || true)
[ "$ok" = 1 ] && [ "$conflict" = 15 ] || fail "concurrent cas: $ok x 200, $conflict x 400"
grep -l '"version":2' race.*.json >/dev/null || fail "the winner did not get version 2"
req GET /v1/secret/metadata/race/one
jis 'd["data"]["current_version"]' 2
# Without cas, every writer gets its own version.
for i in $(seq 1 16); do
    curl -s -o /dev/null -w '%{http_code}\n' -X POST -H @auth.hdr.secret \
        --data-binary "{\"data\":{\"n\":\"$i\"}}" "$A/v1/secret/data/race/two" >"free.$i.code" &
done
wait_writers
[ "$(cat free.*.code | grep -c '^200$')" = 16 ] || fail "concurrent writes without cas failed"
req GET /v1/secret/metadata/race/two
jis 'd["data"]["current_version"]' 16

# --- rekey's routes ---
req GET /v1/rekey/status
expect 200
jis '[s["path"] for s in d["data"]["secrets"]]' \
    "['secret/ai-gateway/litellm/master-key', 'secret/ai-gateway/providers/openai']"
jis 'sorted(d["data"]["secrets"][0])' \
    "['auto', 'detail', 'expires_at', 'fingerprint', 'kind', 'last_rotated', 'needs_input', 'next_due', 'path', 'source', 'state', 'version']"
req GET /v1/rekey/status/secret/ai-gateway/litellm/master-key
expect 200
jis 'd["data"]["kind"]' generated
req GET /v1/rekey/status/secret/not/there
expect 404
M=secret/ai-gateway/litellm/master-key
req POST "/v1/rekey/rotate/$M" '{"dry_run":true,"reason":"plan"}'
expect 200
jis 'd["data"]["dry_run"]' True
jis 'len(d["data"]["steps"]) > 0' True
req GET "/v1/secret/data/ai-gateway/litellm/master-key"
expect 404 # the dry run wrote nothing
req POST "/v1/rekey/rotate/$M" '{"dry_run":"perhaps"}'
expect 400
jis 'd["errors"]' "['invalid \"dry_run\": expected a boolean, got string']"
req POST "/v1/rekey/rotate/$M" '{"reason":"first"}'
expect 200
jis 'd["data"]["new_version"]' 1
jis 'd["data"]["new_fingerprint"].startswith("hmac:")' True
req GET /v1/secret/data/ai-gateway/litellm/master-key
expect 200
KEY1=$(j 'd["data"]["data"]["key"]')
[[ $KEY1 =~ ^sk-litellm-[0-9a-f]{48}$ ]] || fail "generated key has the wrong format"
grep -qF "LITELLM_MASTER_KEY=$KEY1" master.env.secret || fail "the reload hook did not render"
req POST "/v1/rekey/rotate/$M" '{"reason":"second"}'
expect 200
jis 'd["data"]["new_version"]' 2
req GET /v1/secret/data/ai-gateway/litellm/master-key
[ "$(j 'd["data"]["data"]["key"]')" != "$KEY1" ] || fail "rotation kept the same key"
req GET "/v1/rekey/history/$M"
expect 200
jis '[e["op"] for e in d["data"]["events"]].count("rotate")' 2
req POST "/v1/rekey/rollback/$M" '{"reason":"undo"}'
expect 200
req GET /v1/secret/data/ai-gateway/litellm/master-key
jis 'd["data"]["data"]["key"]' "$KEY1"
req POST "/v1/rekey/revoke/$M" '{"dry_run":true}'
expect 200
jis 'd["data"]["dry_run"] and len(d["data"]["steps"]) > 0' True
req GET /v1/rekey/action-required
expect 200
jis 'type(d["data"]["keys"]).__name__' list
req POST /v1/rekey/recover ''
expect 200
jis 'type(d["data"]["count"]).__name__' int
req POST "/v1/rekey/done/$M" ''
expect 404
req POST /v1/rekey/rotate/secret/not/in/inventory '{}'
expect 404
req POST '/v1/rekey/rotate/secret//x' '{}'
case $STATUS in 400 | 404) ;; *) fail "bad rotate path gave $STATUS" ;; esac
STATUS=$(curl -s -o resp.json -w '%{http_code}' -X POST "$A/v1/rekey/rotate/$M")
expect 403

# No secret value reached the server's log (the -dev banner on stdout shows the root token, as
# Vault's does; it is kept apart in banner.secret).
expect_not_in server.log pw-one-Q7
expect_not_in server.log "$KEY1"
expect_not_in server.log "$TOKEN"
echo "t-server-kv: ok"
