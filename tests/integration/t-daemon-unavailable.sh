#!/usr/bin/env bash
# rekey run: a rotation whose target is unavailable (the test hook exits 75, EX_TEMPFAIL) keeps
# its candidate pending and is retried with the backoff of util/backoff.c (1 s, 2 s, 3 s here:
# every 3 s); the retries take up that same candidate, never a second one; status says pending;
# a restart plans the retry from the store; once the target answers, the pending candidate
# becomes current.
. "$(dirname "$0")/lib.sh"
kill_run_at_exit
init_store
checked_secret_config secret/app/remote "rm-{hex:16}" "test ! -e $PWD/down.flag || exit 75"
versions() { "$REKEY" kv metadata -format=json secret/app/remote | /usr/bin/python3 -c 'import json,sys; m=json.load(sys.stdin); print(" ".join("%s:%s" % (k, v["stage"]) for k, v in sorted(m["versions"].items())))'; }

touch down.flag
start_run run.log
wait_log run.log "the candidate stays pending, retry in 1s (attempt 1)" 5
wait_log run.log "the candidate stays pending, retry in 2s (attempt 2)" 5
wait_log run.log "the candidate stays pending, retry in 3s (attempt 3)" 8
expect_not_in run.log "rotation of secret/app/remote failed"
stop_run
# One candidate, still pending: the retries did not make new ones.
[ "$(versions)" = "1:pending" ] || fail "expected only v1 pending, got: $(versions)"
expect_exit 0 "$REKEY" status
expect_in last.out "pending"

# Restart: the pending candidate is planned as a retry from the store.
start_run run2.log
wait_log run2.log "1 retry," 5
wait_log run2.log "the candidate stays pending" 8
rm down.flag
wait_log run2.log "rotated secret/app/remote v0 -> v1" 10
stop_run
case "$(versions)" in
1:current*) ;;
*) fail "the pending v1 did not become current: $(versions)" ;;
esac
expect_in run2.log "rotated secret/app/remote v0 -> v1"
expect_not_in run2.log "v2"
echo ok
