#!/usr/bin/env bash
# rekey run: a rotation whose test hook fails is rolled back and retried with backoff
# (base max(1 s, every/10) doubling, capped at every = 3 s here); the retry survives a restart;
# once the target accepts, the rotation succeeds and the schedule goes back to normal.
. "$(dirname "$0")/lib.sh"
kill_run_at_exit
init_store
checked_secret_config secret/app/flaky "fl-{hex:16}" "test ! -e $PWD/fail.flag"

touch fail.flag
start_run run.log
wait_log run.log "retry in 1s (failure 1 in a row)" 5
wait_log run.log "retry in 2s (failure 2 in a row)" 5
wait_log run.log "retry in 3s (failure 3 in a row)" 8
expect_in run.log "rotation of secret/app/flaky failed: "
stop_run
expect_exit 1 "$REKEY" status
expect_in last.out "failed"

# Restart: the failure is read back from the store and planned as a retry.
start_run run2.log
wait_log run2.log "1 retry," 5
wait_log run2.log "(failure " 8
rm fail.flag
# Failed candidates keep their version numbers (stage failed): the first good one is v0 -> vN.
wait_log run2.log "rotated secret/app/flaky v0 -> v" 8
# the next one a period (3 s) later: up to 8 s on a loaded machine
for _ in $(seq 1 80); do
  [ "$(grep -c "rotated secret/app/flaky v" run2.log)" -ge 2 ] && break
  sleep 0.1
done
[ "$(grep -c "rotated secret/app/flaky v" run2.log)" -ge 2 ] ||
  { cat run2.log; fail "the schedule did not resume after the successful retry"; }
stop_run
expect_exit 0 "$REKEY" status
"$REKEY" kv metadata get secret/app/flaky >meta.out
[ "$(awk '$2 == "current"' meta.out | wc -l)" -eq 1 ] || { cat meta.out; fail "not exactly one current version"; }
echo ok
