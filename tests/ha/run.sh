#!/usr/bin/env bash
# Runs the HA tests (tests/ha/t-*.sh, or those named) one after the other, each in a fresh
# temporary folder with its own etcd cluster and servers; prints "ha: N passed, N failed".
# Usage: REKEY=build/src/cli/rekey tests/ha/run.sh [t-name.sh …] (a test build: -Dtest_switches=true)
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
  d=$(mktemp -d /tmp/rekey-ha.XXXXXX)
  start=$(date +%s.%N)
  (cd "$d" && TMPDIR="$d" timeout 180 bash "$here/$name.sh") >"$d.log" 2>&1
  rc=$?
  took=$(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)")
  if [ $rc -eq 0 ]; then
    pass=$((pass + 1)); echo "PASS $name (${took}s)"
  else
    fail=$((fail + 1)); echo "FAIL $name (${took}s, exit $rc)"; tail -40 "$d.log" | sed 's/^/    /'
  fi
  rm -rf "$d" "$d.log"
done
echo "ha: $pass passed, $fail failed"
[ $fail -eq 0 ]
