#!/usr/bin/env bash
# hvac (a real Vault client) against `rekey server`: tests/compat/run.sh, which starts its own
# dev server on a free loopback port and stops it.
. "$REKEY_TOP/tests/integration/lib.sh"
out=$PWD/compat.out
rc=0
REKEY="$REKEY" "$REKEY_TOP/tests/compat/run.sh" >"$out" 2>&1 || rc=$?
grep -E '^hvac: [0-9]+ passed, [0-9]+ failed' "$out" >/dev/null || { cat "$out"; fail "no summary from tests/compat/run.sh"; }
[ "$rc" -eq 0 ] || { cat "$out"; fail "hvac compatibility tests failed"; }
grep -E '^hvac: ' "$out"
echo "t-compat: ok"
