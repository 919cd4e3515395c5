#!/usr/bin/env bash
# Two rekey servers on one 3-member etcd cluster: a write through one is read through the other
# at once (20 rounds, a new value each); concurrent check-and-set writes to one path from both:
# exactly one wins each round; one leader (sys/leader, sys/ha-status, sys/health 200 / 429, 200
# with ?standbyok=true); the lease manager's routes through the standby are forwarded to the
# leader (database/creds against a real PostgreSQL gives a login that works; sys/leases lookup,
# list, renew and revoke; the leader's 403 relayed; a forwarded request is not forwarded again);
# SIGTERM of the leader hands over at once (it resigns its lease); a standby whose leader was
# just killed answers a forwarded route 503 at once, naming the leader, with "retry".
. "$REKEY_TOP/tests/integration/lib.sh"
. "$REKEY_TOP/tests/ha/lib-ha.sh"

etcd_up
PA=$(free_port); PB=$(free_port)
A="http://127.0.0.1:$PA"; B="http://127.0.0.1:$PB"
server_conf a "$PA"
# B announces a name of its own (server.api_addr), not its listen address: what sys/leader shows
# and where a standby forwards when B leads.
server_conf b "$PB" '  api_addr: "http://localhost:'"$PB"'/"'
BN="http://localhost:$PB"
server_start a
wait_log a.log "is the leader now" 10
server_start b

# ---- one leader ----
[ "$(health "$A")" = 200 ] || fail "the leader's sys/health is not 200"
[ "$(health "$B")" = 429 ] || fail "the standby's sys/health is not 429"
code=$(curl -s -o /dev/null -w '%{http_code}' "$B/v1/sys/health?standbyok=true")
[ "$code" = 200 ] || fail "the standby's sys/health?standbyok=true is $code, not 200"
curl -s "$B/v1/sys/leader" >resp.json
[ "$(j 'd["ha_enabled"], d["is_self"], d["leader_address"]')" = "(True, False, '$A')" ] ||
  { cat resp.json; fail "sys/leader on the standby"; }
curl -s "$A/v1/sys/leader" >resp.json
[ "$(j 'd["is_self"]')" = True ] || { cat resp.json; fail "sys/leader on the leader"; }
# One cluster: both servers give the same cluster_id and cluster_name (made from the store).
curl -s "$A/v1/sys/health" >resp.json
ida=$(j 'd["cluster_id"], d["cluster_name"]')
curl -s "$B/v1/sys/health?standbyok=true" >resp.json
idb=$(j 'd["cluster_id"], d["cluster_name"]')
[ "$ida" = "$idb" ] || fail "the two servers report different clusters: $ida / $idb"
req "$B" GET /v1/sys/ha-status
expect 200
[ "$(j 'sorted((n["api_address"], n["active_node"]) for n in d["nodes"])')" = \
  "$(/usr/bin/python3 -c "print(sorted([('$A', True), ('$BN', False)]))")" ] ||
  { cat resp.json; fail "sys/ha-status does not list both servers with A active"; }
grep -q "scheduler started" b.log && fail "the standby runs a scheduler"

# ---- read your writes across servers ----
for i in $(seq 1 20); do
  if [ $((i % 2)) = 0 ]; then W=$A R=$B; else W=$B R=$A; fi
  req "$W" POST /v1/secret/data/app/rw "{\"data\":{\"n\":\"v$i\"}}"
  expect 200 "write $i"
  req "$R" GET /v1/secret/data/app/rw
  expect 200 "read $i"
  [ "$(j 'd["data"]["data"]["n"]')" = "v$i" ] || { cat resp.json; fail "round $i: the other server read an older value"; }
done

# ---- check-and-set from both at once: one wins ----
for i in $(seq 1 10); do
  req "$A" GET /v1/secret/data/app/cas
  if [ "$STATUS" = 404 ]; then ver=0; else ver=$(j 'd["data"]["metadata"]["version"]'); fi
  curl -s -o a.out -w '%{http_code}' -X POST -H @root.hdr.secret \
    --data-binary "{\"options\":{\"cas\":$ver},\"data\":{\"who\":\"a$i\"}}" "$A/v1/secret/data/app/cas" >a.code &
  cpid=$!
  curl -s -o b.out -w '%{http_code}' -X POST -H @root.hdr.secret \
    --data-binary "{\"options\":{\"cas\":$ver},\"data\":{\"who\":\"b$i\"}}" "$B/v1/secret/data/app/cas" >b.code
  wait "$cpid"
  codes="$(cat a.code) $(cat b.code)"
  case $codes in
    "200 400") want=a$i ;;
    "400 200") want=b$i ;;
    *) cat a.out b.out; fail "round $i: check-and-set from both answered $codes (want one 200, one 400)" ;;
  esac
  req "$B" GET /v1/secret/data/app/cas
  [ "$(j 'd["data"]["data"]["who"], d["data"]["metadata"]["version"]')" = "('$want', $((ver + 1)))" ] ||
    { cat resp.json; fail "round $i: the winner's value is not the one stored"; }
done

# ---- the lease manager's routes through the standby: forwarded to the leader ----
PGPORT=$(free_port)
trap 'ha_cleanup; "$REKEY_TOP/scripts/services" stop postgres "$dir/pgd" >/dev/null 2>&1 || true' EXIT
PG_ADMIN_PASSWORD_FILE=$dir/admin.secret "$REKEY_TOP/scripts/services" start postgres "$dir/pgd" \
  "$PGPORT" >pg.out 2>&1 || { cat pg.out; fail "PostgreSQL did not start"; }
PSQL=/usr/lib/postgresql/15/bin/psql
sql() { $PSQL -X -q -At -h "$dir/pgd/pg/run" -p "$PGPORT" -U rekey_admin -d postgres -c "$1"; }
# sreq URL METHOD PATH [BODY]: as req, the answer in ./resp.secret (it may hold a password).
sreq() {
  local args=(-s -o resp.secret -w '%{http_code}' -X "$2" -H @root.hdr.secret)
  [ -n "${4-}" ] && args+=(--data-binary "$4")
  STATUS=$(curl "${args[@]}" "$1$3") || STATUS=000
}
sj() { $PY -c 'import json,sys; d = json.load(open("resp.secret")); print(eval(sys.argv[1]))' "$1"; }
sexpect() { [ "$STATUS" = "$1" ] || { cat resp.secret; echo; fail "expected HTTP $1, got $STATUS${2:+ ($2)}"; }; }
$PY - "$PGPORT" >config.json.secret <<'PY'
import json, sys
print(json.dumps({"plugin_name": "postgresql-database-plugin",
  "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:%s/postgres" % sys.argv[1],
  "username": "rekey_admin", "password": open("admin.secret").read().strip(),
  "allowed_roles": ["app"], "password_authentication": "scram-sha-256"}))
PY
sreq "$B" PUT /v1/database/config/pg @config.json.secret
sexpect 204 "database/config through the standby"
sreq "$B" PUT /v1/database/roles/app '{"db_name":"pg","creation_statements":["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '"'"'{{password}}'"'"' VALID UNTIL '"'"'{{expiration}}'"'"'"],"default_ttl":"1h","max_ttl":"2h"}'
sexpect 204 "database/roles through the standby"
sreq "$B" GET /v1/database/creds/app
sexpect 200 "database/creds through the standby"
U=$(sj 'd["data"]["username"]'); L=$(sj 'd["lease_id"]')
sj 'd["data"]["password"]' >app.pw.secret
[ "$(sj 'd["lease_duration"] > 3000 and d["renewable"]')" = True ] || fail "the forwarded creds' lease"
# The login works: a fresh TCP login (SCRAM) through a 0600 pgpass file, no password on argv.
(umask 077 && printf '127.0.0.1:%s:*:%s:%s\n' "$PGPORT" "$U" "$(cat app.pw.secret)" >pgpass.secret)
out=$(PGPASSFILE=$dir/pgpass.secret $PSQL -X -At -w \
  "host=127.0.0.1 port=$PGPORT dbname=postgres user=$U connect_timeout=5" -c "SELECT current_user" 2>&1) ||
  fail "the login issued through the standby does not work: $out"
[ "$out" = "$U" ] || fail "logged in as '$out', not $U"
grep -qF "database/creds/app forwarded to the leader at $A: 200" b.log ||
  { cat b.log; fail "the standby did not log the forward"; }
grep -qF "database: issued $L" a.log || fail "the leader did not issue $L"
for f in a.log b.log; do
  ! grep -qFf app.pw.secret "$f" || fail "the password is in $f"
done
sreq "$B" PUT /v1/sys/leases/lookup "{\"lease_id\":\"$L\"}"
sexpect 200 "lease lookup through the standby"
[ "$(sj 'd["data"]["id"], d["data"]["username"]')" = "('$L', '$U')" ] || { cat resp.secret; fail "lookup"; }
sreq "$B" LIST /v1/sys/leases/lookup/database/creds/app/
sexpect 200 "lease list through the standby"
[ "$(sj 'd["data"]["keys"]')" = "['${L##*/}']" ] || { cat resp.secret; fail "lease list"; }
sreq "$B" PUT /v1/sys/leases/renew "{\"lease_id\":\"$L\",\"increment\":\"30m\"}"
sexpect 200 "lease renew through the standby"
[ "$(sj 'd["lease_id"], 1700 < d["lease_duration"] <= 1800')" = "('$L', True)" ] ||
  { cat resp.secret; fail "renew"; }
# The leader checks the token: its 403 comes back through the standby.
code=$(curl -s -o resp.secret -w '%{http_code}' -H 'X-Vault-Token: not-a-token' "$B/v1/database/creds/app")
[ "$code" = 403 ] || { cat resp.secret; fail "a bad token through the standby gave $code, not 403"; }
# A forwarded request is served by the leader and never forwarded again by a standby.
code=$(curl -s -o resp.secret -w '%{http_code}' -X PUT -H @root.hdr.secret -H 'X-Rekey-Forwarded: 1' \
  --data-binary "{\"lease_id\":\"$L\"}" "$A/v1/sys/leases/lookup")
[ "$code" = 200 ] || { cat resp.secret; fail "the leader refused a forwarded request: $code"; }
code=$(curl -s -o resp.secret -w '%{http_code}' -H @root.hdr.secret -H 'X-Rekey-Forwarded: 1' \
  "$B/v1/database/creds/app")
[ "$code" = 503 ] || { cat resp.secret; fail "a standby forwarded a forwarded request ($code, not 503)"; }
expect_in resp.secret "retry"
sreq "$B" PUT /v1/sys/leases/revoke "{\"lease_id\":\"$L\"}"
sexpect 204 "lease revoke through the standby"
[ "$(sql "SELECT count(*) FROM pg_roles WHERE rolname = '$U'")" = 0 ] || fail "the revoked login $U still exists"
sreq "$B" PUT /v1/sys/leases/lookup "{\"lease_id\":\"$L\"}"
sexpect 400 "lookup of the revoked lease"
rm -f pgpass.secret

# ---- SIGTERM of the leader: the standby leads at once ----
kill -TERM "$PID_a"
wait "$PID_a" || fail "the leader did not exit 0 on SIGTERM"
wait_log b.log "is the leader now" 3
wait_log b.log "scheduler started" 3
[ "$(health "$B")" = 200 ] || fail "the new leader's sys/health is not 200"
req "$B" GET /v1/secret/data/app/rw
[ "$(j 'd["data"]["data"]["n"]')" = v20 ] || fail "the last write is lost"

# ---- a standby whose leader was just killed: 503 at once, naming the leader ----
server_start a
for ((i = 0; i < 50; i++)); do
  curl -s "$A/v1/sys/leader" >resp.json
  [ "$(j 'd["is_self"], d["leader_address"]')" = "(False, '$BN')" ] && break
  sleep 0.1
done
[ "$(j 'd["is_self"], d["leader_address"]')" = "(False, '$BN')" ] ||
  { cat resp.json; fail "the restarted server does not see B lead at its api_addr"; }
# A forwards to B's api_addr.
code=$(curl -s -o resp.secret -w '%{http_code}' -X LIST -H @root.hdr.secret "$A/v1/sys/leases/lookup/database/creds/app/")
[ "$code" = 404 ] || [ "$code" = 200 ] || { cat resp.secret; fail "a forward to B's api_addr: $code"; }
grep -qF "forwarded to the leader at $BN: $code" a.log ||
  { cat a.log; fail "A did not forward to B's api_addr $BN"; }
kill -KILL "$PID_b"
wait "$PID_b" 2>/dev/null || true
# B's lease lives up to 3 s more: A still takes B for the leader and forwards to a dead address.
t0=$(date +%s%N)
code=$(curl -s -o resp.secret -w '%{http_code}' -H @root.hdr.secret "$A/v1/database/creds/app")
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$code" = 503 ] || { cat resp.secret; fail "creds through a standby whose leader is dead: $code, not 503"; }
[ "$ms" -lt 2000 ] || fail "the 503 took $ms ms"
expect_in resp.secret "$BN"
expect_in resp.secret "retry"
echo ok
