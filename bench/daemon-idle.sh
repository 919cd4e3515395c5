#!/usr/bin/env bash
# The daemon at rest: N (default 10,000) scheduled generated secrets, all rotated once so the next
# due time is 30 days away; `rekey run` is started and watched for IDLE seconds (default 10).
# Prints the wake-ups (voluntary context switches), CPU time used while idle, and memory.
# Usage: bench/daemon-idle.sh [N] [IDLE]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_rekey
rekey=$REKEY
n=${1:-10000}
idle=${2:-10}
bench_tmpdir /tmp/rekey-bench-idle.XXXXXX
dir=$bench_dir
cd "$dir"
bench_hook_inventory "$n" secret/idle/s >rekey.yaml
export REKEY_STORE="sqlite:$dir/store.db" REKEY_KEY_FILE="$dir/root.key" REKEY_LOG=warn
"$rekey" -c rekey.yaml operator init -key-file="$REKEY_KEY_FILE" >/dev/null
"$rekey" -c rekey.yaml rotate --all --yes >/dev/null
"$rekey" -c rekey.yaml run > run.log 2>&1 &
pid=$!
bench_track "$pid"
sleep 3
field() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$pid/status"; }
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
cs0=$(field voluntary_ctxt_switches); cpu0=$(cpu)
sleep "$idle"
cs1=$(field voluntary_ctxt_switches); cpu1=$(cpu)
tck=$(getconf CLK_TCK)
printf 'daemon idle, %d entries, %d s: %d wake-ups, %.2f s CPU; VmRSS %s KiB (anon %s, file %s), VmHWM %s KiB\n' \
  "$n" "$idle" "$((cs1 - cs0))" "$(echo "($cpu1 - $cpu0) / $tck" | bc -l)" \
  "$(field VmRSS)" "$(field RssAnon)" "$(field RssFile)" "$(field VmHWM)"
