# pg-lib.sh: what the tests on a real PostgreSQL share; sourced after lib.sh. Starts PostgreSQL
# 15 (scripts/services) on a free port, PGPORT, in ./pg, with the admin's password in
# ./admin.secret (PG_ADMIN_PASSWORD_FILE), and stops it at exit with the server started by
# start_server. sql runs a statement as the cluster's superuser over the socket; login_as tries a
# login. The HTTP helpers here keep answers in ./resp.secret, not resp.json: they hold passwords.
PGBIN=/usr/lib/postgresql/15/bin
[ -x $PGBIN/postgres ] || fail "PostgreSQL 15 is not installed (scripts/deps)"
SVC=$REKEY_TOP/scripts/services
dir=$PWD
PGPORT=$(free_port)
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null; "$SVC" stop postgres "$dir/pg" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
export PG_ADMIN_PASSWORD_FILE=$dir/admin.secret
"$SVC" start postgres pg "$PGPORT" >/dev/null

sql() { $PGBIN/psql -X -q -At -h "$dir/pg/pg/run" -p "$PGPORT" -U rekey_admin -d postgres -c "$1"; }
# login_as USER PWFILE [SQL]: a fresh TCP login through a 0600 pgpass file; OK / REFUSED / DOWN.
login_as() {
  local out
  (umask 077 && printf '127.0.0.1:%s:*:%s:%s\n' "$PGPORT" "$1" "$(cat "$2")" >pgpass.secret)
  if out=$(PGPASSFILE=$dir/pgpass.secret $PGBIN/psql -X -At -w \
    "host=127.0.0.1 port=$PGPORT dbname=postgres user=$1 connect_timeout=5" -c "${3:-SELECT 1}" 2>&1); then
    echo OK
  elif grep -q "authentication failed\|not permitted to log in\|does not exist\|expired" <<<"$out"; then
    echo REFUSED
  else
    echo "DOWN: $out" | head -1
  fi
  rm -f pgpass.secret
}
req() {
  local method=$1 path=$2 body=${3-}
  local args=(-s -o resp.secret -w '%{http_code}' -X "$method" -H @root.hdr.secret)
  [ -n "$body" ] && args+=(--data-binary "$body")
  STATUS=$(curl "${args[@]}" "$A$path")
}
expect() { [ "$STATUS" = "$1" ] || { cat resp.secret; echo; fail "expected HTTP $1, got $STATUS"; }; }
j() { $PY -c 'import json,sys; d = json.load(open("resp.secret")); print(eval(sys.argv[1]))' "$1"; }
start_server() {
  REKEY_KEY_FILE="$dir/kf.key" "$REKEY" server -config "$dir/rekey.yaml" >>server.log 2>&1 &
  SERVER_PID=$!
  wait_up
}
stop_server() {
  kill -TERM "$SERVER_PID"
  for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
# PG_CONN: a config's `connection:` to this cluster as its admin.
PG_CONN="host=127.0.0.1 port=$PGPORT dbname=postgres user=rekey_admin"
# creds ROLE: issues a login; sets U (user) and L (lease id), writes the password to $U.pw.secret
# and adds it to PWS (the passwords assert_no_password looks for).
PWS=()
creds() {
  req GET "/v1/database/creds/$1"
  expect 200
  U=$(j 'd["data"]["username"]'); L=$(j 'd["lease_id"]')
  j 'd["data"]["password"]' >"$U.pw.secret"
  PWS+=("$(cat "$U.pw.secret")")
}
# exists USER: 1 if PostgreSQL has the role USER, else 0.
exists() { sql "SELECT count(*) FROM pg_roles WHERE rolname = '$1'"; }
# assert_no_password: no password of PWS, nor the admin's, in server.log, PostgreSQL's log or any
# file here (assert_no_plaintext).
assert_no_password() {
  local p
  PWS+=("$(cat admin.secret)")
  for p in "${PWS[@]}"; do
    [ -n "$p" ] || continue
    expect_not_in server.log "$p"
    ! grep -qaF -- "$p" pg/pg/postgres.log || fail "a password is in PostgreSQL's log"
  done
  assert_no_plaintext "${PWS[@]}"
}
