#!/usr/bin/env bash
# kind redis-password against real redis-servers on loopback (scripts/services starts and stops
# them): rotation with zero downtime (during grace both passwords authenticate and a connection
# opened with the old one keeps working; after finish the old one gets WRONGPASS); persist
# acl-save and config-rewrite survive a restart of Redis; a kill -9 at each step boundary, then
# `rekey recover`, leaves a password that works and matches `current`; a node that refuses
# (wrong admin password) undoes the node that took the candidate, `current` unchanged; Redis
# down keeps the candidate pending (status says so) and a later `rekey rotate PATH` completes
# it. No password appears in any output, log or file of the test (the rendered consumer file,
# named *.secret, holds one on purpose).
. "$(dirname "$0")/lib.sh"
command -v redis-server >/dev/null || fail "redis-server is not installed (scripts/deps)"
SVC=$REKEY_TOP/scripts/services
dir=$PWD
PA=$(free_port) PB=$(free_port) PC=$(free_port)
trap 'for n in a b c; do "$SVC" stop redis "$dir/$n" 2>/dev/null || true; done' EXIT

# A tiny RESP client. Passwords come from the environment (named by the caller), never argv:
# an argument's @NAME@ is replaced by the value of $NAME. Prints OK, PONG, the first word of an
# error (WRONGPASS, NOPERM…) or DOWN; never a value.
cat >resp.py <<'PY'
import os, re, socket, sys, time
def conn(port):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
    return s, s.makefile("rb")
def send(s, args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = re.sub(r"@([A-Z0-9_]+)@", lambda m: os.environ[m.group(1)], a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    s.sendall(out)
def read(f):
    line = f.readline()
    t, rest = line[:1], line[1:-2]
    if t == b"+": return rest.decode()
    if t == b"-": return Exception(rest.decode().split(" ")[0])
    if t == b":": return int(rest)
    if t == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2]
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [read(f) for _ in range(n)]
    raise SystemExit("bad reply")
def show(r):
    print(r.args[0] if isinstance(r, Exception) else r if isinstance(r, str) else "OK")
port, mode = sys.argv[1], sys.argv[2]
try:
    s, f = conn(port)
except OSError:
    print("DOWN"); sys.exit(0)
if mode == "auth":                      # auth USER PWVAR: AUTH, then GET (a consumer's call)
    send(s, ["AUTH", sys.argv[3], "@%s@" % sys.argv[4]]); r = read(f)
    if isinstance(r, Exception): show(r); sys.exit(0)
    send(s, ["GET", "cache:probe"]); r = read(f); show(r if isinstance(r, Exception) else "OK")
elif mode == "as":                      # as USER PWVAR|- CMD…: a command as USER
    if sys.argv[4] != "-":
        send(s, ["AUTH", sys.argv[3], "@%s@" % sys.argv[4]]); r = read(f)
        if isinstance(r, Exception): show(r); sys.exit(1)
    send(s, sys.argv[5:]); r = read(f); show(r); sys.exit(1 if isinstance(r, Exception) else 0)
elif mode == "hold":                    # hold USER PWVAR DIR: stays connected until DIR/go
    d = sys.argv[5]
    send(s, ["AUTH", sys.argv[3], "@%s@" % sys.argv[4]]); r = read(f)
    open(d + "/ready.tmp", "w").write("OK" if r == "OK" else "FAIL"); os.rename(d + "/ready.tmp", d + "/ready")
    for _ in range(600):
        if os.path.exists(d + "/go"): break
        time.sleep(0.1)
    send(s, ["SET", "cache:held", "1"]); a = read(f)
    send(s, ["GET", "cache:held"]); b = read(f)
    res = "OK" if a == "OK" and b == b"1" else "FAIL %s %s" % (a, b)
    open(d + "/result.tmp", "w").write(res); os.rename(d + "/result.tmp", d + "/result")
PY
rcli() { $PY "$dir/resp.py" "$@"; }
# auth_is PORT USER PWVAR WANT: a fresh connection authenticating as USER gets WANT.
auth_is() {
  local got
  got=$(rcli "$1" auth "$2" "$3")
  [ "$got" = "$4" ] || fail "AUTH as $2 on :$1 with \$$3: expected $4, got $got"
}
# admin PORT CMD…: a command as rekey's admin user (password $APW).
admin() { local p=$1; shift; rcli "$p" as rekey APW "$@" >/dev/null || fail "admin command on :$p: $*"; }
# The clock is the test build's fake one (REKEY_NOW): `later` moves it past the grace (1h).
export REKEY_NOW=$(date +%s)
later() { REKEY_NOW=$((REKEY_NOW + 7200)); }
newpw() { $PY -c 'import secrets; print("pw-" + secrets.token_hex(12))'; }

# Every command's output goes to outputs.log, searched for every password at the end.
run() {
  expect_exit "$@"
  { echo "\$ ${*:2}"; cat last.out last.err; } >>outputs.log
}
# current PATH: the current password (kv get exists to print it; not logged).
current() { "$REKEY" kv get -field=password "$1"; }

export APW=$(newpw) L0=$(newpw) W0=$(newpw) APW_C=$(newpw)

# ---- node A: an ACL file, persist: acl-save ----
mkdir -p a && : >a/users.acl
"$SVC" start redis a "$PA" --aclfile "$dir/a/users.acl"
rcli "$PA" as default - ACL SETUSER rekey on '>@APW@' '~*' '&*' +@all >/dev/null
# litellm may GET and SET its cache keys only: no +ping (the test step accepts NOPERM to PING).
rcli "$PA" as default - ACL SETUSER litellm on '>@L0@' '~cache:*' +get +set >/dev/null
admin "$PA" ACL SETUSER default off
admin "$PA" ACL SAVE

cat >rekey.yaml <<YAML
version: 1
$(store_yaml store.db)
hooks:
  redis-env:
    type: file
    path: $dir/redis.env.secret
    template: "REDIS_PASSWORD={{new}}\n"
secrets:
  - path: secret/app/redis
    kind: redis-password
    address: "127.0.0.1:$PA"
    username: litellm
    admin_username: rekey
    admin_password_path: secret/redis/admin
    persist: acl-save
    timeout: 2s
    every: 30d
    grace: 1h
    reload: [redis-env]
  - path: secret/app/redis-noadmin
    kind: redis-password
    address: "127.0.0.1:$PA"
    username: litellm
    admin_username: rekey
    admin_password_path: secret/redis/missing
    persist: acl-save
    every: 30d
  - path: secret/app/redis-pair
    kind: redis-password
    addresses: ["127.0.0.1:$PB", "127.0.0.1:$PC"]
    username: worker
    admin_username: rekey
    admin_password_path: secret/redis/admin
    persist: config-rewrite
    timeout: 2s
    every: 30d
    grace: 1h
YAML
export REKEY_CONFIG=$dir/rekey.yaml
init_store
P=secret/app/redis
run 0 "$REKEY" lint
expect_not_in last.out "redis"
# rekey's admin password and the password litellm has now, put into rekey from stdin.
printf '%s' "$APW" | run 0 "$REKEY" kv put secret/redis/admin password=-
printf '%s' "$L0" | run 0 "$REKEY" kv put $P password=-
auth_is "$PA" litellm L0 OK

# ---- a rotation: both passwords work during grace, an open connection keeps working ----
mkdir hold
rcli "$PA" hold litellm L0 "$dir/hold" &
holder=$!
for _ in $(seq 300); do [ -e hold/ready ] && break; sleep 0.1; done
[ "$(cat hold/ready)" = OK ] || fail "the held connection did not authenticate"
run 0 "$REKEY" rotate $P
expect_in last.out "v1 -> v2"
export N1=$(current $P)
[ "$N1" != "$L0" ] || fail "the password did not change"
[ ${#N1} -eq 64 ] || fail "the default format is 64 hex characters"
[ "$(cat redis.env.secret)" = "REDIS_PASSWORD=$N1" ] || fail "the reload hook did not render the new password"
auth_is "$PA" litellm N1 OK
auth_is "$PA" litellm L0 OK
touch hold/go
wait $holder
[ "$(cat hold/result)" = OK ] || fail "the connection opened with the old password broke: $(cat hold/result)"
# persist: acl-save: a restart keeps both while the grace lasts.
"$SVC" stop redis a
"$SVC" start redis a "$PA" --aclfile "$dir/a/users.acl"
auth_is "$PA" litellm N1 OK
auth_is "$PA" litellm L0 OK
run 0 "$REKEY" status
expect_not_in last.out "pending"

# ---- finish after grace: the old password is refused, also after a restart ----
later
run 0 "$REKEY" recover
expect_in last.out "finished"
auth_is "$PA" litellm L0 WRONGPASS
auth_is "$PA" litellm N1 OK
"$SVC" stop redis a
"$SVC" start redis a "$PA" --aclfile "$dir/a/users.acl"
auth_is "$PA" litellm L0 WRONGPASS
auth_is "$PA" litellm N1 OK
check_rotation_invariants $P password redis.env.secret "REDIS_PASSWORD="

# ---- kill -9 at each step boundary, then recover ----
for step in create apply test promote reload; do
  export PREV=$(current $P)
  set +e
  REKEY_CRASH_AT=$step "$REKEY" rotate $P >crash.out 2>&1
  rc=$?
  set -e
  cat crash.out >>outputs.log
  [ $rc -eq 137 ] || { cat crash.out; fail "REKEY_CRASH_AT=$step: expected SIGKILL (137), got $rc"; }
  run 0 "$REKEY" recover
  check_rotation_invariants $P password redis.env.secret "REDIS_PASSWORD="
  export CUR=$(current $P)
  [ "$CUR" != "$PREV" ] || fail "REKEY_CRASH_AT=$step: recover did not complete the rotation"
  auth_is "$PA" litellm CUR OK
  auth_is "$PA" litellm PREV OK
  later
  run 0 "$REKEY" recover
  auth_is "$PA" litellm PREV WRONGPASS
  auth_is "$PA" litellm CUR OK
done
# ... and in the finish step.
export PREV=$(current $P)
run 0 "$REKEY" rotate $P
export CUR=$(current $P)
later
set +e
REKEY_CRASH_AT=finish "$REKEY" recover >crash.out 2>&1
rc=$?
set -e
cat crash.out >>outputs.log
[ $rc -eq 137 ] || { cat crash.out; fail "REKEY_CRASH_AT=finish: expected SIGKILL (137), got $rc"; }
run 0 "$REKEY" recover
auth_is "$PA" litellm PREV WRONGPASS
auth_is "$PA" litellm CUR OK
check_rotation_invariants $P password redis.env.secret "REDIS_PASSWORD="

# ---- Redis down: the candidate stays pending; a later rotate completes it ----
"$SVC" stop redis a
export PREV=$(current $P)
run 3 "$REKEY" rotate $P
expect_in last.err "target unavailable"
expect_in last.err "stays pending"
expect_in last.err "cannot connect"
run 0 "$REKEY" status
expect_in last.out "pending"
expect_in last.out "target unavailable"
run 0 "$REKEY" recover
expect_in last.out "pending"
[ "$(current $P)" = "$PREV" ] || fail "current changed while Redis was down"
"$SVC" start redis a "$PA" --aclfile "$dir/a/users.acl"
auth_is "$PA" litellm PREV OK
run 0 "$REKEY" rotate $P
export CUR=$(current $P)
[ "$CUR" != "$PREV" ] || fail "the pending candidate was not promoted"
auth_is "$PA" litellm CUR OK
auth_is "$PA" litellm PREV OK
run 0 "$REKEY" status
expect_not_in last.out "pending"
check_rotation_invariants $P password redis.env.secret "REDIS_PASSWORD="
"$REKEY" kv metadata -format=json $P >meta.json
$PY -c 'import json,sys; m=json.load(open("meta.json")); assert max(int(v) for v in m["versions"]) == m["current_version"], "a second candidate was made"' ||
  fail "the pending candidate was not the one promoted"

# ---- rekey's admin password missing from rekey: refused, with where to put it; A unchanged ----
run 3 "$REKEY" rotate secret/app/redis-noadmin
expect_in last.err "rekey kv put secret/redis/missing password=-"
expect_in last.err "rolled back"
export NOADMIN=$("$REKEY" kv get -version=1 -field=password secret/app/redis-noadmin)
auth_is "$PA" litellm NOADMIN WRONGPASS
auth_is "$PA" litellm CUR OK

# ---- two nodes; the second refuses: the first is undone too, current unchanged ----
Q=secret/app/redis-pair
for n in b c; do
  port=$PB
  [ $n = c ] && port=$PC
  "$SVC" start redis $n "$port"
  rcli "$port" as default - ACL SETUSER worker on '>@W0@' '~*' +@all >/dev/null
done
# C's admin has another password than the one in rekey: C refuses the change (WRONGPASS).
rcli "$PB" as default - ACL SETUSER rekey on '>@APW@' '~*' '&*' +@all >/dev/null
rcli "$PC" as default - ACL SETUSER rekey on '>@APW_C@' '~*' '&*' +@all >/dev/null
printf '%s' "$W0" | run 0 "$REKEY" kv put $Q password=-
run 3 "$REKEY" rotate $Q
expect_in last.err "rolled back"
expect_in last.err "127.0.0.1:$PC"
expect_in last.err "WRONGPASS"
[ "$(current $Q)" = "$W0" ] || fail "current changed although a node refused"
export REFUSED=$("$REKEY" kv get -version=2 -field=password $Q)
auth_is "$PB" worker REFUSED WRONGPASS
auth_is "$PC" worker REFUSED WRONGPASS
auth_is "$PB" worker W0 OK
auth_is "$PC" worker W0 OK
run 1 "$REKEY" status
expect_in last.out "failed"

# C's admin gets the right password: both nodes change together, and lose W0 together.
rcli "$PC" as rekey APW_C ACL SETUSER rekey '>@APW@' >/dev/null
run 0 "$REKEY" rotate $Q
export WN=$(current $Q)
for port in $PB $PC; do
  auth_is "$port" worker WN OK
  auth_is "$port" worker W0 OK
done
later
run 0 "$REKEY" recover
for port in $PB $PC; do
  auth_is "$port" worker WN OK
  auth_is "$port" worker W0 WRONGPASS
done
# persist: config-rewrite: C restarts from its rewritten redis.conf.
"$SVC" stop redis c
"$SVC" start redis c "$PC"
auth_is "$PC" worker WN OK
auth_is "$PC" worker W0 WRONGPASS
grep -q '^user worker' c/redis.conf || fail "CONFIG REWRITE did not write the user into redis.conf"

# ---- no password anywhere: outputs, rekey's store and audit, the Redis folders and logs ----
vals=("$APW" "$APW_C" "$L0" "$W0" "$REFUSED" "$NOADMIN")
for path in $P $Q; do
  n=$("$REKEY" kv metadata -format=json $path | $PY -c 'import json,sys; print(json.load(sys.stdin)["current_version"])')
  for v in $(seq 1 "$n"); do
    vals+=("$("$REKEY" kv get -version="$v" -field=password $path 2>/dev/null || true)")
  done
done
[ ${#vals[@]} -gt 12 ] || fail "too few values collected"
for v in "${vals[@]}"; do
  [ -n "$v" ] || continue
  ! grep -qF -- "$v" outputs.log || fail "a password was printed by a command"
done
rm -f last.out
assert_no_plaintext "${vals[@]}"
echo ok
