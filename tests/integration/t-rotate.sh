# Rotation end to end: a file hook renders the key, a check reads it back, a reload hook runs;
# failing test and reload steps roll back; a concurrent rotation is refused; rollback and
# revoke; store write failures leave the previous state; no value leaks to disk or to a hook's
# command line or environment.
. "$REKEY_TOP/tests/integration/lib.sh"
P=secret/gw/master-key
{ echo "version: 1"; store_yaml store.db; cat <<'YAML'
hooks:
  render:
    type: file
    path: target.secret
    template: "KEY={{new}}"
  check:
    type: exec
    command: [sh, -c, 'test ! -e fail-test.flag && v=$(cat) && [ "$(cat target.secret)" = "KEY=$v" ]']
    stdin: new
  reload:
    type: exec
    command: [sh, -c, 'cat /proc/$$/cmdline > reload-cmdline.txt; cat /proc/$$/environ > reload-environ.txt; test ! -e fail-reload.flag && echo reloaded >> reloads.txt']
  slow:
    type: exec
    command: [sh, -c, 'while [ -e slow.flag ]; do sleep 0.1; done']
    timeout: 30s
secrets:
  - path: secret/gw/master-key
    kind: generated
    every: 30d
    auto: true
    grace: 1h
    field: key
    format: "sk-litellm-{hex:48}"
    apply: [slow, render]
    test: [check]
    reload: [reload]
YAML
} > rekey.yaml
init_store
unset REKEY_STORE
expect_exit 0 "$REKEY" rotate $P
expect_in last.out "rotated v0 -> v1"
check_rotation_invariants $P key target.secret "KEY="
expect_exit 0 "$REKEY" rotate --reason "scheduled test" $P
check_rotation_invariants $P key target.secret "KEY="
v2=$("$REKEY" kv get -field=key $P)
[ "$(wc -l < reloads.txt)" -eq 2 ] || fail "reload hook should have run twice"

# The hook's command line and environment hold no secret.
expect_not_in reload-cmdline.txt "$v2"
expect_not_in reload-environ.txt "$v2"
expect_not_in reload-environ.txt "sk-litellm-"

# A failing test step rolls back: the target and the current version are untouched.
touch fail-test.flag
expect_exit 3 "$REKEY" rotate $P
expect_in last.err "test failed"
rm fail-test.flag
[ "$("$REKEY" kv get -field=key $P)" = "$v2" ] || fail "current changed after a failed test"
check_rotation_invariants $P key target.secret "KEY="
"$REKEY" status --json > st.json || true
grep -q '"failed"' st.json || fail "status should show the failed rotation"
expect_exit 1 "$REKEY" status
"$REKEY" history --json $P > h.json
grep -q '"rolled-back"' h.json || fail "history should show the rolled-back rotation"

# A failing reload rolls back after the promote: consumers reload with the old value again.
touch fail-reload.flag
expect_exit 3 "$REKEY" rotate $P
rm fail-reload.flag
[ "$("$REKEY" kv get -field=key $P)" = "$v2" ] || fail "current changed after a failed reload"
check_rotation_invariants $P key target.secret "KEY="

# A successful rotation clears the failed state.
expect_exit 0 "$REKEY" rotate $P
expect_exit 0 "$REKEY" status
check_rotation_invariants $P key target.secret "KEY="

# Two rotations of the same secret at once: one runs, the other is refused clearly.
touch slow.flag
"$REKEY" rotate $P > first.out 2>&1 &
first=$!
sleep 0.5
expect_exit 3 "$REKEY" rotate $P
expect_in last.err "another rotation of $P is running"
rm slow.flag
wait $first || fail "the first rotation should have succeeded"
check_rotation_invariants $P key target.secret "KEY="

# Rollback returns to the previous version through the hooks.
prev=$("$REKEY" kv get -field=key $P)
expect_exit 0 "$REKEY" rotate $P
expect_exit 0 "$REKEY" rollback $P
[ "$("$REKEY" kv get -field=key $P)" = "$prev" ] || fail "rollback did not restore the previous value"
check_rotation_invariants $P key target.secret "KEY="

# Revoke: rotate and retire the old value at once.
expect_exit 0 "$REKEY" revoke $P
"$REKEY" kv metadata -format=json $P > m.json
/usr/bin/python3 -c 'import json; m=json.load(open("m.json")); assert not [v for v in m["versions"].values() if v["stage"]=="previous"], "revoke left a previous version"'

# A reason longer than the history keeps is cut at a character boundary, not refused.
long_reason=$(/usr/bin/python3 -c 'print("Schlüsselwechsel nach Vorfall " * 8)')
expect_exit 0 "$REKEY" rotate --yes --reason "$long_reason" $P
"$REKEY" history --json $P > h.json
/usr/bin/python3 -c 'import json; e=json.load(open("h.json"))["events"][-1]; r=e["reason"]; assert e["result"]=="ok" and r.startswith("Schlüsselwechsel") and 0 < len(r.encode()) < 160, e'

# Dry run touches nothing.
before=$("$REKEY" kv metadata -format=json $P | md5sum)
expect_exit 0 "$REKEY" rotate --dry-run $P
expect_in last.out "dry run: nothing was changed"
[ "$("$REKEY" kv metadata -format=json $P | md5sum)" = "$before" ] || fail "dry run changed the store"

# A failing store write (the Nth transaction) leaves the previous state, with a clear message.
for fault in txn:1 txn:2 txn:3 txn:4 txn:5 txn:6 fsync:1 fsync:3 fsync:5; do
  set +e
  REKEY_FAULT=$fault "$REKEY" rotate $P > fault.out 2> fault.err
  rc=$?
  set -e
  if [ $rc -ne 0 ]; then
    grep -qiE "I/O|inject|fail|fsync" fault.err || { cat fault.err; fail "store failure $fault: unclear message"; }
  fi
  expect_exit 0 "$REKEY" recover
  check_rotation_invariants $P key target.secret "KEY="
done

# Batch: --all refuses without --yes when there is no terminal.
expect_exit 2 "$REKEY" rotate --all < /dev/null
expect_in last.err "--yes"
expect_exit 0 "$REKEY" rotate --all --yes
expect_in last.out "1 rotated, 0 failed"

# Every value ever written: none in the store files or logs.
mapfile -t vals < <("$REKEY" kv metadata -format=json $P | /usr/bin/python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)["versions"]))')
for v in "${vals[@]}"; do
  val=$("$REKEY" kv get -version="$v" -field=key $P 2>/dev/null || true)
  [ -n "$val" ] && assert_no_plaintext "$val"
done
exit 0
