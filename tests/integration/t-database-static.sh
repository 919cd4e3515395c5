#!/usr/bin/env bash
# Static roles, rotate-role and rotate-root on a `rekey server` against a real PostgreSQL 15
# (scripts/services, scram-sha-256): database/static-roles with the single strategy (the login's
# password rotated in place: the old one refused, the new one logs in) and the alternating one
# (two logins: a rotation changes the idle one and makes it active, so the previous credentials
# keep working until the rotation after); a static role killed (kill -9, REKEY_CRASH_AT) after
# its intent and after its apply (ALTER ROLE) still hands out a working login after the
# restart; database/rotate-root killed after its intent and after its ALTER ROLE leaves rekey
# able to log in (the next pool open completes it), and a rotate-root that ends refuses the old
# admin password. No password in the server's log, the store or PostgreSQL's log.
. "$REKEY_TOP/tests/integration/lib.sh"
. "$REKEY_TOP/tests/integration/pg-lib.sh"
PWS=()
# screds NAME: static-creds into SU (user) and SU.pw.secret
screds() {
  req GET "/v1/database/static-creds/$1"
  expect 200
  SU=$(j 'd["data"]["username"]')
  j 'd["data"]["password"]' >"$SU.$2.pw.secret"
  PWS+=("$(cat "$SU.$2.pw.secret")")
}
crash_run() { # crash_run POINT METHOD PATH: the server dies at POINT during the request
  stop_server
  export REKEY_CRASH_AT=$1
  start_server
  unset REKEY_CRASH_AT
  curl -s -o /dev/null -X "$2" -H @root.hdr.secret "$A$3" || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  grep -q "REKEY_CRASH_AT=$1" server.log || fail "the crash point $1 was not reached"
  start_server
}

export REKEY_STORE=$(store_loc "$dir/kf.db")
expect_exit 0 "$REKEY" operator init -key-file="$dir/kf.key"
ROOT=$(sed -n 's/^Initial Root Token: //p' last.out)
printf 'X-Vault-Token: %s\n' "$ROOT" >root.hdr.secret
PORT=$(free_port)
A="http://127.0.0.1:$PORT"
cat >rekey.yaml <<EOF2
version: 1
$(store_yaml kf.db)
server:
  listen: "127.0.0.1:$PORT"
EOF2
: >server.log
start_server
sql "CREATE ROLE st_single LOGIN; CREATE ROLE st_a LOGIN; CREATE ROLE st_b LOGIN"

$PY - "$PGPORT" <<'EOF2' >config.json.secret
import json, sys
print(json.dumps({"plugin_name": "postgresql-database-plugin",
  "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:%s/postgres" % sys.argv[1],
  "username": "rekey_admin", "password": open("admin.secret").read().strip(),
  "allowed_roles": ["*"]}))
EOF2
req PUT /v1/database/config/pg @config.json.secret
expect 204

# ---- single: rotated in place ----
req PUT /v1/database/static-roles/single '{"db_name":"pg","username":"st_single","rotation_period":"1h"}'
expect 204
screds single 1
[ "$SU" = st_single ] || fail "static-creds user $SU"
[ "$(j 'd["data"]["ttl"]')" -ge 3590 ] || fail "static-creds ttl"
[ "$(login_as st_single st_single.1.pw.secret)" = OK ] || fail "the static login does not work"
req GET /v1/database/static-roles/single
expect 200
expect_not_in resp.secret "$(cat st_single.1.pw.secret)"
req POST /v1/database/rotate-role/single
expect 204
screds single 2
! cmp -s st_single.1.pw.secret st_single.2.pw.secret || fail "rotate-role kept the password"
[ "$(login_as st_single st_single.2.pw.secret)" = OK ] || fail "the rotated static login does not work"
[ "$(login_as st_single st_single.1.pw.secret)" = REFUSED ] || fail "the old static password still works"
req LIST /v1/database/static-roles
expect 200
expect_in resp.secret single

# ---- alternating: the idle login rotates, the previous credentials keep working ----
req PUT /v1/database/static-roles/alt '{"db_name":"pg","username":"st_a","alternate_username":"st_b","rotation_strategy":"alternating"}'
expect 204
screds alt 1; U1=$SU
[ "$(login_as "$U1" "$U1.1.pw.secret")" = OK ] || fail "the alternating login does not work"
req POST /v1/database/rotate-role/alt
expect 204
screds alt 2; U2=$SU
[ "$U2" != "$U1" ] || fail "the alternating strategy rotated the active login"
[ "$(login_as "$U2" "$U2.2.pw.secret")" = OK ] || fail "the new active login does not work"
[ "$(login_as "$U1" "$U1.1.pw.secret")" = OK ] || fail "the previous credentials stopped working at once"
req POST /v1/database/rotate-role/alt
expect 204
screds alt 3
[ "$SU" = "$U1" ] || fail "the third rotation did not come back to $U1"
[ "$(login_as "$U1" "$U1.3.pw.secret")" = OK ] || fail "the alternating login does not work"
[ "$(login_as "$U1" "$U1.1.pw.secret")" = REFUSED ] || fail "a password two rotations old still works"
[ "$(login_as "$U2" "$U2.2.pw.secret")" = OK ] || fail "the previous credentials stopped working"

# ---- a static rotation killed after each step keeps a working login ----
n=10
for point in static-intent static-applied; do
  crash_run $point POST /v1/database/rotate-role/single
  n=$((n + 1))
  screds single $n
  [ "$(login_as st_single "st_single.$n.pw.secret")" = OK ] || { cat server.log; fail "after a crash at $point the static login does not work"; }
done

# ---- rotate-root killed after its intent and after its ALTER ROLE: rekey still logs in ----
for point in root-intent root-applied; do
  crash_run $point POST /v1/database/rotate-root/pg
  req POST /v1/database/rotate-role/single
  expect 204
done
[ "$(login_as rekey_admin admin.secret)" = REFUSED ] || fail "the admin password did not change"
req POST /v1/database/rotate-root/pg
expect 204
req POST /v1/database/rotate-role/single
expect 204
n=$((n + 1)); screds single $n
[ "$(login_as st_single "st_single.$n.pw.secret")" = OK ] || fail "after rotate-root the static login does not work"
req GET /v1/database/config/pg
expect 200
expect_not_in resp.secret password\":
stop_server

# ---- no password anywhere ----
assert_no_password
echo "ok"
