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
