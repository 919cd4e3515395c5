#!/usr/bin/env bash
# kill -9 of the leading server at every rotation step boundary (REKEY_CRASH_AT: create, apply,
# test, promote, reload): the standby takes over within a few seconds, finishes or undoes the
# rotation the leader left in flight, and it ends exactly once: one history record for it, one
# current version, none pending, and the file the hook renders holds the current value.
. "$REKEY_TOP/tests/integration/lib.sh"
. "$REKEY_TOP/tests/ha/lib-ha.sh"

etcd_up
PA=$(free_port); PB=$(free_port)
secrets="hooks:
  render:
    type: file
    path: $dir/target.secret
    template: \"{{new}}\"
    mode: \"0600\"
secrets:
  - path: secret/app/token
    kind: generated
    format: \"tok-{hex:32}\"
    field: key
    every: 3s
    auto: true
    reload: [render]"
server_conf a "$PA" "$secrets"
server_conf b "$PB" "$secrets"
export REKEY_CONFIG="$dir/a.yaml"

# round STEP [HOST]: the leader dies at STEP; the standby runs on HOST (a UTS namespace with
# that hostname: the leader's process cannot be looked at from there, so its rotation lock is
# taken over because its election lease ended, not after the lock's 15 minutes).
round() {
  local step=$1
  SERVER_HOST=
  # A rotation now (no server runs): the next is due in 3 s, once both servers are up.
  "$REKEY" rotate secret/app/token >rot.out 2>&1 || { cat rot.out; fail "$step: a rotation by the CLI"; }
  before=$("$REKEY" history -json secret/app/token | $PY -c 'import json,sys; print(max(e["to_version"] for e in json.load(sys.stdin)["events"] if e["op"]=="rotate" and e["result"]=="ok"))')
  : >a.log; : >b.log
  server_start a REKEY_CRASH_AT=$step
  wait_log a.log "is the leader now" 5
  SERVER_HOST=${2:-} server_start b
  # The next rotation is due 3 s after the last: the leader dies at the step's commit.
  for ((i = 0; i < 100; i++)); do kill -0 "$PID_a" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$PID_a" 2>/dev/null && { cat a.log; fail "$step: the leader did not crash"; }
  t0=$(date +%s.%N)
  wait_log b.log "is the leader now" 8
  echo "$step: the standby leads $(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s after the leader's kill"
  wait_log b.log "recovery: " 5
  kill -TERM "$PID_b"
  wait "$PID_b" || { cat b.log; fail "$step: the new leader did not exit 0"; }
  "$REKEY" history -json secret/app/token >hist.json
  $PY - "$before" "$step" <<'P' || { cat a.log b.log; fail "$step: the interrupted rotation did not end exactly once"; }
import json, sys
before, step = int(sys.argv[1]), sys.argv[2]
ev = [e for e in json.load(open("hist.json"))["events"] if e["op"] == "rotate"]
mine = [e for e in ev if e["from_version"] == before]
assert len(mine) == 1, "%s: %d rotate records from v%d: %r" % (step, len(mine), before, mine)
ok = [e["to_version"] for e in ev if e["result"] == "ok"]
assert len(ok) == len(set(ok)), "a version was rotated to twice: %r" % ok
print("%s: the rotation from v%d ended once (%s)" % (step, before, mine[0]["result"]))
P
  check_rotation_invariants secret/app/token key target.secret ""
}
for step in create apply test promote reload; do round $step; done
round apply other-host
echo ok
