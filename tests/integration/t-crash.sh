# Crash safety: SIGKILL right after every step's commit, then recovery; and fifty kills (fifteen
# on a sanitizer build) at random moments during a slow hook. After each: exactly one current
# version, the target file agrees with it, no version lost, nothing left in flight.
. "$REKEY_TOP/tests/integration/lib.sh"
P=secret/gw/master-key
{ echo "version: 1"; store_yaml store.db; cat <<'YAML'
hooks:
  render:
    type: file
    path: target.secret
    template: "{{new}}"
  check:
    type: exec
    command: [sh, -c, 'read v; [ "$(cat target.secret)" = "$v" ]']
    stdin: new
  jitter:
    type: exec
    command: [sh, -c, 'sleep 0.0$(od -An -N1 -tu1 /dev/urandom | tr -d " " | cut -c1)']
secrets:
  - path: secret/gw/master-key
    kind: generated
    every: 30d
    auto: true
    grace: 0s
    field: key
    format: "{hex:32}"
    apply: [jitter, render]
    test: [check]
    reload: [jitter]
YAML
} > rekey.yaml
init_store
unset REKEY_STORE
expect_exit 0 "$REKEY" rotate $P
for step in create apply test promote reload finish; do
  set +e
  REKEY_CRASH_AT=$step "$REKEY" rotate $P >crash.out 2>&1
  rc=$?
  set -e
  [ $rc -eq 137 ] || { cat crash.out; fail "REKEY_CRASH_AT=$step: expected SIGKILL (137), got $rc"; }
  expect_exit 0 "$REKEY" recover
  check_rotation_invariants $P key target.secret
done

# A crash during an undo finishes the undo.
cat >> rekey.yaml <<'YAML'
YAML
# Fifty kills on a normal build; a sanitizer build (several times slower per command) gets fifteen.
rounds=50
if grep -qa __asan_init "$REKEY"; then rounds=15; fi
for i in $(seq 1 "$rounds"); do
  "$REKEY" rotate $P >/dev/null 2>&1 &
  pid=$!
  sleep "0.$(( RANDOM % 30 ))"
  kill -9 $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  expect_exit 0 "$REKEY" recover
  check_rotation_invariants $P key target.secret
done
exit 0
