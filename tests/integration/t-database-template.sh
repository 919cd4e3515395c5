#!/usr/bin/env bash
# A role template of the YAML (a `kind: database` entry, its role named by `role` or the path's
# last segment) through Vault's API on a `rekey server` against a real PostgreSQL 15: the admin
# password read from the KV store (admin_password_path), database/creds/ROLE issues a working login
# with a lease of the entry's ttl, renew is capped at its max_ttl, revoke drops the login, a 3 s
# lease expires by itself, a restart keeps the lease and `rekey lease renew|revoke` in local mode
# act on it (the lease manager finds the entry again), revoking a token revokes its leases (and
# only its), a kill -9 after CREATE ROLE and before the lease's confirmation leaves no orphan login
# after the next start, the API cannot redefine the role (409). No password in the server's log,
# the store or PostgreSQL's log.
. "$REKEY_TOP/tests/integration/lib.sh"
. "$REKEY_TOP/tests/integration/pg-lib.sh"

kf_init
cat >rekey.yaml <<EOF
$(kf_yaml)
secrets:
  - path: database/creds/litellm-readonly
    kind: database
    connection: "$PG_CONN"
    admin_password_path: secret/pg/admin
    ttl: 1h
    max_ttl: 2h
    creation_statements: |
      CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';
      GRANT app_ro TO "{{name}}";
  - path: database/creds/blink
    kind: database
    connection: "$PG_CONN"
    admin_password_path: secret/pg/admin
    role: short-lived
    ttl: 3s
    max_ttl: 1m
EOF
: >server.log
start_server
sql "CREATE ROLE app_ro NOLOGIN"

# ---- no admin password in the store yet: refused, nothing made ----
n0=$(sql "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'")
req GET /v1/database/creds/litellm-readonly
[ "$STATUS" -ge 400 ] || fail "issued without an admin password ($STATUS)"
[ "$(sql "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'")" = "$n0" ] || fail "a login was left"

# ---- the admin password into the KV store, from a file ----
$PY -c 'import json; print(json.dumps({"data": {"password": open("admin.secret").read().strip()}}))' >kv.json.secret
req PUT /v1/secret/data/pg/admin @kv.json.secret
expect 200

# ---- the API cannot redefine the configuration's role ----
req PUT /v1/database/roles/litellm-readonly '{"db_name":"pg"}'
expect 409
expect_in resp.secret "inventory"

# ---- creds: a working login with the entry's statements and ttl ----
creds litellm-readonly
U1=$U L1=$L
case $L1 in database/creds/litellm-readonly/*) ;; *) fail "lease id $L1" ;; esac
d=$(j 'd["lease_duration"]')
[ "$d" -ge 3590 ] && [ "$d" -le 3600 ] && [ "$(j 'd["renewable"]')" = True ] || fail "lease shape ($d)"
[ "$(login_as "$U1" "$U1.pw.secret")" = OK ] || fail "the issued login does not work"
[ "$(sql "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = '$U1'")" = 1 ] ||
  fail "the entry's creation statements did not all run"
req PUT /v1/sys/leases/lookup "{\"lease_id\":\"$L1\"}"
expect 200
[ "$(j 'd["data"]["db_name"]')" = database/creds/litellm-readonly ] || fail "the lease does not name the entry"

# ---- renew: up to max_ttl (2h) and no further ----
req PUT /v1/sys/leases/renew "{\"lease_id\":\"$L1\",\"increment\":5400}"
expect 200
d1=$(j 'd["lease_duration"]')
[ "$d1" -ge 5390 ] && [ "$d1" -le 5400 ] || fail "renew by 1.5h gave $d1"
req PUT /v1/sys/leases/renew "{\"lease_id\":\"$L1\",\"increment\":\"10h\"}"
expect 200
d2=$(j 'd["lease_duration"]')
[ "$d2" -le 7200 ] && [ "$d2" -ge 7180 ] || fail "renew past max_ttl gave $d2 (max 7200)"
[ "$(sql "SELECT rolvaliduntil > now() + interval '1.9 hours' FROM pg_roles WHERE rolname = '$U1'")" = t ] ||
  fail "the login's VALID UNTIL did not move"

# ---- revoke drops the login ----
req PUT /v1/sys/leases/revoke "{\"lease_id\":\"$L1\"}"
expect 204
[ "$(exists "$U1")" = 0 ] || fail "revoke left the login"
[ "$(login_as "$U1" "$U1.pw.secret")" = REFUSED ] || fail "the revoked login still works"

# ---- a role named by `role` (not the path), 3 s: expires by itself ----
creds short-lived
Us=$U
case $L in database/creds/short-lived/*) ;; *) fail "lease id $L" ;; esac
for _ in $(seq 100); do [ "$(exists "$Us")" = 0 ] && break; sleep 0.1; done
[ "$(exists "$Us")" = 0 ] || { cat server.log; fail "the 3 s lease of the template was not revoked on expiry"; }

# ---- a restart keeps the lease; revoke afterwards still drops the login ----
creds litellm-readonly
Ur=$U Lr=$L
stop_server
start_server
req PUT /v1/sys/leases/lookup "{\"lease_id\":\"$Lr\"}"
expect 200
[ "$(login_as "$Ur" "$Ur.pw.secret")" = OK ] || fail "the login did not survive the restart"
# ---- the CLI in local mode renews and revokes a YAML role's lease ----
stop_server
export REKEY_KEY_FILE=$dir/kf.key REKEY_CONFIG=$dir/rekey.yaml
expect_exit 0 "$REKEY" lease renew -increment=90m "$Lr"
[ "$(sql "SELECT rolvaliduntil > now() + interval '1.4 hours' FROM pg_roles WHERE rolname = '$Ur'")" = t ] ||
  fail "rekey lease renew (local) did not move the login's VALID UNTIL"
expect_exit 0 "$REKEY" lease revoke "$Lr"
[ "$(exists "$Ur")" = 0 ] || fail "rekey lease revoke (local) left the login"
expect_exit 3 "$REKEY" lease lookup "$Lr"
unset REKEY_KEY_FILE REKEY_CONFIG
start_server

# ---- revoking a token revokes the leases issued to it ----
req POST /v1/auth/token/create '{"policies":["root"],"ttl":"1h"}'
expect 200
CHILD=$(j 'd["auth"]["client_token"]')
printf 'X-Vault-Token: %s\n' "$CHILD" >child.hdr.secret
STATUS=$(curl -s -o resp.secret -w '%{http_code}' -H @child.hdr.secret "$A/v1/database/creds/litellm-readonly")
expect 200
Ut=$(j 'd["data"]["username"]')
creds litellm-readonly
Uk=$U # issued to root: stays
[ "$(exists "$Ut")" = 1 ] || fail "the child token's login was not made"
printf '{"token":"%s"}' "$CHILD" >revoke.json.secret
req POST /v1/auth/token/revoke @revoke.json.secret
expect 204
for _ in $(seq 50); do [ "$(exists "$Ut")" = 0 ] && break; sleep 0.1; done
[ "$(exists "$Ut")" = 0 ] || { cat server.log; fail "revoking the token left its lease's login"; }
[ "$(exists "$Uk")" = 1 ] || fail "revoking a token dropped another token's login"

# ---- kill -9 after CREATE ROLE, before the lease is confirmed: revoked at the next start ----
stop_server
vcount() { sql "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'"; }
n0=$(vcount)
export REKEY_CRASH_AT=db-created
start_server
unset REKEY_CRASH_AT
STATUS=$(curl -s -o resp.secret -w '%{http_code}' -H @root.hdr.secret "$A/v1/database/creds/litellm-readonly") || true
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
[ "$(vcount)" = $((n0 + 1)) ] || fail "the crash point after CREATE ROLE was not reached ($(vcount) logins, $n0 before)"
start_server
for _ in $(seq 50); do [ "$(vcount)" = "$n0" ] && break; sleep 0.1; done
[ "$(vcount)" = "$n0" ] || { cat server.log; fail "the login made before the crash is an orphan after recovery"; }
grep -q "unconfirmed: revoked now" server.log || fail "the recovery did not say what it revoked"
stop_server

# ---- no password anywhere ----
assert_no_password
echo "ok"
