#!/usr/bin/env bash
# rekey run: scheduled rotations with a file hook, finish after grace, a reminder for a manual
# secret, SIGTERM (clean stop, exit 0), restart (continues), SIGHUP with a broken config (keeps
# running with the old one), SIGHUP with a good one (picks it up), and --once.
. "$(dirname "$0")/lib.sh"
# Never leave a daemon behind when a check fails.
pid=
trap '[ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null; true' EXIT
init_store
dir=$PWD

write_config() { # $1: extra secrets text appended
  cat >rekey.yaml <<YAML
version: 1
$(store_yaml store.db)
hooks:
  render:
    type: file
    path: $dir/token.secret
    template: "{{new}}"
    mode: "0600"
secrets:
  - path: secret/app/token
    kind: generated
    format: "tok-{hex:32}"
    field: key
    every: 3s
    auto: true
    reload: [render]
  - path: secret/app/graced
    kind: generated
    format: "gr-{hex:16}"
    field: key
    every: 4s
    auto: true
    grace: 2s
  - path: secret/app/human
    kind: manual
    field: api_key
    every: 30d
    auto: false
$1
YAML
}
write_config ""
export REKEY_CONFIG=$dir/rekey.yaml

# The CLI checks read the store through their own copy of the config (rekey.yaml gets broken).
cp rekey.yaml cli.yaml
current_version() { "$REKEY" -c cli.yaml kv metadata get "$1" | awk '$1 == "current_version" {print $2}'; }
count_current() { "$REKEY" -c cli.yaml kv metadata get "$1" | awk '$2 == "current"' | wc -l; }
# wait_log FILE TEXT SECONDS: waits until FILE contains TEXT.
wait_log() {
  local i
  touch "$1"
  for ((i = 0; i < $3 * 10; i++)); do
    grep -qF -- "$2" "$1" && return 0
    sleep 0.1
  done
  cat "$1"; fail "'$2' did not appear in $1 within $3 s"
}
# stop PID: SIGTERM, then it must exit 0 within 5 s.
stop() {
  local i
  kill -TERM "$1"
  for ((i = 0; i < 50; i++)); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$1" 2>/dev/null && { kill -KILL "$1"; fail "rekey run did not stop within 5 s"; }
  set +e; wait "$1"; local rc=$?; set -e; pid=
  [ "$rc" -eq 0 ] || fail "rekey run exited $rc after SIGTERM"
}

# --- the daemon rotates on schedule
"$REKEY" run -pid-file="$dir/run.pid" >run.log 2>&1 &
pid=$!
wait_log run.log "next:" 5
[ "$(cat run.pid)" = "$pid" ] || fail "pid file holds $(cat run.pid), not $pid"
# A second daemon with the same pid file refuses to start.
expect_exit 3 "$REKEY" run -pid-file="$dir/run.pid"
expect_in last.err "another rekey run (pid $pid)"
# v1 at start, then every 3 s: v3 about 6 s in (up to 12 s on a loaded machine)
for _ in $(seq 1 24); do
  v=$(current_version secret/app/token)
  [ "$v" -ge 3 ] && break
  sleep 0.5
done
[ "$v" -ge 3 ] || { cat run.log; fail "expected at least 3 versions (2 scheduled rotations) after 12 s, got $v"; }
expect_in run.log "rotated secret/app/token v1 -> v2 (hmac:"
# The daemon keeps rotating (every 2 s): compare between rotations, when none is in flight
# (the file is rendered at apply, before the promote).
same=0
for _ in $(seq 20); do
  if [ "$(cat token.secret)" = "$("$REKEY" kv get -field=key secret/app/token)" ]; then same=1; break; fi
  sleep 0.2
done
[ "$same" = 1 ] || fail "the rendered file differs from the current value"
# graced: the previous value is retired by a FINISH timer once its 2 s grace passed.
expect_in run.log "finished secret/app/graced: retired v1"
# the manual secret: one reminder, no value invented.
[ "$(grep -c 'secret/app/human is due' run.log)" -eq 1 ] || { cat run.log; fail "expected one reminder"; }
expect_in run.log "a person must set it: rekey rotate secret/app/human"
"$REKEY" kv get secret/app/human >/dev/null 2>&1 && fail "the daemon invented a manual value"

# --- SIGHUP with a broken config: logged with file:line:col, the old one kept
cp rekey.yaml good.yaml
printf 'secrets:\n  - path: [unclosed\n' >rekey.yaml
kill -HUP "$pid"
wait_log run.log "reload failed, keeping the previous configuration" 5
grep -qE "reload failed.*rekey\.yaml:[0-9]+:[0-9]+: " run.log || fail "the reload error does not name file:line:col"
v1=$(current_version secret/app/token)
for _ in $(seq 1 16); do # (every 3 s: up to 8 s on a loaded machine)
  sleep 0.5
  kill -0 "$pid" || fail "rekey run died after a broken reload"
  v2=$(current_version secret/app/token)
  [ "$v2" -gt "$v1" ] && break
done
[ "$v2" -gt "$v1" ] || fail "no rotation after the broken reload ($v1 -> $v2)"

# --- SIGHUP with a good config: a new secret is picked up
cp good.yaml rekey.yaml
write_config "  - path: secret/app/added
    kind: generated
    format: \"ad-{hex:16}\"
    every: 30d
    auto: true"
kill -HUP "$pid"
wait_log run.log "reloaded $dir/rekey.yaml" 5
wait_log run.log "rotated secret/app/added v0 -> v1" 5

# --- SIGTERM: clean stop, one current version, the file matches
stop "$pid"
expect_in run.log "stopped (SIGTERM)"
[ ! -e run.pid ] || fail "the pid file was not removed"
for p in secret/app/token secret/app/graced secret/app/added; do
  [ "$(count_current $p)" -eq 1 ] || fail "$p does not have exactly one current version"
done
[ "$(cat token.secret)" = "$("$REKEY" kv get -field=key secret/app/token)" ] ||
  fail "the rendered file differs from the current value after the stop"
"$REKEY" status --json >status.json || true
expect_not_in status.json '"rotating"'
expect_not_in status.json '"failed"'

# --- restart: continues from the store
before=$(current_version secret/app/token)
sleep 3.2 # make the token due while the daemon is down
"$REKEY" run >run2.log 2>&1 &
pid=$!
wait_log run2.log "rotated secret/app/token v$before -> v$((before + 1))" 5
expect_not_in run2.log "rolled back"
stop "$pid"
[ "$(count_current secret/app/token)" -eq 1 ] || fail "more than one current version after restart"

# --- SIGINT stops too
"$REKEY" run >run3.log 2>&1 &
pid=$!
wait_log run3.log "next:" 5
kill -INT "$pid"
set +e; wait "$pid"; rc=$?; set -e; pid=
[ "$rc" -eq 0 ] || fail "rekey run exited $rc after SIGINT"
expect_in run3.log "stopped (SIGINT)"

# --- --once: runs what is due now and exits; nothing due -> nothing rotated
sleep 3.2
expect_exit 0 "$REKEY" run -once
expect_in last.err "rotated secret/app/token"
expect_in last.err "stopped (once)"
expect_exit 0 "$REKEY" run -once
expect_not_in last.err "rotated secret/app/token"

# --- without a key file the daemon cannot unseal: a clear error, not a hang
( unset REKEY_KEY_FILE; expect_exit 3 "$REKEY" run </dev/null; expect_in last.err "REKEY_KEY_FILE" )

assert_no_plaintext "$("$REKEY" kv get -field=key secret/app/token)"
echo "ok"
