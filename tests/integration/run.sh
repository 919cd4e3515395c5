#!/usr/bin/env bash
# Runs every tests/integration/t-*.sh against the binary in $REKEY, each in its own temporary
# directory, and prints "integration: N passed, N failed". A test passes when it exits 0.
# REKEY_TEST_BACKEND (sqlite, the default, or log) picks the store backend the tests use; a part
# of a test that only means something on SQLite prints "skip (sqlite only): reason", shown here.
# Usage: REKEY=build/src/cli/rekey [REKEY_TEST_BACKEND=log] tests/integration/run.sh [t-name.sh …]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${REKEY:?set REKEY to the rekey binary}"
REKEY=$(cd "$(dirname "$REKEY")" && pwd)/$(basename "$REKEY")
export REKEY REKEY_TOP=$(cd "$here/../.." && pwd)
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=("$here"/t-*.sh)
export REKEY_TEST_BACKEND=${REKEY_TEST_BACKEND:-sqlite}
case $REKEY_TEST_BACKEND in
  sqlite | log) ;;
  *) echo "REKEY_TEST_BACKEND must be sqlite or log, not '$REKEY_TEST_BACKEND'" >&2; exit 2 ;;
esac
echo "integration: store backend $REKEY_TEST_BACKEND"
pass=0 fail=0
for t in "${tests[@]}"; do
  name=$(basename "$t" .sh)
  dir=$(mktemp -d /tmp/rekey-it.XXXXXX)
  start=$(date +%s.%N)
  if (cd "$dir" && TMPDIR="$dir" timeout 300 bash "$here/$(basename "$t")") >"$dir.log" 2>&1; then
    pass=$((pass + 1))
    printf 'PASS %s (%.1fs)\n' "$name" "$(echo "$(date +%s.%N) - $start" | bc)"
    grep -E '^skip ' "$dir.log" | sed 's/^/    /' || true
  else
    fail=$((fail + 1))
    echo "FAIL $name"
    sed 's/^/    /' "$dir.log" | tail -40
  fi
  rm -rf "$dir" "$dir.log"
done
echo "integration: $pass passed, $fail failed (store backend $REKEY_TEST_BACKEND)"
[ "$fail" -eq 0 ]
