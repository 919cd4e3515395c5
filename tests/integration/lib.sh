# Shared helpers for integration tests; sourced by each t-*.sh (run inside a fresh temp dir).
set -euo pipefail
: "${REKEY:?}"
export REKEY_LOG=${REKEY_LOG:-info}
unset REKEY_ADDR VAULT_ADDR REKEY_TOKEN VAULT_TOKEN REKEY_CONFIG REKEY_KEY_FILE REKEY_STORE

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_exit CODE cmd…: runs cmd, output to ./last.out/./last.err, fails unless it exits CODE.
expect_exit() {
  local want=$1; shift
  set +e
  "$@" >last.out 2>last.err
  local got=$?
  set -e
  if [ "$got" -ne "$want" ]; then
    echo "--- stdout"; cat last.out; echo "--- stderr"; cat last.err
    fail "expected exit $want, got $got: $*"
  fi
}

# expect_in FILE TEXT: fails unless FILE contains TEXT (fixed string).
expect_in() { grep -qF -- "$2" "$1" || { cat "$1"; fail "'$2' not found in $1"; }; }
expect_not_in() { ! grep -qF -- "$2" "$1" || fail "'$2' unexpectedly found in $1"; }

# The store backend under test: REKEY_TEST_BACKEND=sqlite (the default) or log. Every store a
# test makes goes through store_loc (a REKEY_STORE location) or store_yaml (a config's store:).
# `rekey server -dev` always makes an SQLite store of its own (in dev mode no store is chosen).
TEST_BACKEND=${REKEY_TEST_BACKEND:-sqlite}
case "$TEST_BACKEND" in
  sqlite | log) ;;
  *) fail "REKEY_TEST_BACKEND must be sqlite or log, not '$TEST_BACKEND'" ;;
esac
# store_loc FILE: the store location (for REKEY_STORE) of store file FILE in the backend.
store_loc() { printf '%s:%s\n' "$TEST_BACKEND" "$1"; }
# store_yaml FILE: a config's store section (one line) for store file FILE in the backend.
store_yaml() { printf 'store: { backend: %s, path: %s }\n' "$TEST_BACKEND" "$1"; }
# sqlite_only REASON: succeeds on the sqlite backend; on another prints "skip (sqlite only):
# REASON" and fails, for `if sqlite_only …; then` around a part that only means something there.
sqlite_only() {
  [ "$TEST_BACKEND" = sqlite ] && return 0
  echo "skip (sqlite only): $*"
  return 1
}

# A fresh store initialised with a key file; sets REKEY_STORE and REKEY_KEY_FILE.
init_store() {
  REKEY_STORE=$(store_loc "$PWD/store.db")
  export REKEY_STORE
  export REKEY_KEY_FILE="$PWD/root.key"
  "$REKEY" operator init -key-file="$REKEY_KEY_FILE" >/dev/null
}

# assert_no_plaintext VALUE…: no file under the current directory (the store, its WAL, logs,
# audit files; the log backend's file with its dead records) holds any VALUE. Files a test writes on purpose with values end in .secret.
# (grep's options go before "--": after it they would be file names, grep would exit 2 and,
# under pipefail, the check would never fail.)
assert_no_plaintext() {
  local v hits
  for v in "$@"; do
    hits=$(grep -rlaF --exclude=last.out --exclude='*.secret' -- "$v" . 2>/dev/null || true)
    if [ -n "$hits" ]; then
      echo "$hits"
      fail "a secret value was found in plaintext on disk"
    fi
  done
}

# check_rotation_invariants PATH FIELD TARGET_FILE PREFIX: exactly one current version, no
# rotation left in flight, and the target file (PREFIX + value) agrees with the current value.
check_rotation_invariants() {
  local path=$1 field=$2 target=$3 prefix=${4:-}
  "$REKEY" kv metadata -format=json "$path" >meta.json 2>meta.err || { cat meta.err; fail "metadata of $path"; }
  /usr/bin/python3 - "$path" <<'PY' || fail "invariants of $1 do not hold"
import json, sys
m = json.load(open("meta.json"))
vers = m["versions"]
cur = [v for v in vers.values() if v["stage"] == "current"]
pend = [v for v in vers.values() if v["stage"] == "pending"]
assert len(cur) == 1, "expected exactly one current version, got %d" % len(cur)
assert not pend, "a pending version was left behind: %r" % pend
assert int(cur[0]["version"]) == m["current_version"], "current_version disagrees"
nums = sorted(int(k) for k in vers)
assert nums == list(range(nums[0], nums[-1] + 1)), "a version was lost: %r" % nums
PY
  local val
  val=$("$REKEY" kv get -field="$field" "$path" 2>/dev/null) || fail "cannot read $path"
  [ "$(cat "$target")" = "$prefix$val" ] || fail "target file $target does not hold the current value"
  "$REKEY" status --json >status.json 2>/dev/null || true
  /usr/bin/python3 - "$path" <<'PY' || fail "rotation of $1 still in flight"
import json, sys
for s in json.load(open("status.json")):
    if s["path"] == sys.argv[1]:
        assert s["state"] not in ("rotating",), "state is %s" % s["state"]
PY
}

# ---- HTTP tests: a server on a free port, requests with curl, answers checked with Python ----
# A test sets A (http://127.0.0.1:PORT) and SERVER_PID (the server's pid) and writes its token
# header to root.hdr.secret ("X-Vault-Token: …"); a test may define its own variant of any of these.
PY=/usr/bin/python3
# free_port: a TCP port free on 127.0.0.1 now.
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# free_ports N: the first of N consecutive TCP ports free on 127.0.0.1 now, below the kernel's
# ephemeral range (20000-31999), so that outgoing connections do not take them meanwhile.
free_ports() {
  $PY - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(20000, 32000 - n)
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    break
else:
    sys.exit("no %d free consecutive ports" % n)
PY
}
# hdr_for TOKEN FILE: the token's header into FILE (name it *.secret).
hdr_for() { printf 'X-Vault-Token: %s\n' "$1" >"$2"; }
# req METHOD PATH [BODY [HEADER-FILE [CURL-ARG…]]]: answer in ./resp.json, its headers in
# ./resp.hdr, status in $STATUS. HEADER-FILE defaults to root.hdr.secret; "" sends no token.
# The path goes as written (--path-as-is: no dot segments removed).
req() {
  local method=$1 path=$2 body=${3-} hdr=${4-root.hdr.secret}
  shift 2
  [ $# -gt 0 ] && shift
  [ $# -gt 0 ] && shift
  local args=(-s -o resp.json -D resp.hdr -w '%{http_code}' -X "$method" --path-as-is)
  [ -n "$hdr" ] && args+=(-H "@$hdr")
  [ -n "$body" ] && args+=(--data-binary "$body")
  STATUS=$(curl "${args[@]}" "$@" "$A$path")
}
# expect CODE: the last answer's status is CODE.
expect() { [ "$STATUS" = "$1" ] || { cat resp.json; echo; fail "expected HTTP $1, got $STATUS"; }; }
# j EXPR: EXPR (Python, over d = the last answer's JSON) printed.
j() { $PY -c 'import json,sys; d = json.load(open("resp.json")); print(eval(sys.argv[1]))' "$1"; }
# jis EXPR VALUE: j EXPR prints VALUE.
jis() {
  local got
  got=$(j "$1") || { cat resp.json; fail "answer is not JSON"; }
  [ "$got" = "$2" ] || { cat resp.json; echo; fail "$1: expected '$2', got '$got'"; }
}
# wait_up: waits (10 s at most) until the server at $A answers; fails if SERVER_PID exits first.
wait_up() {
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "$A/v1/sys/health" && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { cat server.log; fail "the server exited"; }
    sleep 0.1
  done
  fail "the server did not come up"
}
# dev_server CONFIG: `rekey server -dev` with CONFIG on a free port, its log in server.log, a
# new root token in $ROOT and root.hdr.secret (given in the environment, which the server wipes;
# never on its command line); sets PORT, A and SERVER_PID, kills the server at
# exit, and returns once it answers.
dev_server() {
  ROOT="it-root-$$-$RANDOM$RANDOM"
  hdr_for "$ROOT" root.hdr.secret
  PORT=$(free_port)
  A="http://127.0.0.1:$PORT"
  REKEY_DEV_ROOT_TOKEN_ID=$ROOT "$REKEY" server -dev -config "$1" \
    -dev-listen-address "127.0.0.1:$PORT" >server.log 2>&1 &
  SERVER_PID=$!
  trap 'kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null || true' EXIT
  wait_up
}

# wait_log FILE TEXT SECONDS [PID]: waits until FILE (made if missing) holds TEXT; fails after
# SECONDS, or as soon as PID (if given) has exited without TEXT in FILE.
wait_log() {
  local i
  touch "$1"
  for ((i = 0; i < $3 * 10; i++)); do
    grep -qF -- "$2" "$1" && return 0
    [ -z "${4-}" ] || kill -0 "$4" 2>/dev/null || break
    sleep 0.1
  done
  grep -qF -- "$2" "$1" && return 0
  cat "$1"; fail "'$2' did not appear in $1 within $3 s"
}

# ---- `rekey run`: the test's daemon is $pid ----
# kill_run_at_exit: no daemon yet (pid=); never leave one behind when a check fails.
kill_run_at_exit() { pid=; trap '[ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null; true' EXIT; }
# start_run LOG: starts `rekey run` in the background, its output in LOG, its pid in $pid.
start_run() { "$REKEY" run >"$1" 2>&1 & pid=$!; }
# stop_run: SIGTERM to $pid; fails unless the daemon exits 0.
stop_run() { kill -TERM "$pid"; wait "$pid" || fail "rekey run did not exit 0"; pid=; }
# checked_secret_config PATH FORMAT SH: ./rekey.yaml (REKEY_CONFIG) on init_store's store: one
# generated secret PATH (FORMAT), auto every 3 s, tested by hook "check" running `sh -c SH`.
checked_secret_config() {
  cat >rekey.yaml <<YAML
version: 1
$(store_yaml store.db)
hooks:
  check:
    type: exec
    command: [sh, -c, "$3"]
    timeout: 5s
secrets:
  - path: $1
    kind: generated
    format: "$2"
    every: 3s
    auto: true
    test: [check]
YAML
  export REKEY_CONFIG=$PWD/rekey.yaml
}

# ---- `rekey server -config rekey.yaml` on a key-file store (./kf.db, ./kf.key) ----
# kf_init: initialises the store (REKEY_STORE exported); root token in $ROOT and root.hdr.secret,
# a free PORT and A.
kf_init() {
  KF_DIR=$PWD
  REKEY_STORE=$(store_loc "$KF_DIR/kf.db")
  export REKEY_STORE
  expect_exit 0 "$REKEY" operator init -key-file="$KF_DIR/kf.key"
  ROOT=$(sed -n 's/^Initial Root Token: //p' last.out)
  hdr_for "$ROOT" root.hdr.secret
  PORT=$(free_port)
  A="http://127.0.0.1:$PORT"
}
# kf_yaml: rekey.yaml's first lines after kf_init: version, the store, the server on $PORT.
kf_yaml() { printf 'version: 1\n%s\nserver:\n  listen: "127.0.0.1:%s"\n' "$(store_yaml kf.db)" "$PORT"; }
# kill_server_at_exit: no server yet (SERVER_PID=); kill the one running when the test exits.
kill_server_at_exit() {
  SERVER_PID=
  trap '[ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true' EXIT
}
# start_server [VAR=VALUE…]: the server of kf_init on rekey.yaml, the key file and VARs in its
# environment, log appended to server.log; sets SERVER_PID, returns once it answers.
start_server() {
  env "$@" REKEY_KEY_FILE="$KF_DIR/kf.key" "$REKEY" server -config "$KF_DIR/rekey.yaml" >>server.log 2>&1 &
  SERVER_PID=$!
  wait_up
}
# stop_server: SIGTERM to SERVER_PID and wait for it, whatever its exit status.
stop_server() {
  kill -TERM "$SERVER_PID"
  set +e; wait "$SERVER_PID"; set -e
  SERVER_PID=
}
# stop_server_clean [SECONDS]: SIGTERM; the server must exit 0 within SECONDS (5).
stop_server_clean() {
  local i limit=$((${1:-5} * 10))
  kill -TERM "$SERVER_PID"
  for ((i = 0; i < limit; i++)); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID"; cat server.log; fail "the server did not stop within ${1:-5} s"
  fi
  set +e; wait "$SERVER_PID"; local rc=$?; set -e
  SERVER_PID=
  [ "$rc" -eq 0 ] || { cat server.log; fail "server exit code $rc after SIGTERM, want 0"; }
}
# wait_server_log TEXT SECONDS: wait_log on server.log, giving up once the server has exited.
wait_server_log() { wait_log server.log "$1" "$2" "$SERVER_PID"; }
