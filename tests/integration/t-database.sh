#!/usr/bin/env bash
# kind database against a real PostgreSQL 15 on loopback (scripts/services starts and stops it,
# scram-sha-256 for TCP logins): a HELD LEASE entry rotates end to end (a new login per
# rotation, rendered into the consumer's env file through {{new.username}}/{{new.password}},
# proven by a fresh login; after grace the old login is refused and its open session is gone,
# also when it owns a table, which passes to the admin role); PostgreSQL down keeps the candidate
# pending and a later `rekey rotate` completes it; a role template (no every) loads, lints and is
# refused by `rekey rotate`; lint refuses every >= ttl. No password (nor the admin's) appears in
# any output of the test, in the store or in PostgreSQL's own log (log_statement=all).
. "$(dirname "$0")/lib.sh"
. "$REKEY_TOP/tests/integration/pg-lib.sh" # PostgreSQL on PGPORT; sql, login_as
PORT=$PGPORT
run() {
  expect_exit "$@"
  { echo "\$ ${*:2}"; cat last.out last.err; } >>outputs.log
}
field() { "$REKEY" kv get -field="$2" "$1"; }
# env_user / env_pw: the login the consumer's env file holds now.
env_user() { sed -n 's/^PGUSER=//p' app.env.secret; }
env_pw() { sed -n 's/^PGPASSWORD=//p' app.env.secret >"$1"; }
export REKEY_NOW=$(date +%s)
later() { REKEY_NOW=$((REKEY_NOW + 7200)); }

sql "CREATE ROLE app_rw NOLOGIN; GRANT CREATE ON SCHEMA public TO app_rw;"

cat >rekey.yaml <<YAML
version: 1
$(store_yaml store.db)
hooks:
  app-env:
    type: file
    path: $dir/app.env.secret
    template: "PGUSER={{new.username}}\nPGPASSWORD={{new.password}}\n"
    mode: "0600"
secrets:
  - path: database/creds/app
    kind: database
    connection: "host=127.0.0.1 port=$PORT dbname=postgres user=rekey_admin"
    admin_password_path: secret/pg/admin
    role: app
    ttl: 24h
    max_ttl: 48h
    creation_statements: |
      CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';
      GRANT app_rw TO "{{name}}";
    every: 12h
    auto: true
    grace: 1h
    reload: [app-env]
  - path: database/creds/readonly
    kind: database
    connection: "host=127.0.0.1 port=$PORT dbname=postgres user=rekey_admin"
    admin_password_path: secret/pg/admin
    ttl: 1h
    max_ttl: 4h
YAML
export REKEY_CONFIG=$dir/rekey.yaml
init_store
P=database/creds/app
run 0 "$REKEY" lint
run 0 "$REKEY" kv put secret/pg/admin password=- <admin.secret

# ---- a role template is never rotated by itself ----
run 3 "$REKEY" rotate database/creds/readonly
expect_in last.err "role template"

# ---- the first login: made, rendered, working ----
run 0 "$REKEY" rotate $P
U1=$(field $P username)
case $U1 in v-rekey-app-*) ;; *) fail "login name '$U1' is not v-rekey-app-…" ;; esac
[ ${#U1} -le 63 ] || fail "login name longer than 63 bytes"
[ "$(env_user)" = "$U1" ] || fail "the env file does not hold the new login"
env_pw p1.secret
[ "$(login_as "$U1" p1.secret)" = OK ] || fail "the issued login does not work"
[ "$(sql "SELECT rolvaliduntil IS NOT NULL FROM pg_roles WHERE rolname = '$U1'")" = t ] ||
  fail "the login has no expiry (VALID UNTIL)"
# SCRAM verifier on the server, no plaintext.
[ "$(sql "SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = '$U1'")" = "SCRAM-SHA-256\$" ] ||
  fail "the stored password is not a SCRAM verifier"
run 0 "$REKEY" status
expect_in last.out "expires"

# ---- the login owns a table and holds a session; a rotation, then finish after grace ----
login_as "$U1" p1.secret "CREATE TABLE owned_by_lease (x int)" >/dev/null
[ "$(sql "SELECT tableowner FROM pg_tables WHERE tablename = 'owned_by_lease'")" = "$U1" ] ||
  fail "the login could not create its table"
(umask 077 && printf '127.0.0.1:%s:*:%s:%s\n' "$PORT" "$U1" "$(cat p1.secret)" >hold.secret)
PGPASSFILE=$dir/hold.secret $PGBIN/psql -X -At -w \
  "host=127.0.0.1 port=$PORT dbname=postgres user=$U1" -c "SELECT pg_sleep(120)" >/dev/null 2>&1 &
holder=$!
for _ in $(seq 50); do
  [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE usename = '$U1'")" -ge 1 ] && break
  sleep 0.1
done
run 0 "$REKEY" rotate $P
U2=$(field $P username)
[ "$U2" != "$U1" ] || fail "the rotation kept the login name"
env_pw p2.secret
[ "$(env_user)" = "$U2" ] || fail "the env file does not hold the second login"
[ "$(login_as "$U2" p2.secret)" = OK ] || fail "the second login does not work"
[ "$(login_as "$U1" p1.secret)" = OK ] || fail "the old login stopped before its grace ended"
later
run 0 "$REKEY" recover
[ "$(login_as "$U1" p1.secret)" = REFUSED ] || fail "the old login still works after grace"
[ "$(sql "SELECT count(*) FROM pg_roles WHERE rolname = '$U1'")" = 0 ] || fail "the old login was not dropped"
[ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE usename = '$U1'")" = 0 ] || fail "the old login's session is still there"
wait $holder 2>/dev/null || true
[ "$(sql "SELECT tableowner FROM pg_tables WHERE tablename = 'owned_by_lease'")" = rekey_admin ] ||
  fail "the dropped login's table did not pass to the admin role"
[ "$(login_as "$U2" p2.secret)" = OK ] || fail "the current login stopped working"

# ---- PostgreSQL down: the candidate waits, then completes ----
"$SVC" stop postgres pg
run 3 "$REKEY" rotate $P
"$REKEY" status >status.out 2>&1 || true
cat status.out >>outputs.log
expect_in status.out "pending"
[ "$(field $P username)" = "$U2" ] || fail "current changed while PostgreSQL was down"
"$SVC" start postgres pg "$PORT"
run 0 "$REKEY" rotate $P
U3=$(field $P username)
[ "$U3" != "$U2" ] || fail "the pending candidate did not complete"
env_pw p3.secret
[ "$(login_as "$U3" p3.secret)" = OK ] || fail "the login made after PostgreSQL came back does not work"

# ---- lint refuses every >= ttl ----
sed 's/^    every: 12h$/    every: 24h/' rekey.yaml >bad.yaml
run 1 "$REKEY" -c "$dir/bad.yaml" lint
expect_in last.out "not shorter than ttl"

# ---- no password anywhere: outputs, store, PostgreSQL's log ----
for f in p1.secret p2.secret p3.secret admin.secret; do
  v=$(cat $f)
  ! grep -qaF -- "$v" outputs.log || fail "a password was printed ($f)"
  ! grep -qaF -- "$v" pg/pg/postgres.log || fail "PostgreSQL's log holds a password ($f)"
  assert_no_plaintext "$v"
done
echo ok
