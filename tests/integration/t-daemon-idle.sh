#!/usr/bin/env bash
# rekey run sleeps until the next due time: with 2,000 secrets due in 30 days, an idle daemon
# makes no wake-ups (voluntary context switches do not grow over 3 s). Then, with 10,000
# scheduled secrets, it prints the daemon's memory (VmHWM, VmRSS) for the record.
. "$(dirname "$0")/lib.sh"
# Never leave a daemon behind when a check fails.
pid=
trap '[ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null; true' EXIT
init_store

gen_config() { # $1: number of secrets
  {
    printf 'version: 1\n%s\nsecrets:\n' "$(store_yaml store.db)"
    for ((i = 1; i <= $1; i++)); do
      printf '  - path: secret/bulk/s%d\n    kind: generated\n    format: "tok-{hex:16}"\n' "$i"
      printf '    every: 30d\n    auto: true\n'
    done
  } >rekey.yaml
}
export REKEY_CONFIG=$PWD/rekey.yaml
status_field() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
start_idle() { # starts the daemon and waits until it has planned its timers; sets pid
  : >run.log
  "$REKEY" run >run.log 2>&1 &
  pid=$!
  for ((i = 0; i < 300; i++)); do grep -qF "next:" run.log && break; sleep 0.1; done
  grep -qF "next:" run.log || { cat run.log; fail "rekey run did not start"; }
  sleep 0.5
}
stop() {
  kill -TERM "$pid"
  set +e; wait "$pid"; local rc=$?; set -e; pid=
  [ "$rc" -eq 0 ] || fail "rekey run exited $rc"
}

# First values for all of them (one process), so the daemon starts with nothing due.
gen_config 2000
t0=$(date +%s.%N)
expect_exit 0 "$REKEY" run -once
expect_in last.err "stopped (once): 2000 rotated, 0 failed"
printf 'first rotation of 2,000 secrets with run -once: %.1f s\n' "$(echo "$(date +%s.%N) - $t0" | bc)"

start_idle
expect_in run.log "scheduled 2000 secrets: 2000 automatic"
expect_in run.log "next: rotate secret/bulk/s1 at "
a=$(status_field "$pid" voluntary_ctxt_switches)
sleep 3
b=$(status_field "$pid" voluntary_ctxt_switches)
echo "idle 3 s with 2,000 timers: voluntary context switches $a -> $b"
[ $((b - a)) -le 2 ] || fail "the idle daemon woke up $((b - a)) times in 3 s"
# Still responsive: SIGHUP is handled at once.
kill -HUP "$pid"
for ((i = 0; i < 50; i++)); do grep -qF "reloaded" run.log && break; sleep 0.1; done
expect_in run.log "reloaded"
stop

# 10,000 scheduled secrets: memory of the idle daemon. A sanitizer build carries shadow memory,
# so its figures say nothing about rekey's own, and its 8,000 first rotations take minutes.
if grep -qa __asan_init "$REKEY"; then
  echo "skip (sanitizer build): the memory of an idle daemon with 10,000 timers"
  echo ok
  exit 0
fi
gen_config 10000
expect_exit 0 "$REKEY" run -once
expect_in last.err "stopped (once): 8000 rotated, 0 failed"
start_idle
expect_in run.log "scheduled 10000 secrets: 10000 automatic"
a=$(status_field "$pid" voluntary_ctxt_switches)
sleep 1
b=$(status_field "$pid" voluntary_ctxt_switches)
hwm=$(status_field "$pid" VmHWM)
rss=$(status_field "$pid" VmRSS)
anon=$(status_field "$pid" RssAnon)
file=$(status_field "$pid" RssFile)
echo "idle daemon with 10,000 timers: VmHWM ${hwm} kB, VmRSS ${rss} kB (anon ${anon} kB," \
  "file ${file} kB: shared libraries and the store's mmap), wake-ups in 1 s: $((b - a))"
[ $((b - a)) -le 2 ] || fail "the idle daemon woke up $((b - a)) times in 1 s"
# A generous ceiling against regressions (the target, 16 MB, is discussed in docs/daemon.md).
[ "$hwm" -lt 65536 ] || fail "VmHWM ${hwm} kB exceeds 64 MB"
stop
echo ok
