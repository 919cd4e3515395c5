#!/usr/bin/env bash
# rekey run: SIGTERM while a rotation is in flight (a 2 s reload hook) does not cut it: the
# rotation completes, then the daemon stops with exit 0 and the secret has one current version.
. "$(dirname "$0")/lib.sh"
# Never leave a daemon behind when a check fails.
pid=
trap '[ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null; true' EXIT
init_store
dir=$PWD
cat >rekey.yaml <<YAML
version: 1
$(store_yaml store.db)
hooks:
  slow:
    type: exec
    command: [sh, -c, "touch $dir/hook.started; sleep 2; touch $dir/hook.done"]
    timeout: 10s
secrets:
  - path: secret/app/slow
    kind: generated
    format: "sl-{hex:16}"
    every: 30d
    auto: true
    reload: [slow]
YAML
export REKEY_CONFIG=$dir/rekey.yaml

"$REKEY" run >run.log 2>&1 &
pid=$!
for ((i = 0; i < 50; i++)); do [ -e hook.started ] && break; sleep 0.1; done
[ -e hook.started ] || { cat run.log; fail "the reload hook did not start"; }
kill -TERM "$pid"
kill -INT "$pid" # a second signal changes nothing
set +e; wait "$pid"; rc=$?; set -e; pid=
[ "$rc" -eq 0 ] || { cat run.log; fail "rekey run exited $rc"; }
[ -e hook.done ] || fail "the rotation was cut short: the reload hook did not finish"
expect_in run.log "rotated secret/app/slow v0 -> v1"
grep -n "rotated secret/app/slow\|stopped" run.log | sort -n | tail -1 | grep -q stopped ||
  fail "the stop was logged before the rotation ended"
"$REKEY" kv metadata get secret/app/slow >meta.out
[ "$(awk '$2 == "current"' meta.out | wc -l)" -eq 1 ] || { cat meta.out; fail "not exactly one current version"; }
"$REKEY" status --json >status.json || true
expect_not_in status.json '"rotating"'
echo ok
