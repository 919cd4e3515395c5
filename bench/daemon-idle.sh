#!/usr/bin/env bash
# The daemon at rest: N (default 10,000) scheduled generated secrets, all rotated once so the next
# due time is 30 days away; `rekey run` is started and watched for IDLE seconds (default 10).
# Prints the wake-ups (voluntary context switches), CPU time used while idle, and memory.
# Usage: bench/daemon-idle.sh [N] [IDLE]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build-bench}
if [ -z "${REKEY:-}" ]; then
  [ -f "$build/build.ninja" ] || meson setup "$build" "$top" -Dbuildtype=release -Dtests=false -Dtest_switches=false >/dev/null
  ninja -C "$build" src/cli/rekey >/dev/null
fi
rekey=${REKEY:-$build/src/cli/rekey}
n=${1:-10000}
idle=${2:-10}
dir=$(mktemp -d /tmp/rekey-bench-idle.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
cd "$dir"
{
  echo "version: 1"
  echo "store: { path: store.db }"
  echo "hooks:"
  echo "  noop: { type: exec, command: [/bin/true] }"
  echo "secrets:"
  for i in $(seq 1 "$n"); do
    printf '  - { path: secret/idle/s%06d, kind: generated, every: 30d, auto: true, field: key, format: "{hex:32}" }\n' "$i"
  done
} > rekey.yaml
export REKEY_STORE="sqlite:$dir/store.db" REKEY_KEY_FILE="$dir/root.key" REKEY_LOG=warn
"$rekey" -c rekey.yaml operator init -key-file="$REKEY_KEY_FILE" >/dev/null
"$rekey" -c rekey.yaml rotate --all --yes >/dev/null
"$rekey" -c rekey.yaml run > run.log 2>&1 &
pid=$!
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
