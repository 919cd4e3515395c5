#!/usr/bin/env bash
# Runs every tests/integration/t-*.sh against the binary in $REKEY, each in its own temporary
# directory, and prints "integration: N passed, N failed". A test passes when it exits 0.
# REKEY_TEST_BACKEND (sqlite, the default, or log) picks the store backend the tests use; a part
# of a test that only means something on SQLite prints "skip (sqlite only): reason", shown here.
# Usage: REKEY=build/src/cli/rekey [REKEY_TEST_BACKEND=log] [REKEY_TEST_JOBS=N] \
#        tests/integration/run.sh [t-name.sh …]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${REKEY:?set REKEY to the rekey binary}"
REKEY=$(cd "$(dirname "$REKEY")" && pwd)/$(basename "$REKEY")
export REKEY REKEY_TOP=$(cd "$here/../.." && pwd)
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=("$here"/t-*.sh)
# The longest first (measured: each takes 20 s or more), so that none of those starts last and
# leaves the other jobs idle.
ordered=()
for t in t-crash t-daemon-idle t-runbook t-provider-keys t-redis t-server-sched t-soak t-daemon \
  t-acme t-database-api; do
  for u in "${tests[@]}"; do
    [ "$(basename "$u" .sh)" = "$t" ] && ordered+=("$u")
  done
done
for u in "${tests[@]}"; do
  case " ${ordered[*]} " in *" $u "*) ;; *) ordered+=("$u") ;; esac
done
tests=("${ordered[@]}")
export REKEY_TEST_BACKEND=${REKEY_TEST_BACKEND:-sqlite}
case $REKEY_TEST_BACKEND in
  sqlite | log) ;;
  *) echo "REKEY_TEST_BACKEND must be sqlite or log, not '$REKEY_TEST_BACKEND'" >&2; exit 2 ;;
esac
echo "integration: store backend $REKEY_TEST_BACKEND"
# REKEY_TEST_JOBS tests run at once (default 3: most of a test's time is waiting on a server, a
# schedule or a service; each test has its own folder, ports and services, so they do not meet).
jobs=${REKEY_TEST_JOBS:-3}
case $jobs in '' | *[!0-9]* | 0) echo "REKEY_TEST_JOBS must be a positive number" >&2; exit 2 ;; esac
pass=0 fail=0
results=$(mktemp -d /tmp/rekey-it-results.XXXXXX)

run_one() { # $1 = test file: runs it in a fresh folder; writes $results/NAME.{rc,time,log}
  local t=$1 name dir start rc
  name=$(basename "$t" .sh)
  dir=$(mktemp -d /tmp/rekey-it.XXXXXX)
  start=$(date +%s.%N)
  (cd "$dir" && TMPDIR="$dir" timeout 300 bash "$here/$(basename "$t")") >"$results/$name.log" 2>&1
  rc=$?
  echo "$(date +%s.%N) - $start" | bc >"$results/$name.time"
  rm -rf "$dir"
  echo "$rc" >"$results/$name.rc"
}

report() { # $1 = test name: prints its line (and the tail of its log when it failed)
  local name=$1
  if [ "$(cat "$results/$name.rc")" = 0 ]; then
    pass=$((pass + 1))
    printf 'PASS %s (%.1fs)\n' "$name" "$(cat "$results/$name.time")"
    grep -E '^skip ' "$results/$name.log" | sed 's/^/    /' || true
  else
    fail=$((fail + 1))
    echo "FAIL $name"
    sed 's/^/    /' "$results/$name.log" | tail -40
  fi
}

declare -A running=() # pid -> test name
for t in "${tests[@]}"; do
  while [ ${#running[@]} -ge "$jobs" ]; do
    wait -n || true
    for pid in "${!running[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null || true
        report "${running[$pid]}"
        unset "running[$pid]"
      fi
    done
  done
  run_one "$t" &
  running[$!]=$(basename "$t" .sh)
done
for pid in "${!running[@]}"; do
  wait "$pid" 2>/dev/null || true
  report "${running[$pid]}"
done
rm -rf "$results"
echo "integration: $pass passed, $fail failed (store backend $REKEY_TEST_BACKEND)"
[ "$fail" -eq 0 ]
