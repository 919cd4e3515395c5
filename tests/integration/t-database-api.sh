#!/usr/bin/env bash
# Vault's database engine and the lease manager on a `rekey server` against a real PostgreSQL 15
# (scripts/services, scram-sha-256): database/config (the admin password in the request body from
# a file, never shown back), database/roles, database/creds → a login that works; sys/leases
# lookup, renew (up to max_ttl and no further), revoke (login dropped, its session ended),
# revoke-prefix (every login of the role); a 3 s lease expires by itself; the server restarted
# keeps its leases and still expires them; PostgreSQL down during issue answers 503, during renew
# and revoke the lease stays as it was (the failure counted); a role named
# by the configuration is refused (409, source inventory); `rekey lease` lists and looks up
# locally; hvac reads creds and renews. No password in the server's log, the store or
# PostgreSQL's own log.
. "$REKEY_TOP/tests/integration/lib.sh"
. "$REKEY_TOP/tests/integration/pg-lib.sh"

kf_init
cat >rekey.yaml <<EOF
$(kf_yaml)
secrets:
  - path: database/creds/yaml-role
    kind: database
    connection: "$PG_CONN"
    ttl: 1h
    max_ttl: 4h
EOF
: >server.log
start_server
sql "CREATE ROLE app_rw NOLOGIN"

# ---- config: the admin password from a file, in the body; never shown back ----
$PY - "$PGPORT" <<'EOF' >config.json.secret
import json, sys
print(json.dumps({"plugin_name": "postgresql-database-plugin",
  "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:%s/postgres" % sys.argv[1],
  "username": "rekey_admin", "password": open("admin.secret").read().strip(),
  "allowed_roles": ["app", "short", "app2", "other"], "password_authentication": "scram-sha-256"}))
EOF
req PUT /v1/database/config/pg @config.json.secret
expect 204
req GET /v1/database/config/pg
expect 200
expect_not_in resp.secret "$(cat admin.secret)"
[ "$(j 'd["data"]["connection_details"]["username"]')" = rekey_admin ] || fail "config read"
req LIST /v1/database/config
expect 200
[ "$(j 'd["data"]["keys"]')" = "['pg']" ] || fail "config list"
# a bad placeholder and a password in the URL are refused
req PUT /v1/database/config/bad '{"connection_url":"host=127.0.0.1 user={{user}}","verify_connection":false}'
expect 400
req PUT /v1/database/config/bad '{"connection_url":"postgresql://a:pw@127.0.0.1/x","verify_connection":false}'
expect 400
# the configuration wins over the API
req PUT /v1/database/roles/yaml-role '{"db_name":"pg"}'
expect 409
expect_in resp.secret "inventory"
req GET /v1/database/roles/yaml-role
expect 200
[ "$(j 'd["data"]["source"]')" = inventory ] || fail "the inventory's role is not shown as such"

# ---- roles ----
req PUT /v1/database/roles/app '{"db_name":"pg","creation_statements":["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '"'"'{{password}}'"'"' VALID UNTIL '"'"'{{expiration}}'"'"'","GRANT app_rw TO \"{{name}}\""],"default_ttl":"1h","max_ttl":"2h"}'
expect 204
req PUT /v1/database/roles/short '{"db_name":"pg","default_ttl":3,"max_ttl":60}'
expect 204
req PUT /v1/database/roles/other '{"db_name":"pg","ttl":"1h"}'
expect 204
req PUT /v1/database/roles/app2 '{"db_name":"pg","creation_statements":"CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '"'"'{{password}}'"'"'; GRANT no_such_group TO \"{{name}}\";"}'
expect 204
req GET /v1/database/roles/app
expect 200
[ "$(j 'd["data"]["default_ttl"]')" = 3600 ] && [ "$(j 'd["data"]["max_ttl"]')" = 7200 ] || fail "role read"

# ---- creds: a working login with a lease ----
creds app
U1=$U L1=$L
case $L1 in database/creds/app/*) ;; *) fail "lease id $L1" ;; esac
[ "$(j 'd["lease_duration"]')" = 3600 ] && [ "$(j 'd["renewable"]')" = True ] || fail "lease shape (Vault answers the role's ttl exactly)"
[ "$(login_as "$U1" "$U1.pw.secret")" = OK ] || fail "the issued login does not work"
[ "$(sql "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = '$U1'")" = 1 ] ||
  fail "the creation statements did not all run"
# a creation that fails halfway leaves no login and no lease
n0=$(sql "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'")
req GET /v1/database/creds/app2
[ "$STATUS" -ge 400 ] || fail "a failing creation answered $STATUS"
[ "$(sql "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'")" = "$n0" ] || fail "a half-made login was left"
req LIST /v1/sys/leases/lookup/database/creds/app2/
expect 404

# ---- lookup, renew up to max_ttl ----
req PUT /v1/sys/leases/lookup "{\"lease_id\":\"$L1\"}"
expect 200
[ "$(j 'd["data"]["id"]')" = "$L1" ] || fail "lookup"
req PUT /v1/sys/leases/renew "{\"lease_id\":\"$L1\",\"increment\":5400}"
expect 200
d1=$(j 'd["lease_duration"]')
[ "$d1" -ge 5390 ] && [ "$d1" -le 5400 ] || fail "renew by 1.5h gave $d1"
req PUT /v1/sys/renew "{\"lease_id\":\"$L1\",\"increment\":\"10h\"}"
expect 200
d2=$(j 'd["lease_duration"]')
[ "$d2" -le 7200 ] && [ "$d2" -ge 7180 ] || fail "renew past max_ttl gave $d2 (max 7200)"
[ "$(sql "SELECT rolvaliduntil > now() + interval '1.9 hours' FROM pg_roles WHERE rolname = '$U1'")" = t ] ||
  fail "the login's VALID UNTIL did not move"

# ---- revoke: login dropped, its session ended ----
(umask 077 && printf '127.0.0.1:%s:*:%s:%s\n' "$PGPORT" "$U1" "$(cat "$U1.pw.secret")" >hold.secret)
PGPASSFILE=$dir/hold.secret $PGBIN/psql -X -At -w "host=127.0.0.1 port=$PGPORT dbname=postgres user=$U1" \
  -c "SELECT pg_sleep(120)" >/dev/null 2>&1 &
holder=$!
for _ in $(seq 50); do [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE usename = '$U1'")" -ge 1 ] && break; sleep 0.1; done
req PUT /v1/sys/leases/revoke "{\"lease_id\":\"$L1\"}"
expect 204
[ "$(exists "$U1")" = 0 ] || fail "revoke left the login"
[ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE usename = '$U1'")" = 0 ] || fail "revoke left its session"
wait $holder 2>/dev/null || true
req PUT /v1/sys/leases/lookup "{\"lease_id\":\"$L1\"}"
expect 400

# ---- revoke-prefix: every login of the role ----
creds app; Ua=$U
creds app; Ub=$U
creds other; Uo=$U
req PUT /v1/sys/leases/revoke-prefix/database/creds/app/
expect 204
[ "$(exists "$Ua")$(exists "$Ub")" = 00 ] || fail "revoke-prefix left a login"
[ "$(exists "$Uo")" = 1 ] || fail "revoke-prefix dropped another role's login"
creds short; Us=$U Ls=$L

# ---- expiry (3 s) revokes by itself ----
for _ in $(seq 100); do [ "$(exists "$Us")" = 0 ] && break; sleep 0.1; done
[ "$(exists "$Us")" = 0 ] || { cat server.log; fail "the 3 s lease was not revoked on expiry"; }
req PUT /v1/sys/leases/lookup "{\"lease_id\":\"$Ls\"}"
expect 400

# ---- a restart keeps the leases and still expires them ----
creds app; Ur=$U Lr=$L
creds short; Ue=$U
stop_server
start_server
req PUT /v1/sys/leases/lookup "{\"lease_id\":\"$Lr\"}"
expect 200
for _ in $(seq 100); do [ "$(exists "$Ue")" = 0 ] && break; sleep 0.1; done
[ "$(exists "$Ue")" = 0 ] || { cat server.log; fail "after a restart the 3 s lease was not revoked"; }
[ "$(exists "$Ur")" = 1 ] || fail "the restart lost a login"

# ---- the CLI, local mode: list and lookup ----
stop_server
export REKEY_KEY_FILE=$dir/kf.key REKEY_CONFIG=$dir/rekey.yaml
expect_exit 0 "$REKEY" lease list database/creds/app/
expect_in last.out "$Lr"
expect_exit 0 "$REKEY" lease lookup "$Lr"
expect_in last.out "$Ur"
unset REKEY_KEY_FILE REKEY_CONFIG
start_server

# ---- PostgreSQL down during issue (503, no lease), renew (refused, the lease unchanged) and
# revoke (refused, the failure counted, the lease kept; revoked once PostgreSQL is back) ----
creds app; Ud=$U Ld=$L
req PUT /v1/sys/leases/lookup "{\"lease_id\":\"$Ld\"}"
expect 200
exp0=$(j 'd["data"]["expire_time"]')
"$SVC" stop postgres "$dir/pg" >/dev/null
req GET /v1/database/creds/app
expect 503
req PUT /v1/sys/leases/renew "{\"lease_id\":\"$Ld\",\"increment\":5400}"
[ "$STATUS" -ge 500 ] || fail "a renew with PostgreSQL down answered $STATUS"
req PUT /v1/sys/leases/revoke "{\"lease_id\":\"$Ld\"}"
[ "$STATUS" -ge 500 ] || fail "a revoke with PostgreSQL down answered $STATUS"
req PUT /v1/sys/leases/lookup "{\"lease_id\":\"$Ld\"}"
expect 200
[ "$(j 'd["data"]["expire_time"]')" = "$exp0" ] || fail "a failed renew moved the lease"
[ "$(j 'd["data"]["failures"]')" = 1 ] || fail "the failed revocation was not counted"
curl -s -o metrics.txt -H @root.hdr.secret "$A/v1/sys/metrics?format=prometheus"
grep -Eq '^rekey_leases [1-9]' metrics.txt && grep -q '^rekey_leases_irrevocable 0' metrics.txt ||
  { grep rekey_leases metrics.txt; fail "the lease gauges are missing"; }
"$SVC" start postgres pg "$PGPORT" >/dev/null
[ "$(exists "$Ud")" = 1 ] || fail "the login went while PostgreSQL was down"
req PUT /v1/sys/leases/revoke "{\"lease_id\":\"$Ld\"}"
expect 204
[ "$(exists "$Ud")" = 0 ] || fail "the revoke after PostgreSQL came back left the login"

# ---- hvac reads creds and renews ----
VAULT_ADDR=$A ROOT_TOKEN=$ROOT $PY - >hvac.out.secret 2>hvac.err <<'EOF' || { cat hvac.err; fail "hvac"; }
import os, hvac
c = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["ROOT_TOKEN"])
r = c.secrets.database.generate_credentials(name="app")
assert r["lease_id"].startswith("database/creds/app/"), r
assert r["data"]["username"].startswith("v-")
n = c.sys.renew_lease(lease_id=r["lease_id"], increment=1800)
assert 1790 <= n["lease_duration"] <= 1800, n
l = c.sys.read_lease(lease_id=r["lease_id"])
assert l["data"]["id"] == r["lease_id"]
c.sys.revoke_lease(lease_id=r["lease_id"])
print(r["data"]["password"])
EOF
PWS+=("$(cat hvac.out.secret)")
stop_server

# ---- no password anywhere ----
assert_no_password
echo "ok"
