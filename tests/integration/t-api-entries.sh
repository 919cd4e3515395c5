#!/usr/bin/env bash
# Entries defined in the store through the API (PUT/GET/LIST/DELETE /v1/rekey/entries/PATH) on a
# `rekey server` with a configuration and a key-file store: validated by the loader's own rules
# (a bad key, a bad duration, an unknown hook and a configuration path are refused with the
# reason); shown by status (source "store"), status --json and schedule; rotated by the
# scheduler at once and on its period, with the configuration's hook; checked by the ACL; still
# there and still rotated after a restart; deleted, the scheduler stops at once.
. "$REKEY_TOP/tests/integration/lib.sh"

dir=$PWD

rotations() {
    req GET "/v1/rekey/history/$1"
    expect 200
    j 'sum(1 for e in d["data"]["events"] if e["op"] == "rotate" and e["result"] == "ok")'
}
kill_server_at_exit

kf_init
cat >rekey.yaml <<EOF
$(kf_yaml)
hooks:
  render:
    type: file
    path: $dir/api.secret
    template: "TOKEN={{new}}"
    mode: "0600"
secrets:
  - path: secret/app/human
    kind: manual
    field: api_key
    every: 30d
EOF
: >server.log
start_server
wait_server_log "scheduler started" 5

# ---- refused definitions: the loader's rules, with the key and the reason ----
req PUT /v1/rekey/entries/secret/api/token '{"kind":"generated","format":"tk-{hex:32}","every":"soon"}'
expect 400
$PY -c 'import json; e=json.load(open("resp.json"))["errors"][0]; assert "every" in e and "soon" in e, e'
req PUT /v1/rekey/entries/secret/api/token '{"kind":"generated","format":"tk-{hex:32}","every":"2s","colour":"red"}'
expect 400
expect_in resp.json "unknown key 'colour'"
req PUT /v1/rekey/entries/secret/api/token '{"kind":"generated","format":"tk-{hex:32}","every":"2s","reload":["nope"]}'
expect 400
expect_in resp.json "unknown hook 'nope'"
req PUT /v1/rekey/entries/secret/app/human '{"kind":"manual","every":"1d"}'
expect 400
expect_in resp.json "may not shadow"
req PUT /v1/rekey/entries/secret/api/token 'not json'
expect 400
req GET /v1/rekey/entries/secret/api/token
expect 404

# ---- a valid entry: defined, planned and rotated at once with the configuration's hook ----
req PUT /v1/rekey/entries/secret/api/token '{"kind":"generated","format":"tk-{hex:32}","field":"key","every":"2s","auto":true,"reload":["render"],"description":"made through the API"}'
expect 200
[ "$(j 'd["data"]["created"]')" = True ] || { cat resp.json; fail "not reported as created"; }
wait_server_log "secret/api/token: defined in the store; planned" 5
wait_server_log "rotated secret/api/token v0 -> v1" 5
req GET /v1/rekey/entries/secret/api/token
expect 200
[ "$(j 'd["data"]["every"]')" = 2s ] && [ "$(j 'd["data"]["path"]')" = secret/api/token ] ||
    { cat resp.json; fail "the definition does not read back"; }
req LIST /v1/rekey/entries
expect 200
[ "$(j 'd["data"]["keys"]')" = "['secret/api/token']" ] || { cat resp.json; fail "LIST"; }
req GET "/v1/rekey/entries/secret?list=true"
expect 200
[ "$(j 'len(d["data"]["keys"])')" = 1 ] || { cat resp.json; fail "LIST under a prefix"; }
req LIST /v1/rekey/entries/secret/other
expect 200
[ "$(j 'len(d["data"]["keys"])')" = 0 ] || { cat resp.json; fail "LIST under another prefix"; }

req GET /v1/rekey/status/secret/api/token
expect 200
[ "$(j 'd["data"]["source"]')" = store ] || { cat resp.json; fail "status: not from the store"; }
req GET /v1/rekey/status
expect 200
[ "$(j '[s["path"] for s in d["data"]["secrets"]]')" = "['secret/app/human', 'secret/api/token']" ] ||
    { cat resp.json; fail "status: the configuration's entry, then the store's"; }

# at once, then every 2 s: 3 rotations about 4 s after the first (up to 10 s on a loaded machine)
for _ in $(seq 1 100); do
    n=$(rotations secret/api/token)
    [ "$n" -ge 3 ] && break
    sleep 0.1
done
[ "$n" -ge 3 ] || { cat server.log; fail "expected at least 3 rotations of the store entry, got $n"; }
# (whether the hook's file holds the current value is checked below, once the entry no longer
# rotates every 2 s: while it does, a look may fall between a promote and its reload)
req GET /v1/secret/data/api/token
expect 200
val=$(j 'd["data"]["data"]["key"]')
expect_not_in server.log "$val"

# ---- the ACL: a token that may read the status but not define entries ----
cat >reader.hcl <<'EOF'
path "rekey/status" { capabilities = ["read"] }
path "rekey/entries/*" { capabilities = ["read", "list"] }
EOF
req PUT /v1/sys/policies/acl/reader "$($PY -c 'import json; print(json.dumps({"policy": open("reader.hcl").read()}))')"
expect 204
req POST /v1/auth/token/create '{"policies":["reader"]}'
expect 200
printf 'X-Vault-Token: %s\n' "$(j 'd["auth"]["client_token"]')" >reader.hdr.secret
req GET /v1/rekey/entries/secret/api/token "" reader.hdr.secret
expect 200
req PUT /v1/rekey/entries/secret/api/other '{"kind":"manual","every":"1d"}' reader.hdr.secret
expect 403
req DELETE /v1/rekey/entries/secret/api/token "" reader.hdr.secret
expect 403

# ---- restart: the entry is still there and still rotated ----
stop_server_clean
before=$(grep -c "rotated secret/api/token v" server.log)
start_server
wait_server_log "(1 defined in the store)" 5
for _ in $(seq 1 50); do
    [ "$(grep -c "rotated secret/api/token v" server.log)" -gt "$before" ] && break
    sleep 0.1
done
[ "$(grep -c "rotated secret/api/token v" server.log)" -gt "$before" ] ||
    { cat server.log; fail "not rotated after the restart"; }
req GET /v1/rekey/status/secret/api/token
expect 200
[ "$(j 'd["data"]["source"]')" = store ] || { cat resp.json; fail "status after the restart"; }

# ---- replaced: the scheduler takes the new period at once ----
req PUT /v1/rekey/entries/secret/api/token '{"kind":"generated","format":"tk-{hex:32}","field":"key","every":"1h","auto":true,"reload":["render"]}'
expect 200
[ "$(j 'd["data"]["created"]')" = False ] || { cat resp.json; fail "a replacement reported as created"; }
wait_server_log "secret/api/token: changed in the store; planned" 5
# (a rotation begun before the change may still be finishing: count once the count holds for 1 s)
n1=$(rotations secret/api/token)
for _ in 1 2 3 4 5; do
    sleep 1
    n0=$n1 n1=$(rotations secret/api/token)
    [ "$n1" = "$n0" ] && break
done
sleep 3
[ "$(rotations secret/api/token)" = "$n1" ] || { cat server.log; fail "still rotated every 2s after the change to 1h"; }
req GET /v1/secret/data/api/token
expect 200
[ "$(cat api.secret)" = "TOKEN=$(j 'd["data"]["data"]["key"]')" ] ||
    { tail -40 server.log; fail "the hook's file does not hold the current value"; }

# ---- the local CLI sees it too ----
stop_server_clean
export REKEY_KEY_FILE="$dir/kf.key" REKEY_CONFIG="$dir/rekey.yaml"
expect_exit 0 "$REKEY" status
expect_in last.out "secret/api/token"
"$REKEY" status --json >status.json
$PY - <<'PY' || fail "rekey status --json does not show the store entry"
import json
s = {e["path"]: e for e in json.load(open("status.json"))}
t = s["secret/api/token"]
assert t["source"] == "store" and t["version"] >= 3 and t["state"] == "ok", t
assert s["secret/app/human"]["source"] == "config", s
PY
"$REKEY" schedule --json >schedule.json
$PY - <<'PY' || fail "rekey schedule --json does not show the store entry"
import json
s = {e["path"]: e for e in json.load(open("schedule.json"))["secrets"]}
assert s["secret/api/token"]["every"] == "1h" and s["secret/api/token"]["rotations"] > 100, s
PY

# ---- deleted: the scheduler drops it at once; its versions stay ----
: >server.log
start_server
wait_server_log "(1 defined in the store)" 5
req DELETE /v1/rekey/entries/secret/api/token
expect 204
wait_server_log "secret/api/token: deleted from the store; not scheduled any more" 5
req GET /v1/rekey/status/secret/api/token
expect 404
req GET /v1/secret/data/api/token
expect 200
req DELETE /v1/rekey/entries/secret/app/human
expect 400
stop_server_clean
echo ok
