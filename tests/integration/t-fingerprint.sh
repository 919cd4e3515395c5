#!/usr/bin/env bash
# Keyed fingerprints (issue 11, finding 4): what a token that may only read metadata sees is
# "hmac:" + 12 hex under the store's own key, not the first 48 bits of SHA-256 of the value;
# `rekey fingerprint` (value on stdin, locally or through a server) prints the same fingerprint
# that `kv metadata` shows for the value; it holds across a keyring rotation and a restart,
# differs between stores, and a store whose key record is gone gets a new key and every stored
# fingerprint recomputed. No value or token is ever on a command line.
. "$REKEY_TOP/tests/integration/lib.sh"

VALUE="hunter2"
SHA=$(printf '%s' "$VALUE" | sha256sum | cut -c1-12) # what the unkeyed scheme showed

# ---------------- through a dev server ----------------
cat >dev.yaml <<EOF
version: 1
secrets:
  - path: secret/app/manual
    kind: manual
    field: value
    every: 90d
EOF
dev_server "$PWD/dev.yaml"

# is_fp FP: "hmac:" + 12 lowercase hex, and not the unkeyed SHA-256 of the value.
is_fp() {
    [[ "$1" =~ ^hmac:[0-9a-f]{12}$ ]] || fail "not a keyed fingerprint: '$1'"
    [ "${1#hmac:}" != "$SHA" ] || fail "the fingerprint is the plain SHA-256 of the value"
}

req POST /v1/secret/data/fp/one "{\"data\":{\"password\":\"$VALUE\"}}"
expect 200

# A token that may only read metadata sees the keyed fingerprint, and nothing more.
req PUT /v1/sys/policies/acl/meta-only '{"policy":"path \"secret/metadata/*\" { capabilities = [\"read\"] }"}'
expect 204
req POST /v1/auth/token/create '{"policies":["meta-only"],"ttl":"1h"}'
expect 200
printf 'X-Vault-Token: %s\n' "$(j 'd["auth"]["client_token"]')" >meta.hdr.secret
req GET /v1/secret/metadata/fp/one "" meta.hdr.secret
expect 200
FP=$(j 'd["data"]["versions"]["1"]["fingerprint"]')
is_fp "$FP"
expect_not_in resp.json "$SHA"
expect_not_in resp.json "$VALUE"
req GET /v1/secret/data/fp/one "" meta.hdr.secret
expect 403
# Computing one is a capability of its own (rekey/fingerprint, update): not this token's.
req POST /v1/rekey/fingerprint "{\"value\":\"$VALUE\"}" meta.hdr.secret
expect 403

# The server computes the same for the value, and `rekey fingerprint` asks it.
req POST /v1/rekey/fingerprint "{\"value\":\"$VALUE\"}"
expect 200
[ "$(j 'd["data"]["fingerprint"]')" = "$FP" ] || fail "POST rekey/fingerprint differs from the metadata"
req POST /v1/rekey/fingerprint '{"value":5}'
expect 400
req POST /v1/rekey/fingerprint '{"value":"x","other":1}'
expect 400
req GET /v1/rekey/fingerprint
expect 405
got=$(printf '%s\n' "$VALUE" | REKEY_ADDR="$A" REKEY_TOKEN="$ROOT" "$REKEY" fingerprint)
[ "$got" = "$FP" ] || fail "rekey fingerprint through the server printed '$got', want $FP"
REKEY_ADDR="$A" REKEY_TOKEN="$ROOT" "$REKEY" kv metadata -format=json secret/fp/one >meta.json
$PY -c 'import json,sys; m=json.load(open("meta.json")); assert m["versions"]["1"]["fingerprint"] == sys.argv[1], m' \
    "$FP" || fail "kv metadata through the server: $(cat meta.json)"
expect_not_in server.log "$VALUE"
kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
trap - EXIT

# ---------------- a local store ----------------
init_store
# meta_fp PATH [VERSION]: the fingerprint `kv metadata` shows.
meta_fp() {
    "$REKEY" kv metadata -format=json "$1" >meta.json || fail "kv metadata $1"
    $PY -c 'import json,sys; print(json.load(open("meta.json"))["versions"][sys.argv[1]]["fingerprint"])' "${2:-1}"
}
local_fp() { printf '%s\n' "$1" | "$REKEY" fingerprint; }

printf '%s\n' "$VALUE" | "$REKEY" kv put secret/app/db password=- >put.out
L1=$(meta_fp secret/app/db)
is_fp "$L1"
expect_in put.out "$L1"
[ "$(local_fp "$VALUE")" = "$L1" ] || fail "rekey fingerprint differs from kv metadata"
[ "$L1" != "$FP" ] || fail "two stores gave the value the same fingerprint"
# Several fields: the fingerprint of the data as canonical JSON.
"$REKEY" kv put secret/app/multi user=app password=pw2 >/dev/null
[ "$(local_fp '{"password":"pw2","user":"app"}')" = "$(meta_fp secret/app/multi)" ] ||
    fail "a multi-field secret's fingerprint is not that of its canonical JSON"
# The same across a keyring rotation and a new version of the same value.
expect_exit 0 "$REKEY" operator rotate-keyring
[ "$(local_fp "$VALUE")" = "$L1" ] || fail "the keyring rotation changed the fingerprint"
printf '%s' "$VALUE" | "$REKEY" kv put secret/app/db password=- >/dev/null
[ "$(meta_fp secret/app/db 2)" = "$L1" ] || fail "the same value got another fingerprint"
[ "$(meta_fp secret/app/db 1)" = "$L1" ] || fail "version 1's fingerprint changed"
# Refused: a value on the command line.
expect_exit 2 "$REKEY" fingerprint "$VALUE"

# A store whose key record is gone (as one from before keyed fingerprints): the next open makes
# a key and recomputes every stored fingerprint under it.
if sqlite_only "deletes core/fpkey with sqlite3"; then
    sqlite3 store.db "DELETE FROM kv WHERE key = 'core/fpkey'"
    L2=$(meta_fp secret/app/db 1)
    is_fp "$L2"
    [ "$L2" != "$L1" ] || fail "the fingerprint did not change with the new key"
    [ "$(local_fp "$VALUE")" = "$L2" ] || fail "after the new key: rekey fingerprint differs"
    [ "$(meta_fp secret/app/db 2)" = "$L2" ] || fail "version 2 was not recomputed"
    [ "$(local_fp '{"password":"pw2","user":"app"}')" = "$(meta_fp secret/app/multi)" ] ||
        fail "the multi-field secret was not recomputed"
fi
assert_no_plaintext "$VALUE"
