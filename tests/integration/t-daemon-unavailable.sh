#!/usr/bin/env bash
# rekey run: a rotation whose target is unavailable (the test hook exits 75, EX_TEMPFAIL) keeps
# its candidate pending and is retried with the backoff of util/backoff.c (1 s, 2 s, 3 s here:
# every 3 s); the retries take up that same candidate, never a second one; status says pending;
# a restart plans the retry from the store; once the target answers, the pending candidate
# becomes current.
. "$(dirname "$0")/lib.sh"
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
    command: [sh, -c, "test ! -e $dir/down.flag || exit 75"]
    timeout: 5s
secrets:
  - path: secret/app/remote
    kind: generated
    format: "rm-{hex:16}"
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
versions() { "$REKEY" kv metadata -format=json secret/app/remote | /usr/bin/python3 -c 'import json,sys; m=json.load(sys.stdin); print(" ".join("%s:%s" % (k, v["stage"]) for k, v in sorted(m["versions"].items())))'; }

touch down.flag
"$REKEY" run >run.log 2>&1 &
pid=$!
wait_log run.log "the candidate stays pending, retry in 1s (attempt 1)" 5
wait_log run.log "the candidate stays pending, retry in 2s (attempt 2)" 5
wait_log run.log "the candidate stays pending, retry in 3s (attempt 3)" 8
expect_not_in run.log "rotation of secret/app/remote failed"
kill -TERM "$pid"; wait "$pid" || fail "rekey run did not exit 0"; pid=
# One candidate, still pending: the retries did not make new ones.
[ "$(versions)" = "1:pending" ] || fail "expected only v1 pending, got: $(versions)"
expect_exit 0 "$REKEY" status
expect_in last.out "pending"

# Restart: the pending candidate is planned as a retry from the store.
"$REKEY" run >run2.log 2>&1 &
pid=$!
wait_log run2.log "1 retry," 5
wait_log run2.log "the candidate stays pending" 8
rm down.flag
wait_log run2.log "rotated secret/app/remote v0 -> v1" 10
kill -TERM "$pid"; wait "$pid" || fail "rekey run did not exit 0"; pid=
case "$(versions)" in
1:current*) ;;
*) fail "the pending v1 did not become current: $(versions)" ;;
esac
expect_in run2.log "rotated secret/app/remote v0 -> v1"
expect_not_in run2.log "v2"
echo ok
