#!/usr/bin/env bash
# Runs every tests/integration/t-*.sh against the binary in $REKEY, each in its own temporary
# directory, and prints "integration: N passed, N failed". A test passes when it exits 0.
# Usage: REKEY=build/src/cli/rekey tests/integration/run.sh [t-name.sh …]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${REKEY:?set REKEY to the rekey binary}"
REKEY=$(cd "$(dirname "$REKEY")" && pwd)/$(basename "$REKEY")
export REKEY REKEY_TOP=$(cd "$here/../.." && pwd)
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=("$here"/t-*.sh)
pass=0 fail=0
for t in "${tests[@]}"; do
  name=$(basename "$t" .sh)
  dir=$(mktemp -d /tmp/rekey-it.XXXXXX)
  start=$(date +%s.%N)
  if (cd "$dir" && TMPDIR="$dir" timeout 300 bash "$here/$(basename "$t")") >"$dir.log" 2>&1; then
    pass=$((pass + 1))
    printf 'PASS %s (%.1fs)\n' "$name" "$(echo "$(date +%s.%N) - $start" | bc)"
  else
    fail=$((fail + 1))
    echo "FAIL $name"
    sed 's/^/    /' "$dir.log" | tail -40
  fi
  rm -rf "$dir" "$dir.log"
done
echo "integration: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
