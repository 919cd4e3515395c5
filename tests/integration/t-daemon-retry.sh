#!/usr/bin/env bash
# rekey run: a rotation whose test hook fails is rolled back and retried with backoff
# (base max(1 s, every/10) doubling, capped at every = 3 s here); the retry survives a restart;
# once the target accepts, the rotation succeeds and the schedule goes back to normal.
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
  check:
    type: exec
    command: [sh, -c, "test ! -e $dir/fail.flag"]
    timeout: 5s
secrets:
  - path: secret/app/flaky
    kind: generated
    format: "fl-{hex:16}"
    every: 3s
    auto: true
    test: [check]
YAML
export REKEY_CONFIG=$dir/rekey.yaml
wait_log() {
  local i
  touch "$1"
  for ((i = 0; i < $3 * 10; i++)); do
    grep -qF -- "$2" "$1" && return 0
    sleep 0.1
  done
  cat "$1"; fail "'$2' did not appear in $1 within $3 s"
}

touch fail.flag
"$REKEY" run >run.log 2>&1 &
pid=$!
wait_log run.log "retry in 1s (failure 1 in a row)" 5
wait_log run.log "retry in 2s (failure 2 in a row)" 5
wait_log run.log "retry in 3s (failure 3 in a row)" 8
expect_in run.log "rotation of secret/app/flaky failed: "
kill -TERM "$pid"; wait "$pid" || fail "rekey run did not exit 0"; pid=
expect_exit 1 "$REKEY" status
expect_in last.out "failed"

# Restart: the failure is read back from the store and planned as a retry.
"$REKEY" run >run2.log 2>&1 &
pid=$!
wait_log run2.log "1 retry," 5
wait_log run2.log "(failure " 8
rm fail.flag
# Failed candidates keep their version numbers (stage failed): the first good one is v0 -> vN.
wait_log run2.log "rotated secret/app/flaky v0 -> v" 8
sleep 3.5
[ "$(grep -c "rotated secret/app/flaky v" run2.log)" -ge 2 ] ||
  { cat run2.log; fail "the schedule did not resume after the successful retry"; }
kill -TERM "$pid"; wait "$pid" || fail "rekey run did not exit 0"; pid=
expect_exit 0 "$REKEY" status
"$REKEY" kv metadata get secret/app/flaky >meta.out
[ "$(awk '$2 == "current"' meta.out | wc -l)" -eq 1 ] || { cat meta.out; fail "not exactly one current version"; }
echo ok
