#!/usr/bin/env bash
# The server log keeps one event per line whatever a client puts in a value that is logged:
# a token whose display_name holds a newline and a forged log line, and an escape sequence,
# is logged (when it creates a child token) on one line, the newline as \n and ESC as \x1b
# (src/util/log.c escapes at the one place a line is written). Every line of the log starts with
# the timestamp and the level.
. "$REKEY_TOP/tests/integration/lib.sh"

TOKEN="lg-root-$$-$RANDOM"
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
A="http://127.0.0.1:$PORT"
printf 'X-Vault-Token: %s\n' "$TOKEN" >root.hdr.secret
printf 'version: 1\nsecrets: []\n' >empty.yaml

REKEY_DEV_ROOT_TOKEN_ID=$TOKEN "$REKEY" server -dev -dev-listen-address "127.0.0.1:$PORT" \
    -config "$PWD/empty.yaml" >banner.secret 2>server.log &
SERVER_PID=$!
cleanup() {
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do
    curl -s -o /dev/null "$A/v1/sys/health" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat server.log; fail "the server exited"; }
    sleep 0.1
done

# JSON: "lg\n2026-01-01T00:00:00Z info  FORGED root token issued\u001b[2J"
body='{"policies":["root"],"display_name":"lg\n2026-01-01T00:00:00Z info  FORGED root token issued\u001b[2J"}'
STATUS=$(curl -s -o parent.json.secret -w '%{http_code}' -H @root.hdr.secret -X POST \
    --data "$body" "$A/v1/auth/token/create")
if [ "$STATUS" = 200 ]; then
    printf 'X-Vault-Token: %s\n' \
        "$($PY -c 'import json; print(json.load(open("parent.json.secret"))["auth"]["client_token"])')" \
        >parent.hdr.secret
    # the child's creation logs the parent's display_name
    curl -sf -o /dev/null -H @parent.hdr.secret -X POST --data '{"policies":["default"]}' \
        "$A/v1/auth/token/create" || fail "creating a child with the parent"
    for _ in $(seq 1 50); do grep -q FORGED server.log && break; sleep 0.1; done
    n=$(grep -c FORGED server.log || true)
    [ "$n" = 1 ] || { cat server.log; fail "expected the display_name on one log line, found it on $n"; }
    line=$(grep FORGED server.log)
    # The display name is cleaned as Vault does (bytes outside [A-Za-z0-9-] become '-'); the log
    # escapes whatever else reaches it (tests/unit/test_util.c covers the escaping itself).
    case "$line" in
        *'token created: '*'token-lg-2026-01-01T00-00-00Z-info--FORGED-root-token-issued--2J'*) ;;
        *'token created: '*'lg\n2026-01-01T00:00:00Z info  FORGED root token issued\x1b[2J'*) ;;
        *) fail "the display_name was neither cleaned nor logged escaped: $line" ;;
    esac
    ! grep -q '^2026-01-01T00:00:00Z info  FORGED' server.log || fail "a forged line reached the log"
elif [ "$STATUS" = 400 ]; then
    echo "skip: a display_name with control characters is refused at input ($(cat parent.json.secret))"
else
    fail "creating the token: HTTP $STATUS"
fi

# every line is one event: timestamp, level, message; no raw control byte but the newline
bad=$($PY - <<'PY'
import re
n = 0
for line in open("server.log", "rb").read().split(b"\n")[:-1]:
    if not re.match(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (error|warn |info |debug) ", line) or \
       re.search(rb"[\x00-\x1f\x7f]", line):
        n += 1
        print(line)
PY
)
[ -z "$bad" ] || { cat server.log; fail "log lines that are not one event each: $bad"; }
expect_not_in server.log "$TOKEN"
echo "log: one line per event"
