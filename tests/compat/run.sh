#!/usr/bin/env bash
# tests/compat/run.sh: the hvac compatibility tests (tests/compat/test_hvac.py) against a
# `rekey server -dev` on a free loopback port. Uses Debian's /usr/bin/python3, which has
# python3-hvac (the python3 on PATH may be another interpreter). Prints the tests' closing line
# "hvac: N passed, N failed" and exits non-zero on any failure.
# Usage: REKEY=build/src/cli/rekey tests/compat/run.sh [test-name-substring…]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
REKEY=${REKEY:-$top/build/src/cli/rekey}
REKEY=$(cd "$(dirname "$REKEY")" && pwd)/$(basename "$REKEY")
PY=/usr/bin/python3
[ -x "$REKEY" ] || { echo "compat: no rekey binary at $REKEY (set REKEY)" >&2; exit 1; }
"$PY" -c 'import hvac' 2>/dev/null || {
    echo "compat: $PY cannot import hvac (apt-get install python3-hvac)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/rekey-compat.XXXXXX")
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
token="compat-root-$$-$RANDOM"
printf 'version: 1\nsecrets: []\n' >"$work/empty.yaml"
unset REKEY_ADDR REKEY_TOKEN REKEY_CONFIG REKEY_STORE REKEY_KEY_FILE
(cd "$work" && TMPDIR="$work" exec "$REKEY" server -dev -dev-listen-address "127.0.0.1:$port" \
    -dev-root-token-id "$token" -config "$work/empty.yaml" >"$work/banner" 2>"$work/server.log") &
pid=$!
for _ in $(seq 1 150); do
    curl -s -o /dev/null "http://127.0.0.1:$port/v1/sys/health" && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/server.log" >&2; echo "compat: the server exited" >&2; exit 1; }
    sleep 0.1
done

rc=0
VAULT_ADDR="http://127.0.0.1:$port" VAULT_TOKEN="$token" REKEY="$REKEY" TMPDIR="$work" \
    "$PY" "$here/test_hvac.py" "$@" 2>&1 || rc=$?
if ! kill -0 "$pid" 2>/dev/null; then
    echo "compat: the dev server died during the tests; its log:" >&2
    tail -30 "$work/server.log" >&2
    rc=1
fi
if [ "$rc" -ne 0 ]; then
    echo "--- server log (last 30 lines)"
    tail -30 "$work/server.log"
fi
exit "$rc"
