#!/usr/bin/env bash
# A target that does not answer keeps the candidate: a `manual` secret whose test hook exits 75
# (EX_TEMPFAIL: "unavailable") leaves the typed value pending, not rolled back; status shows
# `pending` with the reason, history a "pending" event; recovery leaves it alone; a second value
# is refused while it waits; `rekey rotate PATH` with no value (and no terminal to prompt on)
# promotes the same candidate once the target is back; a test that rejects still rolls back.
# The same through the API: needs_input is false while a candidate waits, and the rotate
# answers 503 with "pending": true.
. "$REKEY_TOP/tests/integration/lib.sh"
P=secret/app/provider-key
dir=$PWD
{ echo "version: 1"; store_yaml store.db; cat <<YAML
hooks:
  render:
    type: file
    path: $dir/target.secret
    template: "KEY={{new}}"
  probe:
    type: exec
    # 75 while the target is down; 1 when it refuses the value; 0 when the value works.
    command: [sh, -c, 'test -e $dir/down.flag && exit 75; test -e $dir/reject.flag && exit 1; v=\$(cat); [ "\$(cat $dir/target.secret)" = "KEY=\$v" ]']
    stdin: new
secrets:
  - path: $P
    kind: manual
    every: 90d
    apply: [render]
    test: [probe]
YAML
} > rekey.yaml
export REKEY_CONFIG=$dir/rekey.yaml
init_store
A=typed-value-one-Zq81x
B=typed-value-two-Wm42y
C=typed-value-three-Kp07v

printf '%s\n' "$A" | "$REKEY" rotate --from-stdin $P >/dev/null || fail "first rotation"

# ---- the target is down: v2 stays pending, nothing is rolled back ----
touch down.flag
set +e
printf '%s\n' "$B" | "$REKEY" rotate --from-stdin $P >rot.out 2>rot.err
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a rotation whose target is unavailable must not report success"
expect_in rot.err "target unavailable"
expect_in rot.err "stays pending"
expect_not_in rot.err "rolled back"
expect_not_in rot.err "$B"
expect_exit 0 "$REKEY" status
expect_in last.out "pending"
expect_in last.out "target unavailable"
"$REKEY" status --json >status.json
/usr/bin/python3 - <<'PY' || fail "status --json of the pending entry"
import json
(e,) = [e for e in json.load(open("status.json")) if e["path"] == "secret/app/provider-key"]
assert e["state"] == "pending", e
assert "target unavailable" in e["detail"], e
assert e["version"] == 1, e
assert e["needs_input"] is False, e
PY
"$REKEY" kv metadata -format=json $P >meta.json
/usr/bin/python3 - <<'PY' || fail "v2 must be pending and v1 current"
import json
m = json.load(open("meta.json"))
assert m["current_version"] == 1, m["current_version"]
assert m["versions"]["2"]["stage"] == "pending", m["versions"]["2"]
PY
"$REKEY" history $P >hist.out
expect_in hist.out "pending"

# ---- recovery does not undo it; a second value is refused while it waits ----
expect_exit 0 "$REKEY" recover
expect_in last.out "pending"
expect_exit 0 "$REKEY" status
expect_in last.out "pending"
set +e
printf '%s\n' "$C" | "$REKEY" rotate --from-stdin $P >rot2.out 2>rot2.err
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a second value must be refused while a candidate waits"
expect_in rot2.err "waits for its target"
"$REKEY" kv metadata -format=json $P >meta.json
/usr/bin/python3 -c 'import json,sys; m=json.load(open("meta.json")); sys.exit("3" in m["versions"])' ||
  fail "the refused value was stored"

# ---- still down: a retry without a value keeps it pending ----
expect_exit 3 "$REKEY" rotate $P </dev/null
expect_in last.err "stays pending"

# ---- the target is back: the same candidate is promoted, no value is asked for ----
rm down.flag
expect_exit 0 "$REKEY" rotate $P </dev/null
expect_in last.out "v1 -> v2"
[ "$("$REKEY" kv get -field=value $P)" = "$B" ] || fail "the promoted value is not the typed one"
[ "$(cat target.secret)" = "KEY=$B" ] || fail "the target does not hold the typed value"
expect_exit 0 "$REKEY" status
expect_not_in last.out "pending"
check_rotation_invariants $P value target.secret "KEY="

# ---- a target that refuses the value still rolls back ----
touch reject.flag
set +e
printf '%s\n' "$C" | "$REKEY" rotate --from-stdin $P >rot3.out 2>rot3.err
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a rejected value must not report success"
expect_in rot3.err "kept v2"
[ "$(cat target.secret)" = "KEY=$B" ] || fail "a rejected value was left at the target"
rm reject.flag

# ---- through the API: needs_input and the 503 "pending" answer ----
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TOK="unavail-root-$$-$RANDOM$RANDOM"
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true' EXIT
# A dev server makes a store of its own (the secret starts with no version there).
(unset REKEY_STORE REKEY_KEY_FILE; REKEY_DEV_ROOT_TOKEN_ID="$TOK" exec "$REKEY" server -dev \
  -config "$dir/rekey.yaml" -dev-listen-address "127.0.0.1:$port" >server.log 2>&1) &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$port/v1/sys/health" && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat server.log; fail "the server exited"; }
  sleep 0.1
done
api() { # METHOD ROUTE [BODY]: the answer's status into api.code, body into api.json
  curl -s -o api.json -w '%{http_code}' -X "$1" -H "X-Vault-Token: $TOK" \
    ${3:+-d "$3"} "http://127.0.0.1:$port$2" >api.code
}
api GET /v1/rekey/status/$P
[ "$(cat api.code)" = 200 ] || { cat api.json; fail "status: HTTP $(cat api.code)"; }
$PY -c 'import json; d=json.load(open("api.json"))["data"]; assert d["needs_input"] is True, d' ||
  fail "a manual entry with nothing pending needs input"
touch down.flag
api POST /v1/rekey/rotate/$P '{"value": "api-typed-value-Hh55"}'
[ "$(cat api.code)" = 503 ] || { cat api.json; fail "unavailable: expected 503, got $(cat api.code)"; }
$PY -c 'import json; d=json.load(open("api.json"))["data"]; assert d["pending"] is True and not d["rolled_back"], d' ||
  fail "the answer must say pending"
api GET /v1/rekey/status/$P
$PY -c 'import json; d=json.load(open("api.json"))["data"]; assert d["state"] == "pending" and d["needs_input"] is False, d' ||
  fail "a pending manual entry needs no input"
rm down.flag
api POST /v1/rekey/rotate/$P '{}'
[ "$(cat api.code)" = 200 ] || { cat api.json; fail "resume: expected 200, got $(cat api.code)"; }
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
assert_no_plaintext "$A" "$B" "$C" api-typed-value-Hh55
echo ok
